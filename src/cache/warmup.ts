// The cache warm-up (cache.warmup): at start, every mailbox address in the directory is
// resolved once through the normal path (address rules, then the cache, which asks the
// directory), so the first Postfix lookups after a restart are cache hits and a directory
// outage right after a restart still finds stale answers to serve. It runs in the background
// while lookups are served, with a bounded number of resolutions at a time, and logs its
// progress every tenth of the way and a final line. Failures are counted and summed up in the
// final line, never fatal: an address that could not be loaded is simply resolved when asked.
//
// Bulk mode: a query per address is too slow for a large directory (about 2,500 a second
// against slapd on two cores: over six minutes for a million). When the source can list whole
// entries (LDAP) and the caller can store answers (`prime`), the listing itself tells who owns
// each address (listing-owners.ts), and every address owned by exactly one account gets the
// answer a lookup would have cached, built from the listing. Only the rest (duplicates, unusable
// entries, addresses stored in another form, answers a change notification touched meanwhile)
// go through the per-address path; so does everything when the listing breaks off, since
// ownership is known only from a complete one.

import { setImmediate as yieldToLookups } from 'node:timers/promises'
import type { AccountEntry } from '../directory/directory.js'
import type { MailboxAddresses } from '../directory/mailbox-addresses.js'
import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { KeyResolution } from '../resolve/lookup-service.js'
import type { PrimeTicket } from './lookup-cache.js'
import { ListingOwners } from './listing-owners.js'

/** Stores answers built from a listing (bulk mode): the cache's ticket() and a prime per address. */
export interface WarmupPrimer {
  ticket(): PrimeTicket
  /**
   * Caches the answer for `address`, whose only owner is `owner`, as read since `ticket`:
   * `loaded`; `rules` when a lookup would not ask the directory (domain not served); `fallback`
   * when it cannot be built here (not canonical as stored, already cached, touched by a change).
   */
  store(address: string, owner: AccountEntry, ticket: PrimeTicket): 'loaded' | 'rules' | 'fallback'
}

export interface WarmupOptions {
  readonly source: MailboxAddresses
  /** The lookup service's resolve(): address rules, cache, directory, within the deadline. */
  readonly resolve: (key: string, context: string) => Promise<KeyResolution>
  /** Turns on bulk mode when the source can list entries (see the top). */
  readonly primer?: WarmupPrimer
  /** Resolutions in flight at once. */
  readonly concurrency: number
  readonly logger: Logger
  /** Stops the warm-up (daemon shutdown); what was loaded stays loaded. */
  readonly signal: AbortSignal
}

export interface WarmupResult {
  /** Distinct addresses read from the directory. */
  readonly total: number
  /** Resolved and cached (found, or an authoritative miss). */
  readonly loaded: number
  /** Not resolved: not an address, or in a domain not served (no directory query). */
  readonly skipped: number
  /** No answer within the deadline (directory failing); resolved again when asked. */
  readonly failed: number
  /** Why reading the list of addresses stopped early, if it did. */
  readonly listingError?: string
  readonly aborted: boolean
  readonly seconds: number
}

export const WARMUP_CONCURRENCY = 8
/** Answers stored between two turns of the event loop in bulk mode: lookups keep flowing. */
const BULK_SLICE = 2000

export async function warmUp(o: WarmupOptions): Promise<WarmupResult> {
  const log = o.logger.child({ component: 'warmup' })
  const started = performance.now()
  const elapsed = () => (performance.now() - started) / 1000

  // Reading the list is quick next to resolving it; reading it whole first gives a total for
  // the progress lines. Addresses differing only in case are one key.
  const seen = new Set<string>()
  /** Resolved one by one, through the lookup path. */
  const addresses: string[] = []
  let listingError: string | undefined
  const bulk = o.primer !== undefined && o.source.eachEntry !== undefined
  const ticket = o.primer?.ticket()
  const owners = bulk ? new ListingOwners() : undefined
  try {
    if (owners) await o.source.eachEntry!((page) => owners.add(page), o.signal)
    else {
      await o.source.each((page) => {
        for (const a of page) {
          const k = a.trim().toLowerCase()
          if (k !== '' && !seen.has(k)) {
            seen.add(k)
            addresses.push(a)
          }
        }
      }, o.signal)
    }
  } catch (e) {
    if (!o.signal.aborted) listingError = describeError(e)
  }
  seen.clear()
  // In bulk mode an address several entries list counts once per entry until they are told apart.
  let total = owners ? owners.mailboxAddresses : addresses.length
  if (listingError !== undefined) {
    log.warn({ read: total, reason: listingError }, 'cache warm-up: reading the mailbox addresses stopped early; loading those read')
  }
  log.info({ total, ...(owners ? { bulk: listingError === undefined } : {}) }, 'cache warm-up: loading every mailbox address into the cache')

  let done = 0
  let loaded = 0
  let skipped = 0
  let failed = 0
  let firstFailure: string | undefined
  let nextReport = 1
  const report = () => {
    // Every tenth of the way: a slow directory shows as a low rate, a stuck one as no line.
    while (total > 0 && done * 10 >= nextReport * total && nextReport < 10) {
      log.info({ done, total, loaded, failed, perSecond: Math.round(done / Math.max(elapsed(), 0.001)) }, `cache warm-up: ${nextReport * 10}%`)
      nextReport++
    }
  }

  // Bulk mode: answers from the listing; the doubtful addresses are left for the path below.
  if (owners) {
    let n = 0
    for (const { address, sole } of owners.addresses()) {
      if (o.signal.aborted) break
      if (address.trim() === '') continue
      // Ownership is known only from a complete listing.
      const r = sole && listingError === undefined ? o.primer!.store(address, sole, ticket!) : 'fallback'
      if (r === 'fallback') {
        addresses.push(address)
        continue
      }
      if (r === 'loaded') loaded++
      else skipped++
      done++
      report()
      if (++n % BULK_SLICE === 0) await yieldToLookups()
    }
    total = done + addresses.length
  }

  let next = 0
  const worker = async () => {
    while (next < addresses.length && !o.signal.aborted) {
      const address = addresses[next++]!
      const r = await o.resolve(address, 'cache warm-up')
      if (r.kind === 'resolved') loaded++
      else if (r.kind === 'rules') skipped++
      else {
        failed++
        firstFailure ??= r.reason
      }
      done++
      report()
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker))

  const result: WarmupResult = {
    total,
    loaded,
    skipped,
    failed,
    ...(listingError === undefined ? {} : { listingError }),
    aborted: o.signal.aborted,
    seconds: Math.round(elapsed() * 1000) / 1000,
  }
  const summary = { total, loaded, skipped, failed, seconds: result.seconds, perSecond: Math.round(done / Math.max(elapsed(), 0.001)) }
  if (result.aborted) log.info({ ...summary, done }, 'cache warm-up: stopped (shutting down)')
  else if (failed > 0 || listingError !== undefined) {
    log.warn({ ...summary, firstFailure, listingError }, 'cache warm-up: done, with failures (those addresses are resolved when first asked)')
  } else log.info(summary, 'cache warm-up: done')
  return result
}
