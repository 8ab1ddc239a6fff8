// The status page on the in-process daemon (PGlite, demo data, demo tokens): who may see it,
// what it shows as the state changes (lookups, health records, admin state, moves, audit), and
// a page that still answers, within the deadline, when the store does not.

import t from 'tap'
import { parseConfig } from '../../src/config/load.js'
import { recordAudit } from '../../src/admin/audit.js'
import { recordHealth } from '../../src/health/health-repo.js'
import { statusData, type StatusDaemon } from '../../src/http/status-data.js'
import { Registry } from '../../src/resolve/registry.js'
import { startAdminDaemon, lookup } from '../admin/daemon.js'
import { READ_TOKEN, ADMIN_TOKEN } from '../harness/admin-api.js'

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

async function get(port: number, authorization?: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${port}/`, { method, headers: authorization === undefined ? {} : { authorization }, signal: AbortSignal.timeout(30_000) })
  return { status: res.status, headers: res.headers, body: await res.text() }
}

/** The text of one backend's row. */
const row = (body: string, id: string) => new RegExp(`<tr data-backend="${id}">([\\s\\S]*?)</tr>`).exec(body)?.[1] ?? ''

// One daemon for the subtests below but the one without tokens: they run in order, and the
// first sees the demo as it starts (no lookups yet). The demo turns probing off (nothing answers
// on its backends' addresses); here it is on but a round is an hour away, so the states shown
// are the ones the tests record.
const d = await startAdminDaemon(t, { health: { interval: '1h' } })

t.test('what the page shows follows the cluster', async (t) => {
  const auth = basic('ops', READ_TOKEN)
  let page = (await get(d.port, auth)).body
  t.match(page, /<title>mailhostd status: 2 backends, 0 down<\/title>/)
  t.match(row(page, 'mx1'), /data-field="health" data-label="Health"><span class="state state-not-probed">NOT PROBED/, 'no checks have run')
  t.match(row(page, 'mx1'), /data-service="delivery">delivery: <span class="state state-not-probed">NOT PROBED/)
  t.match(row(page, 'mx1'), /data-field="admin-state" data-label="Admin state">active<[\s\S]*data-field="accounts" data-label="Accounts" class="num">2</)
  t.match(row(page, 'mx2'), /data-field="accounts" data-label="Accounts" class="num">1</)
  t.match(row(page, 'mx1'), /aria-label="66\.7% of all accounts"/)
  t.match(row(page, 'mx2'), /aria-label="33\.3% of all accounts"/)
  t.match(page, /id="cache-hit-rate">no lookups yet</)
  t.match(page, /<td data-label="Actor">config<\/td><td data-label="Action">create<\/td><td data-label="Subject">backend <strong>mx1<\/strong>/, 'the seed is in the audit log')

  // Lookups move the hit rate: one miss loads, three hits.
  for (let i = 0; i < 4; i++) t.equal((await lookup(d.api, 'transport', 'bob@example.org')).outcome, 'found')
  page = (await get(d.port, auth)).body
  t.match(page, /id="cache-hit-rate">75\.0%<\/dd>\s*<small>3 hits, 1 miss<\/small>/)
  t.match(page, /id="cache-entries">1</)

  // A checker recorded mx2's IMAP down, with an error a peer wrote.
  await recordHealth(d.daemon.store, { backend: 'mx2', service: 'imap', state: 'down', detail: 'banner <script>x</script>', instance: 'test:1' })
  await recordHealth(d.daemon.store, { backend: 'mx2', service: 'delivery', state: 'up', detail: null, instance: 'test:1' })
  await recordHealth(d.daemon.store, { backend: 'mx1', service: 'delivery', state: 'up', detail: null, instance: 'test:1' })
  await d.daemon.reloadHealth()
  page = (await get(d.port, auth)).body
  t.match(row(page, 'mx1'), /data-field="health" data-label="Health"><span class="state state-up">UP/, 'what was probed is up')
  t.match(page, /2 backends, 1 down/)
  t.match(row(page, 'mx2'), /data-field="health" data-label="Health"><span class="state state-down">DOWN/)
  t.match(row(page, 'mx2'), /data-service="imap">imap: <span class="state state-down">DOWN<\/span> <small title="since [0-9-]+ [0-9:]+ UTC">for \d+ s<\/small> <small>\(banner &lt;script&gt;x&lt;\/script&gt;\)/)
  t.match(row(page, 'mx2'), /data-service="delivery">delivery: <span class="state state-up">UP/)
  t.match(row(page, 'mx2'), /data-service="pop3">pop3: <span class="state state-not-probed">NOT PROBED/)
  t.notMatch(page, /<script/)

  // Admin state, a move and a hostile audit subject.
  t.equal((await d.api.patch('/v1/backends/mx1', { adminState: 'maintenance' })).status, 200)
  t.equal((await d.api.post('/v1/moves', { target: 'mx2', accounts: ['alice@example.org'] })).status, 201)
  await recordAudit(d.daemon.store, { actor: 'import', action: 'create', subjectType: 'account', subject: '<script>alert(1)</script>@example.org' })
  page = (await get(d.port, auth)).body
  t.match(page, /2 backends, 2 down/)
  t.match(row(page, 'mx1'), /MAINTENANCE \(down\)[\s\S]*data-field="admin-state" data-label="Admin state">maintenance</)
  t.match(page, /id="moving">1</)
  t.match(page, /<td data-label="Actor">demo-admin<\/td><td data-label="Action">start<\/td><td data-label="Subject">move <strong>/)
  t.match(page, /<td data-label="Actor">demo-admin<\/td><td data-label="Action">update<\/td><td data-label="Subject">backend <strong>mx1<\/strong>/)
  t.match(page, /<td data-label="Actor">import<\/td><td data-label="Action">create<\/td><td data-label="Subject">account <strong>&lt;script&gt;alert\(1\)&lt;\/script&gt;@example\.org<\/strong>/)
  t.notMatch(page, /<script/)
  t.equal(page.match(/<tr data-audit-id=/g)?.length, 8, 'every entry so far (fewer than 20): 5 from the seed, 3 since')
})

t.test('who may see the page', async (t) => {

  const none = await get(d.port)
  t.equal(none.status, 401)
  t.equal(none.headers.get('www-authenticate'), 'Basic realm="mailhostd"', 'a browser shows its login prompt')
  t.match(none.headers.get('content-type'), /^text\/html; charset=utf-8/)
  t.match(none.body, /This page needs a token\./)
  t.notMatch(none.body, /mx1|example\.org/, 'nothing of the cluster before login')

  for (const [header, why] of [
    [basic('ops', 'wrong'), 'wrong Basic password'],
    ['Bearer wrong', 'wrong bearer token'],
    [basic('demo-read-token', ''), 'the token as the user name'],
  ] as const) {
    const r = await get(d.port, header)
    t.equal(r.status, 401, why)
    t.match(r.body, /That token is not valid\./, why)
  }

  for (const [header, viewer] of [
    [basic('ops', READ_TOKEN), 'demo-read \\(read\\)'],
    [basic('', ADMIN_TOKEN), 'demo-admin \\(admin\\)'],
    [`Bearer ${READ_TOKEN}`, 'demo-read \\(read\\)'],
  ] as const) {
    const r = await get(d.port, header)
    t.equal(r.status, 200)
    t.match(r.body, new RegExp(`viewed with token ${viewer}`))
    t.equal(r.headers.get('cache-control'), 'no-store')
    t.match(r.headers.get('content-security-policy'), /default-src 'none'/)
    t.equal(r.headers.get('x-frame-options'), 'DENY')
  }
  const head = await get(d.port, basic('ops', READ_TOKEN), 'HEAD')
  t.equal(head.status, 200)
  t.equal(head.body, '')

  // Basic is the page's alone: the admin API still takes bearer tokens only.
  t.equal((await d.api.get('/v1/backends', { token: undefined })).status, 401)
  const res = await fetch(`http://127.0.0.1:${d.port}/v1/backends`, { headers: { authorization: basic('ops', READ_TOKEN) } })
  t.equal(res.status, 401)
  // The endpoints next to it are unchanged.
  t.equal((await fetch(`http://127.0.0.1:${d.port}/healthz`)).status, 200)
  t.equal((await d.api.get('/v1/lookup?map=transport&key=alice%40example.org', { token: undefined })).status, 200)
})

