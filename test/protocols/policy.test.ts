import t from 'tap'
import fc from 'fast-check'
import {
  POLICY_MAX_ACTION_BYTES,
  PolicyDecoder,
  encodePolicyReply,
  policyErrorReply,
} from '../../src/protocols/policy.js'
import type { PolicyRequest } from '../../src/policy/types.js'
import type { DecodedItem } from '../../src/protocols/decoder.js'

type Item = DecodedItem<PolicyRequest>
/** A decoded item with its map as entries, so t.same and === comparisons see the order too. */
type Flat = { type: 'request'; attrs: [string, string | null][] } | { type: 'error'; error: string }

const strict = new TextDecoder('utf-8', { fatal: true })

function flat(item: Item): Flat {
  return item.type === 'request' ? { type: 'request', attrs: [...item.request] } : { type: 'error', error: item.error }
}

/** Feeds the chunks one by one, pulling everything after each; checks the buffer bound on the way. */
function decodeAll(chunks: Buffer[], max = 16384): { items: Flat[]; maxPending: number } {
  const d = new PolicyDecoder(max)
  const items: Flat[] = []
  let maxPending = 0
  for (const c of chunks) {
    d.push(c)
    for (let item = d.next(); item !== undefined; item = d.next()) items.push(flat(item))
    maxPending = Math.max(maxPending, d.pendingBytes)
  }
  return { items, maxPending }
}

const decode = (text: string | Buffer, max?: number) => decodeAll([Buffer.from(text)], max).items

/** Cuts a buffer at arbitrary points (given as naturals, reduced modulo its length). */
function split(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
  return [0, ...points].map((p, i, all) => stream.subarray(p, all[i + 1] ?? stream.length))
}

/**
 * The protocol rules of src/protocols/policy.ts, written out over a whole stream at once as a
 * reference: any chunking of the same bytes must decode to exactly this.
 */
function reference(stream: Buffer, max: number): Flat[] {
  const out: Flat[] = []
  let start = 0
  let attrs = new Map<string, string | null>()
  let line = start
  for (;;) {
    const nl = stream.indexOf(0x0a, line)
    if (nl < 0) {
      if (stream.length - start > max) out.push({ type: 'error', error: 'too-large' })
      return out
    }
    if (nl + 1 - start > max) return [...out, { type: 'error', error: 'too-large' }]
    const text = stream.subarray(line, nl)
    line = nl + 1
    if (text.length === 0) {
      out.push({ type: 'request', attrs: [...attrs] })
      attrs = new Map()
      start = line
      continue
    }
    const eq = text.indexOf(0x3d)
    let name: string | undefined
    try {
      name = eq > 0 && !text.includes(0) ? strict.decode(text.subarray(0, eq)) : undefined
    } catch {
      name = undefined
    }
    if (name === undefined) return [...out, { type: 'error', error: 'malformed' }]
    let value: string | null
    try {
      value = strict.decode(text.subarray(eq + 1))
    } catch {
      value = null
    }
    attrs.set(name, value)
  }
}

/** What Postfix 3.7.11 sent at RCPT, as captured in protocols.md §3. */
const POSTFIX_RCPT = [
  'request=smtpd_access_policy',
  'protocol_state=RCPT',
  'protocol_name=ESMTP',
  'client_address=127.0.0.1',
  'client_name=localhost',
  'client_port=54978',
  'reverse_client_name=localhost',
  'server_address=127.0.0.1',
  'server_port=2525',
  'helo_name=client.example',
  'sender=sender@example.org',
  'recipient=OK.User+Ext@Relay.TEST',
  'recipient_count=0',
  'queue_id=',
  'instance=2a32.6b02e5c5.cd127.0',
  'size=0',
  'etrn_domain=',
  'stress=',
  'sasl_method=',
  'sasl_username=',
  'sasl_sender=',
  'ccert_subject=',
  'ccert_issuer=',
  'ccert_fingerprint=',
  'ccert_pubkey_fingerprint=',
  'encryption_protocol=',
  'encryption_cipher=',
  'encryption_keysize=0',
  'policy_context=',
]

