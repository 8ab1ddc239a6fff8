// npm run bench: every figure of issue 7 in one run, written to docs/benchmarks.md.
//   1. lookups per directory (SQL on PGlite, SQL on PostgreSQL, LDAP on slapd): the first pass
//      over the mixed keys (every key a directory query), then warm, socketmap and tcp_table;
//   2. the comparisons with their targets: floor, Postfix's ldap: table, miss path,
//      coalescing, HTTP passdb verify (and nginx auth_http beside it);
//   3. stale answers while slapd is dead;
//   4. the million-account scale run (bench/scale.ts);
//   5. a `node --cpu-prof` run for each missed target;
//   6. issue 13's password hashing figures (bench/password-hashing.ts): cached-lookup latency
//      while Argon2id verifications run, and verify throughput by pool size;
//   7. issue 15's pooled lookups (bench/pooled-lookups.ts): first and cached lookups of users
//      on a shared-storage pool against users on a plain backend.
// BENCH_ONLY=passwords or BENCH_ONLY=pools runs only that section and replaces only its part of
// docs/benchmarks.md.
// Every run is bounded in time and count, on loopback, with peers the harness starts and stops
// by PID. Knobs: bench/config.ts (printed in the report).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, type Mailhostd } from '../test/harness/mailhostd.js'
import { startPostgres } from '../test/harness/postgres.js'
import { startSlapd, type Slapd } from '../test/harness/slapd.js'
import { checkCoalescing } from './coalescing.js'
import { benchConfig, nonDefaultEnv } from './config.js'
import { DEMO_SQL, LOGIN, LOGIN_SECRET, ldapDirectory, startDaemon } from './daemons.js'
import { generateDirectory, isAccountKey, keyDeck, type KeyDeck } from './directory.js'
import { startFloor } from './floor.js'
import { nginxAuth, passdbVerify, runHttpLoad } from './http-load.js'
import { runLoad, type LoadResult, type LoadTarget } from './load-generator.js'
import { compareMissPath } from './miss-path.js'
import { comparePeer } from './postfix-peer.js'
import { profileWorkloads, type ProfileContext } from './profile.js'
import { passwordHashingBench } from './password-hashing.js'
import { pooledLookupsBench } from './pooled-lookups.js'
import { hashingSection, machine, poolsSection, POOLS_HEADING, renderReport, spliceHashingSection, spliceSection, type BenchResults, type HashingSection, type PoolsSection, type Row } from './report.js'
import { scaleBench, type ScaleResult } from './scale.js'
import { coalescingVerdict, floorVerdicts, httpVerdict, missVerdict, peerVerdict, scaleVerdict, type Verdict } from './targets.js'

/** Sections that can run alone (BENCH_ONLY): each rewrites only its own part of docs/benchmarks.md. */
const ALONE = ['passwords', 'pools'] as const
const only = process.env.BENCH_ONLY || undefined
if (only !== undefined && !(ALONE as readonly string[]).includes(only)) throw new Error(`BENCH_ONLY=${only}: sections that run alone: ${ALONE.join(', ')}`)

/** What the sections fill in as they run. */
type Collected = { -readonly [K in 'floor' | 'peer' | 'miss' | 'coalescing' | 'http' | 'httpSql' | 'scale']?: BenchResults[K] }

const FOUND = /^(OK |200 )/
const FOUND_OR_MISS = /^(OK |200 |NOTFOUND |500 )/
// performance.now() counts from the process's start, so the times include loading the TypeScript.
const elapsedS = () => performance.now() / 1000
const cfg = benchConfig()
const log = (line: string) => process.stderr.write(`[${elapsedS().toFixed(0).padStart(4)} s] ${line}\n`)
/** Longest untimed warm-up of a deck's remaining keys, in seconds (a slow directory stops it early). */
const WARM_UP_CAP_S = 10
/** Keys the stale run caches before slapd dies (a sample: it measures serving, not warming). */
const STALE_KEYS = 2000
const bounded = { durationMs: cfg.seconds * 1000, maxRequests: cfg.maxRequests }

// Misses and the coalescing key stay cold: the last accounts are never asked before.
const dir = generateDirectory(cfg.accounts, cfg.missKeys)
const mixed = keyDeck(dir, cfg.hitRatio)
const work = mkdtempSync(join(tmpdir(), 'mailhostd-bench-'))
const rows: Row[] = []

