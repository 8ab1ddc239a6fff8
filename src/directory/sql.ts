// The SQL directory: accounts, their alternate addresses and aliases in the store's own tables.
// One parameterised query answers "who owns exactly this address?"; the address is always a
// bound parameter compared with `=`, so quotes, `%`, `_` and backslashes mean nothing special.

import { inlinePasswords, UnsupportedSchemeError, type PasswordHasher } from '../auth/passwords.js'
import { DirectoryDataError, DirectoryError, ErrorCodes, describeError } from '../errors.js'
import type { Store } from '../store/store.js'
import type { AccountEntry, AccountStatus, Directory, DirectoryEntry } from './directory.js'

const ID_PREFIX = 'sql:account:'

interface OwnerRow {
  kind: 'account' | 'alias'
  id: string | null
  canonical: string | null
  mailhost: string | null
  status: AccountStatus | null
  send_as: string[] | null
  targets: string[] | null
}

// An account matching by its address and by an alternate is one row (the OR is in one WHERE);
// two accounts, or an account and an alias, owning the address are separate rows, which the
// resolver reports as duplicates. All targets of an alias come back as one row.
const FIND_OWNERS = `
  select 'account' as kind, a.id::text as id, a.address as canonical, a.mailhost, a.status,
         a.send_as, null::text[] as targets
    from accounts a
   where a.address = $1
      or a.id in (select x.account_id from account_addresses x where x.address = $1)
  union all
  select 'alias', null, null, null, null, null, array_agg(al.target order by al.target)
    from aliases al
   where al.address = $1
  having count(*) > 0
  order by kind, id`

export class SqlDirectory implements Directory {
  readonly kind = 'sql'
  readonly #store: Store
  readonly #passwords: PasswordHasher

  /** `passwords`: the daemon's worker pool; without one (tests, tools) hashes are checked inline. */
  constructor(store: Store, passwords: PasswordHasher = inlinePasswords) {
    this.#store = store
    this.#passwords = passwords
  }

  async findByAddress(address: string, signal?: AbortSignal): Promise<DirectoryEntry[]> {
    const { rows } = await this.#ask(() => this.#store.query<OwnerRow>(FIND_OWNERS, [address]), signal)
    return rows.map((r): DirectoryEntry =>
      r.kind === 'account'
        ? { kind: 'account', id: `${ID_PREFIX}${r.id}`, canonical: r.canonical!, mailHost: r.mailhost!, status: r.status!, sendAs: r.send_as ?? [] }
        : { kind: 'alias', id: `sql:alias:${address}`, targets: r.targets! },
    )
  }

  async verifyPassword(account: AccountEntry, password: string, signal?: AbortSignal): Promise<'ok' | 'mismatch'> {
    const id = account.id.startsWith(ID_PREFIX) ? account.id.slice(ID_PREFIX.length) : undefined
    if (id === undefined) return 'mismatch'
    const { rows } = await this.#ask(
      () => this.#store.query<{ password_hash: string | null }>('select password_hash from accounts where id = $1', [id]),
      signal,
    )
    const stored = rows[0]?.password_hash
    // No row (deleted meanwhile) or no password set: nobody can log in as this account.
    if (stored === undefined || stored === null || stored === '') return 'mismatch'
    try {
      return await this.#passwords.verify(stored, password, signal)
    } catch (e) {
      if (e instanceof UnsupportedSchemeError) {
        throw new DirectoryDataError(ErrorCodes.DIRECTORY_DATA, `password of ${account.id} uses a scheme mailhostd cannot verify`)
      }
      throw e
    }
  }

  async ping(signal?: AbortSignal): Promise<void> {
    await this.#ask(() => this.#store.query('select 1'), signal)
  }

  /** The store is shared with the registry and the admin API; the daemon closes it last. */
  async close(): Promise<void> {}

  /**
   * Turns every store failure into a DirectoryError (never an empty answer), and stops waiting
   * when the caller's deadline fires; the store's own statement timeout ends the query itself.
   */
  async #ask<T>(run: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw aborted()
    const failed = (e: unknown) =>
      new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `SQL directory: ${describeError(e)}`, { cause: e })
    const query = run()
    if (signal === undefined) return query.catch((e: unknown) => Promise.reject(failed(e)))
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(aborted())
      signal.addEventListener('abort', onAbort, { once: true })
      query.then(
        (v) => {
          signal.removeEventListener('abort', onAbort)
          resolve(v)
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort)
          reject(failed(e))
        },
      )
    })
  }
}

const aborted = () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'SQL directory: query abandoned at the lookup deadline')
