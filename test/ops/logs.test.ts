// Logs at debug level: one line per request with its ids (conn and req on socketmap and
// policy, reqId on HTTP), failures at warn with the ids of the request that failed, and no
// password, token or shared secret anywhere, whatever the admin API and login endpoints were sent.

import { Writable } from 'node:stream'
import t from 'tap'
import { createLogger, requestContext } from '../../src/log.js'
import { ADMIN_TOKEN, READ_TOKEN, adminApi } from '../harness/admin-api.js'
import { Client } from '../server/client.js'
import { LOGIN_SECRET, askSocketmap, startOpsDaemon } from './daemon.js'

const PASSWORD = 'Correct-Horse-Battery-Staple-77'
const NEW_PASSWORD = 'n3w-Secret-Phrase-Never-Logged'

t.test('request ids and no secrets at debug level', async (t) => {
  const d = await startOpsDaemon(t, { cache: { ttl: '1h' } })
  const http = d.port('http')

  // socketmap: two requests on one connection, one on another.
  const a = await Client.connect(d.port('socketmap'))
  const b = await Client.connect(d.port('socketmap'))
  t.teardown(() => (a.destroy(), b.destroy()))
  t.match(await askSocketmap(a, 'transport', 'alice@example.org'), /^OK /)
  t.match(await askSocketmap(a, 'recipient', 'bob@example.org'), /^OK /)
  t.match(await askSocketmap(b, 'transport', 'nobody@example.org'), /^NOTFOUND/)
  const lookups = d.lines().filter((l) => l.msg === 'lookup' && l.protocol === 'socketmap')
  t.equal(lookups.length, 3, 'one line per socketmap request')
  const [first, second, third] = lookups
  t.equal(first!.level, 'debug')
  t.equal(first!.conn, second!.conn, 'same connection id on one connection')
  t.not(first!.conn, third!.conn, 'another connection, another id')
  t.same([first!.req, second!.req, third!.req], [1, 2, 1], 'requests numbered per connection')
  t.match(first, { map: 'transport', key: 'alice@example.org', outcome: 'found', layer: 'directory' })
  // Answers had without waiting (a cached hit, address rules) are logged with the ids too.
  t.match(await askSocketmap(b, 'recipient', 'alice@example.org'), /^OK /)
  t.match(await askSocketmap(b, 'transport', '*'), /^NOTFOUND/)
  const [cached, rules] = d.lines().filter((l) => l.msg === 'lookup' && l.protocol === 'socketmap').slice(3)
  t.match(cached, { conn: third!.conn, req: 2, key: 'alice@example.org', layer: 'cache' }, 'a cached hit carries its request ids')
  t.match(rules, { conn: third!.conn, req: 3, key: '*', layer: 'rules' }, 'a rules answer carries its request ids')

  // policy: the decision line carries the ids too.
  const policy = await Client.connect(d.port('policy'))
  t.teardown(() => policy.destroy())
  policy.write('request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=1\nsender=\nrecipient=nobody@example.org\n\n')
  t.equal(await policy.readLine(), 'action=550 5.1.1 mailbox unknown in this mail cluster')
  const decision = d.lines().find((l) => l.msg === 'policy')
  t.match(decision, { conn: Number, req: 1, rule_set: 'default' }, 'policy line with its request ids')

  // HTTP: the lookup line and the request line share fastify's reqId.
  t.match(await d.lookup('transport', 'bob@example.org'), { outcome: 'found' })
  const httpLookup = d.lines().find((l) => l.msg === 'lookup' && l.protocol === 'http')
  t.match(httpLookup, { reqId: String }, 'the lookup line has the HTTP request id')
  const request = d.lines().find((l) => l.msg === 'http request' && l.reqId === httpLookup!.reqId)
  t.match(request, { level: 'debug', method: 'GET', route: '/v1/lookup', status: 200 }, 'one line per HTTP request')
  t.notOk(JSON.stringify(request).includes('bob@example.org'), `the request line names the route, not the query: ${JSON.stringify(request)}`)

  // Admin API calls carrying a password and tokens, and login calls with the shared secret.
  const api = adminApi(http, ADMIN_TOKEN)
  t.equal((await api.post('/v1/accounts', { address: 'dave@example.org', backend: 'mx1', password: PASSWORD })).status, 201)
  t.equal((await api.patch('/v1/accounts/dave@example.org', { password: NEW_PASSWORD })).status, 200)
  t.equal((await api.get('/v1/accounts/dave@example.org', { token: READ_TOKEN })).status, 200)
  t.equal((await api.post('/v1/accounts', { address: 'eve@example.org', password: PASSWORD, pasword: 'typo' })).status, 400)
  t.equal((await api.get('/v1/accounts', { token: 'not-a-token-but-looks-secret' })).status, 401)
  const login = await fetch(`http://127.0.0.1:${http}/v1/dovecot/passdb/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-auth-key': LOGIN_SECRET },
    body: JSON.stringify({ user: 'dave@example.org', password: NEW_PASSWORD, service: 'imap', remoteIp: '192.0.2.9' }),
  })
  t.match(await login.json(), { result: 'ok' })
  const nginx = await fetch(`http://127.0.0.1:${http}/v1/nginx/auth`, {
    headers: { 'x-auth-key': LOGIN_SECRET, 'auth-method': 'plain', 'auth-user': 'dave@example.org', 'auth-pass': PASSWORD, 'auth-protocol': 'imap', 'client-ip': '192.0.2.9' },
  })
  t.equal(nginx.status, 200)
  t.ok(d.lines().some((l) => l.msg === 'login routed' && typeof l.reqId === 'string'), 'login lines carry the reqId')

  const logs = d.logs()
  for (const secret of [PASSWORD, NEW_PASSWORD, ADMIN_TOKEN, READ_TOKEN, 'not-a-token-but-looks-secret', LOGIN_SECRET, '$argon2id$']) {
    t.notOk(logs.includes(secret), `no ${secret.slice(0, 6)}... in the logs`)
  }
  t.ok(d.lines().filter((l) => l.msg === 'http request').length >= 8, 'every HTTP request logged')
})

