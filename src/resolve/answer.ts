// The outcome vocabulary shared by every protocol (architecture.md §2). Protocol codecs map an
// Answer to wire bytes; nothing else decides what "found" or "temporary" means.

export type Answer =
  | { readonly outcome: 'found'; readonly value: string }
  /** Authoritative miss: the directory (or our own address rules) says there is no such key. */
  | { readonly outcome: 'notfound'; readonly reason: string }
  /** Directory unreachable, slow or erroring with no usable cached answer. Mail must defer. */
  | { readonly outcome: 'temp'; readonly reason: string }
  /** The request itself is misconfigured (unknown map name). Postfix still defers on it. */
  | { readonly outcome: 'perm'; readonly reason: string }

/** Which layer produced an answer; shown by `mailhostctl lookup` and counted in metrics. */
export type Layer =
  | 'cache' // fresh cache entry
  | 'stale' // expired entry served because the directory failed, within maxStale
  | 'directory' // asked the directory for this request (or joined an in-flight query)
  | 'rules' // answered by address rules alone: non-address key, unserved domain, bad map name
  | 'none' // no answer could be had (temporary failure)

export interface LookupResult {
  readonly answer: Answer
  readonly layer: Layer
  readonly elapsedMs: number
}

/** What listeners call. `key` is null when the key bytes were not valid UTF-8. */
export interface LookupService {
  lookup(map: string, key: string | null, protocol: string): Promise<LookupResult>
  /**
   * lookup()'s result when it needs no waiting (address rules, a fresh cached answer), recorded
   * and logged the same way; undefined, having recorded and started nothing, when it does.
   */
  lookupCached?(map: string, key: string | null, protocol: string): LookupResult | undefined
}

export const found = (value: string): Answer => ({ outcome: 'found', value })
export const notFound = (reason: string): Answer => ({ outcome: 'notfound', reason })
export const temp = (reason: string): Answer => ({ outcome: 'temp', reason })
export const perm = (reason: string): Answer => ({ outcome: 'perm', reason })
