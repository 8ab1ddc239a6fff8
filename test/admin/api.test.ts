// The admin REST API on the daemon in-process (SQL directory on PGlite, demo data): who may do
// what, what a refused request answers (and that it changes nothing), accounts, domains and
// backends end to end through lookups, idempotent creates, placement, the audit log and the
// OpenAPI document. No secret may appear in answers, the audit log or the logs.

import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { ADMIN_TOKEN, READ_TOKEN } from '../harness/admin-api.js'
import { ROOT } from '../harness/mailhostd.js'
import { lookup, startAdminDaemon } from './daemon.js'

const PASSWORD = 'c0rrect-horse-battery'
const d = await startAdminDaemon(t, { login: { secret: 'login-secret-value' } })
const { api } = d

const auditCount = async () => {
  let n = 0
  let before: number | undefined
  do {
    const page = await api.get(`/v1/audit?limit=1000${before ? `&before=${before}` : ''}`)
    n += page.body.entries.length
    before = page.body.next
  } while (before !== undefined)
  return n
}
const isProblem = (t: Test, r: { status: number; headers: Headers; body: any }, status: number, code: string, what: string) => {
  t.equal(r.status, status, `${what}: status ${status}`)
  t.match(r.headers.get('content-type'), /^application\/problem\+json/, `${what}: problem+json`)
  t.match(r.body, { type: 'about:blank', status, code, detail: String }, `${what}: ${code}`)
}

t.test('OpenAPI document: no token needed, every admin path described', async (t) => {
  const r = await api.get('/v1/openapi.json', { token: undefined })
  t.equal(r.status, 200)
  t.match(r.body, { openapi: /^3\./, info: { title: 'mailhostd' } })
  for (const p of ['/v1/accounts', '/v1/accounts/{address}', '/v1/domains', '/v1/backends/{id}', '/v1/moves', '/v1/moves/{id}/complete', '/v1/audit', '/v1/placement']) {
    t.ok(r.body.paths[p], `documents ${p}`)
  }
  t.ok(r.body.paths['/v1/accounts'].post.requestBody, 'with request schemas')
  t.match(r.body.components.securitySchemes, { bearer: { type: 'http', scheme: 'bearer' } })
})

t.test('no token, a wrong token, a read token on a write: 401 / 403 with problem+json, nothing changed', async (t) => {
  const before = await auditCount()
  const body = { address: 'mallory@example.org', password: PASSWORD }
  for (const [token, why] of [
    [undefined, 'no token'],
    ['not-a-token', 'an unknown token'],
    ['login-secret-value', 'the login secret'],
  ] as const) {
    const r = await api.post('/v1/accounts', body, { token })
    isProblem(t, r, 401, 'MH_UNAUTHORIZED', why)
    t.equal(r.headers.get('www-authenticate'), 'Bearer realm="mailhostd"')
    isProblem(t, await api.get('/v1/accounts', { token }), 401, 'MH_UNAUTHORIZED', `${why} on a read`)
  }
  const basic = await api.call('GET', '/v1/accounts', undefined, { token: undefined })
  t.equal(basic.status, 401)
  for (const [method, path] of [
    ['POST', '/v1/accounts'],
    ['PATCH', '/v1/accounts/alice@example.org'],
    ['DELETE', '/v1/accounts/alice@example.org'],
    ['POST', '/v1/backends'],
    ['DELETE', '/v1/domains/example.com'],
    ['POST', '/v1/moves'],
  ] as const) {
    const r = await api.call(method, path, method === 'DELETE' ? undefined : body, { token: READ_TOKEN })
    isProblem(t, r, 403, 'MH_FORBIDDEN', `read token: ${method} ${path}`)
  }
  t.equal((await api.get('/v1/accounts', { token: READ_TOKEN })).status, 200, 'a read token reads')
  t.equal((await api.get('/v1/accounts/mallory@example.org')).status, 404, 'nothing was created')
  t.equal((await api.get('/v1/accounts/alice@example.org')).status, 200, 'nothing was deleted')
  t.equal(await auditCount(), before, 'nothing was audited')
})

