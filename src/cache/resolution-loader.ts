// The cache's loader: one resolution through the Resolver, with the directory questions it asked
// and the entries it got back, which is what lets a change notification evict exactly the
// answers it may have made wrong.

import { canonicalAddress, type AddressOptions } from '../resolve/address.js'
import type { Resolver } from '../resolve/resolver.js'
import type { Loaded, Loader } from './lookup-cache.js'

export function resolutionLoader(resolver: Resolver, addresses: AddressOptions): Loader {
  return async (key, signal): Promise<Loaded> => {
    // Keys are stored canonical, so this never fails; it recovers the extension split.
    const addr = canonicalAddress(key, addresses)
    if (!addr.ok) return { resolution: { kind: 'none' }, deps: { addresses: [], ids: [] } }
    const asked = new Set<string>()
    const returned = new Set<string>()
    const resolution = await resolver.resolve(addr, signal, {
      asked: (address) => asked.add(address),
      returned: (id) => returned.add(id),
    })
    return { resolution, deps: { addresses: asked, ids: returned } }
  }
}
