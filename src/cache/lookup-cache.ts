// The resolution cache and the failure model's time rules (architecture.md §1-§2):
// - bounded entry count, TTL for found answers, a shorter TTL for authoritative misses;
// - one directory query per key at a time (lru-cache's fetchMethod is single-flight);
// - every caller gets an answer within its deadline; a slow query keeps running in the
//   background and fills the cache when it lands;
// - when the directory fails or is late, an expired *found* answer is served if it was
//   confirmed by the directory no longer than maxStale ago. Misses are never served stale
//   (a stale "no such user" during an outage could bounce mail for a new account), and a cold
//   miss while the directory is down is a failure, never a miss.

import { LRUCache } from 'lru-cache'
import { DeadlineError, MailhostdError } from '../errors.js'
import type { Resolution } from '../resolve/resolver.js'

export interface CacheOptions {
  readonly maxEntries: number
  readonly ttlMs: number
  readonly negativeTtlMs: number
  readonly maxStaleMs: number
  /** Monotonic clock in ms; injectable so tests can move time. */
  readonly now?: () => number
  /**
   * Whether the directory would be called at all now (the circuit breaker). When it would
   * refuse, the cache answers from its stale reserve at once, without starting a fetch.
   */
  readonly directory?: { readonly accepting: boolean; readonly refusal: Error }
}

export type CacheLayer = 'cache' | 'stale' | 'directory'

export type CacheOutcome =
  | { readonly ok: true; readonly resolution: Resolution; readonly layer: CacheLayer; readonly ageMs: number }
  | { readonly ok: false; readonly error: unknown }

export type Loader = (key: string, signal: AbortSignal) => Promise<Resolution>

interface Entry {
  readonly resolution: Resolution
  /** When the directory last confirmed this answer. */
  readonly fetchedAt: number
}

export interface CacheStats {
  hits: number
  misses: number
  staleServed: number
  evictions: number
}

export class LookupCache {
  readonly #lru: LRUCache<string, Entry>
  readonly #now: () => number
  readonly #opts: CacheOptions
  readonly stats: CacheStats = { hits: 0, misses: 0, staleServed: 0, evictions: 0 }

  constructor(opts: CacheOptions, load: Loader) {
    this.#opts = opts
    this.#now = opts.now ?? (() => performance.now())
    this.#lru = new LRUCache<string, Entry>({
      max: opts.maxEntries,
      ttl: opts.ttlMs,
      perf: { now: this.#now },
      // Read the clock on every check: the default memoises it, which blurs TTL edges.
      ttlResolution: 0,
      allowStale: false,
      // Expired entries stay until evicted: they are the stale-on-error reserve.
      noDeleteOnStaleGet: true,
      noDeleteOnFetchRejection: true,
      allowStaleOnFetchRejection: false,
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') this.stats.evictions++
      },
      fetchMethod: async (key, _stale, { signal, options }) => {
        const resolution = await load(key, signal)
        if (resolution.kind === 'none') options.ttl = this.#opts.negativeTtlMs
        return { resolution, fetchedAt: this.#now() }
      },
    })
  }

  async get(key: string, deadlineMs: number): Promise<CacheOutcome> {
    const fresh = this.#lru.get(key)
    if (fresh) {
      this.stats.hits++
      return { ok: true, resolution: fresh.resolution, layer: 'cache', ageMs: this.#now() - fresh.fetchedAt }
    }
    this.stats.misses++
    const dir = this.#opts.directory
    if (dir && !dir.accepting) return this.#staleOr(key, dir.refusal)
    const fetching = this.#lru.fetch(key)
    // The fetch may outlive this caller (deadline): its rejection must never go unhandled.
    fetching.catch(() => undefined)
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineError(deadlineMs)), deadlineMs)
    })
    try {
      const entry = await Promise.race([fetching, deadline])
      if (entry) return { ok: true, resolution: entry.resolution, layer: 'directory', ageMs: 0 }
      // lru-cache resolves undefined only when the fetch was aborted; treat it as a failure.
      return this.#staleOr(key, new DeadlineError(deadlineMs))
    } catch (error) {
      return this.#staleOr(key, error)
    } finally {
      clearTimeout(timer)
    }
  }

  #staleOr(key: string, error: unknown): CacheOutcome {
    // Data errors (duplicate owners, alias loops) need a human; an older answer is not safer.
    if (error instanceof MailhostdError && !error.transient) return { ok: false, error }
    const old = this.#lru.peek(key, { allowStale: true })
    if (old && old.resolution.kind === 'found') {
      const age = this.#now() - old.fetchedAt
      if (age <= this.#opts.maxStaleMs) {
        // Another caller may have refreshed the entry meanwhile: then it is simply fresh.
        const layer = age <= this.#opts.ttlMs ? 'cache' : 'stale'
        if (layer === 'stale') this.stats.staleServed++
        return { ok: true, resolution: old.resolution, layer, ageMs: age }
      }
    }
    return { ok: false, error }
  }

  /** Drops one key (a change notification); the next lookup asks the directory. */
  invalidate(key: string): void {
    this.#lru.delete(key)
  }

  clear(): void {
    this.#lru.clear()
  }

  get size(): number {
    return this.#lru.size
  }
}
