// Netstrings, the framing under socketmap: arbitrary payload bytes, lengths in bytes.

import { NetstringDecoder, encodeNetstring, type NetstringItem } from '../../src/protocols/netstring.js'
import type { Rng } from '../rng.js'
import { bytesOf, decodeStream, error, request, type CodecTarget } from './target.js'

const PROBE = encodeNetstring('transport alice@example.org')

const item = (t: NetstringItem) => ({ item: t.type === 'frame' ? request(t.payload.toString('hex')) : error(t.error) })

export const netstringTarget: CodecTarget = {
  name: 'netstring',
  delimiters: bytesOf(':', ',', '0', '9', '00', '-1', ' ', '\n'),
  streaming: true,
  valid(rng: Rng, max: number) {
    // Mostly short payloads; now and then one of exactly the limit, the edge of `too-large`.
    const payload = rng.chance(0.01) ? rng.bytes(max) : rng.bytes(rng.int(0, Math.min(max, 80)))
    return { bytes: encodeNetstring(payload), expect: request(payload.toString('hex')) }
  },
  hostile(rng: Rng, max: number) {
    // A declared length past the limit, by one byte or by twenty orders of magnitude, with a
    // little payload behind it: refused on the digits, before any payload is held.
    const declared = rng.chance(0.5) ? String(max + rng.int(1, 1000)) : '9'.repeat(rng.int(String(max).length + 1, 40))
    return { bytes: Buffer.concat([Buffer.from(`${declared}:`), rng.bytes(rng.int(0, 32))]), error: error('too-large') }
  },
  // The length digits and `:` of a partial frame plus its payload and the `,`.
  pendingBound: (max) => String(max).length + max + 2,
  decode: (chunks, max) => decodeStream(new NetstringDecoder(max), chunks, item, PROBE),
}
