// Change notifications evict by dependency (architecture.md §1): a change to an account evicts
// every cached answer that asked about it or reached it, and nothing else; a fetch that overlaps
// the change is not kept; the bookkeeping only ever tracks what the cache holds.

import t from 'tap'
import { LookupCache } from '../../src/cache/lookup-cache.js'
import type { Directory, DirectoryEntry } from '../../src/directory/directory.js'
import { Registry } from '../../src/resolve/registry.js'
import { DEMO_BACKENDS, demoDirectory, type MemoryDirectory } from '../fakes/memory-directory.js'
import { lookupStack } from '../fakes/lookup-stack.js'

const MX1 = 'mx1.example.org'
const MX2 = 'mx2.example.org'

/** The demo domains, but the example.com catch-all reaches alice. */
const registry = () =>
  new Registry(
    [
      { name: 'example.org' },
      { name: 'example.net', aliasFor: 'example.org' },
      { name: 'example.com', catchAll: ['alice@example.org'] },
    ],
    DEMO_BACKENDS,
  )

function stack(dir: Directory, cache: { maxEntries?: number; maxMisses?: number; now?: () => number } = {}) {
  return lookupStack(dir, { registry: registry(), cache })
}

/** Looks a key up in the recipient map: its value is the mailHost, its layer says who answered. */
async function recipient(lookups: ReturnType<typeof stack>['lookups'], key: string) {
  const r = await lookups.lookup('recipient', key, 'test')
  return { outcome: r.answer.outcome, value: r.answer.outcome === 'found' ? r.answer.value : undefined, layer: r.layer }
}

const ALICE_KEYS = ['alice@example.org', 'alice+news@example.org', 'postmaster@example.org', 'alice@example.net', 'anyone@example.com']
const OTHER_KEYS = ['bob@example.org', 'bob+x@example.org', 'carol@example.org', 'bob@example.net']

t.test("an account's address evicts its key, extensions, aliases, alias domain and catch-all; nothing else", async (t) => {
  const dir = demoDirectory()
  const { lookups, cache } = stack(dir)
  for (const key of [...ALICE_KEYS, ...OTHER_KEYS, 'nobody@example.org']) {
    t.equal((await recipient(lookups, key)).layer, 'directory', `warm: ${key}`)
  }
  t.match(await recipient(lookups, 'nobody@example.org'), { outcome: 'notfound', layer: 'cache' }, 'the miss is cached')

  // Alice moves to mx2, and nobody@ is created; the writer names the addresses it touched.
  dir.removeEntry('alice').account('alice', ['alice@example.org', 'alice.liddell@example.org'], MX2)
  dir.account('nobody', ['nobody@example.org'], MX1)
  t.equal(cache.invalidateEntries(['alice@example.org', 'alice.liddell@example.org', 'nobody@example.org'], ['alice', 'nobody']), ALICE_KEYS.length + 1)

  for (const key of ALICE_KEYS) t.same(await recipient(lookups, key), { outcome: 'found', value: MX2, layer: 'directory' }, `evicted and moved: ${key}`)
  t.same(await recipient(lookups, 'nobody@example.org'), { outcome: 'found', value: MX1, layer: 'directory' }, 'the cached miss for the new address is gone')
  for (const key of OTHER_KEYS) t.equal((await recipient(lookups, key)).layer, 'cache', `untouched: ${key}`)
})

t.test('an entry id evicts the keys that reached it even after its addresses changed', async (t) => {
  const dir = demoDirectory()
  const { lookups, cache } = stack(dir)
  for (const key of ['alice.liddell@example.org', 'postmaster@example.org', 'bob@example.org']) await recipient(lookups, key)

  // alice.liddell@ is taken away; the writer knows the account's id and its current addresses only.
  dir.removeEntry('alice').account('alice', ['alice@example.org'], MX1)
  t.equal(cache.invalidateEntries(['alice@example.org'], ['alice']), 2)
  t.same(await recipient(lookups, 'alice.liddell@example.org'), { outcome: 'notfound', value: undefined, layer: 'directory' })
  t.equal((await recipient(lookups, 'postmaster@example.org')).layer, 'directory')
  t.equal((await recipient(lookups, 'bob@example.org')).layer, 'cache')

  t.equal(cache.invalidateEntries(['nobody@example.org'], ['uid=nobody']), 0, 'nothing depends on these')
  t.equal(cache.invalidateEntries([], ['alias:postmaster@example.org']), 1, "the alias entry's own id")
})

