// The line listeners under fuzz: for each, its valid requests and their answers, the codec that
// supplies delimiters and hostile frames, how its reply stream is read, and what it sends before
// closing on a hostile (oversized) frame.

import { socketmapErrorReply } from '../../src/protocols/socketmap.js'
import { tcpTableErrorReply } from '../../src/protocols/tcp-table.js'
import { dictTarget } from '../codecs/dict.js'
import { policyTarget } from '../codecs/policy.js'
import { socketmapTarget } from '../codecs/socketmap.js'
import type { CodecTarget } from '../codecs/target.js'
import { tcpTableTarget } from '../codecs/tcp-table.js'
import { DICT_HELLO, dictRequests, policyRequests, socketmapRequests, tcpTableRequests, type ValidRequest } from './expectations.js'
import { dictReplies, policyReplies, socketmapReplies, tcpTableReplies, type Replies } from './replies.js'

export interface ListenerTarget {
  /** The listener's name in the daemon's ready line. */
  readonly name: string
  readonly codec: CodecTarget
  readonly valid: readonly ValidRequest[]
  /** Sent first on a connection (the dict handshake), unless the fuzzer damages or drops it. */
  readonly preamble?: Buffer
  replies(wire: Buffer): Replies
  /** The last reply before the close that follows an oversized request; undefined: no reply. */
  readonly tooLargeReply?: string
}

const lastLine = (b: Buffer) => b.toString('latin1').slice(0, -1)

export function listenerTargets(): ListenerTarget[] {
  const netstringPayload = (b: Buffer) => b.toString('latin1').slice(b.indexOf(0x3a) + 1, -1)
  return [
    { name: 'socketmap', codec: socketmapTarget, valid: socketmapRequests(), replies: socketmapReplies, tooLargeReply: netstringPayload(socketmapErrorReply('too-large')) },
    { name: 'tcp_table transport', codec: tcpTableTarget, valid: tcpTableRequests('transport'), replies: tcpTableReplies, tooLargeReply: lastLine(tcpTableErrorReply('too-large')) },
    { name: 'tcp_table recipient', codec: tcpTableTarget, valid: tcpTableRequests('recipient'), replies: tcpTableReplies, tooLargeReply: lastLine(tcpTableErrorReply('too-large')) },
    // Policy and dict close without a reply on a bad request: Postfix and Dovecot retry.
    { name: 'policy', codec: policyTarget, valid: policyRequests(), replies: policyReplies },
    { name: 'dict', codec: dictTarget, valid: dictRequests(), preamble: DICT_HELLO, replies: dictReplies },
  ]
}
