// Concurrent creates through the Accounts service, with a directory whose writes take a while
// (as LDAP adds and PostgreSQL transactions do; the embedded PGlite answers too fast to show it):
// placement and the capacity check must see every earlier create, including those still being
// written, or a backend one short of its capacity takes several accounts and least-used piles
// onto one backend.

import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { AccountCounts } from '../../src/admin/account-counts.js'
import { Accounts } from '../../src/admin/accounts.js'
import type { AdminDeps } from '../../src/admin/context.js'
import type { PlacementPolicy } from '../../src/config/schema.js'
import { validateConfig } from '../../src/config/load.js'
import type { AccountRecord, AccountWriter, NewAccount } from '../../src/directory/accounts.js'
import { AdminError, ErrorCodes } from '../../src/errors.js'
import { createLogger } from '../../src/log.js'
import { Registry, type BackendInfo, type HostInfo } from '../../src/resolve/registry.js'
import type { Queryable, Store } from '../../src/store/store.js'

/** An in-memory directory whose creates take `writeMs`, concurrently, like a real one. */
class SlowWriter implements AccountWriter {
  /** Writes "in the store": each create runs in the (no-op) store transaction, as the SQL directory's do. */
  readonly inStore = true
  readonly byAddress = new Map<string, AccountRecord>()
  constructor(private readonly writeMs: number) {}
  get = async (address: string) => this.byAddress.get(address)
  list = async () => ({ accounts: [...this.byAddress.values()] })
  async create(a: NewAccount): Promise<AccountRecord> {
    await sleep(this.writeMs)
    const r = { id: `fake:${a.address}`, address: a.address, mailHost: a.mailHost, status: a.status, aliases: [...a.aliases], sendAs: [...a.sendAs], hasPassword: false }
    this.byAddress.set(a.address, r)
    return r
  }
  update = () => Promise.reject(new Error('not used'))
  delete = () => Promise.reject(new Error('not used'))
  passwordHash = async () => undefined
  async countByMailHost() {
    const m = new Map<string, number>()
    for (const r of this.byAddress.values()) m.set(r.mailHost, (m.get(r.mailHost) ?? 0) + 1)
    return m
  }
  close = async () => undefined
}

const backend = (id: string, over: Partial<HostInfo> = {}): HostInfo => ({
  id,
  mailHosts: [],
  address: '10.0.0.1',
  route: 'lmtp',
  ports: { lmtp: 24, smtp: 25, imap: 143, pop3: 110 },
  ...over,
})

function accounts(policy: PlacementPolicy, backends: BackendInfo[]) {
  const writer = new SlowWriter(5)
  const noRows = { query: async () => ({ rows: [] }) } as unknown as Queryable
  const store = { ...noRows, kind: 'pglite', transaction: (fn: (tx: Queryable) => Promise<unknown>) => fn(noRows) } as unknown as Store
  const registry = new Registry([{ name: 'example.org' }], backends)
  let seed = 1
  const deps: AdminDeps = {
    store,
    bus: { publish: async () => undefined, subscribe: () => undefined, close: async () => undefined },
    registry: () => registry,
    directory: { findByAddress: async () => [] },
    writer,
    terms: { passwordScheme: 'ARGON2ID', intentGraceMs: 0 },
    counts: new AccountCounts(writer),
    config: validateConfig({ admin: { placement: { policy } } }),
    logger: createLogger('silent'),
    instance: { id: 'test', leaseMs: 30_000 },
    apply: async () => undefined,
    // A fixed sequence: the outcome must not depend on the luck of a draw.
    random: () => (seed = (seed * 48271) % 2147483647) / 2147483647,
  }
  return { service: new Accounts(deps), writer }
}

/** Creates n accounts at once; returns the backend of each created one and the refusal codes. */
async function createAtOnce(service: Accounts, n: number, backend?: string) {
  const results = await Promise.allSettled(
    [...Array(n).keys()].map((i) => service.create('test', { address: `user${i}@example.org`, ...(backend === undefined ? {} : { backend }) })),
  )
  const placed: Record<string, number> = {}
  const refused: string[] = []
  for (const r of results) {
    if (r.status === 'fulfilled') placed[r.value.backend!] = (placed[r.value.backend!] ?? 0) + 1
    else refused.push(r.reason instanceof AdminError ? r.reason.code : String(r.reason))
  }
  return { placed, refused }
}

t.test('placed at once: a backend with room for 3 takes 3, the rest go elsewhere', async (t) => {
  const { service, writer } = accounts('random', [backend('small', { capacity: 3 }), backend('big')])
  const { placed, refused } = await createAtOnce(service, 40)
  t.same(refused, [])
  t.equal(placed.small, 3, 'small filled to its capacity, not beyond')
  t.equal(placed.big, 37)
  t.equal(writer.byAddress.size, 40)
})

t.test('placed at once with nowhere else to go: exactly the capacity is created, the rest refused', async (t) => {
  const { service, writer } = accounts('least-used', [backend('small', { capacity: 3 }), backend('off', { adminState: 'drain' })])
  const { placed, refused } = await createAtOnce(service, 8)
  t.same(placed, { small: 3 })
  t.same(refused, Array(5).fill('MH_NO_ELIGIBLE_BACKEND'))
  t.equal(writer.byAddress.size, 3)
})

t.test('an explicit backend at once: its capacity holds too', async (t) => {
  const { service } = accounts('least-used', [backend('small', { capacity: 3 }), backend('big')])
  const { placed, refused } = await createAtOnce(service, 8, 'small')
  t.same(placed, { small: 3 })
  t.same(refused, Array(5).fill('MH_NO_ELIGIBLE_BACKEND'))
})

t.test('least-used at once: counts stay level', async (t) => {
  const { service } = accounts('least-used', [backend('a'), backend('b'), backend('c')])
  const { placed } = await createAtOnce(service, 30)
  t.same(placed, { a: 10, b: 10, c: 10 })
})

t.test('a failed write leaves the room it was given, and the next create goes on', async (t) => {
  const { service, writer } = accounts('least-used', [backend('small', { capacity: 1 })])
  const create = writer.create.bind(writer)
  let fail = true
  writer.create = async (a) => {
    if (fail) {
      fail = false
      await sleep(5)
      throw new AdminError(ErrorCodes.DIRECTORY_WRITE, 'refused')
    }
    return create(a)
  }
  const { placed, refused } = await createAtOnce(service, 3)
  t.same(refused.sort(), ['MH_DIRECTORY_WRITE', 'MH_NO_ELIGIBLE_BACKEND'])
  t.same(placed, { small: 1 })
})
