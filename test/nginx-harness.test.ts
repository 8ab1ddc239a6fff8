// Proves the nginx harness and nginx/mail.conf without mailhostd: a small in-test auth_http
// responder stands in for it, a Dovecot backend and an smtp-sink for the mail stores. IMAP and
// POP3 logins reach the backend the responder names, a failure with Auth-Wait keeps the session
// for a second try, one without closes it, SMTP is routed at the first RCPT, the request carries
// what protocols.md §8 says (secret header, %-escaped password), and stop() cleans up.

import t from 'tap'
import { eachPeerSet } from './harness/peer-set.js'
import { startedPeers } from './harness/peers.js'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { DEMO_MAIL_USERS, helloSubject, startDovecot } from './harness/dovecot.js'
import { startNginx } from './harness/nginx.js'
import { imapLogin, ImapSession } from './harness/imap-client.js'
import { pop3Login } from './harness/pop3-client.js'
import { sendMail } from './harness/smtp-client.js'
import { startSmtpSink } from './harness/smtp-sink.js'
import { isRunning } from './harness/postfix.js'
import { freePort } from './harness/ports.js'

const SECRET = 'nginx-harness-secret'
eachPeerSet(t, async (t, set) => {
  const setUp = startedPeers(t)

  const mx1 = await setUp(startDovecot({ set, role: 'backend', name: 'mx1', users: DEMO_MAIL_USERS.mx1 }))
  const sink = await setUp(startSmtpSink({ set }))

  const requests: IncomingHttpHeaders[] = []
  let waitOnFailure = true
  const auth = createServer((req, res) => {
    requests.push(req.headers)
    const h = req.headers
    const password = decodeURIComponent(String(h['auth-pass'] ?? ''))
    const port = h['auth-protocol'] === 'pop3' ? mx1.ports.pop3 : h['auth-protocol'] === 'smtp' ? sink.port : mx1.ports.imap
    // An alternate name: answered with Auth-User, the name nginx logs in to the backend with.
    const alternate = h['auth-user'] === 'alice.liddell@example.org' && password === 'wonderland'
    const good =
      h['x-auth-key'] === SECRET &&
      ((h['auth-method'] === 'none' && /RCPT TO:<alice@example\.org>/.test(String(h['auth-smtp-to']))) ||
        DEMO_MAIL_USERS.mx1.some((u) => u.user === h['auth-user'] && u.password === password))
    const headers: Record<string, string> = good
      ? { 'Auth-Status': 'OK', 'Auth-Server': '127.0.0.1', 'Auth-Port': String(port) }
      : alternate
      ? { 'Auth-Status': 'OK', 'Auth-Server': '127.0.0.1', 'Auth-Port': String(port), 'Auth-User': 'alice@example.org' }
      : { 'Auth-Status': 'Invalid login or password', ...(waitOnFailure ? { 'Auth-Wait': '1' } : {}) }
    res.writeHead(200, headers).end()
  })
  auth.listen(0, '127.0.0.1')
  await once(auth, 'listening')
  // Dovecot keeps its connections alive (and a 'hang' request open): close them, or close() waits.
  await setUp(Promise.resolve({ stop: () => new Promise<void>((r) => auth.close(() => r()).closeAllConnections()) }))
  const authHttpPort = (auth.address() as { port: number }).port

  const nginx = await setUp(startNginx({ set, authHttpPort, secret: SECRET, debug: true }))

  t.test('IMAP: routed to the backend named, with the request protocols.md describes', async (t) => {
    const r = await imapLogin(nginx.ports.imap, 'alice@example.org', 'wonderland')
    t.same([r.login.status, r.subject], ['OK', helloSubject('mx1')], 'logged in on the backend')
    t.match(requests.at(-1), {
      'auth-method': 'plain',
      'auth-user': 'alice@example.org',
      'auth-pass': 'wonderland',
      'auth-protocol': 'imap',
      'auth-login-attempt': '1',
      'client-ip': '127.0.0.1',
      'x-auth-key': SECRET,
    })
    const alt = await imapLogin(nginx.ports.imap, 'alice.liddell@example.org', 'wonderland')
    t.same([alt.login.status, alt.subject], ['OK', helloSubject('mx1')], 'Auth-User: nginx logs in to the backend (which knows no alice.liddell) as the name answered')
    await imapLogin(nginx.ports.imap, 'alice@example.org', 'p@ss word%+')
    t.equal(requests.at(-1)?.['auth-pass'], 'p@ss%20word%25+', 'space and % escaped, + and @ raw')
  })

  t.test('IMAP: a failure with Auth-Wait keeps the session; without it nginx closes', async (t) => {
    waitOnFailure = true
    const { session } = await ImapSession.open(nginx.ports.imap)
    const bad = await session.login('alice@example.org', 'wrong')
    t.same([bad.status, bad.text], ['NO', 'Invalid login or password'], 'the Auth-Status text reaches the client')
    const good = await session.login('alice@example.org', 'wonderland')
    t.equal(good.status, 'OK', 'the second LOGIN in the same session works')
    t.equal(requests.at(-1)?.['auth-login-attempt'], '2', 'nginx counts the attempts')
    await session.logout()

    waitOnFailure = false
    const { session: s2 } = await ImapSession.open(nginx.ports.imap)
    t.equal((await s2.login('alice@example.org', 'wrong')).status, 'NO')
    await t.rejects(s2.login('alice@example.org', 'wonderland'), /closed/, 'without Auth-Wait the session is gone')
    s2.close()
    waitOnFailure = true
  })

  t.test('POP3: routed to the backend named', async (t) => {
    const r = await pop3Login(nginx.ports.pop3, 'carol@example.org', 'carol-disabled')
    t.same([r.login.ok, r.subject], [true, helloSubject('mx1')])
    t.equal(requests.at(-1)?.['auth-protocol'], 'pop3')
    const bad = await pop3Login(nginx.ports.pop3, 'carol@example.org', 'nope')
    t.same([bad.login.ok, bad.login.text], [false, 'Invalid login or password'])
  })

  t.test('SMTP (smtp_auth none): routed by the first recipient', async (t) => {
    const r = await sendMail({ port: nginx.ports.smtp, from: 'sender@example.net', to: ['alice@example.org'], body: 'Subject: via nginx\n\nhi\n' })
    t.equal(r.rcptReplies[0]?.code, 250, 'RCPT accepted through nginx')
    t.equal(r.dataReply.code, 250)
    t.match(requests.at(-1), { 'auth-method': 'none', 'auth-protocol': 'smtp', 'auth-smtp-to': 'RCPT TO:<alice@example.org>' })
    const msgs = await sink.messages()
    t.same(msgs.at(-1)?.rcptTo, ['alice@example.org'], 'the sink got it')
  })

  t.test('nothing secret in the debug error log', async (t) => {
    const log = await nginx.log()
    t.match(log, /\[debug\]/, 'the error log is at debug level')
    t.notMatch(log, /wonderland|carol-disabled/)
    t.notMatch(log, new RegExp(SECRET))
  })

  t.test('auth_http unreachable: "internal server error" and the session is closed', async (t) => {
    const n = await setUp(startNginx({ set, authHttpPort: await freePort(), secret: SECRET }))
    const r = await imapLogin(n.ports.imap, 'alice@example.org', 'wonderland')
    t.same([r.login.status, r.login.text, r.login.closed], ['BAD', 'internal server error', true])
    await n.waitForLog(/Connection refused\) while in http auth state/)
  })

  t.test('stop() ends master and workers and removes the temp dir', async (t) => {
    const n = await startNginx({ set, authHttpPort, secret: SECRET })
    await n.stop()
    t.notOk(await isRunning(n.pid))
    t.notOk(existsSync(n.dir))
    await n.stop()
  })
})
