// tcp_table(5) requests: `get <%XX-quoted key>\n`, quoted exactly as Postfix's hex_quote does.

import { TcpTableDecoder, hexQuote, type TcpTableItem } from '../../src/protocols/tcp-table.js'
import type { Rng } from '../rng.js'
import { addressLike } from '../text.js'
import { bytesOf, decodeStream, error, request, type CodecTarget } from './target.js'

const PROBE = Buffer.from('get alice@example.org\n')
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

function keyOf(bytes: Buffer): string | null {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return null
  }
}

const item = (t: TcpTableItem) => ({ item: t.type === 'error' ? error(t.error) : request(t.request.key) })

export const tcpTableTarget: CodecTarget = {
  name: 'tcp_table',
  delimiters: bytesOf('\n', '\r', '%', '%0', '%G', '%0A', ' ', 'get ', 'GET '),
  streaming: true,
  valid(rng: Rng, max: number) {
    // Key bytes of any value, invalid UTF-8 included: Postfix quotes whatever it was given.
    // Now and then a line of exactly the limit, the edge of `too-large`.
    let key = rng.chance(0.01) ? Buffer.alloc(max - 4, 'k') : rng.chance(0.2) ? rng.bytes(rng.int(0, 40)) : Buffer.from(addressLike(rng))
    if (4 + hexQuote(key).length > max) key = Buffer.alloc(0)
    return { bytes: Buffer.from(`get ${hexQuote(key)}\n`, 'latin1'), expect: request(keyOf(key)) }
  },
  hostile(rng: Rng, max: number) {
    // A line past the limit, with or without its LF: refused without waiting for the end.
    const body = 'a'.repeat(max - 3 + rng.int(0, 64))
    return { bytes: Buffer.from(`get ${body}${rng.chance(0.5) ? '\n' : ''}`), error: error('too-large') }
  },
  pendingBound: (max) => max,
  decode: (chunks, max) => decodeStream(new TcpTableDecoder(max), chunks, item, PROBE),
}
