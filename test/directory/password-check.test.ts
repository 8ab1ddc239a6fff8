// Login password checks in the real directories: SQL hashes on PGlite, LDAP bind and compare on
// slapd. A failure to check is an error, never a mismatch; a mismatch is never an error.

import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { hashPassword } from '../../src/auth/passwords.js'
import type { AccountEntry } from '../../src/directory/directory.js'
import { LdapDirectory } from '../../src/directory/ldap.js'
import { SqlDirectory } from '../../src/directory/sql.js'
import { DirectoryDataError, DirectoryError } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import { applySqlFile } from '../../src/store/sql-file.js'
import { ldapConfig, startSlapd } from '../harness/slapd.js'

const account = (id: string): AccountEntry => ({ kind: 'account', id, canonical: undefined, mailHost: 'mx1.example.org', status: 'active', sendAs: [] })

t.test('SQL: stored hashes', async (t) => {
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  await migrate(store)
  await applySqlFile(store, new URL('../../fixtures/demo/directory.sql', import.meta.url).pathname)
  const dir = new SqlDirectory(store)
  const [alice] = await dir.findByAddress('alice@example.org')
  t.equal(await dir.verifyPassword(alice as AccountEntry, 'wonderland'), 'ok')
  t.equal(await dir.verifyPassword(alice as AccountEntry, 'Wonderland'), 'mismatch')
  t.equal(await dir.verifyPassword(alice as AccountEntry, ''), 'mismatch')
  t.equal(await dir.verifyPassword(account('ldap-looking-id'), 'x'), 'mismatch', 'not an SQL id')
  t.equal(await dir.verifyPassword(account('sql:account:999999'), 'x'), 'mismatch', 'deleted meanwhile')

  await store.query(`update accounts set password_hash = $1 where address = 'bob@example.org'`, [await hashPassword('new secret')])
  const [bob] = await dir.findByAddress('bob@example.org')
  t.equal(await dir.verifyPassword(bob as AccountEntry, 'new secret'), 'ok', 'a hash made by hashPassword')
  await store.query(`update accounts set password_hash = '{MD4}abcdef' where address = 'bob@example.org'`)
  await t.rejects(dir.verifyPassword(bob as AccountEntry, 'new secret'), DirectoryDataError, 'unknown scheme: a data error, never a match')
  await store.query(`update accounts set password_hash = null where address = 'bob@example.org'`)
  t.equal(await dir.verifyPassword(bob as AccountEntry, ''), 'mismatch', 'no password set: nobody logs in')
  await store.close()
  await t.rejects(dir.verifyPassword(alice as AccountEntry, 'wonderland'), DirectoryError, 'store gone: an error, not a mismatch')
})

peerTest(t, 'LDAP: bind as the user, and compare', async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  const bind = new LdapDirectory(ldapConfig(slapd, { passwordCheck: 'bind', timeout: '1s', connectTimeout: '500ms' }), silentLogger)
  t.teardown(() => bind.close())
  const [alice] = await bind.findByAddress('alice@example.org')
  const a = alice as AccountEntry
  t.equal(await bind.verifyPassword(a, 'wonderland'), 'ok')
  t.equal(await bind.verifyPassword(a, 'wonderland '), 'mismatch')
  t.equal(await bind.verifyPassword(a, ''), 'mismatch', 'an empty password is never sent as an (anonymous, successful) bind')
  t.equal(await bind.verifyPassword(account('uid=ghost,ou=people,dc=example,dc=org'), 'x'), 'mismatch')
  const concurrent = await Promise.all(['wonderland', 'bad', 'wonderland', 'bad'].map((p) => bind.verifyPassword(a, p)))
  t.same(concurrent, ['ok', 'mismatch', 'ok', 'mismatch'], 'concurrent checks do not share an identity')
  t.equal((await bind.findByAddress('bob@example.org')).length, 1, 'the service connection still works after user binds')

  // compare reads userPassword, so its service account must be allowed to: the rootdn here.
  const compare = new LdapDirectory(ldapConfig(slapd, { passwordCheck: 'compare', bindDN: slapd.rootDN, bindPassword: slapd.rootPassword }), silentLogger)
  t.teardown(() => compare.close())
  t.equal(await compare.verifyPassword(a, 'wonderland'), 'ok')
  t.equal(await compare.verifyPassword(a, 'nope'), 'mismatch')
  const restricted = new LdapDirectory(ldapConfig(slapd, { passwordCheck: 'compare' }), silentLogger)
  t.teardown(() => restricted.close())
  t.equal(await restricted.verifyPassword(a, 'wonderland'), 'mismatch', 'a service account that cannot read userPassword finds no password')

  await slapd.kill()
  await t.rejects(bind.verifyPassword(a, 'wonderland'), DirectoryError, 'slapd dead: an error, never a mismatch')
  await t.rejects(compare.verifyPassword(a, 'wonderland'), DirectoryError)
})
