// This instance's view of the pins (docs/pools.md, "Consistency"). A lookup for a pooled user
// reads the local pin without a store round trip; only a user this instance has no live pin for
// costs one atomic claim in the store, which every instance asks alike, so they all get the same
// member. Touched pins are refreshed in the store in one batched statement per interval.
//
// Why two instances never send one user to two members: a local pin is used only while the store
// is sure to still hold it. The store keeps a pin live for pinFor after its last_seen, which it
// set to its own now() while running our claim or refresh; we count pinFor from when we SENT that
// statement, which is earlier, so our copy always dies first. The store replaces a pin only when
// it is not live or its member may not hold pins (down, maintenance, removed), and the admin's
// flush and move drop it there and tell every instance on the change bus; a notification that is
// lost costs at most one refresh interval, because the refresh returns only the pins the store
// still holds as we hold them and we drop the others.

import type { Logger } from 'pino'
import { describeError } from '../errors.js'
import { LogThrottle } from '../log.js'
import type { PoolInfo, PoolMember, Registry } from '../resolve/registry.js'
import type { Queryable } from '../store/store.js'
import { claimPin, refreshPins, sweepPins, type PinSelector } from './pins-repo.js'
import { chooseMember } from './rendezvous.js'

interface LocalPin {
  readonly pool: string
  readonly member: string
  readonly pinForMs: number
  /** Local clock: the last lookup on this instance. */
  touchedAt: number
  /** Local clock: when the last claim or refresh the store answered for this pin was sent. */
  confirmedAt: number
  /** Touched since the last refresh was sent. */
  dirty: boolean
  /** Just claimed: the lookup that claimed it is counted as claimed, not again as pinned. */
  fresh: boolean
}

/** What a claim came to: a member, none because no member takes users, or no answer from the store. */
export type ClaimOutcome = 'pinned' | 'none-up' | 'failed'

/** What the routing decision reads (Registry holds one). */
export interface PinReader {
  /** The member a live local pin sends `address` to, touching it; undefined: claim first. */
  pinned(address: string, pool: PoolInfo, registry: Registry): PoolMember | undefined
  /** Whether a live local pin exists (nothing touched or counted): settlePins() asks before claiming. */
  holds(address: string, pool: PoolInfo, registry: Registry): boolean
  /**
   * Claims in the store (a local miss): keeps the live pin there, else pins the hash choice.
   * Gives up ('failed') after `timeoutMs` (what is left of the lookup's deadline) at the latest.
   */
  claim(address: string, pool: PoolInfo, registry: Registry, timeoutMs?: number): Promise<ClaimOutcome>
}

export interface PinLedgerOptions {
  readonly store: Queryable
  readonly logger: Logger
  /** How often touched pins are refreshed in the store (and expired ones swept). */
  readonly refreshIntervalMs: number
  /** A claim gives up after this long (the lookup deadline): the lookup fails temporarily. */
  readonly claimTimeoutMs: number
  /** Per claim and refresh outcome, for metrics. */
  readonly onOutcome?: (pool: string, outcome: 'pinned' | 'claimed' | 'none-up' | 'failed') => void
  readonly onStoreError?: () => void
  readonly now?: () => number
}

/** Sweeping expired rows from the store is housekeeping: once a minute is plenty. */
const SWEEP_EVERY_MS = 60_000

export class PinLedger implements PinReader {
  readonly #o: PinLedgerOptions
  readonly #now: () => number
  readonly #pins = new Map<string, LocalPin>()
  /** One claim per address at a time: concurrent lookups of one user share it. */
  readonly #claims = new Map<string, Promise<ClaimOutcome>>()
  readonly #throttle = new LogThrottle(10_000)
  #timer: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined
  #lastSweep = 0
  #closed = false

  constructor(options: PinLedgerOptions) {
    this.#o = options
    this.#now = options.now ?? (() => performance.now())
  }

  /** Live local pins (some may have expired since the last sweep of this map). */
  get size(): number {
    return this.#pins.size
  }

  start(): void {
    if (this.#timer || this.#closed) return
    this.#timer = setInterval(() => void this.refresh(), this.#o.refreshIntervalMs)
    this.#timer.unref()
  }

  /** Stops refreshing, after one last refresh so the store knows what this instance used. */
  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#refreshing
    await this.refresh()
  }

  pinned(address: string, pool: PoolInfo, registry: Registry): PoolMember | undefined {
    const now = this.#now()
    const live = this.#live(address, pool, registry, now)
    if (live === undefined) return undefined
    live.pin.touchedAt = now
    live.pin.dirty = true
    if (live.pin.fresh) live.pin.fresh = false
    else this.#o.onOutcome?.(pool.id, 'pinned')
    return live.member
  }

  holds(address: string, pool: PoolInfo, registry: Registry): boolean {
    return this.#live(address, pool, registry, this.#now()) !== undefined
  }

