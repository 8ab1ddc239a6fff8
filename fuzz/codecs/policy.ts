// Policy delegation requests: `name=value` lines ended by an empty line, no escaping.

import { PolicyDecoder } from '../../src/protocols/policy.js'
import type { PolicyRequest } from '../../src/policy/types.js'
import type { DecodedItem } from '../../src/protocols/decoder.js'
import type { Rng } from '../rng.js'
import { addressLike, text } from '../text.js'
import { bytesOf, decodeStream, error, request, type CodecTarget } from './target.js'

const NAMES = ['request', 'protocol_state', 'protocol_name', 'client_address', 'sender', 'recipient', 'instance', 'policy_context', 'queue_id', 'size']
const PROBE = Buffer.from('request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=alice@example.org\n\n')

function item(t: DecodedItem<PolicyRequest>) {
  if (t.type === 'error') return { item: error(t.error) }
  const attrs = [...t.request]
  const bad = attrs.find(([n, v]) => n === '' || /[=\n\0]/.test(n) || (v !== null && /[\n\0]/.test(v)))
  return { item: request(attrs), ...(bad ? { badShape: `attribute ${JSON.stringify(bad)}` } : {}) }
}

/** A value as Postfix could send it: anything but LF and NUL. */
const value = (rng: Rng) => (rng.chance(0.5) ? addressLike(rng) : text(rng, 30)).replace(/[\n\0]/g, '_')

export const policyTarget: CodecTarget = {
  name: 'policy',
  delimiters: bytesOf('\n', '\n\n', '=', '\0', '\r', '\r\n'),
  streaming: true,
  valid(rng: Rng, max: number) {
    const attrs: [string, string][] = []
    for (let n = rng.int(0, 12); n > 0; n--) attrs.push([rng.chance(0.9) ? rng.pick(NAMES) : `x_${rng.u32()}`, value(rng)])
    let wire = attrs.map(([n, v]) => `${n}=${v}\n`).join('') + '\n'
    if (Buffer.byteLength(wire) > max) {
      attrs.length = 0
      wire = '\n'
    }
    // Repeated names: the last value wins, in the position of the first.
    return { bytes: Buffer.from(wire), expect: request([...new Map(attrs)]) }
  },
  hostile(rng: Rng, max: number) {
    // One endless value, or many short lines that only add up past the limit.
    const wire = rng.chance(0.5) ? `recipient=${'x'.repeat(max + rng.int(0, 64))}\n\n` : 'size=0\n'.repeat(Math.ceil(max / 7) + 1) + '\n'
    return { bytes: Buffer.from(wire), error: error('too-large') }
  },
  pendingBound: (max) => max,
  decode: (chunks, max) => decodeStream(new PolicyDecoder(max), chunks, item, PROBE),
}