function row(scenario: string, proto: string, r: LoadResult, connections: number): LoadResult {
  rows.push({ scenario, proto, connections, r })
  log(`${scenario} ${proto}: ${Math.round(r.rps)} lookups/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${r.unexpected ? `, ${r.unexpected} unexpected (${r.sample})` : ''}`)
  return r
}

const httpBounds = () => ({ connections: cfg.connections, durationMs: bounded.durationMs, maxRequests: bounded.maxRequests })
const socketmapOf = (m: Mailhostd, map = 'transport'): LoadTarget => ({ port: m.ports.socketmap, proto: 'socketmap', map })
const tcpTableOf = (m: Mailhostd): LoadTarget => ({ port: m.ports.transport, proto: 'tcp_table' })

/**
 * First pass over the deck (every key a cache miss: a directory query), timed; then the rest of
 * the deck asked untimed (bounded too) so the warm runs find their keys cached; then warm runs
 * per protocol over the keys now cached. Returns those keys.
 */
async function directorySuite(name: string, m: Mailhostd, deck: KeyDeck): Promise<string[]> {
  const c = cfg.connections
  const first = row(`${name}, first pass (each key a directory query)`, 'socketmap', await runLoad(socketmapOf(m), { ...bounded, connections: c, keys: deck.keys, maxRequests: deck.keys.length, expect: FOUND_OR_MISS }), c)
  let warmed = first.requests
  if (warmed < deck.keys.length) {
    const rest = deck.keys.slice(warmed)
    const r = await runLoad(socketmapOf(m), { durationMs: WARM_UP_CAP_S * 1000, maxRequests: rest.length, connections: c, keys: rest, expect: FOUND_OR_MISS })
    warmed += r.requests
    log(`${name}: warmed ${warmed} of ${deck.keys.length} keys`)
  }
  const keys = deck.keys.slice(0, warmed)
  row(`${name}, warm`, 'socketmap', await runLoad(socketmapOf(m), { ...bounded, connections: c, keys, expect: FOUND_OR_MISS }), c)
  row(`${name}, warm`, 'tcp_table', await runLoad(tcpTableOf(m), { ...bounded, connections: c, keys, expect: FOUND_OR_MISS }), c)
  return keys
}

async function sqlSuites(results: Collected, verdicts: Verdict[]): Promise<void> {
  const seed = [DEMO_SQL, dir.writeSql(work)]
  const lite = await startDaemon({ type: 'sql' }, { seedSql: seed })
  try {
    await directorySuite('SQL on PGlite', lite, mixed)
  } finally {
    await lite.stop()
  }
  const pg = await startPostgres()
  try {
    const onPg = await startDaemon({ type: 'sql' }, { seedSql: seed, config: { store: { url: pg.url } } })
    try {
      await directorySuite('SQL on PostgreSQL', onPg, mixed)
      // The same login over SQL: the password hash is read from PostgreSQL and checked here.
      const verify = await runHttpLoad(passdbVerify(onPg.ports.http, LOGIN_SECRET, LOGIN.user, LOGIN.password), httpBounds())
      log(`passdb verify, SQL on PostgreSQL: ${Math.round(verify.rps)} req/s, p99 ${verify.p99} ms`)
      results.httpSql = verify
      verdicts.push(httpVerdict(verify, 'SQL on PostgreSQL: hash read from the store, checked in mailhostd'))
      const start = (cpuProfDir: string) => startDaemon({ type: 'sql' }, { seedSql: seed, config: { store: { url: pg.url } }, cpuProfDir })
      await profileMissed(verdicts, { start, mixed: mixed.keys, hits: [], cfg })
    } finally {
      await onPg.stop()
    }
  } finally {
    await pg.stop()
  }
}

/**
 * A profile of the workload of each missed target not yet explained, while its peers still run
 * (one profiled daemon for all); targets missed under the same workload share one.
 */
