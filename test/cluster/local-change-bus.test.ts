// The one-process bus over the embedded PGlite store: changes without a transaction at once,
// changes with one after its commit and never for a rollback, whatever the subscribers do.

import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Change, ChangeEvent } from '../../src/cluster/changes.js'
import { LocalChangeBus } from '../../src/cluster/local-change-bus.js'
import { createLogger, silentLogger } from '../../src/log.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import type { Queryable, Store } from '../../src/store/store.js'

const marker = (name: string): Change => ({ kind: 'entries', addresses: [`${name}@example.org`], ids: [name] })
const named = (name: string) => (e: ChangeEvent) => e.kind === 'entries' && e.ids.includes(name)

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** `asked` is what the bus asks about commits: the store itself unless a test stands in front of it. */
async function setup(t: Test, asked: (db: Store) => Queryable = (db) => db) {
  const db = await openPglite(IN_MEMORY)
  t.teardown(() => db.close())
  await db.exec('create table accounts (address text primary key)')
  const bus = new LocalChangeBus({ store: asked(db), logger: silentLogger })
  t.teardown(() => bus.close())
  const events: ChangeEvent[] = []
  bus.subscribe((e) => events.push(e))
  return { db, bus, events }
}

t.test('without a transaction: delivered before publish resolves, in order', async (t) => {
  const { bus, events } = await setup(t)
  await bus.publish(marker('one'))
  t.same(events, [marker('one')])
  await bus.publish({ kind: 'registry' })
  await bus.publish({ kind: 'moves' })
  t.same(events, [marker('one'), { kind: 'registry' }, { kind: 'moves' }])
})

t.test('inside a transaction: after the commit, never for a rollback', async (t) => {
  const { db, bus, events } = await setup(t)
  await t.rejects(
    db.transaction(async (tx) => {
      await tx.query("insert into accounts values ('gone@example.org')")
      await bus.publish(marker('rolled-back'), tx)
      throw new Error('rollback')
    }),
    /rollback/,
  )
  await db.transaction(async (tx) => {
    await tx.query("insert into accounts values ('new@example.org')")
    await bus.publish(marker('committed'), tx)
    await sleep(50) // the transaction is still open: nothing may arrive, however long it takes
    t.same(events, [], 'not before the commit')
  })
  await until('the committed change', () => events.some(named('committed')))
  t.notOk(events.some(named('rolled-back')), 'the rolled-back change never came')
  t.same((await db.query('select address from accounts')).rows, [{ address: 'new@example.org' }], 'the subscriber runs after the data is visible')
})

t.test('a subscriber that throws does not keep the others from hearing', async (t) => {
  let text = ''
  const db = await openPglite(IN_MEMORY)
  t.teardown(() => db.close())
  const bus = new LocalChangeBus({ store: db, logger: createLogger('debug', { write: (s: string) => void (text += s) }) })
  const heard: ChangeEvent[] = []
  bus.subscribe(() => {
    throw new Error('subscriber bug')
  })
  bus.subscribe((e) => heard.push(e))
  await bus.publish({ kind: 'registry' })
  t.same(heard, [{ kind: 'registry' }])
  t.match(text, /a subscriber failed/)
})

t.test('a store that answers "in progress" is asked again until the transaction is over', async (t) => {
  let statusQueries = 0
  // Our own Queryable over the real store: the first answers claim the transaction still runs.
  const slowToTell = (db: Store): Queryable => ({
    query: async <R>(sql: string, params?: readonly unknown[]) => {
      if (sql.includes('pg_xact_status') && ++statusQueries <= 3) return { rows: [{ status: 'in progress' } as R] }
      return db.query<R>(sql, params)
    },
  })
  const s = await setup(t, slowToTell)
  await s.db.transaction(async (tx) => s.bus.publish(marker('late'), tx))
  await until('the change', () => s.events.some(named('late')))
  t.equal(statusQueries, 4)
})

t.test('close(): nothing more is delivered, not even a change waiting for its commit', async (t) => {
  const { db, bus, events } = await setup(t)
  await db.transaction(async (tx) => {
    await bus.publish(marker('pending'), tx)
    await bus.close()
  })
  await bus.publish(marker('after'))
  await db.query('select 1') // the status query, queued behind the transaction, has run by now
  await sleep(20)
  t.same(events, [])
})
