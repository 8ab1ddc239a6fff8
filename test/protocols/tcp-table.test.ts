import t from 'tap'
import fc from 'fast-check'
import {
  TcpTableDecoder,
  encodeTcpTableReply,
  hexQuote,
  parseTcpTableRequest,
  tcpTableErrorReply,
  type TcpTableItem,
} from '../../src/protocols/tcp-table.js'
import { found, notFound, perm, temp, type Answer } from '../../src/resolve/answer.js'

const strict = new TextDecoder('utf-8', { fatal: true })

// Postfix's own rules, written out independently of the code under test.
// hex_quote.c: a byte goes as-is iff it is not '%', not isspace() and isprint() in ASCII.
function postfixQuote(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) {
    const plain = b !== 0x25 && b > 0x20 && b < 0x7f
    out += plain ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}
// hex_unquote.c: %XX with hex digits of either case; anything else after '%' is an error.
function postfixUnquote(text: string): Buffer | undefined {
  const out: number[] = []
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '%') {
      out.push(text.charCodeAt(i))
      continue
    }
    const hex = text.slice(i + 1, i + 3)
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined
    out.push(parseInt(hex, 16))
    i += 2
  }
  return Buffer.from(out)
}
// dict_tcp.c: three digits, whitespace, text; only the first digit counts.
function postfixReadReply(line: string): { code: string; value: Buffer } | undefined {
  if (!/^[0-9]{3}[ \t]/.test(line) || !line.endsWith('\n') || line.length > 4096) return undefined
  const value = postfixUnquote(line.slice(4, -1))
  return value && { code: line[0]!, value }
}

function decodeAll(chunks: Buffer[], max = 16384): TcpTableItem[] {
  const d = new TcpTableDecoder(max)
  const out: TcpTableItem[] = []
  for (const c of chunks) {
    d.push(c)
    for (let item = d.next(); item !== undefined; item = d.next()) out.push(item)
  }
  return out
}

void t.test('requests: %XX is decoded byte-wise, then as strict UTF-8', (t) => {
  t.same(parseTcpTableRequest(Buffer.from('get a%20b%25c@x')), { key: 'a b%c@x' })
  t.same(parseTcpTableRequest(Buffer.from('get %C3%BCser@ex%C3%A4mple.com')), { key: 'üser@exämple.com' })
  t.same(parseTcpTableRequest(Buffer.from('get %c3%bcser@x')), { key: 'üser@x' }, 'lower-case hex')
  t.same(parseTcpTableRequest(Buffer.from('get no+ext@relay.test')), { key: 'no+ext@relay.test' }, '+ stays +')
  t.same(parseTcpTableRequest(Buffer.from('get ')), { key: '' })
  t.same(parseTcpTableRequest(Buffer.from('get %FF%FE@x')), { key: null }, 'invalid UTF-8')
  t.same(parseTcpTableRequest(Buffer.from('get %C3')), { key: null }, 'truncated sequence')
  for (const bad of ['get %', 'get %4', 'get %G0x', 'get a%2', 'GET x', 'get', 'put x y', 'getx', ''])
    t.equal(parseTcpTableRequest(Buffer.from(bad)), undefined, JSON.stringify(bad))
  t.end()
})

void t.test('decoder: LF ends a line, CR is part of the key, errors stop decoding', (t) => {
  t.same(decodeAll([Buffer.from('get a@x\nget b@x\n')]), [
    { type: 'request', request: { key: 'a@x' } },
    { type: 'request', request: { key: 'b@x' } },
  ])
  t.same(decodeAll([Buffer.from('get a@x\r\n')]), [{ type: 'request', request: { key: 'a@x\r' } }])
  t.same(decodeAll([Buffer.from('HELO x\nget a@x\n')]), [{ type: 'error', error: 'malformed' }])
  t.same(decodeAll([Buffer.from('get a@'), Buffer.from('x'), Buffer.from('\nget')]), [{ type: 'request', request: { key: 'a@x' } }])
  const d = new TcpTableDecoder(100)
  d.push(Buffer.from('get a'))
  t.equal(d.next(), undefined)
  t.equal(d.pendingBytes, 5)
  d.push(Buffer.from('bc\n'))
  t.same(d.next(), { type: 'request', request: { key: 'abc' } })
  t.equal(d.pendingBytes, 0)
  d.push(Buffer.from('nonsense\n'))
  t.same(d.next(), { type: 'error', error: 'malformed' })
  d.push(Buffer.from('get x\n'))
  t.equal(d.next(), undefined)
  t.end()
})

