// The nginx auth endpoint over a real socket, the bytes an nginx without the "Mail: host
// validation" fix writes when a client's reverse DNS name holds CR LF or control bytes: what
// Node's HTTP parser refuses with a 400 before any route runs (answered by client-error.ts), what
// it lets through to the route (a header sent twice, TAB-free non-ASCII bytes), and that both get
// the same refusal nginx can show, a warn line without any header value, and a count.

import { connect } from 'node:net'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { Brakes } from '../../src/auth/brakes.js'
import { validateConfig } from '../../src/config/load.js'
import { clientErrorHandler } from '../../src/http/client-error.js'
import { loginRoutes } from '../../src/http/login-routes.js'
import { createLogger } from '../../src/log.js'
import { Metrics } from '../../src/metrics.js'
import { demoDirectory, demoRegistry } from '../fakes/memory-directory.js'
import { routerFor } from './router.test.js'

const SECRET = 'route-secret'
const PASSWORD = 'wonderland'

let out = ''
const logger = createLogger('debug', new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString('latin1')), done()) }))
const lines = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
const metrics = new Metrics({ defaultMetrics: false })
const dir = demoDirectory()
const { router, lookups } = routerFor(dir)
const brakes = new Brakes({ windowMs: 60_000, ip: { tarpitAfter: 100, refuseAfter: 200 }, account: { tarpitAfter: 100, refuseAfter: 200 }, tarpitMs: 0, maxTarpitMs: 0 })
const config = validateConfig({ login: { secret: SECRET, nginx: { maxAttempts: 3, wait: '1s' } } }).login
const registry = demoRegistry()

const app = Fastify({ loggerInstance: logger, clientErrorHandler: clientErrorHandler({ logger, metrics }) })
await app.register(loginRoutes({ router, brakes, resolver: lookups, registry: () => registry, config, metrics }))
app.get('/other', () => ({ ok: true }))
await app.listen({ host: '127.0.0.1', port: 0 })
t.teardown(() => app.close())
const { port } = app.server.address() as { port: number }

/** An auth_http request laid out as nginx 1.22/1.26 writes it, with `host` copied raw as Client-Host. */
function nginxRequest(host: string | undefined, o: { user?: string; protocol?: string } = {}): Buffer {
  const lines = [
    'GET /v1/nginx/auth HTTP/1.0',
    'Host: localhost',
    'Auth-Method: plain',
    `Auth-User: ${o.user ?? 'alice@example.org'}`,
    `Auth-Pass: ${PASSWORD}`,
    `Auth-Protocol: ${o.protocol ?? 'imap'}`,
    'Auth-Login-Attempt: 1',
    'Client-IP: 127.0.0.1',
    ...(host === undefined ? [] : [`Client-Host: ${host}`]),
    `X-Auth-Key: ${SECRET}`,
    '',
    '',
  ]
  return Buffer.from(lines.join('\r\n'), 'latin1')
}

/** Sends bytes, reads until the server closes (bounded), and parses the status and headers. */
function exchange(bytes: Buffer): Promise<{ status: number; headers: Record<string, string>; raw: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' })
    const chunks: Buffer[] = []
    const timer = setTimeout(() => (s.destroy(), reject(new Error('no answer within 5 s'))), 5000)
    s.on('data', (d) => chunks.push(d))
    s.on('error', () => undefined)
    s.on('close', () => {
      clearTimeout(timer)
      const raw = Buffer.concat(chunks).toString('latin1')
      const [head = ''] = raw.split('\r\n\r\n')
      const [statusLine = '', ...fields] = head.split('\r\n')
      const headers = Object.fromEntries(fields.map((f) => [f.slice(0, f.indexOf(':')).toLowerCase(), f.slice(f.indexOf(':') + 1).trim()]))
      resolve({ status: Number(statusLine.split(' ')[1]), headers, raw })
    })
    s.end(bytes)
  })
}

