// Regression: a request trickled in one byte per chunk must cost work linear in its size. Every
// decoder once copied all it had buffered on each chunk (and dict and policy searched it all
// again for a line end), so one 16 KiB request sent byte by byte took 0.2 s of CPU and one at
// the 1 MiB limit minutes, on the daemon's only thread. Counted here in bytes allocated and bytes
// searched rather than timed, so the test is deterministic.

import t from 'tap'
import { DictDecoder } from '../../src/protocols/dict.js'
import { NetstringDecoder, encodeNetstring } from '../../src/protocols/netstring.js'
import { PolicyDecoder } from '../../src/protocols/policy.js'
import { SocketmapDecoder } from '../../src/protocols/socketmap.js'
import { TcpTableDecoder } from '../../src/protocols/tcp-table.js'

interface Decoder {
  push(chunk: Buffer): void
  next(): { readonly type: string } | undefined
}

type IndexOf = (this: Buffer, value: string | number | Uint8Array, byteOffset?: number, encoding?: BufferEncoding) => number
const proto = Buffer.prototype as unknown as { indexOf: IndexOf }

/** Bytes handed out by Buffer.allocUnsafe (which Buffer.concat uses) and bytes searched by indexOf while fn runs. */
function cost(fn: () => void): { allocated: number; searched: number } {
  const allocUnsafe: unknown = Reflect.get(Buffer, 'allocUnsafe')
  const alloc = Buffer.allocUnsafe.bind(Buffer)
  const indexOf = proto.indexOf
  let [allocated, searched] = [0, 0]
  Reflect.set(Buffer, 'allocUnsafe', (size: number) => {
    allocated += size
    return alloc(size)
  })
  proto.indexOf = function (value, byteOffset, encoding) {
    searched += this.length - (typeof byteOffset === 'number' ? Math.max(0, byteOffset) : 0)
    return indexOf.call(this, value, byteOffset, encoding)
  }
  try {
    fn()
  } finally {
    Reflect.set(Buffer, 'allocUnsafe', allocUnsafe)
    proto.indexOf = indexOf
  }
  return { allocated, searched }
}

/** Pushes the request one byte at a time, pulling after each byte as a Connection does. */
function trickle(d: Decoder, request: Buffer): string[] {
  const got: string[] = []
  for (let i = 0; i < request.length; i++) {
    d.push(request.subarray(i, i + 1))
    for (let item = d.next(); item !== undefined; item = d.next()) got.push(item.type)
  }
  return got
}

const SIZE = 8192
const LIMIT = 16384
const cases: [string, () => Decoder, Buffer][] = [
  ['netstring', () => new NetstringDecoder(LIMIT), encodeNetstring(Buffer.alloc(SIZE, 0x61))],
  ['socketmap', () => new SocketmapDecoder(LIMIT), encodeNetstring(`transport ${'a'.repeat(SIZE)}`)],
  ['tcp_table', () => new TcpTableDecoder(LIMIT), Buffer.from(`get ${'a'.repeat(SIZE)}\n`)],
  ['policy', () => new PolicyDecoder(LIMIT), Buffer.from(`recipient=${'a'.repeat(SIZE)}\n\n`)],
  ['dict', () => new DictDecoder(LIMIT), Buffer.from(`Lshared/passdb/${'a'.repeat(SIZE)}\tu\n`)],
]

for (const [name, make, request] of cases) {
  t.test(`${name}: a ${request.length}-byte request sent byte by byte costs linear work`, (t) => {
    let got: string[] = []
    const c = cost(() => (got = trickle(make(), request)))
    t.same(got, [name === 'netstring' ? 'frame' : 'request'], 'decoded once, whole')
    // Copying everything buffered per byte would be about request.length² / 2 (33 million here).
    // A store that doubles allocates under 4x the request in all; decoding it copies it once more.
    t.ok(c.allocated <= 6 * request.length, `allocated ${c.allocated} bytes`)
    t.ok(c.searched <= 4 * request.length, `searched ${c.searched} bytes`)
    t.end()
  })
}

t.test('bytes handed out before more arrive are never overwritten', (t) => {
  // A request's bytes may still be referenced when the next chunk lands in the same store.
  const d = new TcpTableDecoder(LIMIT)
  d.push(Buffer.from('get a'))
  d.push(Buffer.from('bc\nget x'))
  t.same(d.next(), { type: 'request', request: { key: 'abc' } })
  d.push(Buffer.from('yz\n'))
  t.same(d.next(), { type: 'request', request: { key: 'xyz' } })
  const n = new NetstringDecoder(LIMIT)
  n.push(Buffer.from('3:a'))
  n.push(Buffer.from('bc,1:'))
  const first = n.next()
  n.push(Buffer.from('z,'))
  t.same([first, n.next()], [{ type: 'frame', payload: Buffer.from('abc') }, { type: 'frame', payload: Buffer.from('z') }])
  t.end()
})
