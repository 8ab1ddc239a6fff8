// Address semantics (architecture.md §3.1-§3.2): turn whatever a peer sent into one canonical
// key, or say plainly why it is not an address. Pure and total: any string in, a result out.

import { domainToASCII } from 'node:url'

export interface AddressOptions {
  /** Characters that start an address extension, like Postfix's recipient_delimiter. */
  readonly extensionDelimiters: string
  readonly foldLocalPart: boolean
}

export interface CanonicalAddress {
  readonly ok: true
  /** `local@domain`, canonical. */
  readonly address: string
  readonly local: string
  readonly domain: string
  /** Set when the local part carries an extension: the address without it. */
  readonly base?: string
  readonly extension?: string
  readonly delimiter?: string
}

export interface NotAnAddress {
  readonly ok: false
  readonly reason: string
}

/** RFC 5321 path limit; longer input is an authoritative miss, never an error. */
export const MAX_ADDRESS_OCTETS = 254
const MAX_LOCAL_OCTETS = 64
const MAX_DOMAIN_OCTETS = 253
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/
/**
 * Any ASCII character but letters, digits, `.`, `_` and `-`: no host name has one. domainToASCII
 * parses its input as a URL's host, so it cuts at `/ \ ? #` (`example.org/evil` came back as
 * `example.org`) and percent-decodes (`exa%6Dple.org`): a key holding such a character is not a
 * domain at all, never a shorter or decoded one. Non-ASCII goes to IDNA as before.
 */
const NOT_IN_A_HOST_NAME = /[^A-Za-z0-9._\u0080-\uffff-]/
/**
 * A name whose last label is a number is an IPv4 address to the URL parser, which rewrites it
 * (`0x7f.1` came back as `127.0.0.1`); a mail domain is never one (RFC 5321 wants `[1.2.3.4]`).
 */
const NUMERIC_LAST_LABEL = /(?:^|\.)[0-9]+$/

/**
 * Lowercase ASCII letters, digits, `-`, `_` and dots: domainToASCII returns such a name as it is
 * (the usual case, on every lookup), unless a label is one it treats specially (SPECIAL_LABEL),
 * so it need not be called. test/resolve/address.test.ts checks both ways agree on ASCII names.
 */
const PLAIN_DOMAIN = /^[a-z0-9_.-]+$/
/** `xn--` (punycode, decoded and checked), and all-digit or `0x` labels (an IPv4 address in parts). */
const SPECIAL_LABEL = /(?:^|\.)(?:xn--|0x|[0-9]+(?:\.|$))/

const utf8Length = (s: string) => Buffer.byteLength(s, 'utf8')

/**
 * Canonical ASCII form of a domain: lowercased, trailing dot removed, IDN to punycode.
 * Returns undefined for anything that is not a plausible host name (domain literals and IPv4
 * addresses included); never a part of the input or a rewrite of it other than those.
 */
export function canonicalDomain(input: string): string | undefined {
  let d = input.trim()
  if (d.endsWith('.')) d = d.slice(0, -1)
  if (d === '' || NOT_IN_A_HOST_NAME.test(d)) return undefined
  const ascii = PLAIN_DOMAIN.test(d) && !SPECIAL_LABEL.test(d) ? d : domainToASCII(d)
  if (ascii === '' || ascii.length > MAX_DOMAIN_OCTETS || NUMERIC_LAST_LABEL.test(ascii)) return undefined
  const labels = ascii.split('.')
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return undefined
  return ascii
}

export function canonicalAddress(input: string, opts: AddressOptions): CanonicalAddress | NotAnAddress {
  const key = input.trim()
  if (key === '') return { ok: false, reason: 'empty key' }
  if (utf8Length(key) > MAX_ADDRESS_OCTETS) return { ok: false, reason: 'longer than 254 octets' }
  const at = key.lastIndexOf('@')
  if (at < 0) return { ok: false, reason: key === '*' ? 'wildcard key' : 'not an address (no @)' }
  let local = key.slice(0, at)
  const domainPart = key.slice(at + 1)
  if (local === '') return { ok: false, reason: 'empty local part' }
  if (CONTROL.test(local)) return { ok: false, reason: 'control character in local part' }
  if (utf8Length(local) > MAX_LOCAL_OCTETS) return { ok: false, reason: 'local part longer than 64 octets' }
  const domain = canonicalDomain(domainPart)
  if (domain === undefined) return { ok: false, reason: 'not a valid domain' }
  if (opts.foldLocalPart) local = local.toLowerCase()

  const address = `${local}@${domain}`
  const split = splitExtension(local, opts.extensionDelimiters)
  if (!split) return { ok: true, address, local, domain }
  return {
    ok: true,
    address,
    local,
    domain,
    base: `${split.base}@${domain}`,
    extension: split.extension,
    delimiter: split.delimiter,
  }
}

/** Splits at the first delimiter, as Postfix does; a leading delimiter is not an extension. */
function splitExtension(local: string, delimiters: string) {
  if (delimiters === '') return undefined
  for (let i = 1; i < local.length; i++) {
    const c = local[i]!
    if (delimiters.includes(c)) return { base: local.slice(0, i), extension: local.slice(i + 1), delimiter: c }
  }
  return undefined
}

/** Re-attaches an extension to an address (alias targets keep the caller's extension). */
export function withExtension(address: string, delimiter: string | undefined, extension: string | undefined) {
  if (delimiter === undefined || extension === undefined) return address
  const at = address.lastIndexOf('@')
  if (at <= 0) return address
  return `${address.slice(0, at)}${delimiter}${extension}${address.slice(at)}`
}
