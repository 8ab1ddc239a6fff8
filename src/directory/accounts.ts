// Writing accounts: the admin API's side of a directory (LDAP through an admin bind, or the SQL
// tables). Lookups never use this interface; they go through Directory.findByAddress, so a
// broken admin path can never change what Postfix is told about existing mail.

import type { Scheme } from '../auth/passwords.js'
import type { Queryable } from '../store/store.js'
import type { AccountStatus } from './directory.js'

/** One account as the admin API shows it. Addresses are canonical (lowercase ASCII). */
export interface AccountRecord {
  /** Stable identity, the same as AccountEntry.id: the LDAP DN, or `sql:account:<n>`. */
  readonly id: string
  /** The primary address (LDAP `mail`, SQL accounts.address). */
  readonly address: string
  /** The mailHost value as stored (a backend's mailHost name or id). */
  readonly mailHost: string
  readonly status: AccountStatus
  /** Further addresses the account owns (LDAP mailLocalAddress values besides the primary one; SQL account_addresses). Sorted. */
  readonly aliases: readonly string[]
  /** Extra sender addresses (`user@domain` or `@domain`). Sorted. */
  readonly sendAs: readonly string[]
  /** Whether a password is set (the hash itself never leaves the writer). */
  readonly hasPassword: boolean
}

export interface NewAccount {
  readonly address: string
  readonly mailHost: string
  readonly status: AccountStatus
  /** Already hashed in Dovecot syntax (`{SCHEME}...`); undefined: no password (no logins). */
  readonly passwordHash?: string
  readonly aliases: readonly string[]
  readonly sendAs: readonly string[]
}

/** Fields to change; absent fields stay as they are. `passwordHash: null` removes the password. */
export interface AccountChanges {
  readonly mailHost?: string
  readonly status?: AccountStatus
  readonly passwordHash?: string | null
  readonly aliases?: readonly string[]
  readonly sendAs?: readonly string[]
}

export interface AccountQuery {
  /** Only accounts whose primary address is in this domain (canonical). */
  readonly domain?: string
  /** Only accounts whose mailHost is one of these (compared case-insensitively). */
  readonly mailHosts?: readonly string[]
  readonly status?: AccountStatus
  /** Keyset pagination: only primary addresses sorting after this one. */
  readonly after?: string
  /** 1..1000 */
  readonly limit: number
}

export interface AccountPage {
  readonly accounts: AccountRecord[]
  /** Pass as `after` for the next page; undefined on the last page. */
  readonly next?: string
}

export interface AccountWriter {
  /**
   * True when the directory is the store's own database (the SQL directory): writes then take
   * the caller's transaction (`tx`), so the account, its audit entry and the answer of its
   * Idempotency-Key commit together. False for a directory elsewhere (LDAP), whose writes the
   * admin announces as intents first (src/admin/intents.ts) and which ignores `tx`.
   */
  readonly inStore: boolean
  /** The account whose *primary* address this is, or undefined. */
  get(address: string): Promise<AccountRecord | undefined>
  /** Accounts in primary-address order (byte order of the canonical address). */
  list(query: AccountQuery): Promise<AccountPage>
  /**
   * Creates the account. Throws AdminError ADDRESS_TAKEN when the primary address or an alias is
   * already the primary address or alias of an account (callers check aliases and other entry
   * kinds through the Directory first; this is the last line against races).
   */
  create(account: NewAccount, tx?: Queryable): Promise<AccountRecord>
  /** Throws AdminError NOT_FOUND when no account has this primary address; ADDRESS_TAKEN as create. */
  update(address: string, changes: AccountChanges, tx?: Queryable): Promise<{ before: AccountRecord; after: AccountRecord }>
  /** Returns what was deleted; AdminError NOT_FOUND when nothing was. */
  delete(address: string, tx?: Queryable): Promise<AccountRecord>
  /**
   * The stored password hash of the account with this primary address (undefined: none, or no
   * such account). Only crash recovery asks, to tell whether a password change landed; the hash
   * never leaves the admin service.
   */
  passwordHash(address: string): Promise<string | undefined>
  /** Accounts per mailHost value, keys lowercased. Used for least-used placement and backend counts. */
  countByMailHost(): Promise<Map<string, number>>
  close(): Promise<void>
}

/** What a directory type decides about the admin API's account writes besides the writer itself. */
export interface WriteTerms {
  /** The scheme new passwords get while admin.passwordScheme is auto. */
  readonly passwordScheme: Scheme
  /**
   * How long after it was opened an intent may be judged (src/admin/intents.ts): the directory's
   * operation timeout; 0 when the writes commit in the store's own transaction.
   */
  readonly intentGraceMs: number
  /** Why account writes answer 501 when the directory has no writer. */
  readonly readOnly?: string
}
