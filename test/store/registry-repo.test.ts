import t, { type Test } from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { loadConfigFile, validateConfig } from '../../src/config/load.js'
import type { Config } from '../../src/config/schema.js'
import { silentLogger } from '../../src/log.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import { openPostgres } from '../../src/store/postgres.js'
import { loadRegistry, seedFromConfig } from '../../src/store/registry-repo.js'
import type { Store } from '../../src/store/store.js'
import { startPostgres } from '../harness/postgres.js'

const demo = loadConfigFile(new URL('../../fixtures/demo/mailhostd.yaml', import.meta.url).pathname)

const ports = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
const DEMO_REGISTRY = {
  backends: [
    { id: 'mx1', kind: 'host', mailHosts: ['mx1.example.org'], address: '10.0.0.11', route: 'lmtp', ports, adminState: 'active', weight: 1, capacity: null },
    { id: 'mx2', kind: 'host', mailHosts: ['mx2.example.org'], address: '10.0.0.12', route: 'lmtp', ports, adminState: 'active', weight: 1, capacity: null },
  ],
  domains: [
    { name: 'example.com', catchAll: ['bob@example.org'] },
    { name: 'example.net', aliasFor: 'example.org' },
    { name: 'example.org' },
  ],
}

interface AuditRow {
  action: string
  actor: string
  subject_type: string
  subject: string
  before: Record<string, unknown> | null
  after: Record<string, unknown>
}

const audit = async (store: Store) =>
  (await store.query<AuditRow>('select actor, action, subject_type, subject, before, after from audit_log order by id')).rows

const withConfig = (over: Partial<Config>): Config => ({ ...demo, ...over })

async function registryCases(t: Test, open: () => Promise<Store>) {
  const store = await open()
  t.teardown(() => store.close())
  await migrate(store)

  await t.test('seeding the demo config and loading it back', async (t) => {
    await seedFromConfig(store, demo)
    t.same(await loadRegistry(store), DEMO_REGISTRY)
    const rows = await audit(store)
    t.same(
      rows.map((r) => [r.actor, r.action, r.subject_type, r.subject]),
      [
        ['config', 'create', 'backend', 'mx1'],
        ['config', 'create', 'backend', 'mx2'],
        ['config', 'create', 'domain', 'example.org'],
        ['config', 'create', 'domain', 'example.com'],
        ['config', 'create', 'domain', 'example.net'],
      ],
      'one audit row per created row; the alias domain after its target',
    )
    t.equal(rows[0]!.before, null)
    t.match(rows[0]!.after, { id: 'mx1', address: '10.0.0.11', mailhosts: ['mx1.example.org'] })
  })

  await t.test('re-seeding an unchanged config writes nothing', async (t) => {
    const before = (await audit(store)).length
    await seedFromConfig(store, demo)
    await seedFromConfig(store, demo)
    t.equal((await audit(store)).length, before)
    t.same(await loadRegistry(store), DEMO_REGISTRY)
  })

  await t.test('config wins for its fields; admin fields and other rows are left alone', async (t) => {
    await store.query(`update backends set weight = 5, capacity = 1000, admin_state = 'drain' where id = 'mx1'`)
    await store.query(`update backends set address = '10.9.9.9' where id = 'mx2'`)
    await store.query(`insert into backends (id, address) values ('mx3', '10.0.0.13')`)
    await store.query(`update domains set backend_affinity = 'mx3' where name = 'example.org'`)
    await store.query(`insert into domains (name) values ('admin-added.example')`)
    const before = (await audit(store)).length

    await seedFromConfig(store, demo)

    const rows = await audit(store)
    t.equal(rows.length, before + 1, 'only the backend config disagreed with is audited')
    t.match(rows.at(-1), {
      action: 'update',
      subject: 'mx2',
      before: { address: '10.9.9.9' },
      after: { address: '10.0.0.12' },
    })
    const mx1 = (await store.query(`select weight, capacity, admin_state from backends where id = 'mx1'`)).rows
    t.same(mx1, [{ weight: 5, capacity: 1000, admin_state: 'drain' }])
    const org = (await store.query(`select backend_affinity from domains where name = 'example.org'`)).rows
    t.same(org, [{ backend_affinity: 'mx3' }])
    const reg = await loadRegistry(store)
    t.same(
      reg.backends.map((b) => b.id),
      ['mx1', 'mx2', 'mx3'],
    )
    t.ok(reg.domains.some((d) => d.name === 'admin-added.example'))
  })

  await t.test('changes in the config are applied and audited with before and after', async (t) => {
    const before = (await audit(store)).length
    const changed = validateConfig({
      domains: [
        { name: 'Example.ORG.' },
        { name: 'example.net', aliasFor: 'example.org' },
        { name: 'example.com', catchAll: ['Bob@Example.org', 'alice@example.org'] },
      ],
      backends: [
        { id: 'mx1', mailHosts: ['mx1.example.org', 'store1'], address: '10.0.0.11', route: 'smtp', ports: { smtp: 2525 } },
        { id: 'mx2', mailHosts: ['mx2.example.org'], address: '10.0.0.12' },
      ],
    })
    await seedFromConfig(store, changed)
    const rows = (await audit(store)).slice(before)
    t.same(
      rows.map((r) => [r.action, r.subject]),
      [
        ['update', 'mx1'],
        ['update', 'example.com'],
      ],
    )
    t.match(rows[1], { before: { catch_all: ['bob@example.org'] }, after: { catch_all: ['bob@example.org', 'alice@example.org'] } })
    const reg = await loadRegistry(store)
    t.same(reg.backends[0], {
      id: 'mx1',
      kind: 'host',
      mailHosts: ['mx1.example.org', 'store1'],
      address: '10.0.0.11',
      route: 'smtp',
      ports: { ...ports, smtp: 2525 },
      adminState: 'drain',
      weight: 5,
      capacity: 1000,
    }, 'admin state, weight and capacity come from the store, not the config')
    t.same(
      reg.domains.find((d) => d.name === 'example.com'),
      { name: 'example.com', catchAll: ['bob@example.org', 'alice@example.org'] },
      'catch-all targets lowercased',
    )

    const { catchAll: _dropped, ...plain } = changed.domains[2]!
    await seedFromConfig(store, withConfig({ domains: [changed.domains[0]!, changed.domains[1]!, plain] }))
    t.same(
      (await loadRegistry(store)).domains.find((d) => d.name === 'example.com'),
      { name: 'example.com' },
      'a catch-all removed from the config is removed from the store',
    )
  })
}

