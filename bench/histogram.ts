// Latency figures from an HDR histogram (perf_hooks records integers; we record nanoseconds)
// in the milliseconds the report prints. One place, so every table means the same by "p99".

import type { RecordableHistogram } from 'node:perf_hooks'

export interface LatencySummary {
  /** Milliseconds. */
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly p999: number
  readonly max: number
  readonly mean: number
}

const ms = (ns: number) => ns / 1e6

export function summarise(h: Pick<RecordableHistogram, 'count' | 'percentile' | 'max' | 'mean'>): LatencySummary {
  if (h.count === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 }
  return {
    p50: ms(h.percentile(50)),
    p90: ms(h.percentile(90)),
    p99: ms(h.percentile(99)),
    p999: ms(h.percentile(99.9)),
    max: ms(h.max),
    mean: ms(h.mean),
  }
}
