// The demo directory fixture: the exact data of architecture.md §7, Dovecot-compatible password
// hashes, and safe to apply on every start.

import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import { applySqlFile } from '../../src/store/sql-file.js'

const DEMO_SQL = new URL('../../fixtures/demo/directory.sql', import.meta.url).pathname

/** Dovecot's {SSHA512}: base64(sha512(password || salt) || salt). */
function verifySsha512(hash: string, password: string): boolean {
  const m = /^\{SSHA512\}([A-Za-z0-9+/=]+)$/.exec(hash)
  if (!m) return false
  const raw = Buffer.from(m[1]!, 'base64')
  const digest = raw.subarray(0, 64)
  const salt = raw.subarray(64)
  if (salt.length < 8) return false
  return createHash('sha512').update(password).update(salt).digest().equals(digest)
}

void t.test('demo directory fixture', async (t) => {
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  await migrate(store)
  await applySqlFile(store, DEMO_SQL)
  await applySqlFile(store, DEMO_SQL)

  const accounts = (
    await store.query<{ address: string; mailhost: string; status: string; password_hash: string }>(
      'select address, mailhost, status, password_hash from accounts order by address',
    )
  ).rows
  t.same(
    accounts.map((a) => [a.address, a.mailhost, a.status]),
    [
      ['alice@example.org', 'mx1.example.org', 'active'],
      ['bob@example.org', 'mx2.example.org', 'active'],
      ['carol@example.org', 'mx1.example.org', 'disabled'],
    ],
    'three accounts, once each after two applications',
  )
  const passwords: Record<string, string> = {
    'alice@example.org': 'wonderland',
    'bob@example.org': 'builder',
    'carol@example.org': 'carol-disabled',
  }
  for (const a of accounts) {
    t.ok(verifySsha512(a.password_hash, passwords[a.address]!), `${a.address} has a valid {SSHA512} of its password`)
    t.notOk(verifySsha512(a.password_hash, 'wrong'), `${a.address} rejects a wrong password`)
  }

  t.same(
    (
      await store.query(
        'select x.address, a.address as account from account_addresses x join accounts a on a.id = x.account_id',
      )
    ).rows,
    [{ address: 'alice.liddell@example.org', account: 'alice@example.org' }],
  )
  t.same((await store.query('select address, target from aliases')).rows, [
    { address: 'postmaster@example.org', target: 'alice@example.org' },
  ])
})

void t.test('a SQL file that fails part-way leaves nothing behind', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailhostd-sql-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'broken.sql')
  writeFileSync(file, `insert into aliases (address, target) values ('a@example.org', 'b@example.org');\nselect no_such_column;\n`)
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  await migrate(store)
  await t.rejects(applySqlFile(store, file))
  t.same((await store.query('select * from aliases')).rows, [])
  await t.rejects(applySqlFile(store, join(dir, 'missing.sql')), { code: 'ENOENT' })
})
