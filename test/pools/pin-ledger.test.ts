// The pin ledger (src/pools/pin-ledger.ts) on a PGlite store: two ledgers on one store agree; a
// local hit costs no query; a refresh keeps a pin alive past pinFor and an untouched pin expires
// after it (injected clock); a member down loses its pins at once; drop() forgets what an admin
// dropped; a failing or hanging store gives 'failed', never a guess; concurrent claims of one
// address share one query.

import t from 'tap'
import { silentLogger } from '../../src/log.js'
import { PinLedger } from '../../src/pools/pin-ledger.js'
import { chooseMember } from '../../src/pools/rendezvous.js'
import { Registry, type PoolInfo, type PoolMember, type ProbedService, type ServiceHealth } from '../../src/resolve/registry.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import type { Queryable } from '../../src/store/store.js'

const PIN_FOR = 60_000
const ports = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
const member = (id: string, weight = 1): PoolMember => ({ kind: 'member', id, pool: 'pool1', address: `127.0.0.${id.slice(1)}`, route: 'lmtp', ports, weight, adminState: 'active' })
const poolOf = (members: readonly PoolMember[]): PoolInfo => ({ kind: 'pool', id: 'pool1', mailHosts: [], route: 'lmtp', ports, members, pinForMs: PIN_FOR, adminState: 'active' })
const POOL = poolOf([member('m1'), member('m2'), member('m3')])
const registryOf = (pool: PoolInfo, down: readonly string[] = []) =>
  new Registry([], [pool], [], new Map(down.map((id) => [id, new Map<ProbedService, ServiceHealth>([['delivery', 'down']])])))
const REGISTRY = registryOf(POOL)

const store = await openPglite(IN_MEMORY)
t.teardown(() => store.close())
await migrate(store)
await store.query(`insert into backends (id, kind, mailhosts, address, route, lmtp_port, smtp_port, imap_port, pop3_port, pin_for_ms) values ('pool1', 'pool', '{}', null, 'lmtp', 24, 25, 143, 110, $1)`, [PIN_FOR])

/** The store, counting queries; `fail` makes every query reject, `hang` never answer. */
function counting(db: Queryable = store) {
  const c = { queries: 0, fail: false, hang: false, db: undefined as unknown as Queryable }
  c.db = {
    query<R>(sql: string, params?: readonly unknown[]) {
      c.queries++
      if (c.hang) return new Promise<never>(() => {})
      if (c.fail) return Promise.reject(new Error('connection refused'))
      return db.query<R>(sql, params)
    },
  }
  return c
}

function ledger(db: Queryable, clock = { now: 0 }, o: { claimTimeoutMs?: number; onStoreError?: () => void } = {}) {
  return new PinLedger({ store: db, logger: silentLogger, refreshIntervalMs: 1000, claimTimeoutMs: o.claimTimeoutMs ?? 5000, now: () => clock.now, ...(o.onStoreError ? { onStoreError: o.onStoreError } : {}) })
}

t.beforeEach(async () => {
  await store.query('delete from pool_pins')
})

t.test('two ledgers on one store claim the same member, whatever the hash says on the second', async (t) => {
  const a = ledger(store)
  const b = ledger(store)
  for (let i = 0; i < 30; i++) {
    const address = `user${i}@example.org`
    t.equal(await a.claim(address, POOL, REGISTRY), 'pinned')
    const onA = a.pinned(address, POOL, REGISTRY)!.id
    t.equal(onA, chooseMember(address, REGISTRY.eligibleMembers(POOL))!.id, 'the first claim pins the hash choice')
    // B's weights differ (a weight change not yet everywhere): its hash may choose another member.
    const skewed = poolOf([member('m1', 1), member('m2', 50), member('m3', 1)])
    t.equal(await b.claim(address, skewed, registryOf(skewed)), 'pinned')
    t.equal(b.pinned(address, skewed, registryOf(skewed))!.id, onA, `${address}: B keeps A's pin`)
  }
})

t.test('a local hit makes no query', async (t) => {
  const c = counting()
  const l = ledger(c.db)
  await l.claim('a@example.org', POOL, REGISTRY)
  t.equal(c.queries, 1, 'one claim')
  for (let i = 0; i < 100; i++) {
    t.ok(l.holds('a@example.org', POOL, REGISTRY))
    t.ok(l.pinned('a@example.org', POOL, REGISTRY))
  }
  t.equal(c.queries, 1, 'no query for 200 local hits')
  t.equal(l.pinned('b@example.org', POOL, REGISTRY), undefined, 'a miss answers undefined without a query')
  t.equal(c.queries, 1)
})

