// Message rate limits over a sliding window, in memory, per mailhostd instance. A message counts
// once however many policy requests it causes (one per RCPT): it is identified by Postfix's
// `instance` attribute, and a message admitted once stays admitted for its later requests.
// Memory is bounded: at most `maxKeys` counters per room and remembered messages, least recent
// first out. Counters live in rooms by what they count, so that what costs a sender nothing to
// vary (made-up login names, client addresses) cannot push an account's counter out and reset it.

import { LRUCache } from 'lru-cache'
import type { AccountKey } from '../resolve/login-account.js'

/** Accounts (and names that are none) as login-account.ts keys them; client addresses. */
export type RateRoom = AccountKey['room'] | 'client'

export interface Limit {
  /** Stable identity of the counter within its room: rule set, attribute, value and the limit itself. */
  readonly bucket: string
  readonly room: RateRoom
  readonly messages: number
  readonly windowMs: number
}

export class RateLimiter {
  readonly #rooms: Readonly<Record<RateRoom, LRUCache<string, number[]>>>
  readonly #admitted: LRUCache<string, true>
  readonly #now: () => number

  constructor(opts: { maxKeys?: number; now?: () => number } = {}) {
    const max = opts.maxKeys ?? 100_000
    this.#now = opts.now ?? (() => Date.now())
    this.#rooms = { account: new LRUCache({ max }), unknown: new LRUCache({ max }), client: new LRUCache({ max }) }
    this.#admitted = new LRUCache({ max })
  }

  /**
   * Admits the message `instance` under every limit, or returns the first limit it would break.
   * Nothing is counted unless the message is admitted under all of them.
   */
  admit<L extends Limit>(instance: string, limits: readonly L[]): L | undefined {
    if (limits.length === 0 || this.#admitted.has(instance)) return undefined
    const now = this.#now()
    const windows = limits.map((l) => this.#window(l, now))
    const broken = limits.find((l, i) => windows[i]!.length >= l.messages)
    if (broken) return broken
    limits.forEach((l, i) => {
      const w = windows[i]!
      w.push(now)
      this.#rooms[l.room].set(l.bucket, w)
    })
    this.#admitted.set(instance, true)
    return undefined
  }

  /** The timestamps still inside the window, oldest first (older ones dropped). */
  #window(l: Limit, now: number): number[] {
    const hits = this.#rooms[l.room].get(l.bucket) ?? []
    let first = 0
    while (first < hits.length && hits[first]! <= now - l.windowMs) first++
    return first === 0 ? hits : hits.slice(first)
  }
}