void t.test("a Postfix 3.7 RCPT request decodes to every attribute, in Postfix's order", (t) => {
  const items = decode(POSTFIX_RCPT.join('\n') + '\n\n')
  t.equal(items.length, 1)
  const item = items[0]!
  t.equal(item.type, 'request')
  if (item.type === 'request') {
    t.same(
      item.attrs,
      POSTFIX_RCPT.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
  }
  t.end()
})

void t.test('lines split at the first =; CR, empty values, duplicates and unknown names', (t) => {
  t.same(decode('a=b=c\nempty=\nx=1\nx=2\nfuture_attribute=v\n\n'), [
    { type: 'request', attrs: [['a', 'b=c'], ['empty', ''], ['x', '2'], ['future_attribute', 'v']] },
  ])
  t.same(decode('recipient=a@x\r\n\n'), [{ type: 'request', attrs: [['recipient', 'a@x\r']] }], 'CR belongs to the value')
  t.same(decode('a=1\n\r\n\n'), [{ type: 'error', error: 'malformed' }], 'a CR-only line is not the empty line')
  t.same(decode('\n'), [{ type: 'request', attrs: [] }], 'an empty request')
  t.same(decode('sender=ü@exämple.org\n\nsender=\n\n'), [
    { type: 'request', attrs: [['sender', 'ü@exämple.org']] },
    { type: 'request', attrs: [['sender', '']] },
  ], 'UTF-8, and requests that follow one another')
  t.end()
})

void t.test('strict UTF-8: an invalid value is null, an invalid name is malformed', (t) => {
  const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))))
  t.same(decode(bytes('sender=a', [0xff, 0xfe], '@x\nrecipient=b@x\n\n')), [
    { type: 'request', attrs: [['sender', null], ['recipient', 'b@x']] },
  ])
  t.same(decode(bytes('v=', [0xc3], '\n\n')), [{ type: 'request', attrs: [['v', null]] }], 'truncated sequence')
  t.same(decode(bytes('v=', [0xed, 0xa0, 0x80], '\n\n')), [{ type: 'request', attrs: [['v', null]] }], 'encoded surrogate')
  t.same(decode(bytes('n', [0xff], '=v\n\n')), [{ type: 'error', error: 'malformed' }])
  t.end()
})

void t.test('malformed lines: no =, empty name, NUL anywhere', (t) => {
  for (const bad of ['recipient\n\n', '=value\n\n', '=\n\n', 'a\0b=c\n\n', 'a=b\0c\n\n', 'a=b\n\0\n\n', 'GET / HTTP/1.1\r\n\r\n'])
    t.same(decode(bad), [{ type: 'error', error: 'malformed' }], JSON.stringify(bad))
  t.same(decode('a=1\n\nnonsense\nb=2\n\n'), [{ type: 'request', attrs: [['a', '1']] }, { type: 'error', error: 'malformed' }])
  t.same(decode('a=1\nnonsense'), [], 'a bad line is judged only once it is complete')
  t.same(decode('a=1\nnonsense\n'), [{ type: 'error', error: 'malformed' }], 'before the request ends')
  t.end()
})

void t.test('pendingBytes, and nothing after an error', (t) => {
  const d = new PolicyDecoder(100)
  d.push(Buffer.from('a=1\nb='))
  t.equal(d.next(), undefined)
  t.equal(d.pendingBytes, 6)
  d.push(Buffer.from('2\n\nc=3\n'))
  t.same(flat(d.next()!), { type: 'request', attrs: [['a', '1'], ['b', '2']] })
  t.equal(d.next(), undefined)
  t.equal(d.pendingBytes, 4, 'the started request')
  d.push(Buffer.from('oops\n'))
  t.same(d.next(), { type: 'error', error: 'malformed' })
  t.equal(d.pendingBytes, 0)
  d.push(Buffer.from('\na=1\n\n'))
  t.equal(d.next(), undefined)
  t.equal(d.pendingBytes, 0, 'input after an error is dropped')
  t.end()
})