t.test('malformed requests: 400 with problem+json naming the field, nothing changed', async (t) => {
  const before = await auditCount()
  const cases: [string, unknown, string | undefined, number, string][] = [
    ['not JSON', undefined, '{"address": ', 400, 'MH_HTTP_VALIDATION'],
    ['unknown field', { address: 'mallory@example.org', mailHost: 'evil' }, undefined, 400, 'MH_HTTP_VALIDATION'],
    ['wrong type', { address: 42 }, undefined, 400, 'MH_HTTP_VALIDATION'],
    ['missing address', { password: PASSWORD }, undefined, 400, 'MH_HTTP_VALIDATION'],
    ['not an address', { address: 'no-at-sign' }, undefined, 400, 'MH_HTTP_VALIDATION'],
    ['LDAP metacharacters', { address: 'a*)(mail=*@example.org' }, undefined, 400, 'MH_HTTP_VALIDATION'],
    ['extension delimiter', { address: 'mallory+x@example.org' }, undefined, 400, 'MH_HTTP_VALIDATION'],
    ['empty password', { address: 'mallory@example.org', password: '' }, undefined, 400, 'MH_HTTP_VALIDATION'],
    ['unserved domain', { address: 'mallory@elsewhere.test' }, undefined, 422, 'MH_DOMAIN_NOT_SERVED'],
    ['alias domain', { address: 'mallory@example.net' }, undefined, 422, 'MH_DOMAIN_NOT_SERVED'],
    ['unknown backend', { address: 'mallory@example.org', backend: 'mx9' }, undefined, 422, 'MH_NO_ELIGIBLE_BACKEND'],
  ]
  for (const [why, body, raw, status, code] of cases) {
    const r = await api.post('/v1/accounts', body, raw === undefined ? {} : { raw })
    isProblem(t, r, status, code, why)
  }
  isProblem(t, await api.post('/v1/accounts', { address: 'x@example.org' }, { raw: 'address=x', contentType: 'application/x-www-form-urlencoded' }), 415, 'MH_HTTP_MEDIA_TYPE', 'form body')
  isProblem(t, await api.get('/v1/accounts?limit=100000'), 400, 'MH_HTTP_VALIDATION', 'limit out of range')
  isProblem(t, await api.patch('/v1/accounts/alice@example.org', {}), 400, 'MH_HTTP_VALIDATION', 'empty patch')
  isProblem(t, await api.get('/v1/moves/abc'), 400, 'MH_HTTP_VALIDATION', 'move id not a number')
  t.equal((await api.get('/v1/accounts/mallory@example.org')).status, 404, 'nothing was created')
  t.equal(await auditCount(), before, 'nothing was audited')
})

t.test('integers past what the store holds, in a path, a query or a body: 400 with problem+json, never 500', async (t) => {
  const before = await auditCount()
  const huge = ['99999999999999999999', '9223372036854775808', '9007199254740993', '1e30']
  for (const n of huge) {
    isProblem(t, await api.get(`/v1/moves/${n}`), 400, 'MH_HTTP_VALIDATION', `GET /v1/moves/${n}`)
    isProblem(t, await api.post(`/v1/moves/${n}/complete`), 400, 'MH_HTTP_VALIDATION', `complete ${n}`)
    isProblem(t, await api.post(`/v1/moves/${n}/abort`), 400, 'MH_HTTP_VALIDATION', `abort ${n}`)
    isProblem(t, await api.get(`/v1/moves?after=${n}`), 400, 'MH_HTTP_VALIDATION', `moves after=${n}`)
    isProblem(t, await api.get(`/v1/audit?before=${n}`), 400, 'MH_HTTP_VALIDATION', `audit before=${n}`)
    isProblem(t, await api.get(`/v1/accounts?limit=${n}`), 400, 'MH_HTTP_VALIDATION', `accounts limit=${n}`)
  }
  isProblem(t, await api.patch('/v1/backends/mx1', { capacity: 2 ** 31 }), 400, 'MH_HTTP_VALIDATION', 'capacity past a 32-bit column')
  isProblem(t, await api.post('/v1/backends', { id: 'mx7', address: '10.0.0.17', capacity: 1e20 }), 400, 'MH_HTTP_VALIDATION', 'capacity 1e20')
  isProblem(t, await api.post('/v1/moves', { target: 'mx1', fromBackend: 'mx2', limit: 1e20 }), 400, 'MH_HTTP_VALIDATION', 'move batch limit 1e20')
  const largest = String(Number.MAX_SAFE_INTEGER)
  isProblem(t, await api.get(`/v1/moves/${largest}`), 404, 'MH_NOT_FOUND', 'the largest id a request may name: looked up')
  t.same((await api.get(`/v1/moves?after=${largest}`)).body, { moves: [] })
  t.equal((await api.get(`/v1/audit?before=${largest}&limit=1`)).body.entries.length, 1)
  t.equal((await api.patch('/v1/backends/mx1', { capacity: 2 ** 31 - 1 })).body.capacity, 2 ** 31 - 1, 'the largest capacity')
  await api.patch('/v1/backends/mx1', { capacity: null })
  t.equal(await auditCount(), before + 2, 'only the two capacity changes were written')
})

