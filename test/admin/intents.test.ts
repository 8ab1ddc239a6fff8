// Intents and their recovery, in-process: the admin services over a real (embedded) store and an
// in-memory account writer that is not the store (as LDAP is not), so every write goes through
// an intent. A write whose request "dies" between the directory and the store (the writer
// applies it, then fails) is recorded by the recovery exactly once, with its Idempotency-Key's
// answer; one that never reached the directory is undone and its key freed; an instance that is
// not registered counts as dead, so its claims are taken over.

import t, { type Test } from 'tap'
import { Accounts } from '../../src/admin/accounts.js'
import { AccountCounts } from '../../src/admin/account-counts.js'
import type { AdminDeps } from '../../src/admin/context.js'
import { IdempotencyKeys, PendingAnswer } from '../../src/admin/idempotency.js'
import { Moves } from '../../src/admin/moves.js'
import { Recovery } from '../../src/admin/recovery.js'
import { LocalChangeBus } from '../../src/cluster/local-change-bus.js'
import { Presence } from '../../src/cluster/presence.js'
import { validateConfig } from '../../src/config/load.js'
import type { AccountChanges, AccountRecord, AccountWriter, NewAccount } from '../../src/directory/accounts.js'
import { createLogger } from '../../src/log.js'
import { Registry } from '../../src/resolve/registry.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'

/** Accounts in memory, "elsewhere" than the store; `failAfterWrite` makes the next write apply and then fail. */
class RemoteWriter implements AccountWriter {
  readonly inStore = false
  readonly byAddress = new Map<string, AccountRecord & { hash?: string }>()
  failAfterWrite = false
  failBeforeWrite = false
  get = async (address: string) => this.byAddress.get(address)
  list = async () => ({ accounts: [...this.byAddress.values()] })
  passwordHash = async (address: string) => this.byAddress.get(address)?.hash
  async create(a: NewAccount): Promise<AccountRecord> {
    this.#maybeFail(false)
    const r = { id: `remote:${a.address}`, address: a.address, mailHost: a.mailHost, status: a.status, aliases: [...a.aliases], sendAs: [...a.sendAs], hasPassword: a.passwordHash !== undefined, ...(a.passwordHash === undefined ? {} : { hash: a.passwordHash }) }
    this.byAddress.set(a.address, r)
    this.#maybeFail(true)
    return r
  }
  async update(address: string, c: AccountChanges): Promise<{ before: AccountRecord; after: AccountRecord }> {
    this.#maybeFail(false)
    const before = this.byAddress.get(address)!
    const after = { ...before, ...(c.mailHost === undefined ? {} : { mailHost: c.mailHost }), ...(c.status === undefined ? {} : { status: c.status }) }
    this.byAddress.set(address, after)
    this.#maybeFail(true)
    return { before, after }
  }
  async delete(address: string): Promise<AccountRecord> {
    const before = this.byAddress.get(address)!
    this.byAddress.delete(address)
    return before
  }
  async countByMailHost() {
    const m = new Map<string, number>()
    for (const r of this.byAddress.values()) m.set(r.mailHost.toLowerCase(), (m.get(r.mailHost.toLowerCase()) ?? 0) + 1)
    return m
  }
  close = async () => undefined
  #maybeFail(after: boolean): void {
    if (after ? this.failAfterWrite : this.failBeforeWrite) {
      this.failAfterWrite = this.failBeforeWrite = false
      throw new Error('connection reset')
    }
  }
}

async function setup(t: Test) {
  const store = await openPglite(IN_MEMORY)
  t.teardown(() => store.close())
  await migrate(store)
  const logger = createLogger('silent')
  const presence = new Presence({ store, url: undefined, connectTimeoutMs: 1000, logger })
  await presence.start()
  t.teardown(() => presence.close())
  const bus = new LocalChangeBus({ store, logger })
  const registry = new Registry(
    [{ name: 'example.org' }],
    [
      { id: 'mx1', mailHosts: [], address: '10.0.0.1', route: 'lmtp', ports: { lmtp: 24, smtp: 25, imap: 143, pop3: 110 } },
      { id: 'mx2', mailHosts: [], address: '10.0.0.2', route: 'lmtp', ports: { lmtp: 24, smtp: 25, imap: 143, pop3: 110 } },
    ],
  )
  const writer = new RemoteWriter()
  const deps = (instance: AdminDeps['instance'] = presence): AdminDeps => ({
    store,
    bus,
    registry: () => registry,
    directory: { findByAddress: async () => [] },
    writer,
    terms: { passwordScheme: 'ARGON2ID', intentGraceMs: 0 },
    counts: new AccountCounts(writer),
    config: validateConfig({ admin: { passwordScheme: 'SSHA512' } }),
    logger,
    instance,
    apply: async () => undefined,
  })
  const accounts = new Accounts(deps())
  const moves = new Moves(deps())
  const keys = new IdempotencyKeys(store, 60_000, presence)
  const recovery = new Recovery(deps(), accounts, moves, keys)
  const audits = async (subject: string) =>
    (await store.query<{ n: number }>(`select count(*)::int as n from audit_log where subject = $1 and action = 'create'`, [subject])).rows[0]!.n
  return { store, presence, writer, deps, accounts, keys, recovery, audits }
}

