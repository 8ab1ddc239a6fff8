// Turning one LDAP search entry into the directory's vocabulary (account or alias). Pure, so the
// rules for odd data are tested without a server; anything ambiguous is refused, never guessed.

import type { Entry } from 'ldapts'
import type { LdapConfig } from '../config/schema.js'
import { DirectoryDataError, ErrorCodes } from '../errors.js'
import type { DirectoryEntry } from './directory.js'

/** Attribute names as configured; '' means the directory has no such attribute. */
export interface LdapEntryMapping {
  readonly mailHost: string
  readonly routingAddress: string
  readonly canonical: string
  readonly status: string
  readonly sendAs: string
  /** Lower-cased status values that mean "disabled". */
  readonly disabledValues: ReadonlySet<string>
}

/** The mapping directory.ldap configures (lookups and the warm-up's listing read entries alike). */
export function entryMapping(config: LdapConfig): LdapEntryMapping {
  return {
    mailHost: config.attributes.mailHost,
    routingAddress: config.attributes.routingAddress,
    canonical: config.attributes.canonical,
    status: config.attributes.status,
    sendAs: config.attributes.sendAs,
    disabledValues: new Set(config.disabledValues.map((v) => v.toLowerCase())),
  }
}

/** Only the attributes the mapping reads: keeps replies small and never asks for userPassword. */
export function requestedAttributes(m: LdapEntryMapping): string[] {
  const seen = new Set<string>()
  const out: string[] = []
  for (const name of [m.mailHost, m.routingAddress, m.canonical, m.status, m.sendAs]) {
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
    const disabled = attributeValues(entry, m.status).some((v) => m.disabledValues.has(v.toLowerCase()))
    return { kind: 'account', id: dn, canonical, mailHost: host, status: disabled ? 'disabled' : 'active', sendAs: attributeValues(entry, m.sendAs) }
  }
  if (routing.length > 0) return { kind: 'alias', id: dn, targets: routing }
  const missing = m.routingAddress === '' ? `no ${m.mailHost}` : `neither ${m.mailHost} nor ${m.routingAddress}`
  throw new DirectoryDataError(ErrorCodes.DIRECTORY_DATA, `LDAP entry ${dn} owns the address but has ${missing}`)
}
