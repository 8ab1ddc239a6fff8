// The resolution cache and the failure model's time rules (architecture.md §1-§2):
// - bounded entry count, TTL for found answers, a shorter TTL for authoritative misses;
// - found answers and answers without a mailbox (misses, held data errors) live in separate
//   bounded rooms: a flood of distinct unknown addresses, which costs a sender nothing, churns
//   the misses' room only and never pushes out a found answer with its stale reserve;
// - one directory query per key at a time (single flight);
// - every caller gets an answer within its deadline; a slow query keeps running in the
//   background and fills the cache when it lands;
// - when the directory fails or is late, an expired *found* answer is served if it was
//   confirmed by the directory no longer than maxStale ago. Misses are never served stale
//   (a stale "no such user" during an outage could bounce mail for a new account), and a cold
//   miss while the directory is down is a failure, never a miss;
// - data the directory answered with but that must not be guessed about (duplicate owners, an
//   alias loop: DirectoryDataError) is held like a miss, for the negative TTL: a temporary
//   failure, without a directory query per lookup, until it expires or a change touches it;
// - change notifications evict by dependency: every answer remembers the addresses it asked
//   the directory about and the entries it got back, so a change to one account evicts its
//   own key, its `user+ext@` keys, the aliases and catch-alls that reached it and the cached
//   misses for an address that now exists, and nothing else.
//
// Freshness is decided here, from when the directory confirmed an answer and the TTLs in force
// now: a reload that changes cache.ttl, negativeTtl or maxStale (setTimes) applies to every
// cached answer at once, by its age, and drops none of them. Answers younger than a shortened
// TTL stay fresh, older ones become the stale reserve; a lengthened TTL makes recent answers
// fresh again. Expired answers stay until evicted: they are the stale-on-error reserve.
//
// Fetches run outside the rooms (an in-flight fetch holds no slot, so it cannot push out an
// answer either). An invalidation that touches what a fetch in flight read revokes its result:
// it goes to the callers that were already waiting, later callers ask the directory again.

import { LRUCache } from 'lru-cache'
import { DeadlineError, DirectoryDataError, MailhostdError } from '../errors.js'
import type { Resolution } from '../resolve/resolver.js'
import { HeldFailure, heldMailboxIds, hold, isFound, isHeldFailure, resolutionOf, type HeldAnswer } from './held-answer.js'

/** The cache's time rules; setTimes() changes them while it runs. */
export interface CacheTimes {
  readonly ttlMs: number
  readonly negativeTtlMs: number
  readonly maxStaleMs: number
}

