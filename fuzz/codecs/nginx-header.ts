// nginx auth_http's escaped header values (Auth-User, Auth-Pass): %XX for space, `%` and
// control bytes, everything else raw; decoded by percentDecode. Header values are not framed
// (the HTTP parser owns framing), so there is one value per input and no chunking.

import { percentDecode } from '../../src/http/nginx-auth.js'
import type { Rng } from '../rng.js'
import { text } from '../text.js'
import { bytesOf, request, type CodecTarget, type Decoded } from './target.js'

/** How nginx escapes (ngx_escape_uri with NGX_ESCAPE_MAIL_AUTH): space, `%` and 0x00-0x1F. */
function nginxEscape(value: string): string {
  let out = ''
  for (const b of Buffer.from(value, 'utf8')) out += b <= 0x20 || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b)
  return out
}

function decode(chunks: readonly Buffer[]): Decoded {
  // Node hands header values over as latin1 strings, one character per byte.
  const raw = Buffer.concat(chunks).toString('latin1')
  const value = percentDecode(raw)
  // Decoding only ever shrinks: three bytes become one, others stay one.
  const grew = value !== undefined && Buffer.byteLength(value, 'utf8') > raw.length
  return { items: [request(value ?? null)], maxPending: 0, endPending: 0, afterError: 0, ...(grew ? { badShape: 'decoded value longer than its escaped form' } : {}) }
}

export const nginxHeaderTarget: CodecTarget = {
  name: 'nginx header',
  delimiters: bytesOf('%', '%2', '%25', '%20', '%zz', '%00', '+'),
  streaming: false,
  valid(rng: Rng) {
    const value = text(rng, 40)
    return { bytes: Buffer.from(nginxEscape(value), 'latin1'), expect: request(value) }
  },
  hostile(rng: Rng) {
    // Escaped bytes that are not UTF-8: the user is unknown, not a lossily decoded name.
    const bad = rng.pick(['%FF', '%C3', '%ED%A0%80', '%C0%80'])
    return { bytes: Buffer.from(nginxEscape(text(rng, 10)) + bad + nginxEscape(text(rng, 10)), 'latin1'), error: request(null) }
  },
  pendingBound: () => 0,
  decode: (chunks) => decode(chunks),
}
