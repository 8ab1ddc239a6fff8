// Acceptance: the demo case table through postmap on the SQL directory, on embedded PGlite and
// on a PostgreSQL started by the harness.

import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { startMailhostd, ROOT } from '../harness/mailhostd.js'
import { startPostgres } from '../harness/postgres.js'
import { checkDemoTable, demoClusterConfig } from './demo-table.js'

const seed = ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`]

t.test('SQL directory on PGlite', async (t) => {
  const m = await startMailhostd({ ...demoClusterConfig(), directory: { type: 'sql' } }, { args: seed })
  t.teardown(() => m.stop())
  await checkDemoTable(t, m.ports)
})

peerTest(t, 'SQL directory on PostgreSQL', async (t, set) => {
  const pg = await startPostgres({ set })
  t.teardown(() => pg.stop())
  const m = await startMailhostd({ ...demoClusterConfig(), directory: { type: 'sql' }, store: { url: pg.url } }, { args: seed })
  t.teardown(() => m.stop())
  await checkDemoTable(t, m.ports, { set })
})