async function profileMissed(verdicts: Verdict[], ctx: ProfileContext): Promise<void> {
  const missed = verdicts.filter((x) => !x.met && x.reason === undefined)
  if (missed.length === 0) return
  const workloads = new Set(missed.map((v) => v.workload))
  log(`missed: ${missed.map((v) => v.name).join('; ')}. Profiling ${[...workloads].join(', ')} for ${cfg.profileSeconds} s each`)
  const profiles = await profileWorkloads(workloads, ctx)
  for (const v of missed) {
    const p = profiles.get(v.workload)
    if (!p) continue
    v.profile = p.frames
    v.kinds = p.kinds
    v.reason = p.reason
  }
}

/** Everything measured against the LDAP daemon, which the comparisons share. */
async function ldapSuites(slapd: Slapd, results: Collected, verdicts: Verdict[]): Promise<void> {
  const m = await startDaemon(ldapDirectory(slapd))
  let warm: string[]
  let warmHits: string[]
  try {
    warm = await directorySuite('LDAP on slapd', m, mixed)
    warmHits = warm.filter(isAccountKey)

    // Floor: the same generator, connections and keys (all hits, all cached) on both servers.
    const c = cfg.connections
    const floorProc = await startFloor()
    let floor: LoadResult
    try {
      floor = row('floor: constant-answer socketmap server', 'socketmap', await runLoad({ port: floorProc.port, proto: 'socketmap', map: 'transport' }, { ...bounded, connections: c, keys: warmHits, expect: FOUND }), c)
    } finally {
      await floorProc.stop()
    }
    const ours = row('LDAP on slapd, cached hits only', 'socketmap', await runLoad(socketmapOf(m), { ...bounded, connections: c, keys: warmHits, expect: FOUND }), c)
    results.floor = { floor, mailhostd: ours, connections: c }
    verdicts.push(...floorVerdicts(floor, ours, c))

    const peer = await comparePeer(slapd, m.ports.socketmap, warm.slice(0, cfg.peerKeys))
    log(`peer: ldap: ${Math.round(peer.ldap.keysPerSecond)} keys/s, mailhostd ${Math.round(peer.mailhostd.keysPerSecond)} keys/s, ${peer.disagreements} disagreements`)
    results.peer = peer
    verdicts.push(peerVerdict(peer))

    const miss = await compareMissPath(slapd, m.ports.socketmap, [...dir.coldKeys()].slice(0, cfg.missKeys))
    log(`miss path: mailhostd p50 ${miss.mailhostd.p50.toFixed(3)} ms, direct p50 ${miss.direct.p50.toFixed(3)} ms`)
    results.miss = miss
    verdicts.push(missVerdict(miss))

    const verify = await runHttpLoad(passdbVerify(m.ports.http, LOGIN_SECRET, LOGIN.user, LOGIN.password), httpBounds())
    log(`passdb verify, LDAP: ${Math.round(verify.rps)} req/s, p99 ${verify.p99} ms`)
    const nginx = await runHttpLoad(nginxAuth(m.ports.http, LOGIN_SECRET, LOGIN.user, LOGIN.password), httpBounds())
    log(`nginx auth, LDAP: ${Math.round(nginx.rps)} req/s, p99 ${nginx.p99} ms`)
    results.http = { verify, nginx, connections: c }
    verdicts.push(httpVerdict(verify, 'LDAP: a bind as the user per login (passwordCheck bind, the default)'))
  } finally {
    await m.stop()
  }

  await profileMissed(verdicts, { start: (cpuProfDir) => startDaemon(ldapDirectory(slapd), { cpuProfDir }), mixed: warm, hits: warmHits, cfg })

  // Stale: a daemon with a 1 s TTL caches the existing keys, slapd dies, and every answer is
  // past its TTL. Only found answers are served stale (a stale miss could bounce new mail).
  const s = await startDaemon(ldapDirectory(slapd), { config: { cache: { ttl: '1s', negativeTtl: '1s', maxStale: '1h' } } })
  try {
    const keys = warmHits.slice(0, STALE_KEYS)
    await runLoad(socketmapOf(s), { durationMs: WARM_UP_CAP_S * 1000, maxRequests: keys.length, connections: cfg.connections, keys, expect: FOUND })
    await slapd.kill()
    await new Promise((r) => setTimeout(r, 1500))
    row('LDAP on slapd, slapd killed: stale answers', 'socketmap', await runLoad(socketmapOf(s), { ...bounded, connections: cfg.connections, keys, expect: FOUND }), cfg.connections)
  } finally {
    await s.stop()
  }
}

