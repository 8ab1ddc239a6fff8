// The real resolver, cache and lookup service over an in-memory directory: what unit tests of
// the maps, the failure model and the policy engine stand on.

import { LookupCache, type CacheOptions } from '../../src/cache/lookup-cache.js'
import { resolutionLoader } from '../../src/cache/resolution-loader.js'
import type { Directory } from '../../src/directory/directory.js'
import { silentLogger } from '../../src/log.js'
import { Lookups } from '../../src/resolve/lookup-service.js'
import type { Registry } from '../../src/resolve/registry.js'
import { Resolver } from '../../src/resolve/resolver.js'
import { demoRegistry } from './memory-directory.js'

export const ADDRESSES = { extensionDelimiters: '+', foldLocalPart: true }

export function lookupStack(dir: Directory, opts: { registry?: Registry; deadlineMs?: number; cache?: Partial<CacheOptions> } = {}) {
  const registry = opts.registry ?? demoRegistry()
  const resolver = new Resolver(dir, () => registry, ADDRESSES, silentLogger)
  const cache = new LookupCache(
    { maxEntries: 1000, maxMisses: 1000, ttlMs: 60_000, negativeTtlMs: 10_000, maxStaleMs: 3_600_000, ...opts.cache },
    resolutionLoader(resolver, ADDRESSES),
  )
  const lookups = new Lookups({
    registry: () => registry,
    cache,
    addresses: ADDRESSES,
    routes: { unknownMailHost: 'smtp:[{mailHost}]:25' },
    deadlineMs: opts.deadlineMs ?? 1000,
    logger: silentLogger,
  })
  return { lookups, cache, registry }
}
