import t from 'tap'
import fc from 'fast-check'
import { encodeNetstring } from '../../src/protocols/netstring.js'
import {
  SocketmapDecoder,
  encodeSocketmapReply,
  parseSocketmapRequest,
  socketmapErrorReply,
  type SocketmapItem,
} from '../../src/protocols/socketmap.js'
import { found, notFound, perm, temp } from '../../src/resolve/answer.js'

const strict = new TextDecoder('utf-8', { fatal: true })

function decodeAll(chunks: Buffer[], max = 16384): SocketmapItem[] {
  const d = new SocketmapDecoder(max)
  const out: SocketmapItem[] = []
  for (const c of chunks) {
    d.push(c)
    for (let item = d.next(); item !== undefined; item = d.next()) out.push(item)
  }
  return out
}

void t.test('request payloads split at the first space only', (t) => {
  t.same(parseSocketmapRequest(Buffer.from('transport alice@example.org')), { map: 'transport', key: 'alice@example.org' })
  t.same(parseSocketmapRequest(Buffer.from('mailhost Foo Bar+Ext@Example.COM')), { map: 'mailhost', key: 'Foo Bar+Ext@Example.COM' })
  t.same(parseSocketmapRequest(Buffer.from('local/mx1 ')), { map: 'local/mx1', key: '' })
  t.same(parseSocketmapRequest(Buffer.from('recipient üser@exämple.org')), { map: 'recipient', key: 'üser@exämple.org' })
  t.equal(parseSocketmapRequest(Buffer.from('transport')), undefined, 'no space')
  t.equal(parseSocketmapRequest(Buffer.from(' key')), undefined, 'empty map name')
  t.end()
})

void t.test('a key that is not valid UTF-8 becomes null', (t) => {
  const payload = Buffer.concat([Buffer.from('transport '), Buffer.from([0xc3, 0x28, 0x40, 0x78])])
  t.same(parseSocketmapRequest(payload), { map: 'transport', key: null })
  t.same(parseSocketmapRequest(Buffer.concat([Buffer.from('transport a'), Buffer.from([0xed, 0xa0, 0x80])])), { map: 'transport', key: null }, 'encoded surrogate')
  t.end()
})

void t.test('decoder: requests, malformed payloads and oversized frames', (t) => {
  t.same(decodeAll([Buffer.from('19:vmbox ok@vmbox.test,16:mailhost üser@x,')]), [
    { type: 'request', request: { map: 'vmbox', key: 'ok@vmbox.test' } },
    { type: 'request', request: { map: 'mailhost', key: 'üser@x' } },
  ])
  t.same(decodeAll([Buffer.from('9:transport,3:a b,')]), [{ type: 'error', error: 'malformed' }], 'stops at the meaningless frame')
  t.same(decodeAll([Buffer.from('GET / HTTP/1.0\r\n')]), [{ type: 'error', error: 'malformed' }])
  t.same(decodeAll([Buffer.from('1048576:')]), [{ type: 'error', error: 'too-large' }])
  const d = new SocketmapDecoder(100)
  d.push(Buffer.from('x'))
  d.next()
  d.push(Buffer.from('3:a b,'))
  t.equal(d.next(), undefined)
  t.equal(d.pendingBytes, 0)
  t.end()
})

void t.test('replies are byte-exact', (t) => {
  const cases: [Parameters<typeof encodeSocketmapReply>[0], string][] = [
    [found('lmtp:inet:[10.0.0.11]:24'), '27:OK lmtp:inet:[10.0.0.11]:24,'],
    [found('a value with spaces and %'), '28:OK a value with spaces and %,'],
    [found('mx-ü'), '8:OK mx-ü,'],
    [notFound('no such user'), '9:NOTFOUND ,'],
    [temp('ldap down'), '14:TEMP ldap down,'],
    [temp(''), '22:TEMP temporary failure,'],
    [temp('line1\nline2\u0000\u007f'), '16:TEMP line1 line2,'],
    [perm('unknown map "x"'), '20:PERM unknown map "x",'],
    [found(''), '16:TEMP empty value,'],
  ]
  for (const [answer, wire] of cases) t.equal(encodeSocketmapReply(answer).toString('utf8'), wire, JSON.stringify(answer))
  t.equal(socketmapErrorReply('too-large').toString(), '22:PERM request too large,')
  t.equal(socketmapErrorReply('malformed').toString(), '22:PERM malformed request,')
  t.end()
})

void t.test('reasons are cleaned of control characters and bounded', (t) => {
  const wire = encodeSocketmapReply(temp(`a\tb\r\nc\u0085d${'x'.repeat(2000)}`)).toString('utf8')
  const payload = wire.slice(wire.indexOf(':') + 1, -1)
  t.notOk(/\p{Cc}/u.test(payload))
  t.ok(payload.startsWith('TEMP a b  c d'))
  t.ok(payload.length <= 505)
  t.end()
})

