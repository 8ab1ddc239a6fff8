// Issue 15's figures: what a cached answer costs for a user on a shared-storage pool against a
// user on a plain backend. One daemon (SQL directory on PGlite, the embedded store that also holds
// the pins) with BENCH_POOL_ACCOUNTS accounts, half on mx1 and half on a pool of three members.
//   1. First lookups, in rotating rounds over disjoint keys: a plain user (one directory query), a
//      pooled user (a directory query and a pin claim in the store), and a pooled user whose
//      directory answer was cached beforehand through the recipient map (the claim alone).
//   2. Every other key asked once (untimed): every pooled user now holds a pin on this instance.
//   3. Cached transport lookups over socketmap and tcp_table, plain keys against pooled keys in
//      alternating rounds; a pooled answer reads the local pin, and touched pins are confirmed
//      in the store once per slice of their pinFor (docs/pools.md), which is part of what it costs.
// The daemon runs under `node --cpu-prof` throughout, so where a pooled lookup's extra time goes
// is read from the very rounds measured (samples of the plain rounds against those of the pooled
// ones, per lookup): a second daemon warmed the same way would cost minutes of directory queries
// on a shared machine. The sampler's cost is per sample, not per lookup, so it weighs on both
// kinds alike. Run alone with BENCH_ONLY=pools (bench/run.ts).

import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { scrape } from '../test/ops/prom.js'
import { ROOT, type Mailhostd } from '../test/harness/mailhostd.js'
import { demoClusterConfig } from '../test/e2e/demo-table.js'
import type { BenchConfig } from './config.js'
import { busyUsPerLookup, extraCostPerLookup, mergeWasmFrames, nowUs, readProfile, timeByKind, topFrames, type CpuProfile, type FrameCost, type Window } from './cpu-profile.js'
import { newProfileDir, startDaemon } from './daemons.js'
import { runLoad, type LineProto, type LoadResult, type LoadTarget } from './load-generator.js'
import { poolBackend, poolKeys, POOL_ID, POOL_MEMBERS, routeReply, writePoolAccountsSql } from './pool-directory.js'
import { roundOrder, summariseRounds, type RoundsSummary } from './rounds.js'
import { explain } from './profile.js'

/** Rounds of each cached comparison: five, since the median of three moved by more than the 10 % at stake on a shared machine. */
export const POOL_ROUNDS = 5
/** Rounds of first lookups, and keys per round (at most; fewer when the pooled half is small). */
const COLD_ROUNDS = 3
const COLD_KEYS = 500
/** Longest untimed warm-up of the remaining keys: a slower store fails the run rather than measure claims. */
const WARM_UP_CAP_MS = 120_000
const PIN_LOOKUPS = 'mailhostd_pool_pin_lookups_total'
const FOUND = /^OK /

type Kind = 'plain' | 'pooled'
type ColdKind = Kind | 'claim'

export interface CachedRound {
  readonly kind: Kind
  readonly r: LoadResult
  /** 1-minute load average when the run ended (the machine is shared with other work). */
  readonly load: number
}

export interface CachedComparison {
  readonly proto: LineProto
  /** In the order they ran. */
  readonly rounds: readonly CachedRound[]
  readonly plain: RoundsSummary
  readonly pooled: RoundsSummary
}

export interface ProfiledRounds {
  readonly kinds: { kind: string; percent: number }[]
  readonly lookups: number
  /** The daemon's CPU time (samples not idle) per lookup answered, in microseconds. */
  readonly busyUs: number
  readonly reason: string
}

export interface PoolProfile {
  readonly plain: ProfiledRounds
  readonly pooled: ProfiledRounds
  /** Frames by extra self time per pooled lookup. */
  readonly extra: FrameCost[]
  /** The daemon's CPU time per lookup answered, per protocol: what the target compares. */
  readonly byProto: readonly ProtoCost[]
}

export interface ProtoCost {
  readonly proto: LineProto
  /** Microseconds of the daemon's CPU (samples not idle) per lookup, plain rounds and pooled rounds. */
  readonly plainUs: number
  readonly pooledUs: number
}

interface MeasuredWindow {
  readonly proto: LineProto
  readonly kind: Kind
  readonly window: Window
  readonly lookups: number
}

