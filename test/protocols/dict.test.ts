import t from 'tap'
import fc from 'fast-check'
import {
  DictDecoder,
  dictErrorReply,
  dictEscape,
  dictUnescape,
  encodeDictReply,
  encodeUnsupportedReply,
  parseDictLine,
  splitDictLine,
  type DictRequest,
} from '../../src/protocols/dict.js'
import type { DecodedItem } from '../../src/protocols/decoder.js'

type Item = DecodedItem<DictRequest>

/** Feeds the chunks one by one, pulling everything after each; records the largest buffer held. */
function decodeAll(chunks: Buffer[], max = 16384): { items: Item[]; maxPending: number } {
  const d = new DictDecoder(max)
  const items: Item[] = []
  let maxPending = 0
  for (const c of chunks) {
    d.push(c)
    for (let item = d.next(); item !== undefined; item = d.next()) items.push(item)
    maxPending = Math.max(maxPending, d.pendingBytes)
  }
  return { items, maxPending }
}

const decode = (bytes: string | Buffer, max?: number) => decodeAll([Buffer.from(bytes)], max).items
const request = (r: DictRequest): Item => ({ type: 'request', request: r })
const malformed: Item = { type: 'error', error: 'malformed' }
const tooLarge: Item = { type: 'error', error: 'too-large' }
const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => Buffer.from(p as string)))

/** Cuts a buffer at arbitrary points (given as naturals, reduced modulo its length). */
function split(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
  return [0, ...points].map((p, i, all) => stream.subarray(p, all[i + 1] ?? stream.length))
}

/**
 * The framing rules written out over a whole stream at once: LF-terminated lines of at most
 * `max` bytes with the LF, a CR before the LF dropped, each line parsed on its own.
 */
function reference(stream: Buffer, max: number): Item[] {
  const out: Item[] = []
  let start = 0
  for (;;) {
    const nl = stream.indexOf(0x0a, start)
    if (nl < 0) return stream.length - start >= max ? [...out, tooLarge] : out
    if (nl + 1 - start > max) return [...out, tooLarge]
    const end = nl > start && stream[nl - 1] === 0x0d ? nl - 1 : nl
    const parsed = parseDictLine(stream.subarray(start, end))
    if (parsed === undefined) return [...out, malformed]
    out.push(request(parsed))
    start = nl + 1
  }
}

const isStringOrNull = (v: unknown) => v === null || typeof v === 'string'
const isUint = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff

/** Every request the decoder may hand out has exactly one of these shapes. */
function wellFormed(r: DictRequest): boolean {
  switch (r.kind) {
    case 'hello':
      return isUint(r.major) && isUint(r.minor) && isUint(r.valueType) && typeof r.dictName === 'string'
    case 'lookup':
      return isStringOrNull(r.key) && isStringOrNull(r.user)
    case 'unsupported':
      return 'IBCDRSUAT'.includes(r.command) && r.command.length === 1
  }
}

/** Strings rich in the characters the escaping is about. */
const tricky = fc.string({
  unit: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('\0', '\x01', '\t', '\r', '\n', '0', '1', 't', 'r', 'n', '\\', 'ü', '😀') },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  ),
  maxLength: 40,
})

t.test('escaping is exactly Dovecot strescape, both ways', (t) => {
  t.equal(dictEscape('a\tb\nc\rd\x01e\0f'), 'a\x01tb\x01nc\x01rd\x011e\x010f')
  t.equal(dictEscape('plain ü {"json":"x"}'), 'plain ü {"json":"x"}', 'nothing else changes')
  t.equal(dictUnescape('a\x01tb\x01nc\x01rd\x011e\x010f'), 'a\tb\nc\rd\x01e\0f')
  t.equal(dictUnescape('\x01x\x01\\\x01ü\x01😀'), 'x\\ü😀', 'an unknown escape maps to the character itself')
  t.equal(dictUnescape('abc\x01'), 'abc', 'a \\x01 at the very end is dropped (truncated escape)')
  t.equal(dictUnescape('\x01\x01\x01\x01'), '\x01\x01', '\\x01 escaping itself')
  t.end()
})