t.test('backend mailHosts: the names lookups accept, no others (an account placed on another would fail temporarily for good)', async (t) => {
  const before = await auditCount()
  for (const bad of ['<img src=x>', 'a\r\nb', 'a\nb', 'mx 5.example.org', ' mx5.example.org', '-mx5', '.mx5', 'mx5/x', 'mx5;x', 'ü.example.org', 'x'.repeat(256), '']) {
    isProblem(t, await api.post('/v1/backends', { id: 'mx5', address: '10.0.0.15', mailHosts: [bad] }), 400, 'MH_HTTP_VALIDATION', `create with ${JSON.stringify(bad).slice(0, 30)}`)
    isProblem(t, await api.patch('/v1/backends/mx1', { mailHosts: ['mx1.example.org', bad] }), 400, 'MH_HTTP_VALIDATION', `update with ${JSON.stringify(bad).slice(0, 30)}`)
  }
  isProblem(t, await api.get('/v1/backends/mx5'), 404, 'MH_NOT_FOUND', 'nothing was created')
  t.same((await api.get('/v1/backends/mx1')).body.mailHosts, ['mx1.example.org'], 'nothing was changed')
  t.equal(await auditCount(), before, 'nothing was audited')

  const created = await api.post('/v1/backends', { id: 'mx5', address: '10.0.0.15', mailHosts: ['MX5_a.Example.org', '2001:db8::15'] })
  t.equal(created.status, 201)
  t.same(created.body.mailHosts, ['mx5_a.example.org', '2001:db8::15'])
  t.match((await api.post('/v1/accounts', { address: 'mallory5@example.org', backend: 'mx5' })).body, { backend: 'mx5', mailHost: 'mx5_a.example.org' })
  t.match(await lookup(api, 'transport', 'mallory5@example.org'), { outcome: 'found', value: 'lmtp:inet:[10.0.0.15]:24' }, 'an account placed there is routed')
  await api.del('/v1/accounts/mallory5@example.org')
  t.equal((await api.del('/v1/backends/mx5')).status, 204)
})

t.test('keys that URL parsing would cut or decode are misses, never the address they start with', async (t) => {
  for (const key of ['alice@example.org/evil', 'alice@example.org\\x', 'alice@example.org?x', 'alice@example.org#x', 'alice@exa%6Dple.org']) {
    for (const map of ['transport', 'recipient']) t.match(await lookup(api, map, key), { outcome: 'notfound' }, `${map} ${key}`)
    isProblem(t, await api.get(`/v1/accounts/${encodeURIComponent(key)}`), 400, 'MH_HTTP_VALIDATION', `account ${key}`)
  }
  isProblem(t, await api.post('/v1/accounts', { address: 'mallory@example.org/evil' }), 400, 'MH_HTTP_VALIDATION', 'create')
  isProblem(t, await api.post('/v1/domains', { name: 'example.edu/evil' }), 400, 'MH_HTTP_VALIDATION', 'a domain')
  isProblem(t, await api.patch('/v1/accounts/alice@example.org', { sendAs: ['@example.com/evil'] }), 400, 'MH_HTTP_VALIDATION', 'sendAs')
  t.equal((await api.get('/v1/domains/example.edu')).status, 404)
})

