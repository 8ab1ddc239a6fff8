// The LDAP directory (OpenLDAP with inetLocalMailRecipient, or anything mapped onto it): one
// escaped equality search per address. Filters are built from ldapts filter objects only, which
// carry the address as a BER value, so no key can change the filter's structure.

import { AndFilter, EqualityFilter, OrFilter, PresenceFilter, type Filter } from 'ldapts'
import { inlinePasswords, type PasswordHasher } from '../auth/passwords.js'
import { DirectoryDataError, ErrorCodes } from '../errors.js'
import type { LdapConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import { ldapConnection, openLdapPool, parseExtraFilter } from './ldap-config.js'
import type { AccountEntry, Directory, DirectoryEntry } from './directory.js'
import { entryMapping, requestedAttributes, toDirectoryEntry, type LdapEntryMapping } from './ldap-entry.js'
import { LdapBindChecks, checkLdapPassword, type LdapPasswordOptions } from './ldap-password.js'
import { LdapPool } from './ldap-pool.js'

/**
 * More entries than this owning one address is not a duplicate to report entry by entry but a
 * broken directory or filter (a wildcard mailLocalAddress, an overly broad extra filter).
 */
export const MAX_OWNERS = 8

export class LdapDirectory implements Directory {
  readonly kind = 'ldap'
  readonly #pool: LdapPool
  readonly #password: LdapPasswordOptions
  readonly #baseDN: string
  readonly #scope: LdapConfig['scope']
  readonly #extraFilter: Filter | undefined
  readonly #addressAttributes: readonly string[]
  readonly #mapping: LdapEntryMapping
  readonly #attributes: string[]
  /** Whole seconds, as LDAP wants: the server gives up too instead of working for nobody. 0: none. */
  readonly #timeLimit: number

  /** `passwords`: the daemon's worker pool for compare mode; without one (tests) hashes are checked inline. */
  constructor(config: LdapConfig, logger: Logger, passwords: PasswordHasher = inlinePasswords) {
    this.#baseDN = config.baseDN
    this.#scope = config.scope
    this.#extraFilter = parseExtraFilter(config.filter)
    this.#addressAttributes = config.attributes.address
    this.#mapping = entryMapping(config)
    this.#attributes = requestedAttributes(this.#mapping)
    const connection = ldapConnection(config)
    this.#timeLimit = Math.ceil(connection.timeoutMs / 1000)
    this.#pool = openLdapPool(connection, { bindDN: config.bindDN, bindPassword: config.bindPassword, size: config.connections }, logger.child({ component: 'ldap' }))
    this.#password = {
      mode: config.passwordCheck,
      attribute: config.passwordAttribute,
      binds: config.passwordCheck === 'bind' ? new LdapBindChecks(connection, config.passwordConnections) : undefined,
      servicePool: this.#pool,
      passwords,
    }
  }

  verifyPassword(account: AccountEntry, password: string, signal?: AbortSignal): Promise<'ok' | 'mismatch'> {
    return checkLdapPassword(this.#password, account, password, signal)
  }

  async findByAddress(address: string, signal?: AbortSignal): Promise<DirectoryEntry[]> {
    const match = new OrFilter({
      filters: this.#addressAttributes.map((attribute) => new EqualityFilter({ attribute, value: address })),
    })
    const filter = this.#extraFilter ? new AndFilter({ filters: [this.#extraFilter, match] }) : match
    const { searchEntries } = await this.#pool.run(
      'search',
      (client) =>
        client.search(this.#baseDN, {
          scope: this.#scope,
          filter,
          attributes: this.#attributes,
          derefAliases: 'never',
          // One past the limit tells "too many" apart from "exactly the limit": ldapts returns
          // the entries it got when the server stops at the size limit, without an error.
          sizeLimit: MAX_OWNERS + 1,
          timeLimit: this.#timeLimit,
        }),
      signal,
    )
    if (searchEntries.length > MAX_OWNERS) {
      throw new DirectoryDataError(
        ErrorCodes.DUPLICATE_OWNER,
        `more than ${MAX_OWNERS} LDAP entries under ${this.#baseDN} own ${address}`,
      )
    }
    return searchEntries.map((entry) => toDirectoryEntry(entry, this.#mapping))
  }

  async ping(signal?: AbortSignal): Promise<void> {
    await this.#pool.run(
      'ping',
      (client) =>
        client.search(this.#baseDN, {
          scope: 'base',
          filter: new PresenceFilter({ attribute: 'objectClass' }),
          attributes: ['1.1'],
          timeLimit: this.#timeLimit,
        }),
      signal,
    )
  }

  async close(): Promise<void> {
    await Promise.all([this.#pool.close(), this.#password.binds?.close()])
  }
}