void t.test('the request size limit is exact, with or without the LF', (t) => {
  const line = (n: number) => 'get ' + 'a'.repeat(n - 4)
  t.same(decodeAll([Buffer.from(line(100) + '\n')], 100), [{ type: 'request', request: { key: 'a'.repeat(96) } }])
  t.same(decodeAll([Buffer.from(line(101) + '\n')], 100), [{ type: 'error', error: 'too-large' }])
  t.same(decodeAll([Buffer.from(line(100))], 100), [], 'a line of exactly the limit may still end')
  t.same(decodeAll([Buffer.from(line(101))], 100), [{ type: 'error', error: 'too-large' }], 'rejected before the LF arrives')
  t.same(decodeAll([Buffer.alloc(1 << 20, 0x61)]), [{ type: 'error', error: 'too-large' }])
  t.end()
})

void t.test('replies are byte-exact', (t) => {
  const cases: [Answer, string][] = [
    [found('lmtp:inet:[10.0.0.11]:24'), '200 lmtp:inet:[10.0.0.11]:24\n'],
    [found('value with space'), '200 value%20with%20space\n'],
    [found('50%'), '200 50%25\n'],
    [found('mx-ü'), '200 mx-%C3%BC\n'],
    [notFound('not found'), '500 not%20found\n'],
    [notFound(''), '500 not%20found\n'],
    [temp('ldap down'), '400 ldap%20down\n'],
    [temp('a\nb'), '400 a%0Ab\n'],
    [perm('unknown map'), '400 unknown%20map\n'],
    [found(''), '400 empty%20value\n'],
  ]
  for (const [answer, wire] of cases) t.equal(encodeTcpTableReply(answer).toString('latin1'), wire, JSON.stringify(answer))
  t.equal(tcpTableErrorReply('too-large').toString(), '400 request%20too%20large\n')
  t.equal(tcpTableErrorReply('malformed').toString(), '400 malformed%20request\n')
  t.end()
})

void t.test('hexQuote agrees with Postfix hex_quote on every byte', (t) => {
  for (let b = 0; b < 256; b++) t.equal(hexQuote(Buffer.from([b])), postfixQuote(Uint8Array.of(b)), `byte ${b}`)
  t.end()
})

void t.test('the 4096-byte reply limit is exact and counts the LF', (t) => {
  t.equal(encodeTcpTableReply(found('v'.repeat(4091))).length, 4096)
  t.equal(encodeTcpTableReply(found('v'.repeat(4092))).toString(), '400 value%20too%20long\n')
  // Counted after quoting: 1364 spaces become 4092 bytes, so the line would be 4097.
  t.equal(encodeTcpTableReply(found(' '.repeat(1364))).toString(), '400 value%20too%20long\n')
  t.equal(encodeTcpTableReply(found(' '.repeat(1363))).length, 4094)
  t.equal(encodeTcpTableReply(temp('ü'.repeat(2000))).toString(), '400 temporary%20failure\n')
  t.equal(encodeTcpTableReply(notFound('ü'.repeat(2000))).toString(), '500 not%20found\n')
  t.end()
})

void t.test('property: a reply decodes back, with Postfix rules, to the original value', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 1500 }), (value) => {
      const line = encodeTcpTableReply(found(value)).toString('latin1')
      const reply = postfixReadReply(line)
      if (reply === undefined) return false
      // Only the trailing LF may be whitespace, control or non-ASCII on the wire.
      if (!/^[\x21-\x7e]*$/.test(line.slice(4, -1))) return false
      if (reply.code === '2') return reply.value.toString('utf8') === value
      return Buffer.byteLength(value) * 3 + 5 > 4096 && reply.code === '4'
    }),
    { numRuns: 1000 },
  )
  t.end()
})

