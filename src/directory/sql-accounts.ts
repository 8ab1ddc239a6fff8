// Writing accounts into the SQL directory's tables (accounts, account_addresses), the admin
// API's side of SqlDirectory. Every write is one transaction that first locks each address it
// is about to claim, so two admins creating the same address at once cannot both succeed: the
// schema cannot refuse that by itself, because accounts.address and account_addresses.address
// are separate unique indexes and aliases.address is not unique at all.

import { AdminError, DirectoryError, ErrorCodes, describeError } from '../errors.js'
import type { Queryable, Store } from '../store/store.js'
import type { AccountChanges, AccountPage, AccountQuery, AccountRecord, AccountWriter, NewAccount } from './accounts.js'
import { byteOrder } from './byte-order.js'
import type { AccountStatus } from './directory.js'

const ID_PREFIX = 'sql:account:'
const MAX_PAGE = 1000

interface AccountRow {
  id: string
  address: string
  mailhost: string
  status: AccountStatus
  send_as: string[]
  has_password: boolean
  aliases: string[]
}

const SELECT_ACCOUNT = `
  select a.id::text as id, a.address, a.mailhost, a.status, a.send_as,
         (a.password_hash is not null and a.password_hash <> '') as has_password,
         coalesce((select array_agg(x.address) from account_addresses x where x.account_id = a.id), '{}') as aliases
    from accounts a`

// Who else owns any of these addresses: another account (by its address or an alternate), or
// an alias. $2 is the account being changed (null on create), whose own addresses are no clash.
const FIND_CLAIMS = `
  select a.address, 'account' as owner from accounts a
   where a.address = any($1::text[]) and a.id is distinct from $2::bigint
  union all
  select x.address, 'account' from account_addresses x
   where x.address = any($1::text[]) and x.account_id is distinct from $2::bigint
  union all
  select distinct al.address, 'alias' from aliases al where al.address = any($1::text[])
  order by 1`

/**
 * Serialises every transaction that claims one of these addresses until it ends. Taken in
 * sorted order, so two transactions claiming overlapping sets cannot deadlock. Anything else
 * that inserts addresses (aliases included) should take the same locks before it checks. Two
 * addresses whose hashes collide only wait for each other; nothing is ever wrongly refused.
 */
export async function lockAddresses(tx: Queryable, addresses: Iterable<string>): Promise<void> {
  for (const address of [...new Set(addresses)].sort(byteOrder)) {
    await tx.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [address])
  }
}

