// The bench's pure helpers: wire framing of the load generator, key decks, histogram figures,
// profile summaries, log and metrics counting, knobs and report formatting. No peers, no timing.

import t from 'tap'
import { createHistogram } from 'node:perf_hooks'
import { benchConfig, nonDefaultEnv, KNOBS } from '../../bench/config.js'
import { countSearchesFor } from '../../bench/coalescing.js'
import { timeByKind, topFrames, type CpuProfile } from '../../bench/cpu-profile.js'
import { generateDirectory, isAccountKey, keyDeck } from '../../bench/directory.js'
import { summarise } from '../../bench/histogram.js'
import { encodeRequest, takeReply } from '../../bench/load-generator.js'
import { directoryFindCount } from '../../bench/metrics-scrape.js'
import { explain } from '../../bench/profile.js'
import type { HashingResult } from '../../bench/password-hashing.js'
import { HASHING_HEADING, hashingSection, renderReport, spliceHashingSection, table, type BenchResults, type HashingSection } from '../../bench/report.js'
import { coalescingVerdict, floorVerdicts, hashingVerdicts, missVerdict } from '../../bench/targets.js'

t.test('requests are framed as Postfix frames them', async (t) => {
  t.equal(encodeRequest({ port: 1, proto: 'socketmap', map: 'recipient' }, 'a@b.c').toString(), '15:recipient a@b.c,')
  t.equal(encodeRequest({ port: 1, proto: 'tcp_table' }, 'a b%c@d').toString(), 'get a%20b%25c@d\n')
})

t.test('takeReply waits for a whole reply and says how much it used', async (t) => {
  t.equal(takeReply('socketmap', Buffer.from('5:OK a')), undefined)
  t.same(takeReply('socketmap', Buffer.from('4:OK a,2:')), { used: 7, text: 'OK a' })
  t.equal(takeReply('tcp_table', Buffer.from('200 x')), undefined)
  t.same(takeReply('tcp_table', Buffer.from('200 x\n500 y')), { used: 6, text: '200 x' })
})

t.test('a deck holds every warm account once and misses in the asked ratio, in a fixed order', async (t) => {
  const dir = generateDirectory(1000, 100)
  t.equal(dir.warm, 900)
  const deck = keyDeck(dir, 0.9)
  t.equal(deck.hits, 900)
  t.equal(deck.misses, 100)
  t.equal(new Set(deck.keys).size, 1000)
  t.equal(deck.keys.filter(isAccountKey).length, 900)
  t.same(keyDeck(dir, 0.9).keys, deck.keys, 'same seed, same order')
  t.equal(keyDeck(dir, 1).misses, 0)
  const cold = [...dir.coldKeys()]
  t.equal(cold.length, 100)
  t.notOk(cold.some((k) => deck.keys.includes(k)), 'cold keys are never in the deck')
  t.throws(() => generateDirectory(10, 10))
})

t.test('LDIF and SQL describe the same accounts', async (t) => {
  const dir = generateDirectory(3, 1)
  const ldif = dir.ldif()
  t.match(ldif, /dn: uid=user2,ou=people,dc=example,dc=org\n/)
  t.match(ldif, /mail: user1@example.org\nmailLocalAddress: user1@example.org\nmailHost: mx2.example.org\n/)
  t.equal(ldif.match(/^dn: /gm)?.length, 3)
})

t.test('histogram figures are milliseconds', async (t) => {
  const h = createHistogram()
  for (let i = 1; i <= 100; i++) h.record(i * 1_000_000)
  const s = summarise(h)
  t.ok(Math.abs(s.p50 - 50) < 1, `p50 ${s.p50}`)
  t.ok(Math.abs(s.p99 - 99) < 1.5, `p99 ${s.p99}`)
  t.ok(Math.abs(s.max - 100) < 1.5, `max ${s.max}`)
  t.same(summarise(createHistogram()), { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 })
})

