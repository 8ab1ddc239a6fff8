// The SQL account writer on both engines: what it writes is what the SQL directory answers
// lookups with; addresses are claimed once (primary, alternate or alias, also under concurrent
// creates); lists page in byte order with exact filters; a store that fails is an error.

import t, { type Test } from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { hashPassword } from '../../src/auth/passwords.js'
import type { AccountQuery, AccountRecord, NewAccount } from '../../src/directory/accounts.js'
import { byteOrder } from '../../src/directory/byte-order.js'
import type { AccountEntry } from '../../src/directory/directory.js'
import { SqlAccountWriter } from '../../src/directory/sql-accounts.js'
import { SqlDirectory } from '../../src/directory/sql.js'
import { AdminError, DirectoryError, ErrorCodes } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import { openPostgres } from '../../src/store/postgres.js'
import type { Store } from '../../src/store/store.js'
import { startPostgres } from '../harness/postgres.js'

const account = (address: string, over: Partial<NewAccount> = {}): NewAccount => ({
  address,
  mailHost: 'mx1.example.org',
  status: 'active',
  aliases: [],
  sendAs: [],
  ...over,
})

const taken = { name: 'AdminError', code: ErrorCodes.ADDRESS_TAKEN }
const notFound = { name: 'AdminError', code: ErrorCodes.NOT_FOUND }
const unavailable = { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE }

async function count(store: Store, table: 'accounts' | 'account_addresses'): Promise<number> {
  return (await store.query<{ n: number }>(`select count(*)::int as n from ${table}`)).rows[0]!.n
}

/** Every page of a listing, following `next` until the last one. */
async function allPages(writer: SqlAccountWriter, query: Omit<AccountQuery, 'after'>) {
  const pages: AccountRecord[][] = []
  let after: string | undefined
  do {
    const page = await writer.list({ ...query, ...(after === undefined ? {} : { after }) })
    pages.push(page.accounts)
    after = page.next
  } while (after !== undefined && pages.length < 100)
  return pages
}

