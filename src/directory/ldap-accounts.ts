// Writing accounts into an LDAP directory through a separate admin bind (directory.ldap.admin),
// the admin API's side of LdapDirectory. Lookups keep their read-only service account: a broken
// or over-privileged admin path never touches what Postfix is told. Filters are ldapts filter
// objects only, and new DNs are built with escaped values (ldap-dn.ts).
//
// An account entry, with the default attribute names:
//   mail: the primary address                  mailLocalAddress: the primary address, then aliases
//   mailHost: where it lives                   mailhostdAccountStatus: active | disabled
//   mailhostdSendAs: extra sender addresses    userPassword: the hash as given ({SSHA512}...)
// Entries without mailHost are aliases (mailRoutingAddress), never accounts.

import {
  AndFilter,
  Attribute,
  Change,
  EqualityFilter,
  NotFilter,
  OrFilter,
  PresenceFilter,
  ResultCodeError,
  SubstringFilter,
  type Client,
  type Entry,
  type Filter,
  type SearchOptions,
  type SearchResult,
} from 'ldapts'
import type { LdapConfig } from '../config/schema.js'
import { AdminError, ConfigError, DirectoryDataError, ErrorCodes } from '../errors.js'
import type { Logger } from '../log.js'
import { ldapConnection, openLdapPool, parseExtraFilter } from './ldap-config.js'
import type { AccountChanges, AccountPage, AccountQuery, AccountRecord, AccountWriter, NewAccount } from './accounts.js'
import { byteOrder } from './byte-order.js'
import type { AccountStatus } from './directory.js'
import { AccountDnTemplate, addressParts } from './ldap-dn.js'
import { attributeValues, entryMapping, sameName, statusOf, uniqueNames, writtenStatus, type LdapEntryMapping } from './ldap-entry.js'
import { LdapPool } from './ldap-pool.js'

const MAX_PAGE = 1000
/** LDAP page size of the full searches behind list and countByMailHost. */
const PAGE_SIZE = 500
/** Entries one address check reads at most: one other owner is enough to refuse. */
const CLAIM_CHECK_LIMIT = 10
/** Entries sharing one primary address that get() reports, rather than silently picking one. */
const MAX_SAME_PRIMARY = 8

/**
 * LDAP result codes that mean "the server understood and refused this write" (schema, access,
 * naming, a read-only replica's referral): a human must act, so they are AdminErrors, not the
 * transient DirectoryError an unreachable server is. The rest (busy, unavailable, timeouts)
 * stay DirectoryErrors through the pool.
 */
const REFUSALS = new Set([8, 10, 13, 16, 17, 18, 19, 20, 21, 32, 34, 50, 53, 64, 65, 66, 67, 68, 69])
const NO_SUCH_OBJECT = 32
const ALREADY_EXISTS = 68

type WriteOperation = 'add' | 'modify' | 'delete'

export class LdapAccountWriter implements AccountWriter {
  /** LDAP is not the store: the admin announces each write as an intent first (src/admin/intents.ts). */
  readonly inStore = false
  readonly #pool: LdapPool
  readonly #bindPassword: string
  readonly #baseDN: string
  readonly #scope: LdapConfig['scope']
  readonly #timeLimit: number
  readonly #extraFilter: Filter | undefined
  /** The attributes lookups read, and the disabled rule (ldap-entry.ts). */
  readonly #m: LdapEntryMapping
  /** Address attributes besides the canonical one; each holds the primary address and every alias. */
  readonly #otherAddress: readonly string[]
  /** Every attribute an address can be owned through: what the claim check searches. */
  readonly #allAddress: readonly string[]
  readonly #password: string
  readonly #objectClasses: readonly string[]
  readonly #dn: AccountDnTemplate
  /** What list and get read. The password attribute only tells whether one is set; see #toRecord. */
  readonly #readAttributes: string[]

