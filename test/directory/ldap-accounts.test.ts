// The LDAP account writer against a real slapd holding the demo directory, bound as the rootdn:
// what it writes is what LdapDirectory (the read-only service account) answers lookups with,
// logins work with the hashes it stores, DNs are escaped, aliases are never accounts, and every
// failure is the right coded error. DN escaping and template parsing are also tested bare.

import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { Client } from 'ldapts'
import { hashPassword } from '../../src/auth/passwords.js'
import type { AccountQuery, AccountRecord, NewAccount } from '../../src/directory/accounts.js'
import type { AccountEntry } from '../../src/directory/directory.js'
import { LdapAccountWriter } from '../../src/directory/ldap-accounts.js'
import { AccountDnTemplate, addressParts, escapeRdnValue } from '../../src/directory/ldap-dn.js'
import { LdapDirectory } from '../../src/directory/ldap.js'
import { AdminError, DirectoryError, ErrorCodes } from '../../src/errors.js'
import { createLogger, silentLogger } from '../../src/log.js'
import { canonicalAddress } from '../../src/resolve/address.js'
import { ldapConfig, startSlapd, type Slapd } from '../harness/slapd.js'

const PEOPLE = 'ou=people,dc=example,dc=org'
const taken = { name: 'AdminError', code: ErrorCodes.ADDRESS_TAKEN }
const notFound = { name: 'AdminError', code: ErrorCodes.NOT_FOUND }
const writeRefused = { name: 'AdminError', code: ErrorCodes.DIRECTORY_WRITE }
const invalid = { name: 'AdminError', code: ErrorCodes.VALIDATION }

/** A real pino logger writing into a string, to prove what never reaches the log. */
function captureLog() {
  let text = ''
  const logger = createLogger('debug', { write: (s: string) => void (text += s) })
  return { logger, text: () => text }
}

const account = (address: string, over: Partial<NewAccount> = {}): NewAccount => ({
  address,
  mailHost: 'mx1.example.org',
  status: 'active',
  aliases: [],
  sendAs: [],
  ...over,
})

/** The lookup side's view of a record the writer returned. */
const entryOf = (r: AccountRecord): AccountEntry => ({
  kind: 'account',
  id: r.id,
  canonical: r.address,
  mailHost: r.mailHost,
  status: r.status,
  sendAs: [...r.sendAs],
})

function adminConfig(slapd: Slapd, overrides: Record<string, unknown> = {}, admin: Record<string, unknown> = {}) {
  return ldapConfig(slapd, { admin: { bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, ...admin }, ...overrides })
}

/** Every attribute of one entry, read as the rootdn (userPassword included). */
async function rawEntry(slapd: Slapd, dn: string): Promise<Record<string, string[]> | undefined> {
  const client = new Client({ url: slapd.url, timeout: 5000, connectTimeout: 5000 })
  try {
    await client.bind(slapd.rootDN, slapd.rootPassword)
    const { searchEntries } = await client.search(dn, { scope: 'base', attributes: ['*'] })
    const entry = searchEntries[0]
    if (entry === undefined) return undefined
    const out: Record<string, string[]> = {}
    for (const [k, v] of Object.entries(entry)) if (k !== 'dn') out[k] = (Array.isArray(v) ? v : [v]).map(String)
    return out
  } catch (e) {
    if ((e as { code?: number }).code === 32) return undefined
    throw e
  } finally {
    await client.unbind()
  }
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  )
}

async function allPages(writer: LdapAccountWriter, query: Omit<AccountQuery, 'after'>): Promise<AccountRecord[][]> {
  const pages: AccountRecord[][] = []
  let after: string | undefined
  do {
    const page = await writer.list({ ...query, ...(after === undefined ? {} : { after }) })
    pages.push(page.accounts)
    after = page.next
  } while (after !== undefined && pages.length < 100)
  return pages
}

