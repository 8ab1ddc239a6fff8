// Which keys a reload applies while running and which wait for a restart, and the configuration
// a reload runs with (the file's, with the running values of the restart-only keys).

import t from 'tap'
import { applicableConfig, diffConfig, touches } from '../../src/config/diff.js'
import { validateConfig } from '../../src/config/load.js'
import type { Config } from '../../src/config/schema.js'

const base = {
  store: { url: 'postgres://mailhostd:pw@127.0.0.1:5432/mailhostd' },
  directory: { type: 'ldap', ldap: { url: 'ldap://127.0.0.1', baseDN: 'dc=example,dc=org' } },
  domains: [{ name: 'example.org' }],
  backends: [{ id: 'mx1', address: '10.0.0.11' }],
}
const config = (over: Record<string, unknown> = {}): Config => validateConfig({ ...base, ...over })

t.test('no change, no keys', async (t) => {
  t.same(diffConfig(config(), config()), { live: [], restart: [] })
})

t.test('live keys and restart keys', async (t) => {
  const d = diffConfig(
    config(),
    config({
      log: { level: 'debug' },
      cache: { ttl: '5m', maxEntries: 10 },
      store: { url: 'postgres://other:pw@127.0.0.1:5432/x' },
      admin: { tokens: [{ name: 'ops', role: 'read', sha256: 'a'.repeat(64) }], moves: { settle: '1s' } },
      listen: { socketmap: false, policy: { port: 20045 } },
      policy: { ruleSets: { default: {}, strict: {} } },
      domains: [{ name: 'example.org' }, { name: 'example.info' }],
    }),
  )
  // A ruleSets in the file replaces the whole map: mx and submission are gone from it.
  t.same(d.live.toSorted(), ['admin.tokens', 'cache.ttl', 'domains', 'listen.policy.port', 'listen.socketmap', 'log.level', 'policy.ruleSets.mx', 'policy.ruleSets.strict', 'policy.ruleSets.submission'])
  t.same(d.restart.toSorted(), ['admin.moves.settle', 'cache.maxEntries', 'store.url'])
  t.ok(touches(d, 'cache'))
  t.ok(touches(d, 'listen'))
  t.notOk(touches(d, 'login'))
  t.notOk(touches(d, 'cache.negativeTtl'))
})

t.test('a key the daemon does not know how to apply needs a restart', async (t) => {
  const running = config()
  const next = structuredClone(running) as Config & { someday?: unknown }
  next.someday = { feature: true }
  t.same(diffConfig(running, next), { live: [], restart: ['someday'] })
  t.same(diffConfig(running, { ...running, dataDir: '/elsewhere' }).restart, ['dataDir'])
})

t.test('the applicable configuration: live keys from the file, restart keys as running', async (t) => {
  const running = config()
  const file = config({
    store: { url: 'postgres://other:pw@127.0.0.1:5432/x', poolSize: 3 },
    cache: { ttl: '5m', maxEntries: 10 },
    directory: { type: 'sql' },
    login: { secret: 'new' },
  })
  const applied = applicableConfig(running, file)
  t.equal(applied.store.url, running.store.url, 'store.url kept')
  t.equal(applied.store.poolSize, running.store.poolSize, 'poolSize kept')
  t.equal(applied.cache.maxEntries, running.cache.maxEntries)
  t.equal(applied.cache.ttl, '5m', 'ttl from the file')
  t.equal(applied.login.secret, 'new')
  t.same(applied.directory, running.directory, 'the directory (a key removed in the file) as running')
  t.same(diffConfig(running, applied).restart, [], 'nothing left that needs a restart')
  t.same(diffConfig(applied, file).restart.toSorted(), ['cache.maxEntries', 'directory.ldap', 'directory.type', 'store.poolSize', 'store.url'], 'the file still asks for them')

  const noUrl = applicableConfig(config({ store: {} }), running)
  t.equal(noUrl.store.url, undefined, 'a key absent while running stays absent')
})
