// Exit codes, stable for scripts (docs/admin.md, "mailhostctl"), and the one place that turns a
// failure into its line on standard error and its code.

import { ApiError, BadAnswer, DaemonUnreachable } from './client.js'
import { TokenUnavailable } from './secrets.js'
import { UsageError } from './args.js'
import { printable } from './table.js'

export const EXIT = {
  OK: 0,
  /** 404; lookup: not found. */
  NOT_FOUND: 1,
  /** 5xx, or an answer we cannot use; lookup: temporary or configuration failure. */
  FAILURE: 2,
  /** 400, 409, 422: the daemon refused and changed nothing. */
  REFUSED: 3,
  USAGE: 64,
  UNAVAILABLE: 69,
  /** 401, 403: no token, an unknown one, or a read token on a write. */
  NOPERM: 77,
} as const

export function exitForStatus(status: number): number {
  if (status === 404) return EXIT.NOT_FOUND
  if (status === 401 || status === 403) return EXIT.NOPERM
  if (status >= 500) return EXIT.FAILURE
  // Other 4xx (405, 413, 415, 429) are refusals too: nothing was changed, the request must change.
  if (status >= 400) return EXIT.REFUSED
  // A redirect (not followed) or an informational status is no answer the CLI can use.
  return EXIT.FAILURE
}

export function exitFor(e: unknown): number {
  if (e instanceof ApiError) return exitForStatus(e.status)
  if (e instanceof DaemonUnreachable) return EXIT.UNAVAILABLE
  if (e instanceof UsageError) return EXIT.USAGE
  if (e instanceof TokenUnavailable) return EXIT.NOPERM
  if (e instanceof BadAnswer) return EXIT.FAILURE
  return EXIT.FAILURE
}

/** `mailhostctl: <detail> (<code>)` for the daemon's refusals, `mailhostctl: <message>` otherwise. */
export function errorLine(e: unknown): string {
  return `mailhostctl: ${printable(e instanceof Error ? e.message : String(e))}\n`
}
