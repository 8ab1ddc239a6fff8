// Acceptance (issue 12, CVE-2026-28753 class): real nginx running nginx/mail.conf, with a
// `resolver` added, in front of the built mailhostd, on both peer sets. nginx's mail module
// resolves an SMTP client's address (PTR, then the name forward) when a resolver is configured and
// sends the name as Client-Host; a DNS responder in this test answers the PTR for 127.0.0.1 with
// a name holding CR LF or a control byte inside a label. IMAP and POP3 sessions never resolve the
// client (nginx sends no Client-Host for them), so SMTP with `smtp_auth none` is where a hostile
// name can reach mailhostd.
//
// A relay between nginx and mailhostd records each auth_http request as nginx wrote it. An nginx
// with the "Mail: host validation" fix (upstream 1.29.7 and 1.28.3; Debian backported it in
// 1.22.1-9+deb12u5 and 1.26.3-3+deb13u3) refuses the name, logs "resolved to invalid host name" and
// sends Client-Host: [TEMPUNAVAIL]: then mailhostd must route the session as usual. One without
// it copies the name raw: then mailhostd must refuse the session cleanly. Which one runs is read
// from the mail module itself. Either way, the request this nginx wrote is also replayed to
// mailhostd with the raw name in it, as an unfixed nginx writes it, and must be refused; and after
// all of it mailhostd still answers IMAP, POP3 and SMTP.

import { readFile } from 'node:fs/promises'
import { connect, createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { startDnsResponder, TYPE, type DnsResponder } from '../harness/dns.js'
import { ImapSession } from '../harness/imap-client.js'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { startNginx, type Nginx } from '../harness/nginx.js'
import { eachPeerSet, type PeerSet } from '../harness/peer-set.js'
import { startedPeers } from '../harness/peers.js'
import { Pop3Session } from '../harness/pop3-client.js'
import { freePort } from '../harness/ports.js'
import { isAlive } from '../harness/process.js'
import { SmtpSession } from '../harness/smtp-client.js'
import { startSmtpSink } from '../harness/smtp-sink.js'
import { demoClusterConfig } from './demo-table.js'

const SECRET = 'client-host-secret'
const REVERSE = '1.0.0.127.in-addr.arpa'
const REFUSAL = 'Session refused: invalid client data'
const body = (subject: string) => `From: sender@remote.test\r\nSubject: ${subject}\r\n\r\nhello\r\n`

/** Reverse names for 127.0.0.1, as DNS labels (raw bytes). */
const NAMES = {
  // Ends the Client-Host line early and adds an Auth-SMTP-To ahead of nginx's own, naming bob
  // (backend mx2) for a session whose recipient is alice (mx1): a misrouting if it were read.
  crlf: [Buffer.from('client\r\nAuth-SMTP-To: RCPT TO:<bob@example.org>', 'latin1'), Buffer.from('example')],
  control: [Buffer.from('evil\u0001host', 'latin1'), Buffer.from('example')],
  clean: [Buffer.from('client'), Buffer.from('example')],
}
/** The name as nginx's resolver makes it from the labels: joined with dots, A-Z lowered. */
const asNginxCopies = (labels: readonly Buffer[]) => labels.map((l) => l.toString('latin1').replace(/[A-Z]/g, (c) => c.toLowerCase())).join('.')

interface Recorded {
  request: Buffer
  response: Buffer
  done: boolean
}

/** A TCP relay to mailhostd's HTTP port that keeps every request and answer byte for byte. */
async function startRecorder(target: number) {
  const exchanges: Recorded[] = []
  const open = new Set<Socket>()
  const server = createServer((client) => {
    const x: Recorded = { request: Buffer.alloc(0), response: Buffer.alloc(0), done: false }
    exchanges.push(x)
    const upstream = connect({ port: target, host: '127.0.0.1' })
    for (const s of [client, upstream]) {
      open.add(s)
      s.on('close', () => open.delete(s))
      s.on('error', () => (client.destroy(), upstream.destroy()))
    }
    client.on('data', (d: Buffer) => (x.request = Buffer.concat([x.request, d])))
    upstream.on('data', (d: Buffer) => (x.response = Buffer.concat([x.response, d])))
    upstream.on('close', () => (x.done = true))
    client.pipe(upstream)
    upstream.pipe(client)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as { port: number }).port,
    exchanges,
    /** The n-th exchange (from 1), once mailhostd's answer is complete. */
    async nth(n: number, timeoutMs = 15_000): Promise<Recorded> {
      const deadline = Date.now() + timeoutMs
      while (!exchanges[n - 1]?.done) {
        if (Date.now() > deadline) throw new Error(`auth_http exchange ${n} not complete within ${timeoutMs} ms (${exchanges.length} seen)`)
        await sleep(50)
      }
      return exchanges[n - 1]!
    },
    stop: async () => {
      for (const s of open) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Header lines of a recorded HTTP message, as [name, value] in order (names lower-cased). */
function headerLines(message: Buffer): [string, string][] {
  const head = message.toString('latin1').split('\r\n\r\n')[0]!
  return head.split('\r\n').slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])
}
const values = (lines: [string, string][], name: string) => lines.filter(([n]) => n === name).map(([, v]) => v)

/** Sends raw bytes to mailhostd and reads the answer until it closes (bounded). */
function replay(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' })
    const chunks: Buffer[] = []
    const timer = setTimeout(() => (s.destroy(), reject(new Error('no answer from mailhostd within 5 s'))), 5000)
    s.on('data', (d) => chunks.push(d))
    s.on('error', () => undefined)
    s.on('close', () => (clearTimeout(timer), resolve(Buffer.concat(chunks).toString('latin1'))))
    s.end(bytes)
  })
}

