// Every address a mailbox in the directory answers to (its primary address and its alternates),
// read page by page, for the cache warm-up (cache.warmup). Aliases and catch-alls are left out:
// they are resolved when first asked, like every other key.

import { AndFilter, OrFilter, PresenceFilter, type Client, type Entry, type Filter, type SearchResult } from 'ldapts'
import { toMs } from '../config/duration.js'
import type { LdapConfig } from '../config/schema.js'
import { DirectoryError, ErrorCodes, describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Store } from '../store/store.js'
import { ldapConnection, openLdapPool, parseExtraFilter } from './ldap-config.js'
import type { DirectoryEntry } from './directory.js'
import { attributeValues, entryMapping, requestedAttributes, toDirectoryEntry, type LdapEntryMapping } from './ldap-entry.js'
import type { LdapPool } from './ldap-pool.js'

export interface MailboxAddresses {
  /**
   * Calls `onPage` with each page of addresses as stored (not yet canonical), until the last
   * page or until `signal` aborts. Throws a DirectoryError when the directory cannot be read;
   * the pages already delivered stay delivered.
   */
  each(onPage: (addresses: readonly string[]) => void, signal: AbortSignal): Promise<void>
  /**
   * When the source can: every entry that could own an address, each with the addresses it
   * owns and what a lookup would make of it, so the warm-up can build the answers of whole
   * pages without a query per address. Same contract as each() otherwise.
   */
  eachEntry?(onPage: (entries: readonly ListedEntry[]) => void, signal: AbortSignal): Promise<void>
  close(): Promise<void>
}

/** One directory entry as the warm-up's bulk listing reads it. */
export interface ListedEntry {
  readonly id: string
  /** Every value of the address attributes, as stored (trimmed, not canonical). */
  readonly addresses: readonly string[]
  /** Whether it has a mailHost: a mailbox, whose addresses the warm-up loads. */
  readonly mailbox: boolean
  /** The entry as a lookup sees it; undefined when a lookup would refuse its data. */
  readonly entry: DirectoryEntry | undefined
}

/** Rows (SQL) or entries (LDAP) per page. */
export const PAGE_SIZE = 1000

/** The SQL directory's accounts, in id order (the primary key walks the index; no sort). */
export class SqlMailboxAddresses implements MailboxAddresses {
  constructor(private readonly store: Store) {}

  async each(onPage: (addresses: readonly string[]) => void, signal: AbortSignal): Promise<void> {
    let after = '0'
    while (!signal.aborted) {
      let rows: { id: string; address: string; alternates: string[] }[]
      try {
        ;({ rows } = await this.store.query<{ id: string; address: string; alternates: string[] }>(
          `select a.id::text as id, a.address,
                  coalesce((select array_agg(x.address) from account_addresses x where x.account_id = a.id), '{}') as alternates
             from accounts a
            where a.id > $1::bigint
            order by a.id
            limit $2`,
          [after, PAGE_SIZE],
        ))
      } catch (e) {
        throw new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, `listing accounts failed: ${describeError(e)}`, { cause: e })
      }
      if (rows.length === 0) return
      onPage(rows.flatMap((r) => [r.address, ...r.alternates]))
      if (rows.length < PAGE_SIZE) return
      after = rows[rows.length - 1]!.id
    }
  }

  /** The store belongs to the daemon. */
  async close(): Promise<void> {}
}

/**
 * The LDAP entries that have a mailHost (mailboxes; alias entries have none) within the
 * configured base, scope and filter, through the service account, with a paged search. Each
 * page is its own operation with the per-operation timeout. A service account other than the
 * rootdn is limited to the server's size limit (500 on OpenLDAP) in total unless slapd.conf
 * grants it more (`limits dn.exact="..." size.prtotal=unlimited`); past it the listing stops
 * with an error, and what was read is still loaded.
 */
export class LdapMailboxAddresses implements MailboxAddresses {
  readonly #config: LdapConfig
  readonly #pool: LdapPool
  readonly #filter: Filter
  readonly #attributes: string[]
  /** Entries with any address attribute: everything a lookup's search could return. */
  readonly #ownersFilter: Filter
  readonly #mapping: LdapEntryMapping
  readonly #entryAttributes: string[]

  constructor(config: LdapConfig, logger: Logger) {
    this.#config = config
    const extra = parseExtraFilter(config.filter)
    const hasMailHost = new PresenceFilter({ attribute: config.attributes.mailHost })
    this.#filter = extra ? new AndFilter({ filters: [extra, hasMailHost] }) : hasMailHost
    this.#attributes = [...new Set(config.attributes.address)]
    const hasAddress = new OrFilter({ filters: this.#attributes.map((attribute) => new PresenceFilter({ attribute })) })
    this.#ownersFilter = extra ? new AndFilter({ filters: [extra, hasAddress] }) : hasAddress
    this.#mapping = entryMapping(config)
    this.#entryAttributes = [...new Set([...this.#attributes, ...requestedAttributes(this.#mapping)])]
    // A page of a large directory may take longer than one lookup may: nobody waits on it.
    this.#pool = openLdapPool(
      ldapConnection(config, Math.max(toMs(config.timeout), 30_000)),
      { bindDN: config.bindDN, bindPassword: config.bindPassword, size: 1 },
      logger.child({ component: 'ldap-warmup' }),
    )
  }

  async each(onPage: (addresses: readonly string[]) => void, signal: AbortSignal): Promise<void> {
    await this.#walk(this.#filter, this.#attributes, signal, (entries) =>
      onPage(entries.flatMap((e: Entry) => this.#attributes.flatMap((a) => attributeValues(e, a)))),
    )
  }

  async eachEntry(onPage: (entries: readonly ListedEntry[]) => void, signal: AbortSignal): Promise<void> {
    await this.#walk(this.#ownersFilter, this.#entryAttributes, signal, (entries) => onPage(entries.map((e) => this.#listed(e))))
  }

  #listed(e: Entry): ListedEntry {
    let entry: DirectoryEntry | undefined
    try {
      entry = toDirectoryEntry(e, this.#mapping)
    } catch {
      // The lookup of any of its addresses reports it; the warm-up leaves them to that path.
      entry = undefined
    }
    return {
      id: e.dn,
      addresses: [...new Set(this.#attributes.flatMap((a) => valuesWithSubtypes(e, a)))],
      mailbox: attributeValues(e, this.#mapping.mailHost).length > 0,
      entry,
    }
  }

  async #walk(filter: Filter, attributes: string[], signal: AbortSignal, onPage: (entries: Entry[]) => void): Promise<void> {
    let pages: AsyncGenerator<SearchResult> | undefined
    const next = (client: Client) => {
      pages ??= client.searchPaginated(this.#config.baseDN, {
        scope: this.#config.scope,
        filter,
        attributes,
        derefAliases: 'never',
        paged: { pageSize: PAGE_SIZE },
      })
      return pages.next()
    }
    while (!signal.aborted) {
      const page = await this.#pool.run('list mailboxes', next, signal)
      if (page.done === true) return
      onPage(page.value.searchEntries)
    }
  }

  close(): Promise<void> {
    return this.#pool.close()
  }
}

/**
 * Values of an attribute and of its subtypes (`mail;lang-en`): an equality search for `mail`
 * matches those too, so for telling owners apart they count.
 */
function valuesWithSubtypes(entry: Entry, attribute: string): string[] {
  const lc = attribute.toLowerCase()
  const names = Object.keys(entry).filter((n) => n !== 'dn' && n.split(';')[0]!.toLowerCase() === lc)
  return names.flatMap((n) => attributeValues(entry, n))
}