t.test('a write that landed but whose request failed before its record: recovered once, with the key answer', async (t) => {
  const s = await setup(t)
  const claim = await s.keys.claim('ops', 'k1', 'h1')
  t.equal(claim.kind, 'new')
  if (claim.kind !== 'new') return
  s.writer.failAfterWrite = true
  await t.rejects(s.accounts.create('ops', { address: 'a@example.org', password: 'pw', backend: 'mx1' }, new PendingAnswer(claim.claim)), /connection reset/)
  t.ok(s.writer.byAddress.has('a@example.org'), 'the directory has it')
  t.equal(await s.audits('a@example.org'), 0, 'not audited yet')
  await s.keys.release(claim.claim)
  await t.rejects(s.keys.claim('ops', 'k1', 'h1'), { code: 'MH_IDEMPOTENCY_IN_PROGRESS' }, 'its outcome is open while this live instance has not resolved it')
  await s.recovery.run()
  t.equal(await s.audits('a@example.org'), 1, 'audited by the recovery')
  await s.recovery.run()
  t.equal(await s.audits('a@example.org'), 1, 'exactly once')
  const replay = await s.keys.claim('ops', 'k1', 'h1')
  t.match(replay, { kind: 'replay', answer: { status: 201, body: { address: 'a@example.org', backend: 'mx1', hasPassword: true } } })
})

t.test('a write that never reached the directory: undone, and its key freed for a fresh attempt', async (t) => {
  const s = await setup(t)
  const claim = await s.keys.claim('ops', 'k2', 'h2')
  if (claim.kind !== 'new') throw new Error('expected a new claim')
  s.writer.failBeforeWrite = true
  await t.rejects(s.accounts.create('ops', { address: 'b@example.org', backend: 'mx1' }, new PendingAnswer(claim.claim)), /connection reset/)
  await s.recovery.run()
  t.equal(await s.audits('b@example.org'), 0, 'nothing audited')
  t.equal((await s.keys.claim('ops', 'k2', 'h2')).kind, 'new', 'the retry runs afresh')
})

t.test("a dead instance's claim and intent are taken over at once by a retry", async (t) => {
  const s = await setup(t)
  // An instance that is not registered: dead, as a killed one is once its session is gone.
  const dead = { id: 'dead-instance', leaseMs: 30_000 }
  const deadKeys = new IdempotencyKeys(s.store, 60_000, dead)
  const claim = await deadKeys.claim('ops', 'k3', 'h3')
  if (claim.kind !== 'new') throw new Error('expected a new claim')
  s.writer.failAfterWrite = true
  await t.rejects(new Accounts(s.deps(dead)).create('ops', { address: 'c@example.org', backend: 'mx2' }, new PendingAnswer(claim.claim)))
  const replay = await s.keys.claim('ops', 'k3', 'h3')
  t.match(replay, { kind: 'replay', answer: { status: 201, body: { address: 'c@example.org', backend: 'mx2' } } }, 'the retry gets the answer the write earned')
  t.equal(await s.audits('c@example.org'), 1)
  const orphan = await deadKeys.claim('ops', 'k4', 'h4')
  t.equal(orphan.kind, 'new')
  t.equal((await s.keys.claim('ops', 'k4', 'h4')).kind, 'new', 'a claim without an intent is free for the retry')
})

t.test('a move completion whose flip landed: abort is refused while it is open, and recovery completes the move', async (t) => {
  const s = await setup(t)
  await s.accounts.create('ops', { address: 'm@example.org', backend: 'mx1' })
  const moves = new Moves(s.deps())
  const [move] = await moves.start('ops', { target: 'mx2', accounts: ['m@example.org'] })
  s.writer.failAfterWrite = true
  await t.rejects(moves.complete('ops', move!.id, true), /connection reset/)
  t.equal(s.writer.byAddress.get('m@example.org')!.mailHost, 'mx2', 'the directory was flipped')
  t.equal((await moves.get(move!.id)).state, 'copied', 'the move is not complete yet')
  const completed = await moves.abort('ops', move!.id).catch((e: unknown) => e)
  t.match(completed, { code: 'MH_MOVE_STATE' }, 'abort does not undo a flip it cannot see: the orphaned completion is settled first')
  t.equal((await moves.get(move!.id)).state, 'completed')
  const { rows } = await s.store.query<{ n: number }>(`select count(*)::int as n from audit_log where subject_type = 'move' and subject = $1 and action = 'complete'`, [String(move!.id)])
  t.equal(rows[0]!.n, 1, 'completion audited once')
})

t.test('a directory that cannot answer: one attempt per pass, not one per open intent; all settled once it answers', async (t) => {
  const s = await setup(t)
  const dead = { id: 'dead-instance', leaseMs: 30_000 }
  const deadAccounts = new Accounts(s.deps(dead))
  for (const address of ['d1@example.org', 'd2@example.org', 'd3@example.org']) {
    s.writer.failAfterWrite = true
    await t.rejects(deadAccounts.create('ops', { address, backend: 'mx1' }))
  }
  const get = s.writer.get
  let asked = 0
  s.writer.get = async () => {
    asked++
    throw new Error('directory unreachable')
  }
  await s.recovery.run()
  t.equal(asked, 1, 'the pass stopped at the first failure')
  t.equal(await s.audits('d1@example.org') + (await s.audits('d2@example.org')) + (await s.audits('d3@example.org')), 0, 'nothing judged while the directory is down')
  s.writer.get = get
  await s.recovery.run()
  for (const address of ['d1@example.org', 'd2@example.org', 'd3@example.org']) t.equal(await s.audits(address), 1, `${address} recorded once the directory answers`)
})