export interface PooledLookupsResult {
  readonly accounts: number
  readonly members: number
  readonly connections: number
  readonly seconds: number
  readonly cold: { readonly keysPerRound: number; readonly plain: RoundsSummary; readonly pooled: RoundsSummary; readonly claim: RoundsSummary }
  readonly cached: readonly CachedComparison[]
  /** Pin claims and pinned lookups the daemon counted during the cached rounds (claims: 0 when every pooled answer was cached). */
  readonly during: { readonly claimed: number; readonly pinned: number; readonly failed: number }
  /** The cached rounds' samples (both protocols), plain against pooled. */
  readonly profile: PoolProfile
}

export async function pooledLookupsBench(cfg: BenchConfig, log: (line: string) => void): Promise<PooledLookupsResult> {
  const work = mkdtempSync(join(tmpdir(), 'mailhostd-bench-pools-'))
  const profDir = newProfileDir()
  try {
    const seed = writePoolAccountsSql(work, cfg.poolAccounts)
    const start = () =>
      startDaemon(
        { type: 'sql' },
        {
          seedSql: [seed],
          // Every answer stays fresh for the whole run: the cached rounds never reach the directory.
          config: { backends: [...demoClusterConfig().backends, poolBackend()], cache: { ttl: '1h' } },
          cpuProfDir: profDir,
        },
      )
    const keys = poolKeys(cfg.poolAccounts)
    const k = Math.min(COLD_KEYS, Math.floor(keys.pooled.length / (2 * COLD_ROUNDS)))
    if (k < 1) throw new Error(`BENCH_POOL_ACCOUNTS=${cfg.poolAccounts} is too small for ${COLD_ROUNDS} rounds of first lookups`)
    const c = cfg.connections
    const bounds = { connections: c, durationMs: cfg.seconds * 1000, maxRequests: cfg.maxRequests }

    const m = await start()
    log(`pools: daemon up with ${cfg.poolAccounts} accounts`)
    let result: Omit<PooledLookupsResult, 'profile'>
    const windows: MeasuredWindow[] = []
    try {
      const sm = socketmapOf(m)
      // First lookups: each key asked exactly once; the claim-only keys get their directory answer cached first.
      const chunk = (kind: ColdKind, r: number) => (kind === 'plain' ? keys.plain : keys.pooled).slice((kind === 'claim' ? COLD_ROUNDS + r : r) * k, (kind === 'claim' ? COLD_ROUNDS + r + 1 : r + 1) * k)
      const cold: Record<ColdKind, LoadResult[]> = { plain: [], pooled: [], claim: [] }
      for (const [r, order] of roundOrder<ColdKind>(COLD_ROUNDS, ['plain', 'pooled', 'claim']).entries()) {
        for (const kind of order) {
          const ks = chunk(kind, r)
          if (kind === 'claim') await once({ ...sm, map: 'recipient' }, ks, c, FOUND)
          const run = await runLoad(sm, { connections: c, durationMs: WARM_UP_CAP_MS, maxRequests: ks.length, keys: ks, expect: routeReply('socketmap', kind !== 'plain') })
          check(run, ks.length, `first lookups (${kind})`)
          cold[kind].push(run)
          log(`pools: first lookups, ${kind}, round ${r + 1}: ${Math.round(run.rps)} lookups/s, p50 ${run.p50.toFixed(2)} ms, p99 ${run.p99.toFixed(2)} ms`)
        }
      }
      const asked = COLD_ROUNDS * k
      await once(sm, keys.plain.slice(asked), c, routeReply('socketmap', false))
      await once(sm, keys.pooled.slice(2 * asked), c, routeReply('socketmap', true))
      log(`pools: every key asked once; ${keys.pooled.length} pooled users pinned`)

      const before = await pinCounts(m)
      const cached: CachedComparison[] = []
      for (const proto of ['socketmap', 'tcp_table'] as const) {
        const target = proto === 'socketmap' ? sm : tcpTableOf(m)
        const rounds: CachedRound[] = []
        for (const order of roundOrder<Kind>(POOL_ROUNDS, ['plain', 'pooled'])) {
          for (const kind of order) {
            const fromUs = nowUs()
            const r = await runLoad(target, { ...bounds, keys: kind === 'plain' ? keys.plain : keys.pooled, expect: routeReply(proto, kind === 'pooled') })
            windows.push({ proto, kind, window: { fromUs, toUs: nowUs() }, lookups: r.requests })
            rounds.push({ kind, r, load: loadavg()[0] ?? 0 })
            log(`pools: cached ${proto}, ${kind}: ${Math.round(r.rps)} lookups/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${r.unexpected ? `, ${r.unexpected} unexpected (${r.sample})` : ''}`)
          }
        }
        const of = (kind: Kind) => summariseRounds(rounds.filter((x) => x.kind === kind).map((x) => x.r))
        cached.push({ proto, rounds, plain: of('plain'), pooled: of('pooled') })
      }
      const after = await pinCounts(m)
      result = {
        accounts: cfg.poolAccounts,
        members: POOL_MEMBERS.length,
        connections: c,
        seconds: cfg.seconds,
        cold: { keysPerRound: k, plain: summariseRounds(cold.plain), pooled: summariseRounds(cold.pooled), claim: summariseRounds(cold.claim) },
        cached,
        during: { claimed: after.claimed - before.claimed, pinned: after.pinned - before.pinned, failed: after.failed - before.failed },
      }
    } finally {
      await m.stop()
    }
    return { ...result, profile: compareProfiles(readProfile(profDir), windows) }
  } finally {
    rmSync(work, { recursive: true, force: true })
    rmSync(profDir, { recursive: true, force: true })
  }
}

