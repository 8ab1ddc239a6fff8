// /readyz: whether this instance should get traffic. Ready when
// - the store answers (the registry, the admin API, and with the SQL directory every lookup);
// - the directory answers, or answered within cache.maxStale: while it is down, found answers
//   confirmed since then are still served from the cache (stale), so Postfix is better served
//   here than nowhere; past that, every uncached lookup would only defer mail;
// - every listener the configuration asks for is bound where it says (a re-bind after a reload
//   may have failed).
// Each check reports its own detail, so an operator sees which one failed and why.

import { toMs } from '../config/duration.js'
import type { Config } from '../config/schema.js'
import { withinDeadline } from '../deadline.js'
import type { CircuitBreakerDirectory } from '../directory/circuit-breaker.js'
import { describeError } from '../errors.js'
import type { BoundAddress, UnboundListener } from '../server/listener-set.js'
import type { Store } from '../store/store.js'

/** What readiness reads of the running instance. */
export interface ReadinessSource {
  readonly store: Pick<Store, 'kind' | 'query'>
  readonly directory: Pick<CircuitBreakerDirectory, 'kind' | 'state' | 'ping'>
  readonly config: Pick<Config, 'cache'>
  /** When the directory last answered (ms since the epoch), or undefined. */
  readonly directoryAnsweredAt: number | undefined
  readonly bound: readonly BoundAddress[]
  /** Listeners the configuration asks for that are not bound where it says. */
  readonly unboundListeners: readonly UnboundListener[]
}

export interface ProbeResult {
  readonly ok: boolean
  readonly error?: string
  readonly ms: number
}

export interface Readiness {
  readonly ready: boolean
  readonly body: {
    readonly status: 'ready' | 'not ready'
    readonly store: ProbeResult & { readonly kind: string }
    readonly directory: ProbeResult & {
      readonly kind: string
      readonly circuit: string
      /** Whether the directory answered this probe; `ok` may still be true from the stale window. */
      readonly reachable: boolean
      /** Seconds since the directory last answered; absent when it never has. */
      readonly lastAnswerSecondsAgo?: number
      readonly maxStaleSeconds: number
    }
    readonly listeners: {
      readonly ok: boolean
      readonly bound: readonly BoundAddress[]
      readonly unbound: readonly UnboundListener[]
    }
  }
}

export async function readiness(daemon: ReadinessSource, timeoutMs: number, now: () => number = Date.now): Promise<Readiness> {
  const [store, ping] = await Promise.all([
    probe(() => daemon.store.query('select 1'), timeoutMs),
    probe(() => daemon.directory.ping(AbortSignal.timeout(timeoutMs)), timeoutMs),
  ])
  const maxStaleMs = toMs(daemon.config.cache.maxStale)
  const answeredAt = daemon.directoryAnsweredAt
  const agoMs = answeredAt === undefined ? undefined : Math.max(0, now() - answeredAt)
  const withinStale = agoMs !== undefined && agoMs <= maxStaleMs
  const directory = {
    kind: daemon.directory.kind,
    circuit: daemon.directory.state,
    ...ping,
    ok: ping.ok || withinStale,
    reachable: ping.ok,
    ...(agoMs === undefined ? {} : { lastAnswerSecondsAgo: Math.round(agoMs / 1000) }),
    maxStaleSeconds: maxStaleMs / 1000,
  }
  const unbound = daemon.unboundListeners
  const listeners = { ok: unbound.length === 0, bound: daemon.bound, unbound }
  const ready = store.ok && directory.ok && listeners.ok
  return {
    ready,
    body: { status: ready ? 'ready' : 'not ready', store: { kind: daemon.store.kind, ...store }, directory, listeners },
  }
}

/** Runs `fn` with a bound on its time; a hung peer counts as a failed probe. */
export async function probe(fn: () => Promise<unknown>, timeoutMs: number): Promise<ProbeResult> {
  const t = performance.now()
  try {
    await withinDeadline(timeoutMs, fn)
    return { ok: true, ms: Math.round(performance.now() - t) }
  } catch (e) {
    return { ok: false, error: describeError(e), ms: Math.round(performance.now() - t) }
  }
}
