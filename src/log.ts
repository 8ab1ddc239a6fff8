// pino with redaction: secrets must never reach logs, whatever object a caller passes in. Every
// line logged while a request is being answered carries that request's ids (see requestContext),
// without the code that logs it having to know which request it serves.

import { AsyncLocalStorage } from 'node:async_hooks'
import { pino, type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

/**
 * Paths pino censors wherever they appear in a logged object. pino's paths are exact (a `*` is
 * one level), so each secret-carrying shape is listed: bare fields, one and two levels down,
 * and the places HTTP requests keep them (headers, bodies). Nothing logs whole requests today;
 * these are the net under a future `log.debug({ req })`.
 */
export const REDACT_PATHS = [
  'password',
  'bindPassword',
  'passwordHash',
  'token',
  'secret',
  'authorization',
  'url',
  'storeUrl',
  '*.password',
  '*.bindPassword',
  '*.passwordHash',
  '*.token',
  '*.secret',
  '*.url',
  '*.authorization',
  '*.*.password',
  '*.*.bindPassword',
  '*.*.passwordHash',
  '*.*.token',
  '*.*.secret',
  '*.*.url',
  'headers["auth-pass"]',
  'headers["x-auth-key"]',
  'headers.cookie',
  'req.headers["auth-pass"]',
  'req.headers["x-auth-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.body.password',
  'body.password',
]

/**
 * The ids of the request being answered: `conn` and `req` (a connection number and the request's
 * number on it) on the socketmap, tcp_table, policy and dict listeners, `reqId` (fastify's) on
 * HTTP. Every line logged inside requestContext.run() carries them.
 */
export type RequestIds = { readonly conn: number; readonly req: number } | { readonly reqId: string }

export const requestContext = new AsyncLocalStorage<RequestIds>()

export function createLogger(level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      name: 'mailhostd',
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // Merged into the line's own fields; a field the call names itself wins. A fresh object
      // each time: pino merges the line's fields into what the mixin returns.
      mixin: () => {
        const ids = requestContext.getStore()
        return ids === undefined ? {} : { ...ids }
      },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // "level":"warn" rather than 40: admins grep and jq these lines.
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  )
}

/** A logger that drops everything, for unit tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' })

/**
 * Logs at most once per `intervalMs` for each topic and says how many were suppressed, so a
 * directory outage yields a readable log instead of one warning per Postfix request.
 */
export class LogThrottle {
  readonly #last = new Map<string, { at: number; suppressed: number }>()
  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Calls `emit(suppressedSinceLast)` if the topic may log now. */
  run(topic: string, emit: (suppressed: number) => void): void {
    const t = this.now()
    const seen = this.#last.get(topic)
    if (seen && t - seen.at < this.intervalMs) {
      seen.suppressed++
      return
    }
    if (this.#last.size > 1000) this.#last.clear()
    this.#last.set(topic, { at: t, suppressed: 0 })
    emit(seen?.suppressed ?? 0)
  }
}
