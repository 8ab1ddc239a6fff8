// Issue 13 item 9 on the in-memory directory, through the real resolver, cache and lookup
// service: misses never push found answers (and their stale reserve) out of the cache, and a
// duplicate owner is logged once a minute and held briefly instead of searched at every lookup.

import t from 'tap'
import { LookupCache } from '../../src/cache/lookup-cache.js'
import { resolutionLoader } from '../../src/cache/resolution-loader.js'
import type { Logger } from '../../src/log.js'
import { Lookups } from '../../src/resolve/lookup-service.js'
import { Resolver } from '../../src/resolve/resolver.js'
import { demoDirectory, demoRegistry, type MemoryDirectory } from '../fakes/memory-directory.js'
import { ADDRESSES } from '../fakes/lookup-stack.js'
import { capturingLogger } from '../server/flavors.js'

const TTL = 60_000
const NEG_TTL = 10_000

function stack(dir: MemoryDirectory, logger: Logger, maxEntries: number) {
  let now = 1_000_000
  const registry = demoRegistry()
  const resolver = new Resolver(dir, () => registry, ADDRESSES, logger)
  // Not a literal: the misses' room is a key of its own (cache.maxMisses).
  const options = { maxEntries, maxMisses: 1000, ttlMs: TTL, negativeTtlMs: NEG_TTL, maxStaleMs: 3_600_000, now: () => now }
  const cache = new LookupCache(options, resolutionLoader(resolver, ADDRESSES))
  const lookups = new Lookups({ registry: () => registry, cache, addresses: ADDRESSES, routes: { unknownMailHost: 'smtp:[{mailHost}]:25' }, deadlineMs: 500, logger })
  return { lookups, cache, advance: (ms: number) => (now += ms) }
}

t.test('a flood of distinct misses does not push out found answers or their stale reserve', async (t) => {
  const dir = demoDirectory()
  for (let i = 0; i < 20; i++) dir.account(`u${i}`, [`user${i}@example.org`], 'mx1.example.org')
  const { lookups, cache, advance } = stack(dir, capturingLogger().logger, 20)
  for (let i = 0; i < 20; i++) t.equal((await lookups.lookup('transport', `user${i}@example.org`, 't')).layer, 'directory')
  // Eleven times as many distinct unknown addresses as there are found answers.
  for (let i = 0; i < 220; i++) t.equal((await lookups.lookup('recipient', `nobody${i}@example.org`, 't')).answer.outcome, 'notfound')
  t.equal(cache.stats.evictions, 0, 'no found answer evicted')

  const asked = dir.queries.length
  for (let i = 0; i < 20; i++) t.equal((await lookups.lookup('transport', `user${i}@example.org`, 't')).layer, 'cache', `user${i}: still cached`)
  t.equal(dir.queries.length, asked, 'without asking the directory')
  dir.down()
  advance(TTL + 1)
  for (let i = 0; i < 20; i++) {
    t.match(await lookups.lookup('transport', `user${i}@example.org`, 't'), { answer: { outcome: 'found' }, layer: 'stale' }, `user${i}: its stale reserve serves the outage`)
  }
})

