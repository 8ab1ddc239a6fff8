// The session watch (src/pools/session-watch.ts) on a PGlite store with a fake doveadm `who`:
// live sessions keep their pins live past pinFor, re-pin a user whose pin expired to the member
// the session is on, leave a live pin to another member alone and report it, skip members that
// are down and director pools, and survive a member whose doveadm does not answer.

import t from 'tap'
import { silentLogger } from '../../src/log.js'
import { SessionWatch, watchInterval } from '../../src/pools/session-watch.js'
import { Registry, type PoolInfo, type PoolMember } from '../../src/resolve/registry.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'

const PIN_FOR = 60_000
const ports = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
const member = (id: string, address: string): PoolMember => ({ kind: 'member', id, pool: 'pool1', address, route: 'lmtp', ports, weight: 1 })
const POOL: PoolInfo = { kind: 'pool', id: 'pool1', mailHosts: [], route: 'lmtp', ports, members: [member('m1', '127.0.0.1'), member('m2', '127.0.0.2')], pinForMs: PIN_FOR }

const store = await openPglite(IN_MEMORY)
t.teardown(() => store.close())
await migrate(store)

const pinOf = async (address: string) =>
  (await store.query<{ member_id: string; age: number }>(`select member_id, extract(epoch from now() - last_seen) * 1000 as age from pool_pins where address = $1`, [address])).rows[0]

function watch(sessions: Record<string, string[] | Error>, o: { registry?: Registry } = {}) {
  const splits: string[] = []
  let errors = 0
  const w = new SessionWatch({
    store,
    registry: () => o.registry ?? new Registry([], [POOL]),
    who: async (address) => {
      const s = sessions[address] ?? []
      if (s instanceof Error) throw s
      return s
    },
    logger: silentLogger,
    onSplit: (_pool, m, n) => splits.push(`${m}:${n}`),
    onError: () => errors++,
  })
  return { w, splits, errors: () => errors }
}

t.beforeEach(() => store.query('delete from pool_pins'))

t.test('a live session keeps its pin live, and re-pins an expired or missing one to its member', async (t) => {
  await store.query(`insert into pool_pins (address, pool_id, member_id, last_seen) values ('old@x', 'pool1', 'm1', now() - interval '50 seconds'), ('gone@x', 'pool1', 'm1', now() - interval '2 hours')`)
  const { w, splits } = watch({ '127.0.0.1': ['OLD@x'], '127.0.0.2': ['gone@x', 'new@x'] })
  await w.round()
  t.match(await pinOf('old@x'), { member_id: 'm1' })
  t.ok((await pinOf('old@x'))!.age < 5000, 'last_seen moved to now: it lives another pinFor')
  t.match(await pinOf('gone@x'), { member_id: 'm2' }, 'an expired pin: the session is where the user is')
  t.match(await pinOf('new@x'), { member_id: 'm2' }, 'no pin: pinned where the session is')
  t.same(splits, [])
})

t.test('a live pin to another member is left alone and reported', async (t) => {
  await store.query(`insert into pool_pins (address, pool_id, member_id) values ('both@x', 'pool1', 'm1')`)
  const { w, splits } = watch({ '127.0.0.2': ['both@x'] })
  await w.round()
  t.match(await pinOf('both@x'), { member_id: 'm1' })
  t.same(splits, ['m2:1'])
})

t.test('members down, director pools and failing members', async (t) => {
  const down = new Registry([], [POOL], [], new Map([['m2', new Map([['imap', 'down' as const]])]]))
  const { w } = watch({ '127.0.0.2': ['x@x'] }, { registry: down })
  await w.round()
  t.equal(await pinOf('x@x'), undefined, 'a member down is not asked')
  const director = new Registry([], [{ ...POOL, director: { tag: 'pool1', address: '127.0.0.9' } }])
  const d = watch({ '127.0.0.1': ['y@x'] }, { registry: director })
  await d.w.round()
  t.equal(await pinOf('y@x'), undefined, 'the director keeps its own users')
  const failing = watch({ '127.0.0.1': new Error('ECONNREFUSED'), '127.0.0.2': ['z@x'] })
  await failing.w.round()
  t.equal(failing.errors(), 1)
  t.match(await pinOf('z@x'), { member_id: 'm2' }, 'the other member is still served')
})

t.test('start/stop and the interval', async (t) => {
  t.equal(watchInterval([POOL]), 20_000)
  t.equal(watchInterval([{ ...POOL, pinForMs: 5000 }]), 2000)
  t.equal(watchInterval([{ ...POOL, pinForMs: 3_600_000 }]), 60_000)
  const { w } = watch({})
  w.start()
  w.start()
  await w.stop()
  w.start()
  t.pass('stops, and does not start again')
})
