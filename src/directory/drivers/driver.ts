// What a directory type provides, declared in one module per type (ldap.ts, sql.ts) and found by
// directory.type in one table (index.ts). The daemon asks the table once; nothing else needs to
// know which directory it talks to, so a new type is one driver file and one config variant.

import type { TObject, Static } from 'typebox'
import { Value } from 'typebox/value'
import type { PasswordPool } from '../../auth/password-pool.js'
import type { AddressOptions } from '../../resolve/address.js'
import { ConfigError } from '../../errors.js'
import type { Logger } from '../../log.js'
import type { Store } from '../../store/store.js'
import type { AccountWriter, WriteTerms } from '../accounts.js'
import type { Directory } from '../directory.js'
import type { MailboxAddresses } from '../mailbox-addresses.js'

/** The `directory` section as validated: its type and that type's keys. */
export interface DirectoryConfigOf {
  readonly type: string
}

/** What a driver may build its parts from; the daemon owns each of them. */
export interface DriverContext {
  readonly store: Store
  readonly logger: Logger
  /** Worker threads for the costly password schemes (login checks). */
  readonly passwords: PasswordPool
  readonly addresses: AddressOptions
}

/** Where a change watcher reports what changed behind mailhostd's back. */
export interface ChangeSink {
  /** Entries changed: evict what these addresses and entry ids answered. */
  entries(addresses: string[], ids: string[]): void
  /** Changes may have been missed: every cached answer is suspect. */
  resync(): void
}

export interface ChangeWatcher {
  start(): void
  stop(): void
}

/** The admin API's side: a writer, or none (writes then answer 501, terms.readOnly says why). */
export interface AccountWrites {
  readonly writer: AccountWriter | undefined
  readonly terms: WriteTerms
}

/** What a directory type builds, from its own configuration `C`. */
interface DriverParts<C extends DirectoryConfigOf> {
  /** Lookups and login password checks. */
  lookups(config: C, context: DriverContext): Directory
  /** Every mailbox address, page by page, for the cache warm-up (cache.warmup). */
  mailboxAddresses(config: C, context: DriverContext): MailboxAddresses
  /** The admin API's account writes. */
  accountWrites(config: C, context: DriverContext): AccountWrites
  /** Changes made by other tools, when the type can see them and the configuration asks; else undefined. */
  watcher(config: C, context: DriverContext, sink: ChangeSink): ChangeWatcher | undefined
}

/** One directory type as its module declares it, typed by its config variant `S`. */
export interface DriverSpec<S extends TObject> extends DriverParts<Static<S> & DirectoryConfigOf> {
  /** The directory.type value; also the directory's kind in readiness, the status page and metrics. */
  readonly name: string
  /** Validates (and fills the defaults of) `directory` when its type is `name`. */
  readonly config: S
}

/** A driver as the table holds it: any `directory` section, checked against its own schema first. */
export interface DirectoryDriver extends DriverParts<DirectoryConfigOf> {
  readonly name: string
  readonly config: TObject
}

/**
 * Makes a driver from its typed spec. Every part is built from a section its schema accepts, so
 * the narrowing to `Static<S>` is checked, never assumed.
 */
export function defineDirectoryDriver<S extends TObject>(spec: DriverSpec<S>): DirectoryDriver {
  const own = (config: DirectoryConfigOf): Static<S> & DirectoryConfigOf => {
    if (!Value.Check(spec.config, config)) throw new ConfigError('directory', `not a valid ${spec.name} directory section`)
    return config
  }
  return {
    name: spec.name,
    config: spec.config,
    lookups: (config, context) => spec.lookups(own(config), context),
    mailboxAddresses: (config, context) => spec.mailboxAddresses(own(config), context),
    accountWrites: (config, context) => spec.accountWrites(own(config), context),
    watcher: (config, context, sink) => spec.watcher(own(config), context, sink),
  }
}