async function coalescing(verdicts: Verdict[], results: Collected): Promise<void> {
  const slapd = await startSlapd({ statsLog: true })
  try {
    const m = await startDaemon(ldapDirectory(slapd))
    try {
      const c = await checkCoalescing(slapd, m, LOGIN.user, cfg.coalesce)
      log(`coalescing: ${c.lookups} lookups, ${c.slapdSearches} slapd searches, ${c.mailhostdFinds} mailhostd finds`)
      results.coalescing = c
      verdicts.push(coalescingVerdict(c))
    } finally {
      await m.stop()
    }
  } finally {
    await slapd.stop()
  }
}

/** The password hashing section, with the machine as it was when the section started. */
async function hashing(command: string): Promise<HashingSection> {
  const at = machine()
  const date = new Date()
  const result = await passwordHashingBench(cfg, log)
  return { result, machine: at, command, loadAfter: machine().load, date }
}

/** BENCH_ONLY=passwords: that section alone, spliced into the page the last full run wrote. */
async function passwordsAlone(): Promise<void> {
  const section = hashingSection(await hashing(`BENCH_ONLY=passwords ${nonDefaultEnv(cfg)}npm run bench`))
  const path = `${ROOT}/docs/benchmarks.md`
  writeFileSync(path, spliceHashingSection(readFileSync(path, 'utf8'), section))
  process.stdout.write(`${section}\n`)
  log(`wrote the password hashing section of docs/benchmarks.md; ${elapsedS().toFixed(0)} s`)
}

/** The pooled-lookups section, with the machine as it was when the section started. */
async function pools(command: string): Promise<PoolsSection> {
  const at = machine()
  const date = new Date()
  const result = await pooledLookupsBench(cfg, log)
  return { result, machine: at, command, loadAfter: machine().load, date }
}

/** BENCH_ONLY=pools: that section alone, spliced into the page the last full run wrote. */
async function poolsAlone(): Promise<void> {
  const section = poolsSection(await pools(`BENCH_ONLY=pools ${nonDefaultEnv(cfg)}npm run bench`))
  const path = `${ROOT}/docs/benchmarks.md`
  writeFileSync(path, spliceSection(readFileSync(path, 'utf8'), POOLS_HEADING, section))
  process.stdout.write(`${section}\n`)
  log(`wrote the pooled lookups section of docs/benchmarks.md; ${elapsedS().toFixed(0)} s`)
}

async function main(): Promise<void> {
  const loadAtStart = machine().load
  const results: Collected = {}
  const verdicts: Verdict[] = []
  try {
    if (only === 'passwords') return await passwordsAlone()
    if (only === 'pools') return await poolsAlone()
    log(`generated directory: ${dir.accounts} accounts; mixed deck ${mixed.hits} hits + ${mixed.misses} misses`)
    await sqlSuites(results, verdicts)
    const slapd = await startSlapd({ extraLdif: [dir.ldif()] })
    try {
      await ldapSuites(slapd, results, verdicts)
    } finally {
      await slapd.stop()
    }
    await coalescing(verdicts, results)

    let scale: ScaleResult | undefined
    if (cfg.scaleAccounts > 0) {
      // bench/scale.ts (its own module): a million accounts, warm-up, RSS per entry, lookups.
      scale = await scaleBench({ accounts: cfg.scaleAccounts, connections: cfg.connections, seconds: cfg.seconds, log })
      results.scale = scale
    }
    if (scale) verdicts.push(scaleVerdict(scale))
    const command = `${nonDefaultEnv(cfg)}npm run bench`
    const hashingFigures = await hashing(command)
    const poolsFigures = await pools(command)

    const report = renderReport({
      ...(results as BenchResults),
      rows,
      verdicts,
      cfg,
      machine: { ...machine(), load: loadAtStart },
      hashing: hashingFigures,
      pools: poolsFigures,
      command,
      elapsedS: elapsedS(),
      deck: mixed,
      accounts: dir.accounts,
    })
    writeFileSync(`${ROOT}/docs/benchmarks.md`, report)
    process.stdout.write(report)
    log(`wrote docs/benchmarks.md; total ${elapsedS().toFixed(0)} s since the process started (npm's prebench install and build not included)`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`)
  process.exit(1)
})