t.test('refresh keeps a used pin alive past pinFor; an unused one expires after pinFor', async (t) => {
  const clock = { now: 0 }
  const c = counting()
  const l = ledger(c.db, clock)
  await l.claim('used@example.org', POOL, REGISTRY)
  await l.claim('idle@example.org', POOL, REGISTRY)
  const member = l.pinned('used@example.org', POOL, REGISTRY)!.id
  for (let step = 1; step <= 4; step++) {
    clock.now = step * (PIN_FOR / 2)
    t.equal(l.pinned('used@example.org', POOL, REGISTRY)?.id, member, `used at ${clock.now} ms: still pinned`)
    const before = c.queries
    await l.refresh()
    t.ok(c.queries > before, 'the refresh confirmed it in the store')
  }
  t.equal(l.pinned('idle@example.org', POOL, REGISTRY), undefined, 'the idle pin expired')
  clock.now += PIN_FOR
  t.equal(l.pinned('used@example.org', POOL, REGISTRY), undefined, 'unused for pinFor: expired too')
})

t.test('a pin unconfirmed for pinFor (refreshes failing) is not used', async (t) => {
  const clock = { now: 0 }
  const c = counting()
  const l = ledger(c.db, clock)
  await l.claim('a@example.org', POOL, REGISTRY)
  c.fail = true
  for (let step = 1; step <= 3; step++) {
    clock.now = step * (PIN_FOR / 3) - 1
    t.ok(l.pinned('a@example.org', POOL, REGISTRY), `at ${clock.now} ms`)
    await l.refresh()
  }
  clock.now = PIN_FOR
  t.equal(l.pinned('a@example.org', POOL, REGISTRY), undefined, 'pinFor after the last confirmation: dropped, whatever the use')
})

t.test('a member down loses its pins at once; the next claim goes to the next member by hash', async (t) => {
  const l = ledger(store)
  const address = 'down@example.org'
  await l.claim(address, POOL, REGISTRY)
  const first = l.pinned(address, POOL, REGISTRY)!.id
  const down = registryOf(POOL, [first])
  t.equal(l.pinned(address, POOL, down), undefined, 'not used while its member is down')
  t.equal(await l.claim(address, POOL, down), 'pinned')
  const next = l.pinned(address, POOL, down)!.id
  t.not(next, first)
  t.equal(next, chooseMember(address, down.eligibleMembers(POOL))!.id, 'the hash choice among the others')
  t.equal(l.pinned(address, POOL, REGISTRY)?.id, next, 'the member back up: the user stays')

  const none = registryOf(POOL, ['m1', 'm2', 'm3'])
  t.equal(await l.claim('other@example.org', POOL, none), 'none-up', 'no member up: no pin')
})

t.test('drop() forgets the pins an admin dropped: by user, by member, all', async (t) => {
  const l = ledger(store)
  const users = Array.from({ length: 12 }, (_, i) => `d${i}@example.org`)
  for (const u of users) await l.claim(u, POOL, REGISTRY)
  const memberOf = (u: string) => l.pinned(u, POOL, REGISTRY)?.id
  const m = memberOf(users[0]!)!
  t.equal(l.drop({ pool: 'pool1', address: users[0]! }), 1)
  t.equal(memberOf(users[0]!), undefined)
  t.equal(l.drop({ pool: 'other', address: users[1]! }), 0, 'another pool: nothing')
  const onM = users.slice(1).filter((u) => memberOf(u) === m)
  t.equal(l.drop({ pool: 'pool1', member: m }), onM.length)
  for (const u of onM) t.equal(memberOf(u), undefined)
  t.equal(l.size, users.length - 1 - onM.length, 'the others are still held')
  t.equal(l.drop('all'), users.length - 1 - onM.length)
  t.equal(l.size, 0)
})

t.test('a failing store gives failed, never a guess; a hanging one too, at the claim deadline', async (t) => {
  const c = counting()
  let errors = 0
  const l = ledger(c.db, { now: 0 }, { claimTimeoutMs: 200, onStoreError: () => errors++ })
  c.fail = true
  t.equal(await l.claim('f@example.org', POOL, REGISTRY), 'failed')
  t.equal(l.pinned('f@example.org', POOL, REGISTRY), undefined, 'no pin was guessed')
  t.equal(errors, 1)
  c.fail = false
  c.hang = true
  t.equal(await l.claim('h@example.org', POOL, REGISTRY), 'failed')
  t.equal(l.pinned('h@example.org', POOL, REGISTRY), undefined)
  t.equal(errors, 2)
})

t.test('concurrent claims of one address share one query', async (t) => {
  const c = counting()
  const l = ledger(c.db)
  const outcomes = await Promise.all(Array.from({ length: 10 }, () => l.claim('c@example.org', POOL, REGISTRY)))
  t.same(new Set(outcomes), new Set(['pinned']))
  t.equal(c.queries, 1, 'one claim query for ten lookups')
  await Promise.all([l.claim('x@example.org', POOL, REGISTRY), l.claim('y@example.org', POOL, REGISTRY)])
  t.equal(c.queries, 3, 'one per address')
})
