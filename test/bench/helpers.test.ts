// The bench's pure helpers: wire framing of the load generator, key decks, histogram figures,
// profile summaries, log and metrics counting, knobs, rounds and report formatting. No peers, no timing.

import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHistogram } from 'node:perf_hooks'
import { benchConfig, nonDefaultEnv, KNOBS } from '../../bench/config.js'
import { countSearchesFor } from '../../bench/coalescing.js'
import { busyUsPerLookup, extraCostPerLookup, mainThreadProfile, mergeWasmFrames, timeByKind, WASM, topFrames, type CpuProfile } from '../../bench/cpu-profile.js'
import { generateDirectory, isAccountKey, keyDeck } from '../../bench/directory.js'
import { summarise } from '../../bench/histogram.js'
import { encodeRequest, takeReply } from '../../bench/load-generator.js'
import { directoryFindCount } from '../../bench/metrics-scrape.js'
import { explain } from '../../bench/profile.js'
import type { HashingResult } from '../../bench/password-hashing.js'
import { isPooledAccount, poolBackend, poolKeys, routeReply, writePoolAccountsSql } from '../../bench/pool-directory.js'
import type { PooledLookupsResult } from '../../bench/pooled-lookups.js'
import { HASHING_HEADING, hashingSection, POOLS_HEADING, poolsSection, renderReport, spliceHashingSection, spliceSection, table, type BenchResults, type HashingSection, type PoolsSection } from '../../bench/report.js'
import { median, roundOrder, summariseRounds } from '../../bench/rounds.js'
import { coalescingVerdict, floorVerdicts, hashingVerdicts, missVerdict, poolVerdict } from '../../bench/targets.js'

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

