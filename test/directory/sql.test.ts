// The SQL directory on both engines, against the demo data: exact, alternate and alias
// addresses, misses, injection-looking keys, duplicates, and the failure model on a real
// PostgreSQL that is killed, restarted and locked.

import t, { type Test } from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { loadConfigFile } from '../../src/config/load.js'
import type { AccountEntry, DirectoryEntry } from '../../src/directory/directory.js'
import { SqlDirectory } from '../../src/directory/sql.js'
import { DirectoryError, ErrorCodes } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { LookupCache } from '../../src/cache/lookup-cache.js'
import { canonicalAddress } from '../../src/resolve/address.js'
import { Lookups } from '../../src/resolve/lookup-service.js'
import { Registry } from '../../src/resolve/registry.js'
import { Resolver } from '../../src/resolve/resolver.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import { openPostgres } from '../../src/store/postgres.js'
import { loadRegistry, seedFromConfig } from '../../src/store/registry-repo.js'
import { applySqlFile } from '../../src/store/sql-file.js'
import type { Store } from '../../src/store/store.js'
import { DEMO_FOUND, DEMO_MISSES, MAILHOST } from '../cases/demo-cases.js'
import { startPostgres } from '../harness/postgres.js'

const fixture = (name: string) => new URL(`../../fixtures/demo/${name}`, import.meta.url).pathname
const demoConfig = loadConfigFile(fixture('mailhostd.yaml'))

async function demoStore(store: Store): Promise<Store> {
  await migrate(store)
  await seedFromConfig(store, demoConfig)
  await applySqlFile(store, fixture('directory.sql'))
  return store
}

async function accountId(store: Store, address: string): Promise<string> {
  const { rows } = await store.query<{ id: string }>('select id::text as id from accounts where address = $1', [address])
  return `sql:account:${rows[0]!.id}`
}

const account = (id: string, canonical: string, mailHost: string, status: AccountEntry['status'] = 'active'): AccountEntry => ({
  kind: 'account',
  id,
  canonical,
  mailHost,
  status,
  sendAs: [],
})

async function directoryCases(t: Test, store: Store) {
  const dir = new SqlDirectory(store)
  t.equal(dir.kind, 'sql')
  const alice = await accountId(store, 'alice@example.org')

  await t.test('the demo directory', async (t) => {
    const cases: [string, DirectoryEntry[]][] = [
      ['alice@example.org', [account(alice, 'alice@example.org', 'mx1.example.org')]],
      ['alice.liddell@example.org', [account(alice, 'alice@example.org', 'mx1.example.org')]],
      ['bob@example.org', [account(await accountId(store, 'bob@example.org'), 'bob@example.org', 'mx2.example.org')]],
      [
        'carol@example.org',
        [account(await accountId(store, 'carol@example.org'), 'carol@example.org', 'mx1.example.org', 'disabled')],
      ],
      ['postmaster@example.org', [{ kind: 'alias', id: 'sql:alias:postmaster@example.org', targets: ['alice@example.org'] }]],
    ]
    for (const [address, want] of cases) t.same(await dir.findByAddress(address), want, address)
  })

  await t.test('misses are an empty answer, whatever the key looks like', async (t) => {
    const keys = [
      'nobody@example.org',
      'alice@example.net', // alias domains are the resolver's business
      'alice+tag@example.org', // so are extensions
      'ALICE@example.org', // keys arrive canonical; the directory compares exactly
      "' or '1'='1",
      "' or '1'='1@example.org",
      "alice@example.org' or '1'='1",
      "x'; drop table accounts; --",
      '%',
      '%@example.org',
      'alice%',
      '_',
      '_lice@example.org',
      '\\',
      'alice\\@example.org',
      '',
    ]
    for (const k of keys) t.same(await dir.findByAddress(k), [], JSON.stringify(k))
    t.same((await store.query('select count(*)::int as n from accounts')).rows, [{ n: 3 }], 'nothing was dropped')
  })

  await t.test('duplicates come back as separate entries; one account found twice is one', async (t) => {
    await store.query(`insert into accounts (address, mailhost) values ('dup@example.org', 'mx1.example.org')`)
    await store.query(`insert into aliases (address, target) values ('dup@example.org', 'bob@example.org')`)
    const both = await dir.findByAddress('dup@example.org')
    t.same(
      both.map((e) => e.kind),
      ['account', 'alias'],
      'an account and an alias',
    )

    await store.query(`insert into accounts (address, mailhost) values ('x@example.org', 'mx1.example.org')`)
    await store.query(`insert into accounts (address, mailhost) values ('y@example.org', 'mx2.example.org')`)
    await store.query(
      `insert into account_addresses (address, account_id) select 'y@example.org', id from accounts where address = 'x@example.org'`,
    )
    const two = await dir.findByAddress('y@example.org')
    t.same(
      two.map((e) => (e.kind === 'account' ? e.canonical : e.kind)).sort(),
      ['x@example.org', 'y@example.org'],
      'two accounts',
    )

    await store.query(
      `insert into account_addresses (address, account_id) select 'x@example.org', id from accounts where address = 'x@example.org'`,
    )
    t.equal((await dir.findByAddress('x@example.org')).length, 1, 'address and alternate of the same account: one entry')

    await store.query(
      `insert into aliases (address, target) values ('team@example.org', 'bob@example.org'), ('team@example.org', 'alice@example.org')`,
    )
    t.same(await dir.findByAddress('team@example.org'), [
      { kind: 'alias', id: 'sql:alias:team@example.org', targets: ['alice@example.org', 'bob@example.org'] },
    ])
  })

  await t.test('ping, abandoned queries, and close leaving the store open', async (t) => {
    await dir.ping()
    await dir.ping(new AbortController().signal)
    const gone = AbortSignal.abort()
    await t.rejects(dir.findByAddress('alice@example.org', gone), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_TIMEOUT })
    await t.rejects(dir.ping(gone), DirectoryError)
    t.equal((await dir.findByAddress('alice@example.org', new AbortController().signal)).length, 1)
    await dir.close()
    t.same((await store.query('select 1 as ok')).rows, [{ ok: 1 }], 'the shared store is still open')
  })
}

