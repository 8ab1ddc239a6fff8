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
    },
    destination,
  )
}

/** A logger that drops everything, for unit tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' })