async function writerCases(t: Test, store: Store) {
  const writer = new SqlAccountWriter(store)
  const dir = new SqlDirectory(store)
  await store.query(`insert into aliases (address, target) values ('postmaster@example.org', 'alice@example.org')`)

  await t.test('create, get, and the directory sees it', async (t) => {
    const hash = await hashPassword('s3cret-pw', 'SSHA512')
    const created = await writer.create(
      account('alice@example.org', {
        passwordHash: hash,
        aliases: ['liddell@example.org', 'alice.liddell@example.org', 'liddell@example.org', 'alice@example.org'],
        sendAs: ['@example.net', 'boss@example.org'],
      }),
    )
    t.match(created.id, /^sql:account:\d+$/)
    t.same(created, {
      id: created.id,
      address: 'alice@example.org',
      mailHost: 'mx1.example.org',
      status: 'active',
      aliases: ['alice.liddell@example.org', 'liddell@example.org'],
      sendAs: ['@example.net', 'boss@example.org'],
      hasPassword: true,
    })
    t.same(await writer.get('alice@example.org'), created)
    t.equal(await writer.get('liddell@example.org'), undefined, 'get takes primary addresses only')
    t.equal(await writer.get('nobody@example.org'), undefined)
    t.equal(await writer.get("' or '1'='1"), undefined)

    const entry: AccountEntry = {
      kind: 'account',
      id: created.id,
      canonical: 'alice@example.org',
      mailHost: 'mx1.example.org',
      status: 'active',
      sendAs: ['@example.net', 'boss@example.org'],
    }
    t.same(await dir.findByAddress('alice@example.org'), [entry], 'the primary address resolves')
    t.same(await dir.findByAddress('liddell@example.org'), [entry], 'so does an alias')
    t.equal(await dir.verifyPassword(entry, 's3cret-pw'), 'ok', 'the stored hash is the one given')
    t.equal(await dir.verifyPassword(entry, 'wrong'), 'mismatch')

    const bare = await writer.create(account('carol@example.org', { status: 'disabled', mailHost: 'mx2.example.org' }))
    t.same([bare.hasPassword, bare.aliases, bare.sendAs, bare.status], [false, [], [], 'disabled'])
    t.same(await dir.findByAddress('carol@example.org'), [
      { kind: 'account', id: bare.id, canonical: 'carol@example.org', mailHost: 'mx2.example.org', status: 'disabled', sendAs: [] },
    ])
    const blank = await writer.create(account('blank@example.org', { passwordHash: '' }))
    t.equal(blank.hasPassword, false, 'an empty hash is no password')
  })

  await t.test('an address is claimed once: ADDRESS_TAKEN, and nothing is written', async (t) => {
    const accounts = await count(store, 'accounts')
    const addresses = await count(store, 'account_addresses')
    const cases: [NewAccount, RegExp, string][] = [
      [account('alice@example.org'), /alice@example.org is already an address of another account/, 'primary = a primary'],
      [account('liddell@example.org'), /liddell@example.org is already an address of another account/, 'primary = an alias'],
      [account('postmaster@example.org'), /postmaster@example.org is already an alias/, 'primary = an aliases-table entry'],
      [account('new1@example.org', { aliases: ['ok1@example.org', 'alice@example.org'] }), /alice@example.org/, 'alias = a primary'],
      [account('new2@example.org', { aliases: ['alice.liddell@example.org'] }), /alice.liddell@example.org/, 'alias = an alias'],
      [account('new3@example.org', { aliases: ['postmaster@example.org'] }), /postmaster@example.org is already an alias/, 'alias = aliases table'],
    ]
    for (const [a, message, why] of cases) await t.rejects(writer.create(a), { ...taken, message }, why)
    t.equal(await count(store, 'accounts'), accounts, 'no account was left behind')
    t.equal(await count(store, 'account_addresses'), addresses, 'no alternate address either')
    for (const a of ['new1@example.org', 'ok1@example.org', 'new2@example.org', 'new3@example.org']) {
      t.same(await dir.findByAddress(a), [], `${a} is still free`)
    }
  })

  await t.test('update: each field, and the directory follows', async (t) => {
    const original = await writer.create(
      account('bob@example.org', { mailHost: 'mx2.example.org', aliases: ['builder@example.org', 'robert@example.org'], sendAs: ['a@example.org'] }),
    )
    const stamp = async () =>
      (await store.query<{ at: string }>(`select updated_at::text as at from accounts where address = 'bob@example.org'`)).rows[0]!.at

    let at = await stamp()
    let r = await writer.update('bob@example.org', { mailHost: 'mx1.example.org' })
    t.same(r.before, original, 'before is the state the update found')
    t.same(r.after, { ...original, mailHost: 'mx1.example.org' }, 'only mailHost changed')
    t.not(await stamp(), at, 'updated_at moved')

    r = await writer.update('bob@example.org', { status: 'disabled' })
    t.equal(r.after.status, 'disabled')
    r = await writer.update('bob@example.org', { passwordHash: await hashPassword('builder', 'SSHA512') })
    t.equal(r.after.hasPassword, true)
    const entry = (await dir.findByAddress('bob@example.org'))[0] as AccountEntry
    t.equal(await dir.verifyPassword(entry, 'builder'), 'ok')
    r = await writer.update('bob@example.org', { passwordHash: null })
    t.equal(r.after.hasPassword, false, 'null removes the password')
    t.equal(await dir.verifyPassword(entry, 'builder'), 'mismatch', 'and nobody can log in with it')
    t.same((await store.query(`select password_hash from accounts where address = 'bob@example.org'`)).rows, [{ password_hash: null }])

    r = await writer.update('bob@example.org', { sendAs: ['z@example.org', '@example.com', 'z@example.org'] })
    t.same(r.after.sendAs, ['@example.com', 'z@example.org'], 'sendAs replaced, sorted')

    r = await writer.update('bob@example.org', { aliases: ['robert@example.org', 'bobby@example.org', 'bob@example.org'] })
    t.same(r.before.aliases, ['builder@example.org', 'robert@example.org'])
    t.same(r.after.aliases, ['bobby@example.org', 'robert@example.org'], 'aliases replaced: one kept, one added, one dropped')
    t.same(await dir.findByAddress('builder@example.org'), [], 'a dropped alias no longer resolves')
    t.same(
      (await dir.findByAddress('bobby@example.org')).map((e) => e.kind === 'account' && [e.canonical, e.mailHost, e.status, e.sendAs]),
      [['bob@example.org', 'mx1.example.org', 'disabled', ['@example.com', 'z@example.org']]],
      'an added alias resolves to the account as it is now',
    )

    at = await stamp()
    r = await writer.update('bob@example.org', {})
    t.same(r.after, r.before, 'no fields, no change')
    t.not(await stamp(), at, 'but updated_at still moves')

    r = await writer.update('bob@example.org', { aliases: [] })
    t.same(r.after.aliases, [], 'an empty list removes every alias')

    const before = await writer.get('bob@example.org')
    for (const alias of ['alice@example.org', 'liddell@example.org', 'postmaster@example.org']) {
      await t.rejects(writer.update('bob@example.org', { aliases: ['kept@example.org', alias], mailHost: 'mx9' }), taken, alias)
    }
    t.same(await writer.get('bob@example.org'), before, 'a refused update changes nothing')
    await t.rejects(writer.update('nobody@example.org', { status: 'active' }), notFound)
    await t.rejects(writer.update('robert@example.org', { status: 'active' }), notFound, 'an alias is not a primary address')
  })

  await t.test('values the schema refuses are a validation error, not an outage', async (t) => {
    await t.rejects(writer.create(account('empty-host@example.org', { mailHost: '' })), { name: 'AdminError', code: ErrorCodes.VALIDATION })
    await t.rejects(writer.create(account('no-at-sign')), { name: 'AdminError', code: ErrorCodes.VALIDATION })
    await t.rejects(writer.update('alice@example.org', { mailHost: '' }), { name: 'AdminError', code: ErrorCodes.VALIDATION })
    t.equal((await writer.get('alice@example.org'))?.mailHost, 'mx1.example.org')
  })

  await t.test('delete frees every address of the account', async (t) => {
    const dave = await writer.create(account('dave@example.org', { aliases: ['david@example.org'] }))
    t.same(await writer.delete('dave@example.org'), dave, 'returns what was deleted')
    t.equal(await writer.get('dave@example.org'), undefined)
    t.same(await dir.findByAddress('david@example.org'), [])
    await t.rejects(writer.delete('dave@example.org'), notFound)
    await t.rejects(writer.delete('postmaster@example.org'), notFound, 'an alias is not an account')
    const again = await writer.create(account('david@example.org', { aliases: ['dave@example.org'] }))
    t.same(again.aliases, ['dave@example.org'], 'the addresses can be claimed again')
    await writer.delete('david@example.org')
  })

  await t.test('list: byte order, keyset pages, exact filters', async (t) => {
    // '-' < '.' < '_' < letters in byte order; a locale collation would sort them otherwise.
    const domainAccounts: [string, string, 'active' | 'disabled'][] = [
      ['ab@list.example', 'MX1.list.example', 'active'],
      ['a_b@list.example', 'mx2.list.example', 'disabled'],
      ['a.b@list.example', 'mx1.list.example', 'active'],
      ['a-b@list.example', 'mx2.list.example', 'active'],
      ['z@list.example', 'mx1.LIST.example', 'disabled'],
      ['0@list.example', 'mx3.list.example', 'active'],
      ['m@list.example', 'mx1.list.example', 'active'],
    ]
    for (const [address, mailHost, status] of domainAccounts) await writer.create(account(address, { mailHost, status }))
    // '_' and '%' would match these with LIKE; the domain filter must not.
    await writer.create(account('x@listxexample', { mailHost: 'mx1.list.example' }))
    await writer.create(account('x@sub.list.example', { mailHost: 'mx1.list.example' }))
    await writer.create(account('y@list_example', { mailHost: 'mx1.list.example' }))
    const expected = domainAccounts.map(([a]) => a).sort(byteOrder)
    t.same(expected.slice(0, 4), ['0@list.example', 'a-b@list.example', 'a.b@list.example', 'a_b@list.example'])

    const whole = await writer.list({ domain: 'list.example', limit: 100 })
    t.same(whole.accounts.map((a) => a.address), expected, 'one page, in byte order, only that domain')
    t.equal(whole.next, undefined, 'no next on the last page')
    t.same(whole.accounts[0], await writer.get('0@list.example'), 'records are complete')

    for (const limit of [1, 2, 3, 7]) {
      const pages = await allPages(writer, { domain: 'list.example', limit })
      t.same(pages.flat().map((a) => a.address), expected, `limit ${limit}: the pages add up to the list`)
      t.ok(pages.every((p) => p.length <= limit && p.length > 0), `limit ${limit}: no page over the limit, none empty`)
      t.equal(pages.length, Math.ceil(expected.length / limit))
    }
    const page = await writer.list({ domain: 'list.example', limit: 2, after: 'a.b@list.example' })
    t.same(page, { accounts: page.accounts, next: 'ab@list.example' })
    t.same(page.accounts.map((a) => a.address), ['a_b@list.example', 'ab@list.example'], 'after is exclusive')

    const addresses = async (q: Omit<AccountQuery, 'limit'>) =>
      (await writer.list({ limit: 1000, ...q })).accounts.map((a) => a.address)
    t.same(await addresses({ domain: 'list_example' }), ['y@list_example'])
    t.same(await addresses({ domain: 'list%' }), [])
    t.same(await addresses({ domain: 'sub.list.example' }), ['x@sub.list.example'])
    t.same(await addresses({ domain: 'list.example', mailHosts: ['mx1.list.example'] }), [
      'a.b@list.example',
      'ab@list.example',
      'm@list.example',
      'z@list.example',
    ], 'mailHosts compare case-insensitively')
    t.same(await addresses({ domain: 'list.example', mailHosts: ['MX2.list.example', 'mx3.list.example'] }), [
      '0@list.example',
      'a-b@list.example',
      'a_b@list.example',
    ])
    t.same(await addresses({ domain: 'list.example', mailHosts: [] }), [], 'an empty set of hosts matches nothing')
    t.same(await addresses({ domain: 'list.example', status: 'disabled' }), ['a_b@list.example', 'z@list.example'])
    t.same(await addresses({ mailHosts: ['mx1.list.example'], status: 'active', after: 'ab@list.example' }), [
      'm@list.example',
      'x@listxexample',
      'x@sub.list.example',
      'y@list_example',
    ], 'filters and after combine')
    for (const limit of [0, 1001, 1.5]) {
      await t.rejects(writer.list({ limit }), { name: 'AdminError', code: ErrorCodes.VALIDATION }, `limit ${limit}`)
    }
  })

  await t.test('countByMailHost: lowercased keys', async (t) => {
    await writer.create(account('c1@count.example', { mailHost: 'Count-A.example' }))
    await writer.create(account('c2@count.example', { mailHost: 'count-a.example' }))
    await writer.create(account('c3@count.example', { mailHost: 'COUNT-B.example' }))
    const counts = await writer.countByMailHost()
    t.equal(counts.get('count-a.example'), 2)
    t.equal(counts.get('count-b.example'), 1)
    t.equal(counts.get('Count-A.example'), undefined)
    const { rows } = await store.query<{ n: number }>('select count(*)::int as n from accounts')
    t.equal([...counts.values()].reduce((a, b) => a + b, 0), rows[0]!.n, 'every account is counted once')
  })

  await t.test('concurrent creates of one address: exactly one wins', async (t) => {
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => writer.create(account('race@example.org', { mailHost: `mx${i}.example.org` }))),
    )
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one create succeeded')
    for (const r of results) if (r.status === 'rejected') t.match(r.reason, taken)
    t.equal((await dir.findByAddress('race@example.org')).length, 1, 'one owner')

    // Crossing claims (each one's primary is the other's alias) lock in the same order: no deadlock.
    const crossing = await Promise.allSettled([
      writer.create(account('p@cross.example', { aliases: ['q@cross.example'] })),
      writer.create(account('q@cross.example', { aliases: ['p@cross.example'] })),
      writer.create(account('r@cross.example', { aliases: ['p@cross.example'] })),
    ])
    t.equal(crossing.filter((r) => r.status === 'fulfilled').length, 1, 'one of the crossing creates succeeded')
    for (const r of crossing) if (r.status === 'rejected') t.match(r.reason, taken)
    t.equal((await dir.findByAddress('p@cross.example')).length, 1, 'p, claimed by all three, has one owner')
    for (const a of ['q@cross.example', 'r@cross.example']) t.ok((await dir.findByAddress(a)).length <= 1, `${a}: never two owners`)

    const updates = await Promise.allSettled(
      ['alice@example.org', 'carol@example.org'].map((a) => writer.update(a, { aliases: ['contested@example.org'] })),
    )
    t.equal(updates.filter((r) => r.status === 'fulfilled').length, 1, 'one of two updates claiming one alias won')
    t.equal((await dir.findByAddress('contested@example.org')).length, 1)
  })

  await t.test('close leaves the shared store open', async (t) => {
    await writer.close()
    t.same((await store.query('select 1 as ok')).rows, [{ ok: 1 }])
  })
}

