// Proves the Dovecot harness and the shipped dovecot/ files without mailhostd, on each peer set
// (Dovecot 2.3 with dovecot/2.3/*, Dovecot 2.4 with dovecot/*): a backend reached directly (IMAP,
// POP3, LMTP delivery, its own password check), the Lua proxy against a small in-test HTTP
// responder standing in for mailhostd (every answer and every failure mapped as docs/login.md
// says, in verify and in lookup mode, and a bad script setting refused at start), the dict proxy
// (Dovecot 2.3 only: 2.4 has no dict passdb) against a small in-test dict server, a director
// ring of one (Dovecot 2.3 only: 2.4 removed it) choosing among two members by the answer's
// director_tag, a clean stop, and a start-up failure reported with Dovecot's own words.

import t from 'tap'
import { startedPeers } from './harness/peers.js'
import { eachPeerSet } from './harness/peer-set.js'
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { DEMO_MAIL_USERS, helloSubject, startDovecot, type Dovecot } from './harness/dovecot.js'
import { imapLogin, ImapSession } from './harness/imap-client.js'
import { pop3Login } from './harness/pop3-client.js'
import { SmtpSession } from './harness/smtp-client.js'
import { freePort } from './harness/ports.js'
import { isRunning } from './harness/postfix.js'