t.test('accounts: create, read, list, update, delete; every change visible to lookups at once', async (t) => {
  t.match(await lookup(api, 'transport', 'dave@example.org'), { outcome: 'notfound' }, 'a miss, now cached')
  const created = await api.post('/v1/accounts', { address: 'Dave@Example.ORG', password: PASSWORD, backend: 'mx2', aliases: ['d.ave@example.org'], sendAs: ['@example.com'] })
  t.equal(created.status, 201)
  t.equal(created.headers.get('location'), '/v1/accounts/dave%40example.org')
  t.same(created.body, {
    address: 'dave@example.org',
    backend: 'mx2',
    mailHost: 'mx2.example.org',
    status: 'active',
    aliases: ['d.ave@example.org'],
    sendAs: ['@example.com'],
    hasPassword: true,
    moving: false,
  })
  t.match(await lookup(api, 'transport', 'dave@example.org'), { outcome: 'found', value: 'lmtp:inet:[10.0.0.12]:24' }, 'the cached miss was dropped')
  t.match(await lookup(api, 'alias', 'd.ave@example.org'), { outcome: 'found', value: 'dave@example.org' }, 'the alias routes to the account')
  t.match(await lookup(api, 'transport', 'dave+news@example.org'), { outcome: 'found' })

  const entries = await d.daemon.directory.findByAddress('dave@example.org')
  const account = entries[0]
  t.equal(account?.kind, 'account')
  if (account?.kind === 'account') {
    t.equal(await d.daemon.directory.verifyPassword(account, PASSWORD), 'ok', 'the password was stored hashed, and verifies')
    t.equal(await d.daemon.directory.verifyPassword(account, 'wrong'), 'mismatch')
  }
  const { rows } = await d.daemon.store.query<{ password_hash: string }>('select password_hash from accounts where address = $1', ['dave@example.org'])
  t.match(rows[0]?.password_hash, /^\{ARGON2ID\}\$argon2id\$/, 'SQL default scheme: Argon2id')

  t.same((await api.get('/v1/accounts/dave@example.org')).body, created.body, 'read back')
  isProblem(t, await api.get('/v1/accounts/nobody@example.org'), 404, 'MH_NOT_FOUND', 'unknown account')

  const list = await api.get('/v1/accounts?domain=example.org')
  t.same(list.body.accounts.map((a: { address: string }) => a.address), ['alice@example.org', 'bob@example.org', 'carol@example.org', 'dave@example.org'])
  t.same((await api.get('/v1/accounts?backend=mx2')).body.accounts.map((a: { address: string }) => a.address), ['bob@example.org', 'dave@example.org'])
  t.same((await api.get('/v1/accounts?status=disabled')).body.accounts.map((a: { address: string }) => a.address), ['carol@example.org'])
  const page1 = await api.get('/v1/accounts?limit=3')
  t.equal(page1.body.accounts.length, 3)
  t.equal(page1.body.next, 'carol@example.org')
  const page2 = await api.get(`/v1/accounts?limit=3&after=${page1.body.next}`)
  t.same(page2.body.accounts.map((a: { address: string }) => a.address), ['dave@example.org'])
  t.equal(page2.body.next, undefined, 'last page')

  const updated = await api.patch('/v1/accounts/dave@example.org', { status: 'disabled', aliases: ['dave.2@example.org'], sendAs: [], password: null })
  t.equal(updated.status, 200)
  t.match(updated.body, { status: 'disabled', aliases: ['dave.2@example.org'], sendAs: [], hasPassword: false })
  t.match(await lookup(api, 'transport', 'd.ave@example.org'), { outcome: 'notfound' }, 'the removed alias no longer routes')
  t.match(await lookup(api, 'alias', 'dave.2@example.org'), { outcome: 'found', value: 'dave@example.org' }, 'the new one does')
  await api.patch('/v1/accounts/dave@example.org', { password: 'n3w-pass-phrase', status: 'active' })

  t.equal((await api.del('/v1/accounts/dave@example.org')).status, 204)
  t.match(await lookup(api, 'transport', 'dave@example.org'), { outcome: 'notfound' }, 'deleted: a miss at once')
  t.match(await lookup(api, 'transport', 'dave.2@example.org'), { outcome: 'notfound' })
  isProblem(t, await api.del('/v1/accounts/dave@example.org'), 404, 'MH_NOT_FOUND', 'deleting twice')
})

