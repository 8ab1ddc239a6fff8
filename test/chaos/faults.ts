// The faults every chaos test injects while its stream runs: slapd killed (SIGKILL, no goodbye
// to open connections) and restarted three times, PostgreSQL killed and restarted once, each at a
// fixed fraction of the stream so traffic flows before, during and after every outage. Records
// when each peer went down and came back, for the report and to tell outage-time results apart.

import { setTimeout as sleep } from 'node:timers/promises'
import type { Pg } from '../harness/postgres.js'
import type { Slapd } from '../harness/slapd.js'

export type Peer = 'slapd' | 'postgres'

/** Where in the stream each fault starts (fraction of streamMs), in order. */
export const SCHEDULE: readonly { readonly at: number; readonly peer: Peer }[] = [
  { at: 0.15, peer: 'slapd' },
  { at: 0.35, peer: 'postgres' },
  { at: 0.55, peer: 'slapd' },
  { at: 0.78, peer: 'slapd' },
]

export interface Outage {
  readonly peer: Peer
  /** ms since the stream started: killed, restart begun, and accepting connections again. */
  readonly downAt: number
  readonly restartAt: number
  readonly upAt: number
}

export interface FaultRun {
  /** Resolves when every outage is over. */
  readonly done: Promise<Outage[]>
  /** Whether `at` (ms since the stream started) fell inside an outage of `peer`. */
  during(peer: Peer, at: number): boolean
}

/**
 * Starts the schedule now (t0 = the stream's start, from Date.now()). `whileDown(i)` runs once
 * fault i (an index into SCHEDULE) has its peer dead; the outage lasts at least outageMs and
 * until it returns.
 */
export function runFaults(p: {
  slapd: Slapd
  pg: Pg
  streamMs: number
  outageMs: number
  t0: number
  whileDown?: (index: number) => Promise<void>
}): FaultRun {
  const outages: Outage[] = []
  let current: { peer: Peer; downAt: number } | undefined
  const now = () => Date.now() - p.t0
  const done = (async () => {
    for (const [i, f] of SCHEDULE.entries()) {
      const wait = f.at * p.streamMs - now()
      if (wait > 0) await sleep(wait)
      const downAt = now()
      current = { peer: f.peer, downAt }
      await (f.peer === 'slapd' ? p.slapd.kill() : p.pg.kill())
      await Promise.all([sleep(p.outageMs), p.whileDown?.(i)])
      const restartAt = now()
      await (f.peer === 'slapd' ? p.slapd.restart() : p.pg.restart())
      outages.push({ peer: f.peer, downAt, restartAt, upAt: now() })
      current = undefined
    }
    return outages
  })()
  return {
    done,
    during: (peer, at) =>
      outages.some((o) => o.peer === peer && at >= o.downAt && at <= o.upAt) || (current?.peer === peer && at >= current.downAt),
  }
}

/** One line per outage for t.comment. */
export function describeOutages(outages: readonly Outage[]): string[] {
  return outages.map(
    (o, i) =>
      `outage ${i + 1}: ${o.peer} killed at ${(o.downAt / 1000).toFixed(1)} s, down ${((o.restartAt - o.downAt) / 1000).toFixed(1)} s, ` +
      `restart took ${o.upAt - o.restartAt} ms`,
  )
}
