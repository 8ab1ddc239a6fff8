// Kicking a user's live sessions on one server through Dovecot's doveadm HTTP API (config
// `doveadm`, src/pools/doveadm.ts), after a pool's move-user pinned them elsewhere: sessions
// opened before the move would otherwise stay on the old member until the client disconnects.
// A kick that fails is an answer, not an error, because the move it follows has already happened.

import type { Logger } from '../log.js'
import { doveadmCommand, DoveadmError, type DoveadmConfig } from '../pools/doveadm.js'

export interface KickOutcome {
  readonly kicked: boolean
  /** Why not, when not kicked. */
  readonly reason?: string
}

/**
 * Runs `doveadm kick <user>` on the server at `address`. The command's parameter is `mask`, an
 * array of user masks (doveadm-kick.c); the address is a plain user name there, so it matches only
 * itself unless it holds `*` or `?`, which a canonical dot-atom address may: such an address is
 * not kicked, rather than kicking every user it would match.
 */
export async function kick(c: DoveadmConfig, address: string, user: string, logger: Logger): Promise<KickOutcome> {
  if (/[*?]/.test(user)) return { kicked: false, reason: `${user} contains * or ?, which doveadm kick takes as a wildcard: kick it by hand` }
  try {
    await doveadmCommand(c, address, 'kick', { mask: [user] })
    return { kicked: true }
  } catch (e) {
    if (!(e instanceof DoveadmError)) throw e
    // The message names the server, never the key.
    logger.warn({ address, user, reason: e.message }, 'kicking the sessions of a moved pool user failed; the move stands')
    return { kicked: false, reason: e.message }
  }
}
