import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfigFile, parseConfig, keyOf } from '../../src/config/load.js'
import { toMs } from '../../src/config/duration.js'
import type { Config } from '../../src/config/schema.js'
import { ConfigError } from '../../src/errors.js'

const ldap = `directory:\n  type: ldap\n  ldap:\n    url: ldap://127.0.0.1:389\n    baseDN: dc=example,dc=org\n`

t.test('empty config gets every default', async (t) => {
  const c = parseConfig('', 'x.yaml')
  t.equal(c.directory.type, 'sql')
  t.same(c.listen.socketmap, { host: '127.0.0.1', port: 10040 })
  t.same(c.listen.tcpTable.map((x) => [x.map, x.port]), [['transport', 10041], ['recipient', 10042]])
  t.same(c.listen.http, { host: '127.0.0.1', port: 10090 })
  t.equal(toMs(c.lookup.deadline), 3000)
  t.equal(toMs(c.cache.maxStale), 3_600_000)
  t.equal(c.addresses.extensionDelimiters, '+')
})

t.test('demo config is valid', async (t) => {
  const c = loadConfigFile(new URL('../../fixtures/demo/mailhostd.yaml', import.meta.url).pathname)
  t.equal(c.backends.length, 2)
  t.equal(c.domains.length, 3)
})

t.test('durations', async (t) => {
  t.equal(toMs('500ms'), 500)
  t.equal(toMs(' 2 m '), 120_000)
  t.equal(toMs(3), 3000)
  t.equal(toMs('1d'), 86_400_000)
  t.throws(() => toMs('soon'))
})

t.test('errors name the bad key', async (t) => {
  const cases: [string, string, RegExp?][] = [
    ['lisen:\n  http: false\n', 'lisen', /unknown key/],
    ['cache:\n  ttl: soon\n', 'cache.ttl'],
    ['backends:\n  - id: mx1\n    address: mx1.example.org\n', 'backends[0].address', /IP address/],
    ['backends:\n  - id: mx1\n    address: 10.0.0.1\n  - id: mx1\n    address: 10.0.0.2\n', 'backends[1].id', /duplicate/],
    ['backends:\n  - id: mx1\n    address: 10.0.0.1\n    portz: {}\n', 'backends[0].portz', /unknown key/],
    ['domains:\n  - name: example.net\n    aliasFor: example.org\n', 'domains[0].aliasFor'],
    ['domains:\n  - name: "bad domain"\n', 'domains[0].name'],
    ['domains:\n  - name: example.org\n    catchAll: ["nope"]\n', 'domains[0].catchAll[0]'],
    ['directory:\n  type: ldap\n', 'directory.ldap'],
    // Another type's section is refused, never silently ignored, saying which type is in force.
    ['directory:\n  type: sql\n  ldap:\n    url: ldap://127.0.0.1\n', 'directory.ldap', /unknown key for directory.type sql/],
    ['directory:\n  type: mysql\n', 'directory.type', /unknown directory type mysql: one of /],
    ['listen:\n  tcpTable:\n    - map: mailbox\n      port: 10043\n', 'listen.tcpTable[0].map'],
    ['listen:\n  tcpTable:\n    - map: transport\n      port: 10040\n', 'listen.tcpTable[0]', /already used/],
    ['addresses:\n  extensionDelimiters: "@"\n', 'addresses.extensionDelimiters'],
    ['policy:\n  ruleSets:\n    mx: {}\n', 'policy.defaultRuleSet', /no rule set named default/],
    ['policy:\n  ruleSets:\n    mx:\n      rateLimits:\n        - by: sender\n          messages: 1\n', 'policy.ruleSets.mx.rateLimits[0].by'],
    ['listen:\n  policy:\n    port: 10040\n', 'listen.policy', /already used/],
    ['limits:\n  firstRequestTimeout: 0s\n', 'limits.firstRequestTimeout', /more than 0/],
    ['limits:\n  httpIdleTimeout: 0\n', 'limits.httpIdleTimeout', /more than 0/],
    ['- just\n- a list\n', ''],
    ['a: [unclosed\n', '', /line \d+: not valid YAML/],
  ]
  for (const [yaml, key, msg] of cases) {
    const err = t.throws(() => parseConfig(yaml, 'test.yaml')) as unknown as ConfigError
    t.type(err, ConfigError, yaml)
    t.equal(err.key, key, `key for ${JSON.stringify(yaml)}: ${err.message}`)
    if (msg) t.match(err.message, msg)
  }
})

