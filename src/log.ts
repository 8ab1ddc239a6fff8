// pino with redaction: secrets must never reach logs, whatever object a caller passes in.

import { pino, type Logger, type LevelWithSilent } from 'pino'

export type { Logger }

/** Paths pino censors wherever they appear in a logged object. */
export const REDACT_PATHS = [
  'password',
  'bindPassword',
  '*.password',
  '*.bindPassword',
  '*.*.bindPassword',
  'url',
  '*.url',
  'storeUrl',
  'authorization',
  'secret',
  '*.secret',
  'headers["auth-pass"]',
  'req.headers["auth-pass"]',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-auth-key"]',
]

export function createLogger(level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      name: 'mailhostd',
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
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