export interface CacheOptions extends CacheTimes {
  /** Room for found answers (the stale reserve). Fetches in flight are bounded by it too. */
  readonly maxEntries: number
  /** Room for answers without a mailbox: authoritative misses and held data errors. */
  readonly maxMisses: number
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

/** What one resolution consulted: a change to any of these may change its answer. */
export interface Dependencies {
  /** Canonical addresses asked of the directory (every findByAddress argument). */
  readonly addresses: Iterable<string>
  /** Ids of the directory entries returned (LDAP DN, `sql:account:N`, ...). */
  readonly ids: Iterable<string>
}

/** See LookupCache.ticket(). */
export interface PrimeTicket {
  readonly seq: number
  /** The cache's clock then: a primed answer is as old as the read it came from. */
  readonly at: number
}

export interface Loaded {
  readonly resolution: Resolution
  readonly deps: Dependencies
}

/**
 * The directory answered, with data that must not be guessed about: held like a miss, as a
 * temporary failure, with what the resolution read up to it (a fix to either owner evicts it).
 */
export interface Unusable {
  readonly failure: DirectoryDataError
  readonly deps: Dependencies
}

/**
 * Resolves one canonical key. A loader that tracks nothing may return the bare Resolution: the
 * answer then depends on its key and on the mailboxes it found only. A loader that throws is a
 * failure not held (the next lookup asks again).
 */
export type Loader = (key: string, signal: AbortSignal) => Promise<Loaded | Unusable | Resolution>

interface Entry {
  /** The answer, held compactly (held-answer.ts). */
  readonly held: HeldAnswer
  /** When the directory last confirmed this answer. */
  readonly fetchedAt: number
  /**
   * Dependencies beyond the implicit ones (the key's own address, the ids of the mailboxes it
   * found), or undefined: most answers (an address owned by one account) have none, and at a
   * million cached keys every per-entry array and string counts (docs/benchmarks.md, Scale).
   */
  readonly extra: ExtraDependencies | undefined
  /** The invalidation sequence number when the fetch started. */
  readonly startSeq: number
  /** Set by the invalidation that made this answer unusable: never served from the cache again. */
  revokedAt: number | undefined
}

export interface CacheStats {
  hits: number
  misses: number
  staleServed: number
  /** Found answers evicted to stay within maxEntries (the misses' room churns uncounted). */
  evictions: number
  /** Keys evicted by change notifications. */
  invalidated: number
}

interface ExtraDependencies {
  readonly addresses: readonly string[]
  readonly ids: readonly string[]
}

// One namespace for both kinds of dependency in the (small, bounded) memory of recent
// invalidations; the prefixes keep an id from matching an address.
const addressDep = (address: string) => `a:${address}`
const idDep = (id: string) => `i:${id}`

/**
 * dependency -> the keys depending on it. A lone key is stored as itself, a Set only from the
 * second one on: nearly every dependency has exactly one dependent, and a Set per entry was
 * the largest part of a cached answer's memory.
 */
type Dependents = Map<string, string | Set<string>>

function addDependent(index: Dependents, dep: string, key: string): void {
  const have = index.get(dep)
  if (have === undefined) index.set(dep, key)
  else if (typeof have === 'string') {
    if (have !== key) index.set(dep, new Set([have, key]))
  } else have.add(key)
}

function removeDependent(index: Dependents, dep: string, key: string): void {
  const have = index.get(dep)
  if (have === undefined) return
  if (typeof have === 'string') {
    if (have === key) index.delete(dep)
    return
  }
  have.delete(key)
  if (have.size === 1) index.set(dep, have.values().next().value!)
}

function addDependentsTo(out: Set<string>, index: Dependents, dep: string): void {
  const have = index.get(dep)
  if (have === undefined) return
  if (typeof have === 'string') out.add(have)
  else for (const k of have) out.add(k)
}

/**
 * How many recently invalidated dependencies are remembered for in-flight fetches. Beyond it
 * the memory is dropped and every fetch already running is treated as overlapping (not kept):
 * bounded memory for the price of a few extra directory queries after a very large change.
 */
const INVALIDATION_MEMORY = 4096

/** One fetch in flight: what its callers wait for, and how to give up on it. */
interface Flight {
  readonly done: Promise<Entry | undefined>
  readonly abort: AbortController
}

export class LookupCache {
  /** Found answers: what lookups mostly hit, and the stale reserve. */
  readonly #found: LRUCache<string, Entry>
  /** Misses and held data errors: never served stale, so losing one costs one directory query. */
  readonly #misses: LRUCache<string, Entry>
  readonly #now: () => number
  readonly #opts: CacheOptions
  readonly #load: Loader
  #times: CacheTimes
  readonly stats: CacheStats = { hits: 0, misses: 0, staleServed: 0, evictions: 0, invalidated: 0 }

  /** Bumped by every invalidation; fetches and callers note it when they start. */
  #seq = 0
  /**
   * Canonical address / directory entry id -> keys of the usable cached entries that depend on
   * it. A key's own address is not listed: #indexed has it.
   */
  readonly #byAddress: Dependents = new Map()
  readonly #byId: Dependents = new Map()
  /** key -> its usable cached entry: exactly the entries whose dependencies are in #byAddress and #byId. */
  readonly #indexed = new Map<string, Entry>()
  /** dependency -> sequence number of its latest invalidation (see INVALIDATION_MEMORY). */
  readonly #invalidatedAt = new Map<string, number>()
  /** Fetches that started before this sequence number are revoked (clear(), memory overflow). */
  #floor = 0
  /** Keys whose fetch is in flight, oldest first. */
  readonly #pending = new Map<string, Flight>()

  constructor(opts: CacheOptions, load: Loader) {
    this.#opts = opts
    this.#load = load
    this.#times = { ttlMs: opts.ttlMs, negativeTtlMs: opts.negativeTtlMs, maxStaleMs: opts.maxStaleMs }
    this.#now = opts.now ?? (() => performance.now())
    // Whatever leaves a room (evicted, replaced, deleted) leaves the dependency index with it.
    const room = (max: number, counted: boolean) =>
      new LRUCache<string, Entry>({
        max,
        dispose: (entry, key, reason) => {
          if (counted && reason === 'evict') this.stats.evictions++
          this.#unindex(key, entry)
        },
      })
    this.#found = room(opts.maxEntries, true)
    this.#misses = room(opts.maxMisses, false)
  }