t.test('the pooled-lookups accounts: half plain, half pooled, each half in a fixed shuffled order', async (t) => {
  const keys = poolKeys(10)
  t.equal(keys.plain.length, 5)
  t.equal(keys.pooled.length, 5)
  t.same([...keys.plain].sort(), ['user0@example.org', 'user2@example.org', 'user4@example.org', 'user6@example.org', 'user8@example.org'])
  t.ok(keys.pooled.every((k) => isPooledAccount(Number(/\d+/.exec(k)![0]))), 'odd accounts are pooled')
  t.same(poolKeys(10), keys, 'same seed, same order')
  t.notSame(poolKeys(1000).pooled.slice(0, 10), poolKeys(1000).pooled.slice().sort().slice(0, 10), 'shuffled')
  const dir = mkdtempSync(join(tmpdir(), 'bench-helpers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sql = readFileSync(writePoolAccountsSql(dir, 10), 'utf8')
  t.match(sql, /when i % 2 = 1 then 'pool1\.example\.org' else 'mx1\.example\.org'/)
  t.match(sql, /generate_series\(0, 9\)/)
  t.match(poolBackend(), { id: 'pool1', kind: 'pool', mailHosts: ['pool1.example.org'], members: [{ id: 'pm1' }, { id: 'pm2' }, { id: 'pm3' }] })
})

t.test('route replies tell a plain answer from a pooled one, per protocol', async (t) => {
  t.match('OK lmtp:inet:[10.0.0.11]:24', routeReply('socketmap', false))
  t.notMatch('OK lmtp:inet:[10.0.0.21]:24', routeReply('socketmap', false))
  t.match('OK lmtp:inet:[10.0.0.23]:24', routeReply('socketmap', true))
  t.notMatch('OK lmtp:inet:[10.0.0.11]:24', routeReply('socketmap', true))
  t.notMatch('TEMP backend unavailable (unpinned)', routeReply('socketmap', true))
  t.match('200 lmtp:inet:[10.0.0.22]:24', routeReply('tcp_table', true))
  t.notMatch('200 lmtp:inet:[10.0.0.22]:24', routeReply('socketmap', true))
})

t.test('rounds rotate which workload goes first; their summary is the median round', async (t) => {
  t.same(roundOrder(3, ['a', 'b']), [['a', 'b'], ['b', 'a'], ['a', 'b']])
  t.same(roundOrder(3, ['a', 'b', 'c']), [['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b']])
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(median([]), 0)
  const s = summariseRounds([load(100, 2), { ...load(300, 6), unexpected: 1 }, load(200, 4)])
  t.same(s, { rps: 200, p50: 2, p99: 4, requests: 600, unexpected: 1, rounds: 3 })
})

t.test('the pooled target: the daemon CPU per lookup within 10 % of plain', async (t) => {
  const plain = summariseRounds([load(10_000, 2)])
  const met = poolVerdict('socketmap', plain, summariseRounds([load(8_800, 2.2)]), { plainUs: 50, pooledUs: 54.35 })
  t.ok(met.met, '54.35 / 50 = +8.7 %, whatever the throughput says (+13.6 %)')
  t.match(met.measured, /^\+8\.7 % \(54\.4 vs 50\.0 µs; throughput 8,800 vs 10,000 lookups\/s, \+13\.6 % by round medians; p99 2\.20 vs 2\.00 ms\)$/)
  t.equal(met.target, '<= +10 %')
  t.match(met.name, /daemon CPU per lookup/)
  t.notOk(poolVerdict('socketmap', plain, plain, { plainUs: 50, pooledUs: 55.6 }).met, '+11.2 %')
  t.match(poolVerdict('tcp_table', plain, plain, { plainUs: 50, pooledUs: 47.6 }).measured, /^-4\.8 %/)
  t.notOk(poolVerdict('socketmap', plain, summariseRounds([{ ...load(10_000, 2), unexpected: 3 }]), { plainUs: 50, pooledUs: 50 }).met, 'unexpected answers miss')
  t.notOk(poolVerdict('socketmap', plain, plain, { plainUs: 0, pooledUs: 50 }).met, 'no plain samples: no verdict of met')
})

t.test('the profile of the main thread is the one read, not the hashing workers\'', async (t) => {
  const files = ['CPU.20261207.173436.1407.1.002.cpuprofile', 'CPU.20261207.173436.1407.0.001.cpuprofile', 'notes.txt']
  t.equal(mainThreadProfile(files), 'CPU.20261207.173436.1407.0.001.cpuprofile')
  t.throws(() => mainThreadProfile([]), /found none/)
  t.throws(() => mainThreadProfile([files[1]!, 'CPU.20261207.173500.1500.0.001.cpuprofile']), /one process/)
})

t.test('extra cost per lookup compares frames by self time per lookup answered', async (t) => {
  const a = { frames: [{ name: 'write', selfMs: 100, percent: 50 }, { name: 'decide', selfMs: 10, percent: 5 }], lookups: 10_000 }
  const b = { frames: [{ name: 'write', selfMs: 90, percent: 40 }, { name: 'decide', selfMs: 18, percent: 8 }, { name: 'refreshPins', selfMs: 27, percent: 12 }], lookups: 9_000 }
  t.equal(busyUsPerLookup([...a.frames, { name: '(idle)', selfMs: 500, percent: 45 }], a.lookups), 11, 'idle is no cost')
  const idle = { name: '(idle)', selfMs: 900, percent: 40 }
  t.notOk(extraCostPerLookup({ ...a, frames: [...a.frames, { ...idle, selfMs: 1 }] }, { ...b, frames: [...b.frames, idle] }, 10).some((x) => x.name === '(idle)'), 'idle is not listed')
  const extra = extraCostPerLookup(a, b, 2)
  t.same(
    extra.map((x) => [x.name, x.aUs, x.bUs]),
    [
      ['refreshPins', 0, 3],
      ['decide', 1, 2],
    ],
  )
})

t.test('the pooled-lookups section says what it measured and replaces only itself', async (t) => {
  const sum = (rps: number, p99: number) => summariseRounds([load(rps, p99)])
  const result: PooledLookupsResult = {
    accounts: 20_000,
    members: 3,
    connections: 50,
    seconds: 5,
    cold: { keysPerRound: 500, plain: sum(800, 90), pooled: sum(600, 120), claim: sum(1_500, 40) },
    cached: [
      { proto: 'socketmap', rounds: [{ kind: 'plain', r: load(10_000, 4), load: 8.5 }, { kind: 'pooled', r: load(8_000, 5), load: 8.7 }], plain: sum(10_000, 4), pooled: sum(8_000, 5) },
      { proto: 'tcp_table', rounds: [{ kind: 'pooled', r: load(9_500, 4), load: 8.1 }, { kind: 'plain', r: load(10_000, 4), load: 8.2 }], plain: sum(10_000, 4), pooled: sum(9_500, 4) },
    ],
    during: { claimed: 0, pinned: 120_000, failed: 0 },
    profile: {
      plain: { kinds: [{ kind: 'mailhostd (dist/)', percent: 30 }], lookups: 30_000, busyUs: 80, reason: 'busy' },
      pooled: { kinds: [{ kind: 'mailhostd (dist/)', percent: 25 }, { kind: 'dependency @electric-sql/pglite', percent: 12 }], lookups: 24_000, busyUs: 100, reason: 'busy' },
      extra: [{ name: 'refreshPins dist/pools/pins-repo.js:70', aUs: 0, bUs: 4 }],
      byProto: [
        { proto: 'socketmap', plainUs: 80, pooledUs: 100 },
        { proto: 'tcp_table', plainUs: 80, pooledUs: 84.24 },
      ],
    },
  }
  const section: PoolsSection = {
    result,
    machine: { cpu: 'Test CPU', cores: 2, ramGiB: 4, kernel: 'Linux 6', node: 'v20', load: 8.4 },
    command: 'BENCH_ONLY=pools npm run bench',
    loadAfter: 9.1,
    date: new Date('2026-12-07T18:00:00Z'),
  }
  const md = poolsSection(section)
  t.ok(md.startsWith(`${POOLS_HEADING}\n`))
  t.match(md, /Load average at start: 8\.40 \(the machine was busy with other work: figures are noisy\); at the end: 9\.10/)
  t.match(md, /\| cached socketmap transport lookup, pooled user vs plain user \(daemon CPU per lookup\) \| <= \+10 % \| \+25\.0 % .* \| \*\*missed\*\* \|/)
  t.match(md, /\| cached tcp_table transport lookup, pooled user vs plain user \(daemon CPU per lookup\) \| <= \+10 % \| \+5\.3 % .* \| met \|/)
  t.match(md, /\| a pooled user whose directory answer is cached \| a pin claim \| 1,500 \|/)
  t.match(md, /\| socketmap \| pooled \(3 members\) \| 8,000 \| .* \| \+25\.0 % \|/)
  t.match(md, /120,000 pooled lookups answered from a local pin,\n0 pin claims/)
  t.match(md, /\| tcp_table \| 1 \| pooled \| 9,500 \| .* \| 8\.10 \|/)
  t.match(md, /dependency @electric-sql\/pglite \| 0\.0 % \| 12\.0 %/)
  t.match(md, /`refreshPins dist\/pools\/pins-repo\.js:70` \| 0\.00 \| 4\.00 \| 4\.00/)
  t.match(md, /80\.0 µs plain, 100\.0 µs pooled\n\(\+25\.0 %\)/)
  t.match(md, /took 12\.0 % of the samples of the pooled rounds and 0\.0 % of the plain ones:\nno cached lookup claimed a pin/)

  const page = `# Benchmarks\n\n${HASHING_HEADING}\n\nhashes\n\n## What the figures mean for sizing a cluster\n\n- notes\n`
  const once = spliceSection(page, POOLS_HEADING, md)
  t.ok(once.indexOf(POOLS_HEADING) > once.indexOf('hashes') && once.indexOf(POOLS_HEADING) < once.indexOf('## What the figures'), 'inserted before the sizing notes')
  const again = spliceSection(once, POOLS_HEADING, md.replace('Test CPU', 'Other CPU'))
  t.equal(again.split(POOLS_HEADING).length, 2, 'replaced, not added again')
  t.notMatch(again, /Test CPU/)
  t.match(again, /hashes/, 'the hashing section untouched')
  t.match(renderReport({ rows: [], verdicts: [], cfg: benchConfig(), machine: section.machine, command: 'npm run bench', elapsedS: 1, deck: { keys: [], hits: 0, misses: 0 }, accounts: 0, pools: section }), POOLS_HEADING, 'part of the full report')
})

t.test('WebAssembly is a kind of its own, and its functions one frame', async (t) => {
  const wasmProfile: CpuProfile = {
    startTime: 0,
    nodes: [
      { id: 1, callFrame: { functionName: 'wasm-function[923]', url: 'wasm://wasm/022a9842', lineNumber: 0 } },
      { id: 2, callFrame: { functionName: 'wasm-function[12]', url: 'wasm://wasm/022a9842', lineNumber: 0 } },
      { id: 3, callFrame: { functionName: 'lookup', url: 'file:///srv/mailhostd/dist/resolve/lookup-service.js', lineNumber: 14 } },
    ],
    samples: [1, 2, 3, 1],
    timeDeltas: [10, 20, 30, 40],
  }
  t.same(timeByKind(wasmProfile), [
    { kind: WASM, percent: 70 },
    { kind: 'mailhostd (dist/)', percent: 30 },
  ])
  const merged = mergeWasmFrames(topFrames(wasmProfile, 10, '/srv/mailhostd'))
  t.same(
    merged.map((f) => [f.name, f.selfMs * 1000]),
    [
      [`${WASM}: all 2 functions`, 70],
      ['lookup dist/resolve/lookup-service.js:15', 30],
    ],
  )
  t.equal(mergeWasmFrames([]).length, 0)
})