t.test('failures at warn carry the request ids', async (t) => {
  const d = await startOpsDaemon(t, { lookup: { deadline: '300ms' } })
  // The store is the SQL directory: closing it makes every uncached lookup fail.
  await d.daemon.store.close()
  const c = await Client.connect(d.port('socketmap'))
  t.teardown(() => c.destroy())
  t.match(await askSocketmap(c, 'transport', 'alice@example.org'), /^TEMP /)
  const warn = d.lines().find((l) => l.level === 'warn' && String(l.msg).startsWith('answering temporary failure'))
  t.match(warn, { conn: Number, req: 1, address: 'alice@example.org' }, 'the failure line says which request failed')
})

t.test('redaction paths: secrets in any shape a caller might log', async (t) => {
  let out = ''
  const log = createLogger('debug', new Writable({ write: (chunk: Buffer, _e, done) => ((out += chunk.toString()), done()) }))
  log.debug({
    password: 'p1-secret',
    token: 't1-secret',
    secret: 's1-secret',
    url: 'postgres://u:pw-secret@h/db',
    headers: { authorization: 'Bearer h1-secret', 'x-auth-key': 'k1-secret', 'auth-pass': 'a1-secret', cookie: 'c1-secret' },
    req: { headers: { authorization: 'Bearer h2-secret', cookie: 'c2-secret' }, body: { password: 'b1-secret' } },
    body: { password: 'b2-secret', account: { password: 'b3-secret', passwordHash: '{ARGON2ID}h3-secret' } },
    ldap: { bindPassword: 'l1-secret', admin: { bindPassword: 'l2-secret' } },
    config: { login: { secret: 's2-secret' }, store: { url: 'postgres://u:pw2-secret@h/db' } },
  })
  await new Promise((r) => setImmediate(r))
  t.notOk(/-secret/.test(out), `nothing secret left: ${out}`)
  t.match(out, /\[redacted\]/)

  // Lines logged inside a request context carry its ids; a field the call names itself wins.
  out = ''
  requestContext.run({ conn: 7, req: 3 }, () => log.info({ req: 'own' }, 'inside'))
  log.info('outside')
  await new Promise((r) => setImmediate(r))
  const [inside, outside] = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(inside, { conn: 7, req: 'own', msg: 'inside' })
  t.notOk('conn' in outside!, 'no ids outside a request')
})
