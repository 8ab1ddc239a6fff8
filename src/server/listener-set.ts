// The listeners one daemon runs, by name: binding them at start, moving them on a reload (the
// new address bound before the old one closes, so there is no moment without a listener), and
// closing them. What each listener serves is the daemon's business; this module only knows
// names, addresses and how to open and close them.

import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'

export interface BoundAddress {
  readonly name: string
  readonly host: string
  readonly port: number
  /** Unix socket listeners (dict). */
  readonly path?: string
}

/** A listener the configuration asks for that is not bound where it says, and where it still is. */
export interface UnboundListener {
  readonly name: string
  readonly address: string
  readonly boundAt?: string
}

/** A listener the configuration asks for: its name, and what it is bound to (a change re-binds it). */
export interface ListenerSpec {
  readonly name: string
  /** The configured address (host and port, or socket path and mode). */
  readonly address: string
  open(): Promise<RunningListener>
}

export interface RunningListener {
  readonly address: string
  readonly bound: BoundAddress
  /** Stops accepting; connections finish within graceMs. */
  close(graceMs: number): Promise<void>
  readonly connections?: () => number
}

export class ListenerSet {
  readonly #running = new Map<string, RunningListener>()

  constructor(
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** Where each listener is bound, in start order. */
  get bound(): BoundAddress[] {
    return [...this.#running.values()].map((l) => l.bound)
  }

  /** The specs not bound where they say (a re-bind that failed on reload), with where they still are. */
  unbound(specs: readonly ListenerSpec[]): UnboundListener[] {
    return specs.flatMap((spec) => {
      const running = this.#running.get(spec.name)
      if (running?.address === spec.address) return []
      return [{ name: spec.name, address: spec.address, ...(running ? { boundAt: running.address } : {}) }]
    })
  }

  /** Binds a listener and starts counting its connections. Throws when it cannot be bound. */
  async bind(spec: ListenerSpec): Promise<void> {
    const running = await spec.open()
    this.#running.set(spec.name, running)
    if (running.connections) this.metrics.trackConnections(spec.name, running.connections)
  }

  /**
   * Listeners whose address is unchanged are kept, with their connections. A moved one is bound
   * at its new address first and the old one closed after (its connections finish their
   * requests, within graceMs); a removed one is closed; a new one is bound. A listener that
   * cannot be bound is logged and left out (readiness reports it), the rest go on.
   */
  async rebind(specs: readonly ListenerSpec[], graceMs: number): Promise<void> {
    const wanted = new Set(specs.map((s) => s.name))
    const closing: Promise<void>[] = []
    const retire = (name: string, old: RunningListener, why: string) => {
      this.logger.info({ listener: name, address: old.address }, why)
      closing.push(old.close(graceMs).catch((e: unknown) => this.logger.warn({ listener: name, err: describeError(e) }, 'listener close failed')))
    }
    // Removed first: a listener taking over a removed one's address can bind it then.
    for (const [name, old] of [...this.#running]) {
      if (wanted.has(name)) continue
      this.#running.delete(name)
      this.metrics.untrackConnections(name)
      retire(name, old, 'listener removed by the configuration; closing it')
    }
    await new Promise((resolve) => setImmediate(resolve))
    for (const spec of specs) {
      const old = this.#running.get(spec.name)
      if (old?.address === spec.address) continue
      try {
        await this.bind(spec)
      } catch (e) {
        this.logger.error(
          { listener: spec.name, address: spec.address, err: describeError(e), ...(old ? { keptAt: old.address } : {}) },
          old ? 'listener could not move to its new address; it stays where it was' : 'listener could not be bound',
        )
        if (old) this.#running.set(spec.name, old)
        continue
      }
      this.logger.info({ listener: spec.name, address: spec.address }, old ? 'listener moved' : 'listener added')
      if (old) retire(spec.name, old, 'closing the listener at its old address; its connections finish first')
    }
    // Closing old listeners runs on in the background: their connections drain within the grace.
    void Promise.all(closing)
  }

  /** Stops every listener; in-flight requests finish within graceMs. Failures are logged. */
  async close(graceMs: number): Promise<void> {
    const results = await Promise.allSettled([...this.#running.values()].map((l) => l.close(graceMs)))
    for (const r of results) if (r.status === 'rejected') this.logger.warn({ err: String(r.reason) }, 'listener close failed')
  }
}
