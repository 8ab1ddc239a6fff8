// The LDAP directory against a real slapd holding the demo directory: exact, alternate and
// upper-case keys, aliases, misses, filter metacharacters, duplicates, unusable entries, bind
// failures and configuration mistakes. Outages (kill, hang, restart) are in ldap-failure.test.ts.

import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import type { AccountEntry, DirectoryEntry } from '../../src/directory/directory.js'
import { LdapDirectory, MAX_OWNERS } from '../../src/directory/ldap.js'
import { ConfigError, DirectoryDataError, DirectoryError, ErrorCodes } from '../../src/errors.js'
import { createLogger, silentLogger } from '../../src/log.js'
import { ldapConfig, startSlapd, type Slapd } from '../harness/slapd.js'

const alice: AccountEntry = {
  kind: 'account',
  id: 'uid=alice,ou=people,dc=example,dc=org',
  canonical: 'alice@example.org',
  mailHost: 'mx1.example.org',
  status: 'active',
  sendAs: [],
}
const bob: AccountEntry = { ...alice, id: 'uid=bob,ou=people,dc=example,dc=org', canonical: 'bob@example.org', mailHost: 'mx2.example.org' }
const carol: AccountEntry = { ...alice, id: 'uid=carol,ou=people,dc=example,dc=org', canonical: 'carol@example.org', status: 'disabled' }
const postmaster: DirectoryEntry = { kind: 'alias', id: 'cn=postmaster,ou=aliases,dc=example,dc=org', targets: ['alice@example.org'] }

function captureLog() {
  let text = ''
  const logger = createLogger('debug', { write: (s: string) => void (text += s) })
  return { logger, text: () => text }
}

// Keys that would widen or break a filter built by string concatenation.
const HOSTILE_KEYS = [
  'a*)(mail=*@example.org',
  '*@example.org',
  'al*@example.org',
  '\\2a@example.org',
  '(mail=*)',
  '*',
  'alice@example.org)(|(mail=*',
  'alice\u0000@example.org',
  '\u0000',
  'üser@example.org',
]

const sorted = (entries: DirectoryEntry[]) => [...entries].sort((a, b) => a.id.localeCompare(b.id))

