// Kicking a user's live sessions on one server through Dovecot's doveadm HTTP API (config
// `doveadm`), after a pool's move-user pinned them elsewhere: sessions opened before the move
// would otherwise stay on the old member until the client disconnects. The API key is sent only
// in the Authorization header and never logged; a kick that fails is an answer, not an error,
// because the move it follows has already happened.

import { toMs } from '../config/duration.js'
import type { Config } from '../config/schema.js'
import { describeError } from '../errors.js'
import type { Logger } from '../log.js'

export interface KickOutcome {
  readonly kicked: boolean
  /** Why not, when not kicked. */
  readonly reason?: string
}

type DoveadmConfig = NonNullable<Config['doveadm']>

/** The doveadm HTTP API's URL on a server (an IPv6 address goes in brackets). */
export function doveadmUrl(address: string, port: number): string {
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}/doveadm/v1`
}

/**
 * Runs `doveadm kick <address>` on the server at `address`. The command's parameter is `mask`, an
 * array of user masks (doveadm-kick.c); the address is a plain user name there, so it matches only
 * itself unless it holds `*` or `?`, which a canonical dot-atom address may: such an address is
 * not kicked, rather than kicking every user it would match.
 */
export async function kick(c: DoveadmConfig, address: string, user: string, logger: Logger): Promise<KickOutcome> {
  if (/[*?]/.test(user)) return { kicked: false, reason: `${user} contains * or ?, which doveadm kick takes as a wildcard: kick it by hand` }
  const url = doveadmUrl(address, c.port)
  let outcome: KickOutcome
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `X-Dovecot-API ${Buffer.from(c.apiKey).toString('base64')}` },
      body: JSON.stringify([['kick', { mask: [user] }, 'k1']]),
      signal: AbortSignal.timeout(toMs(c.timeout)),
    })
    const text = await res.text()
    outcome = res.ok ? outcomeOf(text) : { kicked: false, reason: `doveadm at ${url} answered HTTP ${res.status}` }
  } catch (e) {
    outcome = { kicked: false, reason: `doveadm at ${url}: ${describeError(e)}` }
  }
  if (!outcome.kicked) logger.warn({ url, user, reason: outcome.reason }, 'kicking the sessions of a moved pool user failed; the move stands')
  return outcome
}

/** The doveadm HTTP API answers `[["doveadmResponse", ..., tag]]` or `[["error", {exitCode}, tag]]`. */
function outcomeOf(text: string): KickOutcome {
  let reply: unknown
  try {
    reply = JSON.parse(text)
  } catch {
    return { kicked: false, reason: 'doveadm answered something that is not JSON' }
  }
  const first = Array.isArray(reply) && Array.isArray(reply[0]) ? (reply[0] as unknown[]) : undefined
  if (first?.[0] === 'doveadmResponse') return { kicked: true }
  if (first?.[0] === 'error') {
    const detail = first[1] as { type?: unknown; exitCode?: unknown } | undefined
    const type = typeof detail?.type === 'string' ? detail.type : 'error'
    const exit = typeof detail?.exitCode === 'number' ? ` ${detail.exitCode}` : ''
    return { kicked: false, reason: `doveadm kick failed (${type}${exit})` }
  }
  return { kicked: false, reason: 'doveadm answered an unexpected reply' }
}
