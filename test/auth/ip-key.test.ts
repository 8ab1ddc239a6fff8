// The per-IP brakes' address key (src/auth/ip-key.ts): one key per client however its address
// is written, one key per IPv6 prefix, and nothing but an IP address accepted.

import { isIP } from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { ipKey } from '../../src/auth/ip-key.js'

const word = fc.integer({ min: 0, max: 0xffff })
const words = fc.array(word, { minLength: 8, maxLength: 8 })
const octet = fc.integer({ min: 0, max: 255 })
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'))
const prefix = fc.integer({ min: 32, max: 128 })

/** One of the many ways to write an IPv6 address: full or `::`-compressed, any case, padded or not. */
function written(ws: readonly number[], style: { compress: number; upper: boolean; pad: boolean }): string {
  const w = ws.map((x) => {
    const h = style.pad ? x.toString(16).padStart(4, '0') : x.toString(16)
    return style.upper ? h.toUpperCase() : h
  })
  // Compress some run of zero words (if any), which is what a sender may choose to do.
  const runs: [number, number][] = []
  for (let i = 0; i < 8; i++) {
    if (ws[i] !== 0) continue
    let j = i
    while (j < 8 && ws[j] === 0) j++
    if (j - i >= 1) runs.push([i, j])
    i = j
  }
  if (runs.length === 0 || style.compress === 0) return w.join(':')
  const [from, to] = runs[style.compress % runs.length]!
  return `${w.slice(0, from).join(':')}::${w.slice(to).join(':')}`
}
const style = fc.record({ compress: fc.nat(8), upper: fc.boolean(), pad: fc.boolean() })

/** The words with bits from `bits` on replaced by those of `other`: another address of the same prefix. */
function samePrefix(ws: readonly number[], other: readonly number[], bits: number): number[] {
  return ws.map((w, i) => {
    const keep = Math.min(16, Math.max(0, bits - i * 16))
    const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff
    return (w & mask) | (other[i]! & ~mask & 0xffff)
  })
}

const notMapped = (ws: readonly number[]) => !(ws.slice(0, 5).every((w) => w === 0) && ws[5] === 0xffff)

t.test('examples', async (t) => {
  t.equal(ipKey('198.51.100.7', 64), '198.51.100.7')
  t.equal(ipKey('::ffff:198.51.100.7', 64), '198.51.100.7', 'IPv4-mapped is the IPv4 address')
  t.equal(ipKey('::FFFF:C633:6407', 64), '198.51.100.7', 'also in hex')
  t.equal(ipKey('2001:db8:1:2:3:4:5:6', 64), '2001:db8:1:2::/64')
  t.equal(ipKey('2001:DB8:0001:0002::ff', 64), '2001:db8:1:2::/64')
  t.equal(ipKey('2001:db8:1:2:3:4:5:6', 48), '2001:db8:1::/48')
  t.equal(ipKey('2001:db8:1:2:3:4:5:6', 128), '2001:db8:1:2:3:4:5:6/128')
  t.equal(ipKey('2001:db8::1.2.3.4', 128), '2001:db8::102:304/128', 'an embedded dotted quad elsewhere stays IPv6')
  t.equal(ipKey('::1', 64), '::/64')
  for (const bad of ['', ' 198.51.100.7', '198.51.100.7 ', '198.51.100.07', '198.51.100.7:993', '198.51.100', '2001:db8::1/64', 'fe80::1%eth0', '[2001:db8::1]', '2001:db8::1::2', 'localhost', '::ffff:198.51.100.7x', '-']) {
    t.equal(ipKey(bad, 64), undefined, `${JSON.stringify(bad)} is refused`)
  }
})

t.test('property: every address in one prefix maps to one key, however it is written', async () => {
  fc.assert(
    fc.property(words, words, prefix, style, style, (a, other, bits, s1, s2) => {
      const b = samePrefix(a, other, bits)
      fc.pre(notMapped(a) && notMapped(b))
      const ka = ipKey(written(a, s1), bits)
      return ka !== undefined && ka === ipKey(written(b, s2), bits)
    }),
  )
})

t.test('property: addresses in different prefixes map to different keys', async () => {
  fc.assert(
    fc.property(words, words, prefix, (a, b, bits) => {
      fc.pre(notMapped(a) && notMapped(b))
      const differ = samePrefix(a, new Array<number>(8).fill(0), bits).join() !== samePrefix(b, new Array<number>(8).fill(0), bits).join()
      return differ === (ipKey(written(a, { compress: 1, upper: false, pad: false }), bits) !== ipKey(written(b, { compress: 0, upper: true, pad: true }), bits))
    }),
  )
})

t.test('property: an IPv6 key is its prefix, which maps to itself (the key is canonical)', async () => {
  fc.assert(
    fc.property(words, prefix, style, (a, bits, s) => {
      fc.pre(notMapped(a))
      const key = ipKey(written(a, s), bits)!
      const [net, length] = key.split('/') as [string, string]
      return Number(length) === bits && isIP(net) === 6 && ipKey(net, bits) === key
    }),
  )
})

t.test('property: IPv4-mapped IPv6 is the IPv4 address, in every notation', async () => {
  fc.assert(
    fc.property(ipv4, prefix, fc.boolean(), (v4, bits, upper) => {
      const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number]
      const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
      const ffff = upper ? 'FFFF' : 'ffff'
      const forms = [`::${ffff}:${v4}`, `::${ffff}:${hex}`, `0:0:0:0:0:${ffff}:${v4}`, `0:0:0:0:0:${ffff}:${hex}`]
      return ipKey(v4, bits) === v4 && forms.every((f) => ipKey(f, bits) === v4)
    }),
  )
})

t.test('property: invalid input is refused, not truncated', async () => {
  const address = fc.oneof(ipv4, fc.tuple(words, style).map(([w, s]) => written(w, s)))
  const junk = fc.string({ unit: 'binary', minLength: 1, maxLength: 8 })
  fc.assert(
    fc.property(address, junk, fc.boolean(), prefix, (addr, extra, before, bits) => {
      const s = before ? extra + addr : addr + extra
      // Junk that happens to leave another valid address ("1.2.3.4" + "5") is not junk.
      fc.pre(isIP(s) === 0 || s.includes('%'))
      return ipKey(s, bits) === undefined
    }),
  )
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 64 }), prefix, (s, bits) => {
      const key = ipKey(s, bits)
      return isIP(s) === 0 || s.includes('%') ? key === undefined : key !== undefined
    }),
  )
})