peerTest(t, 'the demo directory', async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  const log = captureLog()
  const dir = new LdapDirectory(ldapConfig(slapd), log.logger)
  t.teardown(() => dir.close())
  t.equal(dir.kind, 'ldap')

  await t.test('lookups', async (t) => {
    const cases: [string, DirectoryEntry[], string][] = [
      ['alice@example.org', [alice], 'exact address (mail and mailLocalAddress on one entry)'],
      ['alice.liddell@example.org', [alice], 'alternate mailLocalAddress'],
      ['ALICE@EXAMPLE.ORG', [alice], 'LDAP equality is case-insensitive'],
      ['Alice.Liddell@Example.Org', [alice], 'mixed case alternate'],
      ['bob@example.org', [bob], 'account on mx2'],
      ['carol@example.org', [carol], 'disabled account'],
      ['postmaster@example.org', [postmaster], 'alias entry without mailHost'],
      ['nobody@example.org', [], 'unknown address'],
      ['alice@example.net', [], 'alias domains are the resolver’s job'],
      ['alice+tag@example.org', [], 'extensions are the resolver’s job'],
    ]
    for (const [key, want, why] of cases) t.same(await dir.findByAddress(key), want, `${key}: ${why}`)
  })

  await t.test('filter metacharacters are values, never filter syntax', async (t) => {
    const slapdOutput = slapd.output()
    for (const key of HOSTILE_KEYS) t.same(await dir.findByAddress(key), [], JSON.stringify(key))
    t.same(await dir.findByAddress('alice@example.org'), [alice], 'slapd still answers afterwards')
    await dir.ping()
    t.equal(slapd.output(), slapdOutput, 'slapd logged no error')
  })

  await t.test('concurrent lookups share the connections', async (t) => {
    const keys = Array.from({ length: 40 }, (_, i) => ['alice@example.org', 'bob@example.org', 'nobody@example.org'][i % 3]!)
    const results = await Promise.all(keys.map((k) => dir.findByAddress(k)))
    t.same(results, keys.map((k) => (k.startsWith('alice') ? [alice] : k.startsWith('bob') ? [bob] : [])))
  })

  await t.test('configured filter and attributes', async (t) => {
    const onlyAccounts = new LdapDirectory(ldapConfig(slapd, { filter: '(objectClass=mailhostdAccount)' }), silentLogger)
    t.teardown(() => onlyAccounts.close())
    t.same(await onlyAccounts.findByAddress('alice@example.org'), [alice])
    t.same(await onlyAccounts.findByAddress('postmaster@example.org'), [], 'the extra filter is ANDed in')

    const mailOnly = new LdapDirectory(
      ldapConfig(slapd, { filter: '', scope: 'one', baseDN: 'ou=people,dc=example,dc=org', attributes: { address: ['mail'] } }),
      silentLogger,
    )
    t.teardown(() => mailOnly.close())
    t.same(await mailOnly.findByAddress('alice@example.org'), [alice])
    t.same(await mailOnly.findByAddress('alice.liddell@example.org'), [], 'only the configured address attributes match')

    const noStatus = new LdapDirectory(
      ldapConfig(slapd, { attributes: { status: '', canonical: '', routingAddress: '' } }),
      silentLogger,
    )
    t.teardown(() => noStatus.close())
    t.same(await noStatus.findByAddress('carol@example.org'), [{ ...carol, canonical: undefined, status: 'active' }])
    await t.rejects(noStatus.findByAddress('postmaster@example.org'), {
      name: 'DirectoryDataError',
      code: ErrorCodes.DIRECTORY_DATA,
      message: /cn=postmaster,ou=aliases,dc=example,dc=org.*has no mailHost/,
    })
  })

  await t.test('ping and close', async (t) => {
    await dir.ping()
    const wrongBase = new LdapDirectory(ldapConfig(slapd, { baseDN: 'dc=nowhere,dc=example' }), silentLogger)
    await t.rejects(wrongBase.ping(), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE })
    await t.rejects(wrongBase.findByAddress('alice@example.org'), { name: 'DirectoryError' }, 'a missing base is an error, not a miss')
    await wrongBase.close()
    await t.rejects(wrongBase.findByAddress('alice@example.org'), { code: ErrorCodes.DIRECTORY_UNAVAILABLE, message: /closed/ })
    await wrongBase.close()
  })

  await t.test('an aborted caller gets a timeout, not a miss', async (t) => {
    const controller = new AbortController()
    controller.abort()
    await t.rejects(dir.findByAddress('alice@example.org', controller.signal), {
      name: 'DirectoryError',
      code: ErrorCodes.DIRECTORY_TIMEOUT,
    })
    await t.rejects(dir.ping(controller.signal), { code: ErrorCodes.DIRECTORY_TIMEOUT })
  })

  await t.test('bind failures', async (t) => {
    const wrong = 'not-the-Secret-42'
    const badLog = captureLog()
    const bad = new LdapDirectory(ldapConfig(slapd, { bindPassword: wrong }), badLog.logger)
    t.teardown(() => bad.close())
    for (let i = 0; i < 3; i++) {
      const err = await bad.findByAddress('alice@example.org').then(
        () => undefined,
        (e: unknown) => e,
      )
      t.ok(err instanceof DirectoryError, 'a refused bind is a DirectoryError, never []')
      t.match(err, { code: ErrorCodes.DIRECTORY_UNAVAILABLE, transient: true, message: /bind as cn=mailhostd,ou=services,dc=example,dc=org on .* failed: InvalidCredentialsError/ })
      t.notOk(String((err as Error).message).includes(wrong), 'the password is not in the message')
    }
    await t.rejects(bad.ping(), { name: 'DirectoryError' })
    t.match(badLog.text(), /LDAP directory unavailable/)
    t.notOk(badLog.text().includes(wrong), 'the password is not in the log')

    const unknownUser = new LdapDirectory(ldapConfig(slapd, { bindDN: 'cn=nobody,dc=example,dc=org' }), silentLogger)
    t.teardown(() => unknownUser.close())
    await t.rejects(unknownUser.findByAddress('alice@example.org'), { name: 'DirectoryError' })

    const anonymous = new LdapDirectory(ldapConfig(slapd, { bindDN: '', bindPassword: '' }), silentLogger)
    t.teardown(() => anonymous.close())
    await t.rejects(
      anonymous.findByAddress('alice@example.org'),
      { name: 'DirectoryError' },
      'anonymous may not read this directory: an error, not a miss',
    )
  })

  t.notOk(log.text().includes(slapd.bindPassword), 'the bind password never reaches the log')
})

