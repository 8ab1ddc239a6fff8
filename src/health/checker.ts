// Active health checks: every `health.interval`, probe each configured service of every backend
// in the registry (re-read each round, so added and removed backends are followed), and settle
// each (backend, service) on up or down with rise/fall hysteresis. A settled change is logged,
// recorded in the store and announced on the change bus, so every instance's registry, the admin
// API and the status page show it; logins to a down service then fail fast and placement skips
// the backend, while transport routes stay (Postfix queues).
//
// Several instances probe independently and may disagree for a moment (one sees a timeout the
// other does not). Each records its own settled changes (and verdicts the store has no record of)
// and the last writer wins: the store holds the verdict of whichever instance changed its mind
// last, until another one does.
//
// Where a service starts: the state the store holds, so a restarted instance agrees with the
// cluster at once and needs `rise` good probes to call a down service up again. Never recorded:
// unknown, which counts as up (routing treats a missing record as up), so a freshly started
// cluster does not refuse logins before its first probes; the first settled verdict (after rise
// or fall probes in a row) is recorded either way, so the admin API shows it.

import { hostname } from 'node:os'
import type { Change } from '../cluster/changes.js'
import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { ProbedService, Registry, ServerInfo, ServiceHealth } from '../resolve/registry.js'
import type { Queryable } from '../store/store.js'
import { recordHealth } from './health-repo.js'
import { TcpProber, type ProbeResult, type ProbeTarget, type Prober } from './probe.js'

export interface HealthCheckerOptions {
  /** Time between the starts of two rounds; a round waits for its slowest probe. */
  readonly intervalMs: number
  /** Each probe's bound (for the TCP prober). */
  readonly timeoutMs: number
  readonly rise: number
  readonly fall: number
  readonly services: readonly ProbedService[]
  /** The current registry: its backends are probed, its health seeds each service's state. */
  readonly registry: () => Registry
  readonly store: Queryable
  /** Tells every instance to reload the health states. */
  readonly publish: (change: Change) => Promise<void>
  /** Applies a change to this instance at once (the daemon's applyChange). */
  readonly apply: (change: Change) => Promise<void>
  readonly logger: Logger
  /** Default: TCP probes with timeoutMs. */
  readonly prober?: Prober
  /** Names this instance in the store's records; default host:pid. */
  readonly instance?: string
}

/** This instance's verdict on one service: unknown until rise or fall probes in a row agreed. */
export type CheckState = ServiceHealth | 'unknown'

/** One (backend, service) as this instance's checks see it, for metrics and tests. */
export interface ServiceCheck {
  readonly backend: string
  readonly service: ProbedService
  readonly state: CheckState
  /** Whether routing may use it on this instance's verdict: unknown counts as up. */
  readonly up: boolean
  /** Probes in a row that had the last probe's outcome (0 before the first probe). */
  readonly consecutive: number
  /** Why the last probe failed; null when it succeeded or none ran yet. */
  readonly lastReason: string | null
}

interface Entry {
  readonly backend: string
  readonly service: ProbedService
  /** host:port: a backend moved to another address starts counting afresh. */
  endpoint: string
  state: CheckState
  /** What this instance last knew the store to hold for it; a different `state` is written. */
  recorded: ServiceHealth | undefined
  successes: number
  failures: number
  lastReason: string | null
}

const keyOf = (backend: string, service: ProbedService) => `${backend}\u0000${service}`

/** The port a service of a backend answers on: `delivery` is the route's LMTP or SMTP port. */
export function serviceTarget(b: ServerInfo, service: ProbedService): ProbeTarget {
  const port = service === 'delivery' ? (b.route === 'lmtp' ? b.ports.lmtp : b.ports.smtp) : b.ports[service]
  return { service, host: b.address, port }
}

export class HealthChecker {
  readonly #o: HealthCheckerOptions
  readonly #log: Logger
  readonly #prober: Prober
  readonly #instance: string
  readonly #entries = new Map<string, Entry>()
  /** Cancels in-flight probes at stop(). */
  readonly #abort = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #started = false
  #stopped = false
  /** The store changed and the other instances have not been told yet (a failed publish is retried). */
  #announce = false

  constructor(options: HealthCheckerOptions) {
    this.#o = options
    this.#log = options.logger.child({ component: 'health' })
    this.#prober = options.prober ?? new TcpProber(options.timeoutMs)
    this.#instance = options.instance ?? `${hostname()}:${process.pid}`
  }