void t.test('the size limit counts the whole request, empty line included, and is exact', (t) => {
  // 'a=' + n x's + '\n' + '\n' is n + 4 bytes.
  const request = (bytes: number) => `a=${'x'.repeat(bytes - 4)}\n\n`
  t.same(decode(request(100), 100), [{ type: 'request', attrs: [['a', 'x'.repeat(96)]] }])
  t.same(decode(request(101), 100), [{ type: 'error', error: 'too-large' }])
  t.same(decode(request(101).slice(0, -1), 100), [], 'the limit still allows the empty line to come')
  t.same(decode(request(102).slice(0, -1), 100), [{ type: 'error', error: 'too-large' }], 'without waiting for the empty line')
  t.same(decode('y'.repeat(101), 100), [{ type: 'error', error: 'too-large' }], 'a line that never ends')
  t.same(decode('a=1\n'.repeat(25) + '\n', 100), [{ type: 'error', error: 'too-large' }], 'many short lines add up')
  t.same(decode(request(100).repeat(3), 100).length, 3, 'each request has its own budget')
  t.end()
})

void t.test('replies', (t) => {
  t.equal(encodePolicyReply('DUNNO').toString(), 'action=DUNNO\n\n')
  t.equal(encodePolicyReply('550 5.1.1 mailbox unknown').toString(), 'action=550 5.1.1 mailbox unknown\n\n')
  t.equal(encodePolicyReply('450 a\r\nb\nc\0d').toString(), 'action=450 a  b c d\n\n', 'CR, LF and NUL become spaces')
  t.equal(encodePolicyReply('550 5.7.1 ü').toString('utf8'), 'action=550 5.7.1 ü\n\n')
  const long = encodePolicyReply('x'.repeat(5000))
  t.equal(long.length, 'action='.length + POLICY_MAX_ACTION_BYTES + 2)
  // 3999 ASCII bytes, then a 2-byte character that would end at byte 4001: it is dropped whole.
  t.equal(encodePolicyReply('y'.repeat(3999) + 'üz').toString('utf8'), `action=${'y'.repeat(3999)}\n\n`)
  t.equal(policyErrorReply('malformed').length, 0)
  t.equal(policyErrorReply('too-large').length, 0)
  t.end()
})

// Byte soup that hits the interesting paths often: separators, NUL, CR, invalid UTF-8.
const soup = fc
  .array(
    fc.oneof(
      fc.constantFrom('=', '\n', '\n\n', '\0', '\r', 'a', 'recipient=x@y\n', 'name=', 'ü').map((s) => Buffer.from(s)),
      fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a)),
    ),
    { maxLength: 60 },
  )
  .map((parts) => Buffer.concat(parts))
const anyBytes = fc.oneof(
  soup,
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
)

void t.test('property: any bytes in any chunks decode like the reference, never throw, never over-buffer', (t) => {
  fc.assert(
    fc.property(anyBytes, fc.array(fc.nat(), { maxLength: 12 }), fc.integer({ min: 1, max: 120 }), (stream, cuts, max) => {
      const { items, maxPending } = decodeAll(split(stream, cuts), max)
      const errorAt = items.findIndex((i) => i.type === 'error')
      if (errorAt >= 0 && errorAt !== items.length - 1) return false
      // Between pulls the decoder holds at most one unfinished request of at most `max` bytes.
      if (maxPending > max) return false
      for (const item of items) {
        if (item.type !== 'request') continue
        for (const [name, value] of item.attrs) {
          if (name === '' || /[=\n\0]/.test(name)) return false
          if (value !== null && /[\n\0]/.test(value)) return false
        }
      }
      return JSON.stringify(items) === JSON.stringify(reference(stream, max))
    }),
    { numRuns: 1000 },
  )
  t.end()
})

const nameArb = fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).filter((s) => !/[=\n\0]/.test(s))
const valueArb = fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !/[\n\0]/.test(s))
const attrsArb = fc.array(fc.tuple(nameArb, valueArb), { maxLength: 12 })
const encodeRequest = (attrs: [string, string][]) => Buffer.from(attrs.map(([n, v]) => `${n}=${v}\n`).join('') + '\n', 'utf8')

