// The health records on both stores (embedded PGlite and a real PostgreSQL): recordHealth says
// whether the state changed (the checker announces only then), `since` moves only with a change,
// the detail and recording instance follow every write, and forgetHealth drops a backend's rows.

import t, { type Test } from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { forgetHealth, healthRecords, loadHealth, recordHealth } from '../../src/health/health-repo.js'
import { silentLogger } from '../../src/log.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import { openPostgres } from '../../src/store/postgres.js'
import type { Store } from '../../src/store/store.js'
import { startPostgres } from '../harness/postgres.js'

async function checks(t: Test, store: Store): Promise<void> {
  await migrate(store, silentLogger)
  const rec = (service: 'delivery' | 'imap', state: 'up' | 'down', detail: string | null, instance: string) =>
    recordHealth(store, { backend: 'mx1', service, state, detail, instance })
  t.equal(await rec('imap', 'up', null, 'a:1'), true, 'first record: changed')
  const first = (await healthRecords(store))[0]!
  await sleep(20)
  t.equal(await rec('imap', 'up', null, 'b:2'), false, 'same state again: unchanged')
  t.match(await healthRecords(store), [{ since: first.since, instance: 'b:2' }], 'since kept; the last writer named')
  await sleep(20)
  t.equal(await rec('imap', 'down', 'connection failed: ECONNREFUSED', 'a:1'), true, 'up to down: changed')
  const down = (await healthRecords(store))[0]!
  t.match(down, { state: 'down', detail: 'connection failed: ECONNREFUSED', instance: 'a:1' })
  t.ok(down.since > first.since, 'since moved')
  t.equal(await rec('imap', 'down', 'no greeting within 2000 ms', 'b:2'), false, 'still down: unchanged')
  t.match(await healthRecords(store), [{ since: down.since, detail: 'no greeting within 2000 ms' }], 'the detail follows the latest probe')
  await rec('delivery', 'up', null, 'a:1')
  t.same(
    [...(await loadHealth(store)).get('mx1')!],
    [
      ['delivery', 'up'],
      ['imap', 'down'],
    ],
  )
  await forgetHealth(store, 'mx1')
  t.same(await healthRecords(store), [], 'forgotten')
}

t.test('PGlite', async (t) => {
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  await checks(t, store)
})

peerTest(t, 'PostgreSQL', async (t, set) => {
  const pg = await startPostgres({ set })
  t.teardown(() => pg.stop())
  const store = await openPostgres({ url: pg.url, poolSize: 2, connectTimeoutMs: 5000, statementTimeoutMs: 10_000 }, silentLogger)
  t.teardown(() => store.close())
  await checks(t, store)
})
