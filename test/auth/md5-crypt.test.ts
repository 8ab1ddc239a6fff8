// MD5-crypt ($1$) against the C implementations on this machine: `openssl passwd -1`, mkpasswd
// (libxcrypt, package whois) and Perl's crypt() (the C library's crypt(3)). Every output must be
// the tools' output byte for byte, not merely verify; then properties for round trips and for how
// a setting's salt is read.

import t from 'tap'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { md5Crypt, verifyMd5Crypt } from '../../src/auth/md5-crypt.js'
import { shaCryptSalt } from '../../src/auth/sha-crypt.js'
import { UnsupportedSchemeError, verifyPassword } from '../../src/auth/passwords.js'
import { run } from '../harness/process.js'

const utf8 = (s: string) => Buffer.from(s, 'utf8')

// Fixed vectors, each checked against openssl passwd -1 on Debian 12 when written (and again below).
const FIXED: readonly [string, string, string][] = [
  ['pass', 'ab', '$1$ab$U8jv6p.D2WDJLEY1puNWT1'],
  ['pässwörd', 'saltsalt', '$1$saltsalt$VReRfkQ8Hs1aayf/oxMkG/'],
  ['', '', '$1$$qRPK7m23GJusamGpoGLby/'],
  ['x'.repeat(100), 'abcdefgh', '$1$abcdefgh$ax3Kvr/hbxTbyc0QiTLcg/'],
]

t.test('fixed vectors: exact output, then verified through {MD5-CRYPT}, {CRYPT}, {MD5} and bare', async (t) => {
  for (const [password, salt, expected] of FIXED) {
    t.equal(md5Crypt(utf8(password), salt), expected, `salt ${JSON.stringify(salt)}`)
    for (const stored of [`{MD5-CRYPT}${expected}`, `{CRYPT}${expected}`, `{MD5}${expected}`, `{SHA512-CRYPT}${expected}`, expected]) {
      t.equal(await verifyPassword(stored, password), 'ok', stored.slice(0, 14))
      t.equal(await verifyPassword(stored, `${password}.`), 'mismatch')
    }
  }
})

const PASSWORDS = ['pässwörd', 'with  two spaces ', 'ключ🔑', 'x'.repeat(100), 'a']

t.test('openssl passwd -1: every salt length from 0 to 8, UTF-8 passwords', async (t) => {
  for (let len = 0; len <= 8; len++) {
    const password = PASSWORDS[len % PASSWORDS.length]!
    const salt = shaCryptSalt(randomBytes(16)).slice(0, len)
    const r = await run('openssl', ['passwd', '-1', '-salt', salt, '-stdin'], { input: `${password}\n` })
    t.equal(r.code, 0, r.stderr)
    t.equal(md5Crypt(utf8(password), salt), r.stdout.trim(), `salt of ${len}`)
  }
})

t.test('mkpasswd (libxcrypt) and Perl crypt(): the C library agrees', async (t) => {
  const version = await run('mkpasswd', ['--version'])
  t.equal(version.code, 0, 'mkpasswd is installed (Debian package whois)')
  for (const password of PASSWORDS) {
    const salt = shaCryptSalt(randomBytes(16)).slice(0, 8)
    const mk = await run('mkpasswd', ['--stdin', '-m', 'md5crypt', '-S', salt], { input: `${password}\n` })
    t.equal(mk.code, 0, mk.stderr)
    t.equal(md5Crypt(utf8(password), salt), mk.stdout.trim(), `mkpasswd ${JSON.stringify(password.slice(0, 10))}`)
    // Perl's crypt() reads the whole setting as crypt(3) does, a longer salt and a hash included.
    const setting = `$1$${salt}xyz$ignored`
    const pl = await run('perl', ['-e', 'binmode STDIN; local $/; my $p = <STDIN>; print crypt($p, $ARGV[0])', setting], { input: password })
    t.equal(pl.code, 0, pl.stderr)
    t.equal(md5Crypt(utf8(password), setting), pl.stdout, 'a whole setting: salt cut at 8')
    t.equal(await verifyPassword(pl.stdout, password), 'ok')
  }
})

t.test('salt handling: bare or as a setting, cut at 8 or at $; outside the alphabet is an error', async (t) => {
  const key = utf8('pw')
  const full = md5Crypt(key, 'abcdefgh')
  t.equal(md5Crypt(key, '$1$abcdefgh'), full)
  t.equal(md5Crypt(key, '$1$abcdefghijk$whatever'), full)
  t.equal(md5Crypt(key, 'abcdefghijk'), full)
  t.match(md5Crypt(key, 'abc$defgh'), /^\$1\$abc\$/)
  t.throws(() => md5Crypt(key, 'sält'), RangeError)
  t.throws(() => md5Crypt(key, 'a b'), RangeError)
})

t.test('stored values no implementation outputs are refused, never compared', async (t) => {
  const hash = 'U8jv6p.D2WDJLEY1puNWT1'
  for (const [what, stored] of [
    ['salt over 8', `$1$abcdefghi$${hash}`],
    ['salt outside the alphabet', `$1$a*$${hash}`],
    ['hash too short', `$1$ab$${hash.slice(1)}`],
    ['hash too long', `$1$ab$${hash}a`],
    ['hash outside the alphabet', `$1$ab$${hash.slice(1)}+`],
    ['no hash', '$1$ab'],
    ['a second $', `$1$ab$${hash}$`],
    ['not $1$', `$5$ab$${hash}`],
  ] as const) {
    t.throws(() => verifyMd5Crypt('MD5-CRYPT', stored, utf8('pass')), UnsupportedSchemeError, what)
    await t.rejects(verifyPassword(`{MD5-CRYPT}${stored}`, 'pass'), { name: 'UnsupportedSchemeError', code: 'MH_PASSWORD_SCHEME' }, what)
  }
})

// Properties. Passwords: whole graphemes without NUL; salts: 0 to 12 alphabet characters (the
// output keeps 8). Each round trip verifies, any other password does not, and the output's salt
// is the setting's first 8 characters.
const password = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((p) => !p.includes('\0'))
const salt = fc.string({ unit: fc.constantFrom(...'./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'), maxLength: 12 })

t.test('property: round trip through every prefix that reads $1$', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.tuple(password, password).filter(([a, b]) => a !== b), salt, async ([p, other], s) => {
      const stored = md5Crypt(utf8(p), s)
      if (!stored.startsWith(`$1$${s.slice(0, 8)}$`) || stored.length !== 3 + Math.min(8, s.length) + 1 + 22) return false
      for (const prefix of ['', '{MD5-CRYPT}', '{CRYPT}', '{MD5}']) {
        if ((await verifyPassword(prefix + stored, p)) !== 'ok') return false
        if ((await verifyPassword(prefix + stored, other)) !== 'mismatch') return false
      }
      return true
    }),
    { numRuns: 100 },
  )
  t.pass('100 runs')
})

t.test('property: openssl passwd -1 agrees on random passwords and salts', async (t) => {
  // openssl prints "<NULL>" for an empty password (3.0): the fixed vectors cover it.
  const nonEmpty = password.filter((p) => p !== '' && !p.includes('\n') && !p.includes('\r'))
  await fc.assert(
    fc.asyncProperty(nonEmpty, salt, async (p, s) => {
      const r = await run('openssl', ['passwd', '-1', '-salt', s.slice(0, 8), '-stdin'], { input: `${p}\n` })
      return r.code === 0 && md5Crypt(utf8(p), s) === r.stdout.trim()
    }),
    { numRuns: 25 },
  )
  t.pass('25 runs')
})