peerTest(t, 'duplicates and unusable entries', async (t, set) => {
  const extraLdif = [
    `dn: uid=bob2,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: bob2
cn: Bob Two
sn: Two
mailLocalAddress: bob@example.org
mailHost: mx1.example.org
`,
    `dn: cn=broken,ou=aliases,dc=example,dc=org
objectClass: nisMailAlias
objectClass: inetLocalMailRecipient
cn: broken
mailLocalAddress: broken@example.org
`,
  ]
  const slapd: Slapd = await startSlapd({ set, extraLdif, anonymousRead: true })
  t.teardown(() => slapd.stop())
  const dir = new LdapDirectory(ldapConfig(slapd), silentLogger)
  t.teardown(() => dir.close())

  const both = sorted(await dir.findByAddress('bob@example.org'))
  t.same(
    both,
    [bob, { kind: 'account', id: 'uid=bob2,ou=people,dc=example,dc=org', canonical: undefined, mailHost: 'mx1.example.org', status: 'active', sendAs: [] }],
    'two owners are returned as two entries (the resolver reports them)',
  )

  const err = await dir.findByAddress('broken@example.org').catch((e: unknown) => e)
  t.ok(err instanceof DirectoryDataError)
  t.match(err, { code: ErrorCodes.DIRECTORY_DATA, message: /cn=broken,ou=aliases,dc=example,dc=org/ })

  const many = Array.from(
    { length: MAX_OWNERS + 1 },
    (_, i) => `dn: cn=many${i},ou=aliases,dc=example,dc=org
objectClass: nisMailAlias
objectClass: inetLocalMailRecipient
cn: many${i}
mailLocalAddress: many@example.org
mailRoutingAddress: target${i}@example.org
`,
  )
  await slapd.ldapadd(many.slice(0, MAX_OWNERS).join('\n'))
  t.equal((await dir.findByAddress('many@example.org')).length, MAX_OWNERS, `${MAX_OWNERS} owners are still listed`)
  await slapd.ldapadd(many[MAX_OWNERS]!)
  await t.rejects(dir.findByAddress('MANY@example.org'), {
    name: 'DirectoryDataError',
    code: ErrorCodes.DUPLICATE_OWNER,
    message: /more than 8 LDAP entries/,
  })

  await slapd.ldapmodify(`dn: uid=bob2,ou=people,dc=example,dc=org
changetype: modify
delete: mailLocalAddress
`)
  t.same(await dir.findByAddress('bob@example.org'), [bob], 'changes show up at once (no caching here)')

  const anonymous = new LdapDirectory(ldapConfig(slapd, { bindDN: '', bindPassword: '' }), silentLogger)
  t.teardown(() => anonymous.close())
  t.same(await anonymous.findByAddress('alice@example.org'), [alice], "bindDN '' searches anonymously")
  await anonymous.ping()
})

void t.test('configuration mistakes are ConfigErrors naming the key', async (t) => {
  const base = { url: 'ldap://127.0.0.1:1', bindDN: '', bindPassword: '', baseDN: 'dc=example,dc=org' }
  const config = (extra: Record<string, unknown>) => ldapConfig({ ...base } as unknown as Slapd, extra)
  const cases: [Record<string, unknown>, string][] = [
    [{ filter: '(objectClass=' }, 'directory.ldap.filter'],
    [{ filter: 'not a filter' }, 'directory.ldap.filter'],
    [{ tls: { caFile: '/nonexistent/ca.pem' } }, 'directory.ldap.tls.caFile'],
    [{ url: 'ldaps://127.0.0.1:1', startTLS: true }, 'directory.ldap.startTLS'],
    [{ url: 'ldap://[::1' }, 'directory.ldap.url'],
  ]
  for (const [extra, key] of cases) {
    t.throws(() => new LdapDirectory(config(extra), silentLogger), { name: 'ConfigError', key }, key)
  }
  t.ok(new ConfigError('x', 'y') instanceof ConfigError)

  const refused = new LdapDirectory(config({ timeout: '1s', connectTimeout: '500ms' }), silentLogger)
  await t.rejects(refused.findByAddress('alice@example.org'), {
    name: 'DirectoryError',
    code: ErrorCodes.DIRECTORY_UNAVAILABLE,
    message: /127\.0\.0\.1:1.*ECONNREFUSED/,
  })
  await refused.close()
})