  constructor(config: LdapConfig, logger: Logger) {
    const admin = config.admin
    if (admin === undefined) {
      throw new ConfigError(
        'directory.ldap.admin',
        'writing accounts needs an admin bind (bindDN, bindPassword) that may add, modify and delete entries',
      )
    }
    const a = config.attributes
    if (a.canonical === '') {
      throw new ConfigError('directory.ldap.attributes.canonical', "writing accounts needs the primary address attribute; it is ''")
    }
    this.#bindPassword = admin.bindPassword
    this.#baseDN = config.baseDN
    this.#scope = config.scope
    this.#extraFilter = parseExtraFilter(config.filter)
    this.#m = entryMapping(config)
    this.#otherAddress = uniqueNames(a.address.filter((n) => !sameName(n, a.canonical)))
    this.#allAddress = uniqueNames([a.canonical, ...a.address])
    this.#password = config.passwordAttribute
    this.#objectClasses = admin.objectClasses
    this.#dn = new AccountDnTemplate(admin.accountDN, config.baseDN)
    this.#readAttributes = uniqueNames([...this.#allAddress, a.mailHost, a.status, a.sendAs, config.passwordAttribute])
    const connection = ldapConnection(config)
    this.#timeLimit = Math.ceil(connection.timeoutMs / 1000)
    // One connection: admin writes are rare, and LDAP runs concurrent operations on it anyway.
    // The pool brings connect and operation timeouts, StartTLS done safely, re-binding after
    // a reconnect, and errors that never carry the bind password.
    this.#pool = openLdapPool(connection, { bindDN: admin.bindDN, bindPassword: admin.bindPassword, size: 1 }, logger.child({ component: 'ldap-admin' }))
  }