async function assertUnavailable(t: Test, writer: SqlAccountWriter) {
  await t.rejects(writer.get('alice@example.org'), unavailable, 'get')
  await t.rejects(writer.list({ limit: 10 }), unavailable, 'list')
  await t.rejects(writer.create(account('new@example.org')), unavailable, 'create')
  await t.rejects(writer.update('alice@example.org', { status: 'disabled' }), unavailable, 'update')
  await t.rejects(writer.delete('alice@example.org'), unavailable, 'delete')
  await t.rejects(writer.countByMailHost(), unavailable, 'countByMailHost')
}

void t.test('PGlite', async (t) => {
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  await migrate(store)
  await writerCases(t, store)

  await t.test('a store that fails is an error, never an empty answer', async (t) => {
    const broken = await openPglite(IN_MEMORY)
    await broken.close()
    await assertUnavailable(t, new SqlAccountWriter(broken))
  })
})

peerTest(t, 'PostgreSQL', async (t, set) => {
  const server = await startPostgres({ set })
  t.teardown(() => server.stop())
  const store = await openPostgres({ url: server.url, poolSize: 8, connectTimeoutMs: 1000, statementTimeoutMs: 5000 }, silentLogger)
  t.teardown(() => store.close())
  await migrate(store)
  await writerCases(t, store)
  const writer = new SqlAccountWriter(store)

  await t.test('a unique violation that races past the checks is ADDRESS_TAKEN', async (t) => {
    // Another writer that takes no lock inserts the address and has not committed yet: the
    // check cannot see it, the insert waits on the unique index and fails once it commits.
    let commit!: () => void
    const held = new Promise<void>((resolve) => (commit = resolve))
    let inserted!: () => void
    const isInserted = new Promise<void>((resolve) => (inserted = resolve))
    const other = store.transaction(async (tx) => {
      await tx.query(`insert into accounts (address, mailhost) values ('sneaky@example.org', 'mx1.example.org')`)
      inserted()
      await held
    })
    await isInserted
    const create = writer.create(account('sneaky@example.org')).then(
      () => undefined,
      (e: unknown) => e,
    )
    const waiting = async () =>
      (await store.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock'`)).rows[0]!.n
    while ((await waiting()) === 0) await sleep(10)
    commit()
    await other
    const err = await create
    t.ok(err instanceof AdminError, 'an AdminError')
    t.match(err, { code: ErrorCodes.ADDRESS_TAKEN, message: /sneaky@example.org is already taken/ })
  })

  await t.test('killed: every operation is a DirectoryError; restarted: answers again', async (t) => {
    await server.kill()
    await assertUnavailable(t, writer)
    t.ok((await writer.get('alice@example.org').catch((e: unknown) => e)) instanceof DirectoryError)
    await server.restart()
    t.equal((await writer.get('alice@example.org'))?.address, 'alice@example.org')
  })
})
