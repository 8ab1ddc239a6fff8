// Random text for valid frames: address-like keys and attribute values that mix ASCII with the
// characters the codecs treat specially (space, %, TAB, multi-byte UTF-8), so valid frames
// already walk the escaping and splitting paths before any mutation.

import type { Rng } from './rng.js'

const UNITS: readonly string[] = [
  ...'abcdefghijklmnopqrstuvwxyz0123456789',
  ...'ABCXYZ.-_+@*',
  ' ', '%', '=', ':', ',', '\t', '\x01', '"', "'", '/', '\\',
  'ü', 'ä', 'é', 'ß', '€', '中', '😀', '𝄞',
]
const LOCAL = [...'abcdefghijklmnopqrstuvwxyz0123456789.-_+']

/** Up to `max` units drawn from UNITS (some characters are several bytes). */
export function text(rng: Rng, max: number): string {
  let s = ''
  for (let n = rng.int(0, max); n > 0; n--) s += rng.pick(UNITS)
  return s
}

/** Something an MTA might ask about: a plausible address most of the time, odd text otherwise. */
export function addressLike(rng: Rng): string {
  if (rng.chance(0.2)) return text(rng, 40)
  let local = ''
  for (let n = rng.int(1, 20); n > 0; n--) local += rng.pick(LOCAL)
  const domain = rng.pick(['example.org', 'example.net', 'example.com', 'unserved.test', 'Example.ORG', 'exämple.org'])
  return `${local}@${domain}`
}
