// Message rate limits over a sliding window, in memory, per mailhostd instance. A message counts
// once however many policy requests it causes (one per RCPT): it is identified by Postfix's
// `instance` attribute, and a message admitted once stays admitted for its later requests.
// Memory is bounded: at most `maxKeys` counters and remembered messages, least recent first out.

import { LRUCache } from 'lru-cache'

export interface Limit {
  /** Stable identity of the counter: rule set, attribute, value and the limit itself. */
  readonly bucket: string
  readonly messages: number
  readonly windowMs: number
}

export class RateLimiter {
  readonly #hits: LRUCache<string, number[]>
  readonly #admitted: LRUCache<string, true>
  readonly #now: () => number

  constructor(opts: { maxKeys?: number; now?: () => number } = {}) {
    const max = opts.maxKeys ?? 100_000
    this.#now = opts.now ?? (() => Date.now())
    this.#hits = new LRUCache({ max })
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
      this.#hits.set(l.bucket, w)
    })
    this.#admitted.set(instance, true)
    return undefined
  }

  /** The timestamps still inside the window, oldest first (older ones dropped). */
  #window(l: Limit, now: number): number[] {
    const hits = this.#hits.get(l.bucket) ?? []
    let first = 0
    while (first < hits.length && hits[first]! <= now - l.windowMs) first++
    return first === 0 ? hits : hits.slice(first)
  }
}
