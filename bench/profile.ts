// The profile behind a missed target: a fresh mailhostd under `node --cpu-prof`, given the
// workload of that target for BENCH_PROFILE_SECONDS, then stopped (V8 writes the profile at
// exit); only the samples taken while the workload ran are counted. The summary is the top frames by self time and where the time went by kind; the
// reason for the miss is stated from those shares, not guessed.

import { rmSync } from 'node:fs'
import { postmapBatch, socketmap, ROOT } from '../test/harness/mailhostd.js'
import type { Slapd } from '../test/harness/slapd.js'
import type { BenchConfig } from './config.js'
import { nowUs, readProfile, timeByKind, topFrames, type Frame, type Window } from './cpu-profile.js'
import { LOGIN, LOGIN_SECRET, ldapDirectory, newProfileDir, startDaemon } from './daemons.js'
import { passdbVerify, runHttpLoad } from './http-load.js'
import { runLoad } from './load-generator.js'
import type { Workload } from './targets.js'

export interface ProfileContext {
  readonly slapd: Slapd
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

export async function profileWorkload(workload: Workload, ctx: ProfileContext): Promise<ProfileSummary> {
  const profDir = newProfileDir()
  const ms = ctx.cfg.profileSeconds * 1000
  let window: Window | undefined
  /** Runs the part of a workload the profile is about, remembering when it ran. */
  const measured = async (work: () => Promise<unknown>) => {
    const fromUs = nowUs()
    await work()
    window = { fromUs, toUs: nowUs() }
  }
  try {
    const m = await startDaemon(ldapDirectory(ctx.slapd), { cpuProfDir: profDir })
    try {
      const sm = { port: m.ports.socketmap, proto: 'socketmap' as const, map: 'transport' }
      const c = ctx.cfg.connections
      switch (workload) {
        case 'cached-hits': {
          const keys = ctx.hits.slice(0, WARM_KEYS)
          await runLoad(sm, { connections: c, durationMs: WARM_UP_CAP_MS, maxRequests: keys.length, keys, expect: ANY })
          await measured(() => runLoad(sm, { connections: c, durationMs: ms, maxRequests: ctx.cfg.maxRequests, keys, expect: ANY }))
          break
        }
        case 'cold-misses':
          // A fresh daemon: every key of the deck is a cache miss, asked one at a time.
          await measured(() => runLoad(sm, { connections: 1, durationMs: ms, maxRequests: ctx.mixed.length, keys: ctx.mixed, expect: ANY }))
          break
        case 'postmap': {
          const keys = ctx.mixed.slice(0, ctx.cfg.peerKeys)
          const map = socketmap(m.ports.socketmap, 'recipient')
          await postmapBatch(map, keys)
          await measured(async () => {
            const end = Date.now() + ms
            do await postmapBatch(map, keys)
            while (Date.now() < end)
          })
          break
        }
        case 'passdb-verify': {
          const load = passdbVerify(m.ports.http, LOGIN_SECRET, LOGIN.user, LOGIN.password)
          await measured(() => runHttpLoad(load, { connections: c, durationMs: ms, maxRequests: ctx.cfg.maxRequests }))
          break
        }
        case 'coalescing':
        case 'scale':
          // Correctness and memory targets: their misses are explained by their own figures.
          break
      }
    } finally {
      await m.stop()
    }
    const profile = readProfile(profDir)
    const kinds = timeByKind(profile, window)
    return { frames: topFrames(profile, 12, ROOT, window), kinds, reason: explain(kinds) }
  } finally {
    rmSync(profDir, { recursive: true, force: true })
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
