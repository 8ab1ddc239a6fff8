// architecture.md §2 on the in-memory directory: errors never become "not found", answers
// come within the deadline, stale answers only within maxStale, misses are never served stale.

import t from 'tap'
import { LookupCache } from '../../src/cache/lookup-cache.js'
import { DirectoryDataError, ErrorCodes } from '../../src/errors.js'
import { demoDirectory, type MemoryDirectory } from '../fakes/memory-directory.js'
import { lookupStack } from '../fakes/lookup-stack.js'

const TTL = 60_000
const NEG_TTL = 10_000
const MAX_STALE = 3_600_000

function setup(dir: MemoryDirectory, deadlineMs = 200) {
  let now = 1_000_000 // lru-cache reads a start time of 0 as "no TTL"
  const clock = { now: () => now, advance: (ms: number) => (now += ms) }
  const { lookups, cache } = lookupStack(dir, { deadlineMs, cache: { maxEntries: 100, ttlMs: TTL, negativeTtlMs: NEG_TTL, maxStaleMs: MAX_STALE, now: clock.now } })
  return { lookups, cache, clock }
}

t.test('cold miss while the directory is down is TEMP, never NOTFOUND', async (t) => {
  const dir = demoDirectory()
  dir.down()
  const { lookups } = setup(dir)
  for (const key of ['alice@example.org', 'nobody@example.org', 'x@example.com', 'alice@example.net']) {
    for (const map of ['transport', 'recipient', 'alias', 'local/mx1']) {
      const r = await lookups.lookup(map, key, 't')
      t.equal(r.answer.outcome, 'temp', `${map} ${key}`)
      t.equal(r.layer, 'none')
    }
  }
})

t.test('stale within maxStale, then TEMP beyond it; fresh again when the directory returns', async (t) => {
  const dir = demoDirectory()
  const { lookups, clock } = setup(dir)
  t.equal((await lookups.lookup('transport', 'alice@example.org', 't')).layer, 'directory')
  dir.down()
  clock.advance(TTL - 1)
  t.equal((await lookups.lookup('transport', 'alice@example.org', 't')).layer, 'cache', 'fresh within TTL, directory not asked')
  clock.advance(2)
  const stale = await lookups.lookup('transport', 'alice@example.org', 't')
  t.match(stale, { answer: { outcome: 'found' }, layer: 'stale' })
  clock.advance(MAX_STALE - TTL - 10)
  t.equal((await lookups.lookup('transport', 'alice@example.org', 't')).layer, 'stale', 'still within maxStale')
  clock.advance(20)
  t.match(await lookups.lookup('transport', 'alice@example.org', 't'), { answer: { outcome: 'temp' }, layer: 'none' }, 'beyond maxStale')
  dir.up()
  t.match(await lookups.lookup('transport', 'alice@example.org', 't'), { answer: { outcome: 'found' }, layer: 'directory' })
})

t.test('authoritative misses are cached briefly and never served stale', async (t) => {
  const dir = demoDirectory()
  const { lookups, clock } = setup(dir)
  t.match(await lookups.lookup('recipient', 'nobody@example.org', 't'), { answer: { outcome: 'notfound' }, layer: 'directory' })
  t.match(await lookups.lookup('recipient', 'nobody@example.org', 't'), { answer: { outcome: 'notfound' }, layer: 'cache' })
  dir.down()
  clock.advance(NEG_TTL + 1)
  t.match(await lookups.lookup('recipient', 'nobody@example.org', 't'), { answer: { outcome: 'temp' } }, 'expired miss + outage = TEMP')
})

t.test('deadline: a hung directory gets TEMP in time, and the late answer still fills the cache', async (t) => {
  const dir = demoDirectory()
  dir.delayMs = 400
  const { lookups } = setup(dir, 100)
  const t0 = performance.now()
  const r = await lookups.lookup('transport', 'bob@example.org', 't')
  const took = performance.now() - t0
  t.match(r, { answer: { outcome: 'temp' }, layer: 'none' })
  t.ok(took < 350, `answered before the directory (${Math.round(took)} ms)`)
  await new Promise((res) => setTimeout(res, 450))
  dir.delayMs = 0
  t.match(await lookups.lookup('transport', 'bob@example.org', 't'), { answer: { outcome: 'found' }, layer: 'cache' })
  t.equal(dir.queries.filter((q) => q === 'bob@example.org').length, 1)
})

t.test('deadline with a stale answer available serves it', async (t) => {
  const dir = demoDirectory()
  const { lookups, clock } = setup(dir, 50)
  await lookups.lookup('transport', 'bob@example.org', 't')
  clock.advance(TTL + 1)
  dir.delayMs = 300
  t.match(await lookups.lookup('transport', 'bob@example.org', 't'), { answer: { outcome: 'found' }, layer: 'stale' })
  await new Promise((res) => setTimeout(res, 350))
})