eachPeerSet(t, async (t, set) => {
  const SECRET = 'harness-secret-7f3a'
  const setUp = startedPeers(t)

  const mx1 = await setUp(startDovecot({ set, role: 'backend', name: 'mx1', users: DEMO_MAIL_USERS.mx1 }))

  t.test('backend: IMAP, POP3 and LMTP with its own passdb', async (t) => {
    const ok = await imapLogin(mx1.ports.imap, 'alice@example.org', 'wonderland')
    t.equal(ok.login.status, 'OK', 'IMAP LOGIN with the right password')
    t.equal(ok.subject, helloSubject('mx1'), 'the INBOX holds the backend-named message')

    const bad = await imapLogin(mx1.ports.imap, 'alice@example.org', 'not-it')
    t.same([bad.login.status, bad.login.code], ['NO', 'AUTHENTICATIONFAILED'], 'a wrong password fails')

    const literal = await imapLogin(mx1.ports.imap, 'alice@example.org', 'wönderland "q" \\')
    t.equal(literal.login.code, 'AUTHENTICATIONFAILED', 'a password sent as a literal is read (and wrong)')

    const pop = await pop3Login(mx1.ports.pop3, 'carol@example.org', 'carol-disabled')
    t.same([pop.login.ok, pop.count, pop.subject], [true, 1, helloSubject('mx1')], 'POP3 USER/PASS, STAT, TOP')

    const { session: lmtp, banner } = await SmtpSession.open(mx1.ports.lmtp!)
    t.equal(banner.code, 220, 'LMTP greeting')
    t.equal((await lmtp.command('LHLO harness.test')).code, 250)
    t.equal((await lmtp.mailFrom('sender@example.net')).code, 250)
    t.equal((await lmtp.rcptTo('alice@example.org')).code, 250, 'LMTP knows alice')
    t.equal((await lmtp.rcptTo('nobody@example.org')).code, 550, 'and refuses an unknown recipient')
    t.equal((await lmtp.data('Subject: delivered by LMTP\n\nhi\n')).code, 250, 'delivered')
    await lmtp.quit()

    const { session } = await ImapSession.open(mx1.ports.imap)
    await session.login('alice@example.org', 'wonderland')
    t.match((await session.select()).untagged.join('\n'), /\* 2 EXISTS/, 'the LMTP message arrived in the INBOX')
    t.equal(await session.subject(2), 'delivered by LMTP')
    await session.logout()

    const test = await mx1.doveadm(['auth', 'test', 'alice@example.org', 'wonderland'])
    t.match(test.stdout, /auth succeeded/, 'doveadm is bound to this instance')
  })

  // ---- The Lua proxy against a stand-in for mailhostd's HTTP endpoints.

  interface Seen {
    path: string
    headers: IncomingHttpHeaders
    body: Record<string, string | undefined>
  }
  const seen: Seen[] = []
  type Answer = { status: number; body: string } | 'hang'
  const answers = new Map<string, Answer>()
  const ok = (fields: Record<string, string>): Answer => ({ status: 200, body: JSON.stringify({ result: 'ok', fields }) })
  const backendFields = (port: number) => ({ proxy: 'y', host: '127.0.0.1', port: String(port), nopassword: 'y' })

  const http = createHttpServer((req, res) => {
    let raw = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (raw += d))
    req.on('end', () => {
      const body = JSON.parse(raw) as Record<string, string | undefined>
      seen.push({ path: req.url ?? '', headers: req.headers, body })
      if (req.headers['x-auth-key'] !== SECRET) {
        res.writeHead(401, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ code: 'bad-secret' }))
        return
      }
      // By user and password (verify) or user and service (lookup), else by user.
      const a = answers.get(`${body.user} ${body.password ?? body.service}`) ?? answers.get(body.user ?? '')
      if (a === 'hang') return
      const out = a ?? { status: 200, body: JSON.stringify({ result: 'unknown', reason: 'no such user' }) }
      res.writeHead(out.status, { 'content-type': 'application/json' }).end(out.body)
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  const httpPort = (http.address() as { port: number }).port
  // Dovecot keeps its connections alive (and a 'hang' request open): close them, or close() waits.
  await setUp(Promise.resolve({ stop: () => new Promise<void>((r) => http.close(() => r()).closeAllConnections()) }))

  const lua = await setUp(startDovecot({ set, role: 'proxy-lua', httpPort, secret: SECRET, debug: true }))

  t.test('Lua proxy: results and failures mapped as docs/login.md says', async (t) => {
    answers.set('alice@example.org wonderland', ok(backendFields(mx1.ports.imap)))
    answers.set('alice@example.org wrong', { status: 200, body: JSON.stringify({ result: 'mismatch', reason: 'wrong password' }) })
    answers.set('temp@example.org', { status: 200, body: JSON.stringify({ result: 'tempfail', reason: 'directory unavailable' }) })
    answers.set('carol@example.org', { status: 200, body: JSON.stringify({ result: 'disabled', reason: 'account disabled' }) })
    answers.set('err500@example.org', { status: 500, body: '{}' })
    answers.set('garbage@example.org', { status: 200, body: 'this is not json' })
    answers.set('noresult@example.org', { status: 200, body: '{"fields":{}}' })
    answers.set('oddresult@example.org', { status: 200, body: '{"result":"maybe"}' })
    answers.set('nohost@example.org', ok({ proxy: 'y' }))

    const good = await imapLogin(lua.ports.imap, 'alice@example.org', 'wonderland')
    t.equal(good.login.status, 'OK', 'ok: logged in through the proxy')
    t.equal(good.subject, helloSubject('mx1'), 'on the backend the answer named')
    const req = seen.at(-1)!
    t.equal(req.path, '/v1/dovecot/passdb/verify')
    t.equal(req.headers['x-auth-key'], SECRET, 'the secret header is sent')
    t.equal(req.headers['content-type'], 'application/json')
    t.match(req.body, { user: 'alice@example.org', password: 'wonderland', service: 'imap', remoteIp: '127.0.0.1', localIp: '127.0.0.1' }, 'the protocol as service, also on 2.4 (req.protocol)')
    t.type(req.body.session, 'string', 'the session id is sent')

    const expectations: [string, string, string | undefined, string][] = [
      ['alice@example.org', 'wrong', 'AUTHENTICATIONFAILED', 'mismatch'],
      ['ghost@example.org', 'x', 'AUTHENTICATIONFAILED', 'unknown'],
      ['carol@example.org', 'x', 'AUTHENTICATIONFAILED', 'disabled'],
      ['temp@example.org', 'x', 'UNAVAILABLE', 'tempfail'],
      ['err500@example.org', 'x', 'UNAVAILABLE', 'HTTP 500'],
      ['garbage@example.org', 'x', 'UNAVAILABLE', 'a body that is not JSON'],
      ['noresult@example.org', 'x', 'UNAVAILABLE', 'JSON without a result'],
      ['oddresult@example.org', 'x', 'UNAVAILABLE', 'an unknown result'],
      ['nohost@example.org', 'x', 'UNAVAILABLE', 'ok without a host'],
    ]
    for (const [user, password, code, what] of expectations) {
      const r = await imapLogin(lua.ports.imap, user, password)
      t.same([r.login.status, r.login.code], ['NO', code], `${what}: NO [${code}]`)
    }
    const log = await lua.log()
    t.match(log, /passdb-lua: mailhostd: \/v1\/dovecot\/passdb\/verify answered 500/, 'an HTTP error is logged with its status')
    t.match(log, /answered unparseable JSON/)
    t.notMatch(log, /wonderland/, 'no password in the debug log')
    t.notMatch(log, new RegExp(SECRET), 'no secret in the debug log')
  })

  t.test('Lua proxy: auth_passdb_lookup for doveadm', async (t) => {
    answers.set('alice@example.org', ok(backendFields(mx1.ports.imap)))
    const r = await lua.doveadm(['auth', 'lookup', 'alice@example.org'])
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /proxy\s*:\s*y/)
    t.match(r.stdout, /host\s*:\s*127\.0\.0\.1/)
    t.match(seen.at(-1), { path: '/v1/dovecot/passdb/lookup', body: { user: 'alice@example.org', service: 'doveadm' } })
    t.notOk('password' in seen.at(-1)!.body, 'a lookup sends no password')
  })

  t.test('Lua proxy: a wrong secret (401) is a temporary failure', async (t) => {
    const wrong = await setUp(startDovecot({ set, role: 'proxy-lua', httpPort, secret: 'not-the-secret' }))
    const r = await imapLogin(wrong.ports.imap, 'alice@example.org', 'wonderland')
    t.same([r.login.status, r.login.code], ['NO', 'UNAVAILABLE'])
    t.match(await wrong.log(), /answered 401 Unauthorized \(bad-secret\)/, 'logged with the problem code')
  })

  t.test('Lua proxy: mailhostd not answering in time, or not there', async (t) => {
    answers.set('slow@example.org', 'hang')
    const quick = await setUp(startDovecot({ set, role: 'proxy-lua', httpPort, secret: SECRET, timeoutMs: 2000 }))
    const started = Date.now()
    const slow = await imapLogin(quick.ports.imap, 'slow@example.org', 'x')
    t.same([slow.login.status, slow.login.code], ['NO', 'UNAVAILABLE'], 'a hung request times out as a temporary failure')
    t.ok(Date.now() - started < 8_000, `within the script timeout plus the failure delay (${Date.now() - started} ms)`)
    t.match(await quick.log(), /answered 9008 Request timed out/)

    const closed = await setUp(startDovecot({ set, role: 'proxy-lua', httpPort: await freePort(), secret: SECRET }))
    const gone = await imapLogin(closed.ports.imap, 'alice@example.org', 'wonderland')
    t.same([gone.login.status, gone.login.code], ['NO', 'UNAVAILABLE'], 'connection refused is a temporary failure, not "unknown user"')
    t.match(await closed.log(), /answered 9003 connect\(127\.0\.0\.1:\d+\) failed/)
  })

  t.test('Lua proxy in lookup mode: no password to mailhostd, the backend checks it', async (t) => {
    answers.set('alice@example.org imap', ok(backendFields(mx1.ports.imap)))
    answers.set('alice@example.org pop3', ok(backendFields(mx1.ports.pop3)))
    const lookup = await setUp(startDovecot({ set, role: 'proxy-lua', httpPort, secret: SECRET, mode: 'lookup', debug: true }))
    const good = await imapLogin(lookup.ports.imap, 'alice@example.org', 'wonderland')
    t.same([good.login.status, good.subject], ['OK', helloSubject('mx1')], 'the right password: logged in on the backend')
    t.match(seen.at(-1), { path: '/v1/dovecot/passdb/lookup', body: { user: 'alice@example.org', service: 'imap', remoteIp: '127.0.0.1', mode: 'lookup' } }, 'the request says lookup mode')
    t.notOk('password' in seen.at(-1)!.body, 'mailhostd is not sent the password')
    const refusals = async () => (await mx1.log()).split('\n').filter((l) => /auth failed.*user=<alice@example\.org>/.test(l)).length
    const before = await refusals()
    const wrong = await imapLogin(lookup.ports.imap, 'alice@example.org', 'not-wonderland')
    t.same([wrong.login.status, wrong.login.code], ['NO', 'AUTHENTICATIONFAILED'], 'a wrong password: refused')
    for (let i = 0; i < 50 && (await refusals()) === before; i++) await sleep(100)
    t.equal(await refusals(), before + 1, 'by the backend, which logged the failed login')
    const pop = await pop3Login(lookup.ports.pop3, 'alice@example.org', 'wonderland')
    t.equal(pop.login.ok, true, 'POP3 too')
    t.match(seen.at(-1), { path: '/v1/dovecot/passdb/lookup', body: { service: 'pop3' } })
    const temp = await imapLogin(lookup.ports.imap, 'temp@example.org', 'x')
    t.same([temp.login.status, temp.login.code], ['NO', 'UNAVAILABLE'], 'tempfail stays a temporary failure')
    const ghost = await imapLogin(lookup.ports.imap, 'ghost@example.org', 'x')
    t.same([ghost.login.status, ghost.login.code], ['NO', 'AUTHENTICATIONFAILED'], 'unknown: refused at the proxy')
    t.notMatch(await lookup.log(), /wonderland/, 'no password in the debug log')
  })

  t.test('Lua proxy: a bad script setting stops the auth service at start, with the reason', async (t) => {
    const bad = await setUp(startDovecot({ set, role: 'proxy-lua', httpPort, secret: SECRET, mode: 'bogus' }))
    // The login process may answer NO or drop the connection while the auth service is down.
    const r = await imapLogin(bad.ports.imap, 'alice@example.org', 'wonderland').then((x) => x.login.line, (e: Error) => e.message)
    t.notMatch(r, /^\S+ OK /, `no login: ${r}`)
    await bad.waitForLog(/mailhostd\.lua: mode must be verify or lookup, not bogus/)
    t.pass('the log names the setting')
  })

  // ---- The dict proxy against a stand-in dict server (protocol v3, protocols.md §7). Dovecot
  // 2.3 only: 2.4 removed the dict passdb (and speaks dict protocol v4).
  if (set.dovecot !== '2.3') {
    t.test('dict proxy: refused on Dovecot 2.4 (no dict passdb)', async (t) => {
      await t.rejects(startDovecot({ set, role: 'proxy-dict', dictSocket: '/nonexistent/dict.sock' }), /has no dict passdb/)
    })
  } else {
    const sockDir = mkdtempSync(join(tmpdir(), 'mailhostd-dict-'))
    t.teardown(() => rmSync(sockDir, { recursive: true, force: true }))
    const dictKeys: string[] = []
    const dict = createNetServer((c) => {
      let buf = ''
      c.setEncoding('utf8')
      c.on('data', (d: string) => {
        buf += d
        for (let eol = buf.indexOf('\n'); eol >= 0; eol = buf.indexOf('\n')) {
          const line = buf.slice(0, eol)
          buf = buf.slice(eol + 1)
          if (!line.startsWith('L')) continue // the H handshake gets no answer
          const key = line.slice(1).split('\t')[0]!
          dictKeys.push(key)
          if (key === 'shared/passdb/imap/alice@example.org') c.write(`O${JSON.stringify(backendFields(mx1.ports.imap))}\n`)
          else if (key === 'shared/passdb/imap/temp@example.org') c.write('Fdirectory unavailable\n')
          else c.write('N\n')
        }
      })
    })
    const dictSocket = join(sockDir, 'dict.sock')
    dict.listen(dictSocket)
    await once(dict, 'listening')
    await setUp(Promise.resolve({ stop: () => new Promise<void>((r) => dict.close(() => r())) }))

    t.test('dict proxy: O, N and F answers', async (t) => {
      const d = await setUp(startDovecot({ set, role: 'proxy-dict', dictSocket }))
      const good = await imapLogin(d.ports.imap, 'alice@example.org', 'wonderland')
      t.same([good.login.status, good.subject], ['OK', helloSubject('mx1')], 'O{fields}: proxied to the backend')
      t.ok(dictKeys.includes('shared/passdb/imap/alice@example.org'), 'key passdb/%s/%u')
      const wrong = await imapLogin(d.ports.imap, 'alice@example.org', 'wrong')
      t.same([wrong.login.status, wrong.login.code], ['NO', 'AUTHENTICATIONFAILED'], 'nopassword: the backend refused the wrong password')
      const unknown = await imapLogin(d.ports.imap, 'ghost@example.org', 'x')
      t.same([unknown.login.status, unknown.login.code], ['NO', 'AUTHENTICATIONFAILED'], 'N: authentication failed')
      const temp = await imapLogin(d.ports.imap, 'temp@example.org', 'x')
      t.same([temp.login.status, temp.login.code], ['NO', 'UNAVAILABLE'], 'F: temporary failure')
    })
  }

  // ---- The director (Dovecot 2.3 only: 2.4 removed it) in front of two members that share
  // ports and differ by address, the stand-in answering like mailhostd for a pool with
  // director.tag: proxy and director_tag, no host.
  if (set.dovecot !== '2.3') {
    t.test('director: refused on Dovecot 2.4 (no director)', async (t) => {
      await t.rejects(startDovecot({ set, role: 'director', httpPort, secret: SECRET, mailServers: [] }), /has no director/)
    })
  } else {
    t.test('director: the tag picks a member, the same one every time; an answer with host passes through', async (t) => {
      const pooled = Array.from({ length: 8 }, (_, i) => ({ user: `pooled${i}@example.org`, password: `secret-${i}` }))
      const addresses = ['127.0.0.11', '127.0.0.12']
      const director = await setUp(startDovecot({ set, role: 'director', httpPort, secret: SECRET, mailServers: addresses.map((address) => ({ address, tag: 'pool1' })) }))
      // LMTP reaches a member on the port it reached the director on; IMAP on the answer's port.
      const [imap, pop3] = [await freePort(), await freePort()] as const
      const ports = { imap, pop3, lmtp: director.ports.lmtp! }
      const [m1, m2] = [
        await setUp(startDovecot({ set, role: 'backend', name: 'm1', address: addresses[0], ports, users: pooled })),
        await setUp(startDovecot({ set, role: 'backend', name: 'm2', address: addresses[1], ports, users: pooled })),
      ] as const
      for (const u of pooled) {
        answers.set(u.user, ok({ proxy: 'y', director_tag: 'pool1', port: String(imap), destuser: u.user }))
        answers.set(`${u.user} lmtp`, ok({ proxy: 'y', director_tag: 'pool1' }))
      }
      answers.set('alice@example.org', ok(backendFields(mx1.ports.imap)))
      answers.set('untagged@example.org', ok({ proxy: 'y', director_tag: 'pool9', port: String(imap) }))

      const landed = new Map<string, string | undefined>()
      for (const u of pooled) {
        const first = await imapLogin(director.ports.imap, u.user, u.password)
        const again = await imapLogin(director.ports.imap, u.user, u.password)
        t.equal(first.login.status, 'OK', `${u.user} logged in through the director`)
        t.equal(again.subject, first.subject, `${u.user} again on the same member (${first.subject})`)
        landed.set(u.user, first.subject)
        const status = await director.doveadm(['director', 'status', u.user, 'pool1'])
        const ip = first.subject === helloSubject('m1') ? m1.address : m2.address
        t.match(status.stdout, new RegExp(`Current:\\s+${ip.replace(/\./g, '\\.')}`), `the director keeps ${u.user} on ${ip}`)
      }
      const subjects = new Set(landed.values())
      t.same([...subjects].sort(), [helloSubject('m1'), helloSubject('m2')], 'the users are spread over both members')

      for (const u of pooled.slice(0, 3)) {
        const { session: lmtp } = await SmtpSession.open(director.ports.lmtp!)
        await lmtp.command('LHLO harness.test')
        await lmtp.mailFrom('sender@example.net')
        t.equal((await lmtp.rcptTo(u.user)).code, 250, `LMTP through the director takes ${u.user}`)
        t.equal((await lmtp.data(`Subject: to ${u.user} through the director\n\nhi\n`)).code, 250)
        await lmtp.quit()
        const { session } = await ImapSession.open(director.ports.imap)
        await session.login(u.user, u.password)
        await session.select()
        t.same([await session.subject(1), await session.subject(2)], [landed.get(u.user), `to ${u.user} through the director`], 'delivered on the member the user logs in to')
        await session.logout()
      }

      const plain = await imapLogin(director.ports.imap, 'alice@example.org', 'wonderland')
      t.same([plain.login.status, plain.subject], ['OK', helloSubject('mx1')], 'an answer with host: proxied there, the director does not interfere')
      // The director queues a request it has no member for, hoping one gets added, and fails it
      // after 30 s (DIRECTOR_REQUEST_TIMEOUT_SECS, not configurable): a tag mismatch between
      // mailhostd and director_mail_servers shows as slow temporary failures.
      const untagged = await imapLogin(director.ports.imap, 'untagged@example.org', 'x', 90_000)
      t.same([untagged.login.status, untagged.login.code], ['NO', 'UNAVAILABLE'], 'a tag no member carries: a temporary failure')
      t.match(await director.log(), /director: User untagged@example\.org host lookup failed: Timeout because no hosts/, 'the director says why')
      const nohost = await imapLogin(director.ports.imap, 'nohost@example.org', 'x')
      t.same([nohost.login.status, nohost.login.code], ['NO', 'UNAVAILABLE'], 'neither host nor director_tag: the script refuses it, as without a director')
    })
  }

  t.test('stop() ends the master and its children and removes the temp dir', async (t) => {
    const d: Dovecot = await startDovecot({ set, role: 'backend', name: 'mx9', users: DEMO_MAIL_USERS.mx2 })
    await imapLogin(d.ports.imap, 'bob@example.org', 'builder')
    await d.stop()
    t.notOk(await isRunning(d.pid), 'master gone')
    t.notOk(existsSync(d.dir), 'temp dir removed')
    await d.stop()
    t.pass('stop() again is harmless')
  })

  t.test('a Dovecot that cannot start fails with its own message', async (t) => {
    await t.rejects(
      startDovecot({ set, role: 'backend', name: 'broken', users: [], settings: { no_such_setting: 'x' } }),
      /did not come up[\s\S]*Unknown setting: no_such_setting/,
    )
  })
})
