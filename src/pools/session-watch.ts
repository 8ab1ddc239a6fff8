// Pins follow sessions, not only lookups (docs/pools.md, "Sessions"). A pin lives pinFor after
// the user's last lookup, but an IMAP client may hold one session (IDLE) for days without a new
// login or a delivery; once its pin expired, the next login could be pinned by hash to another
// member while the old session still runs there. The director counted a user's expiry from
// the end of their last connection; mailhostd learns the live sessions from each member's
// doveadm HTTP API (`who`, when the `doveadm` section is configured) and keeps their pins live in
// the store, so they never expire under a live session. Every instance may run it: the writes
// are idempotent.

import type { Logger } from 'pino'
import { codeOf, describeError } from '../errors.js'
import { LogThrottle } from '../log.js'
import type { PoolInfo, Registry } from '../resolve/registry.js'
import type { Queryable } from '../store/store.js'
import { keepSessionPins } from './pins-repo.js'

/** Lists the users with live sessions on one server (doveadm who). */
export type SessionLister = (address: string) => Promise<string[]>

export interface SessionWatchOptions {
  readonly store: Queryable
  readonly registry: () => Registry
  readonly who: SessionLister
  /** Whether to ask at all (the `doveadm` section is configured); read every round, so a reload applies. */
  readonly active?: () => boolean
  readonly logger: Logger
  /** Reported per member: users whose live pin names another member while they have sessions here. */
  readonly onSplit?: (pool: string, member: string, users: number) => void
  readonly onError?: () => void
}

/** How often to ask: a third of the shortest pinFor, within 2 s and 60 s, so a pin is kept at least twice before it could expire. */
export function watchInterval(pools: readonly PoolInfo[]): number {
  const shortest = Math.min(...pools.map((p) => p.pinForMs))
  return Math.max(2_000, Math.min(60_000, Math.floor(shortest / 3)))
}

export class SessionWatch {
  readonly #o: SessionWatchOptions
  readonly #throttle = new LogThrottle(60_000)
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = false

  constructor(options: SessionWatchOptions) {
    this.#o = options
  }

  start(): void {
    if (this.#stopped || this.#timer) return
    const tick = () => {
      const pools = this.#pools()
      this.#timer = setTimeout(() => void this.round().finally(() => !this.#stopped && tick()), pools.length === 0 ? 60_000 : watchInterval(pools))
      this.#timer.unref()
    }
    tick()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }

  /** One round now: every member up of every pool mailhostd pins (not director mode). */
  round(): Promise<void> {
    this.#running ??= this.#round().finally(() => (this.#running = undefined))
    return this.#running
  }

  #pools(): PoolInfo[] {
    return this.#o.registry().backends.filter((b): b is PoolInfo => b.kind === 'pool' && b.director === undefined)
  }

  async #round(): Promise<void> {
    if (this.#o.active?.() === false) return
    const registry = this.#o.registry()
    const work: Promise<void>[] = []
    for (const pool of this.#pools()) {
      for (const m of pool.members) if (registry.isUp(m)) work.push(this.#member(pool, m.id, m.address))
    }
    await Promise.all(work)
  }

  async #member(pool: PoolInfo, member: string, address: string): Promise<void> {
    try {
      const users = [...new Set((await this.#o.who(address)).map((u) => u.toLowerCase()))]
      const r = await keepSessionPins(this.#o.store, { pool: pool.id, member, addresses: users, pinForMs: pool.pinForMs })
      if (r.elsewhere.length > 0) {
        this.#o.onSplit?.(pool.id, member, r.elsewhere.length)
        this.#throttle.run(`split:${member}`, (suppressed) =>
          this.#o.logger.error(
            { pool: pool.id, member, users: r.elsewhere.slice(0, 10), count: r.elsewhere.length, suppressed },
            'users with live sessions on this member are pinned to another one: kick their sessions here (mailhostctl pool flush/move-user --kick)',
          ),
        )
      }
    } catch (e) {
      this.#o.onError?.()
      this.#throttle.run(`error:${member}`, (suppressed) =>
        this.#o.logger.warn({ pool: pool.id, member, code: codeOf(e), err: describeError(e), suppressed }, "asking a pool member's doveadm for its sessions failed; their pins live on lookups alone meanwhile"),
      )
    }
  }
}
