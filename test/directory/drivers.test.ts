// The directory driver table: directory.type picks a driver, its config variant is validated on
// its own, and a type registered from outside src/ (the test-only memory driver) runs a daemon
// like the built-in ones do.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { validateConfig } from '../../src/config/load.js'
import { Daemon } from '../../src/daemon.js'
import { directoryDriver, registerDirectoryDriver } from '../../src/directory/drivers/index.js'
import { ConfigError } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { demoClusterConfig } from '../e2e/demo-table.js'
import { adminApi, DEMO_TOKENS } from '../harness/admin-api.js'
import { demoDirectory } from '../fakes/memory-directory.js'
import { MEMORY_READ_ONLY, memoryDriver, useMemoryDirectory } from '../fakes/memory-driver.js'

const refusal = (raw: Record<string, unknown>) => {
  try {
    validateConfig(raw)
  } catch (e) {
    if (e instanceof ConfigError) return { key: e.key, message: e.message }
    throw e
  }
  return undefined
}

t.test('directory.type picks a registered driver; another type is refused naming directory.type', async (t) => {
  t.equal(directoryDriver('sql').name, 'sql')
  t.equal(directoryDriver('ldap').name, 'ldap')
  t.equal(directoryDriver('memory'), memoryDriver, 'the test driver, registered from test/')
  t.match(refusal({ directory: { type: 'mysql' } }), { key: 'directory.type', message: /unknown directory type mysql: one of ldap, memory, sql/ })
  t.match(refusal({ directory: { type: 7 } }), { key: 'directory.type', message: /must name a directory type/ })
  t.throws(() => registerDirectoryDriver(memoryDriver), /directory type memory is registered already/)
})

t.test('each type validates its own section', async (t) => {
  t.same(validateConfig({}).directory, { type: 'sql' }, 'sql when the file names none')
  t.same(validateConfig({ directory: { type: 'memory' } }).directory, { type: 'memory', name: 'default' }, "the variant's defaults filled in")
  t.match(refusal({ directory: { type: 'memory', name: '' } }), { key: 'directory.name' })
  t.match(refusal({ directory: { type: 'ldap' } }), { key: 'directory.ldap', message: /required when directory.type is ldap/ })
  t.match(refusal({ directory: { type: 'memory', ldap: { url: 'ldap://x', baseDN: 'dc=x' } } }), { key: 'directory.ldap', message: /unknown key/ })
})

t.test('a daemon on the memory driver starts, answers lookups from it and refuses writes as read-only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mh-driver-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const directory = demoDirectory()
  useMemoryDirectory('drivers-test', directory)
  const config = validateConfig({
    ...demoClusterConfig(),
    dataDir: dir,
    directory: { type: 'memory', name: 'drivers-test' },
    cache: { warmup: true },
    admin: { tokens: DEMO_TOKENS },
    listen: { socketmap: { port: 0 }, tcpTable: [], http: { port: 0 }, policy: false },
  })
  const daemon = await new Daemon(config, silentLogger).start()
  t.teardown(() => daemon.close(1000))
  await daemon.warmupDone()
  t.ok(directory.queries.includes('alice@example.org'), 'the warm-up listed the memory directory and resolved its mailboxes')

  const api = adminApi(daemon.bound.find((b) => b.name === 'http')!.port)
  t.match((await api.get('/v1/lookup?map=transport&key=alice%40example.org')).body, { outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24' })
  t.match((await api.get('/readyz')).body, { status: 'ready', directory: { kind: 'memory', ok: true } })
  const write = await api.post('/v1/accounts', { address: 'new@example.org', password: 'x' })
  t.match(write, { status: 501, body: { detail: MEMORY_READ_ONLY } })
})
