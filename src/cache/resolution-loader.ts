// The cache's loader: one resolution through the Resolver, with the directory questions it asked
// and the entries it got back, which is what lets a change notification evict exactly the
// answers it may have made wrong.

import type { AccountEntry } from '../directory/directory.js'
import { DirectoryDataError } from '../errors.js'
import { canonicalAddress, type AddressOptions, type CanonicalAddress } from '../resolve/address.js'
import type { Registry } from '../resolve/registry.js'
import type { Resolver } from '../resolve/resolver.js'
import type { Loaded, Loader, LookupCache, Unusable } from './lookup-cache.js'
import type { WarmupPrimer } from './warmup.js'

/**
 * The canonical form of a cache key, holding the key's own string rather than an equal copy:
 * the answer keeps it (a mailbox's address), and at a million keys the copies add up.
 */
function keyAddress(key: string, addresses: AddressOptions): CanonicalAddress | undefined {
  const addr = canonicalAddress(key, addresses)
  if (!addr.ok || addr.address !== key) return undefined
  return { ...addr, address: key }
}

export function resolutionLoader(resolver: Resolver, addresses: AddressOptions): Loader {
  return async (key, signal): Promise<Loaded | Unusable> => {
    // Keys are stored canonical, so this never fails; it recovers the extension split.
    const addr = keyAddress(key, addresses) ?? canonicalAddress(key, addresses)
    if (!addr.ok) return { resolution: { kind: 'none' }, deps: { addresses: [], ids: [] } }
    const asked = new Set<string>()
    const returned = new Set<string>()
    const deps = { addresses: asked, ids: returned }
    try {
      const resolution = await resolver.resolve(addr, signal, {
        asked: (address) => asked.add(address),
        returned: (id) => returned.add(id),
      })
      return { resolution, deps }
    } catch (e) {
      // Data the directory answered with but that must not be guessed about: the cache holds
      // the failure briefly, evicted by a change to any entry it read (either duplicate owner).
      if (e instanceof DirectoryDataError) return { failure: e, deps }
      throw e
    }
  }
}

/**
 * What the loader above would cache for `key` if the directory, asked for exactly `key`,
 * returned `owner` alone (Resolver.resolveOwned), with the same dependencies. Undefined when
 * `key` is not a canonical address: then only a real load knows the answer.
 */
export function ownedAnswer(resolver: Resolver, addresses: AddressOptions, key: string, owner: AccountEntry): Loaded | undefined {
  const addr = keyAddress(key, addresses)
  if (addr === undefined) return undefined
  // Arrays rather than sets: one question, one entry (the warm-up builds a million of these).
  const asked: string[] = []
  const returned: string[] = []
  const resolution = resolver.resolveOwned(addr, owner, { asked: (a) => asked.push(a), returned: (id) => returned.push(id) })
  return { resolution, deps: { addresses: asked, ids: returned } }
}

/**
 * The warm-up's bulk mode: stores the answer of an address whose only owner a complete listing
 * showed, exactly as a lookup would have cached it, or says why not (see WarmupPrimer).
 */
export function listingPrimer(o: {
  readonly resolver: Resolver
  readonly cache: LookupCache
  readonly registry: () => Registry
  readonly addresses: AddressOptions
}): WarmupPrimer {
  return {
    ticket: () => o.cache.ticket(),
    store(address, owner, ticket) {
      const addr = canonicalAddress(address, o.addresses)
      // Not an address: the lookup path says so (and counts it skipped).
      if (!addr.ok) return 'fallback'
      if (!o.registry().domain(addr.domain)) return 'rules'
      let loaded: Loaded | undefined
      try {
        loaded = ownedAnswer(o.resolver, o.addresses, address, owner)
      } catch {
        // Unusable data (a mailHost that cannot be a route): a lookup reports it properly.
        return 'fallback'
      }
      return loaded !== undefined && o.cache.prime(address, loaded, ticket) ? 'loaded' : 'fallback'
    },
  }
}