t.test('without admin.tokens the page says what to configure', async (t) => {
  const bare = await startAdminDaemon(t, { admin: { tokens: [] } })
  const r = await get(bare.port, basic('ops', READ_TOKEN))
  t.equal(r.status, 401)
  t.equal(r.headers.get('www-authenticate'), 'Basic realm="mailhostd"')
  t.match(r.body, /No tokens are configured: set admin\.tokens/)
})

t.test('the page shows at most the 20 newest audit entries', async (t) => {
  for (let i = 0; i < 25; i++) await recordAudit(d.daemon.store, { actor: 'bulk', action: 'update', subjectType: 'domain', subject: `d${i}.example` })
  const page = (await get(d.port, basic('ops', READ_TOKEN))).body
  t.equal(page.match(/<tr data-audit-id=/g)?.length, 20)
  t.match(page, /<strong>d24\.example<\/strong>[\s\S]*<strong>d5\.example<\/strong>/)
  t.notMatch(page, /<strong>d4\.example</)
})

t.test('a store that fails or hangs costs its parts only, within the deadline', async (t) => {
  const config = parseConfig(JSON.stringify({ lookup: { deadline: '100ms' }, health: { interval: '0s' } }), 'test')
  const registry = new Registry([], [{ id: 'mx1', mailHosts: [], address: '10.0.0.11', route: 'lmtp', ports: { lmtp: 24, smtp: 25, imap: 143, pop3: 110 } }])
  const fake = (query: () => Promise<never>): StatusDaemon => ({
    registry,
    cache: { size: 0, stats: { hits: 0, misses: 0, staleServed: 0, evictions: 0, invalidated: 0 } },
    store: { kind: 'postgres', query },
    config,
    directory: { kind: 'ldap', state: 'open' },
  })

  const failing = await statusData(fake(() => Promise.reject(new Error('connection refused'))), { list: () => Promise.reject(new Error('directory unreachable')) })
  t.same(failing.problems, { counts: 'directory unreachable', health: 'connection refused', audit: 'connection refused' })
  t.same(failing.backends.map((b) => [b.id, b.state, b.accounts, b.services]), [['mx1', 'not probed', null, []]], 'the registry still lists its backends')
  t.same([failing.probing, failing.directory, failing.audit], [false, { kind: 'ldap', circuit: 'open' }, []])

  // A store that answers, but knows nothing this instance's registry holds.
  const health = new Map([['mx1', new Map([['imap', 'down']] as const)]])
  const answering: StatusDaemon = {
    ...fake(() => Promise.reject(new Error('unused'))),
    registry: registry.withHealth(health),
    store: { kind: 'postgres', query: () => Promise.resolve({ rows: [] }) },
    config: parseConfig('{}', 'test'),
  }
  const stale = await statusData(answering, { list: () => Promise.resolve([]) })
  t.same(stale.problems, {})
  t.same(stale.backends.map((b) => [b.id, b.state, b.accounts, b.services]), [
    ['mx1', 'down', null, [{ service: 'delivery', state: 'not probed' }, { service: 'imap', state: 'down' }, { service: 'pop3', state: 'not probed' }]],
  ], 'the registry\'s states, without a since the store does not have')

  const hanging = await statusData(fake(() => new Promise<never>(() => {})), { list: () => new Promise<never>(() => {}) })
  t.same(hanging.problems, { counts: 'no answer within 100 ms', health: 'no answer within 100 ms', audit: 'no answer within 100 ms' })
})
