import fc from 'fast-check'
import t from 'tap'
import { canonicalAddress, canonicalDomain, withExtension, MAX_ADDRESS_OCTETS } from '../../src/resolve/address.js'
import { domainToASCII } from 'node:url'

const opts = { extensionDelimiters: '+', foldLocalPart: true }

t.test('canonical form', async (t) => {
  const c = canonicalAddress('  Alice+Tag@Example.ORG.  ', opts)
  t.match(c, { ok: true, address: 'alice+tag@example.org', base: 'alice@example.org', extension: 'tag', delimiter: '+' })
  t.match(canonicalAddress('üser@exämple.org', opts), { ok: true, address: 'üser@xn--exmple-cua.org' })
  t.match(canonicalAddress('Alice@example.org', { ...opts, foldLocalPart: false }), { ok: true, address: 'Alice@example.org' })
  t.match(canonicalAddress('a-b@example.org', { extensionDelimiters: '+-', foldLocalPart: true }), { base: 'a@example.org', delimiter: '-' })
  t.match(canonicalAddress('+tag@example.org', opts), { ok: true, address: '+tag@example.org' })
  t.notOk((canonicalAddress('+tag@example.org', opts) as { base?: string }).base, 'a leading delimiter is not an extension')
  t.match(canonicalAddress('alice@example.org', { ...opts, extensionDelimiters: '' }), { ok: true })
})

t.test('not addresses', async (t) => {
  for (const k of ['', '   ', '*', 'example.org', '@example.org', 'a@', 'a@[10.0.0.1]', 'a@localhost', 'a\u0000b@example.org', 'a@exa mple.org', 'a@-x.org', `${'a'.repeat(65)}@example.org`]) {
    t.equal(canonicalAddress(k, opts).ok, false, JSON.stringify(k))
  }
  t.equal(canonicalAddress(`${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.org`, opts).ok, false, 'over 254 octets')
})

t.test('domains', async (t) => {
  t.equal(canonicalDomain('EXAMPLE.org.'), 'example.org')
  t.equal(canonicalDomain('bücher.example'), 'xn--bcher-kva.example')
  t.equal(canonicalDomain('[127.0.0.1]'), undefined)
  t.equal(canonicalDomain('nodot'), undefined)
})

t.test('domains: URL syntax, percent-encoding and IPv4 numbers are not domains, never cut or decoded', async (t) => {
  for (const d of [
    'example.org/evil',
    'example.org\\evil',
    'example.org?x',
    'example.org#x',
    'example.org/',
    'example.org:25',
    'example.org@x',
    'exa%6Dple.org',
    'bücher.example/x',
    'example.org／evil',
    'example.org＃x',
    '1.2.3.4',
    '0x7f.1',
    '1.2.3.010',
    '０x7f.１',
    'example.123',
  ]) {
    t.equal(canonicalDomain(d), undefined, JSON.stringify(d))
    t.match(canonicalAddress(`alice@${d}`, opts), { ok: false, reason: 'not a valid domain' }, `alice@${d}`)
  }
  t.equal(canonicalDomain('1.example.org'), '1.example.org', 'a numeric label elsewhere is fine')
  t.equal(canonicalDomain('a.b2'), 'a.b2')
})

// Generators for the domain properties: ASCII names with every kind of label, non-ASCII letters
// and the full-width forms IDNA maps onto ASCII delimiters, and every ASCII character a host
// name cannot hold.
const NON_HOST_ASCII = [...Array(128).keys()].map((c) => String.fromCharCode(c)).filter((c) => !/[A-Za-z0-9._-]/.test(c))
const hostChar = fc.constantFrom(...'abcxnzAXNZ0123456789-_.', 'ü', 'ß', 'é', 'İ', 'ı', 'ا', 'א', '中', '😀', '．', '。', '０', 'ｘ', '\u00ad', '\u200b', '\u200d')
const hostish = fc.oneof(
  fc.string({ unit: hostChar, minLength: 1, maxLength: 40 }),
  fc.stringMatching(/^[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){1,4}$/),
  fc.constantFrom('example.org', 'mx1.example.org', 'xn--bcher-kva.example', 'bücher.example', 'EXAMPLE.ORG'),
)
const anyDomainInput = fc.oneof(
  hostish,
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.tuple(hostish, fc.constantFrom(...NON_HOST_ASCII, '／', '＼', '？', '＃', '％', '＠', '：'), fc.string({ unit: hostChar, maxLength: 10 })).map(([a, c, b]) => a + c + b),
)
const isAscii = (s: string) => [...s].every((c) => c.charCodeAt(0) < 128)

