// docs/benchmarks.md from one run's results: the targets with their measured figures, the
// tables, the machine, the command, the knobs, and what the figures mean for sizing a
// cluster. Pure (results in, markdown out) so its formatting is unit-tested.

import { cpus, loadavg, release, totalmem } from 'node:os'
import type { CoalescingResult } from './coalescing.js'
import { WASM } from './cpu-profile.js'
import { KNOBS, type BenchConfig, type KnobName } from './config.js'
import type { KeyDeck } from './directory.js'
import type { HttpResult } from './http-load.js'
import type { LoadResult } from './load-generator.js'
import type { MissPathResult } from './miss-path.js'
import type { HashingResult } from './password-hashing.js'
import type { PeerResult } from './postfix-peer.js'
import type { PooledLookupsResult } from './pooled-lookups.js'
import type { RoundsSummary } from './rounds.js'
import type { ScaleResult } from './scale.js'
import { hashingVerdicts, poolVerdict, WORKLOAD_NOTES, type Verdict } from './targets.js'

export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly ramGiB: number
  readonly kernel: string
  readonly node: string
  /** 1-minute load average when the run started: above 0.5 per core, other work shared the machine. */
  readonly load: number
}

export function machine(): Machine {
  const c = cpus()
  return {
    cpu: c[0]?.model ?? 'unknown CPU',
    cores: c.length,
    ramGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `Linux ${release()}`,
    node: process.version,
    load: loadavg()[0] ?? 0,
  }
}

export interface Row {
  readonly scenario: string
  readonly proto: string
  readonly connections: number
  readonly r: LoadResult
}

export interface BenchResults {
  readonly rows: readonly Row[]
  readonly verdicts: readonly Verdict[]
  readonly floor?: { floor: LoadResult; mailhostd: LoadResult; connections: number }
  readonly peer?: PeerResult
  readonly miss?: MissPathResult
  readonly coalescing?: CoalescingResult
  readonly http?: { verify: HttpResult; nginx: HttpResult; connections: number }
  /** passdb verify against the SQL directory on PostgreSQL. */
  readonly httpSql?: HttpResult
  readonly scale?: ScaleResult
  /** The password hashing section, with the machine and command it ran with. */
  readonly hashing?: HashingSection
  /** The pooled-lookups section (issue 15), with the machine and command it ran with. */
  readonly pools?: PoolsSection
  readonly cfg: BenchConfig
  readonly machine: Machine
  readonly command: string
  readonly elapsedS: number
  readonly deck: KeyDeck
  readonly accounts: number
}

const n0 = (x: number) => Math.round(x).toLocaleString('en')
const f2 = (x: number) => x.toFixed(2)
const f3 = (x: number) => x.toFixed(3)

export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[], rightFrom = 1): string {
  const align = head.map((_, i) => (i >= rightFrom ? '---:' : '---'))
  return [`| ${head.join(' | ')} |`, `|${align.join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

function targetsSection(verdicts: readonly Verdict[]): string {
  const t = table(
    ['comparison', 'target', 'measured', 'result'],
    verdicts.map((v) => [v.name, v.target, v.measured, v.met ? 'met' : '**missed**']),
    4,
  )
  const missed = verdicts.filter((v) => !v.met)
  if (missed.length === 0) return `${t}\n\nEvery target was met in this run.`
  const profiled = new Set<string>()
  const parts = missed.map((v) => {
    const lines = [
      `### Missed: ${v.name}`,
      '',
      `Measured ${v.measured}; target ${v.target}.`,
      '',
      `What the workload does: ${WORKLOAD_NOTES[v.workload]}`,
      '',
      `Reason (from the profile): ${v.reason ?? 'not determined'}.`,
    ]
    if (v.kinds?.length && profiled.has(v.workload)) {
      lines.push('', `Profile: the ${v.workload} workload's, above.`)
      return lines.join('\n')
    }
    profiled.add(v.workload)
    if (v.kinds?.length) {
      lines.push('', `Profile (\`node --cpu-prof\` on the daemon under this workload), time by kind:`, '')
      lines.push(table(['kind', 'share of samples'], v.kinds.filter((k) => k.percent >= 0.5).map((k) => [k.kind, `${k.percent.toFixed(1)} %`])))
    }
    if (v.profile?.length) {
      lines.push('', 'Top frames by self time:', '')
      lines.push(table(['frame', 'self ms', 'share'], v.profile.map((f) => [`\`${f.name}\``, f.selfMs.toFixed(0), `${f.percent.toFixed(1)} %`])))
    }
    return lines.join('\n')
  })
  return `${t}\n\n${parts.join('\n\n')}`
}

