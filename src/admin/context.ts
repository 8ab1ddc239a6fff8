// What the admin services share: the store (registry, moves, audit), the directory (to read who
// owns an address), the account writer when the directory takes writes, and the change bus
// that tells every instance what changed.

import type { PasswordHasher } from '../auth/passwords.js'
import type { Change, ChangeBus } from '../cluster/changes.js'
import type { Instance } from '../cluster/presence.js'
import type { Config } from '../config/schema.js'
import type { AccountWriter, WriteTerms } from '../directory/accounts.js'
import type { Directory } from '../directory/directory.js'
import { AdminError, ErrorCodes } from '../errors.js'
import type { Logger } from '../log.js'
import type { Registry } from '../resolve/registry.js'
import type { Queryable, Store } from '../store/store.js'
import type { AccountCounts } from './account-counts.js'
import { Intents } from './intents.js'

export interface AdminDeps {
  readonly store: Store
  readonly bus: ChangeBus
  readonly registry: () => Registry
  readonly directory: Pick<Directory, 'findByAddress'>
  /** Undefined when the directory is read-only (LDAP without directory.ldap.admin). */
  readonly writer: AccountWriter | undefined
  /** What the directory type decides about writes: the default password scheme, the intents' grace, why it is read-only. */
  readonly terms: WriteTerms
  readonly counts: AccountCounts | undefined
  readonly config: Config
  readonly logger: Logger
  /** This process in the store: the owner of the keys, intents and hooks it claims. */
  readonly instance: Instance
  /**
   * Applies a change to this instance at once (cache eviction, registry or moves reload), so a
   * client reads its own write here without waiting for the notification to come back.
   */
  readonly apply: (change: Change) => Promise<void>
  /** Injectable for placement tests. */
  readonly random?: () => number
  /** Hashes new passwords: the daemon's worker pool; without one (tests) they are hashed inline. */
  readonly passwords?: PasswordHasher
}

/** The intents of this instance's admin writes (see intents.ts), judged after the directory's write timeout. */
export function intentsOf(d: AdminDeps): Intents {
  return new Intents(d.store, d.instance, d.terms.intentGraceMs)
}

export function writable(d: AdminDeps): { writer: AccountWriter; counts: AccountCounts } {
  if (!d.writer || !d.counts) {
    throw new AdminError(ErrorCodes.DIRECTORY_READ_ONLY, d.terms.readOnly ?? 'the directory is read-only for mailhostd')
  }
  return { writer: d.writer, counts: d.counts }
}

/** Postgres unique and foreign-key violations, which the admin API reports as conflicts. */
export function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** Tells every instance (at the commit of `tx`), then this one at once. Call after the commit. */
export async function applied(d: AdminDeps, change: Change): Promise<void> {
  try {
    await d.apply(change)
  } catch (e) {
    d.logger.warn({ change: change.kind, err: String(e) }, 'applying a change locally failed; the notification will retry it')
  }
}

/** Where one kind of admin object lives: its table, the columns a view reads, and its key. */
export interface ObjectTable {
  readonly table: string
  readonly columns: string
  readonly key: string
  /** What the NOT_FOUND answer calls it: `no <what> <key>`. */
  readonly what: string
}

/** The row of `t` whose key is `value`, locked for update with `lock`; NOT_FOUND when there is none. */
export async function rowOf<R>(db: Queryable, t: ObjectTable, value: string | number, lock = false): Promise<R> {
  const { rows } = await db.query<R>(`select ${t.columns} from ${t.table} where ${t.key} = $1${lock ? ' for update' : ''}`, [value])
  if (!rows[0]) throw new AdminError(ErrorCodes.NOT_FOUND, `no ${t.what} ${value}`)
  return rows[0]
}