t.test('property: unescape(escape(s)) === s, and escaped text never holds NUL, TAB, CR or LF', (t) => {
  fc.assert(
    fc.property(fc.oneof(tricky, fc.string({ unit: 'binary' })), (s) => {
      const e = dictEscape(s)
      return dictUnescape(e) === s && !/[\0\t\r\n]/.test(e)
    }),
    { numRuns: 2000 },
  )
  t.pass('2000 strings')
  t.end()
})

t.test('property: split on TAB first, then unescape: escaped fields survive a line intact', (t) => {
  fc.assert(
    fc.property(fc.array(tricky, { minLength: 1, maxLength: 6 }), (fields) => {
      const line = fields.map(dictEscape).join('\t')
      const expected = line === '' ? [] : fields
      return JSON.stringify(splitDictLine(line)) === JSON.stringify(expected)
    }),
  )
  t.pass('fields round-trip')
  // An escape character cannot hide a TAB: Dovecot splits there and drops the dangling \x01.
  t.same(splitDictLine('a\x01\tb'), ['a', 'b'])
  t.same(splitDictLine(''), [], 'an empty line has no fields at all')
  t.end()
})

t.test("handshakes: Dovecot 2.3's captured line, 2.4's, and broken ones", (t) => {
  t.same(decode('H3\t2\t0\t\tmailhost\n'), [request({ kind: 'hello', major: 3, minor: 2, valueType: 0, dictName: 'mailhost' })])
  t.same(decode('H4\t0\t0\t\tmailhost\n'), [request({ kind: 'hello', major: 4, minor: 0, valueType: 0, dictName: 'mailhost' })], '2.4 is decoded; the server decides')
  t.same(decode('H3\t2\t0\tobsolete\tmy\x01tdict\textra\n'), [
    request({ kind: 'hello', major: 3, minor: 2, valueType: 0, dictName: 'my\tdict' }),
  ], 'fields are unescaped, extra fields ignored')
  t.same(decode('H4294967295\t0\t0\t\tx\n'), [request({ kind: 'hello', major: 4294967295, minor: 0, valueType: 0, dictName: 'x' })])
  for (const bad of ['H3\t2\t0\t\n', 'H\t2\t0\t\tx\n', 'H3\t-2\t0\t\tx\n', 'H+3\t2\t0\t\tx\n', 'H3\t2\tx\t\tx\n', 'H4294967296\t2\t0\t\tx\n', 'H 3\t2\t0\t\tx\n']) {
    t.same(decode(bad), [malformed], JSON.stringify(bad))
  }
  t.end()
})

t.test('lookups: key and user unescaped, strict UTF-8, absent user, empty key', (t) => {
  t.same(decode('Lshared/passdb/alice@example.org\talice@example.org\n'), [
    request({ kind: 'lookup', key: 'shared/passdb/alice@example.org', user: 'alice@example.org' }),
  ])
  t.same(decode('La\x01tb\x01nc\x01\x01\tü\x01r\n'), [request({ kind: 'lookup', key: 'a\tb\nc\x01', user: 'ü\r' })])
  t.same(decode('Lkey\n'), [request({ kind: 'lookup', key: 'key', user: null })], 'no user field: null')
  t.same(decode('Lkey\t\n'), [request({ kind: 'lookup', key: 'key', user: '' })], 'what doveadm sends without -u')
  t.same(decode('L\tuser\n'), [request({ kind: 'lookup', key: '', user: 'user' })], 'the empty key, as the real server reads it')
  t.same(decode('Lk\tu\textra\n'), [request({ kind: 'lookup', key: 'k', user: 'u' })], 'extra fields ignored')
  t.same(decode(bytes('Lshared/passdb/a', [0xff, 0xfe], '@x\tu\n')), [request({ kind: 'lookup', key: null, user: 'u' })], 'invalid UTF-8 key: null')
  t.same(decode(bytes('Lk\tu', [0xc3], '\n')), [request({ kind: 'lookup', key: 'k', user: null })], 'invalid UTF-8 user: null')
  t.same(decode(bytes('Lk\x01', [0xc3, 0xbc], '\tu\n')), [request({ kind: 'lookup', key: 'kü', user: 'u' })], 'an escaped multi-byte character is itself')
  t.same(decode('Lk\tu\r\nLk2\tu\r\r\n'), [
    request({ kind: 'lookup', key: 'k', user: 'u' }),
    request({ kind: 'lookup', key: 'k2', user: 'u\r' }),
  ], 'one CR before LF is dropped, as i_stream_next_line does')
  t.same(decode('L\n'), [malformed], 'L alone is "LOOKUP: broken input"')
  t.end()
})