void t.test('property: attribute maps round-trip, last duplicate winning', (t) => {
  fc.assert(
    fc.property(attrsArb, (attrs) => {
      const items = decode(encodeRequest(attrs), 1 << 20)
      const expected = [...new Map(attrs)]
      return items.length === 1 && JSON.stringify(items[0]) === JSON.stringify({ type: 'request', attrs: expected })
    }),
    { numRuns: 1000 },
  )
  t.end()
})

void t.test('property: a valid stream decodes the same in any chunking', (t) => {
  fc.assert(
    fc.property(fc.array(attrsArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 20 }), (requests, cuts) => {
      const stream = Buffer.concat(requests.map(encodeRequest))
      const whole = decodeAll([stream], 1 << 20).items
      const chunked = decodeAll(split(stream, cuts), 1 << 20).items
      return (
        whole.length === requests.length &&
        whole.every((item, i) => JSON.stringify(item) === JSON.stringify({ type: 'request', attrs: [...new Map(requests[i])] })) &&
        JSON.stringify(chunked) === JSON.stringify(whole)
      )
    }),
    { numRuns: 500 },
  )
  t.end()
})

void t.test('property: a request is rejected exactly when it exceeds maxRequestBytes', (t) => {
  // Lengths near the limit half of the time: off-by-one mistakes live there.
  const sizes = fc
    .integer({ min: 4, max: 3000 })
    .chain((max) => fc.tuple(fc.constant(max), fc.oneof(fc.integer({ min: 4, max: 3000 }), fc.integer({ min: Math.max(4, max - 2), max: max + 2 }))))
  fc.assert(
    fc.property(sizes, fc.array(fc.nat(), { maxLength: 5 }), ([max, len], cuts) => {
      const stream = Buffer.from(`a=${'v'.repeat(len - 4)}\n\n`)
      const { items } = decodeAll(split(stream, cuts), max)
      return items.length === 1 && items[0]!.type === (len <= max ? 'request' : 'error')
    }),
    { numRuns: 500 },
  )
  t.end()
})

void t.test('property: a value that is not valid UTF-8 arrives as null, a valid one intact', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 30 }).map((a) => Buffer.from(a.filter((b) => b !== 0x0a && b !== 0))), (value) => {
      const items = decode(Buffer.concat([Buffer.from('v='), value, Buffer.from('\n\n')]))
      let expected: string | null
      try {
        expected = strict.decode(value)
      } catch {
        expected = null
      }
      return items.length === 1 && JSON.stringify(items[0]) === JSON.stringify({ type: 'request', attrs: [['v', expected]] })
    }),
    { numRuns: 1000 },
  )
  t.end()
})

void t.test('property: a reply is one action line and an empty line, whole characters, within the limit', (t) => {
  const actionArb = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.string({ unit: fc.constantFrom('a', 'ü', '€', '𝄞', '\n', '\r', '\0', ' '), maxLength: 3000 }),
    fc.string({ unit: 'grapheme', minLength: 1300, maxLength: 2000 }),
  )
  fc.assert(
    fc.property(actionArb, (action) => {
      const wire = encodePolicyReply(action)
      const head = Buffer.from('action=')
      if (!wire.subarray(0, head.length).equals(head) || !wire.subarray(-2).equals(Buffer.from('\n\n'))) return false
      const body = wire.subarray(head.length, -2)
      if (body.includes(0x0a) || body.includes(0x0d) || body.includes(0)) return false
      if (body.length > POLICY_MAX_ACTION_BYTES) return false
      const text = strict.decode(body)
      const sanitized = Buffer.from(action.replace(/[\r\n\0]/g, ' '), 'utf8').toString('utf8')
      // A prefix of the sanitized text, cut only when the next character would not fit.
      if (!sanitized.startsWith(text)) return false
      const rest = sanitized.slice(text.length)
      return rest === '' || body.length + Buffer.byteLength(String.fromCodePoint(rest.codePointAt(0)!)) > POLICY_MAX_ACTION_BYTES
    }),
    { numRuns: 1000 },
  )
  t.end()
})
