// Health probes against real peers of each peer set: smtp-sink speaking SMTP and LMTP, and a
// Dovecot backend (2.3 or 2.4: IMAP, POP3, LMTP) greet and are left politely. Failures: a closed port, a listener that
// accepts and says nothing, and listeners that greet wrongly, too much or not at all (plain
// node:net servers: they stand in for a broken peer, not for a real one).

import t, { type Test } from 'tap'
import { createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { MAX_GREETING_BYTES, probeService, TcpProber } from '../../src/health/probe.js'
import type { ProbedService } from '../../src/resolve/registry.js'
import { DEMO_MAIL_USERS, startDovecot } from '../harness/dovecot.js'
import { freePort } from '../harness/ports.js'
import { startSmtpSink } from '../harness/smtp-sink.js'
import { eachPeerSet } from '../harness/peer-set.js'

const TIMEOUT_MS = 3000
const probe = (service: ProbedService, port: number, timeoutMs = TIMEOUT_MS) => probeService({ service, host: '127.0.0.1', port }, timeoutMs)

/** A broken peer: runs `onConnection` for every client; records what clients sent. */
async function brokenPeer(
  t: Test,
  onConnection: (socket: Socket) => void,
  opts: { allowHalfOpen?: boolean } = {},
): Promise<{ port: number; received: () => string; ended: () => number; open: () => number; closed: () => Promise<void> }> {
  let received = ''
  let ended = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer(opts, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('data', (d) => (received += d.toString('latin1')))
    socket.on('end', () => ended++)
    socket.on('error', () => undefined)
    onConnection(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    server.close()
    await once(server, 'close')
  })
  const closed = async () => {
    const deadline = Date.now() + 5000
    while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    if (sockets.size > 0) throw new Error(`${sockets.size} connection(s) still open`)
  }
  return { port: (server.address() as { port: number }).port, received: () => received, ended: () => ended, open: () => sockets.size, closed }
}

// The peers' own greetings, once per peer set.
eachPeerSet(t, async (t, set) => {
  t.test('smtp-sink: SMTP and LMTP greet with 220; the probe says QUIT', async (t) => {
    for (const lmtp of [false, true]) {
      const sink = await startSmtpSink({ set, lmtp })
      t.teardown(() => sink.stop())
      t.same(await probe('delivery', sink.port), { ok: true }, lmtp ? 'LMTP' : 'SMTP')
      t.same(await new TcpProber(TIMEOUT_MS).probe({ service: 'delivery', host: '127.0.0.1', port: sink.port }), { ok: true }, 'through the prober')
      t.match(await probe('imap', sink.port), { ok: false, reason: /^unexpected greeting: 220 / }, 'a 220 is no IMAP greeting')
      t.match(await probe('pop3', sink.port), { ok: false, reason: /^unexpected greeting: 220 / }, 'nor a POP3 one')
    }
  })

  t.test('a Dovecot backend: IMAP * OK, POP3 +OK, LMTP 220, each left with its logout', async (t) => {
    const d = await startDovecot({ set, role: 'backend', name: 'mx1', users: DEMO_MAIL_USERS.mx1 })
    t.teardown(() => d.stop())
    t.same(await probe('imap', d.ports.imap), { ok: true }, 'imap')
    t.same(await probe('pop3', d.ports.pop3), { ok: true }, 'pop3')
    t.same(await probe('delivery', d.ports.lmtp!), { ok: true }, 'lmtp')
    t.match(await probe('delivery', d.ports.imap), { ok: false, reason: /^unexpected greeting: \* OK/ }, 'IMAP is not a delivery port')
    // Dovecot logs how each client left: the probes said goodbye instead of dropping the line.
    // 2.3: "Disconnected: Aborted login by logging out"; 2.4: "Login aborted: Logged out".
    await d.waitForLog(/imap-login: Info: (Disconnected: Aborted login by logging out|Login aborted: Logged out)/)
    await d.waitForLog(/pop3-login: Info: (Disconnected: Aborted login by logging out|Login aborted: Logged out)/)
    await d.waitForLog(/lmtp\(\d+\): Info: Disconnect from 127\.0\.0\.1: Logged out/)
    t.pass('Dovecot saw the IMAP LOGOUT, the POP3 QUIT and the LMTP QUIT')
  })
})

t.test('nothing listening: connection refused, at once', async (t) => {
  const port = await freePort()
  for (const service of ['delivery', 'imap', 'pop3'] as const) {
    t.same(await probe(service, port), { ok: false, reason: 'connection failed: ECONNREFUSED' }, service)
  }
})

t.test('a listener that accepts and says nothing: no greeting within the timeout, connection closed', async (t) => {
  const peer = await brokenPeer(t, () => undefined)
  t.same(await probe('imap', peer.port, 300), { ok: false, reason: 'no greeting within 300 ms' })
  await t.resolves(peer.closed(), 'the probe closed its connection')
})

t.test('wrong, refusing, split, multi-line and endless greetings', async (t) => {
  const cases: { service: ProbedService; greeting: string | string[]; expect: object; what: string }[] = [
    { service: 'delivery', greeting: '554 5.3.2 too busy\r\n', expect: { ok: false, reason: 'unexpected greeting: 554 5.3.2 too busy' }, what: 'SMTP refusal' },
    { service: 'delivery', greeting: '220-mx.example.org ESMTP\r\n220-second line\r\n220 ready\r\n', expect: { ok: true }, what: 'multi-line 220' },
    { service: 'delivery', greeting: '220-mx.example.org\r\n421 going away\r\n', expect: { ok: false, reason: 'unexpected greeting: 421 going away' }, what: 'a multi-line greeting that turns into 421' },
    { service: 'delivery', greeting: '220\n', expect: { ok: true }, what: 'bare 220 with LF only' },
    { service: 'delivery', greeting: '2200 nonsense\r\n', expect: { ok: false, reason: 'unexpected greeting: 2200 nonsense' }, what: 'not a 220 reply' },
    { service: 'imap', greeting: ['* O', 'K [CAPABILITY IMAP4rev1] ready\r\n'], expect: { ok: true }, what: 'IMAP greeting split over two packets' },
    { service: 'imap', greeting: '* BYE too many connections\r\n', expect: { ok: false, reason: 'unexpected greeting: * BYE too many connections' }, what: 'IMAP BYE' },
    { service: 'imap', greeting: '* PREAUTH logged in\r\n', expect: { ok: false, reason: 'unexpected greeting: * PREAUTH logged in' }, what: 'IMAP PREAUTH' },
    { service: 'pop3', greeting: '-ERR [SYS/TEMP] not now\r\n', expect: { ok: false, reason: 'unexpected greeting: -ERR [SYS/TEMP] not now' }, what: 'POP3 -ERR' },
    { service: 'pop3', greeting: '+OK\r\n', expect: { ok: true }, what: 'bare +OK' },
    {
      service: 'pop3',
      greeting: `\x1b[31m${'x'.repeat(100)}\r\n`,
      expect: { ok: false, reason: `unexpected greeting: ?[31m${'x'.repeat(55)}...` },
      what: 'control characters and length are not logged as sent',
    },
    { service: 'imap', greeting: 'x'.repeat(MAX_GREETING_BYTES + 1), expect: { ok: false, reason: `no complete greeting in ${MAX_GREETING_BYTES} bytes` }, what: 'no line end in 4 KB' },
    { service: 'imap', greeting: 'y'.repeat(1 << 20), expect: { ok: false, reason: `no complete greeting in ${MAX_GREETING_BYTES} bytes` }, what: 'a megabyte at once' },
  ]
  for (const c of cases) {
    const peer = await brokenPeer(t, (socket) => {
      const parts = typeof c.greeting === 'string' ? [c.greeting] : c.greeting
      let i = 0
      const next = () => {
        if (i < parts.length) socket.write(parts[i++]!, () => setTimeout(next, 20))
      }
      next()
    })
    t.same(await probe(c.service, peer.port), c.expect, c.what)
  }
})

t.test('the goodbye follows a good greeting; a peer that then stays open is closed at the timeout', async (t) => {
  // Half-open allowed: the peer neither answers the QUIT nor closes. The probe settles (which it
  // does only once its socket is closed) at the timeout.
  const peer = await brokenPeer(t, (socket) => socket.write('+OK POP3 ready\r\n'), { allowHalfOpen: true })
  t.same(await probe('pop3', peer.port, 300), { ok: true }, 'the verdict stands')
  t.equal(peer.received(), 'QUIT\r\n', 'POP3 QUIT sent')
  t.equal(peer.ended(), 1, 'and the connection ended from the probe side')
  const imap = await brokenPeer(t, (socket) => socket.write('* OK ready\r\n', () => socket.end('* BYE\r\na OK\r\n')))
  t.same(await probe('imap', imap.port), { ok: true })
  t.equal(imap.received(), 'a LOGOUT\r\n', 'IMAP LOGOUT sent')
})

t.test('a peer that closes before greeting, or resets', async (t) => {
  const closing = await brokenPeer(t, (socket) => socket.end())
  t.same(await probe('delivery', closing.port), { ok: false, reason: 'connection closed before the greeting' })
  const resetting = await brokenPeer(t, (socket) => socket.resetAndDestroy())
  t.match(await probe('delivery', resetting.port), { ok: false, reason: /^connection (failed: ECONNRESET|closed before the greeting)$/ })
})

t.test('cancelled: before it starts, and while it waits', async (t) => {
  const aborted = AbortSignal.abort()
  t.same(await probeService({ service: 'imap', host: '127.0.0.1', port: 1 }, 1000, aborted), { ok: false, reason: 'probe cancelled' })
  const peer = await brokenPeer(t, () => undefined)
  const ac = new AbortController()
  const pending = probeService({ service: 'imap', host: '127.0.0.1', port: peer.port }, 60_000, ac.signal)
  while (peer.open() === 0) await new Promise((r) => setTimeout(r, 10))
  ac.abort()
  t.same(await pending, { ok: false, reason: 'probe cancelled' })
})

t.test('an address nobody answers: no connection within the timeout', async (t) => {
  // TEST-NET-1 (RFC 5737) is never routed to a host; where the network says so at once
  // (EHOSTUNREACH, ENETUNREACH) the probe fails with that instead.
  const r = await probeService({ service: 'imap', host: '192.0.2.1', port: 143 }, 300)
  t.match(r, { ok: false, reason: /^(no connection within 300 ms|connection failed: E\w+|no greeting within 300 ms)$/ })
})
