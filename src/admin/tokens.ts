// Tokens for the admin API and the status page. The configuration holds only each token's
// SHA-256: a leaked config file or backup grants nothing. Tokens are long random strings
// (mailhostctl token new), so one unsalted hash is enough; a slow hash would only slow every API
// call. mailhostctl imports this module too (token new), so it depends on node built-ins only.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { AdminConfig } from '../config/schema.js'

export type Role = 'read' | 'admin'

export interface Principal {
  /** The token's name: the actor in the audit log. */
  readonly name: string
  readonly role: Role
}

export const TOKEN_PREFIX = 'mh_'

/** What a token's name may be (admin.tokens[].name): it is written into audit entries and logs. */
export const TOKEN_NAME_PATTERN = '^[A-Za-z0-9_.@-]{1,64}$'

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** A fresh token: the prefix makes it recognisable in a secret scanner, the rest is 256 random bits. */
export function newToken(random: (n: number) => Buffer = randomBytes): string {
  return TOKEN_PREFIX + random(32).toString('base64url')
}

export interface AuthSchemes {
  /**
   * Also HTTP Basic, the token as the password and any user name, so that a browser's login
   * prompt can open the status page. The admin API takes bearer tokens only.
   */
  readonly basic?: boolean
}

export class TokenAuth {
  readonly #tokens: readonly { principal: Principal; digest: Buffer }[]

  constructor(tokens: AdminConfig['tokens']) {
    this.#tokens = tokens.map((t) => ({ principal: { name: t.name, role: t.role }, digest: Buffer.from(t.sha256, 'hex') }))
  }

  get configured(): boolean {
    return this.#tokens.length > 0
  }

  /** The principal an `Authorization` header value stands for, or undefined. */
  authenticate(header: string | undefined, schemes: AuthSchemes = {}): Principal | undefined {
    if (header === undefined) return undefined
    const m = /^Bearer[ \t]+(\S{1,1024})\s*$/i.exec(header)
    if (m) return this.#match(m[1]!)
    const password = schemes.basic ? basicPassword(header) : undefined
    return password === undefined ? undefined : this.#match(password)
  }

  #match(token: string): Principal | undefined {
    const digest = Buffer.from(hashToken(token), 'hex')
    // Compare against every token, so the time taken says nothing about which one matched.
    let found: Principal | undefined
    for (const t of this.#tokens) if (timingSafeEqual(t.digest, digest) && !found) found = t.principal
    return found
  }
}

/** The password of an HTTP Basic header (RFC 7617: base64 of `user:password`), or undefined. */
function basicPassword(header: string): string | undefined {
  // 1400 base64 characters: room for a bearer-sized token (1024) and a user name.
  const m = /^Basic[ \t]+([A-Za-z0-9+/]{1,1400}={0,2})\s*$/i.exec(header)
  if (!m) return undefined
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  const password = colon < 0 ? '' : decoded.slice(colon + 1)
  return password === '' ? undefined : password
}

/** Whether a role may make a request with this method: read tokens only read. */
export function allows(role: Role, method: string): boolean {
  return role === 'admin' || method === 'GET' || method === 'HEAD'
}