void t.test('RDN escaping and the DN template', (t) => {
  const cases: [string, string][] = [
    ['alice@example.org', 'alice@example.org'],
    ['x+y@example.org', 'x\\+y@example.org'],
    ['a,b=c;d@example.org', 'a\\,b\\=c\\;d@example.org'],
    ['"q"\\<l>@example.org', '\\"q\\"\\\\\\<l\\>@example.org'],
    ['#x@example.org', '\\#x@example.org'],
    ['a#b', 'a#b'],
    [' lead', '\\ lead'],
    ['trail ', 'trail\\ '],
    [' ', '\\ '],
    ['in side', 'in side'],
    ['nul\0byte', 'nul\\00byte'],
    ['üser@example.org', 'üser@example.org'],
    ['', ''],
  ]
  for (const [raw, escaped] of cases) t.equal(escapeRdnValue(raw), escaped, JSON.stringify(raw))

  const parts = addressParts('x+y@example.org')
  t.same(parts, { address: 'x+y@example.org', local: 'x+y', domain: 'example.org' })
  t.same(addressParts('"a@b"@example.org'), { address: '"a@b"@example.org', local: '"a@b"', domain: 'example.org' })

  const def = new AccountDnTemplate('uid={address},ou=people,{baseDN}', 'dc=example,dc=org')
  t.equal(def.rdnAttribute, 'uid')
  t.equal(def.dn(parts), 'uid=x\\+y@example.org,ou=people,dc=example,dc=org')
  t.equal(def.rdnValue(parts), 'x+y@example.org', 'the attribute value is unescaped')

  const byDomain = new AccountDnTemplate(' cn={local} at {domain}\\2C mail,ou={domain},{baseDN} ', 'o=Example, c=DE')
  t.equal(byDomain.rdnAttribute, 'cn')
  t.equal(byDomain.dn(parts), 'cn=x\\+y at example.org\\2C mail,ou=example.org,o=Example, c=DE', '{baseDN} goes in as is')
  t.equal(byDomain.rdnValue(parts), 'x+y at example.org, mail', 'literal escapes in the template are undone too')
  t.equal(new AccountDnTemplate('cn=\\"{local}\\",{baseDN}', 'o=x').rdnValue(parts), '"x+y"')
  t.equal(new AccountDnTemplate('cn=\\c3\\bc-{local},{baseDN}', 'o=x').rdnValue(parts), 'ü-x+y', 'hex pairs are UTF-8 bytes')

  const bad: [string, RegExp][] = [
    ['uid={user},{baseDN}', /unknown placeholder \{user\}/],
    ['{address},{baseDN}', /attribute=value/],
    ['=x{address},{baseDN}', /attribute=value/],
    ['uid={local}+mail={domain},{baseDN}', /multi-valued/],
    ['uid={domain},ou=people,{baseDN}', /\{address\} or \{local\}/],
    ['ou=people,uid={address},{baseDN}', /\{address\} or \{local\}/],
    ['uid={address}{baseDN}', /\{baseDN\} belongs after/],
  ]
  for (const [template, message] of bad) {
    t.throws(() => new AccountDnTemplate(template, 'dc=example,dc=org'), { name: 'ConfigError', key: 'directory.ldap.admin.accountDN', message }, template)
  }
  t.doesNotThrow(() => new AccountDnTemplate('uid=a\\+{local},{baseDN}', 'o=x'), 'an escaped + is a value, not a second RDN')
  t.end()
})

void t.test('configuration mistakes are ConfigErrors naming the key', (t) => {
  const base = { url: 'ldap://127.0.0.1:1', bindDN: '', bindPassword: '', baseDN: 'dc=example,dc=org' } as unknown as Slapd
  const admin = { admin: { bindDN: 'cn=admin,dc=example,dc=org', bindPassword: 'pw' } }
  const cases: [Record<string, unknown>, string][] = [
    [{}, 'directory.ldap.admin'],
    [{ ...admin, attributes: { canonical: '' } }, 'directory.ldap.attributes.canonical'],
    [{ ...admin, filter: '(objectClass=' }, 'directory.ldap.filter'],
    [{ ...admin, tls: { caFile: '/nonexistent/ca.pem' } }, 'directory.ldap.tls.caFile'],
    [{ ...admin, url: 'ldaps://127.0.0.1:1', startTLS: true }, 'directory.ldap.startTLS'],
    [{ ...admin, url: 'ldap://[::1' }, 'directory.ldap.url'],
    [{ admin: { ...admin.admin, accountDN: 'uid={nope},{baseDN}' } }, 'directory.ldap.admin.accountDN'],
  ]
  for (const [extra, key] of cases) {
    t.throws(() => new LdapAccountWriter(ldapConfig(base, extra), silentLogger), { name: 'ConfigError', key }, key)
  }
  t.end()
})

// 1100 accounts in their own domain: more than two LDAP pages (500) for list and count.
const BULK = 1100
const bulkLdif = [
  'dn: ou=bulk,dc=example,dc=org\nobjectClass: organizationalUnit\nou: bulk\n',
  Array.from({ length: BULK }, (_, i) => {
    const a = `u${String(i).padStart(4, '0')}@bulk.example`
    return `dn: uid=${a},ou=bulk,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: ${a}
cn: ${a}
sn: ${a}
mail: ${a}
mailLocalAddress: ${a}
mailHost: BULK.example.org
`
  }).join('\n'),
]