function loadTable(rows: readonly Row[]): string {
  return table(
    ['scenario', 'protocol', 'conns', 'lookups/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'requests', 'unexpected'],
    rows.map(({ scenario, proto, connections, r }) => [scenario, proto, connections, n0(r.rps), f2(r.p50), f2(r.p99), f2(r.p999), f2(r.max), n0(r.requests), r.unexpected]),
    2,
  )
}

function comparisonsSection(b: BenchResults): string {
  const out: string[] = []
  if (b.floor) {
    const { floor, mailhostd, connections } = b.floor
    out.push(
      `### Floor: constant-answer Node socketmap server vs mailhostd, cached hits, ${connections} connections`,
      '',
      table(
        ['server', 'lookups/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms'],
        [
          ['floor (bench/floor-server.mjs)', n0(floor.rps), f2(floor.p50), f2(floor.p99), f2(floor.p999), f2(floor.max)],
          ['mailhostd (LDAP directory, every key cached)', n0(mailhostd.rps), f2(mailhostd.p50), f2(mailhostd.p99), f2(mailhostd.p999), f2(mailhostd.max)],
        ],
      ),
    )
  }
  if (b.peer) {
    const p = b.peer
    out.push(
      '',
      `### Postfix's ldap: table vs mailhostd's socketmap: \`postmap -q - MAP\` over ${n0(p.ldap.keys)} warm keys, same slapd (median of 3 alternating rounds)`,
      '',
      table(
        ['map', 'keys', 'found', 'wall ms', 'keys/s'],
        [
          ['ldap:bench/ldap-recipient.cf', n0(p.ldap.keys), n0(p.ldap.found), n0(p.ldap.ms), n0(p.ldap.keysPerSecond)],
          ['socketmap:inet:...:recipient', n0(p.mailhostd.keys), n0(p.mailhostd.found), n0(p.mailhostd.ms), n0(p.mailhostd.keysPerSecond)],
        ],
      ),
      '',
      `Keys answered differently by the two maps: ${p.disagreements}.`,
    )
  }
  if (b.miss) {
    const m = b.miss
    out.push(
      '',
      `### Miss path: ${n0(m.keys)} never-asked keys, one at a time, each asked of both`,
      '',
      table(
        ['path', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms'],
        [
          ['direct ldapts search (bound connection)', f3(m.direct.p50), f3(m.direct.p90), f3(m.direct.p99), f3(m.direct.mean)],
          ['mailhostd cache miss (socketmap, round trip)', f3(m.mailhostd.p50), f3(m.mailhostd.p90), f3(m.mailhostd.p99), f3(m.mailhostd.mean)],
        ],
      ),
    )
  }
  if (b.coalescing) {
    const c = b.coalescing
    out.push(
      '',
      '### Coalescing: concurrent lookups of one cold key, each on its own connection',
      '',
      table(
        ['lookups', 'answered with the route', 'searches in slapd stats log', 'directory finds in /metrics', 'burst ms'],
        [[n0(c.lookups), n0(c.answered), c.slapdSearches, c.mailhostdFinds, n0(c.ms)]],
        0,
      ),
    )
  }
  if (b.http) {
    const { verify, nginx, connections } = b.http
    const r = (name: string, h: HttpResult) => [name, n0(h.rps), f2(h.p50), f2(h.p99), f2(h.max), n0(h.requests), h.non2xx, h.errors]
    out.push(
      '',
      `### HTTP login endpoints (autocannon, ${connections} connections), route cached, every password checked by the directory`,
      '',
      table(
        ['endpoint', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'requests', 'non-2xx', 'errors'],
        [
          r('POST /v1/dovecot/passdb/verify, LDAP (bind as the user)', verify),
          r('GET /v1/nginx/auth, LDAP (bind as the user)', nginx),
          ...(b.httpSql ? [r('POST /v1/dovecot/passdb/verify, SQL on PostgreSQL', b.httpSql)] : []),
        ],
      ),
    )
  }
  return out.join('\n')
}

function scaleSection(s: ScaleResult): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`
  return [
    table(
      ['figure', 'value'],
      [
        ['accounts in slapd', n0(s.accounts)],
        ['addresses cached by the warm-up', `${n0(s.warmup.loaded)} of ${n0(s.warmup.total)} (${s.warmup.failed} failed)`],
        ['warm-up time', `${s.warmupSeconds.toFixed(1)} s`],
        ['daemon RSS without / with the whole set cached', `${mib(s.rssBeforeBytes)} / ${mib(s.rssAfterBytes)}`],
        ['RSS per cached entry', `${n0(s.rssBytesPerEntry)} bytes`],
        ['V8 heap per cached entry', `${n0(s.heapBytesPerEntry)} bytes`],
        [`lookups/s over ${n0(s.load.distinctKeys)} random keys, ${s.load.connections} connections`, n0(s.load.rps)],
        ['p50 / p99 / max', `${f2(s.load.p50)} / ${f2(s.load.p99)} / ${f2(s.load.max)} ms`],
        ['directory queries during the load (0: all cached)', n0(s.directoryLookupsDuringLoad)],
        ['unexpected replies', n0(s.load.unexpected)],
      ],
      2,
    ),
    '',
    `Phases (s): ${Object.entries(s.phases).map(([k, v]) => `${k} ${v}`).join('; ')}.`,
  ].join('\n')
}

export interface HashingSection {
  readonly result: HashingResult
  readonly machine: Machine
  readonly command: string
  /** 1-minute load average when the section ended. */
  readonly loadAfter: number
  readonly date: Date
}

/** The heading that starts the password hashing section; BENCH_ONLY=passwords replaces what follows it. */
export const HASHING_HEADING = '## Password hashing off the event loop (issue 13)'

const loadNote = (load: number, cores: number) => (load > 0.5 * cores ? ' (the machine was busy with other work: figures are noisy)' : '')

/** The password hashing section, whole: it carries its own date, machine and command. */
export function hashingSection(s: HashingSection): string {
  const { result: h, machine: m } = s
  const lookupRow = (what: string, r: LoadResult, verify?: HttpResult) => [what, n0(r.rps), f2(r.p50), f2(r.p99), f2(r.p999), f2(r.max), r.unexpected, verify ? n0(verify.rps) : '-', verify ? verify.mismatches + verify.non2xx + verify.errors : '-']
  const verifyRow = (workers: number, v: HttpResult) => [workers === 1 ? '1' : `${workers} (the default: one per core)`, n0(v.rps), f2(v.p50), f2(v.p99), f2(v.max), n0(v.requests), v.mismatches + v.non2xx + v.errors]
  const verdicts = hashingVerdicts(h)
  return `${HASHING_HEADING}

Written by \`npm run bench\`, or alone by \`BENCH_ONLY=passwords npm run bench\`
(bench/password-hashing.ts), which replaces only this section.

- Date: ${s.date.toISOString().slice(0, 16).replace('T', ' ')} UTC
- Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.kernel}; Node.js ${m.node}
- Load average at start: ${m.load.toFixed(2)}${loadNote(m.load, m.cores)}; at the end: ${s.loadAfter.toFixed(2)}${loadNote(s.loadAfter, m.cores)}
- Command: \`${s.command}\`

${table(['comparison', 'target', 'measured', 'result'], verdicts.map((v) => [v.name, v.target, v.measured, v.met ? 'met' : '**missed**']), 4)}

Cached socketmap lookups (${h.connections} connections, one request outstanding each) on one daemon with
the default pool (${h.defaultWorkers} worker threads), SQL directory on PGlite; the verifications are
\`POST /v1/dovecot/passdb/verify\` of an account whose password is \`{ARGON2ID}\` at the default
cost (m=19456 KiB, t=2, p=1), each connection sending the next as soon as it has its answer:

${table(['lookups', 'lookups/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'unexpected', 'verifications/s meanwhile', 'verifications not ok'], [lookupRow('idle (no logins)', h.idle), ...h.under.map((u) => lookupRow(`while ${u.verifications} verifications run`, u.lookups, u.verify))], 1)}

Argon2id verify throughput (${h.throughputConnections} connections, no lookups), \`passwords.workers\` 1 against the default:

${table(['worker threads', 'verifications/s', 'p50 ms', 'p99 ms', 'max ms', 'requests', 'not ok'], h.throughput.map((x) => verifyRow(x.workers, x.verify)), 1)}

The worker threads run at a lower priority than the daemon's event loop (\`passwords.niceness\`,
+10 by default, on Linux), so when lookups and hashes compete for the cores, lookups win and the
verifications slow down; a verification still waiting at \`lookup.deadline\` (3 s) is answered
with a temporary failure ("not ok" above). The load generator and autocannon run in the bench
process on the same cores. Beyond \`passwords.maxQueue\` (64) waiting checks a login would get a
temporary failure at once; no run here reaches it.`
}

/** `page` with its password hashing section replaced by `section` (inserted before the sizing notes if it had none). */
export function spliceHashingSection(page: string, section: string): string {
  return spliceSection(page, HASHING_HEADING, section)
}

/**
 * `page` with the section under `heading` (up to the next \`## \` heading) replaced by `section`,
 * or inserted before the sizing notes if it had none (appended to a page without them).
 */
export function spliceSection(page: string, heading: string, section: string): string {
  const start = page.indexOf(`${heading}\n`)
  if (start !== -1) {
    const next = page.indexOf('\n## ', start + heading.length)
    return `${page.slice(0, start)}${section}\n${next === -1 ? '' : page.slice(next)}`
  }
  const sizing = page.indexOf('## What the figures mean')
  if (sizing === -1) return `${page.trimEnd()}\n\n${section}\n`
  return `${page.slice(0, sizing)}${section}\n\n${page.slice(sizing)}`
}

export interface PoolsSection {
  readonly result: PooledLookupsResult
  readonly machine: Machine
  readonly command: string
  /** 1-minute load average when the section ended. */
  readonly loadAfter: number
  readonly date: Date
}

/** The heading that starts the pooled-lookups section; BENCH_ONLY=pools replaces what follows it. */
export const POOLS_HEADING = '## Pooled lookups: shared-storage pools (issue 15)'

/** The pooled-lookups section, whole: it carries its own date, machine and command. */
export function poolsSection(s: PoolsSection): string {
  const { result: p, machine: m } = s
  const cpuOf = (proto: string) => p.profile.byProto.find((x) => x.proto === proto) ?? { plainUs: 0, pooledUs: 0 }
  const verdicts = p.cached.map((x) => poolVerdict(x.proto, x.plain, x.pooled, cpuOf(x.proto)))
  const coldRow = (what: string, cost: string, r: RoundsSummary) => [what, cost, n0(r.rps), f2(r.p50), f2(r.p99), r.unexpected]
  const cachedRows = p.cached.flatMap((x) => {
    const ratio = x.plain.rps / x.pooled.rps
    return [
      [x.proto, 'plain (mx1)', n0(x.plain.rps), f2(x.plain.p50), f2(x.plain.p99), n0(x.plain.requests), x.plain.unexpected, cpuOf(x.proto).plainUs.toFixed(1), '-'],
      [x.proto, `pooled (${p.members} members)`, n0(x.pooled.rps), f2(x.pooled.p50), f2(x.pooled.p99), n0(x.pooled.requests), x.pooled.unexpected, cpuOf(x.proto).pooledUs.toFixed(1), `${ratio >= 1 ? '+' : ''}${(100 * (ratio - 1)).toFixed(1)} %`],
    ]
  })
  const roundRows = p.cached.flatMap((x) => x.rounds.map((r, i) => [x.proto, Math.floor(i / 2) + 1, r.kind, n0(r.r.rps), f2(r.r.p50), f2(r.r.p99), f2(r.r.max), r.load.toFixed(2)]))
  const out = [
    `${POOLS_HEADING}

Written by \`npm run bench\`, or alone by \`BENCH_ONLY=pools npm run bench\`
(bench/pooled-lookups.ts), which replaces only this section.

- Date: ${s.date.toISOString().slice(0, 16).replace('T', ' ')} UTC
- Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.kernel}; Node.js ${m.node}
- Load average at start: ${m.load.toFixed(2)}${loadNote(m.load, m.cores)}; at the end: ${s.loadAfter.toFixed(2)}${loadNote(s.loadAfter, m.cores)}
- Command: \`${s.command}\`

${table(['comparison', 'target', 'measured', 'result'], verdicts.map((v) => [v.name, v.target, v.measured, v.met ? 'met' : '**missed**']), 4)}

One daemon, SQL directory on PGlite (the embedded store, which also holds the pins), with
${n0(p.accounts)} accounts: half on the plain backend mx1, half on a pool of ${p.members} members of equal
weight (example addresses, health checks off as in the demo, so every member counts as up).
Every load run has ${p.connections} connections with one request outstanding each, like Postfix.

First lookups, ${p.cold.plain.rounds} rotating rounds of ${n0(p.cold.keysPerRound)} never-asked keys each (median round). A pooled
user's first lookup on an instance claims a pin in the store: one atomic statement, which is not
what the target compares but what a user costs once per \`pinFor\` of inactivity:

${table(['first lookup of', 'what it costs the daemon', 'lookups/s', 'p50 ms', 'p99 ms', 'unexpected'], [
      coldRow('a plain user', 'a directory query', p.cold.plain),
      coldRow('a pooled user', 'a directory query and a pin claim', p.cold.pooled),
      coldRow('a pooled user whose directory answer is cached', 'a pin claim', p.cold.claim),
    ], 2)}

Cached transport lookups: every key asked once before, so every answer is in the cache and every
pooled user holds a pin on this instance; plain keys (${n0(p.accounts - Math.floor(p.accounts / 2))}) and pooled keys
(${n0(Math.floor(p.accounts / 2))}) in alternating rounds of ${p.seconds} s, ${p.cached[0]?.plain.rounds ?? 0} rounds each (median round):

${table(['protocol', 'users', 'lookups/s', 'p50 ms', 'p99 ms', 'requests', 'unexpected', 'daemon CPU µs per lookup', 'throughput cost vs plain'], cachedRows, 2)}

The target compares the daemon's CPU time per lookup (from its CPU profile: samples not idle
during each kind's rounds, over the lookups those rounds answered), which is what a pooled answer
costs the daemon. Throughput is shown beside it: the load generator runs on the same two cores, so
a round's lookups/s also moves with whatever else the machine does.

During the cached rounds the daemon counted ${n0(p.during.pinned)} pooled lookups answered from a local pin,
${n0(p.during.claimed)} pin claims and ${n0(p.during.failed)} failed claims (0 claims: no cached round reached the store
on the lookup path). A cached pooled answer costs, beyond a plain one, one read of the local pin
(a map lookup; the member's health is checked again only when the registry changed), a plain
count, and the pin ledger's refresh: a touched pin is confirmed in the store once per slice of
its pinFor (a tenth, at most a minute), in one batched UPDATE per second, which PGlite runs
inside the daemon's process.

Every round, in the order they ran (load average: the machine's 1-minute figure at the end of the run):

${table(['protocol', 'round', 'users', 'lookups/s', 'p50 ms', 'p99 ms', 'max ms', 'load average'], roundRows, 3)}`,
  ]
  const f = p.profile
  const kinds = [...new Set([...f.plain.kinds, ...f.pooled.kinds].map((k) => k.kind))]
  const share = (list: { kind: string; percent: number }[], kind: string) => list.find((x) => x.kind === kind)?.percent ?? 0
  const store = (list: { kind: string; percent: number }[]) => share(list, WASM) + share(list, 'dependency @electric-sql/pglite')
  out.push(`### Where a pooled lookup's time goes

The daemon ran under \`node --cpu-prof\` throughout; the samples taken during the plain rounds
(${n0(f.plain.lookups)} lookups) and during the pooled rounds (${n0(f.pooled.lookups)} lookups), both protocols. The daemon's
CPU time per lookup (samples not idle, over lookups answered): ${f.plain.busyUs.toFixed(1)} µs plain, ${f.pooled.busyUs.toFixed(1)} µs pooled
(${f.pooled.busyUs >= f.plain.busyUs ? '+' : ''}${(100 * (f.pooled.busyUs / f.plain.busyUs - 1)).toFixed(1)} %); the load generator shares the cores, so throughput tracks this only roughly.
Plain: ${f.plain.reason}. Pooled: ${f.pooled.reason}.

${table(['time by kind', 'plain rounds', 'pooled rounds'], kinds.filter((k) => share(f.plain.kinds, k) >= 0.5 || share(f.pooled.kinds, k) >= 0.5).map((k) => [k, `${share(f.plain.kinds, k).toFixed(1)} %`, `${share(f.pooled.kinds, k).toFixed(1)} %`]))}

The embedded store (PGlite: its JavaScript and its WebAssembly, the only WebAssembly on the
daemon's main thread) took ${store(f.pooled.kinds).toFixed(1)} % of the samples of the pooled rounds and ${store(f.plain.kinds).toFixed(1)} % of the plain ones${
    p.during.claimed === 0
      ? ':\nno cached lookup claimed a pin, so that is the pin ledger\'s background work, the batched refresh\nof touched pins due for confirmation (and the sweep of expired pins each minute).'
      : '.'
  }

Frames whose self time per lookup grew most from the plain rounds to the pooled ones:

${table(['frame', 'plain µs per lookup', 'pooled µs per lookup', 'difference µs'], f.extra.map((x) => [`\`${x.name}\``, x.aUs.toFixed(2), x.bUs.toFixed(2), (x.bUs - x.aUs).toFixed(2)]))}`)
  return out.join('\n\n')
}

function sizingSection(b: BenchResults): string {
  const cached = b.floor?.mailhostd
  const out = [
    '- **Cached lookups** cost only mailhostd. ' +
      (cached
        ? `One instance answered ${n0(cached.rps)} lookups/s with p99 ${f2(cached.p99)} ms on this machine while sharing its ${b.machine.cores} cores with the load generator. `
        : '') +
      'A Postfix relay makes a few table lookups per recipient (transport, relay_recipient, virtual alias), so divide by about 3 for recipients per second. ' +
      'The floor is what any Node socket server reaches on this machine; the share of it mailhostd reaches is the price of its own work per request (decoding, canonicalising the address, the cache, metrics). ' +
      'With every connection holding one request, the mean latency is connections / throughput (Little\'s law): more Postfix processes asking at once raise latency, not throughput, once an instance is saturated' +
      (b.floor ? `; at ${b.floor.connections} connections the floor itself answered with p99 ${f2(b.floor.floor.p99)} ms.` : '.'),
    '- **First lookups and misses** cost a directory query: the first-pass rows and the miss path show what the directory adds. ' +
      'Size the directory for the miss rate (new addresses, expired entries: about entries / cache.ttl per second), not for the total lookup rate.',
    "- **Against Postfix's own ldap: table**, every lookup is a round trip to slapd and slapd's CPU; with mailhostd a warm lookup never reaches slapd, so the directory can be sized for misses alone.",
    '- **Coalescing** means a burst for one address (a mailing list fan-in, a cold start) costs one directory query, not one per connection.',
    '- **Login endpoints** check every password with the directory (a bind per login by default): the HTTP row is the rate one instance sustains including that bind; it is the figure to compare with the peak login rate of the proxies it serves.',
    '- **Stale answers** keep mail flowing at cached speed while the directory is down, for up to cache.maxStale.',
    '- **Memory**: the scale run gives the RSS per cached entry; multiply by the number of addresses (accounts, alternates, aliases) to size cache.maxEntries and the instance.',
    '- Instances share nothing but PostgreSQL: to scale out, run more of them behind the same Postfix/Dovecot configuration.',
  ]
  return out.join('\n')
}

export function renderReport(b: BenchResults): string {
  const m = b.machine
  const busy = m.load > 0.5 * m.cores
  const knobs = table(
    ['variable', 'default', 'this run', 'meaning'],
    (Object.entries(KNOBS) as [KnobName, (typeof KNOBS)[KnobName]][]).map(([name, k]) => [`\`${k.env}\``, k.default, b.cfg[name], k.meaning]),
    1,
  )
  return `# Benchmarks

Written by \`npm run bench\` (bench/run.ts and its modules in bench/); rerun it to replace this
page. Figures are only comparable on the same machine; ratios measured side by side in one run
matter more than absolutes.

- Date: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC
- Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.kernel}
- Node.js ${m.node}
- Load average at start: ${m.load.toFixed(2)}${busy ? ' (the machine was busy with other work: figures are noisy)' : ''}
- Command: \`${b.command}\`
- Total run time: ${b.elapsedS.toFixed(0)} s (from the bench process's start; npm's prebench install and build not included)

## Targets (issue 7)

${targetsSection(b.verdicts)}

## Lookups by directory

Keys drawn from a generated directory of ${n0(b.accounts)} accounts: ${n0(b.deck.hits)} existing
addresses and ${n0(b.deck.misses)} unknown addresses in a served domain (${(100 * b.deck.hits / Math.max(1, b.deck.keys.length)).toFixed(0)} % hits),
shuffled. "First pass" asks each key once (every request a directory query); "warm" cycles
through them again (every answer from the cache, misses from the negative cache).

${loadTable(b.rows)}

## Comparisons

${comparisonsSection(b)}

## Scale

${b.scale ? scaleSection(b.scale) : `Not run (\`${KNOBS.scaleAccounts.env}=0\`).`}

