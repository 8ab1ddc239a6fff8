// Splits what a listener sent back into replies, checking each is well formed for its protocol.
// Written independently of the daemon's encoders: whatever garbage came in, what goes out must
// still be something Postfix or Dovecot can read.

import { SOCKETMAP_MAX_REPLY_BYTES } from '../../src/protocols/socketmap.js'
import { TCP_TABLE_MAX_REPLY_BYTES } from '../../src/protocols/tcp-table.js'
import { POLICY_MAX_ACTION_BYTES } from '../../src/protocols/policy.js'

export interface Replies {
  readonly replies: string[]
  /** Why the stream is not a sequence of whole, well-formed replies. */
  readonly bad?: string
}

/** Netstrings whose payload is a socketmap status: OK <value>, NOTFOUND, TEMP, TIMEOUT or PERM. */
export function socketmapReplies(wire: Buffer): Replies {
  const replies: string[] = []
  let at = 0
  while (at < wire.length) {
    const colon = wire.indexOf(0x3a, at)
    const digits = wire.subarray(at, colon < 0 ? wire.length : colon).toString('latin1')
    if (colon < 0 || !/^(0|[1-9][0-9]{0,5})$/.test(digits)) return { replies, bad: `bad netstring length at byte ${at}` }
    const len = Number(digits)
    const end = colon + 1 + len
    if (len > SOCKETMAP_MAX_REPLY_BYTES || wire[end] !== 0x2c) return { replies, bad: `truncated or oversized netstring at byte ${at}` }
    const payload = wire.subarray(colon + 1, end).toString('utf8')
    if (!/^(OK .+|NOTFOUND .*|(TEMP|TIMEOUT|PERM) [^\p{Cc}]+)$/su.test(payload)) return { replies, bad: `not a socketmap status: ${JSON.stringify(payload.slice(0, 80))}` }
    replies.push(payload)
    at = end + 1
  }
  return { replies }
}

/** `<digit><digit><digit> <hex-quoted text>\n` lines, each within Postfix's 4096-byte limit. */
export function tcpTableReplies(wire: Buffer): Replies {
  return lines(wire, '\n', (line) =>
    /^[245][0-9]{2} [\x21-\x7e]*$/.test(line) && line.length + 1 <= TCP_TABLE_MAX_REPLY_BYTES ? undefined : 'not a tcp_table reply line',
  )
}

/** `action=<text>\n\n` blocks: one action, no line breaks inside it. */
export function policyReplies(wire: Buffer): Replies {
  return lines(wire, '\n\n', (block) =>
    block.startsWith('action=') && !/[\n\r\0]/.test(block) && Buffer.byteLength(block) <= 'action='.length + POLICY_MAX_ACTION_BYTES
      ? undefined
      : 'not an action block',
  )
}

/** Dict reply lines: O<value>, N, or F<reason>, escaped so no raw CR or NUL appears. */
export function dictReplies(wire: Buffer): Replies {
  return lines(wire, '\n', (line) => (/^(O[^\r\0]*|N|F[^\r\0]*)$/.test(line) ? undefined : 'not a dict reply line'))
}

function lines(wire: Buffer, end: string, check: (item: string) => string | undefined): Replies {
  const text = wire.toString('utf8')
  const parts = text.split(end)
  const tail = parts.pop()!
  if (tail !== '') return { replies: parts, bad: `reply cut short: ${JSON.stringify(tail.slice(0, 80))}` }
  for (const p of parts) {
    const why = check(p)
    if (why !== undefined) return { replies: parts, bad: `${why}: ${JSON.stringify(p.slice(0, 80))}` }
  }
  return { replies: parts }
}
