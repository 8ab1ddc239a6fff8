// The warm-up's bulk mode (answers built from a complete listing instead of a query per
// address) must cache exactly what lookups would: the same resolution, the same dependencies
// for change notifications; and leave every doubtful address (duplicates, alias entries owning
// an account's address, unusable entries, non-canonical values, a listing cut short, answers a
// change touched meanwhile) to the normal path.

import t from 'tap'
import { LookupCache } from '../../src/cache/lookup-cache.js'
import { ListingOwners } from '../../src/cache/listing-owners.js'
import { listingPrimer, resolutionLoader } from '../../src/cache/resolution-loader.js'
import { warmUp } from '../../src/cache/warmup.js'
import type { AccountEntry } from '../../src/directory/directory.js'
import type { ListedEntry, MailboxAddresses } from '../../src/directory/mailbox-addresses.js'
import { DirectoryError, ErrorCodes } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { Lookups } from '../../src/resolve/lookup-service.js'
import { Registry } from '../../src/resolve/registry.js'
import { Resolver } from '../../src/resolve/resolver.js'
import { DEMO_BACKENDS, MemoryDirectory } from '../fakes/memory-directory.js'
import { ADDRESSES } from '../fakes/lookup-stack.js'

const registry = new Registry([{ name: 'example.org' }, { name: 'example.net', aliasFor: 'example.org' }], DEMO_BACKENDS)

const account = (id: string, addresses: string[], mailHost = 'mx1.example.org', extra: Partial<AccountEntry> = {}): ListedEntry => ({
  id,
  addresses,
  mailbox: true,
  entry: { kind: 'account', id, canonical: addresses[0], mailHost, status: 'active', sendAs: [], ...extra },
})
const aliasEntry = (id: string, address: string, target: string): ListedEntry => ({
  id,
  addresses: [address],
  mailbox: false,
  entry: { kind: 'alias', id, targets: [target] },
})

/** A directory holding exactly the listed entries, as findByAddress sees them. */
function directoryOf(listing: ListedEntry[]): MemoryDirectory {
  const dir = new MemoryDirectory()
  for (const l of listing) if (l.entry) for (const a of l.addresses) dir.add(a, l.entry)
  return dir
}

function stack(dir: MemoryDirectory) {
  const resolver = new Resolver(dir, () => registry, ADDRESSES, silentLogger)
  const cache = new LookupCache({ maxEntries: 1000, maxMisses: 1000, ttlMs: 60_000, negativeTtlMs: 10_000, maxStaleMs: 3_600_000 }, resolutionLoader(resolver, ADDRESSES))
  const lookups = new Lookups({ registry: () => registry, cache, addresses: ADDRESSES, routes: { unknownMailHost: 'smtp:[{mailHost}]:25' }, deadlineMs: 1000, logger: silentLogger })
  const primer = listingPrimer({ resolver, cache, registry: () => registry, addresses: ADDRESSES })
  return { cache, lookups, primer }
}

function source(pages: ListedEntry[][], failAfter?: number): MailboxAddresses {
  return {
    async each() {
      throw new Error('bulk mode lists entries')
    },
    async eachEntry(onPage, signal) {
      for (const [i, page] of pages.entries()) {
        if (signal.aborted) return
        if (failAfter !== undefined && i >= failAfter) throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'size limit exceeded')
        onPage(page)
      }
    },
    async close() {},
  }
}

async function warm(s: ReturnType<typeof stack>, pages: ListedEntry[][], failAfter?: number) {
  const asked: string[] = []
  const result = await warmUp({
    source: source(pages, failAfter),
    resolve: (key, context) => {
      asked.push(key)
      return s.lookups.resolve(key, context)
    },
    primer: s.primer,
    concurrency: 2,
    logger: silentLogger,
    signal: new AbortController().signal,
  })
  return { result, asked }
}

const LISTING = [
  account('uid=alice', ['alice@example.org', 'alice.liddell@example.org']),
  account('uid=bob', ['bob@example.org'], 'mx2.example.org', { sendAs: ['@example.org'] }),
  account('uid=carol', ['carol@example.org'], 'mx1.example.org', { status: 'disabled' }),
  account('uid=dave', ['dave+lists@example.org', 'dave@example.net']),
  // No canonical attribute: the matched address is its own canonical form.
  account('uid=erin', ['erin@example.org'], 'unknown-host.example', { canonical: undefined }),
  aliasEntry('cn=postmaster', 'postmaster@example.org', 'alice@example.org'),
]
const KEYS = ['alice@example.org', 'alice.liddell@example.org', 'bob@example.org', 'carol@example.org', 'dave+lists@example.org', 'dave@example.net', 'erin@example.org']

