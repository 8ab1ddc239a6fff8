// One registry of coded errors (fastify style). Codes are stable: they appear in logs, in
// problem+json bodies and in tests, so never renumber or reuse one.

export const ErrorCodes = {
  CONFIG_INVALID: 'MH_CONFIG_INVALID',
  CONFIG_SECRET: 'MH_CONFIG_SECRET',
  STORE_UNAVAILABLE: 'MH_STORE_UNAVAILABLE',
  STORE_MIGRATION: 'MH_STORE_MIGRATION',
  DIRECTORY_UNAVAILABLE: 'MH_DIRECTORY_UNAVAILABLE',
  DIRECTORY_TIMEOUT: 'MH_DIRECTORY_TIMEOUT',
  DIRECTORY_CIRCUIT_OPEN: 'MH_DIRECTORY_CIRCUIT_OPEN',
  DIRECTORY_DATA: 'MH_DIRECTORY_DATA',
  DUPLICATE_OWNER: 'MH_DUPLICATE_OWNER',
  ALIAS_LOOP: 'MH_ALIAS_LOOP',
  LOOKUP_DEADLINE: 'MH_LOOKUP_DEADLINE',
  UNKNOWN_MAP: 'MH_UNKNOWN_MAP',
  PASSWORD_SCHEME: 'MH_PASSWORD_SCHEME',
  // Password hashing on worker threads (auth/password-pool.ts): temporary failures.
  PASSWORD_BUSY: 'MH_PASSWORD_BUSY',
  PASSWORD_WORKER: 'MH_PASSWORD_WORKER',
  // Admin API (problem+json `code`); each maps to one HTTP status in ADMIN_STATUS.
  UNAUTHORIZED: 'MH_UNAUTHORIZED',
  FORBIDDEN: 'MH_FORBIDDEN',
  VALIDATION: 'MH_HTTP_VALIDATION',
  NOT_FOUND: 'MH_NOT_FOUND',
  CONFLICT: 'MH_CONFLICT',
  ADDRESS_TAKEN: 'MH_ADDRESS_TAKEN',
  DOMAIN_NOT_SERVED: 'MH_DOMAIN_NOT_SERVED',
  BACKEND_IN_USE: 'MH_BACKEND_IN_USE',
  NO_ELIGIBLE_BACKEND: 'MH_NO_ELIGIBLE_BACKEND',
  ACCOUNT_MOVING: 'MH_ACCOUNT_MOVING',
  MOVE_STATE: 'MH_MOVE_STATE',
  IDEMPOTENCY_MISMATCH: 'MH_IDEMPOTENCY_MISMATCH',
  IDEMPOTENCY_IN_PROGRESS: 'MH_IDEMPOTENCY_IN_PROGRESS',
  DIRECTORY_READ_ONLY: 'MH_DIRECTORY_READ_ONLY',
  DIRECTORY_WRITE: 'MH_DIRECTORY_WRITE',
} as const

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export class MailhostdError extends Error {
  readonly code: ErrorCode
  /**
   * True when the condition may clear by itself (directory down, timeout): callers answer with
   * a temporary failure. False for configuration mistakes that need a human.
   */
  readonly transient: boolean

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; transient?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MailhostdError'
    this.code = code
    this.transient = options?.transient ?? true
  }
}

export class ConfigError extends MailhostdError {
  /** The dotted config key at fault, e.g. `directory.ldap.url`, or '' for the whole file. */
  readonly key: string
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.CONFIG_INVALID, key ? `${key}: ${message}` : message, { ...options, transient: false })
    this.name = 'ConfigError'
    this.key = key
  }
}

/** The directory did not answer (connect refused, bind failed, LDAP/SQL error, timeout). */
export class DirectoryError extends MailhostdError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, { ...options, transient: true })
    this.name = 'DirectoryError'
  }
}

/** The directory answered, but with data we must not guess about (duplicates, loops, missing attributes). */
export class DirectoryDataError extends MailhostdError {
  constructor(code: ErrorCode, message: string) {
    super(code, message, { transient: false })
    this.name = 'DirectoryDataError'
  }
}

/** The lookup deadline passed before the directory answered. */
export class DeadlineError extends MailhostdError {
  constructor(ms: number) {
    super(ErrorCodes.LOOKUP_DEADLINE, `directory did not answer within ${ms} ms`, { transient: true })
    this.name = 'DeadlineError'
  }
}

/** A refused admin request: the code decides the HTTP status (see ADMIN_STATUS). */
export class AdminError extends MailhostdError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, { ...options, transient: false })
    this.name = 'AdminError'
  }
}

export const ADMIN_STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.UNAUTHORIZED]: 401,
  [ErrorCodes.FORBIDDEN]: 403,
  [ErrorCodes.VALIDATION]: 400,
  [ErrorCodes.PASSWORD_SCHEME]: 400,
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.CONFLICT]: 409,
  [ErrorCodes.ADDRESS_TAKEN]: 409,
  [ErrorCodes.BACKEND_IN_USE]: 409,
  [ErrorCodes.ACCOUNT_MOVING]: 409,
  [ErrorCodes.MOVE_STATE]: 409,
  [ErrorCodes.IDEMPOTENCY_IN_PROGRESS]: 409,
  [ErrorCodes.DOMAIN_NOT_SERVED]: 422,
  [ErrorCodes.NO_ELIGIBLE_BACKEND]: 422,
  [ErrorCodes.IDEMPOTENCY_MISMATCH]: 422,
  [ErrorCodes.DIRECTORY_READ_ONLY]: 501,
  [ErrorCodes.DIRECTORY_WRITE]: 502,
  [ErrorCodes.DIRECTORY_UNAVAILABLE]: 503,
  [ErrorCodes.DIRECTORY_TIMEOUT]: 503,
  [ErrorCodes.DIRECTORY_CIRCUIT_OPEN]: 503,
  [ErrorCodes.STORE_UNAVAILABLE]: 503,
}

export function isMailhostdError(e: unknown): e is MailhostdError {
  return e instanceof MailhostdError
}

/** A short, log-safe description of any thrown value. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message || e.name
  return String(e)
}