${b.hashing ? `${hashingSection(b.hashing)}\n\n` : ''}${b.pools ? `${poolsSection(b.pools)}\n\n` : ''}## What the figures mean for sizing a cluster

${sizingSection(b)}

## Method

- The built daemon (\`dist/main.js\`) runs as its own process with the demo cluster's domains
  and backends and log level info (the default), as does the floor server; the load
  generator runs in the bench process on the same machine, so they share its cores.
- Socketmap and tcp_table load (bench/load-generator.ts) behaves like Postfix: persistent
  connections, one outstanding request each, bounded by duration and by request count;
  latency is measured at the client per request into an HDR histogram (\`perf_hooks\`).
- Peers (slapd, PostgreSQL) are throwaway instances started by test/harness on loopback
  ports and stopped by PID. LDAP runs use four service connections to slapd.
- The floor (bench/floor-server.mjs) answers every socketmap request with one constant reply
  and does nothing else: no Node daemon on this machine can answer faster.
- The Postfix comparison runs \`postmap -q - MAP < keys\` (one process, one connection, keys
  one at a time) against Postfix's ldap: table with the query mailhostd makes
  (bench/ldap-recipient.cf) and against mailhostd's \`recipient\` socketmap; each is run once
  untimed first so both are warm, then three timed rounds alternate and the median counts.
- The miss path asks each never-asked key of mailhostd and directly of slapd (ldapts, the
  same filter, attributes and limits as LdapDirectory), alternating which goes first.
- Coalescing opens one connection per lookup, sends the same cold key on all of them at
  once, and counts the searches slapd logged (\`-d stats\`) and mailhostd's directory calls.
- Stale answers: a daemon with a 1 s TTL is warmed, slapd is killed, and the same keys are
  asked again past their TTL.
- A missed target gets a \`node --cpu-prof\` run of the daemon under that target's workload
  (bench/profile.ts); its top frames by self time are listed with the miss.

## Settings

${knobs}
`
}
