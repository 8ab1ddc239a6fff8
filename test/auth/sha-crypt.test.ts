// SHA-crypt ($5$, $6$) against Drepper's published vectors and against the C implementations
// on this machine: mkpasswd (libxcrypt, package whois) and `openssl passwd`. Every output
// must be the tools' output byte for byte, not merely verify.

import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ROUNDS_DEFAULT, shaCrypt, shaCryptSalt, type ShaCryptId } from '../../src/auth/sha-crypt.js'
import { UnsupportedSchemeError, verifyPassword } from '../../src/auth/passwords.js'
import { run } from '../harness/process.js'

const utf8 = (s: string) => Buffer.from(s, 'utf8')

// From "Unix crypt using SHA-256 and SHA-512" (Drepper), its test table: setting, key, output.
// The setting's salt and rounds go in as written; the spec cuts and clamps them.
const SPEC: readonly [ShaCryptId, string, number | undefined, string, string][] = [
  ['5', 'saltstring', undefined, 'Hello world!', '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5'],
  ['5', 'saltstringsaltstring', 10000, 'Hello world!', '$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA'],
  ['5', 'toolongsaltstring', 5000, 'This is just a test', '$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5'],
  [
    '5',
    'anotherlongsaltstring',
    1400,
    'a very much longer text to encrypt.  This one even stretches over morethan one line.',
    '$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1',
  ],
  ['5', 'short', 77777, 'we have a short salt string but not a short password', '$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/'],
  ['5', 'asaltof16chars..', 123456, 'a short string', '$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD'],
  ['5', 'roundstoolow', 10, 'the minimum number is still observed', '$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC'],
  ['6', 'saltstring', undefined, 'Hello world!', '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
  [
    '6',
    'saltstringsaltstring',
    10000,
    'Hello world!',
    '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.',
  ],
  [
    '6',
    'toolongsaltstring',
    5000,
    'This is just a test',
    '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0',
  ],
  [
    '6',
    'anotherlongsaltstring',
    1400,
    'a very much longer text to encrypt.  This one even stretches over morethan one line.',
    '$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1',
  ],
  [
    '6',
    'short',
    77777,
    'we have a short salt string but not a short password',
    '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0',
  ],
  [
    '6',
    'asaltof16chars..',
    123456,
    'a short string',
    '$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1',
  ],
  [
    '6',
    'roundstoolow',
    10,
    'the minimum number is still observed',
    '$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.',
  ],
]

t.test("Drepper's vectors: exact output, then verified through {CRYPT}", async (t) => {
  for (const [id, salt, rounds, key, expected] of SPEC) {
    const out = await shaCrypt(id, utf8(key), rounds === undefined ? { salt } : { salt, rounds })
    t.equal(out, expected, `$${id}$ salt ${salt} rounds ${rounds ?? 'default'}`)
    t.equal(await verifyPassword(`{CRYPT}${expected}`, key), 'ok')
    t.equal(await verifyPassword(`{CRYPT}${expected}`, `${key}.`), 'mismatch')
  }
})

t.test('the spec clamps rounds in output; a stored value outside the range is refused, not compared', async (t) => {
  // The spec's own vector, stored as its setting was written: no implementation outputs this.
  const stored = '{SHA512-CRYPT}$6$rounds=10$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.'
  await t.rejects(verifyPassword(stored, 'the minimum number is still observed'), UnsupportedSchemeError)
  t.match(await shaCrypt('5', utf8('x'), { salt: 'ab', rounds: 0 }), /^\$5\$rounds=1000\$ab\$/)
  t.match(await shaCrypt('6', utf8('x'), { salt: 'ab', rounds: ROUNDS_DEFAULT }), /^\$6\$rounds=5000\$ab\$/, 'explicit 5000 stays explicit')
})

t.test('settings outside the salt alphabet or not an integer round count are programming errors', async (t) => {
  await t.rejects(shaCrypt('6', utf8('x'), { salt: 'sa$lt' }), RangeError)
  await t.rejects(shaCrypt('6', utf8('x'), { salt: 'sält' }), RangeError)
  await t.rejects(shaCrypt('6', utf8('x'), { salt: 'salt', rounds: 1.5 }), RangeError)
  await t.rejects(shaCrypt('6', utf8('x'), { salt: 'salt', rounds: -1 }), RangeError)
})

t.test('random salts are 16 characters of the crypt alphabet', async (t) => {
  const salt = shaCryptSalt(randomBytes(16))
  t.match(salt, /^[./0-9A-Za-z]{16}$/)
  t.equal(shaCryptSalt(Buffer.from([0, 63, 64, 255])), '.z.z', 'byte mod 64 picks the character')
})

const PASSWORDS = ['pässwörd', 'with  two spaces ', '', 'ключ🔑', 'x'.repeat(100)]

t.test('mkpasswd (libxcrypt): same output for every password, salt length and rounds', async (t) => {
  const version = await run('mkpasswd', ['--version'])
  t.equal(version.code, 0, 'mkpasswd is installed (Debian package whois)')
  const cases: [string, ShaCryptId][] = [
    ['sha-512', '6'],
    ['sha-256', '5'],
  ]
  for (const [method, id] of cases) {
    for (const [i, password] of PASSWORDS.entries()) {
      // mkpasswd takes 8 to 16 salt characters; the spec allows fewer (openssl below).
      const salt = shaCryptSalt(randomBytes(16)).slice(0, 8 + 2 * i)
      const rounds = [undefined, 1000, 4321][i % 3]
      const args = ['--stdin', '-m', method, '-S', salt, ...(rounds === undefined ? [] : ['-R', String(rounds)])]
      const r = await run('mkpasswd', args, { input: `${password}\n` })
      t.equal(r.code, 0, r.stderr)
      const expected = r.stdout.trim()
      t.equal(await shaCrypt(id, utf8(password), rounds === undefined ? { salt } : { salt, rounds }), expected, `${method} #${i}`)
      const prefix = id === '6' ? '{SHA512-CRYPT}' : '{SHA256-CRYPT}'
      t.equal(await verifyPassword(prefix + expected, password), 'ok')
      t.equal(await verifyPassword(prefix + expected, `${password} `), 'mismatch')
    }
  }
})

t.test('openssl passwd -5/-6: short salts and UTF-8 passwords', async (t) => {
  // openssl prints "<NULL>" for an empty password (3.0): the empty one is covered above.
  for (const [i, password] of PASSWORDS.filter((p) => p !== '').entries()) {
    for (const id of ['5', '6'] as const) {
      const salt = shaCryptSalt(randomBytes(16)).slice(0, 1 + 3 * i)
      const r = await run('openssl', ['passwd', `-${id}`, '-salt', salt, '-stdin'], { input: `${password}\n` })
      t.equal(r.code, 0, r.stderr)
      const expected = r.stdout.trim()
      t.equal(await shaCrypt(id, utf8(password), { salt }), expected, `openssl -${id} salt of ${salt.length}`)
      t.equal(await verifyPassword(`{CRYPT}${expected}`, password), 'ok')
      t.equal(await verifyPassword(`{CRYPT}${expected}`, password.slice(1)), 'mismatch')
    }
  }
})

t.test('a long rounds= hands the event loop back while it runs', async (t) => {
  let turned = false
  const pending = shaCrypt('5', utf8('x'), { salt: 'salt', rounds: 45_000 })
  setImmediate(() => (turned = true))
  await pending
  t.ok(turned, 'an immediate queued after the start ran before the result')
})
