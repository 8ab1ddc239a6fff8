import t, { type Test } from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ErrorCodes, MailhostdError } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { LATEST_VERSION, migrate, schemaVersion, type Migration } from '../../src/store/migrate.js'
import { MIGRATIONS } from '../../src/store/migrations/index.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import { openPostgres } from '../../src/store/postgres.js'
import type { Store } from '../../src/store/store.js'
import { startPostgres } from '../harness/postgres.js'

const TABLES = ['account_addresses', 'accounts', 'admin_intents', 'aliases', 'audit_log', 'backend_health', 'backends', 'domains', 'idempotency_keys', 'instances', 'moves', 'pool_members', 'pool_pins', 'schema_migrations']

const pgOpts = (url: string) => ({ url, poolSize: 4, connectTimeoutMs: 5000, statementTimeoutMs: 10_000 })

async function tables(store: Store): Promise<string[]> {
  const { rows } = await store.query<{ table_name: string }>(
    `select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
  )
  return rows.map((r) => r.table_name)
}

/** The same behaviour, checked on a blank database of each engine. */
async function migrationCases(t: Test, open: () => Promise<Store>) {
  await t.test('applies every migration to an empty database, then is a no-op', async (t) => {
    const store = await open()
    t.teardown(() => store.close())
    t.same(await migrate(store), { from: 0, to: LATEST_VERSION })
    t.same(await tables(store), TABLES)
    t.same(await migrate(store), { from: LATEST_VERSION, to: LATEST_VERSION })
    const { rows } = await store.query<{ n: number }>('select count(*)::int as n from schema_migrations')
    t.equal(rows[0]!.n, MIGRATIONS.length, 'each version recorded once')
  })

  await t.test('CHECK constraints hold the enumerations and formats', async (t) => {
    const store = await open()
    t.teardown(() => store.close())
    await migrate(store)
    await store.query(`insert into backends (id, address) values ('mx1', '10.0.0.11'), ('mx6', '2001:db8::1')`)
    await store.query(`insert into domains (name) values ('example.org')`)
    const rejected = [
      [`insert into backends (id, address, route) values ('b1', '10.0.0.1', 'uucp')`, 'route'],
      [`insert into backends (id, address, admin_state) values ('b2', '10.0.0.1', 'gone')`, 'admin_state'],
      [`insert into backends (id, address) values ('b3', '10.0.0.0/8')`, 'network as address'],
      [`insert into backends (id, address) values ('b4', 'mx.example.org')`, 'host name as address'],
      [`insert into backends (id, address, lmtp_port) values ('b5', '10.0.0.1', 0)`, 'port 0'],
      [`insert into backends (id, address) values ('-bad', '10.0.0.1')`, 'backend id format'],
      [`insert into domains (name) values ('Example.COM')`, 'upper-case domain'],
      [`insert into domains (name, alias_for, catch_all) values ('example.net', 'example.org', '{a@example.org}')`, 'alias domain with catch-all'],
      [`insert into domains (name, alias_for) values ('example.net', 'example.com')`, 'alias of an unknown domain'],
      [`insert into domains (name, catch_all) values ('example.com', '{}')`, 'empty catch-all'],
      [`insert into domains (name, backend_affinity) values ('example.com', 'mx9')`, 'affinity to an unknown backend'],
      [`insert into accounts (address, mailhost, status) values ('a@example.org', 'mx1', 'frozen')`, 'account status'],
      [`insert into accounts (address, mailhost) values ('no-at-sign', 'mx1')`, 'account address'],
      [`insert into account_addresses (address, account_id) values ('x@example.org', 424242)`, 'alternate of no account'],
    ] as const
    for (const [sql, what] of rejected) {
      await t.rejects(store.query(sql), `rejects ${what}`)
    }
    await store.query(`insert into accounts (address, mailhost) values ('a@example.org', 'mx1')`)
    const { rows } = await store.query<{ status: string; send_as: string[] }>(
      `select status, send_as from accounts where address = 'a@example.org'`,
    )
    t.same(rows, [{ status: 'active', send_as: [] }], 'defaults')
  })

  await t.test('a database newer than the code is refused and left alone', async (t) => {
    const store = await open()
    t.teardown(() => store.close())
    await migrate(store)
    await store.query(`insert into schema_migrations (version, name) values (999, 'from the future')`)
    const err = await migrate(store).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(err instanceof MailhostdError, 'a coded error')
    t.equal((err as MailhostdError).code, ErrorCodes.STORE_MIGRATION)
    t.equal((err as MailhostdError).transient, false, 'needs a human')
    t.match((err as Error).message, new RegExp(`version 999, newer than this mailhostd knows \\(${LATEST_VERSION}\\)`))
    t.equal(await schemaVersion(store), 999)
  })

  await t.test('a failing migration rolls back entirely and is reported', async (t) => {
    const store = await open()
    t.teardown(() => store.close())
    const broken: Migration = { version: LATEST_VERSION + 1, name: 'broken', statements: ['create table half_done (a int)', 'select no_such_column'] }
    await t.rejects(migrate(store, silentLogger, [...MIGRATIONS, broken]), {
      code: ErrorCodes.STORE_MIGRATION,
      message: new RegExp(`migration ${LATEST_VERSION + 1} \\(broken\\) failed`),
    })
    t.equal(await schemaVersion(store), LATEST_VERSION, 'earlier versions committed in their own transactions')
    t.notOk((await tables(store)).includes('half_done'), 'nothing of the broken version is left')
  })
}

void t.test('migration list is in sequence', async (t) => {
  MIGRATIONS.forEach((m, i) => t.equal(m.version, i + 1, `${m.name} is version ${i + 1}`))
  t.equal(LATEST_VERSION, MIGRATIONS.length)
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  const gap: Migration = { version: LATEST_VERSION + 2, name: 'gap', statements: [] }
  await t.rejects(migrate(store, silentLogger, [...MIGRATIONS, gap]), { code: ErrorCodes.STORE_MIGRATION, message: /out of sequence/ })
  t.same(await tables(store), [], 'nothing ran')
})

void t.test('an unusable store is a coded error, not a crash', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailhostd-pglite-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'pglite'), 'a file where the database directory should be')
  await t.rejects(openPglite(dir), { code: ErrorCodes.STORE_UNAVAILABLE, message: /cannot open the embedded database/ })
  const closed = await openPglite(IN_MEMORY)
  await closed.close()
  await closed.close()
  await t.rejects(migrate(closed), { code: ErrorCodes.STORE_UNAVAILABLE, message: /cannot migrate the store/ })
})

void t.test('PGlite', async (t) => {
  await migrationCases(t, () => openPglite(IN_MEMORY))

  await t.test('on disk: created under <dataDir>/pglite and persists across opens', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mailhostd-pglite-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const dataDir = join(dir, 'not-yet-there')
    const first = await openPglite(dataDir)
    t.equal(first.kind, 'pglite')
    await migrate(first)
    await first.query(`insert into backends (id, address) values ('mx1', '10.0.0.11')`)
    await first.close()
    t.ok(existsSync(join(dataDir, 'pglite', 'PG_VERSION')), 'database files in <dataDir>/pglite')
    const second = await openPglite(dataDir)
    t.teardown(() => second.close())
    t.same(await migrate(second), { from: LATEST_VERSION, to: LATEST_VERSION })
    t.same((await second.query('select id from backends')).rows, [{ id: 'mx1' }])
  })
})

peerTest(t, 'PostgreSQL', async (t, set) => {
  const server = await startPostgres({ set })
  t.teardown(() => server.stop())
  let n = 0
  await migrationCases(t, async () => openPostgres(pgOpts(await server.createDatabase(`blank_${++n}`)), silentLogger))

  await t.test('concurrent migrators on one database do not collide', async (t) => {
    const url = await server.createDatabase('race')
    const stores = await Promise.all([1, 2, 3, 4].map(() => openPostgres(pgOpts(url), silentLogger)))
    t.teardown(() => Promise.all(stores.map((s) => s.close())))
    const reports = await Promise.all(stores.map((s) => migrate(s)))
    t.equal(reports.filter((r) => r.from === 0).length, 1, 'exactly one instance applied the schema')
    t.ok(reports.every((r) => r.to === LATEST_VERSION), 'all end at the latest version')
    const { rows } = await stores[0]!.query<{ version: number }>('select version from schema_migrations order by version')
    t.same(
      rows.map((r) => r.version),
      MIGRATIONS.map((m) => m.version),
    )
  })
})
