// One registry of coded errors, in the @fastify/error style: every code is declared here once,
// with whether its condition may clear by itself and the HTTP status it answers with where it has
// one of its own; everything else (the problem+json status, the error classes' `transient`) is
// read from the declaration. Codes are stable: they appear in logs, problem+json bodies, metric
// labels, docs and tests, so never renumber, reuse or rename one. test/errors.test.ts keeps
// every `MH_` string literal in src/ inside this file.

interface Declaration {
  readonly code: `MH_${string}`
  /**
   * True when the condition may clear by itself (directory down, timeout, workers busy): callers
   * answer with a temporary failure. False when a human must act (configuration, directory data)
   * or the request itself is refused.
   */
  readonly transient: boolean
  /** The HTTP status the code answers with, when it has one of its own (see httpStatusOf). */
  readonly status?: number
}

const REGISTRY = {
  CONFIG_INVALID: { code: 'MH_CONFIG_INVALID', transient: false },
  STORE_UNAVAILABLE: { code: 'MH_STORE_UNAVAILABLE', transient: true, status: 503 },
  STORE_MIGRATION: { code: 'MH_STORE_MIGRATION', transient: false },
  DIRECTORY_UNAVAILABLE: { code: 'MH_DIRECTORY_UNAVAILABLE', transient: true, status: 503 },
  DIRECTORY_TIMEOUT: { code: 'MH_DIRECTORY_TIMEOUT', transient: true, status: 503 },
  DIRECTORY_CIRCUIT_OPEN: { code: 'MH_DIRECTORY_CIRCUIT_OPEN', transient: true, status: 503 },
  // The directory answered with data we must not guess about: someone must fix the entries.
  DIRECTORY_DATA: { code: 'MH_DIRECTORY_DATA', transient: false },
  DUPLICATE_OWNER: { code: 'MH_DUPLICATE_OWNER', transient: false },
  ALIAS_LOOP: { code: 'MH_ALIAS_LOOP', transient: false },
  LOOKUP_DEADLINE: { code: 'MH_LOOKUP_DEADLINE', transient: true },
  // A stored value in a scheme we cannot verify, or a password the scheme cannot hash.
  PASSWORD_SCHEME: { code: 'MH_PASSWORD_SCHEME', transient: false, status: 400 },
  // Password hashing on worker threads (auth/password-pool.ts): temporary failures.
  PASSWORD_BUSY: { code: 'MH_PASSWORD_BUSY', transient: true },
  PASSWORD_WORKER: { code: 'MH_PASSWORD_WORKER', transient: true },
  // Admin API refusals (problem+json `code`).
  UNAUTHORIZED: { code: 'MH_UNAUTHORIZED', transient: false, status: 401 },
  FORBIDDEN: { code: 'MH_FORBIDDEN', transient: false, status: 403 },
  VALIDATION: { code: 'MH_HTTP_VALIDATION', transient: false, status: 400 },
  NOT_FOUND: { code: 'MH_NOT_FOUND', transient: false, status: 404 },
  CONFLICT: { code: 'MH_CONFLICT', transient: false, status: 409 },
  ADDRESS_TAKEN: { code: 'MH_ADDRESS_TAKEN', transient: false, status: 409 },
  DOMAIN_NOT_SERVED: { code: 'MH_DOMAIN_NOT_SERVED', transient: false, status: 422 },
  BACKEND_IN_USE: { code: 'MH_BACKEND_IN_USE', transient: false, status: 409 },
  NO_ELIGIBLE_BACKEND: { code: 'MH_NO_ELIGIBLE_BACKEND', transient: false, status: 422 },
  ACCOUNT_MOVING: { code: 'MH_ACCOUNT_MOVING', transient: false, status: 409 },
  MOVE_STATE: { code: 'MH_MOVE_STATE', transient: false, status: 409 },
  IDEMPOTENCY_MISMATCH: { code: 'MH_IDEMPOTENCY_MISMATCH', transient: false, status: 422 },
  IDEMPOTENCY_IN_PROGRESS: { code: 'MH_IDEMPOTENCY_IN_PROGRESS', transient: false, status: 409 },
  DIRECTORY_READ_ONLY: { code: 'MH_DIRECTORY_READ_ONLY', transient: false, status: 501 },
  DIRECTORY_WRITE: { code: 'MH_DIRECTORY_WRITE', transient: false, status: 502 },
  // Dovecot's doveadm HTTP API (src/pools/doveadm.ts): a command that did not run or whose answer
  // could not be read, and a reply larger than mailhostd reads (MAX_DOVEADM_REPLY_BYTES).
  DOVEADM_FAILED: { code: 'MH_DOVEADM_FAILED', transient: true },
  DOVEADM_REPLY_TOO_LARGE: { code: 'MH_DOVEADM_REPLY_TOO_LARGE', transient: false },
  // The HTTP layer's own refusals: fastify's and Node's parser's, routes that do not exist, and
  // the login endpoints' shared secret.
  HTTP_NOT_FOUND: { code: 'MH_HTTP_NOT_FOUND', transient: false, status: 404 },
  HTTP_TOO_LARGE: { code: 'MH_HTTP_TOO_LARGE', transient: false, status: 413 },
  HTTP_MEDIA_TYPE: { code: 'MH_HTTP_MEDIA_TYPE', transient: false, status: 415 },
  // Any other 4xx fastify refuses with: the status is the one fastify chose.
  HTTP_ERROR: { code: 'MH_HTTP_ERROR', transient: false },
  HTTP_TIMEOUT: { code: 'MH_HTTP_TIMEOUT', transient: false, status: 408 },
  HTTP_HEADERS_TOO_LARGE: { code: 'MH_HTTP_HEADERS_TOO_LARGE', transient: false, status: 431 },
  HTTP_MALFORMED: { code: 'MH_HTTP_MALFORMED', transient: false, status: 400 },
  // 503: the endpoints cannot work until an operator sets login.secret.
  LOGIN_NO_SECRET: { code: 'MH_LOGIN_NO_SECRET', transient: false, status: 503 },
  LOGIN_SECRET: { code: 'MH_LOGIN_SECRET', transient: false, status: 401 },
  // What a thrown value that is not a MailhostdError is logged, counted and answered as: a bug.
  INTERNAL: { code: 'MH_INTERNAL', transient: false, status: 500 },
} as const satisfies Record<string, Declaration>

