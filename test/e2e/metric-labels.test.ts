// Acceptance (issue 13, item 1): names a peer makes up never become metric label values. The
// built daemon gets 2,000 distinct unknown map names on the socketmap port, 2,000 more through
// /v1/lookup and 2,000 unknown policy_context values on the policy port; /metrics must hold
// exactly the series it held before them (each kind counted under one "(unknown)" value), and
// none of the names. Counted in series, not time or bytes.

import t from 'tap'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { Client } from '../server/client.js'
import { policyRequest, readAction } from '../server/policy-client.js'
import { Scrape, scrape } from '../ops/prom.js'
import { demoClusterConfig } from './demo-table.js'

const NAMES = 2000
const UNKNOWN = '(unknown)'

/** The mailhostd_ series in a scrape: its sample lines, one per label set. */
async function series(port: number): Promise<{ lines: string[]; scrape: Scrape; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  return { lines: text.split('\n').filter((l) => l.startsWith('mailhostd_')), scrape: new Scrape(text), text }
}

function socketmapRequest(map: string, key: string): Buffer {
  const payload = Buffer.from(`${map} ${key}`)
  return Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')])
}

t.test('unknown map names and policy contexts share one label value', async (t) => {
  const m = await startMailhostd({ ...demoClusterConfig(), directory: { type: 'sql' } }, { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] })
  t.teardown(() => m.stop())
  const http = m.ports.http
  const made = (kind: string, i: number) => `made-up-${kind}-${i}`

  // One of each first, so the series the made-up names may use exist before the baseline.
  const sm = await Client.connect(m.ports.socketmap)
  const pol = await Client.connect(m.ports.policy)
  t.teardown(() => (sm.destroy(), pol.destroy()))
  const askPolicy = (context: string) =>
    policyRequest({ request: 'smtpd_access_policy', protocol_state: 'RCPT', recipient: 'alice@example.org', policy_context: context, instance: context })
  sm.write(socketmapRequest('nosuchmap', 'alice@example.org'))
  t.match(await sm.readNetstring(10_000), /^PERM unknown map/)
  t.equal((await fetch(`http://127.0.0.1:${http}/v1/lookup?map=nosuchmap&key=alice@example.org`)).status, 200)
  pol.write(askPolicy('nosuchcontext'))
  t.match(await readAction(pol, 10_000), /^DEFER_IF_PERMIT 4\.3\.5 /)
  const before = await series(http)

  // 2,000 names on one socketmap connection, pipelined as a client that invents names would.
  sm.write(Buffer.concat(Array.from({ length: NAMES }, (_, i) => socketmapRequest(made('map', i), 'alice@example.org'))))
  const smReplies: string[] = []
  for (let i = 0; i < NAMES; i++) smReplies.push(await sm.readNetstring(30_000))
  t.same(smReplies.filter((r) => !r.startsWith('PERM unknown map')), [], `${NAMES} socketmap answers: PERM unknown map`)

  // 2,000 through /v1/lookup, eight at a time.
  let next = 0
  const wrong: string[] = []
  const worker = async () => {
    for (let i = next++; i < NAMES; i = next++) {
      const res = await fetch(`http://127.0.0.1:${http}/v1/lookup?map=${made('http', i)}&key=alice@example.org`, { signal: AbortSignal.timeout(15_000) })
      const body = (await res.json()) as { outcome: string }
      if (res.status !== 200 || body.outcome !== 'perm') wrong.push(`${i}: ${res.status} ${JSON.stringify(body)}`)
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  t.same(wrong, [], `${NAMES} /v1/lookup answers: perm`)

  // 2,000 policy contexts naming no rule set.
  pol.write(Buffer.concat(Array.from({ length: NAMES }, (_, i) => askPolicy(made('context', i)))))
  const actions: string[] = []
  for (let i = 0; i < NAMES; i++) actions.push(await readAction(pol, 30_000))
  t.same(actions.filter((a) => !a.startsWith('DEFER_IF_PERMIT 4.3.5 ')), [], `${NAMES} policy answers: DEFER_IF_PERMIT 4.3.5`)

  const after = await series(http)
  t.comment(`/metrics: ${before.lines.length} mailhostd_ series and ${before.text.length} bytes before, ${after.lines.length} and ${after.text.length} after`)
  t.same(after.lines.length, before.lines.length, `as many mailhostd_ series as before (${before.lines.length})`)
  const newSeries = after.lines.map((l) => l.replace(/ [^ ]+$/, '')).filter((s) => !before.lines.some((b) => b.startsWith(`${s} `)))
  t.same(newSeries, [], 'no new series')
  t.notOk(after.text.includes('made-up-'), 'no made-up name anywhere in /metrics')
  const moved = (name: string, labels: Record<string, string>) => after.scrape.value(name, labels) - before.scrape.value(name, labels)
  t.equal(moved('mailhostd_lookups_total', { protocol: 'socketmap', map: UNKNOWN, outcome: 'perm' }), NAMES, 'socketmap names counted under (unknown)')
  t.equal(moved('mailhostd_lookups_total', { protocol: 'http', map: UNKNOWN, outcome: 'perm' }), NAMES, '/v1/lookup names counted under (unknown)')
  t.equal(moved('mailhostd_policy_decisions_total', { rule_set: UNKNOWN, result: 'defer' }), NAMES, 'policy contexts counted under (unknown)')

  // Real names keep their own label values.
  sm.write(socketmapRequest('transport', 'alice@example.org'))
  t.match(await sm.readNetstring(10_000), /^OK lmtp:/)
  const last = await scrape(http)
  t.equal(last.value('mailhostd_lookups_total', { protocol: 'socketmap', map: 'transport', outcome: 'found' }), 1, 'a real map is its own label value')

  // The one error line about unknown contexts is throttled as one topic, not one per name.
  const contextLines = m.logs().filter((l) => l.msg === 'policy_context names no rule set in policy.ruleSets; deferring')
  t.ok(contextLines.length <= 2, `unknown contexts logged at most once a minute (${contextLines.length} lines)`)
})