const profile: CpuProfile = {
  startTime: 1000,
  nodes: [
    { id: 1, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
    { id: 2, callFrame: { functionName: 'lookup', url: 'file:///srv/mailhostd/dist/resolve/lookup-service.js', lineNumber: 14 } },
    { id: 3, callFrame: { functionName: 'inc', url: 'file:///srv/mailhostd/node_modules/prom-client/lib/counter.js', lineNumber: 39 } },
    { id: 4, callFrame: { functionName: 'writeGeneric', url: 'node:internal/stream_base_commons', lineNumber: 151 } },
    { id: 5, callFrame: { functionName: 'lookup', url: 'file:///srv/mailhostd/dist/resolve/lookup-service.js', lineNumber: 14 } },
  ],
  // Sample times: 1010, 1040, 1060, 1100, 1200.
  samples: [2, 3, 5, 4, 1],
  timeDeltas: [10, 30, 20, 40, 100],
}

t.test('top frames merge call-tree nodes of one function and sort by self time', async (t) => {
  const top = topFrames(profile, 3, '/srv/mailhostd')
  t.same(
    top.map((f) => [f.name, f.selfMs * 1000]),
    [
      ['(idle)', 100],
      ['writeGeneric node:internal/stream_base_commons:152', 40],
      ['lookup dist/resolve/lookup-service.js:15', 30],
    ],
  )
  t.equal(Math.round(top[0]!.percent), 50)
})

t.test('a window keeps only the samples taken inside it', async (t) => {
  const inside = topFrames(profile, 10, '/srv/mailhostd', { fromUs: 1030, toUs: 1100 })
  t.same(inside.map((f) => f.name).sort(), ['inc node_modules/prom-client/lib/counter.js:40', 'lookup dist/resolve/lookup-service.js:15', 'writeGeneric node:internal/stream_base_commons:152'])
  const kinds = timeByKind(profile, { fromUs: 1030, toUs: 1100 })
  t.same(
    kinds.map((k) => k.kind),
    ['Node internals (net, streams, timers)', 'dependency prom-client', 'mailhostd (dist/)'],
  )
})

t.test('the explanation says whether the daemon waited or worked', async (t) => {
  t.match(explain([{ kind: '(idle)', percent: 40 }, { kind: 'mailhostd (dist/)', percent: 60 }]), /idle 40 %.*mailhostd \(dist\/\) 60 %/)
  t.match(explain([{ kind: '(idle)', percent: 5 }, { kind: 'dependency pino', percent: 95 }]), /busy \(5 % idle\).*dependency pino 95 %/)
})

t.test('slapd stats lines are counted per key, other searches not', async (t) => {
  const out = [
    'conn=1001 op=1 BIND dn="cn=mailhostd,ou=services,dc=example,dc=org" method=128',
    'conn=1001 op=2 SRCH base="dc=example,dc=org" scope=2 deref=0 filter="(&(objectClass=inetLocalMailRecipient)(|(mail=alice@example.org)(mailLocalAddress=alice@example.org)))"',
    'conn=1001 op=2 SRCH attr=mailHost mail',
    'conn=1001 op=3 SRCH base="dc=example,dc=org" scope=2 deref=0 filter="(&(objectClass=inetLocalMailRecipient)(|(mail=xalice@example.org)(mailLocalAddress=xalice@example.org)))"',
  ].join('\n')
  t.equal(countSearchesFor(out, 'alice@example.org'), 1)
})

t.test('directory find calls are summed over results from /metrics', async (t) => {
  const text = [
    'mailhostd_directory_call_duration_seconds_count{directory="ldap",operation="find",result="ok"} 3',
    'mailhostd_directory_call_duration_seconds_count{directory="ldap",operation="find",result="error"} 1',
    'mailhostd_directory_call_duration_seconds_count{directory="ldap",operation="ping",result="ok"} 7',
  ].join('\n')
  t.equal(directoryFindCount(text), 4)
})

t.test('knobs come from the environment, with defaults', async (t) => {
  const saved = { ...process.env }
  t.teardown(() => {
    process.env = saved
  })
  delete process.env.BENCH_SECONDS
  process.env.BENCH_CONNECTIONS = '8'
  const c = benchConfig()
  t.equal(c.seconds, KNOBS.seconds.default)
  t.equal(c.connections, 8)
  t.equal(nonDefaultEnv(c), 'BENCH_CONNECTIONS=8 ')
  process.env.BENCH_SECONDS = 'soon'
  t.throws(() => benchConfig(), /BENCH_SECONDS=soon/)
  process.env.BENCH_SECONDS = '0'
  t.throws(() => benchConfig(), /positive/)
  delete process.env.BENCH_SECONDS
  process.env.BENCH_SCALE_ACCOUNTS = '0'
  t.equal(benchConfig().scaleAccounts, 0, '0 skips the scale run')
})

const load = (rps: number, p99: number) => ({ rps, p99, p50: p99 / 2, p90: p99, p999: p99, max: p99, mean: p99 / 2, requests: rps, unexpected: 0, elapsedMs: 1000 })

t.test('verdicts compare with their targets', async (t) => {
  const [share, p99] = floorVerdicts(load(10_000, 0.5), load(9_000, 0.8), 50)
  t.ok(share!.met, '90 % of the floor')
  t.match(share!.measured, /90 %/)
  t.ok(p99!.met)
  t.notOk(floorVerdicts(load(10_000, 0.5), load(7_000, 1.2), 50).some((v) => v.met))
  const lat = (p50: number) => ({ p50, p90: p50, p99: p50, p999: p50, max: p50, mean: p50 })
  t.ok(missVerdict({ keys: 10, direct: lat(1), mailhostd: lat(1.2), unexpected: 0 }).met)
  t.notOk(missVerdict({ keys: 10, direct: lat(1), mailhostd: lat(1.3), unexpected: 0 }).met)
  const c = coalescingVerdict({ lookups: 1000, answered: 1000, slapdSearches: 2, mailhostdFinds: 1, ms: 5 })
  t.notOk(c.met)
  t.ok(c.reason, 'a coalescing miss explains itself, no profile needed')
})

t.test('the report shows each target with its figure and each miss with its profile once', async (t) => {
  const [a, b] = floorVerdicts(load(10_000, 0.5), load(5_000, 2), 50)
  const frames = [{ name: 'writeBuffer', selfMs: 120, percent: 40 }]
  const kinds = [{ kind: 'Node internals (net, streams, timers)', percent: 40 }]
  for (const v of [a!, b!]) Object.assign(v, { reason: 'busy', profile: frames, kinds })
  const results: BenchResults = {
    rows: [{ scenario: 'x', proto: 'socketmap', connections: 50, r: load(5_000, 2) }],
    verdicts: [a!, b!],
    cfg: benchConfig(),
    machine: { cpu: 'Test CPU', cores: 2, ramGiB: 4, kernel: 'Linux 6', node: 'v20', load: 3 },
    command: 'npm run bench',
    elapsedS: 123,
    deck: { keys: ['a', 'b'], hits: 1, misses: 1 },
    accounts: 2,
  }
  const md = renderReport(results)
  t.match(md, /\| cached hits vs floor, 50 connections: throughput \| >= 80 % of the floor \| 50 % \(5,000 vs 10,000 lookups\/s\) \| \*\*missed\*\* \|/)
  t.match(md, /Test CPU, 2 cores, 4 GiB RAM, Linux 6/)
  t.match(md, /busy with other work/)
  t.match(md, /Total run time: 123 s/)
  t.equal(md.match(/`writeBuffer`/g)?.length, 1, 'a shared profile is printed once')
  t.match(md, /Not run \(`BENCH_SCALE_ACCOUNTS=0`\)|## Scale/)
  t.equal(table(['a', 'b'], [[1, 2]]), '| a | b |\n|---|---:|\n| 1 | 2 |')
})

const http = (rps: number) => ({ requests: rps * 5, rps, p50: 50, p99: 120, max: 200, non2xx: 0, errors: 0, mismatches: 0 })
const hashing: HashingResult = {
  connections: 50,
  idle: load(20_000, 2),
  under: [
    { verifications: 8, lookups: load(18_000, 3.9), verify: http(30) },
    { verifications: 32, lookups: load(15_000, 4.5), verify: http(31) },
  ],
  defaultWorkers: 2,
  throughputConnections: 32,
  throughput: [
    { workers: 1, verify: http(16) },
    { workers: 2, verify: http(31) },
  ],
}

t.test('the password hashing targets: lookup p99 under verifications against idle, at most 2x', async (t) => {
  const [eight, many] = hashingVerdicts(hashing)
  t.match(eight, { met: true, target: '<= 2x', measured: '1.95x (3.90 vs 2.00 ms)' })
  t.match(eight!.name, /while 8 Argon2id verifications run/)
  t.match(many, { met: false, measured: '2.25x (4.50 vs 2.00 ms)' })
})

t.test('the password hashing section carries its own machine and command, and replaces only itself', async (t) => {
  const section: HashingSection = {
    result: hashing,
    machine: { cpu: 'Test CPU', cores: 2, ramGiB: 4, kernel: 'Linux 6', node: 'v20', load: 3 },
    command: 'BENCH_ONLY=passwords npm run bench',
    loadAfter: 0.4,
    date: new Date('2026-12-07T10:00:00Z'),
  }
  const md = hashingSection(section)
  t.ok(md.startsWith(`${HASHING_HEADING}\n`))
  t.match(md, /Date: 2026-12-07 10:00 UTC/)
  t.match(md, /Load average at start: 3\.00 \(the machine was busy with other work: figures are noisy\); at the end: 0\.40\n/)
  t.match(md, /Command: `BENCH_ONLY=passwords npm run bench`/)
  t.match(md, /\| while 32 verifications run \| 15,000 \| 2\.25 \| 4\.50 \| 4\.50 \| 4\.50 \| 0 \| 31 \| 0 \|/)
  t.match(md, /\| 2 \(the default: one per core\) \| 31 \|/)
  t.match(md, /\*\*missed\*\*/)

  const page = '# Benchmarks\n\n## Scale\n\nbig\n\n## What the figures mean for sizing a cluster\n\n- notes\n'
  const once = spliceHashingSection(page, md)
  t.ok(once.indexOf(HASHING_HEADING) > once.indexOf('## Scale') && once.indexOf(HASHING_HEADING) < once.indexOf('## What the figures'), 'inserted before the sizing notes')
  const again = spliceHashingSection(once, md.replace('Test CPU', 'Other CPU'))
  t.equal(again.split(HASHING_HEADING).length, 2, 'replaced, not added again')
  t.match(again, /Other CPU/)
  t.notMatch(again, /Test CPU/)
  t.ok(again.startsWith('# Benchmarks\n\n## Scale\n\nbig\n') && again.endsWith('## What the figures mean for sizing a cluster\n\n- notes\n'), 'the rest untouched')
  t.equal(spliceHashingSection('# Short\n', md), `# Short\n\n${md}\n`, 'appended to a page without sizing notes')
  t.match(renderReport({ rows: [], verdicts: [], cfg: benchConfig(), machine: section.machine, command: 'npm run bench', elapsedS: 1, deck: { keys: [], hits: 0, misses: 0 }, accounts: 0, hashing: section }), HASHING_HEADING, 'part of the full report')
})