void t.test('alias domains listed before their target seed in one go', async (t) => {
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  await migrate(store)
  const config = validateConfig({
    domains: [{ name: 'example.net', aliasFor: 'EXAMPLE.org' }, { name: 'example.org' }],
  })
  await seedFromConfig(store, config)
  t.same((await loadRegistry(store)).domains, [{ name: 'example.net', aliasFor: 'example.org' }, { name: 'example.org' }])
})

void t.test('a failed seed leaves nothing behind', async (t) => {
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  await migrate(store)
  // Config validation would refuse this address; the schema refuses it too, mid-transaction.
  const bad = { ...demo, backends: [demo.backends[0]!, { ...demo.backends[1]!, address: 'not-an-ip' }] }
  await t.rejects(seedFromConfig(store, bad))
  t.same(await loadRegistry(store), { domains: [], backends: [] })
  t.same(await audit(store), [])
})

void t.test('PGlite', (t) => registryCases(t, () => openPglite(IN_MEMORY)))

peerTest(t, 'PostgreSQL', async (t, set) => {
  const server = await startPostgres({ set })
  t.teardown(() => server.stop())
  await registryCases(t, () =>
    openPostgres({ url: server.url, poolSize: 4, connectTimeoutMs: 5000, statementTimeoutMs: 10_000 }, silentLogger),
  )

  await t.test('instances seeding together audit each change once', async (t) => {
    const url = await server.createDatabase('seed_race')
    const stores = await Promise.all(
      [1, 2, 3].map(() => openPostgres({ url, poolSize: 2, connectTimeoutMs: 5000, statementTimeoutMs: 10_000 }, silentLogger)),
    )
    t.teardown(() => Promise.all(stores.map((s) => s.close())))
    await migrate(stores[0]!)
    await Promise.all(stores.map((s) => seedFromConfig(s, demo)))
    t.equal((await audit(stores[0]!)).length, 5)
    t.same(await loadRegistry(stores[1]!), DEMO_REGISTRY)
  })
})