export class SqlAccountWriter implements AccountWriter {
  readonly inStore = true
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  get(address: string): Promise<AccountRecord | undefined> {
    return this.#ask(async () => {
      const { rows } = await this.#store.query<AccountRow>(`${SELECT_ACCOUNT} where a.address = $1`, [address])
      return rows[0] === undefined ? undefined : toRecord(rows[0])
    })
  }

  list(query: AccountQuery): Promise<AccountPage> {
    if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_PAGE) {
      return Promise.reject(new AdminError(ErrorCodes.VALIDATION, `limit must be an integer from 1 to ${MAX_PAGE}`))
    }
    const where: string[] = []
    const params: unknown[] = []
    const param = (value: unknown) => `$${params.push(value)}`
    if (query.domain !== undefined) {
      // The exact domain after the last '@', without LIKE: '_' and '%' are legal in domains.
      const d = param(query.domain)
      where.push(`right(a.address, length(${d}::text) + 1) = '@' || ${d}::text`)
    }
    if (query.mailHosts !== undefined) where.push(`lower(a.mailhost) = any(${param(query.mailHosts.map((h) => h.toLowerCase()))}::text[])`)
    if (query.status !== undefined) where.push(`a.status = ${param(query.status)}`)
    // Byte order whatever the database's collation, so pages follow the order the API promises
    // (on a database not created with the C locale this sorts rather than walks the index).
    if (query.after !== undefined) where.push(`a.address collate "C" > ${param(query.after)}`)
    const sql = `${SELECT_ACCOUNT} ${where.length > 0 ? `where ${where.join(' and ')}` : ''}
      order by a.address collate "C" limit ${param(query.limit + 1)}`
    return this.#ask(async () => {
      const { rows } = await this.#store.query<AccountRow>(sql, params)
      const accounts = rows.slice(0, query.limit).map(toRecord)
      return rows.length > query.limit ? { accounts, next: accounts.at(-1)!.address } : { accounts }
    })
  }

  create(account: NewAccount, outer?: Queryable): Promise<AccountRecord> {
    const aliases = otherAddresses(account.aliases, account.address)
    return this.#ask(() =>
      this.#within(outer, async (tx) => {
        const claimed = [account.address, ...aliases]
        await lockAddresses(tx, claimed)
        await assertUnclaimed(tx, claimed, null)
        const { rows } = await tx.query<{ id: string }>(
          `insert into accounts (address, mailhost, status, password_hash, send_as)
           values ($1, $2, $3, $4, $5::text[]) returning id::text as id`,
          [account.address, account.mailHost, account.status, account.passwordHash ?? null, sortedUnique(account.sendAs)],
        )
        const id = rows[0]!.id
        await insertAddresses(tx, id, aliases)
        return loadById(tx, id)
      }),
    )
  }

  update(address: string, changes: AccountChanges, outer?: Queryable): Promise<{ before: AccountRecord; after: AccountRecord }> {
    return this.#ask(() =>
      this.#within(outer, async (tx) => {
        // The row lock makes concurrent updates of one account queue up, so each one's
        // `before` is what the previous one left (the audit log depends on it).
        const { rows } = await tx.query<AccountRow>(`${SELECT_ACCOUNT} where a.address = $1 for update of a`, [address])
        if (rows[0] === undefined) throw notFound(address)
        const before = toRecord(rows[0])
        const id = rows[0].id

        let added: string[] = []
        let removed: string[] = []
        if (changes.aliases !== undefined) {
          const wanted = otherAddresses(changes.aliases, address)
          added = wanted.filter((a) => !before.aliases.includes(a))
          removed = before.aliases.filter((a) => !wanted.includes(a))
          // Only addresses this account does not own yet are claimed; keeping one it has is no clash.
          await lockAddresses(tx, added)
          await assertUnclaimed(tx, added, id)
        }

        const params: unknown[] = [id]
        const set = (column: string, value: unknown, cast = '') => `${column} = $${params.push(value)}${cast}`
        const sets = ['updated_at = now()']
        if (changes.mailHost !== undefined) sets.push(set('mailhost', changes.mailHost))
        if (changes.status !== undefined) sets.push(set('status', changes.status))
        if (changes.passwordHash !== undefined) sets.push(set('password_hash', changes.passwordHash))
        if (changes.sendAs !== undefined) sets.push(set('send_as', sortedUnique(changes.sendAs), '::text[]'))
        await tx.query(`update accounts set ${sets.join(', ')} where id = $1`, params)

        if (removed.length > 0) {
          await tx.query('delete from account_addresses where account_id = $1 and address = any($2::text[])', [id, removed])
        }
        await insertAddresses(tx, id, added)
        return { before, after: await loadById(tx, id) }
      }),
    )
  }

  delete(address: string, outer?: Queryable): Promise<AccountRecord> {
    return this.#ask(() =>
      this.#within(outer, async (tx) => {
        const { rows } = await tx.query<AccountRow>(`${SELECT_ACCOUNT} where a.address = $1 for update of a`, [address])
        if (rows[0] === undefined) throw notFound(address)
        // account_addresses rows go with it (on delete cascade).
        await tx.query('delete from accounts where id = $1', [rows[0].id])
        return toRecord(rows[0])
      }),
    )
  }

  passwordHash(address: string): Promise<string | undefined> {
    return this.#ask(async () => {
      const { rows } = await this.#store.query<{ password_hash: string | null }>('select password_hash from accounts where address = $1', [address])
      return rows[0]?.password_hash ?? undefined
    })
  }

  countByMailHost(): Promise<Map<string, number>> {
    return this.#ask(async () => {
      const { rows } = await this.#store.query<{ mailhost: string; n: number }>(
        'select lower(mailhost) as mailhost, count(*)::int as n from accounts group by 1',
      )
      return new Map(rows.map((r) => [r.mailhost, r.n]))
    })
  }

  /** The store is shared with the directory, the registry and the admin API; the daemon closes it. */
  async close(): Promise<void> {}

  /** The caller's transaction (the write is part of a larger one), or one of its own. */
  #within<T>(outer: Queryable | undefined, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return outer === undefined ? this.#store.transaction(fn) : fn(outer)
  }

  /**
   * Refusals (AdminError) pass through; a unique violation is a claim that raced past the
   * locks (a writer that does not take them); anything else the store throws means it did not
   * answer, which must never look like "no such account".
   */
  async #ask<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (e) {
      if (e instanceof AdminError) throw e
      const state = sqlState(e)
      if (state === '23505') {
        const taken = /\(address\)=\((.*)\)/.exec(detail(e))?.[1]
        throw new AdminError(ErrorCodes.ADDRESS_TAKEN, `${taken ?? 'an address'} is already taken (claimed concurrently)`, { cause: e })
      }
      // Other integrity violations are the schema's CHECK constraints refusing a value (an
      // address without '@', an empty mailHost): the request's fault, not the store's.
      if (state?.startsWith('23')) throw new AdminError(ErrorCodes.VALIDATION, `SQL directory refused the values: ${describeError(e)}`, { cause: e })
      throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `SQL directory: ${describeError(e)}`, { cause: e })
    }
  }
}