t.test('secrets from files and the environment, never both', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mh-config-'))
  const file = join(dir, 'pw')
  writeFileSync(file, 's3cret\n')
  const fromFile = parseConfig(`${ldap}    bindPasswordFile: ${file}\n`, 'x')
  const ldapOf = (c: Config) => (c.directory.type === 'ldap' ? c.directory.ldap : undefined)
  t.equal(ldapOf(fromFile)?.bindPassword, 's3cret', 'trailing newline dropped')
  const fromEnv = parseConfig(`${ldap}    bindPasswordEnv: MH_TEST_PW\nstore:\n  urlEnv: MH_TEST_URL\n`, 'x', { MH_TEST_PW: 'p', MH_TEST_URL: 'postgres://u:p@127.0.0.1/db' })
  t.equal(ldapOf(fromEnv)?.bindPassword, 'p')
  t.equal(fromEnv.store.url, 'postgres://u:p@127.0.0.1/db')
  const keyOfError = (f: () => unknown) => {
    try {
      f()
    } catch (e) {
      return (e as ConfigError).key
    }
    return 'no error'
  }
  t.equal(keyOfError(() => parseConfig(`${ldap}    bindPasswordEnv: MH_UNSET_X\n`, 'x', {})), 'directory.ldap.bindPasswordEnv')
  t.equal(keyOfError(() => parseConfig(`${ldap}    bindPasswordFile: ${dir}/missing\n`, 'x')), 'directory.ldap.bindPasswordFile')
  t.equal(keyOfError(() => parseConfig(`${ldap}    bindPassword: a\n    bindPasswordEnv: B\n`, 'x')), 'directory.ldap.bindPassword')
  const err = t.throws(() => parseConfig(`${ldap}    bindPasswordFile: ${dir}/missing\n`, 'x')) as unknown as Error
  t.notMatch(err.message, /s3cret/)
})

t.test("the move hook's environment: named variables only, never one a secret was read from", async (t) => {
  const env = { MH_TEST_PW: 'p', MH_TEST_SECRET: 'login-secret', MH_EXTRA: 'x' }
  const base = `${ldap}    bindPasswordEnv: MH_TEST_PW\nlogin:\n  secretEnv: MH_TEST_SECRET\n`
  const moves = (names: string[]) => `admin:\n  moves:\n    hook: [/bin/true]\n    hookEnvironment: [${names.join(', ')}]\n`
  t.same(parseConfig(base, 'x', env).admin.moves.hookEnvironment, [], 'none by default')
  t.same(parseConfig(`${base}${moves(['MH_EXTRA', 'TMPDIR'])}`, 'x', env).admin.moves.hookEnvironment, ['MH_EXTRA', 'TMPDIR'])
  const refused = (text: string, e: NodeJS.ProcessEnv = env) => {
    try {
      parseConfig(text, 'x', e)
    } catch (err) {
      return { key: (err as ConfigError).key, message: (err as Error).message }
    }
    return { key: 'no error', message: '' }
  }
  t.match(refused(`${base}${moves(['MH_EXTRA', 'MH_TEST_SECRET'])}`), { key: 'admin.moves.hookEnvironment[1]', message: /MH_TEST_SECRET holds a secret \(login\.secretEnv\)/ })
  t.match(refused(`${base}${moves(['MH_TEST_PW'])}`), { key: 'admin.moves.hookEnvironment[0]', message: /directory\.ldap\.bindPasswordEnv/ })
  t.match(refused(`${base}${moves(['MAILHOSTD_ACCOUNT'])}`), { key: 'admin.moves.hookEnvironment[0]', message: /MAILHOSTD_ variables/ })
  t.match(refused(`${base}${moves(['"A=B"'])}`), { key: 'admin.moves.hookEnvironment[0]' }, 'not a variable name')
  t.match(refused(`${base}${moves(['MH_EXTRA', 'MH_EXTRA'])}`), { key: 'admin.moves.hookEnvironment' }, 'twice')
  for (const name of ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ']) {
    t.match(refused(`${ldap}    bindPasswordEnv: ${name}\n`, { [name]: 'p' }), { key: 'directory.ldap.bindPasswordEnv', message: new RegExp(`${name} is passed to every move hook`) }, `a secret in ${name}`)
  }
})

t.test('keyOf', async (t) => {
  t.equal(keyOf('/backends/1/ports/lmtp'), 'backends[1].ports.lmtp')
  t.equal(keyOf(''), '')
})

t.test('unreadable file', async (t) => {
  t.throws(() => loadConfigFile('/nonexistent/mailhostd.yaml'), ConfigError)
})

t.test('shipped example configs are valid', async (t) => {
  const env = { MAILHOSTD_STORE_URL: 'postgres://u:p@127.0.0.1/mailhostd' }
  const dir = mkdtempSync(join(tmpdir(), 'mh-examples-'))
  // The examples read secrets from files a real host has; give them stand-ins.
  for (const example of ['ldap', 'postgres']) {
    let text = (await import('node:fs')).readFileSync(new URL(`../../examples/${example}.yaml`, import.meta.url), 'utf8')
    text = text.replace('/etc/mailhostd/store-url', join(dir, 'url')).replace('/etc/mailhostd/ldap-password', join(dir, 'pw')).replace('/etc/mailhostd/ldap-admin-password', join(dir, 'pw'))
    writeFileSync(join(dir, 'url'), 'postgres://u:p@127.0.0.1/mailhostd\n')
    writeFileSync(join(dir, 'pw'), 'secret\n')
    const c = parseConfig(text, `${example}.yaml`, env)
    t.ok(c.backends.length >= 2, `${example}.yaml`)
  }
})
