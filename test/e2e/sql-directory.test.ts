// Acceptance: the demo case table through postmap on the SQL directory, on embedded PGlite and
// on a PostgreSQL started by the harness.

import t from 'tap'
import { startMailhostd, ROOT } from '../harness/mailhostd.js'
import { startPostgres } from '../harness/postgres.js'
import { checkDemoTable, demoClusterConfig } from './demo-table.js'

const seed = ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`]

t.test('SQL directory on PGlite', async (t) => {
  const m = await startMailhostd({ ...demoClusterConfig(), directory: { type: 'sql' } }, { args: seed })
  t.teardown(() => m.stop())
  await checkDemoTable(t, m.ports)
})

t.test('SQL directory on PostgreSQL', async (t) => {
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const m = await startMailhostd({ ...demoClusterConfig(), directory: { type: 'sql' }, store: { url: pg.url } }, { args: seed })
  t.teardown(() => m.stop())
  await checkDemoTable(t, m.ports)
})
