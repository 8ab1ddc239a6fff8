// The one interface every directory type implements (src/directory/drivers/). The resolver only ever asks
// "who owns exactly this address?"; extension stripping, alias domains and catch-alls are
// the resolver's job, so a directory stays a thin, escaped query.

/** What an account may be; the store's accounts_status CHECK and the admin API's schema derive from it. */
export const ACCOUNT_STATUSES = ['active', 'disabled'] as const
export type AccountStatus = (typeof ACCOUNT_STATUSES)[number]

export interface AccountEntry {
  readonly kind: 'account'
  /** Stable identity for logs and duplicate detection: the LDAP DN or `sql:account:<id>`. */
  readonly id: string
  /**
   * The canonical address of the mailbox: LDAP mailRoutingAddress, else the primary address
   * attribute (`mail`); SQL accounts.address. Undefined when the entry names none, in which case
   * the matched address is its own canonical form.
   */
  readonly canonical: string | undefined
  /** The mailHost value as stored (a backend's mailHost name, or an arbitrary host). */
  readonly mailHost: string
  readonly status: AccountStatus
  /**
   * Extra envelope senders the account may use on submission (raw, not yet canonical): exact
   * addresses, or `@domain` for every address in a domain. Empty for most accounts.
   */
  readonly sendAs: readonly string[]
}

export interface AliasEntry {
  readonly kind: 'alias'
  readonly id: string
  /** Raw target addresses, not yet canonicalised. Never empty. */
  readonly targets: readonly string[]
}

export type DirectoryEntry = AccountEntry | AliasEntry

export interface Directory {
  /** The directory type (its driver's name): readiness, the status page and metric labels show it. */
  readonly kind: string
  /**
   * Every entry that owns `address` (already canonical: trimmed, domain lowercased, ASCII).
   * An empty array is an authoritative miss. Throws DirectoryError when the directory cannot
   * answer and DirectoryDataError when an entry is unusable; never returns [] on failure.
   */
  findByAddress(address: string, signal?: AbortSignal): Promise<DirectoryEntry[]>
  /**
   * Checks a login password for an account this directory returned. `ok` or `mismatch`;
   * throws DirectoryError when the directory cannot answer and DirectoryDataError when the
   * stored password is unusable (unknown scheme): never `mismatch` on failure.
   */
  verifyPassword(account: AccountEntry, password: string, signal?: AbortSignal): Promise<'ok' | 'mismatch'>
  /** Cheap reachability probe (readiness, circuit half-open). Throws DirectoryError. */
  ping(signal?: AbortSignal): Promise<void>
  close(): Promise<void>
}
