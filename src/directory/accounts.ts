// Writing accounts: the admin API's side of a directory (LDAP through an admin bind, or the SQL
// tables). Lookups never use this interface; they go through Directory.findByAddress, so a
// broken admin path can never change what Postfix is told about existing mail.

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
  /** The account whose *primary* address this is, or undefined. */
  get(address: string): Promise<AccountRecord | undefined>
  /** Accounts in primary-address order (byte order of the canonical address). */
  list(query: AccountQuery): Promise<AccountPage>
  /**
   * Creates the account. Throws AdminError ADDRESS_TAKEN when the primary address or an alias is
   * already the primary address or alias of an account (callers check aliases and other entry
   * kinds through the Directory first; this is the last line against races).
   */
  create(account: NewAccount): Promise<AccountRecord>
  /** Throws AdminError NOT_FOUND when no account has this primary address; ADDRESS_TAKEN as create. */
  update(address: string, changes: AccountChanges): Promise<{ before: AccountRecord; after: AccountRecord }>
  /** Returns what was deleted; AdminError NOT_FOUND when nothing was. */
  delete(address: string): Promise<AccountRecord>
  /** Accounts per mailHost value, keys lowercased. Used for least-used placement and backend counts. */
  countByMailHost(): Promise<Map<string, number>>
  close(): Promise<void>
}