t.test('the other protocol 3 commands are unsupported; unknown letters and empty lines are malformed', (t) => {
  const lines = ['I0\t0\tshared/x\tu', 'B1\tu', 'C1', 'D1', 'R1', 'S1\tk\tv', 'U1\tk', 'A1\tk\t1', 'T1\t0\t0']
  t.same(
    decode(lines.map((l) => `${l}\n`).join('')),
    lines.map((l) => request({ kind: 'unsupported', command: l[0]! })),
  )
  for (const bad of ['\n', '\r\n', 'X\n', 'l\n', 'GET / HTTP/1.0\r\n', 'V1\t1\n', '\tLk\n', '\x01Lk\n']) {
    t.same(decode(bad), [malformed], JSON.stringify(bad))
  }
  t.same(decode(bytes([0xc3, 0x8c], 'k\n')), [malformed], 'a non-ASCII first byte')
  t.same(decode('Lk\tu\nX\nLk\tu\n'), [request({ kind: 'lookup', key: 'k', user: 'u' }), malformed], 'nothing after an error')
  t.end()
})

t.test('maxRequestBytes is exact: the line with its LF', (t) => {
  const line = 'Lshared/passdb/alice@example.org\talice@example.org\n'
  const max = Buffer.byteLength(line)
  t.same(decode(line, max), [request({ kind: 'lookup', key: 'shared/passdb/alice@example.org', user: 'alice@example.org' })])
  t.same(decode(`L${line}`, max), [tooLarge], 'one byte more')
  t.same(decode(line.slice(0, -1), max), [], 'max - 1 bytes without LF: still waiting')
  t.same(decode(`L${line.slice(0, -1)}`, max), [tooLarge], 'max bytes without LF: too large at once, the LF cannot fit')
  t.same(decode(`${line}${line}L${line}`, max), [...decode(line + line, max), tooLarge], 'counted per line')
  const d = new DictDecoder(8)
  d.push(Buffer.from('Lk\tu\nLkey'))
  t.same(d.next(), request({ kind: 'lookup', key: 'k', user: 'u' }))
  t.equal(d.pendingBytes, 4, 'a partial line is pending')
  t.equal(d.next(), undefined)
  d.push(Buffer.from('123'))
  t.equal(d.next(), undefined, '7 bytes: the LF still fits')
  d.push(Buffer.from('4'))
  t.same(d.next(), tooLarge)
  t.equal(d.pendingBytes, 0, 'nothing is held after an error')
  d.push(Buffer.from('Lk\n'))
  t.equal(d.next(), undefined, 'and nothing more is decoded')
  t.end()
})

/** Streams made of pieces of valid lines, the escape and framing bytes, and random bytes. */
const streamPiece = fc.oneof(
  fc.constantFrom('H3\t2\t0\t\tmailhost\n', 'Lshared/passdb/a@x\ta@x\n', 'Lk\x01tk\t\x01n\n', 'S1\tk\tv\n', 'C1\n', 'I0\t0\tx\n', 'H4\t0\t0\t\tx\n'),
  fc.constantFrom('\n', '\r', '\t', '\x01', '\0', 'L', 'H', 'B', 'X', '3', 'ü', '\r\n'),
  fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a).toString('latin1')),
)
const stream = fc
  .array(fc.oneof(streamPiece.map((s) => Buffer.from(s, 'utf8')), fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a))), { maxLength: 30 })
  .map((parts) => Buffer.concat(parts))

