// nginx auth_http answers: headers in, headers out (protocols.md §8, docs/login.md), and the
// refusal of headers nginx could not have sent (CVE-2026-28753 class).

import fc from 'fast-check'
import t from 'tap'
import { validateConfig } from '../../src/config/load.js'
import { nginxAuth, percentDecode } from '../../src/http/nginx-auth.js'
import { checkNginxHeaders, NGINX_REFUSAL, rawHeaderList, type NginxHeaderProblem } from '../../src/http/nginx-headers.js'
import { demoDirectory, demoRegistry } from '../fakes/memory-directory.js'
import { routerFor } from './router.test.js'

/** What nginx sends for an IMAP LOGIN, before the test's own headers. */
const BASE = { 'auth-method': 'plain', 'auth-protocol': 'imap', 'auth-login-attempt': '1', 'client-ip': '192.0.2.1' }

function setup(dir = demoDirectory()) {
  const { router, lookups } = routerFor(dir)
  const config = validateConfig({ login: { secret: 's', nginx: { maxAttempts: 3, wait: '2s' } } }).login
  const registry = demoRegistry()
  const invalid: { problem: NginxHeaderProblem; ip: string | undefined }[] = []
  // Every password check, to show a refused request never reaches the directory.
  const checked: string[] = []
  const verify = dir.verifyPassword.bind(dir)
  dir.verifyPassword = (account, password) => (checked.push(account.id), verify(account, password))
  const deps = { router, resolver: lookups, registry: () => registry, config, onInvalid: (problem: NginxHeaderProblem, ip: string | undefined) => void invalid.push({ problem, ip }) }
  const ask = (h: Record<string, string>) => nginxAuth({ ...BASE, ...h }, deps)
  /** With a raw header list, the way the route passes Node's rawHeaders (and joins a copy's values with ", "). */
  const askRaw = (raw: string[]) => {
    const h: Record<string, string> = {}
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase()
      h[name] = name in h ? `${h[name]}, ${raw[i + 1]}` : raw[i + 1]!
    }
    return nginxAuth(h, deps, raw)
  }
  /** Directory queries and password checks so far. */
  const reached = () => dir.queries.length + checked.length
  return { ask, askRaw, dir, invalid, reached }
}

t.test('percent-decoding as nginx escapes', async (t) => {
  t.equal(percentDecode('p@ss%20word%25'), 'p@ss word%')
  t.equal(percentDecode('a+b'), 'a+b', 'plus is literal')
  t.equal(percentDecode(Buffer.from('üser', 'utf8').toString('latin1')), 'üser', 'raw UTF-8 bytes')
  t.equal(percentDecode('%zz%4'), '%zz%4', 'incomplete escapes kept')
  t.equal(percentDecode('%FF'), undefined, 'not UTF-8')
})

t.test('IMAP and POP3 logins', async (t) => {
  const { ask } = setup()
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'wonderland' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.11', 'Auth-Port': '143' })
  t.same((await ask({ 'auth-user': 'bob@example.org', 'auth-pass': 'builder', 'auth-protocol': 'pop3' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.12', 'Auth-Port': '110' })
  t.same((await ask({ 'auth-user': 'Alice.Liddell@example.org', 'auth-pass': 'wonderland' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.11', 'Auth-Port': '143', 'Auth-User': 'alice@example.org' }, 'the backend login uses the canonical name')
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'nope' })).headers, { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '2' })
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'nope', 'auth-login-attempt': '3' })).headers, { 'Auth-Status': 'Invalid login or password' }, 'last attempt: no Auth-Wait, nginx closes')
  t.same((await ask({ 'auth-user': 'carol@example.org', 'auth-pass': 'carol-disabled' })).headers, { 'Auth-Status': 'Account disabled', 'Auth-Wait': '2' })
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'x', 'auth-method': 'cram-md5' })).headers, { 'Auth-Status': 'Authentication method not supported', 'Auth-Wait': '2' })
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'x', 'auth-protocol': 'gopher' })).headers, { 'Auth-Status': 'unsupported protocol gopher' })
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'x', 'auth-protocol': 'g'.repeat(5000) })).headers, { 'Auth-Status': `unsupported protocol ${'g'.repeat(32)}` }, 'a long protocol name is cut before it goes back to the mail client')
})

