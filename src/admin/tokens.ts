// Bearer tokens for the admin API. The configuration holds only each token's SHA-256: a leaked
// config file or backup grants nothing. Tokens are long random strings (mailhostctl token new),
// so one unsalted hash is enough; a slow hash would only slow every API call. mailhostctl
// imports this module too (token new), so it depends on node built-ins only.

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

export class TokenAuth {
  readonly #tokens: readonly { principal: Principal; digest: Buffer }[]

  constructor(tokens: AdminConfig['tokens']) {
    this.#tokens = tokens.map((t) => ({ principal: { name: t.name, role: t.role }, digest: Buffer.from(t.sha256, 'hex') }))
  }

  get configured(): boolean {
    return this.#tokens.length > 0
  }

  /** The principal an `Authorization` header value stands for, or undefined. */
  authenticate(header: string | undefined): Principal | undefined {
    const m = header === undefined ? null : /^Bearer[ \t]+(\S{1,1024})\s*$/i.exec(header)
    if (!m) return undefined
    const digest = Buffer.from(hashToken(m[1]!), 'hex')
    // Compare against every token, so the time taken says nothing about which one matched.
    let found: Principal | undefined
    for (const t of this.#tokens) if (timingSafeEqual(t.digest, digest) && !found) found = t.principal
    return found
  }
}

/** Whether a role may make a request with this method: read tokens only read. */
export function allows(role: Role, method: string): boolean {
  return role === 'admin' || method === 'GET' || method === 'HEAD'
}
