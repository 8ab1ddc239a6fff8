// The LDAP directory (OpenLDAP with inetLocalMailRecipient, or anything mapped onto it): one
// escaped equality search per address. Filters are built from ldapts filter objects only, which
// carry the address as a BER value, so no key can change the filter's structure.

import { readFileSync } from 'node:fs'
import { AndFilter, EqualityFilter, FilterParser, OrFilter, PresenceFilter, type Filter } from 'ldapts'
import { ConfigError, DirectoryDataError, ErrorCodes, describeError } from '../errors.js'
import { toMs } from '../config/duration.js'
import type { LdapConfig } from '../config/schema.js'
import type { Logger } from '../log.js'
import type { AccountEntry, Directory, DirectoryEntry } from './directory.js'
import { requestedAttributes, toDirectoryEntry, type LdapEntryMapping } from './ldap-entry.js'
import { checkLdapPassword, type LdapPasswordOptions } from './ldap-password.js'
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

  constructor(config: LdapConfig, logger: Logger) {
    this.#baseDN = config.baseDN
    this.#scope = config.scope
    this.#extraFilter = parseExtraFilter(config.filter)
    this.#addressAttributes = config.attributes.address
    this.#mapping = {
      mailHost: config.attributes.mailHost,
      routingAddress: config.attributes.routingAddress,
      canonical: config.attributes.canonical,
      status: config.attributes.status,
      sendAs: config.attributes.sendAs,
      disabledValues: new Set(config.disabledValues.map((v) => v.toLowerCase())),
    }
    this.#attributes = requestedAttributes(this.#mapping)
    const timeoutMs = toMs(config.timeout)
    this.#timeLimit = Math.ceil(timeoutMs / 1000)
    if (config.startTLS && config.url.startsWith('ldaps:')) {
      throw new ConfigError('directory.ldap.startTLS', 'StartTLS needs an ldap:// URL; ldaps:// is encrypted already')
    }
    const connection = {
      url: config.url,
      timeoutMs,
      connectTimeoutMs: toMs(config.connectTimeout),
      startTLS: config.startTLS,
      tls: { rejectUnauthorized: config.tls.rejectUnauthorized, ...readCa(config.tls.caFile) },
    }
    try {
      this.#pool = new LdapPool(
        { ...connection, bindDN: config.bindDN, bindPassword: config.bindPassword, size: config.connections },
        logger.child({ component: 'ldap' }),
      )
    } catch (e) {
      if (e instanceof ConfigError) throw e
      throw new ConfigError('directory.ldap.url', describeError(e))
    }
    this.#password = { mode: config.passwordCheck, attribute: config.passwordAttribute, connection, servicePool: this.#pool }
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

  close(): Promise<void> {
    return this.#pool.close()
  }
}

function parseExtraFilter(text: string): Filter | undefined {
  if (text.trim() === '') return undefined
  try {
    return FilterParser.parseString(text.trim())
  } catch (e) {
    throw new ConfigError('directory.ldap.filter', `not an LDAP filter (RFC 4515): ${describeError(e)}`)
  }
}

function readCa(caFile: string | undefined): { ca?: string } {
  if (caFile === undefined) return {}
  try {
    return { ca: readFileSync(caFile, 'utf8') }
  } catch (e) {
    throw new ConfigError('directory.ldap.tls.caFile', `cannot read ${caFile}: ${describeError(e)}`)
  }
}
