// The store's CHECK constraints and partial indexes name closed sets the code declares as data
// (src/resolve/vocabulary.ts, src/admin/move-states.ts, ...). Migrations that have shipped cannot
// change, so instead of deriving them this holds what the migrated database enforces to the
// arrays: widening a set without a migration that widens its constraint fails here.

import t from 'tap'
import { MOVE_STATES, UNFINISHED } from '../../src/admin/move-states.js'
import { ACCOUNT_STATUSES } from '../../src/directory/directory.js'
import { ADMIN_STATES, BACKEND_ID_PATTERN, BACKEND_KINDS, PROBED_SERVICES, ROUTE_STYLES, SERVICE_HEALTH_STATES } from '../../src/resolve/vocabulary.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'

const store = await openPglite(IN_MEMORY)
t.teardown(() => store.close())
await migrate(store)

/** PostgreSQL's own text of a constraint: `in (...)` reads back as `= ANY (ARRAY['a'::text, ...])`. */
async function constraint(name: string): Promise<string> {
  const { rows } = await store.query<{ def: string }>(`select pg_get_constraintdef(oid) as def from pg_constraint where conname = $1`, [name])
  if (rows.length !== 1) throw new Error(`no constraint ${name}`)
  return rows[0]!.def
}

async function indexPredicate(name: string): Promise<string> {
  const { rows } = await store.query<{ def: string }>(`select pg_get_expr(indpred, indrelid) as def from pg_index where indexrelid = $1::regclass`, [name])
  if (rows.length !== 1 || rows[0]!.def === null) throw new Error(`no partial index ${name}`)
  return rows[0]!.def
}

/** The string literals of a definition, in order. */
const literals = (def: string) => [...def.matchAll(/'((?:[^']|'')*)'::text/g)].map((m) => m[1]!.replaceAll("''", "'"))

const sets: [string, readonly string[]][] = [
  ['backends_admin_state', ADMIN_STATES],
  ['pool_members_admin_state', ADMIN_STATES],
  ['backends_kind', BACKEND_KINDS],
  ['backends_route', ROUTE_STYLES],
  ['accounts_status', ACCOUNT_STATUSES],
  ['moves_state', MOVE_STATES],
  ['backend_health_service', PROBED_SERVICES],
  ['backend_health_state', SERVICE_HEALTH_STATES],
]

for (const [name, values] of sets) {
  t.test(`${name} allows exactly the declared values`, async (t) => {
    const def = await constraint(name)
    t.match(def, /= ANY \(ARRAY\[/, `${name} is a list of values: ${def}`)
    t.same(literals(def), [...values])
  })
}

t.test('the one-unfinished-move index covers exactly the unfinished states', async (t) => {
  t.same(literals(await indexPredicate('moves_one_active')), [...UNFINISHED])
})

t.test('backends_id_format is the backend id pattern', async (t) => {
  t.same(literals(await constraint('backends_id_format')), [BACKEND_ID_PATTERN])
  t.same(literals(await constraint('pool_members_id_format')), [BACKEND_ID_PATTERN], 'members share the backend id namespace')
})