t.test('property: a name holding a character no host name has is never a domain', async () => {
  fc.assert(
    fc.property(hostish, fc.constantFrom(...NON_HOST_ASCII), hostish, (a, c, b) => {
      // Between two non-blank parts, so trimming cannot take it away.
      const name = `${a}${c}${b}`
      return canonicalDomain(name) === undefined && canonicalAddress(`alice@${name}`, opts).ok === (c === '@' && canonicalAddress(`alice@${b}`, opts).ok)
    }),
    { numRuns: 20_000 },
  )
  fc.assert(
    fc.property(hostish, fc.constantFrom('/', '\\', '?', '#', '%', ':', '@', '／', '＼', '？', '＃', '％', '＠', '：'), fc.string({ unit: hostChar, maxLength: 10 }), (a, c, b) => canonicalDomain(`${a}${c}${b}`) === undefined),
    { numRuns: 20_000 },
  )
})

t.test('property: canonicalDomain answers a canonical name or nothing, and its answer is its own canonical form', async () => {
  fc.assert(
    fc.property(anyDomainInput, (d) => {
      const c = canonicalDomain(d)
      if (c === undefined) return true
      const labels = c.split('.')
      return (
        canonicalDomain(c) === c &&
        /^[a-z0-9_.-]+$/.test(c) &&
        c.length <= 253 &&
        labels.length >= 2 &&
        labels.every((l) => /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/.test(l)) &&
        !/^[0-9]+$/.test(labels.at(-1)!)
      )
    }),
    { numRuns: 20_000 },
  )
})

t.test('property: an ASCII name is answered as given (lowercase, no trailing dot) or not at all: nothing is cut or decoded', async () => {
  const asciiName = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'abcxnzAXNZ0123456789-_.', ...NON_HOST_ASCII), maxLength: 40 }),
    fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){1,4}$/), fc.constantFrom(...NON_HOST_ASCII), fc.string({ unit: 'grapheme-ascii', maxLength: 10 })).map(([a, c, b]) => a + c + b),
  )
  fc.assert(
    fc.property(asciiName, (d) => {
      const c = canonicalDomain(d)
      if (c === undefined) return true
      const given = d.trim().toLowerCase()
      return c === (given.endsWith('.') ? given.slice(0, -1) : given)
    }),
    { numRuns: 20_000 },
  )
})

t.test('property: case and one trailing dot never change a domain; an address has the domain canonicalDomain gives', async () => {
  fc.assert(
    fc.property(hostish, (d) => {
      const c = canonicalDomain(d)
      const ascii = isAscii(d)
      if (ascii && canonicalDomain(d.toUpperCase()) !== c) return false
      if (ascii && canonicalDomain(d.toLowerCase()) !== c) return false
      if (!d.endsWith('.') && canonicalDomain(`${d}.`) !== c) return false
      const a = canonicalAddress(`alice@${d}`, opts)
      return c === undefined ? !a.ok : a.ok && a.domain === c && a.address === `alice@${c}`
    }),
    { numRuns: 20_000 },
  )
})

t.test('withExtension', async (t) => {
  t.equal(withExtension('alice@example.org', '+', 'x'), 'alice+x@example.org')
  t.equal(withExtension('alice@example.org', undefined, undefined), 'alice@example.org')
})