t.test('single flight: concurrent lookups of one key make one directory query', async (t) => {
  const dir = demoDirectory()
  dir.delayMs = 30
  const { lookups } = setup(dir)
  const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => lookups.lookup(i % 2 ? 'transport' : 'recipient', 'alice@example.org', 't')))
  t.ok(rs.every((r) => r.answer.outcome === 'found'))
  t.same(dir.queries, ['alice@example.org'])
})

t.test('duplicate owners: TEMP with no stale fallback, never a pick', async (t) => {
  const dir = demoDirectory().account('bob2', ['bob@example.org'], 'mx1.example.org')
  const { lookups } = setup(dir)
  for (const map of ['transport', 'recipient', 'alias']) {
    t.match(await lookups.lookup(map, 'bob@example.org', 't'), { answer: { outcome: 'temp', reason: /MH_DUPLICATE_OWNER/ } })
  }
})

t.test('alias loops and dangling aliases', async (t) => {
  const dir = demoDirectory().alias('a@example.org', ['b@example.org']).alias('b@example.org', ['a@example.org']).alias('gone@example.org', ['nobody@example.org'])
  const { lookups } = setup(dir)
  t.match(await lookups.lookup('recipient', 'a@example.org', 't'), { answer: { outcome: 'temp', reason: /MH_ALIAS_LOOP/ } })
  t.match(await lookups.lookup('recipient', 'gone@example.org', 't'), { answer: { outcome: 'notfound' } }, 'alias to a missing mailbox is a miss')
})

t.test('data errors in entries become TEMP', async (t) => {
  const dir = demoDirectory()
  dir.account('weird', ['weird@example.org'], 'mx1 ; rm -rf')
  const { lookups } = setup(dir)
  t.match(await lookups.lookup('transport', 'weird@example.org', 't'), { answer: { outcome: 'temp', reason: /MH_DIRECTORY_DATA/ } })
  dir.failure = new DirectoryDataError(ErrorCodes.DIRECTORY_DATA, 'entry without mailHost')
  t.match(await lookups.lookup('transport', 'alice@example.org', 't'), { answer: { outcome: 'temp' } })
})

t.test('multi-target and external aliases', async (t) => {
  const dir = demoDirectory()
    .alias('team@example.org', ['alice@example.org', 'bob@example.org'])
    .alias('fwd@example.org', ['Someone@Elsewhere.Test'])
    .alias('mixed@example.org', ['alice@example.org', 'x@elsewhere.test'])
  dir.account('remote', ['remote@example.org'], 'mail.partner.test')
  const { lookups } = setup(dir)
  t.same((await lookups.lookup('alias', 'team@example.org', 't')).answer, { outcome: 'found', value: 'alice@example.org,bob@example.org' })
  t.equal((await lookups.lookup('transport', 'team@example.org', 't')).answer.outcome, 'notfound', 'no single route: no override')
  t.same((await lookups.lookup('recipient', 'team@example.org', 't')).answer, { outcome: 'found', value: 'mx1.example.org,mx2.example.org' })
  t.same((await lookups.lookup('alias', 'fwd@example.org', 't')).answer, { outcome: 'found', value: 'Someone@Elsewhere.Test' }, 'external local part keeps its case')
  t.same((await lookups.lookup('recipient', 'fwd@example.org', 't')).answer, { outcome: 'found', value: 'Someone@Elsewhere.Test' })
  t.equal((await lookups.lookup('transport', 'mixed@example.org', 't')).answer.outcome, 'notfound')
  t.same((await lookups.lookup('transport', 'remote@example.org', 't')).answer, { outcome: 'found', value: 'smtp:[mail.partner.test]:25' }, 'unknown mailHost')
})

t.test('while the circuit refuses, answers come from the stale reserve without a fetch', async (t) => {
  let now = 1_000_000 // lru-cache reads a start time of 0 as "no TTL"
  let loads = 0
  const refusal = new Error('circuit open')
  const gate = { accepting: true, refusal }
  const cache = new LookupCache({ maxEntries: 10, maxMisses: 10, ttlMs: 1000, negativeTtlMs: 100, maxStaleMs: 60_000, now: () => now, directory: gate }, async () => {
    loads++
    return { kind: 'found', via: 'account', mailboxes: [], external: ['x@elsewhere.test'], rewrite: [] }
  })
  t.match(await cache.get('a@example.org', 100), { ok: true, layer: 'directory' })
  gate.accepting = false
  now += 2000
  t.match(await cache.get('a@example.org', 100), { ok: true, layer: 'stale' })
  t.match(await cache.get('cold@example.org', 100), { ok: false, error: refusal })
  t.equal(loads, 1, 'no fetch while refused')
  gate.accepting = true
  t.match(await cache.get('a@example.org', 100), { ok: true, layer: 'directory' })
  t.equal(loads, 2)
})
