// DNs of new account entries, from the configured template (directory.ldap.admin.accountDN,
// e.g. `uid={address},ou=people,{baseDN}`). Address parts are escaped as RDN attribute values
// (RFC 4514 §2.4), so `x+y@example.org` cannot turn into a two-valued RDN and `a,ou=admins` cannot
// move an entry into another subtree. Pure, so every odd address is tested without a server.

import { ConfigError } from '../errors.js'

const KEY = 'directory.ldap.admin.accountDN'
const PLACEHOLDER = /\{([A-Za-z]+)\}/g
const ADDRESS_PLACEHOLDERS = new Set(['address', 'local', 'domain'])

export interface AddressParts {
  readonly address: string
  readonly local: string
  readonly domain: string
}

/** Splits at the last '@', as canonicalAddress does. */
export function addressParts(address: string): AddressParts {
  const at = address.lastIndexOf('@')
  return { address, local: address.slice(0, at), domain: address.slice(at + 1) }
}

/** One value escaped for use in an RDN: specials, a leading '#' or space, a trailing space, NUL. */
export function escapeRdnValue(value: string): string {
  let out = ''
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!
    if (c === '\0') out += '\\00'
    else if (',+"\\<>;='.includes(c)) out += `\\${c}`
    else if (i === 0 && (c === '#' || c === ' ')) out += `\\${c}`
    else if (i === value.length - 1 && c === ' ') out += `\\${c}`
    else out += c
  }
  return out
}

/** Undoes RDN escaping in the template's own text: `\,` style and `\2C` hex pairs (UTF-8). */
function unescapeRdnValue(text: string): string {
  const bytes: number[] = []
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    const hex = c === '\\' ? /^[0-9A-Fa-f]{2}/.exec(text.slice(i + 1, i + 3)) : null
    if (hex) {
      bytes.push(parseInt(hex[0], 16))
      i += 2
    } else {
      const literal = c === '\\' && i + 1 < text.length ? text[++i]! : c
      bytes.push(...Buffer.from(literal, 'utf8'))
    }
  }
  return Buffer.from(bytes).toString('utf8')
}

/** Index of the first character `stop` that is not escaped, or -1. */
function unescapedIndex(text: string, stop: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i++
    else if (text[i] === stop) return i
  }
  return -1
}

export class AccountDnTemplate {
  /** The naming attribute of new entries (`uid` in the default template). */
  readonly rdnAttribute: string
  readonly #template: string
  readonly #rdnValueTemplate: string
  readonly #baseDN: string

  constructor(template: string, baseDN: string) {
    this.#template = template.trim()
    this.#baseDN = baseDN
    const names = [...this.#template.matchAll(PLACEHOLDER)].map((m) => m[1]!)
    const unknown = names.find((n) => n !== 'baseDN' && !ADDRESS_PLACEHOLDERS.has(n))
    if (unknown !== undefined) throw new ConfigError(KEY, `unknown placeholder {${unknown}}; use {address}, {local}, {domain} or {baseDN}`)
    const comma = unescapedIndex(this.#template, ',')
    const rdn = comma < 0 ? this.#template : this.#template.slice(0, comma)
    const eq = rdn.indexOf('=')
    this.rdnAttribute = eq < 0 ? '' : rdn.slice(0, eq).trim()
    this.#rdnValueTemplate = rdn.slice(eq + 1)
    if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(this.rdnAttribute)) {
      throw new ConfigError(KEY, 'must start with an RDN of the form attribute=value, e.g. uid={address}')
    }
    if (unescapedIndex(this.#rdnValueTemplate, '+') >= 0) throw new ConfigError(KEY, 'multi-valued RDNs (with +) are not supported')
    // Without the address or local part in the RDN every account would get the same DN.
    if (!/\{(address|local)\}/.test(rdn)) throw new ConfigError(KEY, 'the first RDN must contain {address} or {local}')
    if (rdn.includes('{baseDN}')) throw new ConfigError(KEY, '{baseDN} belongs after the first RDN')
  }

  /** The new entry's DN, values escaped; {baseDN} goes in as configured (it is a DN already). */
  dn(parts: AddressParts): string {
    return this.#template.replace(PLACEHOLDER, (_, name: string) =>
      name === 'baseDN' ? this.#baseDN : escapeRdnValue(parts[name as keyof AddressParts]),
    )
  }

  /** The RDN attribute's value as the entry must hold it: the same text, unescaped. */
  rdnValue(parts: AddressParts): string {
    let out = ''
    let last = 0
    for (const m of this.#rdnValueTemplate.matchAll(PLACEHOLDER)) {
      out += unescapeRdnValue(this.#rdnValueTemplate.slice(last, m.index)) + parts[m[1] as keyof AddressParts]
      last = m.index + m[0].length
    }
    return out + unescapeRdnValue(this.#rdnValueTemplate.slice(last))
  }
}