  async get(address: string): Promise<AccountRecord | undefined> {
    const { searchEntries } = await this.#pool.run('account read', (client) =>
      client.search(this.#baseDN, this.#searchOptions(this.#accountFilter(eq(this.#m.canonical, address)), MAX_SAME_PRIMARY + 1)),
    )
    // The filter also matches a further value of a multi-valued primary attribute; only the
    // first value is the primary address.
    const found = searchEntries.map((e) => this.#toRecord(e)).filter((r) => r?.address === address.toLowerCase())
    if (found.length > 1) {
      const dns = found.map((r) => r!.id).join('; ')
      throw new DirectoryDataError(ErrorCodes.DUPLICATE_OWNER, `${found.length} LDAP entries have the primary address ${address}: ${dns}`)
    }
    return found[0]
  }

  // LDAP has no ordering rule on mail (and server-side sorting is an optional extension), so
  // keyset paging costs one full filtered search per page, sorted here. Admin listings are rare;
  // lookups never list.
  async list(query: AccountQuery): Promise<AccountPage> {
    if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_PAGE) {
      throw new AdminError(ErrorCodes.VALIDATION, `limit must be an integer from 1 to ${MAX_PAGE}`)
    }
    if (query.mailHosts?.length === 0) return { accounts: [] }
    const narrow: Filter[] = []
    if (query.domain !== undefined) narrow.push(new SubstringFilter({ attribute: this.#m.canonical, final: `@${query.domain}` }))
    if (query.mailHosts !== undefined) narrow.push(anyOf(query.mailHosts.map((h) => eq(this.#m.mailHost, h))))
    if (query.status !== undefined && this.#m.status !== '' && this.#m.disabledValues.length > 0) {
      const disabled = anyOf(this.#m.disabledValues.map((v) => eq(this.#m.status, v)))
      narrow.push(query.status === 'disabled' ? disabled : new NotFilter({ filter: disabled }))
    }
    // The server narrows the search; the exact rules (primary address only, case) apply here.
    const hosts = query.mailHosts === undefined ? undefined : new Set(query.mailHosts.map((h) => h.toLowerCase()))
    const matches = (r: AccountRecord) =>
      (query.domain === undefined || r.address.endsWith(`@${query.domain.toLowerCase()}`)) &&
      (hosts === undefined || hosts.has(r.mailHost.toLowerCase())) &&
      (query.status === undefined || r.status === query.status) &&
      (query.after === undefined || byteOrder(r.address, query.after) > 0)
    const records: AccountRecord[] = []
    await this.#eachPage('account list', this.#accountFilter(...narrow), this.#readAttributes, (entries) => {
      for (const e of entries) {
        const r = this.#toRecord(e)
        if (r !== undefined && matches(r)) records.push(r)
      }
    })
    records.sort((x, y) => byteOrder(x.address, y.address))
    const accounts = records.slice(0, query.limit)
    return records.length > query.limit ? { accounts, next: accounts.at(-1)!.address } : { accounts }
  }

  async create(account: NewAccount): Promise<AccountRecord> {
    const primary = account.address
    const aliases = otherAddresses(account.aliases, primary)
    const status = this.#statusValue(account.status)
    if (account.sendAs.length > 0) this.#requireSendAs()
    await this.#assertUnclaimed([primary, ...aliases], undefined)

    const dn = this.#dn.dn(addressParts(primary))
    const entry = new EntryBuilder()
    entry.add('objectClass', this.#objectClasses)
    // inetOrgPerson and person require cn and sn; the address is the only name an account has.
    if (this.#objectClasses.some((c) => sameName(c, 'inetOrgPerson') || sameName(c, 'person'))) {
      entry.add('cn', [primary])
      entry.add('sn', [primary])
    }
    for (const [name, values] of this.#addressValues(primary, aliases)) entry.add(name, values)
    entry.add(this.#m.mailHost, [account.mailHost])
    if (status !== undefined) entry.add(this.#m.status, status)
    if (account.sendAs.length > 0) entry.add(this.#m.sendAs, sortedUnique(account.sendAs))
    if (account.passwordHash !== undefined && account.passwordHash !== '') entry.add(this.#password, [account.passwordHash])
    // The naming attribute must hold the RDN's value; added here unless the mapping set it.
    entry.add(this.#dn.rdnAttribute, [this.#dn.rdnValue(addressParts(primary))])

    await this.#write('add', dn, (client) => client.add(dn, entry.attributes()))
    const created = await this.get(primary)
    if (created === undefined) {
      // Lookups would never see it, and it would block its addresses: take it out again.
      await this.#write('delete', dn, (client) => client.del(dn))
      throw new AdminError(
        ErrorCodes.DIRECTORY_WRITE,
        `${dn} was added but does not match directory.ldap.filter with a ${this.#m.mailHost}, so lookups would not see it; ` +
          'it was removed again (check directory.ldap.admin.objectClasses)',
      )
    }
    return created
  }

  async update(address: string, changes: AccountChanges): Promise<{ before: AccountRecord; after: AccountRecord }> {
    const before = await this.get(address)
    if (before === undefined) throw notFound(address)
    const dn = before.id
    const mods: Change[] = []
    const replace = (type: string, values: string[]) =>
      mods.push(new Change({ operation: 'replace', modification: new Attribute({ type, values }) }))

    if (changes.mailHost !== undefined) replace(this.#m.mailHost, [changes.mailHost])
    if (changes.status !== undefined) {
      const status = this.#statusValue(changes.status)
      if (status !== undefined) replace(this.#m.status, status)
    }
    // Replacing with no values deletes the attribute, and is no error when it is absent.
    if (changes.passwordHash !== undefined) replace(this.#password, changes.passwordHash ? [changes.passwordHash] : [])
    if (changes.sendAs !== undefined) {
      if (changes.sendAs.length > 0) this.#requireSendAs()
      if (this.#m.sendAs !== '') replace(this.#m.sendAs, sortedUnique(changes.sendAs))
    }
    if (changes.aliases !== undefined) {
      const wanted = otherAddresses(changes.aliases, before.address)
      await this.#assertUnclaimed(
        wanted.filter((a) => !before.aliases.includes(a)),
        dn,
      )
      for (const [name, values] of this.#addressValues(before.address, wanted)) replace(name, values)
    }
    if (mods.length > 0) await this.#write('modify', dn, (client) => client.modify(dn, mods))
    const after = await this.get(address)
    if (after === undefined) throw notFound(address)
    return { before, after }
  }

  async delete(address: string): Promise<AccountRecord> {
    const before = await this.get(address)
    if (before === undefined) throw notFound(address)
    await this.#write('delete', before.id, (client) => client.del(before.id))
    return before
  }

  async passwordHash(address: string): Promise<string | undefined> {
    const record = await this.get(address)
    if (record === undefined) return undefined
    const { searchEntries } = await this.#pool.run('password read', (client) =>
      client.search(record.id, { scope: 'base', filter: new PresenceFilter({ attribute: 'objectClass' }), attributes: [this.#password], sizeLimit: 1, timeLimit: this.#timeLimit }),
    )
    const entry = searchEntries[0]
    return entry === undefined ? undefined : attributeValues(entry, this.#password)[0]
  }

  async countByMailHost(): Promise<Map<string, number>> {
    const counts = new Map<string, number>()
    await this.#eachPage('account count', this.#accountFilter(), [this.#m.mailHost], (entries) => {
      for (const e of entries) {
        // Counting is for placement; an entry with two mailHosts (a lookup error) counts once.
        const host = attributeValues(e, this.#m.mailHost)[0]?.toLowerCase()
        if (host !== undefined) counts.set(host, (counts.get(host) ?? 0) + 1)
      }
    })
    return counts
  }

  close(): Promise<void> {
    return this.#pool.close()
  }

  /** (&(configured filter)(mailHost=*)...): accounts only; alias entries have no mailHost. */
  #accountFilter(...more: Filter[]): Filter {
    const filters = [...(this.#extraFilter ? [this.#extraFilter] : []), new PresenceFilter({ attribute: this.#m.mailHost }), ...more]
    return new AndFilter({ filters })
  }

  #searchOptions(filter: Filter, sizeLimit: number, attributes = this.#readAttributes): SearchOptions {
    return { scope: this.#scope, filter, attributes, derefAliases: 'never', sizeLimit, timeLimit: this.#timeLimit }
  }

  /**
   * A paged search with each page its own pool operation, so a large directory gets the
   * per-operation timeout for every page rather than for the whole walk. An admin bind other
   * than the rootdn may need `limits ... size.prtotal=unlimited` in slapd for this.
   */
  async #eachPage(operation: string, filter: Filter, attributes: string[], onPage: (entries: Entry[]) => void): Promise<void> {
    let pages: AsyncGenerator<SearchResult> | undefined
    for (;;) {
      const page = await this.#pool.run(operation, (client) => {
        pages ??= client.searchPaginated(this.#baseDN, { ...this.#searchOptions(filter, 0, attributes), paged: { pageSize: PAGE_SIZE } })
        return pages.next()
      })
      if (page.done === true) return
      onPage(page.value.searchEntries)
    }
  }

  /**
   * Refuses addresses another entry already owns, through any address attribute (aliases
   * included). LDAP has no transactions: two admins claiming one address at the same moment
   * can both pass this check. The entry's own DN (naming attribute) makes concurrent creates of
   * one primary address collide at the server, which answers entryAlreadyExists.
   */
  async #assertUnclaimed(addresses: readonly string[], ownDN: string | undefined): Promise<void> {
    if (addresses.length === 0) return
    const match = anyOf(this.#allAddress.flatMap((attribute) => addresses.map((value) => eq(attribute, value))))
    const filter = this.#extraFilter ? new AndFilter({ filters: [this.#extraFilter, match] }) : match
    const { searchEntries } = await this.#pool.run('address check', (client) =>
      client.search(this.#baseDN, this.#searchOptions(filter, CLAIM_CHECK_LIMIT, [...this.#allAddress])),
    )
    for (const entry of searchEntries) {
      if (ownDN !== undefined && entry.dn.toLowerCase() === ownDN.toLowerCase()) continue
      const owned = new Set(this.#allAddress.flatMap((n) => attributeValues(entry, n)).map((v) => v.toLowerCase()))
      const clash = addresses.find((a) => owned.has(a.toLowerCase())) ?? addresses[0]!
      throw new AdminError(ErrorCodes.ADDRESS_TAKEN, `${clash} is already an address of ${entry.dn}`)
    }
  }

  /**
   * Runs one write. A refusal (see REFUSALS) is returned out of the pool operation rather than
   * thrown through it: the server answered, so the connection is healthy and nothing is logged
   * as an outage.
   */
  async #write(operation: WriteOperation, dn: string, fn: (client: Client) => Promise<void>): Promise<void> {
    const refused = await this.#pool.run(`${operation} ${dn}`, async (client) => {
      try {
        await fn(client)
        return undefined
      } catch (e) {
        if (e instanceof ResultCodeError && REFUSALS.has(e.code)) return e
        throw e
      }
    })
    if (refused === undefined) return
    const reason = this.#describe(refused)
    if (refused.code === ALREADY_EXISTS) throw new AdminError(ErrorCodes.ADDRESS_TAKEN, `${dn} already exists: ${reason}`)
    if (refused.code === NO_SUCH_OBJECT && operation !== 'add') throw new AdminError(ErrorCodes.NOT_FOUND, `${dn} no longer exists`)
    const hint = refused.code === NO_SUCH_OBJECT ? ' (does its parent entry exist?)' : ''
    throw new AdminError(ErrorCodes.DIRECTORY_WRITE, `LDAP ${operation} of ${dn} refused${hint}: ${reason}`, { cause: refused })
  }

  #describe(e: ResultCodeError): string {
    const diagnostic = e.message.replace(/\s*Code: 0x[0-9a-f]+$/i, '').trim()
    const text = `${e.name} (LDAP result ${e.code})${diagnostic ? `: ${diagnostic}` : ''}`
    // No server should echo the bind password, but a message that reaches an API client must not.
    return this.#bindPassword === '' ? text : text.split(this.#bindPassword).join('[redacted]')
  }

  /** The address attributes of an account, primary first (the first value is the primary one). */
  #addressValues(primary: string, aliases: readonly string[]): [string, string[]][] {
    const all = [primary, ...aliases]
    if (this.#otherAddress.length === 0) return [[this.#m.canonical, all]]
    return [[this.#m.canonical, [primary]], ...this.#otherAddress.map((n): [string, string[]] => [n, all])]
  }

  /** The status attribute's value for a status; undefined when there is nothing to write. */
  #statusValue(status: AccountStatus): string[] | undefined {
    const value = writtenStatus(status, this.#m)
    if (value === null) {
      throw new AdminError(
        ErrorCodes.VALIDATION,
        'this LDAP directory cannot mark an account disabled (directory.ldap.attributes.status or disabledValues is empty)',
      )
    }
    return value === undefined ? undefined : [value]
  }

  #requireSendAs(): void {
    if (this.#m.sendAs === '') {
      throw new AdminError(ErrorCodes.VALIDATION, "this LDAP directory has no send-as attribute (directory.ldap.attributes.sendAs is '')")
    }
  }

  #toRecord(entry: Entry): AccountRecord | undefined {
    const canonical = attributeValues(entry, this.#m.canonical).map((v) => v.toLowerCase())
    const primary = canonical[0]
    // Entries with a mailHost but no primary address serve lookups through their other
    // addresses; the admin API names accounts by primary address and cannot show them.
    if (primary === undefined) return undefined
    const hosts = attributeValues(entry, this.#m.mailHost)
    if (hosts.length !== 1) {
      throw new DirectoryDataError(
        ErrorCodes.DIRECTORY_DATA,
        `LDAP entry ${entry.dn} has ${hosts.length} non-blank ${this.#m.mailHost} values; an account lives on exactly one host`,
      )
    }
    const addresses = [...canonical.slice(1), ...this.#otherAddress.flatMap((n) => attributeValues(entry, n)).map((v) => v.toLowerCase())]
    return {
      id: entry.dn,
      address: primary,
      mailHost: hosts[0]!,
      status: statusOf(entry, this.#m),
      aliases: otherAddresses(addresses, primary),
      sendAs: sortedUnique(attributeValues(entry, this.#m.sendAs)),
      // The admin bind can usually read the password attribute (slapd's rootdn always can). One
      // whose ACL hides it gets no attribute back, and the account shows as without password:
      // LDAP gives no way to tell "hidden" from "absent".
      hasPassword: attributeValues(entry, this.#password).length > 0,
    }
  }
}

/** Attributes of a new entry, merged by name the way LDAP compares names (case-insensitively). */
class EntryBuilder {
  readonly #byName = new Map<string, { type: string; values: string[] }>()

  add(type: string, values: readonly string[]): void {
    const key = type.toLowerCase()
    const slot = this.#byName.get(key) ?? { type, values: [] }
    this.#byName.set(key, slot)
    for (const v of values) if (!slot.values.some((have) => have.toLowerCase() === v.toLowerCase())) slot.values.push(v)
  }

  attributes(): Attribute[] {
    return [...this.#byName.values()].map((a) => new Attribute({ type: a.type, values: a.values }))
  }
}

const eq = (attribute: string, value: string) => new EqualityFilter({ attribute, value })
/** An OR of one filter is that filter: simpler for the server and for anyone reading its log. */
const anyOf = (filters: Filter[]): Filter => (filters.length === 1 ? filters[0]! : new OrFilter({ filters }))
const notFound = (address: string) => new AdminError(ErrorCodes.NOT_FOUND, `no account has the primary address ${address}`)

function sortedUnique(values: readonly string[]): string[] {
  return [...new Set(values)].sort(byteOrder)
}

/** Aliases as a set: duplicates and the primary address itself dropped. */
function otherAddresses(aliases: readonly string[], primary: string): string[] {
  return sortedUnique(aliases).filter((a) => a !== primary)
}