void t.test('the 100000-byte reply limit is exact and counts bytes', (t) => {
  const fits = 'v'.repeat(100_000 - 3)
  t.equal(encodeSocketmapReply(found(fits)).toString(), `100000:OK ${fits},`)
  t.equal(encodeSocketmapReply(found(`${fits}v`)).toString(), '19:TEMP value too long,')
  const multibyte = 'ü'.repeat(50_000) // 100000 bytes, 50000 characters
  t.equal(encodeSocketmapReply(found(multibyte)).toString(), '19:TEMP value too long,')
  t.end()
})

void t.test('property: request round trip for arbitrary key bytes, in any chunking', (t) => {
  const mapName = fc.stringMatching(/^[a-z][a-z0-9/_-]{0,20}$/)
  fc.assert(
    fc.property(fc.array(fc.tuple(mapName, fc.uint8Array({ maxLength: 100 })), { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), (reqs, cuts) => {
      const stream = Buffer.concat(reqs.map(([m, k]) => encodeNetstring(Buffer.concat([Buffer.from(`${m} `), k]))))
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
      const chunks = [0, ...points].map((p, i, all) => stream.subarray(p, all[i + 1] ?? stream.length))
      const items = decodeAll(chunks, 200)
      return (
        items.length === reqs.length &&
        items.every((item, i) => {
          if (item.type !== 'request') return false
          const [m, k] = reqs[i]!
          let expected: string | null
          try {
            expected = strict.decode(k)
          } catch {
            expected = null
          }
          return item.request.map === m && item.request.key === expected
        })
      )
    }),
    { numRuns: 500 },
  )
  t.end()
})

void t.test('property: arbitrary input never throws and yields requests then at most one error', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const items = decodeAll([Buffer.from(bytes)], 128)
      const errorAt = items.findIndex((i) => i.type === 'error')
      return errorAt < 0 || errorAt === items.length - 1
    }),
    { numRuns: 1000 },
  )
  t.end()
})

void t.test('property: every reply is one netstring whose payload Postfix classifies as intended', (t) => {
  const answer = fc.oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }).map(found),
    fc.string({ unit: 'binary' }).map(notFound),
    fc.string({ unit: 'binary' }).map(temp),
    fc.string({ unit: 'binary' }).map(perm),
  )
  fc.assert(
    fc.property(answer, (a) => {
      const wire = encodeSocketmapReply(a)
      const colon = wire.indexOf(0x3a)
      const len = Number(wire.subarray(0, colon).toString())
      if (wire.length !== colon + 1 + len + 1 || wire[wire.length - 1] !== 0x2c) return false
      const payload = wire.subarray(colon + 1, -1).toString('utf8')
      const sp = payload.indexOf(' ')
      const [status, data] = [payload.slice(0, sp), payload.slice(sp + 1)]
      switch (a.outcome) {
        case 'found':
          return status === 'OK' && data === a.value
        case 'notfound':
          return payload === 'NOTFOUND '
        case 'temp':
        case 'perm':
          return status === a.outcome.toUpperCase() && data.length > 0 && !/\p{Cc}/u.test(data)
      }
    }),
    { numRuns: 500 },
  )
  t.end()
})

/** Ways a frame arrives damaged: a flipped byte, cut short, a huge length, invalid UTF-8 spliced in. */
const damage = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, x]) => (f: Buffer) => {
    const out = Buffer.from(f)
    out[at % out.length]! ^= x
    return out
  }),
  fc.nat().map((at) => (f: Buffer) => f.subarray(0, at % f.length)),
  fc.stringMatching(/^[1-9][0-9]{5,30}$/).map((digits) => (f: Buffer) => Buffer.concat([Buffer.from(`${digits}:`), f])),
  fc.tuple(fc.nat(), fc.constantFrom([0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0x80])).map(([at, bad]) => (f: Buffer) => {
    const i = at % (f.length + 1)
    return Buffer.concat([f.subarray(0, i), Buffer.from(bad), f.subarray(i)])
  }),
)

void t.test('property: valid requests, then a damaged one, in any chunking: the first decode exactly, then at most one error', (t) => {
  const key = fc.string({ unit: fc.constantFrom('a', 'b', '@', '.', ' ', 'ü', '%', ':', ','), maxLength: 30 })
  fc.assert(
    fc.property(fc.array(key, { minLength: 1, maxLength: 5 }), damage, fc.array(fc.nat(), { maxLength: 8 }), (keys, hurt, cuts) => {
      const frames = keys.map((k) => encodeNetstring(`transport ${k}`))
      const stream = Buffer.concat([...frames.slice(0, -1), hurt(frames.at(-1)!)])
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
      const chunks = [0, ...points].map((p, i, all) => stream.subarray(p, all[i + 1] ?? stream.length))
      const items = decodeAll(chunks, 128)
      const intact = keys.slice(0, -1).every((k, i) => JSON.stringify(items[i]) === JSON.stringify({ type: 'request', request: { map: 'transport', key: k } }))
      const errorAt = items.findIndex((i) => i.type === 'error')
      return intact && (errorAt < 0 || errorAt === items.length - 1) && JSON.stringify(items) === JSON.stringify(decodeAll([stream], 128))
    }),
    { numRuns: 1000, seed: 7 },
  )
  t.end()
})