t.test('SMTP: AUTH logins, and routing by the first RCPT with smtp_auth none', async (t) => {
  const { ask, dir } = setup()
  t.same((await ask({ 'auth-protocol': 'smtp', 'auth-user': 'bob@example.org', 'auth-pass': 'builder' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.12', 'Auth-Port': '25' })
  t.same((await ask({ 'auth-protocol': 'smtp', 'auth-user': 'bob@example.org', 'auth-pass': 'x' })).headers, { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '2', 'Auth-Error-Code': '535 5.7.8' })
  const none = { 'auth-protocol': 'smtp', 'auth-method': 'none', 'auth-user': '', 'auth-pass': '' }
  t.same((await ask({ ...none, 'auth-smtp-to': 'RCPT TO:<Alice+x@Example.ORG> SIZE=100' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.11', 'Auth-Port': '25' })
  t.same((await ask({ ...none, 'auth-smtp-to': 'RCPT TO:<nobody@example.org>' })).headers, { 'Auth-Status': 'mailbox unknown', 'Auth-Error-Code': '550 5.1.1' })
  dir.down()
  t.same((await ask({ ...none, 'auth-smtp-to': 'RCPT TO:<carol@example.org>' })).headers, { 'Auth-Status': 'Temporary lookup failure, try again later', 'Auth-Wait': '2', 'Auth-Error-Code': '451 4.3.0' })
  t.same((await ask({ 'auth-protocol': 'smtp', 'auth-user': 'carol@example.org', 'auth-pass': 'x' })).headers, { 'Auth-Status': 'Temporary authentication failure, try again later', 'Auth-Wait': '2', 'Auth-Error-Code': '451 4.3.0' })
})

t.test('brakes ride on Auth-Wait, and refuse without it', async (t) => {
  const { ask } = setup()
  const bad = { 'auth-user': 'alice@example.org', 'auth-pass': 'bad', 'client-ip': '192.0.2.66' }
  await ask(bad)
  await ask(bad)
  t.same((await ask(bad)).headers, { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '2' }, 'tarpit 1s is below the usual wait')
  t.same((await ask({ ...bad, 'auth-pass': 'wonderland' })).headers, { 'Auth-Status': 'Too many failed logins, try again later' })
  const last = await ask({ 'auth-user': 'bob@example.org', 'auth-pass': 'bad', 'client-ip': '192.0.2.66', 'auth-login-attempt': '3' })
  t.equal(last.delayMs, 0, 'bob has no failures yet: no tarpit')
})

t.test('header check: what nginx can send passes, anything else is named', async (t) => {
  const raw = (...pairs: [string, string][]) => pairs.flat()
  const login = raw(['Host', 'localhost'], ['Auth-Method', 'plain'], ['Auth-User', 'alice@example.org'], ['Auth-Pass', 'p@ss%20word%25+'], ['Auth-Protocol', 'imap'], ['Auth-Login-Attempt', '1'], ['Client-IP', '192.0.2.1'], ['X-Auth-Key', 'k'])
  t.equal(checkNginxHeaders(login), undefined, 'an IMAP login as nginx writes it')
  const utf8 = Buffer.from('üser@exämple.org', 'utf8').toString('latin1')
  t.equal(checkNginxHeaders(raw(['Auth-User', utf8], ['Auth-Pass', utf8])), undefined, 'raw UTF-8 in the escaped headers')
  for (const host of ['[UNAVAILABLE]', '[TEMPUNAVAIL]', 'mail-1.Example.NET', 'client.example.', 'a'.repeat(63)]) {
    t.equal(checkNginxHeaders(raw(['Client-Host', host])), undefined, `Client-Host ${host.slice(0, 20)}`)
  }
  const smtp = raw(['Auth-Method', 'none'], ['Auth-User', ''], ['Auth-Pass', ''], ['Auth-Protocol', 'smtp'], ['Client-Host', '[UNAVAILABLE]'], ['Auth-SMTP-Helo', 'client.test'], ['Auth-SMTP-From', 'MAIL FROM:<a@b.test> SIZE=100'], ['Auth-SMTP-To', `RCPT TO:<${utf8}>`])
  t.equal(checkNginxHeaders(smtp), undefined, 'smtp_auth none: command lines with spaces and UTF-8')
  t.equal(checkNginxHeaders(raw(['Auth-SSL-Subject', 'CN=Jane Doe,O=Example'], ['X-Other', 'a\r\nb'])), undefined, 'free text, and headers outside Auth-*/Client-* are not ours to judge')

  const cases: [string[], NginxHeaderProblem][] = [
    [raw(['Client-Host', 'evil\r\nAuth-Pass: x']), { header: 'Client-Host', reason: 'control byte', byte: '0x0d' }],
    [raw(['Client-Host', 'a\nb']), { header: 'Client-Host', reason: 'control byte', byte: '0x0a' }],
    [raw(['Client-Host', 'a\u0000b']), { header: 'Client-Host', reason: 'control byte', byte: '0x00' }],
    [raw(['Client-Host', 'a\tb']), { header: 'Client-Host', reason: 'control byte', byte: '0x09' }],
    [raw(['Client-Host', 'a\u007fb']), { header: 'Client-Host', reason: 'control byte', byte: '0x7f' }],
    [raw(['Client-Host', 'a b']), { header: 'Client-Host', reason: 'space', byte: '0x20' }],
    [raw(['Client-Host', Buffer.from('büro.example', 'utf8').toString('latin1')]), { header: 'Client-Host', reason: 'non-ASCII byte', byte: '0xc3' }],
    [raw(['Client-Host', 'evil_host.example']), { header: 'Client-Host', reason: 'malformed' }],
    [raw(['Client-Host', 'a..b']), { header: 'Client-Host', reason: 'malformed' }],
    [raw(['Client-Host', '']), { header: 'Client-Host', reason: 'malformed' }],
    [raw(['Client-Host', 'a'.repeat(254)]), { header: 'Client-Host', reason: 'malformed' }],
    [raw(['Client-Host', '[UNAVAILABLE]x']), { header: 'Client-Host', reason: 'malformed' }],
    [raw(['Auth-Login-Attempt', '1x']), { header: 'Auth-Login-Attempt', reason: 'malformed' }],
    [raw(['Auth-User', 'alice@example.org'], ['Client-Host', 'x'], ['auth-user', 'mallory@example.org']), { header: 'Auth-User', reason: 'duplicate' }],
    [raw(['Client-Host', 'a.example'], ['CLIENT-HOST', 'a.example']), { header: 'Client-Host', reason: 'duplicate' }],
    [raw(['Auth-Pass', 'two words']), { header: 'Auth-Pass', reason: 'space', byte: '0x20' }],
    [raw(['Auth-Protocol', 'im\u0001ap']), { header: 'Auth-Protocol', reason: 'control byte', byte: '0x01' }],
    [raw(['Auth-Protocol', 'imäp']), { header: 'Auth-Protocol', reason: 'non-ASCII byte', byte: '0xe4' }],
    [raw(['Auth-SMTP-To', 'RCPT TO:<a@b>\u0008']), { header: 'Auth-SMTP-To', reason: 'control byte', byte: '0x08' }],
    [raw(['Auth-SMTP-To', 'RCPT TO:<a@b>'], ['Auth-SMTP-To', 'RCPT TO:<c@d>']), { header: 'Auth-SMTP-To', reason: 'duplicate' }],
    [raw(['Auth-Evil', 'x\u001by']), { header: 'other Auth-*', reason: 'control byte', byte: '0x1b' }],
    [raw(['Client-Port', '1'], ['client-port', '2']), { header: 'other Client-*', reason: 'duplicate' }],
    [raw(['Proxy-Protocol-Addr', '192.0.2.1 x']), { header: 'Proxy-Protocol-Addr', reason: 'space', byte: '0x20' }],
    [raw(['Proxy-Protocol-TLV', '\u0002']), { header: 'other Proxy-Protocol-*', reason: 'control byte', byte: '0x02' }],
    [raw(['Auth-Method', 'plain'], ['Auth-User', 'a\u0100']), { header: 'Auth-User', reason: 'non-ASCII byte', byte: '0x100' }],
  ]
  for (const [headers, problem] of cases) t.same(checkNginxHeaders(headers), problem, JSON.stringify(headers).slice(0, 80))
  t.same(rawHeaderList({ a: '1', b: ['2', '3'], c: undefined }), ['a', '1', 'b', '2', 'b', '3'], 'an array value is one entry per copy')
})

t.test('a refused request: one fixed answer, told to onInvalid, never at the directory', async (t) => {
  const { ask, askRaw, invalid, reached } = setup()
  const refusal = { 'Auth-Status': 'Session refused: invalid client data', 'Auth-Error-Code': '451 4.7.0' }
  t.same(NGINX_REFUSAL, refusal)
  const hostile = 'evil\r\nAuth-Pass: x'
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'wonderland', 'client-host': hostile })).headers, refusal, 'CR LF in Client-Host: no Auth-Wait, nginx closes')
  t.same(invalid.at(-1), { problem: { header: 'Client-Host', reason: 'control byte', byte: '0x0d' }, ip: '192.0.2.1' })
  // What an injected CR LF becomes once Node has parsed it: a second Auth-Pass line.
  const injected = ['Auth-Method', 'plain', 'Auth-User', 'alice@example.org', 'Auth-Pass', 'wonderland', 'Auth-Protocol', 'imap', 'Auth-Login-Attempt', '1', 'Client-IP', '192.0.2.7', 'Client-Host', 'evil', 'Auth-Pass', 'x']
  t.same((await askRaw(injected)).headers, refusal, 'a header sent twice')
  t.same(invalid.at(-1), { problem: { header: 'Auth-Pass', reason: 'duplicate' }, ip: '192.0.2.7' })
  const dupIp = ['Auth-Method', 'plain', 'Auth-User', 'alice@example.org', 'Auth-Pass', 'wonderland', 'Auth-Protocol', 'imap', 'Client-IP', '192.0.2.7', 'Client-IP', '192.0.2.8']
  t.same((await askRaw(dupIp)).headers, refusal)
  t.same(invalid.at(-1)?.ip, undefined, 'a duplicated Client-IP (Node joins the copies) is not logged as the client')
  t.same((await ask({ 'auth-protocol': 'smtp', 'auth-method': 'none', 'auth-user': '', 'auth-pass': '', 'client-host': 'x\u0001', 'auth-smtp-to': 'RCPT TO:<alice@example.org>' })).headers, refusal, 'SMTP at RCPT: 451 4.7.0, not routed')
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'wonderland', 'auth-protocol': 'g\u0000'.repeat(40) })).headers, refusal, 'a bad Auth-Protocol is refused, not echoed even in part')
  t.equal(reached(), 0, 'no directory query and no password check for any of them')
  t.equal(invalid.length, 5)

  // Still answered as before: what nginx itself escapes, and what a fixed nginx sends.
  t.same((await ask({ 'auth-user': 'alice%0D%0A@example.org', 'auth-pass': 'x' })).headers, { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '2' }, 'an escaped CR LF in the login name is a name that is not an address')
  t.equal(reached(), 0, 'which the address rules answer without the directory')
  t.same((await ask({ 'auth-user': 'alice@example.org', 'auth-pass': 'wonderland', 'client-host': '[TEMPUNAVAIL]' })).headers, { 'Auth-Status': 'OK', 'Auth-Server': '10.0.0.11', 'Auth-Port': '143' }, 'a fixed nginx\'s placeholder for a name it refused')
  t.equal(invalid.length, 5, 'neither is a refused request')

  const { router, lookups } = routerFor(demoDirectory())
  const quiet = { router, resolver: lookups, registry: demoRegistry, config: validateConfig({ login: { secret: 's' } }).login }
  t.same((await nginxAuth({ ...BASE, 'client-host': 'a\u0001' }, quiet)).headers, refusal, 'refused also with nobody to tell')
})