t.test('a duplicate owner: one error line a minute, the temporary failure held for the negative TTL', async (t) => {
  const dir = demoDirectory().account('bob2', ['bob@example.org'], 'mx1.example.org')
  const { logger, lines } = capturingLogger()
  const { lookups, advance } = stack(dir, logger, 100)
  const duplicates = () => lines().filter((l) => String(l.msg).startsWith('DUPLICATE OWNERS'))
  const searches = () => dir.queries.filter((q) => q === 'bob@example.org').length
  for (let i = 0; i < 100; i++) {
    t.match(await lookups.lookup(i % 2 ? 'transport' : 'recipient', 'bob@example.org', 't'), { answer: { outcome: 'temp', reason: /MH_DUPLICATE_OWNER/ } })
  }
  t.equal(duplicates().length, 1, 'one DUPLICATE OWNERS line for 100 lookups')
  t.equal(lines().filter((l) => l.msg === 'answering temporary failure: directory data needs fixing').length, 1, 'and one line saying what Postfix was told')
  t.equal(searches(), 1, 'the directory searched once: the failure is held')

  advance(NEG_TTL + 1)
  t.match(await lookups.lookup('transport', 'bob@example.org', 't'), { answer: { outcome: 'temp' } })
  t.equal(searches(), 2, 'held no longer than the negative TTL')
  t.match(await lookups.lookup('transport', 'bob+x@example.org', 't'), { answer: { outcome: 'temp' } }, 'bob+x@ finds the same duplicate')
  t.equal(duplicates().length, 1, 'still one line within the minute (LogThrottle counts the rest for the next one)')
  t.match(duplicates()[0], { level: 'error', address: 'bob@example.org', owners: 'bob | bob2', suppressed: 0 })
})

t.test('a held duplicate is evicted by the fix, not waited out', async (t) => {
  const dir = demoDirectory().account('bob2', ['bob@example.org'], 'mx1.example.org')
  const { lookups, cache } = stack(dir, capturingLogger().logger, 100)
  t.match(await lookups.lookup('transport', 'bob@example.org', 't'), { answer: { outcome: 'temp' } })
  dir.removeEntry('bob2')
  // What the admin API (or the LDAP poll) announces for the entry it changed.
  cache.invalidateEntries([], ['bob2'])
  t.match(await lookups.lookup('transport', 'bob@example.org', 't'), { answer: { outcome: 'found', value: 'lmtp:inet:[10.0.0.12]:24' } })
})

t.test('a key moves between the rooms as its answer changes, counted once', async (t) => {
  const dir = demoDirectory()
  const { lookups, cache } = stack(dir, capturingLogger().logger, 100)
  t.equal((await lookups.lookup('recipient', 'dora@example.org', 't')).answer.outcome, 'notfound')
  t.equal(cache.size, 1)
  dir.account('dora', ['dora@example.org'], 'mx2.example.org')
  cache.invalidateEntries(['dora@example.org'], ['dora'])
  t.equal(cache.size, 0, 'the miss is evicted by the change')
  t.match(await lookups.lookup('recipient', 'dora@example.org', 't'), { answer: { outcome: 'found' }, layer: 'directory' })
  t.equal(cache.size, 1)
  dir.removeEntry('dora')
  cache.invalidate('dora@example.org')
  t.equal((await lookups.lookup('recipient', 'dora@example.org', 't')).answer.outcome, 'notfound', 'deleted: a miss again')
  t.equal(cache.size, 1, 'in one room only')
})

t.test('fetches in flight are bounded: past maxEntries the oldest is given up', async (t) => {
  const waiting: (() => void)[] = []
  let loads = 0
  const options = { maxEntries: 2, maxMisses: 2, ttlMs: TTL, negativeTtlMs: NEG_TTL, maxStaleMs: 3_600_000 }
  const cache = new LookupCache(options, async () => {
    loads++
    await new Promise<void>((resolve) => waiting.push(resolve))
    return { kind: 'none' }
  })
  const first = cache.get('a@example.org', 60_000)
  const second = cache.get('b@example.org', 60_000)
  const third = cache.get('c@example.org', 60_000)
  t.match(await first, { ok: false, error: { code: 'MH_LOOKUP_DEADLINE' } }, 'the oldest fetch is given up at once, not at its deadline')
  for (const release of waiting) release()
  t.match(await second, { ok: true, layer: 'directory' })
  t.match(await third, { ok: true, layer: 'directory' })
  t.equal(cache.size, 2, 'the given-up answer was not stored')
  const again = cache.get('a@example.org', 60_000)
  t.equal(loads, 4, 'asked again, it fetches again')
  waiting.at(-1)!()
  t.match(await again, { ok: true, layer: 'directory' })
})
