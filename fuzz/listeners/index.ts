// Runs the listener half of the fuzz: one daemon, each line listener in turn, then HTTP.

import { startFuzzDaemon, type FuzzDaemon } from './daemon.js'
import { fuzzHttp, type HttpResult } from './http-fuzz.js'
import { crashOf, fuzzListener, type ListenerResult } from './listener-fuzz.js'
import { listenerTargets } from './targets.js'

export interface ListenersOptions {
  readonly seed: number
  readonly frames: number
  readonly boundMs: number
  readonly max: number
  /** One listener's name (`http` for the HTTP endpoints); all of them when absent. */
  readonly only?: string
  readonly onDone?: (r: ListenerResult) => void
}

/** Connections at once per listener: enough to overlap lookups, few enough for two cores. */
const CONCURRENCY = 32
const BATCH = 500
/** HTTP requests per run: light, the parser and schemas do most of the work there. */
const HTTP_SHARE = 0.1

/**
 * Starts the daemon to fuzz. Done first thing in a run, right after `npm run fuzz` built dist/:
 * the harness refuses a dist/ older than src/, and the codec half takes minutes during which
 * src/ may change in a shared working tree. 1 s timeouts: connections the fuzzer leaves open
 * are closed by the daemon well within the bound.
 */
export function startDaemon(): Promise<FuzzDaemon> {
  return startFuzzDaemon('1s', '1s')
}

export interface ListenersResult {
  readonly listeners: ListenerResult[]
  readonly http?: HttpResult
  readonly crash?: string
  /** The daemon's resident memory before and after the fuzz, in KiB: growth would mean a leak. */
  readonly rssKb?: readonly [number | undefined, number | undefined]
}

export async function fuzzListeners(d: FuzzDaemon, o: ListenersOptions): Promise<ListenersResult> {
  const rssBefore = d.health().rssKb
  try {
    const listeners: ListenerResult[] = []
    const targets = listenerTargets()
    for (const [i, target] of targets.entries()) {
      if (o.only !== undefined && o.only !== target.name) continue
      const r = await fuzzListener(d, target, i, { seed: o.seed, frames: o.frames, boundMs: o.boundMs, max: o.max, concurrency: CONCURRENCY, batch: BATCH })
      listeners.push(r)
      o.onDone?.(r)
      if (r.crash) return { listeners, crash: r.crash }
    }
    if (o.only !== undefined && o.only !== 'http') return { listeners }
    const http = await fuzzHttp(d, o.seed, Math.max(100, Math.round(o.frames * HTTP_SHARE)), o.boundMs, 8)
    const crash = crashOf(d)
    return { listeners, http, ...(crash ? { crash } : {}), rssKb: [rssBefore, d.health().rssKb] }
  } finally {
    await d.m.stop()
  }
}
