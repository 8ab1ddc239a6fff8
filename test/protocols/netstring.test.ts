import t from 'tap'
import fc from 'fast-check'
import { NetstringDecoder, encodeNetstring, type NetstringItem } from '../../src/protocols/netstring.js'

function drain(d: NetstringDecoder): NetstringItem[] {
  const out: NetstringItem[] = []
  for (let item = d.next(); item !== undefined; item = d.next()) out.push(item)
  return out
}

function decodeChunks(chunks: Buffer[], max = 1 << 20): NetstringItem[] {
  const d = new NetstringDecoder(max)
  const out: NetstringItem[] = []
  for (const c of chunks) {
    d.push(c)
    out.push(...drain(d))
  }
  return out
}

const frames = (items: NetstringItem[]) => items.map((i) => (i.type === 'frame' ? i.payload.toString('latin1') : `!${i.error}`))

/** Splits a buffer at the given cut points (any values; reduced modulo the length). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (buf.length === 0 ? 0 : c % (buf.length + 1))))].sort((a, b) => a - b)
  const out: Buffer[] = []
  let prev = 0
  for (const p of points) {
    out.push(buf.subarray(prev, p))
    prev = p
  }
  out.push(buf.subarray(prev))
  return out
}

void t.test('encodes with the byte length, not the character count', (t) => {
  t.same(encodeNetstring('abc'), Buffer.from('3:abc,'))
  t.same(encodeNetstring('mailhost üser@x'), Buffer.from('16:mailhost üser@x,'))
  t.same(encodeNetstring(Buffer.alloc(0)), Buffer.from('0:,'))
  t.same(encodeNetstring(Buffer.from([0xff, 0x00])), Buffer.from([0x32, 0x3a, 0xff, 0x00, 0x2c]))
  t.end()
})

void t.test('decodes several frames from one chunk and a frame split byte by byte', (t) => {
  t.same(frames(decodeChunks([Buffer.from('3:abc,0:,5:hello,')])), ['abc', '', 'hello'])
  const bytes = Buffer.from('12:hello, world,')
  t.same(frames(decodeChunks([...bytes].map((b) => Buffer.from([b])))), ['hello, world'])
  t.end()
})

void t.test('reports how many bytes wait for a complete frame', (t) => {
  const d = new NetstringDecoder(100)
  d.push(Buffer.from('3:ab'))
  t.equal(d.next(), undefined)
  t.equal(d.pendingBytes, 4)
  d.push(Buffer.from('c,4:'))
  t.same(frames(drain(d)), ['abc'])
  t.equal(d.pendingBytes, 2)
  t.end()
})

void t.test('malformed input', (t) => {
  const cases: [string, string][] = [
    ['leading zero', '03:abc,'],
    ['no digits', ':abc,'],
    ['letter in length', '3a:abc,'],
    ['wrong separator', '3;abc,'],
    ['missing comma', '3:abcd'],
    ['newline instead of comma', '3:abc\n'],
    ['garbage', 'hello world\r\n'],
  ]
  for (const [name, input] of cases) t.same(frames(decodeChunks([Buffer.from(input)])), ['!malformed'], name)
  t.same(frames(decodeChunks([Buffer.from('0'), Buffer.from('3:abc,')])), ['!malformed'], 'leading zero across chunks')
  t.same(frames(decodeChunks([Buffer.from('2:ok,x')])), ['ok', '!malformed'], 'frames before the garbage still come out')
  t.end()
})

void t.test('after an error the decoder yields nothing more', (t) => {
  const d = new NetstringDecoder(100)
  d.push(Buffer.from('x'))
  t.same(d.next(), { type: 'error', error: 'malformed' })
  d.push(Buffer.from('3:abc,'))
  t.equal(d.next(), undefined)
  t.equal(d.pendingBytes, 0)
  t.end()
})

void t.test('the size limit is exact and is enforced before the payload arrives', (t) => {
  t.same(frames(decodeChunks([encodeNetstring('x'.repeat(100))], 100)), ['x'.repeat(100)])
  t.same(frames(decodeChunks([Buffer.from('101:')], 100)), ['!too-large'], 'header alone is enough')
  t.same(frames(decodeChunks([Buffer.from('1048576')], 16384)), ['!too-large'], 'digits alone are enough')
  t.same(frames(decodeChunks([Buffer.from('9'.repeat(400))], 16384)), ['!too-large'], 'no overflow on absurd lengths')
  t.end()
})

void t.test('property: any split of a valid stream yields the same frames (round trip of arbitrary bytes)', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (payloads, cuts) => {
      const stream = Buffer.concat(payloads.map((p) => encodeNetstring(Buffer.from(p))))
      const d = new NetstringDecoder(300)
      const got: Buffer[] = []
      for (const chunk of split(stream, cuts)) {
        d.push(chunk)
        for (const item of drain(d)) {
          if (item.type !== 'frame') return false
          got.push(item.payload)
        }
      }
      return d.pendingBytes === 0 && got.length === payloads.length && got.every((g, i) => g.equals(Buffer.from(payloads[i]!)))
    }),
    { numRuns: 500 },
  )
  t.end()
})

void t.test('property: garbage never throws; it yields valid frames, then at most one error, then nothing', (t) => {
  const digitsAndPunctuation = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a.map((b) => b % 13 < 10 ? 0x30 + (b % 10) : [0x3a, 0x2c, 0x20][b % 3]!)))
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), digitsAndPunctuation), fc.array(fc.nat(), { maxLength: 10 }), (input, cuts) => {
      const items = decodeChunks(split(input, cuts), 64)
      const errorAt = items.findIndex((i) => i.type === 'error')
      if (errorAt >= 0 && errorAt !== items.length - 1) return false
      // Whatever came out as frames re-encodes to exactly the start of the input.
      const prefix = Buffer.concat(items.filter((i) => i.type === 'frame').map((i) => encodeNetstring(i.payload)))
      return input.subarray(0, prefix.length).equals(prefix) && items.every((i) => i.type === 'error' || i.payload.length <= 64)
    }),
    { numRuns: 1000 },
  )
  t.end()
})

void t.test('property: a frame is rejected exactly when its length exceeds the limit', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 2000 }), (max, len) => {
      const items = decodeChunks([encodeNetstring(Buffer.alloc(len, 0x61))], max)
      return len <= max ? items.length === 1 && items[0]!.type === 'frame' : frames(items).join() === '!too-large'
    }),
  )
  t.end()
})