peerTest(t, 'against slapd', async (t, set) => {
  const slapd = await startSlapd({ set, extraLdif: bulkLdif })
  t.teardown(() => slapd.stop())
  const log = captureLog()
  const writer = new LdapAccountWriter(adminConfig(slapd), log.logger)
  t.teardown(() => writer.close())
  const dir = new LdapDirectory(ldapConfig(slapd), log.logger)
  t.teardown(() => dir.close())

  await t.test('get: accounts by primary address, never aliases', async (t) => {
    const alice = {
      id: `uid=alice,${PEOPLE}`,
      address: 'alice@example.org',
      mailHost: 'mx1.example.org',
      status: 'active',
      aliases: ['alice.liddell@example.org'],
      sendAs: [],
      hasPassword: true,
    }
    t.same(await writer.get('alice@example.org'), alice, 'the demo account, password attribute read by the admin bind')
    t.same(await writer.get('ALICE@example.org'), alice, 'LDAP compares addresses case-insensitively')
    t.match(await writer.get('carol@example.org'), { status: 'disabled', mailHost: 'mx1.example.org' })
    t.equal(await writer.get('alice.liddell@example.org'), undefined, 'an alternate address is not a primary one')
    t.equal(await writer.get('postmaster@example.org'), undefined, 'an alias entry (no mailHost) is not an account')
    t.equal(await writer.get('nobody@example.org'), undefined)
    t.equal(await writer.get('*'), undefined, 'filter metacharacters are values')
    t.equal(await writer.get('a*)(mail=*'), undefined)
  })

  await t.test('create: what lookups and logins see', async (t) => {
    const hash = await hashPassword('dora-pw', 'SSHA512')
    const dora = await writer.create(
      account('dora@example.org', {
        mailHost: 'mx2.example.org',
        passwordHash: hash,
        aliases: ['explorer@example.org', 'd@example.org', 'explorer@example.org', 'dora@example.org'],
        sendAs: ['@example.net', 'boss@example.org'],
      }),
    )
    t.same(dora, {
      id: `uid=dora@example.org,${PEOPLE}`,
      address: 'dora@example.org',
      mailHost: 'mx2.example.org',
      status: 'active',
      aliases: ['d@example.org', 'explorer@example.org'],
      sendAs: ['@example.net', 'boss@example.org'],
      hasPassword: true,
    })
    t.same(await writer.get('dora@example.org'), dora)
    for (const a of ['dora@example.org', 'explorer@example.org', 'd@example.org']) {
      t.same(await dir.findByAddress(a), [entryOf(dora)], `${a} resolves to the account`)
    }
    t.equal(await dir.verifyPassword(entryOf(dora), 'dora-pw'), 'ok', 'slapd binds with the stored {SSHA512} hash')
    t.equal(await dir.verifyPassword(entryOf(dora), 'wrong'), 'mismatch')

    t.match(await rawEntry(slapd, dora.id), {
      objectClass: ['inetOrgPerson', 'inetLocalMailRecipient', 'mailhostdAccount'],
      uid: ['dora@example.org'],
      cn: ['dora@example.org'],
      sn: ['dora@example.org'],
      mail: ['dora@example.org'],
      mailLocalAddress: ['dora@example.org', 'd@example.org', 'explorer@example.org'],
      mailHost: ['mx2.example.org'],
      mailhostdAccountStatus: ['active'],
      mailhostdSendAs: ['@example.net', 'boss@example.org'],
      userPassword: [hash],
    }, 'the entry as the mapping describes it, primary address first')

    const plain = await writer.create(account('ed@example.org', { status: 'disabled' }))
    t.same([plain.hasPassword, plain.aliases, plain.sendAs, plain.status], [false, [], [], 'disabled'])
    t.same(await dir.findByAddress('ed@example.org'), [entryOf(plain)])
    const raw = await rawEntry(slapd, plain.id)
    t.notOk(raw !== undefined && ('mailhostdSendAs' in raw || 'userPassword' in raw), 'empty values are not written at all')
    t.same(raw?.mailhostdAccountStatus, ['disabled'])
  })

  await t.test('DN escaping: addresses with RDN specials', async (t) => {
    for (const address of ['x+y@example.org', '#hash,comma=eq;semi@example.org', '"q\\uo<te>"@example.org']) {
      const canonical = canonicalAddress(address, { extensionDelimiters: '+', foldLocalPart: true })
      t.ok(canonical.ok && canonical.address === address, `${address} is canonical as it is`)
      const r = await writer.create(account(address, { aliases: [`alt.${address}`] }))
      // slapd reports the DN in its own escaping (\2b for +): the same name, spelled differently.
      t.ok(r.id.endsWith(`,${PEOPLE}`), `${r.id}: one RDN under ou=people`)
      t.same(await rawEntry(slapd, `uid=${escapeRdnValue(address)},${PEOPLE}`), await rawEntry(slapd, r.id), 'the DN as written names it')
      t.same(await writer.get(address), r)
      t.same(await dir.findByAddress(address), [entryOf(r)], 'lookups find it')
      t.same(await dir.findByAddress(`alt.${address}`), [entryOf(r)])
      t.same((await rawEntry(slapd, r.id))?.uid, [address], 'uid holds the address unescaped')
      t.same(await writer.delete(address), r)
      t.equal(await rawEntry(slapd, r.id), undefined, 'and it is deleted by that DN')
    }
  })

  await t.test('an address is claimed once', async (t) => {
    const cases: [NewAccount, RegExp, string][] = [
      [account('alice@example.org'), /alice@example.org is already an address of uid=alice,/, 'primary = a primary'],
      [account('alice.liddell@example.org'), /alice.liddell@example.org is already an address of uid=alice,/, 'primary = an alias'],
      [account('postmaster@example.org'), /postmaster@example.org is already an address of cn=postmaster,ou=aliases/, 'primary = an alias entry'],
      [account('new1@example.org', { aliases: ['free1@example.org', 'BOB@example.org'] }), /bob@example.org is already an address of uid=bob,/i, 'alias = a primary'],
      [account('new2@example.org', { aliases: ['explorer@example.org'] }), /explorer@example.org.*uid=dora@example.org/, 'alias = an alias'],
      [account('new3@example.org', { aliases: ['postmaster@example.org'] }), /postmaster@example.org.*cn=postmaster/, 'alias = an alias entry'],
    ]
    for (const [a, message, why] of cases) await t.rejects(writer.create(a), { ...taken, message }, why)
    for (const a of ['new1@example.org', 'new2@example.org', 'new3@example.org', 'free1@example.org']) {
      t.same(await dir.findByAddress(a), [], `nothing was written for ${a}`)
    }

    // An entry already at the new DN that owns no address: the server itself refuses the add.
    await slapd.ldapadd(`dn: uid=ghost@example.org,${PEOPLE}
objectClass: inetOrgPerson
uid: ghost@example.org
cn: ghost
sn: ghost
`)
    await t.rejects(writer.create(account('ghost@example.org')), { ...taken, message: /uid=ghost@example.org,ou=people,dc=example,dc=org already exists/ })

    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => writer.create(account('race@example.org', { mailHost: `mx${i}.example.org` }))),
    )
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'of concurrent creates of one address, one wins')
    for (const r of results) if (r.status === 'rejected') t.match(r.reason, taken)
    t.equal((await dir.findByAddress('race@example.org')).length, 1, 'one owner')
  })

  await t.test('update: each field, and lookups follow', async (t) => {
    const created = await writer.create(account('fred@example.org', { aliases: ['frederick@example.org', 'fr@example.org'], sendAs: ['x@example.org'] }))
    let r = await writer.update('fred@example.org', { mailHost: 'mx2.example.org' })
    t.same(r.before, created)
    t.same(r.after, { ...created, mailHost: 'mx2.example.org' }, 'only mailHost changed')
    t.same(await dir.findByAddress('fr@example.org'), [entryOf(r.after)])

    r = await writer.update('fred@example.org', { status: 'disabled' })
    t.equal(r.after.status, 'disabled')
    t.match(await dir.findByAddress('fred@example.org'), [{ status: 'disabled' }])
    r = await writer.update('fred@example.org', { status: 'active' })
    t.equal(r.after.status, 'active')
    t.match(await dir.findByAddress('fred@example.org'), [{ status: 'active' }])

    r = await writer.update('fred@example.org', { passwordHash: await hashPassword('fred-pw', 'SSHA512') })
    t.equal(r.after.hasPassword, true)
    t.equal(await dir.verifyPassword(entryOf(r.after), 'fred-pw'), 'ok', 'the new password logs in')
    r = await writer.update('fred@example.org', { passwordHash: null })
    t.equal(r.after.hasPassword, false)
    t.equal(await dir.verifyPassword(entryOf(r.after), 'fred-pw'), 'mismatch', 'a removed password does not')
    t.notOk('userPassword' in ((await rawEntry(slapd, r.after.id)) ?? {}), 'the attribute is gone')
    r = await writer.update('fred@example.org', { passwordHash: null })
    t.equal(r.after.hasPassword, false, 'removing an absent password is no error')

    r = await writer.update('fred@example.org', { sendAs: ['z@example.org', '@example.com', 'z@example.org'] })
    t.same(r.after.sendAs, ['@example.com', 'z@example.org'])
    t.match(await dir.findByAddress('fred@example.org'), [{ sendAs: ['@example.com', 'z@example.org'] }])
    r = await writer.update('fred@example.org', { sendAs: [] })
    t.same(r.after.sendAs, [])
    t.notOk('mailhostdSendAs' in ((await rawEntry(slapd, r.after.id)) ?? {}), 'an empty list removes the attribute')

    r = await writer.update('fred@example.org', { aliases: ['fr@example.org', 'freddy@example.org', 'fred@example.org'] })
    t.same(r.before.aliases, ['fr@example.org', 'frederick@example.org'])
    t.same(r.after.aliases, ['fr@example.org', 'freddy@example.org'], 'one kept, one added, one dropped')
    t.same(await dir.findByAddress('frederick@example.org'), [], 'a dropped alias no longer resolves')
    t.same(await dir.findByAddress('freddy@example.org'), [entryOf(r.after)], 'an added one does')
    t.same((await rawEntry(slapd, r.after.id))?.mailLocalAddress, ['fred@example.org', 'fr@example.org', 'freddy@example.org'])
    r = await writer.update('fred@example.org', { aliases: [] })
    t.same(r.after.aliases, [])
    t.same((await rawEntry(slapd, r.after.id))?.mailLocalAddress, ['fred@example.org'], 'the primary address stays')

    r = await writer.update('fred@example.org', {})
    t.same(r.after, r.before, 'no changes, no modify')

    const before = await writer.get('fred@example.org')
    for (const alias of ['alice@example.org', 'alice.liddell@example.org', 'postmaster@example.org']) {
      await t.rejects(writer.update('fred@example.org', { aliases: ['ok@example.org', alias], mailHost: 'mx9.example.org' }), taken, alias)
    }
    t.same(await writer.get('fred@example.org'), before, 'a refused update changes nothing')
    await t.rejects(writer.update('nobody@example.org', { status: 'active' }), notFound)
    await t.rejects(writer.update('postmaster@example.org', { status: 'active' }), notFound, 'aliases are not accounts')
  })

  await t.test('delete', async (t) => {
    const gina = await writer.create(account('gina@example.org', { aliases: ['g@example.org'] }))
    t.same(await writer.delete('gina@example.org'), gina, 'returns what was deleted')
    t.same(await dir.findByAddress('gina@example.org'), [])
    t.same(await dir.findByAddress('g@example.org'), [])
    await t.rejects(writer.delete('gina@example.org'), notFound)
    await t.rejects(writer.delete('postmaster@example.org'), notFound, 'alias entries are never deleted as accounts')
    t.equal((await dir.findByAddress('postmaster@example.org')).length, 1)
    t.same((await writer.create(account('g@example.org', { aliases: ['gina@example.org'] }))).aliases, ['gina@example.org'], 'its addresses are free again')
    await writer.delete('g@example.org')
  })

  await t.test('list: byte order, keyset pages, filters, no aliases', async (t) => {
    const listAccounts: [string, string, 'active' | 'disabled'][] = [
      ['ab@list.example', 'MX1.list.example', 'active'],
      ['a_b@list.example', 'mx2.list.example', 'disabled'],
      ['a.b@list.example', 'mx1.list.example', 'active'],
      ['a-b@list.example', 'mx2.list.example', 'active'],
      ['z@list.example', 'mx1.LIST.example', 'disabled'],
      ['0@list.example', 'mx3.list.example', 'active'],
      ['m@list.example', 'mx1.list.example', 'active'],
    ]
    for (const [address, mailHost, status] of listAccounts) await writer.create(account(address, { mailHost, status }))
    await writer.create(account('x@sub.list.example', { mailHost: 'mx1.list.example' }))
    const expected = ['0@list.example', 'a-b@list.example', 'a.b@list.example', 'a_b@list.example', 'ab@list.example', 'm@list.example', 'z@list.example']

    const whole = await writer.list({ domain: 'list.example', limit: 1000 })
    t.same(whole.accounts.map((a) => a.address), expected, 'one page in byte order, only that domain')
    t.equal(whole.next, undefined)
    t.same(whole.accounts[0], await writer.get('0@list.example'), 'records are complete')
    for (const limit of [1, 3, 7]) {
      const pages = await allPages(writer, { domain: 'list.example', limit })
      t.same(pages.flat().map((a) => a.address), expected, `limit ${limit}: the pages add up to the list`)
      t.equal(pages.length, Math.ceil(expected.length / limit))
    }
    t.same(await writer.list({ domain: 'list.example', limit: 2, after: 'a.b@list.example' }), {
      accounts: [await writer.get('a_b@list.example'), await writer.get('ab@list.example')],
      next: 'ab@list.example',
    })

    const addresses = async (q: Omit<AccountQuery, 'limit'>) => (await writer.list({ limit: 1000, ...q })).accounts.map((a) => a.address)
    t.same(await addresses({ domain: 'sub.list.example' }), ['x@sub.list.example'])
    t.same(await addresses({ domain: 'list.example', mailHosts: ['mx1.list.example'] }), ['a.b@list.example', 'ab@list.example', 'm@list.example', 'z@list.example'])
    t.same(await addresses({ domain: 'list.example', mailHosts: ['MX2.list.example', 'mx3.list.example'] }), ['0@list.example', 'a-b@list.example', 'a_b@list.example'])
    t.same(await addresses({ domain: 'list.example', mailHosts: [] }), [])
    t.same(await addresses({ domain: 'list.example', status: 'disabled' }), ['a_b@list.example', 'z@list.example'])
    t.same(await addresses({ domain: 'list.example', status: 'active', after: 'a.b@list.example' }), ['ab@list.example', 'm@list.example'])
    t.same(await addresses({ mailHosts: ['mx1.list.example'], status: 'active', after: 'ab@list.example' }), ['m@list.example', 'x@sub.list.example'])
    t.same(await addresses({ domain: 'list*' }), [], 'a * in the domain is a value')

    const demo = await addresses({ domain: 'example.org' })
    t.ok(demo.includes('alice@example.org') && demo.includes('carol@example.org'))
    t.notOk(demo.includes('postmaster@example.org'), 'alias entries are never listed')
    t.same(await addresses({ domain: 'example.org', status: 'disabled' }), ['carol@example.org', 'ed@example.org'])

    const bulk = await writer.list({ domain: 'bulk.example', limit: 1000 })
    t.equal(bulk.accounts.length, 1000, 'a full page out of a search spanning three LDAP pages')
    t.equal(bulk.next, 'u0999@bulk.example')
    const rest = await writer.list({ domain: 'bulk.example', limit: 1000, after: bulk.next })
    t.same(rest.accounts.map((a) => a.address), Array.from({ length: 100 }, (_, i) => `u${1000 + i}@bulk.example`))
    t.equal(rest.next, undefined)

    for (const limit of [0, 1001, 2.5]) await t.rejects(writer.list({ limit }), invalid, `limit ${limit}`)
  })

  await t.test('countByMailHost', async (t) => {
    await writer.create(account('c1@count.example', { mailHost: 'Count-A.example' }))
    await writer.create(account('c2@count.example', { mailHost: 'count-a.example' }))
    const counts = await writer.countByMailHost()
    t.equal(counts.get('count-a.example'), 2, 'keys are lowercased')
    t.equal(counts.get('bulk.example.org'), BULK, 'every page is counted')
    t.notOk([...counts.keys()].some((k) => k !== k.toLowerCase()))
  })

  await t.test('other attribute mappings', async (t) => {
    // Only `mail`: aliases become further values of it, after the primary address.
    const mailOnly = adminConfig(slapd, { attributes: { address: ['mail'], status: '', sendAs: '' } }, { objectClasses: ['inetOrgPerson', 'inetLocalMailRecipient'] })
    const w = new LdapAccountWriter(mailOnly, silentLogger)
    t.teardown(() => w.close())
    const d = new LdapDirectory(ldapConfig(slapd, { attributes: { address: ['mail'] } }), silentLogger)
    t.teardown(() => d.close())
    const r = await w.create(account('hal@example.org', { aliases: ['h@example.org'] }))
    t.same(r.aliases, ['h@example.org'])
    t.same((await rawEntry(slapd, r.id))?.mail, ['hal@example.org', 'h@example.org'])
    t.notOk('mailLocalAddress' in ((await rawEntry(slapd, r.id)) ?? {}))
    t.match(await d.findByAddress('h@example.org'), [{ id: r.id, canonical: 'hal@example.org' }], 'the alias resolves through mail')
    t.same((await w.update('hal@example.org', { aliases: ['hh@example.org'] })).after.aliases, ['hh@example.org'])
    t.same((await rawEntry(slapd, r.id))?.mail, ['hal@example.org', 'hh@example.org'])
    await t.rejects(w.create(account('ida@example.org', { status: 'disabled' })), invalid, 'no status attribute: cannot disable')
    await t.rejects(w.create(account('ida@example.org', { sendAs: ['x@example.org'] })), invalid, 'no send-as attribute')
    await t.rejects(w.update('hal@example.org', { status: 'disabled' }), invalid)
    await t.rejects(w.update('hal@example.org', { sendAs: ['x@example.org'] }), invalid)
    t.equal((await w.update('hal@example.org', { status: 'active', sendAs: [] })).after.status, 'active', 'active and no send-as need no attribute')
    t.equal(await w.get('ida@example.org'), undefined, 'nothing was written')
    t.same((await w.list({ domain: 'example.org', status: 'disabled', limit: 10 })).accounts, [], 'without a status attribute nothing is disabled')

    // A template whose RDN attribute the mapping does not set, and a custom disabled value.
    const byCn = new LdapAccountWriter(
      adminConfig(slapd, { disabledValues: ['locked', 'inactive'] }, { accountDN: 'cn={local} at {domain},ou=people,{baseDN}' }),
      silentLogger,
    )
    t.teardown(() => byCn.close())
    const ivy = await byCn.create(account('ivy@example.org', { status: 'disabled' }))
    t.equal(ivy.id, `cn=ivy at example.org,${PEOPLE}`)
    t.match(await rawEntry(slapd, ivy.id), { cn: ['ivy@example.org', 'ivy at example.org'], mailhostdAccountStatus: ['locked'] })
    t.equal(ivy.status, 'disabled', 'disabled is written as the first configured disabled value')
    t.same((await byCn.list({ domain: 'example.org', status: 'active', limit: 1000 })).accounts.map((a) => a.address).includes('ivy@example.org'), false)
  })

  await t.test('directory data written behind mailhostd', async (t) => {
    const person = (uid: string, lines: string) =>
      `dn: uid=${uid},${PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\n${lines}\n`
    await slapd.ldapadd(
      [
        person('dup1', 'mail: dup@odd.example\nmailHost: mx1.example.org'),
        person('dup2', 'mail: DUP@odd.example\nmailHost: mx2.example.org'),
        // mailHost is single-valued in misc.schema, but a blank value gets through.
        person('blankhost', 'mail: blank@odd.example\nmailHost:: IA=='),
        person('nomail', 'mailLocalAddress: nomail@odd.example\nmailHost: nomail-host.example'),
        person('multi', 'mail: first@odd.example\nmail: Second@odd.example\nmailHost: mx1.example.org'),
      ].join('\n'),
    )
    await t.rejects(writer.get('dup@odd.example'), {
      name: 'DirectoryDataError',
      code: ErrorCodes.DUPLICATE_OWNER,
      message: /2 LDAP entries have the primary address dup@odd.example: uid=dup.*; uid=dup/,
    })
    await t.rejects(writer.get('blank@odd.example'), { name: 'DirectoryDataError', code: ErrorCodes.DIRECTORY_DATA, message: /uid=blankhost.* 0 non-blank mailHost values/ })
    await t.rejects(writer.list({ domain: 'odd.example', limit: 10 }), { code: ErrorCodes.DIRECTORY_DATA }, 'a broken entry is reported, not skipped')
    t.match(await writer.get('first@odd.example'), { address: 'first@odd.example', aliases: ['second@odd.example'] }, 'further mail values are aliases')
    t.equal(await writer.get('second@odd.example'), undefined, 'only the first mail value is the primary address')

    await slapd.ldapmodify(`dn: uid=blankhost,${PEOPLE}\nchangetype: delete\n`)
    t.same(
      (await writer.list({ domain: 'odd.example', limit: 10 })).accounts.map((a) => `${a.address} ${a.id}`).sort(),
      [`dup@odd.example uid=dup1,${PEOPLE}`, `dup@odd.example uid=dup2,${PEOPLE}`, `first@odd.example uid=multi,${PEOPLE}`],
      'both owners of one address are listed; an entry without a primary address is not',
    )
    t.equal((await writer.countByMailHost()).get('nomail-host.example'), 1, 'but it counts on its host')
  })

  await t.test('refused writes are DIRECTORY_WRITE, naming the DN', async (t) => {
    const noParent = new LdapAccountWriter(adminConfig(slapd, {}, { accountDN: 'uid={address},ou=missing,{baseDN}' }), log.logger)
    t.teardown(() => noParent.close())
    await t.rejects(noParent.create(account('jo@example.org')), {
      ...writeRefused,
      message: /LDAP add of uid=jo@example.org,ou=missing,dc=example,dc=org refused \(does its parent entry exist\?\): NoSuchObjectError \(LDAP result 32\)/,
    })

    const schema = new LdapAccountWriter(adminConfig(slapd, {}, { objectClasses: ['inetOrgPerson'] }), log.logger)
    t.teardown(() => schema.close())
    await t.rejects(schema.create(account('kim@example.org')), { ...writeRefused, message: /uid=kim@example.org.*ObjectClassViolationError \(LDAP result 65\)/ })

    const undefinedAttr = new LdapAccountWriter(adminConfig(slapd, { attributes: { sendAs: 'noSuchAttribute' } }), log.logger)
    t.teardown(() => undefinedAttr.close())
    await t.rejects(undefinedAttr.create(account('lee@example.org', { sendAs: ['x@example.org'] })), { ...writeRefused, message: /LDAP result 17/ })
    await t.rejects(undefinedAttr.update('alice@example.org', { sendAs: ['x@example.org'] }), { ...writeRefused, message: /uid=alice,ou=people/ })

    // The read-only service account as the admin bind: searches work, writes are refused.
    const readOnly = new LdapAccountWriter(adminConfig(slapd, {}, { bindDN: slapd.bindDN, bindPassword: slapd.bindPassword }), log.logger)
    t.teardown(() => readOnly.close())
    t.equal((await readOnly.get('alice@example.org'))?.hasPassword, false, 'an ACL that hides userPassword reads as no password')
    await t.rejects(readOnly.create(account('max@example.org')), { ...writeRefused, message: /InsufficientAccessError \(LDAP result 50\)/ })
    await t.rejects(readOnly.update('alice@example.org', { mailHost: 'mx2.example.org' }), writeRefused)
    await t.rejects(readOnly.delete('alice@example.org'), writeRefused)
    t.equal((await writer.get('alice@example.org'))?.mailHost, 'mx1.example.org', 'alice is untouched')

    // An entry the configured filter does not match would be invisible to lookups.
    const invisible = new LdapAccountWriter(adminConfig(slapd, { filter: '(objectClass=posixAccount)' }), log.logger)
    t.teardown(() => invisible.close())
    await t.rejects(invisible.create(account('ned@example.org')), { ...writeRefused, message: /does not match directory.ldap.filter.*removed again/ })
    t.equal(await rawEntry(slapd, `uid=ned@example.org,${PEOPLE}`), undefined, 'and it was removed')

    t.equal((await writer.list({ domain: 'example.org', limit: 1000 })).accounts.length > 0, true, 'refusals leave the writer usable')
  })

  await t.test('the entry going away under an update or delete is NOT_FOUND', async (t) => {
    const r = await writer.create(account('olga@example.org'))
    await slapd.ldapmodify(`dn: ${r.id}\nchangetype: delete\n`)
    await t.rejects(writer.update('olga@example.org', { mailHost: 'mx2.example.org' }), notFound)
    await t.rejects(writer.delete('olga@example.org'), notFound)

    // Two deletes at once both find the entry; the server refuses the second one.
    await writer.create(account('olga@example.org'))
    const both = await Promise.allSettled([writer.delete('olga@example.org'), writer.delete('olga@example.org')])
    t.equal(both.filter((b) => b.status === 'fulfilled').length, 1, 'one delete succeeded')
    for (const b of both) if (b.status === 'rejected') t.match(b.reason, notFound)
  })

  await t.test('a wrong admin password is a DirectoryError that never shows it', async (t) => {
    const wrong = 'Wrong-Admin-Secret-77'
    const badLog = captureLog()
    const bad = new LdapAccountWriter(adminConfig(slapd, {}, { bindPassword: wrong }), badLog.logger)
    t.teardown(() => bad.close())
    for (const op of [bad.get('alice@example.org'), bad.create(account('pat@example.org')), bad.list({ limit: 5 }), bad.countByMailHost()]) {
      const err = await failure(op)
      t.ok(err instanceof DirectoryError, 'DirectoryError')
      t.match(err, { code: ErrorCodes.DIRECTORY_UNAVAILABLE, message: /bind as cn=admin,dc=example,dc=org .*InvalidCredentialsError/ })
      t.notOk((err as Error).message.includes(wrong), 'the password is not in the message')
    }
    t.match(badLog.text(), /LDAP directory unavailable/)
    t.notOk(badLog.text().includes(wrong), 'nor in the log')
  })

  await t.test('slapd killed: DirectoryError for everything; restarted: the same writer works', async (t) => {
    await slapd.kill()
    const ops: [string, () => Promise<unknown>][] = [
      ['get', () => writer.get('alice@example.org')],
      ['list', () => writer.list({ limit: 10 })],
      ['create', () => writer.create(account('quinn@example.org'))],
      ['update', () => writer.update('alice@example.org', { status: 'disabled' })],
      ['delete', () => writer.delete('alice@example.org')],
      ['countByMailHost', () => writer.countByMailHost()],
    ]
    for (const [name, op] of ops) {
      const err = await failure(op())
      t.ok(err instanceof DirectoryError && !(err instanceof AdminError), `${name}: DirectoryError`)
      t.match(err, { code: ErrorCodes.DIRECTORY_UNAVAILABLE, transient: true }, name)
    }
    await slapd.restart()
    t.equal((await writer.get('alice@example.org'))?.status, 'active', 'nothing was changed, and it answers again')
  })

  t.match(log.text(), /LDAP directory unavailable/, 'the outage was logged')
  t.notOk(log.text().includes(slapd.rootPassword), 'the admin password never reaches the log')
})

peerTest(t, 'close ends the connection; a closed writer is an error', async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  const writer = new LdapAccountWriter(adminConfig(slapd), silentLogger)
  t.ok(await writer.get('bob@example.org'))
  await writer.close()
  await t.rejects(writer.get('bob@example.org'), { name: 'DirectoryError', message: /closed/ })
  await writer.close()
})