async function assertUnclaimed(tx: Queryable, addresses: readonly string[], accountId: string | null): Promise<void> {
  if (addresses.length === 0) return
  const { rows } = await tx.query<{ address: string; owner: 'account' | 'alias' }>(FIND_CLAIMS, [addresses, accountId])
  const clash = rows[0]
  if (clash === undefined) return
  const what = clash.owner === 'account' ? 'an address of another account' : 'an alias'
  throw new AdminError(ErrorCodes.ADDRESS_TAKEN, `${clash.address} is already ${what}`)
}

async function insertAddresses(tx: Queryable, accountId: string, addresses: readonly string[]): Promise<void> {
  if (addresses.length === 0) return
  await tx.query('insert into account_addresses (address, account_id) select unnest($1::text[]), $2::bigint', [addresses, accountId])
}

async function loadById(tx: Queryable, id: string): Promise<AccountRecord> {
  const { rows } = await tx.query<AccountRow>(`${SELECT_ACCOUNT} where a.id = $1::bigint`, [id])
  return toRecord(rows[0]!)
}

function toRecord(r: AccountRow): AccountRecord {
  return {
    id: `${ID_PREFIX}${r.id}`,
    address: r.address,
    mailHost: r.mailhost,
    status: r.status,
    aliases: [...r.aliases].sort(byteOrder),
    sendAs: [...r.send_as].sort(byteOrder),
    hasPassword: r.has_password,
  }
}

/** Aliases as a set: duplicates and the primary address itself dropped (both would be no-ops). */
function otherAddresses(aliases: readonly string[], primary: string): string[] {
  return sortedUnique(aliases).filter((a) => a !== primary)
}

function sortedUnique(values: readonly string[]): string[] {
  return [...new Set(values)].sort(byteOrder)
}

const notFound = (address: string) => new AdminError(ErrorCodes.NOT_FOUND, `no account has the primary address ${address}`)

/** The SQLSTATE of a pg or PGlite error (both carry it as `code`). */
function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

function detail(e: unknown): string {
  const d = (e as { detail?: unknown }).detail
  return typeof d === 'string' ? d : ''
}