  /** The local pin and its member when the pin may be used; a pin that may not is dropped. */
  #live(address: string, pool: PoolInfo, registry: Registry, now: number): { pin: LocalPin; member: PoolMember } | undefined {
    const pin = this.#pins.get(address)
    if (pin === undefined) return undefined
    const member = pin.pool === pool.id ? registry.member(pin.member) : undefined
    // A member down, in maintenance or removed loses its users at once; a pin not used or not
    // confirmed for pinFor may have been replaced in the store.
    if (member === undefined || member.pool !== pool.id || !registry.isUp(member) || now - pin.touchedAt >= pin.pinForMs || now - pin.confirmedAt >= pin.pinForMs) {
      this.#pins.delete(address)
      return undefined
    }
    return { pin, member }
  }

  claim(address: string, pool: PoolInfo, registry: Registry, timeoutMs = this.#o.claimTimeoutMs): Promise<ClaimOutcome> {
    let claim = this.#claims.get(address)
    if (!claim) {
      claim = this.#claim(address, pool, registry).finally(() => this.#claims.delete(address))
      this.#claims.set(address, claim)
    }
    if (timeoutMs >= this.#o.claimTimeoutMs) return claim
    // A caller with less time left than a claim may take stops waiting sooner; the claim goes on.
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<ClaimOutcome>((resolve) => (timer = setTimeout(() => resolve('failed'), Math.max(0, timeoutMs))))
    return Promise.race([claim, late]).finally(() => clearTimeout(timer))
  }

  async #claim(address: string, pool: PoolInfo, registry: Registry): Promise<ClaimOutcome> {
    const sent = this.#now()
    const usable = pool.members.filter((m) => registry.isUp(m)).map((m) => m.id)
    const choice = chooseMember(address, registry.eligibleMembers(pool))?.id
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.#o.claimTimeoutMs)))
    const work = claimPin(this.#o.store, { address, pool: pool.id, choice, usable, pinForMs: pool.pinForMs }).then(
      (stored) => {
        // Recorded even when the lookup has given up waiting: the store holds it either way.
        if (stored !== undefined) this.#pins.set(address, { pool: pool.id, member: stored.member, pinForMs: pool.pinForMs, touchedAt: sent, confirmedAt: sent, dirty: false, fresh: true })
        return stored === undefined ? ('none-up' as const) : ('pinned' as const)
      },
      (e: unknown) => {
        this.#storeError('claiming a pool pin failed; the lookup fails temporarily', e)
        return 'failed' as const
      },
    )
    const outcome = await Promise.race([work, timeout]).finally(() => clearTimeout(timer))
    if (outcome === 'timeout') {
      this.#storeError('claiming a pool pin took longer than the lookup deadline; the lookup fails temporarily', undefined)
      this.#o.onOutcome?.(pool.id, 'failed')
      return 'failed'
    }
    this.#o.onOutcome?.(pool.id, outcome === 'pinned' ? 'claimed' : outcome)
    return outcome
  }

  /** Drops local pins an admin operation dropped in the store (every instance hears of it). */
  drop(s: PinSelector | 'all'): number {
    if (s === 'all') {
      const n = this.#pins.size
      this.#pins.clear()
      return n
    }
    let n = 0
    for (const [address, p] of this.#pins) {
      if (p.pool === s.pool && (s.member === undefined || p.member === s.member) && (s.address === undefined || address === s.address)) {
        this.#pins.delete(address)
        n++
      }
    }
    return n
  }

  /** One refresh now (the timer runs it too); joins one already running. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = undefined))
    return this.#refreshing
  }

  async #refresh(): Promise<void> {
    const now = this.#now()
    const batch: { address: string; pin: LocalPin }[] = []
    for (const [address, pin] of this.#pins) {
      if (now - pin.touchedAt >= pin.pinForMs || now - pin.confirmedAt >= pin.pinForMs) this.#pins.delete(address)
      else if (pin.dirty) {
        pin.dirty = false
        batch.push({ address, pin })
      }
    }
    const sent = this.#now()
    try {
      if (batch.length > 0) {
        const held = await refreshPins(
          this.#o.store,
          batch.map(({ address, pin }) => ({ address, pool: pin.pool, member: pin.member, pinForMs: pin.pinForMs })),
        )
        for (const { address, pin } of batch) {
          // Only the pin we sent: a claim may have replaced it locally meanwhile.
          if (this.#pins.get(address) !== pin) continue
          if (held.has(address)) pin.confirmedAt = sent
          else this.#pins.delete(address)
        }
      }
      if (now - this.#lastSweep >= SWEEP_EVERY_MS) {
        this.#lastSweep = now
        await sweepPins(this.#o.store)
      }
    } catch (e) {
      // Touched again next time; meanwhile each pin lives on only until pinFor after its last
      // confirmation, so the store's view is never overtaken.
      for (const { pin } of batch) pin.dirty = true
      this.#storeError('refreshing pool pins failed; pins expire pinFor after their last confirmation', e)
    }
  }

  #storeError(message: string, e: unknown): void {
    this.#o.onStoreError?.()
    this.#throttle.run(message, (suppressed) => this.#o.logger.warn({ err: e === undefined ? undefined : describeError(e), suppressed }, message))
  }
}
