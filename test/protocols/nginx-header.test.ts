// nginx auth_http's escaped header values (Auth-User, Auth-Pass), decoded by percentDecode:
// what nginx escapes comes back exactly, and any other value, however damaged, decodes to a
// string or to "not UTF-8" without throwing. Examples are in test/login/nginx-auth.test.ts.

import t from 'tap'
import fc from 'fast-check'
import { percentDecode } from '../../src/http/nginx-auth.js'

/** nginx's escaping for these headers, written out: %XX for space, `%` and bytes below 0x20. */
function nginxEscape(value: string): string {
  let out = ''
  for (const b of Buffer.from(value, 'utf8')) out += b <= 0x20 || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b)
  return out
}

// Node hands header values over one character per byte (latin1), so any 0x00-0xff text can arrive.
const headerValue = fc.string({ unit: fc.oneof(fc.constantFrom('%', '%2', '%25', '%zz', '%F', '%C3', '%BC', '+'), fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c))), maxLength: 60 })

void t.test('property: what nginx escapes decodes back exactly (a + stays a +)', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (value) => percentDecode(nginxEscape(value)) === value),
    { numRuns: 2000, seed: 7 },
  )
  t.end()
})

void t.test('property: any header value decodes to a string no longer than itself, or to undefined, without throwing', (t) => {
  fc.assert(
    fc.property(headerValue, (raw) => {
      const value = percentDecode(raw)
      return value === undefined || Buffer.byteLength(value, 'utf8') <= raw.length
    }),
    { numRuns: 2000, seed: 7 },
  )
  t.end()
})

void t.test('property: escaped bytes that are not UTF-8 make the value undefined, never a lossy name', (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 10 }), fc.constantFrom('%FF', '%C3', '%ED%A0%80', '%C0%80', '%80'), fc.string({ maxLength: 10 }), (before, bad, after) =>
      percentDecode(nginxEscape(before) + bad + nginxEscape(after)) === undefined,
    ),
    { numRuns: 1000, seed: 7 },
  )
  t.end()
})