const socketmapOf = (m: Mailhostd): LoadTarget => ({ port: m.ports.socketmap, proto: 'socketmap', map: 'transport' })
const tcpTableOf = (m: Mailhostd): LoadTarget => ({ port: m.ports.transport, proto: 'tcp_table' })

/** Asks each key once, untimed; a key left unasked or answered otherwise fails the run. */
async function once(target: LoadTarget, keys: readonly string[], connections: number, expect: RegExp): Promise<void> {
  if (keys.length === 0) return
  const r = await runLoad(target, { connections, durationMs: WARM_UP_CAP_MS, maxRequests: keys.length, keys, expect })
  check(r, keys.length, `warming ${target.map ?? target.proto}`)
}

function check(r: LoadResult, keys: number, what: string): void {
  if (r.requests < keys) throw new Error(`pools bench: ${what}: ${r.requests} of ${keys} keys answered within ${WARM_UP_CAP_MS / 1000} s`)
  if (r.unexpected > 0) throw new Error(`pools bench: ${what}: ${r.unexpected} unexpected answers, e.g. ${r.sample}`)
}

async function pinCounts(m: Mailhostd): Promise<{ claimed: number; pinned: number; failed: number }> {
  const s = await scrape(m.ports.http)
  const v = (result: string) => s.value(PIN_LOOKUPS, { pool: POOL_ID, result })
  return { claimed: v('claimed'), pinned: v('pinned'), failed: v('failed') }
}

/** Plain rounds against pooled rounds in one profile: time by kind, and the frames that cost more per pooled lookup. */
function compareProfiles(profile: CpuProfile, windows: readonly MeasuredWindow[]): PoolProfile {
  const framesOf = (list: readonly MeasuredWindow[]) => mergeWasmFrames(topFrames(profile, Number.MAX_SAFE_INTEGER, ROOT, list.map((x) => x.window)))
  const lookupsOf = (list: readonly MeasuredWindow[]) => list.reduce((n, x) => n + x.lookups, 0)
  const of = (kind: Kind) => {
    const list = windows.filter((x) => x.kind === kind)
    const kinds = timeByKind(profile, list.map((x) => x.window))
    const frames = framesOf(list)
    const lookups = lookupsOf(list)
    return { frames, kinds, lookups, busyUs: busyUsPerLookup(frames, lookups), reason: explain(kinds) }
  }
  const busy = (proto: LineProto, kind: Kind) => {
    const list = windows.filter((x) => x.proto === proto && x.kind === kind)
    return busyUsPerLookup(framesOf(list), lookupsOf(list))
  }
  const byProto = [...new Set(windows.map((x) => x.proto))].map((proto) => ({ proto, plainUs: busy(proto, 'plain'), pooledUs: busy(proto, 'pooled') }))
  const plain = of('plain')
  const pooled = of('pooled')
  const rounds = ({ kinds, lookups, busyUs, reason }: ProfiledRounds) => ({ kinds, lookups, busyUs, reason })
  return {
    plain: rounds(plain),
    pooled: rounds(pooled),
    extra: extraCostPerLookup(plain, pooled, 12),
    byProto,
  }
}