  /** Starts probing now and every interval after, until stop(). */
  start(): void {
    if (this.#started || this.#stopped) return
    this.#started = true
    this.#schedule(0)
  }

  /** Cancels in-flight probes (their results count for nothing) and waits for the round to end. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#abort.abort()
    await this.#running
  }

  /** One round now (the timer's rounds call it too); joins a round already running. */
  check(): Promise<void> {
    this.#running ??= this.#round().finally(() => (this.#running = undefined))
    return this.#running
  }

  /** Every (backend, service) this instance probes, in registry order. */
  states(): ServiceCheck[] {
    return [...this.#entries.values()].map((e) => ({
      backend: e.backend,
      service: e.service,
      state: e.state,
      up: e.state !== 'down',
      consecutive: Math.max(e.successes, e.failures),
      lastReason: e.lastReason,
    }))
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      const began = Date.now()
      void this.check()
        // Each step catches its own failures; whatever else breaks a round must not end the checks.
        .catch((e: unknown) => this.#log.error({ err: describeError(e) }, 'health check round failed'))
        .then(() => {
          if (!this.#stopped) this.#schedule(Math.max(0, this.#o.intervalMs - (Date.now() - began)))
        })
    }, delayMs)
  }

  async #round(): Promise<void> {
    const registry = this.#o.registry()
    const round: { entry: Entry; target: ProbeTarget; stored: ServiceHealth | undefined }[] = []
    const seen = new Set<string>()
    // Hosts and pool members: a pool has no address of its own, its members are probed.
    for (const b of registry.servers) {
      // Maintenance counts as down without probing (the registry says so); its probes would only
      // log the operator's own work as failures.
      if (b.adminState === 'maintenance') continue
      for (const service of this.#o.services) {
        const key = keyOf(b.id, service)
        seen.add(key)
        const stored = registry.healthOf(b.id).get(service)
        round.push({ entry: this.#entry(key, b, service, stored), target: serviceTarget(b, service), stored })
      }
    }
    // Removed backends, backends in maintenance and services no longer configured: forgotten, so
    // they start again from the store's state when they come back.
    for (const key of this.#entries.keys()) if (!seen.has(key)) this.#entries.delete(key)

    const results = await Promise.all(round.map(async ({ entry, target, stored }) => ({ entry, stored, result: await this.#probe(target) })))
    if (this.#stopped) return
    let recorded = false
    for (const { entry, stored, result } of results) {
      this.#observe(entry, result)
      // Written: this instance's own changes, and a verdict the store has no record of (never
      // written, or dropped with a removed backend of the same id). Not: a verdict another
      // instance overwrote since, which would have instances that disagree overwrite each other
      // every round; the next change of either one's mind is written.
      if (entry.state === 'unknown' || (entry.state === entry.recorded && stored !== undefined)) continue
      const outcome = await this.#record(entry)
      if (outcome === 'changed') this.#announce = true
      recorded ||= outcome !== 'failed'
    }
    if (this.#announce) await this.#publish()
    // Also when the store held the state already (another instance recorded it first): this
    // instance's registry may not have heard of that yet.
    if (recorded) await this.#o.apply({ kind: 'health' }).catch((e: unknown) => this.#log.warn({ err: describeError(e) }, 'reloading backend health failed'))
  }

  #entry(key: string, b: ServerInfo, service: ProbedService, stored: ServiceHealth | undefined): Entry {
    const endpoint = `${b.address}:${serviceTarget(b, service).port}`
    let entry = this.#entries.get(key)
    if (!entry) {
      entry = { backend: b.id, service, endpoint, state: stored ?? 'unknown', recorded: stored, successes: 0, failures: 0, lastReason: null }
      this.#entries.set(key, entry)
    } else if (entry.endpoint !== endpoint) {
      entry.endpoint = endpoint
      entry.successes = 0
      entry.failures = 0
    }
    return entry
  }

  async #probe(target: ProbeTarget): Promise<ProbeResult> {
    try {
      return await this.#prober.probe(target, this.#abort.signal)
    } catch (e) {
      // Probers report failures as results; a throw is a bug, and still not a healthy service.
      return { ok: false, reason: `probe error: ${describeError(e)}` }
    }
  }

  /** Counts one result and settles the state when rise or fall probes in a row agree. */
  #observe(e: Entry, r: ProbeResult): void {
    if (r.ok) {
      e.successes++
      e.failures = 0
      e.lastReason = null
      if (e.state !== 'up' && e.successes >= this.#o.rise) {
        e.state = 'up'
        this.#log.info({ backend: e.backend, service: e.service, probes: e.successes }, 'backend service up')
      }
    } else {
      e.failures++
      e.successes = 0
      e.lastReason = r.reason
      if (e.state !== 'down' && e.failures >= this.#o.fall) {
        e.state = 'down'
        this.#log.warn({ backend: e.backend, service: e.service, reason: r.reason, probes: e.failures }, 'backend service down')
      }
    }
  }

  /** Writes the settled state. A failed write is retried next round (the state still differs). */
  async #record(e: Entry): Promise<'changed' | 'same' | 'failed'> {
    const state = e.state as ServiceHealth
    try {
      const changed = await recordHealth(this.#o.store, {
        backend: e.backend,
        service: e.service,
        state,
        detail: state === 'down' ? e.lastReason : null,
        instance: this.#instance,
      })
      e.recorded = state
      return changed ? 'changed' : 'same'
    } catch (err) {
      this.#log.warn({ backend: e.backend, service: e.service, state, err: describeError(err) }, 'recording backend health failed; retrying next round')
      return 'failed'
    }
  }

  /**
   * Tells every instance to reload. A failed announcement is retried after the next round; other
   * instances' own probes and the next change bound how long they lag meanwhile.
   */
  async #publish(): Promise<void> {
    try {
      await this.#o.publish({ kind: 'health' })
      this.#announce = false
    } catch (e) {
      this.#log.warn({ err: describeError(e) }, 'announcing a backend health change failed; retrying next round')
    }
  }
}
