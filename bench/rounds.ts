// Side-by-side runs of workloads on one daemon, in rounds: each round runs every workload, and
// which goes first rotates, so a machine that gets busier or quieter during the runs
// (other work, the daemon's JIT and GC settling) weighs on both alike. The median round counts.

import type { LoadResult } from './load-generator.js'

/** The order of the workloads in each of `rounds` rounds: round r starts with workload r (mod their number). */
export function roundOrder<W>(rounds: number, workloads: readonly W[]): W[][] {
  return Array.from({ length: rounds }, (_, r) => workloads.map((_, i) => workloads[(r + i) % workloads.length]!))
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0
  const s = [...xs].sort((x, y) => x - y)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** The rounds of one workload: median throughput and latencies, requests and unexpected replies summed. */
export interface RoundsSummary {
  readonly rps: number
  readonly p50: number
  readonly p99: number
  readonly requests: number
  readonly unexpected: number
  readonly rounds: number
}

export function summariseRounds(runs: readonly LoadResult[]): RoundsSummary {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    requests: runs.reduce((n, r) => n + r.requests, 0),
    unexpected: runs.reduce((n, r) => n + r.unexpected, 0),
    rounds: runs.length,
  }
}