t.test('property: any bytes in any chunking decode the same, never throw, hold at most max bytes', (t) => {
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 12 }), fc.constantFrom(8, 20, 64, 16384), (bytes, cuts, max) => {
      const { items, maxPending } = decodeAll(split(bytes, cuts), max)
      const errors = items.filter((i) => i.type === 'error')
      const requestsValid = items.every((i) => i.type === 'error' || wellFormed(i.request))
      const errorLastIfAny = errors.length === 0 || (errors.length === 1 && items.at(-1)!.type === 'error')
      return (
        JSON.stringify(items) === JSON.stringify(reference(bytes, max)) &&
        requestsValid &&
        errorLastIfAny &&
        maxPending <= max
      )
    }),
    { numRuns: 3000 },
  )
  t.pass('3000 streams')
  t.end()
})

t.test('property: lines built by the encoder side decode back to the same key and user', (t) => {
  fc.assert(
    fc.property(tricky, tricky, (key, user) => {
      const line = Buffer.from(`L${dictEscape(key)}\t${dictEscape(user)}\n`, 'utf8')
      const items = decode(line)
      // Lone surrogates have no UTF-8 form; they travel as U+FFFD like any other UTF-8 writer's.
      const wire = (s: string) => Buffer.from(s, 'utf8').toString('utf8')
      return JSON.stringify(items) === JSON.stringify([request({ kind: 'lookup', key: wire(key), user: wire(user) })])
    }),
    { numRuns: 1000 },
  )
  t.pass('1000 lookups')
  t.end()
})

t.test('replies: O, N, F on one line, value and reason escaped', (t) => {
  t.equal(encodeDictReply({ kind: 'found', value: '{"proxy":"y","host":"10.0.0.5"}' }).toString(), 'O{"proxy":"y","host":"10.0.0.5"}\n')
  t.equal(encodeDictReply({ kind: 'found', value: 'a\tb\nc\x01d\re\0f ü' }).toString(), 'Oa\x01tb\x01nc\x011d\x01re\x010f ü\n')
  t.equal(encodeDictReply({ kind: 'found', value: '' }).toString(), 'O\n')
  t.equal(encodeDictReply({ kind: 'notfound' }).toString(), 'N\n')
  t.equal(encodeDictReply({ kind: 'fail', reason: 'ldap: timeout\n\tafter 3s' }).toString(), 'Fldap: timeout\x01n\x01tafter 3s\n')
  fc.assert(
    fc.property(tricky, fc.constantFrom('found', 'fail'), (text, kind) => {
      const reply = encodeDictReply(kind === 'found' ? { kind, value: text } : { kind, reason: text }).toString('utf8')
      const fields = splitDictLine(reply.slice(0, -1))
      return reply.indexOf('\n') === reply.length - 1 && fields.length === 1 && fields[0] === `${kind === 'found' ? 'O' : 'F'}${text}`
    }),
    { numRuns: 1000 },
  )
  t.end()
})

t.test('unsupported commands: F for those that wait for a reply, nothing for the rest; errors: nothing', (t) => {
  t.equal(encodeUnsupportedReply('I', 'read\tonly').toString(), 'Fread\x01tonly\n', 'iterate: the value is the error')
  t.equal(encodeUnsupportedReply('C', 'read\tonly').toString(), 'F\tread\x01tonly\n', 'commit: id field, then the error')
  t.equal(encodeUnsupportedReply('D', 'x').toString(), 'F\tx\n')
  for (const c of 'BRSUAT') t.equal(encodeUnsupportedReply(c, 'x').length, 0, `${c}: no reply`)
  t.equal(dictErrorReply('malformed').length, 0)
  t.equal(dictErrorReply('too-large').length, 0)
  t.end()
})