const REFUSED = { 'auth-status': 'Session refused: invalid client data', 'auth-error-code': '451 4.7.0' }
const invalidCount = async () => (await metrics.registry.getSingleMetric('mailhostd_login_total')!.get()).values.find((v) => v.labels.result === 'invalid')?.value ?? 0

t.test('a clean request, with and without a Client-Host', async (t) => {
  for (const host of [undefined, '[UNAVAILABLE]', 'client.example.net']) {
    const r = await exchange(nginxRequest(host))
    t.match(r, { status: 200, headers: { 'auth-status': 'OK', 'auth-server': '10.0.0.11', 'auth-port': '143' } }, `Client-Host ${host ?? '(none)'}`)
  }
})

t.test('what Node\'s parser refuses: a 400 that still carries the refusal', async (t) => {
  // Every C0 control byte but TAB, and DEL, are refused by llhttp; so are a bare CR or LF, and a
  // CR LF followed by a line that is not a header.
  const cases: [string, string][] = [
    ['NUL', 'evil\u0000host'],
    ['SOH', 'evil\u0001host'],
    ['ESC', 'evil\u001bhost'],
    ['DEL', 'evil\u007fhost'],
    ['bare LF', 'evil\nAuth-User: mallory@example.org'],
    ['bare CR', 'evil\rAuth-User: mallory@example.org'],
    ['CR LF, then no header', 'evil\r\nthis is not a header'],
  ]
  for (const [what, host] of cases) {
    const before = await invalidCount()
    const r = await exchange(nginxRequest(host))
    t.match(r, { status: 400, headers: REFUSED }, what)
    t.notOk(r.headers['auth-wait'], `${what}: no Auth-Wait, nginx closes`)
    t.notMatch(r.raw, /evil|mallory|not a header/, `${what}: nothing of the value comes back`)
    t.equal(await invalidCount(), before + 1, `${what}: counted`)
  }
  const warn = lines().filter((l) => l.msg === 'nginx auth request refused: unparsable HTTP request')
  t.ok(warn.length >= 1, 'logged')
  t.match(warn[0], { level: 'warn', protocol: 'nginx', code: /^HPE_/ })
  t.ok(warn.length < cases.length, 'one line a minute per parser error code, not one per request')

  const other = await exchange(Buffer.from('GET /other HTTP/1.0\r\nX-Thing: a\u0001b\r\n\r\n', 'latin1'))
  t.match(other, { status: 400, headers: { 'content-type': 'application/problem+json' } }, 'another path: problem+json')
  t.notOk(other.headers['auth-status'], 'without the nginx headers')
  t.match(JSON.parse(other.raw.split('\r\n\r\n')[1]!), { status: 400, code: 'MH_HTTP_MALFORMED' })
})

t.test('what Node lets through: refused by the route, logged without the value', async (t) => {
  const cases: [string, string, Record<string, unknown>][] = [
    // The CVE's injection: the name ends its line, the rest is a header of its own.
    ['CR LF injecting a second Auth-User', 'evil\r\nAuth-User: mallory@example.org', { header: 'Auth-User', reason: 'duplicate' }],
    // Node joins the two copies: the log names no client then.
    ['CR LF injecting a second Client-IP', 'evil\r\nClient-IP: 203.0.113.9', { header: 'Client-IP', reason: 'duplicate', rip: undefined }],
    ['TAB', 'evil\thost', { header: 'Client-Host', reason: 'control byte', byte: '0x09' }],
    ['raw UTF-8', Buffer.from('évil.example', 'utf8').toString('latin1'), { header: 'Client-Host', reason: 'non-ASCII byte', byte: '0xc3' }],
    ['not a host name', 'evil;host', { header: 'Client-Host', reason: 'malformed' }],
  ]
  for (const [what, host, logged] of cases) {
    const before = await invalidCount()
    out = ''
    const r = await exchange(nginxRequest(host))
    t.match(r, { status: 200, headers: REFUSED }, what)
    t.notOk(r.headers['auth-wait'], `${what}: no Auth-Wait`)
    t.notMatch(r.raw, /evil|mallory|203\.0\.113/, `${what}: nothing of the value comes back`)
    t.equal(await invalidCount(), before + 1, `${what}: counted`)
    const line = lines().find((l) => l.msg === 'nginx auth request refused: invalid header')
    t.match(line, { level: 'warn', protocol: 'nginx', rip: '127.0.0.1', reqId: String, ...logged }, `${what}: logged`)
    if ('rip' in logged) t.notOk(line && 'rip' in line, `${what}: no client address`)
    t.notMatch(out, /evil|mallory|203\.0\.113|wonderland/, `${what}: neither the value nor the password in the log`)
  }
  t.equal(dir.queries.filter((q) => q.includes('mallory')).length, 0, 'the injected login never reached the directory')
})

