// The auth_http request headers nginx builds from what a mail client (or its DNS) controls,
// checked before anything reads them (docs/login.md, CVE-2026-28753).
//
// How nginx builds the request (src/mail/ngx_mail_auth_http_module.c, 1.22 to 1.31): one header
// per line, each written once, in a fixed order. Auth-User, Auth-Pass and Auth-SSL-Cert are
// %-escaped (space, `%` and control bytes; UTF-8 goes raw); Client-Host is the client's reverse
// DNS name copied raw (nginx before the "Mail: host validation" fix copies whatever bytes the PTR
// answer holds; with the fix only RFC 1034 names, or the placeholders [UNAVAILABLE] and
// [TEMPUNAVAIL]); Auth-SMTP-Helo/-From/-To are the client's command lines without CR/LF. So a CR
// LF that reaches a value ends its line early and the rest becomes a header of its own: for every
// header nginx writes before Client-Host (Auth-Method, -User, -Pass, -Protocol, -Login-Attempt,
// Client-IP) and every Auth-SMTP-* after it, that is a second copy. Node's parser refuses raw
// control bytes other than TAB with a 400 before any route runs (client-error.ts answers
// those); duplicates, TAB, spaces and bytes >= 0x80 do reach us, and Node joins a duplicate's
// values with ", ", so the check reads the raw header list.

/** Why a request was refused: a closed set, for logs. */
export type NginxHeaderReason = 'duplicate' | 'control byte' | 'space' | 'non-ASCII byte' | 'malformed'

export interface NginxHeaderProblem {
  /** The header's canonical name if nginx sends it, else "other Auth-*" / "other Client-*" / "other Proxy-Protocol-*". */
  readonly header: string
  readonly reason: NginxHeaderReason
  /** The first offending byte (e.g. "0x0d"), when one byte is the reason. */
  readonly byte?: string
}

/** Every header nginx's mail module writes from session data, by lower-case name. */
const KNOWN = [
  'Auth-Method', 'Auth-User', 'Auth-Pass', 'Auth-Salt', 'Auth-Protocol', 'Auth-Login-Attempt',
  'Client-IP', 'Client-Host',
  'Proxy-Protocol-Addr', 'Proxy-Protocol-Port', 'Proxy-Protocol-Server-Addr', 'Proxy-Protocol-Server-Port',
  'Auth-SMTP-Helo', 'Auth-SMTP-From', 'Auth-SMTP-To',
  'Auth-SSL', 'Auth-SSL-Protocol', 'Auth-SSL-Cipher', 'Auth-SSL-Verify', 'Auth-SSL-Subject', 'Auth-SSL-Issuer',
  'Auth-SSL-Serial', 'Auth-SSL-Fingerprint', 'Auth-SSL-Cert',
]
const CANONICAL = new Map(KNOWN.map((n) => [n.toLowerCase(), n]))
const PREFIXES = [['auth-', 'other Auth-*'], ['client-', 'other Client-*'], ['proxy-protocol-', 'other Proxy-Protocol-*']] as const

/** Which bytes a value may hold besides visible ASCII (0x21-0x7e). */
interface Allowed {
  readonly space: boolean
  readonly nonAscii: boolean
}
/** nginx-generated tokens, names and addresses: visible ASCII only. */
const TOKEN: Allowed = { space: false, nonAscii: false }
/** %-escaped by nginx: a raw space or control byte means nginx did not write it; UTF-8 goes raw. */
const ESCAPED: Allowed = { space: false, nonAscii: true }
/** Free text (SMTP command lines, certificate names, headers of newer nginx versions). */
const TEXT: Allowed = { space: true, nonAscii: true }

const RULES: ReadonlyMap<string, Allowed> = new Map([
  ['auth-method', TOKEN], ['auth-protocol', TOKEN], ['auth-login-attempt', TOKEN], ['client-ip', TOKEN], ['client-host', TOKEN],
  ['proxy-protocol-addr', TOKEN], ['proxy-protocol-port', TOKEN], ['proxy-protocol-server-addr', TOKEN], ['proxy-protocol-server-port', TOKEN],
  ['auth-user', ESCAPED], ['auth-pass', ESCAPED], ['auth-ssl-cert', ESCAPED],
])

/** Formats of the values mailhostd reads or that nginx writes from a fixed grammar. */
const FORMATS: ReadonlyMap<string, RegExp> = new Map([
  ['auth-login-attempt', /^[0-9]{1,10}$/],
  // A fixed nginx sends an RFC 1034 name (at most 253 octets) or one of its two placeholders;
  // anything else is a reverse name an unfixed nginx copied raw from a hostile PTR record.
  ['client-host', /^(?:\[UNAVAILABLE\]|\[TEMPUNAVAIL\]|(?=.{1,253}$)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?)$/],
])

/** The name to report: nginx's spelling if it is one nginx sends, else the family. */
function reportName(lower: string): string {
  return CANONICAL.get(lower) ?? PREFIXES.find(([p]) => lower.startsWith(p))![1]
}

const inScope = (lower: string) => PREFIXES.some(([p]) => lower.startsWith(p))

/** The first byte of `value` (latin1, as Node hands header bytes over) the rule does not allow. */
function badByte(value: string, rule: Allowed): { reason: NginxHeaderReason; byte: string } | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c >= 0x21 && c <= 0x7e) continue
    if (c === 0x20 && rule.space) continue
    if (c >= 0x80 && c <= 0xff && rule.nonAscii) continue
    const reason = c === 0x20 ? 'space' : c < 0x20 || c === 0x7f ? 'control byte' : 'non-ASCII byte'
    return { reason, byte: `0x${c.toString(16).padStart(2, '0')}` }
  }
  return undefined
}

/**
 * The first problem in an auth_http request's headers, given as Node's rawHeaders (name, value,
 * name, value, ...), or undefined when every Auth-*, Client-* and Proxy-Protocol-* header is
 * one nginx could have written.
 */
export function checkNginxHeaders(raw: readonly string[]): NginxHeaderProblem | undefined {
  const seen = new Set<string>()
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase()
    if (!inScope(lower)) continue
    const header = reportName(lower)
    if (seen.has(lower)) return { header, reason: 'duplicate' }
    seen.add(lower)
    const value = raw[i + 1]!
    const bad = badByte(value, RULES.get(lower) ?? TEXT)
    if (bad) return { header, ...bad }
    if (FORMATS.get(lower)?.test(value) === false) return { header, reason: 'malformed' }
  }
  return undefined
}

/** Node's parsed headers as a raw list (an array value: one entry per copy), for callers without rawHeaders. */
export function rawHeaderList(h: Readonly<Record<string, string | readonly string[] | undefined>>): string[] {
  return Object.entries(h).flatMap(([name, v]) => (v === undefined ? [] : typeof v === 'string' ? [name, v] : v.flatMap((x) => [name, x])))
}

/**
 * What nginx hears for a refused request. No Auth-Wait: the bad value belongs to the session
 * (nginx resolves Client-Host once per connection), so every retry in it would carry it again;
 * without Auth-Wait nginx sends the text and closes. SMTP gets a temporary code: the fault may be
 * an unpatched or misconfigured proxy on our side, and mail must wait rather than bounce.
 * Auth-Error-Code is read by nginx only in SMTP sessions.
 */
export const NGINX_REFUSAL: Readonly<Record<string, string>> = Object.freeze({
  'Auth-Status': 'Session refused: invalid client data',
  'Auth-Error-Code': '451 4.7.0',
})