  async get(key: string, deadlineMs: number): Promise<CacheOutcome> {
    const arrived = this.#seq
    const hit = this.getFresh(key)
    if (hit !== undefined) return hit
    const held = this.#heldFailure(key)
    if (held !== undefined) return { ok: false, error: held }
    this.stats.misses++
    const dir = this.#opts.directory
    if (dir && !dir.accepting) return this.#staleOr(key, dir.refusal)
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineError(deadlineMs)), deadlineMs)
    })
    try {
      for (;;) {
        const entry = await Promise.race([this.#fetch(key), deadline])
        // Undefined when the fetch was given up (too many in flight): a failure like a timeout.
        if (!entry) return this.#staleOr(key, new DeadlineError(deadlineMs))
        // A fetch revoked by an invalidation that came before this caller did cannot answer it:
        // ask again (the new fetch starts after that invalidation, so this repeats at most once).
        if (entry.revokedAt !== undefined && entry.revokedAt <= arrived) continue
        if (isHeldFailure(entry.held)) return { ok: false, error: entry.held.error }
        return { ok: true, resolution: resolutionOf(entry.held), layer: 'directory', ageMs: 0 }
      }
    } catch (error) {
      return this.#staleOr(key, error)
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * get()'s answer when the key has a fresh, usable entry (counted as a hit), without a promise;
   * undefined, counting and starting nothing, when get() would have to wait or fall back.
   */
  getFresh(key: string): Extract<CacheOutcome, { ok: true }> | undefined {
    // Expired entries too: whether one is fresh is decided by the TTLs in force now.
    const fresh = this.#found.get(key) ?? this.#misses.get(key)
    if (fresh && fresh.revokedAt === undefined && !isHeldFailure(fresh.held) && this.#isFresh(fresh)) {
      this.stats.hits++
      return { ok: true, resolution: resolutionOf(fresh.held), layer: 'cache', ageMs: this.#now() - fresh.fetchedAt }
    }
    return undefined
  }

  /** The data error held for `key` while it is fresh (counted as a hit: the directory is not asked). */
  #heldFailure(key: string): DirectoryDataError | undefined {
    const entry = this.#misses.get(key)
    if (!entry || entry.revokedAt !== undefined || !isHeldFailure(entry.held) || !this.#isFresh(entry)) return undefined
    this.stats.hits++
    return entry.held.error
  }

  /** Joins the fetch in flight for `key` or starts one; never returns the cached value itself. */
  #fetch(key: string): Promise<Entry | undefined> {
    const flying = this.#pending.get(key)
    if (flying) return flying.done
    // Bounded like the rooms: past it, the oldest fetch is given up (its callers fall back to
    // the stale reserve or a temporary failure, as at their deadline).
    if (this.#pending.size >= this.#opts.maxEntries) {
      const [oldest, flight] = this.#pending.entries().next().value!
      this.#pending.delete(oldest)
      flight.abort.abort()
    }
    const abort = new AbortController()
    const startSeq = this.#seq
    const given = new Promise<undefined>((resolve) => abort.signal.addEventListener('abort', () => resolve(undefined), { once: true }))
    const loading = this.#load(key, abort.signal).then((loaded) => (abort.signal.aborted ? undefined : this.#landed(key, loaded, startSeq)))
    const done = Promise.race([loading, given])
    const flight = { done, abort }
    this.#pending.set(key, flight)
    const settle = () => {
      if (this.#pending.get(key) === flight) this.#pending.delete(key)
    }
    done.then(settle, settle)
    // A fetch given up may still fail later, with nobody waiting.
    loading.catch(() => undefined)
    return done
  }

  /** A fetch's result: stored in its room unless an invalidation since it started touched what it read. */
  #landed(key: string, loaded: Loaded | Unusable | Resolution, startSeq: number): Entry {
    const { held, deps } = heldOf(loaded)
    const entry: Entry = { held, fetchedAt: this.#now(), extra: extraDependencies(key, heldMailboxIds(held), deps), startSeq, revokedAt: undefined }
    entry.revokedAt = this.#overlap(key, entry)
    // Kept only for its waiting callers: the key keeps no answer, as the invalidation left it.
    if (entry.revokedAt !== undefined) this.#drop(key)
    else this.#store(key, entry)
    return entry
  }

  #staleOr(key: string, error: unknown): CacheOutcome {
    // Data errors (duplicate owners, alias loops) need a human; an older answer is not safer.
    if (error instanceof MailhostdError && !error.transient) return { ok: false, error }
    const old = this.#found.peek(key)
    if (old && isFound(old.held) && !isHeldFailure(old.held) && old.revokedAt === undefined) {
      const age = this.#now() - old.fetchedAt
      if (age <= this.#times.maxStaleMs) {
        // Another caller may have refreshed the entry meanwhile: then it is simply fresh.
        const layer = age <= this.#times.ttlMs ? 'cache' : 'stale'
        if (layer === 'stale') this.stats.staleServed++
        return { ok: true, resolution: resolutionOf(old.held), layer, ageMs: age }
      }
    }
    return { ok: false, error }
  }

  /** Where things stood before a bulk read of the directory began; pass it to prime(). */
  ticket(): PrimeTicket {
    return { seq: this.#seq, at: this.#now() }
  }

  /**
   * Stores an answer resolved outside the cache, as if a fetch started at `ticket` had loaded
   * it (the warm-up builds a whole directory listing's answers at once instead of one query per
   * key). Refused, returning false, when the key already has an answer or a fetch in flight
   * (either is at least as new), or when an invalidation since the ticket touched what the
   * answer depends on.
   */
  prime(key: string, loaded: Loaded, ticket: PrimeTicket): boolean {
    if (this.#pending.has(key) || this.#found.has(key) || this.#misses.has(key)) return false
    const { resolution, deps } = loaded
    const held = hold(resolution)
    const entry: Entry = { held, fetchedAt: ticket.at, extra: extraDependencies(key, heldMailboxIds(held), deps), startSeq: ticket.seq, revokedAt: undefined }
    if (this.#overlap(key, entry) !== undefined) return false
    this.#store(key, entry)
    return true
  }

  /** New TTLs and max-stale age, applied to the answers already cached too (see the top). */
  setTimes(times: CacheTimes): void {
    this.#times = { ttlMs: times.ttlMs, negativeTtlMs: times.negativeTtlMs, maxStaleMs: times.maxStaleMs }
  }

  #isFresh(entry: Entry): boolean {
    const ttl = isFound(entry.held) ? this.#times.ttlMs : this.#times.negativeTtlMs
    return this.#now() - entry.fetchedAt <= ttl
  }

  /** Puts a usable entry in its room (the key leaves the other one) and indexes it. */
  #store(key: string, entry: Entry): void {
    const found = isFound(entry.held)
    ;(found ? this.#misses : this.#found).delete(key)
    ;(found ? this.#found : this.#misses).set(key, entry)
    this.#index(key, entry)
  }

  #drop(key: string): void {
    this.#found.delete(key)
    this.#misses.delete(key)
  }

  /**
   * Evicts every answer that consulted one of these canonical addresses or returned one of these
   * directory entries, and keeps fetches already in flight that did from being cached. Returns
   * how many cached keys were evicted.
   */
  invalidateEntries(addresses: readonly string[], ids: readonly string[]): number {
    const seq = ++this.#seq
    const keys = new Set<string>()
    for (const address of addresses) {
      this.#remember(addressDep(address), seq)
      if (this.#indexed.has(address)) keys.add(address)
      addDependentsTo(keys, this.#byAddress, address)
    }
    for (const id of ids) {
      this.#remember(idDep(id), seq)
      addDependentsTo(keys, this.#byId, id)
    }
    let evicted = 0
    for (const key of keys) if (this.#revoke(key, seq)) evicted++
    this.stats.invalidated += evicted
    return evicted
  }

  /** Drops one key (a change notification); the next lookup asks the directory. */
  invalidate(key: string): void {
    const seq = ++this.#seq
    this.#remember(addressDep(key), seq)
    if (this.#revoke(key, seq)) this.stats.invalidated++
  }

  /** Drops every answer (registry reload, lost notifications); fetches in flight are not kept. */
  clear(): void {
    const seq = ++this.#seq
    this.#floor = seq
    this.#invalidatedAt.clear()
    // Callers already holding one of these answers from a fetch see it revoked too.
    for (const entry of this.#indexed.values()) entry.revokedAt = seq
    this.#found.clear()
    this.#misses.clear()
  }

  get size(): number {
    return this.#found.size + this.#misses.size
  }

  /** Sizes of the dependency bookkeeping, for tests and metrics: it only tracks cached keys. */
  get dependencyIndex(): { readonly keys: number; readonly dependencies: number; readonly recentInvalidations: number } {
    return { keys: this.#indexed.size, dependencies: this.#indexed.size + this.#byAddress.size + this.#byId.size, recentInvalidations: this.#invalidatedAt.size }
  }

  /** Marks the key's usable entry revoked (callers holding it see that) and removes it. */
  #revoke(key: string, seq: number): boolean {
    const entry = this.#indexed.get(key)
    if (!entry) return false
    entry.revokedAt = seq
    this.#unindex(key, entry)
    this.#drop(key)
    return true
  }

  #remember(dep: string, seq: number): void {
    if (this.#invalidatedAt.size >= INVALIDATION_MEMORY) {
      this.#invalidatedAt.clear()
      this.#floor = seq
    }
    this.#invalidatedAt.set(dep, seq)
  }

  /** The latest invalidation since the entry's fetch started that touches what it read. */
  #overlap(key: string, entry: Entry): number | undefined {
    if (entry.startSeq === this.#seq) return undefined
    let latest = entry.startSeq < this.#floor ? this.#floor : undefined
    for (const dep of dependencyTokens(key, entry)) {
      const seq = this.#invalidatedAt.get(dep)
      if (seq !== undefined && seq > entry.startSeq && (latest === undefined || seq > latest)) latest = seq
    }
    return latest
  }

  #index(key: string, entry: Entry): void {
    const previous = this.#indexed.get(key)
    if (previous) this.#unindex(key, previous)
    this.#indexed.set(key, entry)
    for (const a of entry.extra?.addresses ?? []) addDependent(this.#byAddress, a, key)
    for (const id of dependencyIds(entry)) addDependent(this.#byId, id, key)
  }

  #unindex(key: string, entry: Entry): void {
    // A late dispose of an entry already replaced or revoked must not touch its successor.
    if (this.#indexed.get(key) !== entry) return
    this.#indexed.delete(key)
    for (const a of entry.extra?.addresses ?? []) removeDependent(this.#byAddress, a, key)
    for (const id of dependencyIds(entry)) removeDependent(this.#byId, id, key)
  }
}

/** A loader's result as the cache holds it, with what it depends on. */
function heldOf(loaded: Loaded | Unusable | Resolution): { held: HeldAnswer; deps: Dependencies } {
  if ('failure' in loaded) return { held: new HeldFailure(loaded.failure), deps: loaded.deps }
  if ('deps' in loaded) return { held: hold(loaded.resolution), deps: loaded.deps }
  return { held: hold(loaded), deps: implicitDeps(loaded) }
}

/** The directory entry ids an answer depends on: its mailboxes' and any others returned. */
function dependencyIds(entry: Entry): Iterable<string> {
  const ids = heldMailboxIds(entry.held)
  return entry.extra === undefined || entry.extra.ids.length === 0 ? ids : new Set([...ids, ...entry.extra.ids])
}

/** Every dependency of an entry as a token of the recent-invalidations memory. */
function dependencyTokens(key: string, entry: Entry): string[] {
  return [addressDep(key), ...(entry.extra?.addresses ?? []).map(addressDep), ...[...dependencyIds(entry)].map(idDep)]
}

/** What `deps` adds to the implicit dependencies (the key, the answer's mailboxes' ids); undefined when nothing. */
function extraDependencies(key: string, mailboxIds: readonly string[], deps: Dependencies): ExtraDependencies | undefined {
  // The common case (asked the key, got its one mailbox) without building sets: a warm-up
  // stores a million of these in a row, and its garbage is what the GC pays for.
  const one = mailboxIds.length === 1 ? mailboxIds[0]! : undefined
  if (onlyValue(deps.addresses, key) && (one === undefined ? isEmpty(deps.ids) : onlyValue(deps.ids, one))) return undefined
  const implicitIds = new Set(mailboxIds)
  const addresses = [...new Set(deps.addresses)].filter((a) => a !== key)
  const ids = [...new Set(deps.ids)].filter((id) => !implicitIds.has(id))
  return addresses.length === 0 && ids.length === 0 ? undefined : { addresses, ids }
}

/** Whether every value of `values` is `value` (none at all counts). */
function onlyValue(values: Iterable<string>, value: string): boolean {
  for (const v of values) if (v !== value) return false
  return true
}

function isEmpty(values: Iterable<string>): boolean {
  for (const _ of values) return false
  return true
}

function implicitDeps(resolution: Resolution): Dependencies {
  return { addresses: [], ids: resolution.kind === 'found' ? resolution.mailboxes.map((m) => m.id) : [] }
}