t.test('a blank line injected: the request ends before the secret; never routed', async (t) => {
  const r = await exchange(nginxRequest('evil\r\n\r\nAuth-User: mallory@example.org'))
  t.not(r.headers['auth-status'], 'OK')
  t.ok(r.headers['auth-status'], `nginx gets a failure it can show (${r.status} ${r.headers['auth-status']})`)
  t.notMatch(r.raw, /evil|mallory/)
})

t.test('an Auth-Pass with a raw space is refused; the password is not logged', async (t) => {
  out = ''
  const r = await exchange(Buffer.from(nginxRequest(undefined).toString('latin1').replace(`Auth-Pass: ${PASSWORD}`, 'Auth-Pass: wonder land'), 'latin1'))
  t.match(r, { status: 200, headers: REFUSED })
  const line = lines().find((l) => l.msg === 'nginx auth request refused: invalid header')
  t.match(line, { header: 'Auth-Pass', reason: 'space' })
  t.equal(line?.byte, undefined, 'not even the offending byte of a password')
  t.notMatch(out, /wonder/)
})

t.test('still answering clean logins afterwards', async (t) => {
  const r = await exchange(nginxRequest('client.example.net', { user: 'bob@example.org' }))
  t.match(r, { status: 200, headers: { 'auth-status': 'Invalid login or password', 'auth-wait': '1' } }, 'bob with alice\'s password: an ordinary failure')
  t.match(await exchange(nginxRequest('[TEMPUNAVAIL]')), { status: 200, headers: { 'auth-status': 'OK' } })
})

t.test('parser refusals without a request to read', async (t) => {
  const handler = clientErrorHandler({ logger })
  const socket = (writable = true, destroyed = false) => {
    const s = { writable, destroyed, written: '', write: (d: string) => ((s.written += d), true), destroy: () => ((s.destroyed = true), s) }
    return s
  }
  const call = (code: string, s: ReturnType<typeof socket>) => handler.call(app, Object.assign(new Error(code), { code }) as never, s as never)
  const timeout = socket()
  call('ERR_HTTP_REQUEST_TIMEOUT', timeout)
  t.match(timeout, { destroyed: true, written: /^HTTP\/1\.1 408 Request Timeout\r\n[^]*"code":"MH_HTTP_TIMEOUT"/ })
  const overflow = socket()
  call('HPE_HEADER_OVERFLOW', overflow)
  t.match(overflow, { destroyed: true, written: /^HTTP\/1\.1 431 [^]*"code":"MH_HTTP_HEADERS_TOO_LARGE"/ })
  const reset = socket()
  call('ECONNRESET', reset)
  t.same([reset.written, reset.destroyed], ['', false], 'a reset connection: nothing to answer')
  const gone = socket(true, true)
  call('HPE_INVALID_HEADER_TOKEN', gone)
  t.equal(gone.written, '', 'a destroyed socket: nothing written')
  const closing = socket(false)
  call('HPE_INVALID_HEADER_TOKEN', closing)
  t.same([closing.written, closing.destroyed], ['', true], 'not writable: only closed')

  const big = await exchange(Buffer.from(`GET /other HTTP/1.0\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`))
  t.match(big, { status: 431, headers: { 'content-type': 'application/problem+json' } }, 'headers over Node\'s limit, over a socket')
})
