// Cross-checks with the real Dovecot (2.3.19 on Debian 12): every hash `doveadm pw` makes
// verifies here, and every hash hashPassword() makes verifies in `doveadm pw -t`; wrong
// passwords fail on both sides. `doveadm pw` needs no running Dovecot, only a config file to
// read: it gets an empty one, so the system's /etc/dovecot plays no part.

import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashPassword, UnsupportedSchemeError, verifyPassword, type Scheme } from '../../src/auth/passwords.js'
import { shaCrypt } from '../../src/auth/sha-crypt.js'
import { run } from '../harness/process.js'

const dir = await mkdtemp(join(tmpdir(), 'mailhostd-doveadm-'))
const conf = join(dir, 'dovecot.conf')
await writeFile(conf, '# empty: doveadm pw reads no setting\n')
t.teardown(() => rm(dir, { recursive: true, force: true }))

/** A hash made by doveadm; its output ends in one newline, and a password may end in spaces. */
async function doveadmHash(scheme: string, password: string, rounds?: number): Promise<string> {
  const r = await run('doveadm', ['-c', conf, 'pw', '-s', scheme, '-p', password, ...(rounds === undefined ? [] : ['-r', String(rounds)])])
  if (r.code !== 0) throw new Error(`doveadm pw -s ${scheme} exited ${r.code}: ${r.stderr.trim()}`)
  return r.stdout.replace(/\n$/, '')
}

/** Whether `doveadm pw -t` accepts the password for the hash (exit 0) or not (75 and a reason). */
async function doveadmAccepts(stored: string, password: string): Promise<boolean> {
  const r = await run('doveadm', ['-c', conf, 'pw', '-t', stored, '-p', password])
  if (r.code !== 0 && r.code !== 75) throw new Error(`doveadm pw -t exited ${r.code}: ${r.stderr.trim()}`)
  return r.code === 0
}

// Non-ASCII UTF-8, inner and trailing spaces, empty, and exactly bcrypt's 72 bytes.
const PASSWORDS = ['pässwörd ключ 🔑', ' two  spaces ', '', '€'.repeat(24)]
const SCHEMES: readonly Scheme[] = ['ARGON2ID', 'SHA512-CRYPT', 'SHA256-CRYPT', 'BLF-CRYPT', 'SSHA512', 'SSHA256', 'SSHA', 'PLAIN']

t.test('this is Dovecot 2.3', async (t) => {
  const r = await run('dovecot', ['--version'])
  t.equal(r.code, 0, 'dovecot is installed (Debian package dovecot-core)')
  t.match(r.stdout, /^2\.3\./)
})

t.test('hashes made by doveadm verify here', async (t) => {
  // CRYPT: whatever crypt(3) method Dovecot picks (bcrypt on Debian 12). The suffixed names are
  // Dovecot's other encodings of the same schemes; PostfixAdmin stores the crypt ones .B64 too.
  // The MD5 family we verify but never make: what existing databases hold (MD5 is MD5-crypt).
  const names = [
    ...SCHEMES,
    ...['CRYPT', 'CLEARTEXT', 'SSHA512.HEX', 'SSHA256.HEX', 'SSHA.HEX', 'SSHA.B64', 'PLAIN.B64', 'PLAIN.HEX'],
    ...['MD5-CRYPT', 'MD5', 'PLAIN-MD5', 'LDAP-MD5', 'PLAIN-MD5.B64', 'MD5-CRYPT.B64', 'SHA512-CRYPT.B64', 'SHA256-CRYPT.B64', 'BLF-CRYPT.B64'],
  ]
  for (const scheme of names) {
    for (const password of PASSWORDS) {
      const stored = await doveadmHash(scheme, password)
      const label = `${stored.slice(0, stored.indexOf('}') + 1)} of ${JSON.stringify(password.slice(0, 6))}`
      t.equal(await verifyPassword(stored, password), 'ok', label)
      // Changed at the front: bcrypt never sees past 72 bytes, and one password here has 72.
      t.equal(await verifyPassword(stored, `x${password}`), 'mismatch', `${label}, wrong password`)
      if (password !== '') t.equal(await verifyPassword(stored, password.slice(0, -1)), 'mismatch', `${label}, shorter`)
    }
  }
})

t.test('doveadm with explicit rounds: SHA-crypt rounds= and bcrypt costs', async (t) => {
  for (const [scheme, rounds] of [
    ['SHA512-CRYPT', 1000],
    ['SHA256-CRYPT', 12345],
    ['BLF-CRYPT', 4],
    ['BLF-CRYPT', 8],
  ] as const) {
    const stored = await doveadmHash(scheme, 'pässwörd', rounds)
    t.equal(await verifyPassword(stored, 'pässwörd'), 'ok', stored.slice(0, 30))
    t.equal(await verifyPassword(stored, 'passwörd'), 'mismatch')
  }
})

