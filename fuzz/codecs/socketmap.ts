// socketmap_table(5) requests: `<name> <key>` in a netstring, split at the first space.

import { encodeNetstring } from '../../src/protocols/netstring.js'
import { SocketmapDecoder, type SocketmapItem } from '../../src/protocols/socketmap.js'
import type { Rng } from '../rng.js'
import { addressLike, text } from '../text.js'
import { bytesOf, decodeStream, error, request, type CodecTarget } from './target.js'

const MAPS = ['transport', 'recipient', 'alias', 'local/mx1', 'local/mx2', 'mailhost']
const PROBE = encodeNetstring('transport alice@example.org')

function item(t: SocketmapItem) {
  if (t.type === 'error') return { item: error(t.error) }
  const { map, key } = t.request
  // The name ends at the first space, so it can never hold one; a key may.
  return { item: request([map, key]), ...(map === '' || map.includes(' ') ? { badShape: `map name ${JSON.stringify(map)}` } : {}) }
}

export const socketmapTarget: CodecTarget = {
  name: 'socketmap',
  delimiters: bytesOf(':', ',', ' ', '0', '9', '\0', '\n'),
  streaming: true,
  valid(rng: Rng, max: number) {
    const map = rng.chance(0.9) ? rng.pick(MAPS) : text(rng, 12).replaceAll(' ', '_') || 'x'
    let key = rng.chance(0.01) ? 'k'.repeat(Math.max(0, max - Buffer.byteLength(map) - 1)) : addressLike(rng)
    if (Buffer.byteLength(`${map} ${key}`) > max) key = ''
    return { bytes: encodeNetstring(`${map} ${key}`), expect: request([map, key]) }
  },
  hostile(rng: Rng, max: number) {
    const declared = rng.chance(0.5) ? String(max + rng.int(1, 1000)) : '9'.repeat(rng.int(String(max).length + 1, 40))
    return { bytes: Buffer.from(`${declared}:transport ${addressLike(rng)}`), error: error('too-large') }
  },
  pendingBound: (max) => String(max).length + max + 2,
  decode: (chunks, max) => decodeStream(new SocketmapDecoder(max), chunks, item, PROBE),
}