type Registry = typeof REGISTRY
type Name = keyof Registry
type CodesWhere<P> = { [K in Name]: Registry[K] extends P ? Registry[K]['code'] : never }[Name]

export type ErrorCode = Registry[Name]['code']
/** Codes of conditions that may clear by themselves. */
export type TransientCode = CodesWhere<{ transient: true }>
/** Codes of conditions a human must fix. */
export type PermanentCode = CodesWhere<{ transient: false }>
/** Codes of refused requests: permanent, with an HTTP status of their own. */
export type RefusalCode = CodesWhere<{ transient: false; status: number }>

export const ErrorCodes = Object.freeze(
  Object.fromEntries(Object.entries(REGISTRY).map(([name, d]) => [name, d.code])) as { readonly [K in Name]: Registry[K]['code'] },
)

const BY_CODE: ReadonlyMap<string, Declaration> = new Map(Object.values(REGISTRY).map((d) => [d.code, d]))

/** The declaration of a code, as REGISTRY holds it. */
export function declarationOf(code: ErrorCode): Declaration {
  const d = BY_CODE.get(code)
  if (d === undefined) throw new TypeError(`undeclared error code ${String(code)}`)
  return d
}

/**
 * The HTTP status a MailhostdError with this code answers with: its own, else 503 for a
 * condition that may clear by itself (retry later) and 500 for one that will not.
 */
export function httpStatusOf(code: ErrorCode): number {
  const d = declarationOf(code)
  return d.status ?? (d.transient ? 503 : 500)
}

export class MailhostdError extends Error {
  readonly code: ErrorCode
  /** Whether the condition may clear by itself: decided by the code's declaration, never by the thrower. */
  readonly transient: boolean

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MailhostdError'
    this.code = code
    this.transient = declarationOf(code).transient
  }
}

export class ConfigError extends MailhostdError {
  /** The dotted config key at fault, e.g. `directory.ldap.url`, or '' for the whole file. */
  readonly key: string
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.CONFIG_INVALID, key ? `${key}: ${message}` : message, options)
    this.name = 'ConfigError'
    this.key = key
  }
}

/** The directory did not answer (connect refused, bind failed, LDAP/SQL error, timeout). */
export class DirectoryError extends MailhostdError {
  declare readonly code: TransientCode
  constructor(code: TransientCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'DirectoryError'
  }
}

/** The directory answered, but with data we must not guess about (duplicates, loops, missing attributes). */
export class DirectoryDataError extends MailhostdError {
  declare readonly code: PermanentCode
  constructor(code: PermanentCode, message: string) {
    super(code, message)
    this.name = 'DirectoryDataError'
  }
}

/** The lookup deadline passed before the directory answered. */
export class DeadlineError extends MailhostdError {
  constructor(ms: number) {
    super(ErrorCodes.LOOKUP_DEADLINE, `directory did not answer within ${ms} ms`)
    this.name = 'DeadlineError'
  }
}

/** A refused admin request: the code's declared status is the HTTP status. */
export class AdminError extends MailhostdError {
  declare readonly code: RefusalCode
  constructor(code: RefusalCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
    this.name = 'AdminError'
  }
}

export function isMailhostdError(e: unknown): e is MailhostdError {
  return e instanceof MailhostdError
}

/** The code a failure is logged and counted under: its own, or MH_INTERNAL for anything not ours. */
export function codeOf(e: unknown): ErrorCode {
  return isMailhostdError(e) ? e.code : ErrorCodes.INTERNAL
}

/** A short, log-safe description of any thrown value. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message || e.name
  return String(e)
}