t.test('bcrypt reads at most 72 bytes, in Dovecot as here', async (t) => {
  const stored = await doveadmHash('BLF-CRYPT', 'x'.repeat(72))
  t.equal(await verifyPassword(stored, 'x'.repeat(73)), 'ok')
  t.equal(await doveadmAccepts(stored, 'x'.repeat(73)), true)
  t.equal(await verifyPassword(stored, 'x'.repeat(71)), 'mismatch')
})

t.test("SHA-crypt passwords of 512 bytes or more never match, as in Dovecot's libxcrypt", async (t) => {
  const longest = 'ü'.repeat(255) + 'x' // 511 bytes
  const stored = await hashPassword(longest, 'SHA512-CRYPT')
  t.equal(await doveadmAccepts(stored, longest), true, '511 bytes')
  t.equal(await verifyPassword(stored, longest), 'ok')
  await t.rejects(hashPassword(`${longest}x`, 'SHA256-CRYPT'), RangeError)
  // A hash of a 512-byte password, as glibc or the spec would make it.
  const tooLong = `{SHA256-CRYPT}${await shaCrypt('5', Buffer.from(`${longest}x`), { salt: 'saltsalt' })}`
  t.equal(await verifyPassword(tooLong, `${longest}x`), 'mismatch')
  t.equal(await doveadmAccepts(tooLong, `${longest}x`), false)
  // Dovecot's bcrypt is its own crypt_blowfish: no such limit, only the 72-byte cut.
  const bcrypt = (await doveadmHash('BLF-CRYPT', longest)).slice('{BLF-CRYPT}'.length)
  for (const prefix of ['{BLF-CRYPT}', '{CRYPT}']) {
    t.equal(await verifyPassword(prefix + bcrypt, `${longest}x`), 'ok', `${prefix}, 512 bytes`)
    t.equal(await doveadmAccepts(prefix + bcrypt, `${longest}x`), true)
  }
})

t.test('hashes made by hashPassword() verify in doveadm, wrong passwords do not', async (t) => {
  for (const scheme of SCHEMES) {
    for (const password of PASSWORDS) {
      const stored = await hashPassword(password, scheme)
      t.ok(stored.startsWith(`{${scheme}}`), `prefix {${scheme}}`)
      const label = `${scheme} of ${JSON.stringify(password.slice(0, 6))}`
      t.equal(await doveadmAccepts(stored, password), true, `doveadm accepts ${label}`)
      t.equal(await doveadmAccepts(stored, `x${password}`), false, `doveadm rejects a wrong password for ${label}`)
      t.equal(await verifyPassword(stored, password), 'ok', `and so do we, ${label}`)
    }
  }
})

t.test('the default scheme is one Dovecot verifies', async (t) => {
  const stored = await hashPassword('correct horse')
  t.match(stored, /^\{ARGON2ID\}\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  t.equal(await doveadmAccepts(stored, 'correct horse'), true)
  t.equal(await doveadmAccepts(stored, 'correct horse '), false)
})

t.test('DES crypt: Dovecot checks it through crypt(3); we refuse it, never answering mismatch', async (t) => {
  // perl's crypt() is the C library's; 'ab' is a traditional DES setting.
  const des = (await run('perl', ['-e', 'print crypt($ARGV[0], q(ab))', 'pässwörd'])).stdout
  t.match(des, /^ab[./0-9A-Za-z]{11}$/)
  t.equal(await doveadmAccepts(`{CRYPT}${des}`, 'pässwörd'), true, 'Dovecot accepts it')
  for (const stored of [`{CRYPT}${des}`, des]) {
    await t.rejects(verifyPassword(stored, 'pässwörd'), { name: 'UnsupportedSchemeError', scheme: 'CRYPT', message: /DES crypt is not supported/ })
  }
})

t.test('values we refuse, Dovecot does not accept either', async (t) => {
  const good = await doveadmHash('SSHA', 'pw')
  const sha512 = await doveadmHash('SHA512-CRYPT', 'pw')
  const refused = [
    '{SSHA}' + good.slice(6, -4) + '!!!!', // not base64
    '{SSHA}' + Buffer.alloc(20, 7).toString('base64'), // digest without salt
    '{SSHA}' + Buffer.concat([createHash('sha1').update('pwab').digest(), Buffer.from('ab')]).toString('base64').replace(/=+$/, ''), // padding missing
    sha512.replace('$6$', '$6$rounds=10$'),
    sha512.replace('$6$', '$6$rounds=01000$'),
    '{MD4}' + good.slice(6),
    '{SSHA.FOO}' + good.slice(6),
    '{BLF-CRYPT}' + sha512.slice(14),
    '{MD5-CRYPT}' + sha512.slice(14),
    '{PLAIN-MD5}' + createHash('md5').update('pw').digest('hex').slice(2), // 15 bytes
    good.slice(6),
  ]
  for (const stored of refused) {
    await t.rejects(verifyPassword(stored, 'pw'), UnsupportedSchemeError, stored.slice(0, 24))
    t.equal(await doveadmAccepts(stored, 'pw'), false, `doveadm: ${stored.slice(0, 24)}`)
  }
})
