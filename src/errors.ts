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

export function isMailhostdError(e: unknown): e is MailhostdError {
  return e instanceof MailhostdError
}

/** A short, log-safe description of any thrown value. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message || e.name
  return String(e)
}