t.test('local parts: the API accepts exactly what docs/admin.md tells hook authors to expect, shell metacharacters included', async (t) => {
  const doc = readFileSync(`${ROOT}/docs/admin.md`, 'utf8')
  const listed = /a local part may hold letters, digits, dots \(not\s+first, last or two in a row\) and these characters: ``(.+?)``/s.exec(doc)?.[1]
  t.ok(listed, 'docs/admin.md lists the characters')
  const allowed = new Set(listed?.split(' '))
  const provisioned = async (address: string, why: string) => {
    const r = await api.post('/v1/accounts', { address, backend: 'mx1' })
    t.match(r, { status: 201, body: { address } }, `created: ${why}`)
    t.match(await lookup(api, 'transport', address), { outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24' }, `routed: ${why}`)
    t.equal((await api.get(`/v1/accounts/${encodeURIComponent(address)}`)).body.address, address, `read back: ${why}`)
    t.equal((await api.del(`/v1/accounts/${encodeURIComponent(address)}`)).status, 204, `deleted: ${why}`)
  }
  for (let code = 0x21; code < 0x7f; code++) {
    const c = String.fromCharCode(code)
    if (/[A-Za-z0-9.@]/.test(c)) continue
    // The extension delimiter (addresses.extensionDelimiters, + here) is excepted, as documented.
    if (allowed.has(c) && c !== '+') await provisioned(`x${c}y@example.org`, JSON.stringify(c))
    else isProblem(t, await api.post('/v1/accounts', { address: `x${c}y@example.org`, backend: 'mx1' }), 400, 'MH_HTTP_VALIDATION', `refused: ${JSON.stringify(c)}`)
  }
  await provisioned("-o'k$x|y&z{w}`id`@example.org", 'shell metacharacters and a leading -')
  await provisioned('#!%^~*/=?_x@example.org', 'a leading #, a slash, ? and =')
  for (const address of ['.x@example.org', 'x.@example.org', 'x..y@example.org', '"x y"@example.org', 'x\\y@example.org']) {
    isProblem(t, await api.post('/v1/accounts', { address }), 400, 'MH_HTTP_VALIDATION', `not a dot-atom: ${address}`)
  }
})

t.test('addresses are free in the whole directory, or the create is refused', async (t) => {
  for (const [body, why] of [
    [{ address: 'alice@example.org' }, 'an existing account'],
    [{ address: 'postmaster@example.org' }, 'an alias entry'],
    [{ address: 'eve@example.org', aliases: ['alice.liddell@example.org'] }, "another account's alias"],
    [{ address: 'eve@example.org', aliases: ['postmaster@example.org'] }, 'an alias entry as alias'],
  ] as const) {
    isProblem(t, await api.post('/v1/accounts', body), 409, 'MH_ADDRESS_TAKEN', why)
  }
  t.equal((await api.get('/v1/accounts/eve@example.org')).status, 404)
  isProblem(t, await api.patch('/v1/accounts/bob@example.org', { aliases: ['alice.liddell@example.org'] }), 409, 'MH_ADDRESS_TAKEN', 'update to a taken alias')
  t.match((await api.patch('/v1/accounts/alice@example.org', { aliases: ['alice.liddell@example.org', 'al@example.org'] })).body, {
    aliases: ['al@example.org', 'alice.liddell@example.org'],
  }, 'keeping its own alias is fine')
})

t.test('idempotent creates: a retry gets the first answer, a different body with the key is refused', async (t) => {
  const body = { address: 'frank@example.org', password: PASSWORD }
  const first = await api.post('/v1/accounts', body, { idempotencyKey: 'create-frank-1' })
  t.equal(first.status, 201)
  const again = await api.post('/v1/accounts', body, { idempotencyKey: 'create-frank-1' })
  t.equal(again.status, 201)
  t.equal(again.headers.get('idempotent-replayed'), 'true')
  t.same(again.body, first.body)
  const other = await api.post('/v1/accounts', { ...body, backend: 'mx1' }, { idempotencyKey: 'create-frank-1' })
  isProblem(t, other, 422, 'MH_IDEMPOTENCY_MISMATCH', 'same key, other request')
  const refused = await api.post('/v1/accounts', body, { idempotencyKey: 'create-frank-2' })
  isProblem(t, refused, 409, 'MH_ADDRESS_TAKEN', 'a new key: a real second create')
  const refusedAgain = await api.post('/v1/accounts', body, { idempotencyKey: 'create-frank-2' })
  t.equal(refusedAgain.headers.get('idempotent-replayed'), 'true', 'refusals are replayed too')
  isProblem(t, await api.post('/v1/accounts', body, { idempotencyKey: 'bad key with spaces' }), 400, 'MH_HTTP_VALIDATION', 'malformed key')
  const audit = await api.get('/v1/audit?subjectType=account&subject=frank@example.org')
  t.equal(audit.body.entries.length, 1, 'one account, one audit entry')
  const { rows } = await d.daemon.store.query<{ request_hash: string; body: unknown }>('select request_hash, body from idempotency_keys')
  t.notMatch(JSON.stringify(rows), PASSWORD, 'the stored answers hold no password')
})

t.test('domains: create, alias domain, catch-all, affinity; refusals', async (t) => {
  const created = await api.post('/v1/domains', { name: 'Example.EDU', affinity: 'mx2' })
  t.equal(created.status, 201)
  t.same(created.body, { name: 'example.edu', affinity: 'mx2' })
  t.match((await api.get('/v1/placement?domain=example.edu&policy=domain')).body, { ok: true, backend: 'mx2', applied: 'domain' }, 'the domain policy prefers the affinity')
  t.match((await api.post('/v1/accounts', { address: 'gina@example.edu' })), { status: 201, body: { address: 'gina@example.edu' } }, 'served at once')
  t.equal((await api.post('/v1/domains', { name: 'example.info', aliasFor: 'example.edu' })).status, 201)
  t.match(await lookup(api, 'alias', 'gina@example.info'), { outcome: 'found', value: 'gina@example.edu' }, 'alias domain')
  t.same((await api.patch('/v1/domains/example.edu', { catchAll: ['gina@example.edu'], affinity: null })).body, { name: 'example.edu', catchAll: ['gina@example.edu'] })
  t.match(await lookup(api, 'alias', 'whoever@example.edu'), { outcome: 'found', value: 'gina@example.edu' }, 'catch-all')
  isProblem(t, await api.post('/v1/domains', { name: 'example.edu' }), 409, 'MH_CONFLICT', 'exists')
  isProblem(t, await api.post('/v1/domains', { name: 'x.test', aliasFor: 'example.info' }), 400, 'MH_HTTP_VALIDATION', 'alias of an alias')
  isProblem(t, await api.post('/v1/domains', { name: 'y.test', aliasFor: 'example.edu', catchAll: ['gina@example.edu'] }), 400, 'MH_HTTP_VALIDATION', 'alias domain with a catch-all')
  isProblem(t, await api.post('/v1/domains', { name: 'z.test', affinity: 'mx9' }), 400, 'MH_HTTP_VALIDATION', 'unknown affinity backend')
  isProblem(t, await api.post('/v1/domains', { name: 'not a domain' }), 400, 'MH_HTTP_VALIDATION', 'bad name')
  isProblem(t, await api.del('/v1/domains/example.edu'), 409, 'MH_CONFLICT', 'still has accounts')
  await api.del('/v1/accounts/gina@example.edu')
  isProblem(t, await api.del('/v1/domains/example.edu'), 409, 'MH_CONFLICT', 'still the target of an alias domain')
  t.equal((await api.del('/v1/domains/example.info')).status, 204)
  t.equal((await api.del('/v1/domains/example.edu')).status, 204)
  t.match(await lookup(api, 'transport', 'gina@example.edu'), { outcome: 'notfound', reason: 'domain not served' })
  t.same((await api.get('/v1/domains')).body.domains.map((x: { name: string }) => x.name), ['example.com', 'example.net', 'example.org'])
  isProblem(t, await api.get('/v1/domains/example.edu'), 404, 'MH_NOT_FOUND', 'gone')
})

t.test('backends: add, counts, admin state and placement, refusals', async (t) => {
  const created = await api.post('/v1/backends', { id: 'mx3', address: '10.0.0.13', mailHosts: ['MX3.example.org'], capacity: 1, ports: { lmtp: 2424 } })
  t.equal(created.status, 201)
  t.match(created.body, { id: 'mx3', mailHosts: ['mx3.example.org'], ports: { lmtp: 2424, smtp: 25, imap: 143, pop3: 110 }, capacity: 1, weight: 1, adminState: 'active', accounts: 0 })
  isProblem(t, await api.post('/v1/backends', { id: 'mx4', address: '10.0.0.14', mailHosts: ['mx3.example.org'] }), 409, 'MH_CONFLICT', 'a mailHost name of another backend')
  isProblem(t, await api.post('/v1/backends', { id: 'mx4', address: 'mx4.example.org' }), 400, 'MH_HTTP_VALIDATION', 'a host name as address')
  isProblem(t, await api.post('/v1/backends', { id: 'mx3', address: '10.0.0.13' }), 409, 'MH_CONFLICT', 'exists')

  const hank = await api.post('/v1/accounts', { address: 'hank@example.org', backend: 'mx3' })
  t.match(hank.body, { backend: 'mx3', mailHost: 'mx3.example.org' })
  t.match(await lookup(api, 'transport', 'hank@example.org'), { outcome: 'found', value: 'lmtp:inet:[10.0.0.13]:2424' })
  isProblem(t, await api.post('/v1/accounts', { address: 'ian@example.org', backend: 'mx3' }), 422, 'MH_NO_ELIGIBLE_BACKEND', 'full')
  const list = await api.get('/v1/backends')
  t.same(Object.fromEntries(list.body.backends.map((b: { id: string; accounts: number }) => [b.id, b.accounts])), { mx1: 2, mx2: 2, mx3: 1 }, 'live counts')

  await api.patch('/v1/backends/mx1', { adminState: 'drain' })
  await api.patch('/v1/backends/mx2', { adminState: 'maintenance' })
  const none = await api.get('/v1/placement')
  t.match(none.body, { ok: false, reason: /no eligible backend: mx1 drain, mx2 maintenance, mx3 full/ })
  isProblem(t, await api.post('/v1/accounts', { address: 'ian@example.org' }), 422, 'MH_NO_ELIGIBLE_BACKEND', 'nowhere to place')
  await api.patch('/v1/backends/mx3', { capacity: null })
  const dry = await api.get('/v1/placement?policy=least-used&domain=example.org', { token: READ_TOKEN })
  t.match(dry.body, { ok: true, backend: 'mx3', applied: 'least-used', eligible: ['mx3'] })
  t.same(dry.body.excluded, [{ id: 'mx1', reason: 'drain' }, { id: 'mx2', reason: 'maintenance' }])
  t.equal((await api.post('/v1/accounts', { address: 'ian@example.org' })).body.backend, 'mx3', 'placed on the only eligible backend')
  await api.patch('/v1/backends/mx1', { adminState: 'active' })
  await api.patch('/v1/backends/mx2', { adminState: 'active' })

  isProblem(t, await api.del('/v1/backends/mx3'), 409, 'MH_BACKEND_IN_USE', 'holds accounts')
  await api.del('/v1/accounts/hank@example.org')
  await api.del('/v1/accounts/ian@example.org')
  t.equal((await api.del('/v1/backends/mx3')).status, 204)
  isProblem(t, await api.get('/v1/backends/mx3'), 404, 'MH_NOT_FOUND', 'gone')
})

t.test('moves: the account is moving until completed; transport defers, recipient still found', async (t) => {
  const started = await api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })
  t.equal(started.status, 201)
  const move = started.body.moves[0]
  t.match(move, { account: 'bob@example.org', source: { backend: 'mx2', mailHost: 'mx2.example.org' }, target: 'mx1', state: 'copied', actor: 'demo-admin' })
  t.match(await lookup(api, 'transport', 'bob@example.org'), { outcome: 'temp', reason: /being moved/ }, 'transport: mail waits')
  t.match(await lookup(api, 'transport', 'Bob+x@example.net'), { outcome: 'temp' }, 'through extension and alias domain too')
  t.match(await lookup(api, 'recipient', 'bob@example.org'), { outcome: 'found' }, 'recipient: still exists')
  t.match(await lookup(api, 'transport', 'anyone@example.com'), { outcome: 'temp' }, 'the catch-all to bob waits too')
  t.equal((await api.get('/v1/accounts/bob@example.org')).body.moving, true)
  isProblem(t, await api.patch('/v1/accounts/bob@example.org', { status: 'disabled' }), 409, 'MH_ACCOUNT_MOVING', 'no changes while moving')
  isProblem(t, await api.del('/v1/accounts/bob@example.org'), 409, 'MH_ACCOUNT_MOVING', 'no delete while moving')
  isProblem(t, await api.post('/v1/moves', { target: 'mx1', accounts: ['alice@example.org', 'bob@example.org'] }), 409, 'MH_ACCOUNT_MOVING', 'a batch with a moving account')
  t.equal((await api.get('/v1/moves?active=true')).body.moves.length, 1, 'the refused batch started nothing')
  isProblem(t, await api.post('/v1/moves', { target: 'mx2', accounts: ['bob@example.org'] }), 409, 'MH_ACCOUNT_MOVING', 'moving twice')
  isProblem(t, await api.post('/v1/moves', { target: 'mx1', accounts: ['alice@example.org'] }), 409, 'MH_CONFLICT', 'onto its own backend')

  const done = await api.post(`/v1/moves/${move.id}/complete`)
  t.match(done.body, { id: move.id, state: 'completed', finishedAt: String })
  t.match(await lookup(api, 'transport', 'bob@example.org'), { outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24' }, 'routed to the target')
  t.match((await api.get('/v1/accounts/bob@example.org')).body, { backend: 'mx1', mailHost: 'mx1.example.org', moving: false })
  isProblem(t, await api.post(`/v1/moves/${move.id}/complete`), 409, 'MH_MOVE_STATE', 'completing twice')
  isProblem(t, await api.post(`/v1/moves/${move.id}/abort`), 409, 'MH_MOVE_STATE', 'aborting a completed move')
  isProblem(t, await api.post('/v1/moves/9999/abort'), 404, 'MH_NOT_FOUND', 'no such move')

  const batch = await api.post('/v1/moves', { target: 'mx2', fromBackend: 'mx1', limit: 2 })
  t.same(batch.body.moves.map((m: { account: string }) => m.account), ['alice@example.org', 'bob@example.org'], 'a batch from a backend, up to the limit')
  for (const m of batch.body.moves) t.equal((await api.post(`/v1/moves/${m.id}/abort`)).body.state, 'aborted')
  t.match(await lookup(api, 'transport', 'alice@example.org'), { outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24' }, 'aborted: where it was')
  const list = await api.get('/v1/moves?state=aborted')
  t.equal(list.body.moves.length, 2)
  t.equal((await api.get(`/v1/moves/${move.id}`)).body.state, 'completed')
  t.equal((await api.get('/v1/moves?account=BOB@example.org&limit=1')).body.next, move.id, 'paged')
  // Put bob back for the later tests.
  const back = await api.post('/v1/moves', { target: 'mx2', accounts: ['bob@example.org'] })
  await api.post(`/v1/moves/${back.body.moves[0].id}/complete`)
})

t.test('audit log: every write with actor, before and after; filters; no secret', async (t) => {
  const r = await api.get('/v1/audit?subjectType=account&subject=dave@example.org', { token: READ_TOKEN })
  t.same(r.body.entries.map((e: { action: string }) => e.action), ['delete', 'update', 'update', 'create'], 'newest first')
  const [del, upd2, upd1, create] = r.body.entries
  t.match(create, { actor: 'demo-admin', subjectType: 'account', before: null, after: { address: 'dave@example.org', mailHost: 'mx2.example.org', hasPassword: true, password: '(changed)' } })
  t.match(upd1, { before: { status: 'active', aliases: ['d.ave@example.org'] }, after: { status: 'disabled', aliases: ['dave.2@example.org'], hasPassword: false } })
  t.match(upd2.after, { password: '(changed)', status: 'active' })
  t.match(del, { before: { address: 'dave@example.org' }, after: null })
  const moves = await api.get('/v1/audit?subjectType=move&action=complete')
  t.ok(moves.body.entries.length >= 2)
  t.match(moves.body.entries.at(-1), { before: { state: 'copied', mailHost: 'mx2.example.org' }, after: { state: 'completed', mailHost: 'mx1.example.org' } })
  t.ok((await api.get('/v1/audit?subjectType=backend&subject=mx3')).body.entries.length >= 3, 'backend writes')
  t.ok((await api.get('/v1/audit?actor=config')).body.entries.length >= 5, "the config file's seeding, as actor config")
  t.equal((await api.get('/v1/audit?since=2100-01-01T00:00:00Z')).body.entries.length, 0, 'time filter')
  const paged = await api.get('/v1/audit?limit=2')
  t.equal(paged.body.entries.length, 2)
  t.equal((await api.get(`/v1/audit?limit=2&before=${paged.body.next}`)).body.entries[0].id, paged.body.next - 1)

  const everything = JSON.stringify((await d.daemon.store.query('select * from audit_log')).rows)
  for (const secret of [PASSWORD, 'n3w-pass-phrase', '{ARGON2ID}', '$argon2id$']) t.notOk(everything.includes(secret), `audit log has no ${secret.slice(0, 4)}...`)
  const logs = d.logs()
  t.ok(logs.length > 1000, 'debug logs were captured')
  for (const secret of [PASSWORD, 'n3w-pass-phrase', ADMIN_TOKEN, READ_TOKEN, 'login-secret-value', '$argon2id$']) t.notOk(logs.includes(secret), `logs have no ${secret.slice(0, 4)}...`)
})