/** Whether this set's nginx mail module carries the "Mail: host validation" fix (its log message). */
async function hasHostValidation(set: PeerSet): Promise<boolean> {
  const module = await readFile(set.path('/usr/lib/nginx/modules/ngx_mail_module.so'))
  return module.includes('resolved to invalid host name')
}

eachPeerSet(t, async (t, set) => {
  const setUp = startedPeers(t)
  const mx1 = await setUp(startSmtpSink({ set }))
  const mx2 = await setUp(startSmtpSink({ set }))
  // No IMAP or POP3 store behind the backends: those logins are only checked up to mailhostd's answer.
  const noStore = await freePort()
  const backend = (n: number, smtp: number) => ({ id: `mx${n}`, mailHosts: [`mx${n}.example.org`], address: '127.0.0.1', route: 'smtp', ports: { smtp, imap: noStore, pop3: noStore } })
  const m = await startMailhostd(
    { domains: demoClusterConfig().domains, backends: [backend(1, mx1.port), backend(2, mx2.port)], directory: { type: 'sql' }, login: { secret: SECRET, nginx: { wait: '1s' } } },
    { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
  )
  t.teardown(() => m.stop())
  const recorder = await setUp(startRecorder(m.ports.http))
  const fixed = await hasHostValidation(set)
  t.comment(`${set.label}: nginx mail module ${fixed ? 'has' : 'lacks'} the "Mail: host validation" fix`)

  /** A DNS responder answering 127.0.0.1's PTR with `labels`, and an nginx using it. */
  const proxyWithName = async (labels: readonly Buffer[]): Promise<{ dns: DnsResponder; nginx: Nginx }> => {
    const dns = await setUp(startDnsResponder({ ptr: { [REVERSE]: labels }, a: { '*': '127.0.0.1' } }))
    // ipv6=off: only A questions for the forward check; the timeout bounds a lost answer.
    const nginx = await setUp(startNginx({ set, authHttpPort: recorder.port, secret: SECRET, mailDirectives: [`resolver 127.0.0.1:${dns.port} ipv6=off;`, 'resolver_timeout 5s;'] }))
    return { dns, nginx }
  }

  /** The one auth_http exchange an SMTP session to `rcpt` makes, and what the client heard. */
  const smtpTo = async (t: Test, nginx: Nginx, rcpt: string, subject: string) => {
    const before = recorder.exchanges.length
    const { session, banner } = await SmtpSession.open(nginx.ports.smtp, '127.0.0.1', 30_000)
    try {
      t.equal(banner.code, 220, 'nginx greets')
      t.equal((await session.ehlo()).code, 250)
      t.equal((await session.mailFrom('sender@remote.test')).code, 250)
      const reply = await session.rcptTo(rcpt)
      const exchange = await recorder.nth(before + 1)
      if (reply.code !== 250) return { rcpt: reply, exchange, data: undefined, closed: await session.quit().then(() => false, () => true) }
      const data = await session.data(body(subject))
      await session.quit()
      return { rcpt: reply, exchange, data, closed: false }
    } finally {
      session.close()
    }
  }

  const mailhostdLog = () => m.proc.output()
  const refusedLines = () => m.logs().filter((l) => String(l.msg).startsWith('nginx auth request refused'))
  /** Whether a refusal line matching `ok` appears within 5 s: the answer can reach us before the log line does. */
  const refusalLogged = async (ok: (l: Record<string, unknown>) => boolean) => {
    const deadline = Date.now() + 5_000
    while (!refusedLines().some(ok) && Date.now() < deadline) await sleep(25)
    return refusedLines().some(ok)
  }

  for (const kind of ['crlf', 'control'] as const) {
    await t.test(`a reverse name with ${kind === 'crlf' ? 'CR LF and a header' : 'a control byte'} in a label`, async (t) => {
      const { dns, nginx } = await proxyWithName(NAMES[kind])
      const delivered = (await mx1.messages()).length
      const r = await smtpTo(t, nginx, 'alice@example.org', `${kind} name`)
      await dns.waitFor((q) => q.name === REVERSE && q.type === TYPE.PTR)
      const sent = headerLines(r.exchange.request)
      const hostile = asNginxCopies(NAMES[kind])
      const rawInRequest = r.exchange.request.toString('latin1').includes(hostile)
      if (fixed) {
        t.notOk(rawInRequest, 'the raw name is not in the request nginx wrote')
        // What this nginx does with the name: refuses it and says the client's name is
        // temporarily unavailable, once; mailhostd then routes the session as any other.
        t.same(values(sent, 'client-host'), ['[TEMPUNAVAIL]'], 'Client-Host: [TEMPUNAVAIL], once')
        t.same(values(sent, 'auth-smtp-to'), ['RCPT TO:<alice@example.org>'], 'one Auth-SMTP-To: the client\'s own')
        t.equal(dns.questions.filter((q) => q.type === TYPE.A).length, 0, 'no forward lookup of a refused name')
        const [logged] = await nginx.waitForLog(/\S+ \[error\][^\n]*127\.0\.0\.1 resolved to invalid host name[^\n]*/)
        t.comment(`${set.label}: nginx sent Client-Host ${JSON.stringify(values(sent, 'client-host'))} and logged ${JSON.stringify(logged.replace(/^\S+ \S+ /, ''))}`)
        t.equal(r.rcpt.code, 250, `RCPT accepted by alice's backend (${r.rcpt.lines.join(' ')})`)
        t.equal(r.data?.code, 250)
        const got = await mx1.waitForMessages(delivered + 1)
        t.same(got.at(-1)?.rcptTo, ['alice@example.org'], 'delivered to mx1, alice\'s backend')
        t.same(await mx2.messages(), [], 'nothing reached bob\'s backend')
      } else {
        // An nginx that copies the name raw: mailhostd's refusal reaches the client, which
        // nginx then disconnects; nothing is routed and the name is not echoed.
        t.ok(rawInRequest, 'nginx wrote the raw name into the request')
        t.ok(kind === 'control' || values(sent, 'auth-smtp-to').length === 2, 'so the injected header is a second Auth-SMTP-To')
        t.same([r.rcpt.code, r.rcpt.enhanced, r.rcpt.text], [451, '4.7.0', REFUSAL], 'the client hears mailhostd\'s refusal')
        t.ok(r.closed, 'and nginx closes the session (no Auth-Wait)')
        t.same(await mx2.messages(), [], 'nothing reached bob\'s backend')
        t.equal((await mx1.messages()).length, delivered, 'nor alice\'s')
      }
      t.notMatch(r.exchange.response.toString('latin1'), /evil|bob@|\r\n\r\n[^]/, 'mailhostd\'s answer holds no part of the name and no body')

      // What an nginx without the fix writes for this very session: the recorded request with
      // the raw name as Client-Host. mailhostd refuses it, at the parser (a control byte) or in
      // the route (a second Auth-SMTP-To), with the same headers nginx can show.
      const recorded = r.exchange.request.toString('latin1')
      const withRawName = recorded.replace(/\r\nClient-Host: [^\r\n]*\r\n/, `\r\nClient-Host: ${hostile}\r\n`)
      t.not(withRawName, recorded, 'the recorded request has a Client-Host to replace')
      const answer = await replay(m.ports.http, Buffer.from(withRawName, 'latin1'))
      const answered = headerLines(Buffer.from(answer, 'latin1'))
      t.match(answer, kind === 'control' ? /^HTTP\/1\.1 400 / : /^HTTP\/1\.1 200 /, kind === 'control' ? 'Node\'s parser refuses the control byte' : 'the CR LF arrives as a second header')
      t.same(values(answered, 'auth-status'), [REFUSAL])
      t.same(values(answered, 'auth-error-code'), ['451 4.7.0'])
      t.same(values(answered, 'auth-wait'), [], 'no Auth-Wait: nginx would close the session')
      t.notMatch(answer, /evil|bob@|client\r/, 'nothing of the name comes back')
      t.ok(await refusalLogged((l) => l.level === 'warn' && l.protocol === 'nginx' && (kind === 'control' ? /^HPE_/.test(String(l.code)) : l.header === 'Auth-SMTP-To' && l.reason === 'duplicate')), 'logged at warn, naming the cause')
    })
  }

  await t.test('a clean reverse name is forward-confirmed, sent, and routed', async (t) => {
    const { dns, nginx } = await proxyWithName(NAMES.clean)
    const delivered = (await mx1.messages()).length
    const r = await smtpTo(t, nginx, 'alice@example.org', 'clean name')
    t.same(values(headerLines(r.exchange.request), 'client-host'), ['client.example'], 'Client-Host: the confirmed name')
    t.ok(dns.questions.some((q) => q.name === 'client.example' && q.type === TYPE.A), 'nginx asked for the name\'s address')
    t.same([r.rcpt.code, r.data?.code], [250, 250])
    t.same((await mx1.waitForMessages(delivered + 1)).at(-1)?.rcptTo, ['alice@example.org'])
  })

  await t.test('mailhostd still runs and answers IMAP, POP3 and SMTP through the resolving nginx', async (t) => {
    t.ok(isAlive(m.pid), 'mailhostd is running')
    const { nginx } = await proxyWithName(NAMES.crlf)
    const { session } = await ImapSession.open(nginx.ports.imap)
    const imap = await session.login('alice@example.org', 'not-wonderland')
    session.close()
    t.same([imap.status, imap.text], ['NO', 'Invalid login or password'], 'IMAP: mailhostd\'s own answer')
    const imapSent = headerLines(recorder.exchanges.at(-1)!.request)
    t.same(values(imapSent, 'client-host'), [], 'nginx sends no Client-Host for IMAP: it never resolves IMAP clients')
    const { session: pop } = await Pop3Session.open(nginx.ports.pop3)
    const pop3 = await pop.login('bob@example.org', 'not-builder')
    pop.close()
    t.same([pop3.ok, pop3.text], [false, 'Invalid login or password'], 'POP3: mailhostd\'s own answer')
    const smtp = await smtpTo(t, nginx, 'bob@example.org', 'after')
    if (fixed) {
      t.same([smtp.rcpt.code, smtp.data?.code], [250, 250], 'SMTP to bob routed through the same nginx')
      t.same((await mx2.waitForMessages(1)).at(-1)?.rcptTo, ['bob@example.org'], 'on bob\'s backend')
    } else {
      t.same([smtp.rcpt.code, smtp.rcpt.text], [451, REFUSAL], 'SMTP refused while this nginx sends the raw name')
    }
    t.notMatch(mailhostdLog(), /evil|wonderland|builder|auth-smtp-to: rcpt/i, 'no hostile name and no password in mailhostd\'s log')
  })
})
