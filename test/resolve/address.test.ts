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
// name took before, kept here as the reference it must agree with.
function canonicalDomainByDomainToASCII(input: string): string | undefined {
  let d = input.trim()
  if (d.endsWith('.')) d = d.slice(0, -1)
  // eslint-disable-next-line no-control-regex
  if (d === '' || d.startsWith('[') || /[\u0000-\u001f\u007f]/.test(d)) return undefined
  const ascii = domainToASCII(d)
  if (ascii === '' || ascii.length > 253) return undefined
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
