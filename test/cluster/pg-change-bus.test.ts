// Change notifications between instances over a real PostgreSQL: delivered to every bus (the
// sender's too), at commit and never for a rollback, split under the payload limit, and after
// the listening session breaks (killed, hung, server down at start) a resync and delivery again.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Change, ChangeEvent } from '../../src/cluster/changes.js'
import { changePayloads, LISTENER_APPLICATION_NAME, MAX_PAYLOAD_BYTES, parseChangePayload, PgChangeBus } from '../../src/cluster/pg-change-bus.js'
import { loadConfigFile } from '../../src/config/load.js'
import { SqlDirectory } from '../../src/directory/sql.js'
import { createLogger, silentLogger } from '../../src/log.js'
import { Registry } from '../../src/resolve/registry.js'
import { migrate } from '../../src/store/migrate.js'
import { openPostgres } from '../../src/store/postgres.js'
import { loadRegistry, seedFromConfig } from '../../src/store/registry-repo.js'
import { applySqlFile } from '../../src/store/sql-file.js'
import type { Store } from '../../src/store/store.js'
import { lookupStack } from '../fakes/lookup-stack.js'
import { startPostgres, type Pg } from '../harness/postgres.js'

const demoFile = (name: string) => new URL(`../../fixtures/demo/${name}`, import.meta.url).pathname

