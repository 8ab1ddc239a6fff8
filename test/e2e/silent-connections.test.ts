// Acceptance (issue 13, item 2) against the built daemon, with real Postfix as the client that
// must still be served:
// - 1,100 connections that never send a byte, from one address, take at most
//   limits.maxConnectionsPerClient (512) slots of a listener; from eleven addresses they fill it
//   (1,024), and the oldest of them make room for new ones. Either way `postmap -q` (socketmap,
//   tcp_table) and Postfix's smtpd (policy) get their answers meanwhile.
// - The HTTP listener takes at most limits.maxConnections too: beyond it silent connections are
//   closed, and real requests are served.
// - With the shipped defaults, a connection that completes no request within
//   limits.firstRequestTimeout (5 s) is closed: on every line listener, and on HTTP a silent
//   connection and one trickling its headers (408). Before, they held their slot for the
//   30-minute idle timeout (HTTP: Node's own 60 s and more).
// Loopback only: the floods come from 127.0.0.2 and 127.0.1.x, the real clients from 127.0.0.1.

import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { eachPeerSet, type PeerSet } from '../harness/peer-set.js'
import { postmapQuery, ROOT, socketmap, startMailhostd, tcp, type Mailhostd } from '../harness/mailhostd.js'
import { startPostfix } from '../harness/postfix.js'
import { SmtpSession } from '../harness/smtp-client.js'
import { scrape } from '../ops/prom.js'
import { DEMO_ROUTES, demoClusterConfig } from './demo-table.js'

const FLOOD = 1100
const MAX_CONNECTIONS = 1024 // limits.maxConnections' default
const PER_CLIENT = 512 // limits.maxConnectionsPerClient's default

interface Flood {
  readonly size: number
  /** Sockets the server has closed (refused, made room with, or timed out). */
  closed(): number
  /** Bytes the server sent on any of them. */
  received(): number
  destroy(): void
}

/** `count` connections to `port` that never send anything, the i-th from `from(i)`. */
async function silentFlood(port: number, count: number, from: (i: number) => string): Promise<Flood> {
  const sockets: Socket[] = []
  let closed = 0
  let received = 0
  const open = (i: number) =>
    new Promise<void>((resolve) => {
      const s = connect({ port, host: '127.0.0.1', localAddress: from(i) })
      sockets.push(s)
      s.on('data', (d: Buffer) => (received += d.length))
      s.on('error', () => undefined)
      s.once('close', () => {
        closed++
        resolve()
      })
      s.once('connect', () => resolve())
    })
  for (let i = 0; i < count; i += 100) await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, j) => open(i + j)))
  return { size: count, closed: () => closed, received: () => received, destroy: () => sockets.forEach((s) => s.destroy()) }
}

const oneAddress = () => '127.0.0.2'
/** Eleven addresses, 100 connections each: every one under the per-client cap. */
const elevenAddresses = (i: number) => `127.0.1.${1 + (i % 11)}`

