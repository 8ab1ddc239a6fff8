// pino with redaction: secrets must never reach logs, whatever object a caller passes in. Every
// line logged while a request is being answered carries that request's ids (see requestContext),
// without the code that logs it having to know which request it serves.

import { AsyncLocalStorage } from 'node:async_hooks'
import { pino, type Logger, type LevelWithSilent } from 'pino'
import { censorChildBindings, censorSecrets } from './log-redact.js'

export type { Logger }

/**
 * The ids of the request being answered: `conn` and `req` (a connection number and the request's
 * number on it) on the socketmap, tcp_table, policy and dict listeners, `reqId` (fastify's) on
 * HTTP. Every line logged inside requestContext.run() carries them.
 */
export type RequestIds = { readonly conn: number; readonly req: number } | { readonly reqId: string }

export const requestContext = new AsyncLocalStorage<RequestIds>()

/** The ids given to runWithRequestIds() while its synchronous function runs. */
let syncRequestIds: RequestIds | undefined

/**
 * Runs a synchronous `fn` with `ids` as the request ids of every line it logs, like
 * requestContext.run() but without entering the AsyncLocalStorage: on Node 20 that turns on
 * promise hooks for every promise, a cost the listeners' cached answers (no promise, no callback
 * at all) need not pay. Nothing `fn` starts asynchronously carries the ids: use it only for work
 * that is done when it returns, and requestContext.run() for the rest.
 */
export function runWithRequestIds<T>(ids: RequestIds, fn: () => T): T {
  const outer = syncRequestIds
  syncRequestIds = ids
  try {
    return fn()
  } finally {
    syncRequestIds = outer
  }
}

export function createLogger(level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Logger {
  return censorChildBindings(pino(
    {
      name: 'mailhostd',
      level,
      // Merged into the line's own fields; a field the call names itself wins. A fresh object
      // each time: pino merges the line's fields into what the mixin returns.
      mixin: () => {
        const ids = syncRequestIds ?? requestContext.getStore()
        return ids === undefined ? {} : { ...ids }
      },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // "level":"warn" rather than 40: admins grep and jq these lines. Secrets are censored at
      // any depth in each line's fields and in the bindings (log-redact.ts).
      formatters: { level: (label) => ({ level: label }), log: censorSecrets, bindings: censorSecrets },
    },
    destination,
  ))
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