void t.test('property: keys quoted by Postfix arrive as sent, in any chunking', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 80 }), { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), (keys, cuts) => {
      const stream = Buffer.from(keys.map((k) => `get ${postfixQuote(k)}\n`).join(''), 'latin1')
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
      const chunks = [0, ...points].map((p, i, all) => stream.subarray(p, all[i + 1] ?? stream.length))
      const items = decodeAll(chunks)
      return (
        items.length === keys.length &&
        items.every((item, i) => {
          if (item.type !== 'request') return false
          let expected: string | null
          try {
            expected = strict.decode(keys[i])
          } catch {
            expected = null
          }
          return item.request.key === expected
        })
      )
    }),
    { numRuns: 500 },
  )
  t.end()
})

void t.test('property: arbitrary input never throws and yields requests then at most one error', (t) => {
  const lineish = fc.array(fc.oneof(fc.constantFrom('get ', '%', '\n', '%4', '%zz', '\r'), fc.string({ maxLength: 5 })), { maxLength: 30 }).map((p) => Buffer.from(p.join('')))
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)), lineish), (bytes) => {
      const items = decodeAll([bytes], 64)
      const errorAt = items.findIndex((i) => i.type === 'error')
      return errorAt < 0 || errorAt === items.length - 1
    }),
    { numRuns: 1000 },
  )
  t.end()
})

void t.test('property: a line is rejected exactly when it exceeds the limit', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 4, max: 3000 }), fc.integer({ min: 4, max: 3000 }), (max, len) => {
      const items = decodeAll([Buffer.from('get ' + 'k'.repeat(len - 4) + '\n')], max)
      return items.length === 1 && items[0]!.type === (len <= max ? 'request' : 'error')
    }),
  )
  t.end()
})

/** Ways a line arrives damaged: a flipped byte, cut short, made too long, a bad escape or invalid UTF-8 spliced in. */
const damage = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, x]) => (l: Buffer) => {
    const out = Buffer.from(l)
    out[at % out.length]! ^= x
    return out
  }),
  fc.nat().map((at) => (l: Buffer) => l.subarray(0, at % l.length)),
  fc.integer({ min: 1, max: 200 }).map((n) => (l: Buffer) => Buffer.concat([l.subarray(0, -1), Buffer.alloc(64 + n, 0x61), Buffer.from('\n')])),
  fc.tuple(fc.nat(), fc.constantFrom('%', '%4', '%G0', '%FF', '%C3', '\xff', '\r', '\n')).map(([at, bad]) => (l: Buffer) => {
    const i = at % (l.length + 1)
    return Buffer.concat([l.subarray(0, i), Buffer.from(bad, 'latin1'), l.subarray(i)])
  }),
)

void t.test('property: valid requests, then a damaged one, in any chunking: the first decode exactly, then at most one error', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 16 }), { minLength: 1, maxLength: 5 }), damage, fc.array(fc.nat(), { maxLength: 8 }), (keys, hurt, cuts) => {
      const lines = keys.map((k) => Buffer.from(`get ${postfixQuote(k)}\n`, 'latin1'))
      const stream = Buffer.concat([...lines.slice(0, -1), hurt(lines.at(-1)!)])
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
      const chunks = [0, ...points].map((p, i, all) => stream.subarray(p, all[i + 1] ?? stream.length))
      const items = decodeAll(chunks, 64)
      const intact = keys.slice(0, -1).every((k, i) => {
        let key: string | null
        try {
          key = strict.decode(k)
        } catch {
          key = null
        }
        return JSON.stringify(items[i]) === JSON.stringify({ type: 'request', request: { key } })
      })
      const errorAt = items.findIndex((i) => i.type === 'error')
      return intact && (errorAt < 0 || errorAt === items.length - 1) && JSON.stringify(items) === JSON.stringify(decodeAll([stream], 64))
    }),
    { numRuns: 1000, seed: 7 },
  )
  t.end()
})
