// Turning one LDAP search entry into the directory's vocabulary (account or alias). Pure, so the
// rules for odd data are tested without a server; anything ambiguous is refused, never guessed.
// The one home of the attribute mapping and of the disabled rule: lookups (ldap.ts), the
// warm-up's listing (mailbox-addresses.ts) and the account writer (ldap-accounts.ts) all read
// entries through it, so an account cannot be disabled for one and active for another.

import type { Entry } from 'ldapts'
import type { LdapConfig } from '../config/schema.js'
import { DirectoryDataError, ErrorCodes } from '../errors.js'
import type { AccountStatus, DirectoryEntry } from './directory.js'

/** Attribute names as configured; '' means the directory has no such attribute. */
export interface LdapEntryMapping {
  readonly mailHost: string
  readonly routingAddress: string
  readonly canonical: string
  readonly status: string
  readonly sendAs: string
  /** Status values that mean "disabled", as configured (a write stores one of them). */
  readonly disabledValues: readonly string[]
  /** The same, lower-cased: every entry read (a million in a warm-up) is matched against it. */
  readonly disabled: ReadonlySet<string>
}

/** The mapping directory.ldap configures (lookups, the warm-up's listing and the writer read entries alike). */
export function entryMapping(config: LdapConfig): LdapEntryMapping {
  return {
    mailHost: config.attributes.mailHost,
    routingAddress: config.attributes.routingAddress,
    canonical: config.attributes.canonical,
    status: config.attributes.status,
    sendAs: config.attributes.sendAs,
    disabledValues: config.disabledValues,
    disabled: new Set(config.disabledValues.map((v) => v.toLowerCase())),
  }
}

/** Only the attributes the mapping reads: keeps replies small and never asks for userPassword. */
export function requestedAttributes(m: LdapEntryMapping): string[] {
  return uniqueNames([m.mailHost, m.routingAddress, m.canonical, m.status, m.sendAs])
}

/** Whether two attribute names (or status values) are the same the way LDAP compares them: ignoring case. */
export const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase()

/** Attribute names once each, in the first spelling given, without '' (no such attribute). */
export function uniqueNames(names: readonly string[]): string[] {
  const seen = new Set<string>()
  const out: string[] = []
  for (const name of names) {
    if (name === '' || seen.has(name.toLowerCase())) continue
    seen.add(name.toLowerCase())
    out.push(name)
  }
  return out
}

// Servers answer with the schema's spelling of a name (mailHost for a request of mailhost), so
// attributes are matched case-insensitively. Blank values are dropped: a blank mailHost routes
// nowhere and must count as missing, not as a host.
export function attributeValues(entry: Entry, attribute: string): string[] {
  if (attribute === '') return []
  const lc = attribute.toLowerCase()
  const out: string[] = []
  for (const [name, raw] of Object.entries(entry)) {
    if (name === 'dn' || name.toLowerCase() !== lc) continue
    for (const v of Array.isArray(raw) ? raw : [raw]) {
      const s = (typeof v === 'string' ? v : v.toString('utf8')).trim()
      if (s !== '') out.push(s)
    }
  }
  return out
}

export function toDirectoryEntry(entry: Entry, m: LdapEntryMapping): DirectoryEntry {
  const dn = entry.dn
  const hosts = attributeValues(entry, m.mailHost)
  const routing = attributeValues(entry, m.routingAddress)
  if (hosts.length > 1) {
    throw new DirectoryDataError(
      ErrorCodes.DIRECTORY_DATA,
      `LDAP entry ${dn} has ${hosts.length} ${m.mailHost} values; an account lives on exactly one host`,
    )
  }
  const host = hosts[0]
  if (host !== undefined) {
    if (routing.length > 1) {
      throw new DirectoryDataError(
        ErrorCodes.DIRECTORY_DATA,
        `LDAP entry ${dn} has ${routing.length} ${m.routingAddress} values; an account has one canonical address`,
      )
    }
    // A multi-valued primary address attribute (inetOrgPerson's mail is one) is common in real
    // directories; its first value is the primary one by the usual convention.
    const canonical = routing[0] ?? attributeValues(entry, m.canonical)[0]
    return { kind: 'account', id: dn, canonical, mailHost: host, status: statusOf(entry, m), sendAs: attributeValues(entry, m.sendAs) }
  }
  if (routing.length > 0) return { kind: 'alias', id: dn, targets: routing }
  const missing = m.routingAddress === '' ? `no ${m.mailHost}` : `neither ${m.mailHost} nor ${m.routingAddress}`
  throw new DirectoryDataError(ErrorCodes.DIRECTORY_DATA, `LDAP entry ${dn} owns the address but has ${missing}`)
}

/** The disabled rule: an account is disabled when any value of its status attribute is a disabled value. */
export function statusOf(entry: Entry, m: LdapEntryMapping): AccountStatus {
  return attributeValues(entry, m.status).some((value) => m.disabled.has(value.toLowerCase())) ? 'disabled' : 'active'
}

/**
 * The status value a write stores for `status`: `active` for an active account (every value
 * but a disabled one reads back as active), and for a disabled one `disabled` when that is a
 * disabled value, else the first configured. undefined: there is nothing to write (no status
 * attribute for an active account); null: this directory cannot mark an account disabled.
 */
export function writtenStatus(status: AccountStatus, m: LdapEntryMapping): string | undefined | null {
  if (status === 'active') return m.status === '' ? undefined : 'active'
  const value = m.disabledValues.find((v) => v.toLowerCase() === 'disabled') ?? m.disabledValues[0]
  return m.status === '' || value === undefined ? null : value
}