async function openConnections(m: Mailhostd, listener: string): Promise<number> {
  return (await scrape(m.ports.http)).value('mailhostd_open_connections', { listener })
}

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Postfix's smtpd asks the policy listener at RCPT: nobody is refused by it, alice accepted. */
async function policyThroughPostfix(t: Test, set: PeerSet, policyPort: number): Promise<void> {
  // A fresh Postfix each time: its smtpd keeps a policy connection for minutes, and the point
  // is a new connection made while the flood holds the listener.
  const pf = await startPostfix({
    set,
    mainCf: {
      relay_domains: 'example.org',
      mynetworks: '',
      smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service { inet:127.0.0.1:${policyPort}, timeout=10s }`,
    },
  })
  try {
    const { session, banner } = await SmtpSession.open(pf.smtpPort)
    try {
      t.equal(banner.code, 220)
      t.equal((await session.ehlo()).code, 250)
      t.equal((await session.mailFrom('sender@client.test')).code, 250)
      const nobody = await session.rcptTo('nobody@example.org')
      t.same([nobody.code, nobody.enhanced], [550, '5.1.1'], `policy: nobody refused by mailhostd (${nobody.lines.join(' ')})`)
      t.equal((await session.rcptTo('alice@example.org')).code, 250, 'policy: alice accepted')
    } finally {
      session.close()
    }
  } finally {
    await pf.stop()
  }
}

eachPeerSet(t, async (t, set) => {
  t.test('silent connections do not lock real clients out', async (t) => {
    // The floods must outlast each check: first requests get a minute here (the defaults are
    // checked below), and so do HTTP requests (Node's header timeout is at most requestTimeout).
    const m = await startMailhostd(
      { ...demoClusterConfig(), directory: { type: 'sql' }, limits: { firstRequestTimeout: '60s', requestTimeout: '60s' } },
      { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
    )
    t.teardown(() => m.stop())

    const listeners = [
      {
        name: 'socketmap',
        port: m.ports.socketmap,
        ask: async (t: Test) => {
          const r = await postmapQuery(socketmap(m.ports.socketmap, 'transport'), 'alice@example.org', set)
          t.same({ code: r.code, out: r.stdout.trim() }, { code: 0, out: DEMO_ROUTES.mx1 }, 'postmap -q through socketmap answered')
        },
      },
      {
        name: 'tcp_table transport',
        port: m.ports.transport,
        ask: async (t: Test) => {
          const r = await postmapQuery(tcp(m.ports.transport), 'alice@example.org', set)
          t.same({ code: r.code, out: r.stdout.trim() }, { code: 0, out: DEMO_ROUTES.mx1 }, 'postmap -q through tcp_table answered')
        },
      },
      { name: 'policy', port: m.ports.policy, ask: (t: Test) => policyThroughPostfix(t, set, m.ports.policy) },
    ]

    for (const l of listeners) {
      await t.test(`${l.name}: ${FLOOD} silent connections from one address`, async (t) => {
        const flood = await silentFlood(l.port, FLOOD, oneAddress)
        t.teardown(() => flood.destroy())
        await waitFor(() => flood.closed() >= FLOOD - PER_CLIENT, 10_000, 'the connections beyond the per-client cap to be closed')
        t.equal(await openConnections(m, l.name), PER_CLIENT, `the address holds ${PER_CLIENT} slots, no more`)
        await l.ask(t)
        t.equal(flood.received(), 0, 'the flood got no byte')
      })
      await waitFor(async () => (await openConnections(m, l.name)) === 0, 10_000, `${l.name} to be empty again`)

      await t.test(`${l.name}: ${FLOOD} silent connections from eleven addresses`, async (t) => {
        const flood = await silentFlood(l.port, FLOOD, elevenAddresses)
        t.teardown(() => flood.destroy())
        await waitFor(() => flood.closed() >= FLOOD - MAX_CONNECTIONS, 10_000, 'the connections beyond the cap to be closed')
        t.equal(await openConnections(m, l.name), MAX_CONNECTIONS, 'the listener is full')
        await l.ask(t)
        t.ok((await openConnections(m, l.name)) <= MAX_CONNECTIONS, 'and never beyond its cap')
        t.equal(flood.received(), 0, 'the flood got no byte')
      })
      await waitFor(async () => (await openConnections(m, l.name)) === 0, 10_000, `${l.name} to be empty again`)
    }

    await t.test(`http: ${FLOOD} silent connections`, async (t) => {
      const flood = await silentFlood(m.ports.http, FLOOD, elevenAddresses)
      t.teardown(() => flood.destroy())
      // Well before any timeout here (a minute): only the cap can close them this soon.
      await waitFor(() => flood.closed() >= FLOOD - MAX_CONNECTIONS, 10_000, `at most ${MAX_CONNECTIONS} silent HTTP connections to stay open`)
      t.ok(flood.size - flood.closed() <= MAX_CONNECTIONS, `${flood.size - flood.closed()} of them open`)
      const res = await fetch(`http://127.0.0.1:${m.ports.http}/v1/lookup?map=transport&key=alice@example.org`, { signal: AbortSignal.timeout(10_000) })
      t.equal(res.status, 200, 'a real request is served')
      t.match(await res.json(), { outcome: 'found', value: DEMO_ROUTES.mx1 })
      t.ok((await openConnections(m, 'http')) <= MAX_CONNECTIONS, 'the HTTP listener counts its connections, within the cap')
      t.equal(flood.received(), 0, 'the flood got no byte')
    })
  })
})

t.test('connections that complete no request are closed soon (shipped defaults)', async (t) => {
  const m = await startMailhostd({ ...demoClusterConfig(), directory: { type: 'sql' } }, { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] })
  t.teardown(() => m.stop())
  // The bound is far below what held them before (30 minutes; HTTP: Node's 60 s header timeout,
  // checked every 30 s) and far above the 5 s default.
  const BOUND_MS = 45_000

  const lines = await Promise.all(
    [m.ports.socketmap, m.ports.transport, m.ports.recipient, m.ports.policy].map((port) => silentFlood(port, 3, () => '127.0.0.1')),
  )
  t.teardown(() => lines.forEach((f) => f.destroy()))
  const silentHttp = await silentFlood(m.ports.http, 3, () => '127.0.0.1')
  t.teardown(() => silentHttp.destroy())

  // A client trickling its headers, one line a second: each line is activity, none completes them.
  const slow = connect({ port: m.ports.http, host: '127.0.0.1' })
  t.teardown(() => slow.destroy())
  let slowReply = ''
  let slowClosed = false
  slow.on('data', (d: Buffer) => (slowReply += d.toString('latin1')))
  slow.on('error', () => undefined)
  slow.once('close', () => (slowClosed = true))
  slow.write('GET /healthz HTTP/1.1\r\nHost: mailhostd\r\n')
  let n = 0
  const trickle = setInterval(() => slow.write(`X-Slow-${n++}: x\r\n`), 1000)
  t.teardown(() => clearInterval(trickle))

  await waitFor(() => lines.every((f) => f.closed() === 3), BOUND_MS, 'the silent line connections to be closed')
  t.same(
    lines.map((f) => f.received()),
    [0, 0, 0, 0],
    'socketmap, tcp_table transport and recipient, policy: closed without a byte',
  )
  await waitFor(() => silentHttp.closed() === 3, BOUND_MS, 'the silent HTTP connections to be closed')
  await waitFor(() => slowClosed, BOUND_MS, 'the slow-header HTTP client to be closed')
  clearInterval(trickle)
  t.match(slowReply, /^HTTP\/1\.1 408 /, 'the slow-header client gets 408 Request Timeout')
  t.notMatch(slowReply, /200 OK/, 'and never an answer')

  // A real client still gets its answers on every listener.
  const r = await postmapQuery(socketmap(m.ports.socketmap, 'transport'), 'alice@example.org')
  t.equal(r.stdout.trim(), DEMO_ROUTES.mx1, 'postmap -q afterwards')
  t.equal((await fetch(`http://127.0.0.1:${m.ports.http}/healthz`)).status, 200, '/healthz afterwards')
})