function captureLog() {
  let text = ''
  const logger = createLogger('debug', { write: (s: string) => void (text += s) })
  return { logger, text: () => text }
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/** A started bus and everything it delivered. */
async function listen(pg: Pg, store: Store, opts: { logger?: ReturnType<typeof captureLog>['logger']; heartbeatMs?: number } = {}) {
  const bus = new PgChangeBus({ url: pg.url, connectTimeoutMs: 1000, logger: opts.logger ?? silentLogger, store, heartbeatMs: opts.heartbeatMs })
  const events: ChangeEvent[] = []
  bus.subscribe((e) => events.push(e))
  await bus.start()
  const has = (pred: (e: ChangeEvent) => boolean) => events.some(pred)
  const marker = (name: string) => (e: ChangeEvent) => e.kind === 'entries' && e.ids.includes(name)
  return { bus, events, has, marker }
}

const entries = (addresses: string[], ids: string[] = []): Change => ({ kind: 'entries', addresses, ids })
const markerChange = (name: string) => entries([], [name])

const listeners = async (store: Store) =>
  (await store.query<{ pid: number }>('select pid from pg_stat_activity where application_name = $1', [LISTENER_APPLICATION_NAME])).rows.map((r) => r.pid)

async function newestListener(store: Store): Promise<number> {
  const { rows } = await store.query<{ pid: number }>(
    'select pid from pg_stat_activity where application_name = $1 order by backend_start desc limit 1',
    [LISTENER_APPLICATION_NAME],
  )
  return rows[0]!.pid
}

eachPeerSet(t, async (t, set) => {
  t.test('payloads: split under the limit, parsed back, malformed ones refused', async (t) => {
    const addresses = Array.from({ length: 3000 }, (_, i) => `user-${i}-${'x'.repeat(i % 40)}@example.org`)
    const ids = Array.from({ length: 500 }, (_, i) => `uid=user-${i},ou=people,dc=example,dc=org`)
    const payloads = changePayloads(entries(addresses, ids))
    t.ok(payloads.length > 10, `${payloads.length} payloads`)
    for (const p of payloads) t.ok(Buffer.byteLength(p) <= MAX_PAYLOAD_BYTES, `${Buffer.byteLength(p)} bytes`)
    const back = payloads.map(parseChangePayload)
    t.same(back.flatMap((e) => (e?.kind === 'entries' ? e.addresses : [])), addresses, 'every address, in order')
    t.same(back.flatMap((e) => (e?.kind === 'entries' ? e.ids : [])), ids, 'every id, in order')
    t.same(changePayloads(entries([], [])), [], 'nothing to say, nothing sent')
    t.same(changePayloads({ kind: 'registry' }).map(parseChangePayload), [{ kind: 'registry' }])
    t.same(changePayloads({ kind: 'moves' }).map(parseChangePayload), [{ kind: 'moves' }])
    const huge = changePayloads(entries(['a@example.org'], [`cn=${'x'.repeat(9000)}`])).map(parseChangePayload)
    t.same(huge, [{ kind: 'entries', addresses: ['a@example.org'], ids: [] }, { kind: 'resync' }], 'an item no payload can hold becomes a resync')
    for (const bad of [undefined, '', 'not json', '[]', 'null', '{"kind":"entries"}', '{"v":1,"kind":"entries","addresses":[1],"ids":[]}', '{"v":1,"kind":"drop"}', '{"v":2,"kind":"registry"}']) {
      t.equal(parseChangePayload(bad), undefined, `refused: ${String(bad)}`)
    }
  })

  t.test('PostgreSQL LISTEN/NOTIFY', async (t) => {
    const pg = await startPostgres({ set })
    t.teardown(() => pg.stop())
    const store = await openPostgres({ url: pg.url, poolSize: 4, connectTimeoutMs: 2000, statementTimeoutMs: 5000 }, silentLogger)
    t.teardown(() => store.close())
    const logA = captureLog()
    const a = await listen(pg, store, { logger: logA.logger })
    const b = await listen(pg, store)
    t.teardown(() => a.bus.close())
    t.teardown(() => b.bus.close())
    const both = (pred: (e: ChangeEvent) => boolean) => a.has(pred) && b.has(pred)

    await t.test('a change published by one bus reaches every bus, its own included', async (t) => {
      const change = entries(['alice@example.org'], ['uid=alice,ou=people,dc=example,dc=org'])
      await a.bus.publish(change)
      await a.bus.publish({ kind: 'registry' })
      await a.bus.publish({ kind: 'moves' })
      await until('delivery', () => both((e) => e.kind === 'moves'))
      for (const x of [a, b]) t.same(x.events, [change, { kind: 'registry' }, { kind: 'moves' }], 'in order')
    })

    await t.test('inside a transaction: nothing for a rollback, delivery at commit', async (t) => {
      await t.rejects(
        store.transaction(async (tx) => {
          await a.bus.publish(markerChange('rolled-back'), tx)
          throw new Error('rollback')
        }),
        /rollback/,
      )
      let committed = false
      await store.transaction(async (tx) => {
        await a.bus.publish(markerChange('committed'), tx)
        // Sent outside the transaction, after it: it overtakes the one waiting for the commit.
        await b.bus.publish(markerChange('outside'))
        await until('the outside change', () => both(a.marker('outside')))
        t.notOk(a.has(a.marker('committed')) || b.has(b.marker('committed')), 'not delivered before the commit')
        committed = true
      })
      t.ok(committed)
      await until('the committed change', () => both(a.marker('committed')))
      t.notOk(a.has(a.marker('rolled-back')) || b.has(b.marker('rolled-back')), 'the rolled-back change never came')
    })

    await t.test('a large change is split over several notifications and arrives whole', async (t) => {
      const addresses = Array.from({ length: 2500 }, (_, i) => `someone.with.a.long.name.${i}@example.org`)
      const ids = addresses.map((addr) => `sql:account:${addr.length}${addr}`)
      const before = { a: a.events.length, b: b.events.length }
      await a.bus.publish(entries(addresses, ids))
      const got = (x: typeof a, from: number) => {
        const events = x.events.slice(from)
        return { addresses: events.flatMap((e) => (e.kind === 'entries' ? e.addresses : [])), ids: events.flatMap((e) => (e.kind === 'entries' ? e.ids : [])) }
      }
      await until('every id on both buses', () => got(a, before.a).ids.length === ids.length && got(b, before.b).ids.length === ids.length)
      t.same(got(a, before.a), { addresses, ids }, 'the sender')
      t.same(got(b, before.b), { addresses, ids }, 'the other bus')
      t.ok(b.events.length - before.b > 10, `${b.events.length - before.b} notifications`)
    })

    await t.test("two instances: B's warm cache follows a move made on A within a second", async (t) => {
      await migrate(store)
      await seedFromConfig(store, loadConfigFile(demoFile('mailhostd.yaml')))
      await applySqlFile(store, demoFile('directory.sql'))
      const { domains, backends } = await loadRegistry(store)
      const instance = async () => {
        const { lookups, cache } = lookupStack(new SqlDirectory(store), { registry: new Registry(domains, backends) })
        const bus = new PgChangeBus({ url: pg.url, connectTimeoutMs: 1000, logger: silentLogger, store })
        bus.subscribe((e) => {
          if (e.kind === 'entries') cache.invalidateEntries(e.addresses, e.ids)
        })
        await bus.start()
        t.teardown(() => bus.close())
        const recipient = async (key: string) => {
          const r = await lookups.lookup('recipient', key, 'test')
          return { value: r.answer.outcome === 'found' ? r.answer.value : r.answer.outcome, layer: r.layer }
        }
        return { bus, recipient }
      }
      const A = await instance()
      const B = await instance()
      for (const key of ['alice@example.org', 'postmaster@example.org', 'bob@example.org']) await B.recipient(key)
      t.same(await B.recipient('postmaster@example.org'), { value: 'mx1.example.org', layer: 'cache' }, 'B is warm')

      const { rows } = await store.query<{ id: string }>("select id::text as id from accounts where address = 'alice@example.org'")
      await store.transaction(async (tx) => {
        await tx.query("update accounts set mailhost = 'mx2.example.org' where address = 'alice@example.org'")
        await A.bus.publish({ kind: 'entries', addresses: ['alice@example.org', 'alice.liddell@example.org'], ids: [`sql:account:${rows[0]!.id}`] }, tx)
      })
      const moved = Date.now()
      await until('B to answer the move', async () => (await B.recipient('alice@example.org')).value === 'mx2.example.org', 1000)
      await until('B to answer the move for the alias', async () => (await B.recipient('postmaster@example.org')).value === 'mx2.example.org', 1000)
      t.ok(Date.now() - moved < 1000, `B answered the move ${Date.now() - moved} ms after the commit`)
      t.same(await B.recipient('bob@example.org'), { value: 'mx2.example.org', layer: 'cache' }, 'the rest of B stays cached')
    })

    await t.test('malformed payloads are logged and ignored', async (t) => {
      const before = a.events.length
      await store.query(`select pg_notify('mailhostd_changes', 'not json')`)
      await a.bus.publish(markerChange('after-garbage'))
      await until('the next change', () => a.has(a.marker('after-garbage')))
      t.equal(a.events.length, before + 1, 'only the valid one')
      t.match(logA.text(), /malformed notification/)
    })

    await t.test('the listening session killed: a resync, then delivery again', async (t) => {
      const pids = await listeners(store)
      t.equal(pids.length, 2, 'one listening session per bus')
      a.events.length = 0
      b.events.length = 0
      await store.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [LISTENER_APPLICATION_NAME])
      await until('both resyncs', () => both((e) => e.kind === 'resync'))
      await until('new sessions', async () => (await listeners(store)).filter((p) => !pids.includes(p)).length === 2)
      await a.bus.publish(markerChange('after-kill'))
      await until('delivery after the kill', () => both(a.marker('after-kill')))
      t.match(logA.text(), /listening session lost/)
    })

    await t.test('a session that hangs is found out by the heartbeat', async (t) => {
      const hb = await listen(pg, store, { heartbeatMs: 200 })
      t.teardown(() => hb.bus.close())
      // The newest listening session is hb's; frozen, it looks like a peer that vanished.
      const newest = await newestListener(store)
      process.kill(newest, 'SIGSTOP')
      try {
        await until('the resync', () => hb.has((e) => e.kind === 'resync'))
      } finally {
        process.kill(newest, 'SIGCONT')
      }
      await a.bus.publish(markerChange('after-hang'))
      await until('delivery after the hang', () => hb.has(hb.marker('after-hang')))
    })

    await t.test('close() ends the session and every retry', async (t) => {
      const count = async () => (await listeners(store)).length
      await a.bus.close()
      await b.bus.close()
      await until('the sessions of a and b gone', async () => (await count()) === 0)
      const c = await listen(pg, store)
      await until('the session of c', async () => (await count()) === 1)
      await store.query('select pg_terminate_backend($1)', [await newestListener(store)])
      await until('c listening again', async () => (await count()) === 1 && c.has((e) => e.kind === 'resync'))
      await store.query('select pg_terminate_backend($1)', [await newestListener(store)])
      // Closed while it waits to reconnect (or while reconnecting).
      await c.bus.close()
      const seen = c.events.length
      await until('the session gone', async () => (await count()) === 0)
      await sleep(1000) // longer than the first three reconnect delays together
      t.equal(await count(), 0, 'no session came back')
      t.equal(c.events.length, seen, 'nothing delivered after close')
    })

    await t.test('the server down at start: start() still resolves, and the bus comes up with it', async (t) => {
      await pg.stop()
      const log = captureLog()
      const bus = new PgChangeBus({ url: pg.url, connectTimeoutMs: 500, logger: log.logger, store })
      t.teardown(() => bus.close())
      const events: ChangeEvent[] = []
      bus.subscribe((e) => events.push(e))
      await bus.start()
      t.match(log.text(), /cannot listen for changes yet/)
      await pg.restart()
      await until('the resync', () => events.some((e) => e.kind === 'resync'))
      await until('the pool reconnected', async () => store.query('select 1').then(() => true, () => false))
      await bus.publish(markerChange('after-restart'))
      await until('delivery', () => events.some((e) => e.kind === 'entries' && e.ids.includes('after-restart')))
      t.notMatch(log.text(), new RegExp(pg.password), 'no password in the log')
    })
  })
})