/** The shared acceptance table (test/cases/demo-cases.ts) through the real resolver on this store. */
async function demoTable(t: Test, store: Store) {
  const { domains, backends } = await loadRegistry(store)
  const registry = new Registry(domains, backends)
  const addresses = demoConfig.addresses
  const resolver = new Resolver(new SqlDirectory(store), () => registry, addresses, silentLogger)
  const cache = new LookupCache({ maxEntries: 100, maxMisses: 100, ttlMs: 60_000, negativeTtlMs: 10_000, maxStaleMs: 3_600_000 }, (key) => {
    const a = canonicalAddress(key, addresses)
    return a.ok ? resolver.resolve(a) : Promise.resolve({ kind: 'none' })
  })
  const lookups = new Lookups({
    registry: () => registry,
    cache,
    addresses,
    routes: demoConfig.routing,
    deadlineMs: 5000,
    logger: silentLogger,
  })
  for (const c of DEMO_FOUND) {
    const r = await lookups.lookup('recipient', c.key, 'test')
    t.same(r.answer, { outcome: 'found', value: MAILHOST[c.owner!] }, `recipient ${c.key} (${c.why})`)
    const local = await lookups.lookup(`local/${c.owner!}`, c.key, 'test')
    t.equal(local.answer.outcome, c.local ? 'found' : 'notfound', `local/${c.owner!} ${c.key}`)
  }
  for (const c of DEMO_MISSES) {
    const r = await lookups.lookup('recipient', c.key, 'test')
    t.equal(r.answer.outcome, 'notfound', `recipient ${JSON.stringify(c.key).slice(0, 40)} (${c.why})`)
  }
}

void t.test('PGlite', async (t) => {
  const store = await demoStore(await openPglite(IN_MEMORY))
  t.teardown(() => store.close())
  await t.test('demo case table through the resolver', (t) => demoTable(t, store))
  await directoryCases(t, store)

  await t.test('a store that fails is an error, never an empty answer', async (t) => {
    const broken = await openPglite(IN_MEMORY)
    await broken.close()
    const dir = new SqlDirectory(broken)
    await t.rejects(dir.findByAddress('alice@example.org'), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE })
    await t.rejects(dir.ping(), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE })
  })
})

peerTest(t, 'PostgreSQL', async (t, set) => {
  const server = await startPostgres({ set })
  t.teardown(() => server.stop())
  const connectTimeoutMs = 1000
  const statementTimeoutMs = 1000
  const store = await demoStore(
    await openPostgres({ url: server.url, poolSize: 4, connectTimeoutMs, statementTimeoutMs }, silentLogger),
  )
  t.teardown(() => store.close())
  await t.test('demo case table through the resolver', (t) => demoTable(t, store))
  await directoryCases(t, store)
  const dir = new SqlDirectory(store)

  await t.test('killed: DirectoryError promptly; restarted: the same store answers again', async (t) => {
    t.equal((await dir.findByAddress('bob@example.org')).length, 1)
    await server.kill()
    for (const attempt of [1, 2]) {
      const started = Date.now()
      await t.rejects(dir.findByAddress('bob@example.org'), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE })
      t.ok(Date.now() - started < connectTimeoutMs + 2000, `attempt ${attempt} answered within the connect timeout`)
    }
    await t.rejects(dir.ping(), DirectoryError)
    await server.restart()
    t.same(
      (await dir.findByAddress('bob@example.org')).map((e) => e.kind),
      ['account'],
    )
    await dir.ping()
  })

  await t.test('blocked: the deadline abandons the query, the statement timeout ends it', async (t) => {
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    let locked!: () => void
    const isLocked = new Promise<void>((resolve) => (locked = resolve))
    const blocker = store.transaction(async (tx) => {
      await tx.query('lock table aliases in access exclusive mode')
      locked()
      await held
    })
    await isLocked

    let started = Date.now()
    await t.rejects(dir.findByAddress('postmaster@example.org', AbortSignal.timeout(200)), {
      name: 'DirectoryError',
      code: ErrorCodes.DIRECTORY_TIMEOUT,
    })
    t.ok(Date.now() - started < 200 + 2000, 'abandoned at the deadline')

    started = Date.now()
    const err = await dir.findByAddress('postmaster@example.org').then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(err instanceof DirectoryError, 'a DirectoryError, never an empty answer')
    t.equal((err as DirectoryError).code, ErrorCodes.DIRECTORY_UNAVAILABLE)
    t.match((err as Error).message, /statement timeout/)
    t.ok(Date.now() - started < statementTimeoutMs + 3000, 'the server gave up within its statement timeout')

    release()
    await blocker
    t.equal((await dir.findByAddress('postmaster@example.org')).length, 1, 'answers again once unblocked')
  })
})
