// Acceptance: SIGTERM during load loses no in-flight answer. Eight persistent connections
// (socketmap and tcp_table) send requests one after another, as Postfix processes do, with the
// cache TTL at 0 so every request really asks the directory; SIGTERM arrives mid-load.
//
// "Loses no answer" precisely: every request the daemon read gets its complete answer before
// the connection closes. From outside that shows as: each request sent either got a complete,
// correct reply, or the connection was closed with no byte of a reply (the daemon never read
// it: a client then retries elsewhere or after the restart, as Postfix does); never a truncated
// reply; and the daemon's own count of answered lookups (one debug line each) equals the
// replies the clients received. The process exits 0. Loops are bounded in count and time.

import t from 'tap'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { Client } from '../server/client.js'
import { demoClusterConfig } from './demo-table.js'

const KEYS = [
  ['alice@example.org', 'lmtp:inet:[10.0.0.11]:24'],
  ['bob@example.org', 'lmtp:inet:[10.0.0.12]:24'],
  ['nobody@example.org', undefined],
] as const
const MAX_REQUESTS_PER_CONNECTION = 20_000
const LOAD_BOUND_MS = 30_000

interface Tally {
  answered: number
  /** The connection closed before any byte of the reply: the request was never read. */
  notAccepted: number
  truncated: string[]
  wrong: string[]
}

function correct(kind: 'socketmap' | 'tcp', found: string | undefined, reply: string): boolean {
  if (kind === 'socketmap') return reply === (found === undefined ? 'NOTFOUND ' : `OK ${found}`)
  return found === undefined ? reply.startsWith('500 ') : reply === `200 ${found}`
}

async function load(port: number, kind: 'socketmap' | 'tcp', tally: Tally, deadline: number): Promise<'closed' | 'bounded'> {
  const c = await Client.connect(port)
  try {
    for (let i = 0; i < MAX_REQUESTS_PER_CONNECTION && Date.now() < deadline; i++) {
      const [key, found] = KEYS[i % KEYS.length]!
      const payload = Buffer.from(`transport ${key}`)
      c.write(kind === 'socketmap' ? Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]) : `get ${key}\n`)
      let reply: string
      try {
        reply = kind === 'socketmap' ? await c.readNetstring(15_000) : await c.readLine(15_000)
      } catch (e) {
        if (c.buffered.length === 0 && (await c.closesWithin(1000))) {
          tally.notAccepted++
          return 'closed'
        }
        tally.truncated.push(`${kind} ${key}: ${(e as Error).message}`)
        return 'closed'
      }
      if (!correct(kind, found, reply)) tally.wrong.push(`${kind} ${key}: ${reply}`)
      tally.answered++
    }
    return 'bounded'
  } finally {
    c.destroy()
  }
}

t.test('SIGTERM under load: every request read is answered, then exit 0', async (t) => {
  const m = await startMailhostd(
    { ...demoClusterConfig(), directory: { type: 'sql' }, cache: { ttl: '0s', negativeTtl: '0s' }, limits: { shutdownGrace: '10s' } },
    { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
  )
  t.teardown(() => m.stop())
  const tally: Tally = { answered: 0, notAccepted: 0, truncated: [], wrong: [] }
  const deadline = Date.now() + LOAD_BOUND_MS
  const loops = [
    ...Array.from({ length: 4 }, () => load(m.ports.socketmap, 'socketmap', tally, deadline)),
    ...Array.from({ length: 4 }, () => load(m.ports.transport, 'tcp', tally, deadline)),
  ]

  // Mid-load: once a few hundred answers have gone out.
  while (tally.answered < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  t.ok(tally.answered >= 300, `load running (${tally.answered} answers)`)
  process.kill(m.pid, 'SIGTERM')
  const ends = await Promise.all(loops)
  const code = await m.proc.exited

  t.same(ends, Array(8).fill('closed'), 'every connection was closed by the daemon, none ran into the bound')
  t.same(tally.truncated, [], 'no truncated or missing reply to a request that was read')
  t.same(tally.wrong, [], 'every reply correct')
  const served = m.logs().filter((l) => l.msg === 'lookup' && (l.protocol === 'socketmap' || l.protocol === 'tcp_table')).length
  t.equal(served, tally.answered, `every lookup the daemon answered reached its client (${served} answered, ${tally.notAccepted} sent after draining began and never read)`)
  t.equal(code, 0, 'exit status 0')
  t.match(m.proc.output(), /stopping: finishing in-flight requests/)
})