t.test('invalidate(key) and clear() still drop answers', async (t) => {
  const dir = demoDirectory()
  const { lookups, cache } = stack(dir)
  await recipient(lookups, 'alice@example.org')
  await recipient(lookups, 'bob@example.org')
  cache.invalidate('alice@example.org')
  t.equal((await recipient(lookups, 'alice@example.org')).layer, 'directory')
  t.equal((await recipient(lookups, 'bob@example.org')).layer, 'cache')
  cache.clear()
  t.equal(cache.size, 0)
  t.same(cache.dependencyIndex, { keys: 0, dependencies: 0, recentInvalidations: 0 })
  t.equal((await recipient(lookups, 'bob@example.org')).layer, 'directory')
})

/** A directory whose answers are read at once but handed over only when the test opens the gate. */
class GatedDirectory implements Directory {
  readonly kind = 'sql' as const
  #open = true
  #waiters: (() => void)[] = []
  constructor(readonly inner: MemoryDirectory) {}

  hold(): void {
    this.#open = false
  }

  release(): void {
    this.#open = true
    for (const w of this.#waiters.splice(0)) w()
  }

  get waiting(): number {
    return this.#waiters.length
  }

  async findByAddress(address: string): Promise<DirectoryEntry[]> {
    const answer = this.inner.findByAddress(address)
    // A failure is handed over at the gate too; until then it is not an unhandled rejection.
    answer.catch(() => undefined)
    if (!this.#open) await new Promise<void>((resolve) => this.#waiters.push(resolve))
    return answer
  }

  verifyPassword: Directory['verifyPassword'] = (a, p) => this.inner.verifyPassword(a, p)
  ping = () => this.inner.ping()
  close = () => this.inner.close()
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 1))
  }
}

t.test('a fetch that overlaps an invalidation is not cached; callers arriving after it ask again', async (t) => {
  const inner = demoDirectory()
  const dir = new GatedDirectory(inner)
  const { lookups, cache } = stack(dir)

  dir.hold()
  const before = recipient(lookups, 'alice@example.org')
  await until('the fetch to read the directory', () => dir.waiting === 1)
  // The fetch has read mx1; the account moves and the notification arrives while it is in flight.
  inner.removeEntry('alice').account('alice', ['alice@example.org'], MX2)
  t.equal(cache.invalidateEntries(['alice@example.org'], ['alice']), 0, 'nothing cached yet')
  const after = recipient(lookups, 'alice@example.org')
  dir.release()

  t.same(await before, { outcome: 'found', value: MX1, layer: 'directory' }, 'the caller that was waiting gets what was read for it')
  t.same(await after, { outcome: 'found', value: MX2, layer: 'directory' }, 'a caller that came after the change never sees the old answer')
  t.same(await recipient(lookups, 'alice@example.org'), { outcome: 'found', value: MX2, layer: 'cache' }, 'the new answer is kept')
  t.equal(inner.queries.filter((q) => q === 'alice@example.org').length, 2, 'asked once more, not per caller')
})

t.test('an overlapping fetch is not kept when its only waiter gave up either', async (t) => {
  const inner = demoDirectory()
  const dir = new GatedDirectory(inner)
  const { lookups, cache } = lookupStack(dir, { registry: registry(), deadlineMs: 50 })
  dir.hold()
  t.equal((await recipient(lookups, 'postmaster@example.org')).outcome, 'temp', 'deadline')
  cache.invalidateEntries([], ['alice'])
  dir.release()
  await until('the late fetch to read the alias target', () => inner.queries.includes('alice@example.org'))
  await new Promise((r) => setImmediate(r))
  t.equal((await recipient(lookups, 'postmaster@example.org')).layer, 'directory', 'the late answer was not kept as fresh')
  t.equal((await recipient(lookups, 'postmaster@example.org')).layer, 'cache')
})