/** Header names nginx sends, and a few it does not. */
const NAMES = ['Auth-Method', 'Auth-User', 'Auth-Pass', 'Auth-Protocol', 'Auth-Login-Attempt', 'Client-IP', 'Client-Host', 'Auth-SMTP-To', 'Auth-SMTP-Helo', 'Auth-Salt', 'Auth-SSL-Subject', 'Auth-Evil', 'Client-Port', 'Proxy-Protocol-Addr']
/** Bytes in answers: printable ASCII and space. */
const PRINTABLE = /^[\u0020-\u007e]*$/
const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 40 })

t.test('property: answers hold only printable ASCII, and a bad header\'s value never comes back', async (t) => {
  const { askRaw, invalid } = setup()
  const good = fc.record({ user: fc.constantFrom('alice@example.org', 'bob@example.org', 'Alice.Liddell@example.org', 'nobody@example.org', ''), pass: fc.constantFrom('wonderland', 'builder', 'x'), protocol: fc.constantFrom('imap', 'pop3', 'smtp', 'gopher') })
  const request = (g: { user: string; pass: string; protocol: string }) => ['Auth-Method', 'plain', 'Auth-User', g.user, 'Auth-Pass', g.pass, 'Auth-Protocol', g.protocol, 'Auth-Login-Attempt', '1', 'Client-IP', '192.0.2.1']
  const answerValues = (a: { headers: Record<string, string> }) => Object.values(a.headers)

  // Any bytes in any of the headers: whatever is answered is printable.
  await fc.assert(
    fc.asyncProperty(good, fc.array(fc.tuple(fc.constantFrom(...NAMES), latin1), { maxLength: 4 }), async (g, extra) => {
      const a = await askRaw([...request(g), ...extra.flat()])
      return answerValues(a).every((v) => PRINTABLE.test(v))
    }),
    { numRuns: 300 },
  )

  // A header with a byte nginx never writes there, at any position: the refusal, without it.
  const bad = fc.tuple(latin1, fc.oneof(fc.integer({ min: 0, max: 0x1f }), fc.constant(0x7f)), latin1).map(([a, c, b]) => `${a}${String.fromCharCode(c)}${b}`)
  await fc.assert(
    fc.asyncProperty(good, fc.constantFrom(...NAMES), bad, fc.nat(6), async (g, name, value, at) => {
      const raw = request(g)
      raw.splice(Math.min(at, 6) * 2, 0, name, value)
      // The same name twice would be refused as a duplicate first: also a refusal.
      const a = await askRaw(raw)
      return JSON.stringify(a.headers) === JSON.stringify(NGINX_REFUSAL) && answerValues(a).every((v) => PRINTABLE.test(v) && !v.includes(value))
    }),
    { numRuns: 500 },
  )

  // A second copy of a header, whatever its value: the refusal, which never holds that value.
  const copy = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 8, maxLength: 40 })
  await fc.assert(
    fc.asyncProperty(good, fc.constantFrom('Auth-Method', 'Auth-User', 'Auth-Pass', 'Auth-Protocol', 'Auth-Login-Attempt', 'Client-IP'), copy, async (g, name, value) => {
      fc.pre(!Object.values(NGINX_REFUSAL).some((v) => v.includes(value)))
      const a = await askRaw([...request(g), 'Client-Host', 'evil', name, value])
      return JSON.stringify(a.headers) === JSON.stringify(NGINX_REFUSAL) && answerValues(a).every((v) => !v.includes(value))
    }),
    { numRuns: 300 },
  )
  t.ok(invalid.length >= 800, 'every refusal was reported')
})
