// The key a client address is counted under by the per-IP brakes (docs/login.md). One client is
// one key however its address is written: an IPv4 address also seen as IPv4-mapped IPv6
// (`::ffff:198.51.100.7`, how a dual-stack socket reports IPv4 peers) is the IPv4 address, and
// IPv6 addresses count per prefix (a /64 by default), since one host or LAN holds a whole /64
// and could otherwise take a fresh address, with fresh counters, for every attempt. Anything that
// is not exactly one IP address is refused, never trimmed or cut down to something that parses.

import { isIPv4, isIPv6 } from 'node:net'

/** The default prefix length IPv6 addresses are counted by: one subnet, per RFC 4291's /64s. */
export const DEFAULT_IPV6_PREFIX = 64
export const MIN_IPV6_PREFIX = 32
export const MAX_IPV6_PREFIX = 128

/**
 * The counting key of `address` with IPv6 aggregated to `ipv6Prefix` bits: an IPv4 address as
 * written (Node accepts only the canonical dotted quad), an IPv6 one as the RFC 5952 text of its
 * prefix plus `/<bits>`. Undefined for anything else: an empty string, surrounding spaces, a port,
 * a prefix length, a zone index (`fe80::1%eth0`, which names a link of ours, not a client).
 */
export function ipKey(address: string, ipv6Prefix: number): string | undefined {
  if (isIPv4(address)) return address
  if (address.includes('%') || !isIPv6(address)) return undefined
  const words = ipv6Words(address)
  if (isIPv4Mapped(words)) return `${words[6]! >> 8}.${words[6]! & 0xff}.${words[7]! >> 8}.${words[7]! & 0xff}`
  return `${formatIpv6(maskWords(words, ipv6Prefix))}/${ipv6Prefix}`
}

/** The eight 16-bit words of an address isIPv6() accepted (so its syntax is known to be right). */
function ipv6Words(address: string): number[] {
  // A trailing dotted quad stands for the last two words: write it as them.
  const last = address.lastIndexOf(':')
  let text = address
  if (address.includes('.', last)) {
    const [a, b, c, d] = address.slice(last + 1).split('.').map(Number) as [number, number, number, number]
    text = `${address.slice(0, last + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const hex = (part: string) => (part === '' ? [] : part.split(':').map((w) => Number.parseInt(w, 16)))
  const gap = text.indexOf('::')
  if (gap < 0) return hex(text)
  const head = hex(text.slice(0, gap))
  const tail = hex(text.slice(gap + 2))
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail]
}

const isIPv4Mapped = (w: readonly number[]) => w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff

function maskWords(words: readonly number[], bits: number): number[] {
  return words.map((w, i) => {
    const keep = Math.min(16, Math.max(0, bits - i * 16))
    return keep === 16 ? w : keep === 0 ? 0 : w & (0xffff << (16 - keep)) & 0xffff
  })
}

/** RFC 5952: lowercase hex without leading zeros, the longest run of two or more zero words as `::` (the first such run on a tie). */
function formatIpv6(words: readonly number[]): string {
  let best = -1
  let bestLength = 1
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && words[j] === 0) j++
    if (j - i > bestLength) {
      best = i
      bestLength = j - i
    }
    i = j
  }
  const text = (ws: readonly number[]) => ws.map((w) => w.toString(16)).join(':')
  if (best < 0) return text(words)
  return `${text(words.slice(0, best))}::${text(words.slice(best + bestLength))}`
}