t.test('property: total, bounded, idempotent', async () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (s) => {
      const c = canonicalAddress(s, opts)
      if (!c.ok) return typeof c.reason === 'string' && c.reason.length > 0
      const again = canonicalAddress(c.address, opts)
      return (
        again.ok &&
        again.address === c.address &&
        Buffer.byteLength(c.address) <= MAX_ADDRESS_OCTETS &&
        c.domain === c.domain.toLowerCase() &&
        c.address.endsWith(`@${c.domain}`)
      )
    }),
    { numRuns: 5000 },
  )
})

t.test('property: case and trailing dot never change the key', async () => {
  const local = fc.stringMatching(/^[a-z0-9.]{1,20}$/)
  const domain = fc.stringMatching(/^[a-z]{1,10}\.[a-z]{2,6}$/)
  fc.assert(
    fc.property(local, domain, fc.boolean(), (l, d, dot) => {
      const a = canonicalAddress(`${l}@${d}`, opts)
      const b = canonicalAddress(`${l.toUpperCase()}@${d.toUpperCase()}${dot ? '.' : ''}`, opts)
      return a.ok === b.ok && (!a.ok || (b.ok && a.address === b.address))
    }),
  )
})

// canonicalDomain skips domainToASCII for plain lowercase ASCII names; this is the path every
// name took before, kept here as the reference it must agree with. What is refused before and
// after domainToASCII is the same in both; only the shortcut differs.
function canonicalDomainByDomainToASCII(input: string): string | undefined {
  let d = input.trim()
  if (d.endsWith('.')) d = d.slice(0, -1)
  if (d === '' || /[^A-Za-z0-9._\u0080-\uffff-]/.test(d)) return undefined
  const ascii = domainToASCII(d)
  if (ascii === '' || ascii.length > 253 || /(?:^|\.)[0-9]+$/.test(ascii)) return undefined
  const labels = ascii.split('.')
  if (labels.length < 2 || !labels.every((l) => /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/.test(l))) return undefined
  return ascii
}

t.test('canonicalDomain: the plain-ASCII shortcut answers what domainToASCII would', async (t) => {
  const chars = fc.constantFrom(...'abcxnzAXNZ0123456789-_.')
  const label = fc.oneof(
    fc.string({ unit: chars, maxLength: 8 }),
    fc.stringMatching(/^[a-z0-9-]{0,70}$/),
    fc.stringMatching(/^(xn|XN|Xn)--[a-z0-9-]{0,12}$/),
    fc.stringMatching(/^[0-9]{1,4}$/),
    fc.stringMatching(/^0[xX][0-9a-fA-F]{0,4}$/),
    fc.stringMatching(/^[0-7]{1,4}$/),
    fc.constantFrom('', '-', '_', 'a-', '-a', 'ab--cd', 'xn--', 'xn--abc', 'xn--bcher-kva', 'xn--a', 'xn--ls8h', 'a'.repeat(63), 'b'.repeat(64), '0x', '0xg', '1e3', '00', 'localhost'),
  )
  const name = fc.tuple(fc.array(label, { minLength: 1, maxLength: 6 }), fc.constantFrom('', '.', '..'), fc.constantFrom('', ' ', '\t')).map(([ls, dots, pad]) => `${pad}${ls.join('.')}${dots}${pad}`)
  const cases = ['example.org', 'example.org.', 'a..b', '.example.org', 'example..', 'mx1.example.org', 'xn--bcher-kva.example', 'b.0x1', '1.2.3.4', 'a.1', 'a.1.', '1.a', 'a.b_c', 'a.-b', 'a.b-', `${'a'.repeat(63)}.org`, `${'a.'.repeat(126)}org`, `${'ab.'.repeat(84)}org`]
  for (const c of cases) t.equal(canonicalDomain(c), canonicalDomainByDomainToASCII(c), JSON.stringify(c))
  fc.assert(
    fc.property(fc.oneof(name, fc.string({ unit: chars, maxLength: 300 })), (d) => {
      const got = canonicalDomain(d)
      const want = canonicalDomainByDomainToASCII(d)
      if (got !== want) throw new Error(`${JSON.stringify(d)}: ${String(got)} != ${String(want)}`)
    }),
    { numRuns: 20_000 },
  )
})