t.test('answers built from the listing are the answers lookups cache, with the same dependencies', async (t) => {
  const bulk = stack(directoryOf(LISTING))
  const { result, asked } = await warm(bulk, [LISTING.slice(0, 3), LISTING.slice(3)])
  t.match(result, { total: KEYS.length, loaded: KEYS.length, failed: 0, skipped: 0 })
  t.same(asked, [], 'no address went through the lookup path')

  const normal = stack(directoryOf(LISTING))
  for (const key of KEYS) {
    const want = await normal.cache.get(key, 1000)
    const got = await bulk.cache.get(key, 1000)
    t.match(got, { ok: true, layer: 'cache' }, `${key} is cached`)
    t.same(got.ok && got.resolution, want.ok && want.resolution, `${key}: the same resolution`)
  }
  t.same(bulk.cache.dependencyIndex, normal.cache.dependencyIndex, 'the same dependency bookkeeping')
  for (const [addresses, ids] of [[['alice.liddell@example.org'], []], [[], ['uid=dave']], [['nobody@example.org'], ['uid=zed']]] as const) {
    t.equal(bulk.cache.invalidateEntries(addresses, ids), normal.cache.invalidateEntries(addresses, ids), `invalidating ${[...addresses, ...ids].join(' ')} evicts the same`)
  }
  t.match(await bulk.cache.get('dave@example.net', 1000), { ok: true, layer: 'directory' }, 'an evicted answer is asked again')
})

t.test('doubtful addresses go through the lookup path, which answers or reports them as always', async (t) => {
  const listing = [
    account('uid=a', ['a@example.org', 'shared@example.org']),
    account('uid=b', ['b@example.org', 'SHARED@example.org']),
    account('uid=c', ['c@example.org', 'list@example.org']),
    aliasEntry('cn=list', 'list@example.org', 'b@example.org'),
    // Stored in another form than the canonical key: only the server knows what it matches.
    account('uid=d', ['D@Example.org']),
    // A mailbox a lookup would refuse (say, two mailHosts): its addresses are not answered here.
    { id: 'uid=e', addresses: ['e@example.org'], mailbox: true, entry: undefined },
    account('uid=f', ['f@unserved.example']),
    account('uid=g', ['g@example.org'], 'not a host!'),
  ]
  const dir = directoryOf(listing)
  // The server matches addresses without case: both own shared@.
  dir.add('shared@example.org', listing[1]!.entry!)
  const s = stack(dir)
  const { result, asked } = await warm(s, [listing])
  t.same(asked.sort(), ['D@Example.org', 'e@example.org', 'g@example.org', 'list@example.org', 'shared@example.org'])
  // D@ and e@ resolve to misses here (the fake matches exactly, and has no usable e entry).
  t.match(result, { total: 9, loaded: 5, skipped: 1, failed: 3 })
  t.match(await s.cache.get('shared@example.org', 1000), { ok: false }, 'a duplicate is never cached')
  t.match(await s.cache.get('list@example.org', 1000), { ok: false }, 'nor an address an alias entry owns too')
  t.match(await s.cache.get('a@example.org', 1000), { ok: true, layer: 'cache' })
})

t.test('a listing cut short is loaded through the lookup path; the answers a change touched are not primed', async (t) => {
  const listing = [account('uid=a', ['a@example.org']), account('uid=b', ['b@example.org']), account('uid=c', ['c@example.org'])]
  const cut = stack(directoryOf(listing))
  const { result, asked } = await warm(cut, [listing.slice(0, 2), listing.slice(2)], 1)
  t.same(asked, ['a@example.org', 'b@example.org'], 'ownership is unknown without the whole listing')
  t.match(result, { total: 2, loaded: 2, listingError: /size limit/ })

  const s = stack(directoryOf(listing))
  const ticket = s.primer.ticket()
  s.cache.invalidateEntries(['a@example.org'], ['uid=b'])
  const owner = (i: number) => listing[i]!.entry as AccountEntry
  t.equal(s.primer.store('a@example.org', owner(0), ticket), 'fallback', 'its address changed since the listing began')
  t.equal(s.primer.store('b@example.org', owner(1), ticket), 'fallback', 'its entry changed since the listing began')
  t.equal(s.primer.store('c@example.org', owner(2), ticket), 'loaded')
  t.equal(s.primer.store('c@example.org', owner(2), s.primer.ticket()), 'fallback', 'an answer already cached is kept')
})

t.test('ListingOwners: one owner per address across pages, compared without case, each address yielded once', async (t) => {
  const owners = new ListingOwners()
  owners.add([account('uid=a', ['a@example.org', 'x@example.org'])])
  owners.add([account('uid=b', ['X@EXAMPLE.ORG']), aliasEntry('cn=y', 'y@example.org', 'a@example.org')])
  owners.add([account('uid=c', ['y@example.org'])])
  t.same(
    [...owners.addresses()].map(({ address, sole }) => [address, sole?.id]),
    [
      ['a@example.org', 'uid=a'],
      ['x@example.org', undefined],
      ['y@example.org', undefined],
    ],
    'each address once, a shared one without an owner to vouch for',
  )
  t.same([...owners.addresses()], [], 'consumed')
})