t.test('a revoked answer is never served stale, even while its refresh is in flight', async (t) => {
  let now = 1_000_000 // lru-cache reads a start time of 0 as "no TTL"
  const inner = demoDirectory()
  const dir = new GatedDirectory(inner)
  const { lookups, cache } = stack(dir, { now: () => now })
  t.equal((await recipient(lookups, 'alice@example.org')).layer, 'directory')
  now += 60_001 // expired: the stale reserve

  // The refresh fails, but only after the answer it would have fallen back on was invalidated.
  inner.down()
  dir.hold()
  const refreshing = recipient(lookups, 'alice@example.org')
  await until('the refresh to start', () => dir.waiting === 1)
  t.equal(cache.invalidateEntries(['alice@example.org'], []), 1, 'the entry whose refresh is in flight counts as evicted')
  dir.release()
  t.match(await refreshing, { outcome: 'temp' }, 'directory down: TEMP, not the revoked answer')
  t.match(await recipient(lookups, 'alice@example.org'), { outcome: 'temp' }, 'and not later either')
  inner.up()
  t.same(await recipient(lookups, 'alice@example.org'), { outcome: 'found', value: MX1, layer: 'directory' })
})

t.test('an invalidation in any microtask around the end of a fetch is never lost', async (t) => {
  // The end of a fetch and lru-cache storing its result are several promise steps apart; a
  // notification delivered from a promise continuation can land anywhere among them.
  const hop = (depth: number, fn: () => void): void => queueMicrotask(() => (depth === 0 ? fn() : hop(depth - 1, fn)))
  for (let depth = 0; depth < 16; depth++) {
    let loads = 0
    let invalidated = false
    const cache: LookupCache = new LookupCache({ maxEntries: 10, maxMisses: 10, ttlMs: 60_000, negativeTtlMs: 60_000, maxStaleMs: 60_000 }, async (key) => {
      if (loads++ === 0) {
        hop(depth, () => {
          cache.invalidateEntries([], ['entry'])
          invalidated = true
        })
      }
      return { resolution: { kind: 'none' }, deps: { addresses: [key], ids: ['entry'] } }
    })
    await cache.get('a@example.org', 1000)
    await until('the invalidation', () => invalidated)
    t.match(await cache.get('a@example.org', 1000), { ok: true, layer: 'directory' }, `invalidated ${depth} steps after the loader returned`)
    t.equal(loads, 2)
  }
})

t.test('the dependency index never tracks keys the cache no longer holds', async (t) => {
  const dir = demoDirectory()
  const { lookups, cache } = stack(dir, { maxEntries: 8, maxMisses: 8 })
  for (let i = 0; i < 500; i++) {
    await recipient(lookups, `user${i}+tag@example.org`)
    await recipient(lookups, i % 2 === 0 ? 'postmaster@example.org' : `x${i}@example.com`)
  }
  t.equal(cache.size, 16, 'both rooms full')
  t.ok(cache.dependencyIndex.keys <= 16, `keys tracked: ${cache.dependencyIndex.keys}`)
  // At most four per key: postmaster@ asks two addresses and gets two entries back.
  t.ok(cache.dependencyIndex.dependencies <= 16 * 4, `dependencies tracked: ${cache.dependencyIndex.dependencies}`)

  for (let i = 0; i < 10_000; i++) cache.invalidateEntries([`gone${i}@example.org`], [])
  t.ok(cache.dependencyIndex.recentInvalidations <= 4096, `recent invalidations remembered: ${cache.dependencyIndex.recentInvalidations}`)
  t.equal((await recipient(lookups, 'postmaster@example.org')).outcome, 'found', 'still answers after that')
})
