// Stored passwords mailhostd refuses to check (UnsupportedSchemeError): each login against one
// is answered with a temporary failure, never "wrong password". A table full of one old scheme
// (a site's DES-crypt users) would log a line per login; here each scheme and fault is logged
// when first met and then at most once an interval with how many were left out, and counted
// per scheme for the metric.

import { LogThrottle, type Logger } from '../log.js'
import type { UnsupportedSchemeError } from './scheme-support.js'

/** How often one scheme's refusals may log again after the first. */
export const REFUSAL_LOG_INTERVAL_MS = 3_600_000

/**
 * The metric's label values: Dovecot's scheme names (`doveadm pw -l`, with their aliases) as we
 * upper-case them, `none` for a value without a readable prefix, `other` for every other name,
 * which comes from stored data and must not grow the label set.
 */
const KNOWN_SCHEMES: ReadonlySet<string> = new Set([
  'ARGON2I', 'ARGON2ID', 'BLF-CRYPT', 'CLEAR', 'CLEARTEXT', 'CRAM-MD5', 'CRYPT', 'DES-CRYPT', 'DIGEST-MD5',
  'HMAC-MD5', 'LANMAN', 'LDAP-MD5', 'MD5', 'MD5-CRYPT', 'NTLM', 'OTP', 'PBKDF2', 'PLAIN', 'PLAIN-MD4',
  'PLAIN-MD5', 'PLAIN-TRUNC', 'RPA', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SHA', 'SHA1', 'SHA256', 'SHA256-CRYPT',
  'SHA512', 'SHA512-CRYPT', 'SKEY', 'SMD5', 'SSHA', 'SSHA256', 'SSHA512',
])

export function refusalLabel(scheme: string | undefined): string {
  if (scheme === undefined) return 'none'
  return KNOWN_SCHEMES.has(scheme) ? scheme : 'other'
}

export interface SchemeRefusalsOptions {
  readonly logger: Logger
  /** Told of every refusal, with refusalLabel() of its scheme. */
  readonly onRefused?: (scheme: string) => void
  readonly intervalMs?: number
  readonly now?: () => number
}

export class SchemeRefusals {
  readonly #o: SchemeRefusalsOptions
  readonly #throttle: LogThrottle

  constructor(options: SchemeRefusalsOptions) {
    this.#o = options
    this.#throttle = new LogThrottle(options.intervalMs ?? REFUSAL_LOG_INTERVAL_MS, options.now)
  }

  record(e: UnsupportedSchemeError): void {
    const scheme = refusalLabel(e.scheme)
    this.#o.onRefused?.(scheme)
    // The problem texts are fixed strings (no stored data), so the topics stay few.
    this.#throttle.run(`${scheme}\n${e.problem}`, (suppressed) =>
      this.#o.logger.error(
        { code: e.code, scheme: e.scheme ?? '(no prefix)', problem: e.problem, suppressed },
        'stored passwords mailhostd cannot verify: logins of these accounts fail temporarily until their passwords are rehashed in a supported scheme',
      ),
    )
  }
}
