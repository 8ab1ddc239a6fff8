// The demo's own LDAP admin account (fixtures/ldap: cn=mailhostd-admin with the ACL and limits
// docs/admin.md recommends), not the rootdn: it creates, changes and deletes mailboxes, sets
// passwords the users can then bind with, and lists and counts past slapd's default hard size
// limit of 500 entries; the read-only service account still never reads a password.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { Client } from 'ldapts'
import { hashPassword } from '../../src/auth/passwords.js'
import { LdapAccountWriter } from '../../src/directory/ldap-accounts.js'
import { LdapDirectory } from '../../src/directory/ldap.js'
import { silentLogger } from '../../src/log.js'
import { DEMO_ADMIN_DN, DEMO_ADMIN_PASSWORD, ldapConfig, startSlapd } from '../harness/slapd.js'

eachPeerSet(t, async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  const config = ldapConfig(slapd, { admin: { bindDN: DEMO_ADMIN_DN, bindPassword: DEMO_ADMIN_PASSWORD } })
  const writer = new LdapAccountWriter(config, silentLogger)
  t.teardown(() => writer.close())
  const directory = new LdapDirectory(ldapConfig(slapd), silentLogger)
  t.teardown(() => directory.close())

  const N = 600

  t.test('create, change, delete; the new password binds', async (t) => {
    const created = await writer.create({
      address: 'newbie@example.org',
      mailHost: 'mx2.example.org',
      status: 'active',
      passwordHash: await hashPassword('newbie-pass', 'SSHA512'),
      aliases: ['n.ewbie@example.org'],
      sendAs: [],
    })
    t.match(created, { address: 'newbie@example.org', hasPassword: true })
    const [entry] = await directory.findByAddress('n.ewbie@example.org')
    t.match(entry, { kind: 'account', mailHost: 'mx2.example.org' }, 'the service account sees it')
    if (entry?.kind === 'account') t.equal(await directory.verifyPassword(entry, 'newbie-pass'), 'ok', 'the user binds with the password the admin set')
    const { after } = await writer.update('newbie@example.org', { status: 'disabled', passwordHash: await hashPassword('changed-pass', 'SSHA512') })
    t.equal(after.status, 'disabled')
    await writer.delete('newbie@example.org')
    t.same(await directory.findByAddress('newbie@example.org'), [])
  })

  t.test(`list and count past the default size limit (${N} accounts)`, async (t) => {
    for (let i = 0; i < N; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, N - i) }, (_, j) =>
          writer.create({ address: `bulk${String(i + j).padStart(4, '0')}@example.org`, mailHost: 'mx1.example.org', status: 'active', aliases: [], sendAs: [] }),
        ),
      )
    }
    const counts = await writer.countByMailHost()
    t.equal(counts.get('mx1.example.org'), N + 2, 'alice, carol and the bulk accounts')
    let seen = 0
    let after: string | undefined
    do {
      const page = await writer.list({ domain: 'example.org', limit: 1000, ...(after === undefined ? {} : { after }) })
      seen += page.accounts.length
      after = page.next
    } while (after !== undefined)
    t.equal(seen, N + 3, 'every account listed')
  })

  t.test('the service account still reads no password', async (t) => {
    const client = new Client({ url: slapd.url, timeout: 5000, connectTimeout: 5000 })
    t.teardown(() => client.unbind())
    await client.bind(slapd.bindDN, slapd.bindPassword)
    const { searchEntries } = await client.search('uid=alice,ou=people,dc=example,dc=org', { scope: 'base', attributes: ['userPassword', 'mail'] })
    t.same(searchEntries[0]?.mail, 'alice@example.org')
    t.same(searchEntries[0]?.userPassword ?? [], [], 'no userPassword value comes back')
  })
})
