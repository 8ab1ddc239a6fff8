// The profile behind a missed target: a fresh mailhostd under `node --cpu-prof`, given the
// workload of each missed target for BENCH_PROFILE_SECONDS in turn, then stopped (V8 writes the
// profile at exit); each workload counts only the samples taken while it ran. The summary is the top frames by self time and where the time went by kind; the
// reason for the miss is stated from those shares, not guessed.

import { rmSync } from 'node:fs'
import { postmapBatch, socketmap, ROOT, type Mailhostd } from '../test/harness/mailhostd.js'
import type { BenchConfig } from './config.js'
import { nowUs, readProfile, timeByKind, topFrames, type Frame, type Window } from './cpu-profile.js'
import { LOGIN, LOGIN_SECRET, newProfileDir } from './daemons.js'
import { passdbVerify, runHttpLoad } from './http-load.js'
import { runLoad } from './load-generator.js'
import type { Workload } from './targets.js'

export interface ProfileContext {
  /** Starts the daemon to profile (same directory as the measured one) writing into profDir. */
  readonly start: (cpuProfDir: string) => Promise<Mailhostd>
  /** Keys of the mixed deck, and the existing ones among them. */
  readonly mixed: readonly string[]
  readonly hits: readonly string[]
  readonly cfg: BenchConfig
}

export interface ProfileSummary {
  readonly frames: Frame[]
  readonly kinds: { kind: string; percent: number }[]
  readonly reason: string
}

/** Keys cached before profiling cached hits (warming them is not part of the profile). */
const WARM_KEYS = 2000
const WARM_UP_CAP_MS = 30_000
const ANY = /^(OK |NOTFOUND |500 |200 )/

/** Cold misses first: they need keys this daemon has not cached yet. */
const ORDER: readonly Workload[] = ['cold-misses', 'cached-hits', 'postmap', 'passdb-verify', 'passdb-verify-sql']

/**
 * Profiles of the given workloads, from one profiled daemon: each workload runs in turn and
 * gets the samples of its own window, so one start-up serves them all.
 */
export async function profileWorkloads(workloads: ReadonlySet<Workload>, ctx: ProfileContext): Promise<Map<Workload, ProfileSummary>> {
  const todo = ORDER.filter((w) => workloads.has(w))
  const out = new Map<Workload, ProfileSummary>()
  if (todo.length === 0) return out
  const profDir = newProfileDir()
  const ms = ctx.cfg.profileSeconds * 1000
  const windows = new Map<Workload, Window>()
  try {
    const m = await ctx.start(profDir)
    try {
      for (const w of todo) {
        const run = workload(w, m, ctx, ms)
        await run.before()
        const fromUs = nowUs()
        await run.measured()
        windows.set(w, { fromUs, toUs: nowUs() })
      }
    } finally {
      await m.stop()
    }
    const profile = readProfile(profDir)
    for (const [w, window] of windows) {
      const kinds = timeByKind(profile, window)
      out.set(w, { frames: topFrames(profile, 12, ROOT, window), kinds, reason: explain(kinds) })
    }
    return out
  } finally {
    rmSync(profDir, { recursive: true, force: true })
  }
}

/** A workload as an untimed preparation and the part the profile is about. */
function workload(w: Workload, m: Mailhostd, ctx: ProfileContext, ms: number): { before(): Promise<unknown>; measured(): Promise<unknown> } {
  const sm = { port: m.ports.socketmap, proto: 'socketmap' as const, map: 'transport' }
  const c = ctx.cfg.connections
  const nothing = () => Promise.resolve()
  switch (w) {
    case 'cold-misses':
      // Every key of the deck is a cache miss for this daemon, asked one at a time.
      return { before: nothing, measured: () => runLoad(sm, { connections: 1, durationMs: ms, maxRequests: ctx.mixed.length, keys: ctx.mixed, expect: ANY }) }
    case 'cached-hits': {
      const keys = ctx.hits.slice(0, WARM_KEYS)
      return {
        before: () => runLoad(sm, { connections: c, durationMs: WARM_UP_CAP_MS, maxRequests: keys.length, keys, expect: ANY }),
        measured: () => runLoad(sm, { connections: c, durationMs: ms, maxRequests: ctx.cfg.maxRequests, keys, expect: ANY }),
      }
    }
    case 'postmap': {
      const keys = ctx.mixed.slice(0, ctx.cfg.peerKeys)
      const map = socketmap(m.ports.socketmap, 'recipient')
      return {
        before: () => postmapBatch(map, keys),
        measured: async () => {
          const end = Date.now() + ms
          do await postmapBatch(map, keys)
          while (Date.now() < end)
        },
      }
    }
    case 'passdb-verify':
    case 'passdb-verify-sql': {
      const load = passdbVerify(m.ports.http, LOGIN_SECRET, LOGIN.user, LOGIN.password)
      return { before: nothing, measured: () => runHttpLoad(load, { connections: c, durationMs: ms, maxRequests: ctx.cfg.maxRequests }) }
    }
    case 'coalescing':
    case 'scale':
      // Correctness and memory targets: their misses are explained by their own figures.
      return { before: nothing, measured: nothing }
  }
}

/** A sentence from the time shares: who had the CPU, and whether the daemon waited at all. */
export function explain(kinds: { kind: string; percent: number }[]): string {
  const share = (k: string) => kinds.find((x) => x.kind === k)?.percent ?? 0
  const idle = share('(idle)')
  const busy = kinds.filter((x) => x.kind !== '(idle)' && x.percent >= 3).map((x) => `${x.kind} ${x.percent.toFixed(0)} %`)
  const head =
    idle >= 25
      ? `the daemon was idle ${idle.toFixed(0)} % of the profiled run, so it waited on its peers (load generator, directory) for a good part of it`
      : `the daemon's thread was busy (${idle.toFixed(0)} % idle), so the figure is bounded by its CPU time on this machine`
  return `${head}; its time went to ${busy.join(', ')}`
}
