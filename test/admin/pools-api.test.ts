// Pools through the admin API on the daemon in-process (SQL directory on PGlite, demo data):
// a pool created, shown and deleted through /v1/backends with its members; /v1/pools status,
// member add / weight / drain / remove, flush, move-user and the pins listing, with what each
// refuses (and that a refusal changes nothing), the audit rows and what lookups answer after.
// Whether this instance's local pins follow a flush is checked against the store: a pin the
// store holds differently is only seen by a lookup once the local pin is gone.

import t, { type Test } from 'tap'
import { READ_TOKEN } from '../harness/admin-api.js'
import { lookup, startAdminDaemon } from './daemon.js'

const d = await startAdminDaemon(t)
const { api } = d
const store = d.daemon.store

const isProblem = (t: Test, r: { status: number; body: any }, status: number, code: string, what: string) => {
  t.equal(r.status, status, `${what}: status ${status}`)
  t.match(r.body, { status, code }, `${what}: ${code}`)
}
const auditOf = async (subjectType: string, subject: string) => (await api.get(`/v1/audit?subjectType=${subjectType}&subject=${subject}&limit=1000`)).body.entries as any[]
const auditCount = async () => (await store.query<{ n: number }>('select count(*)::int as n from audit_log')).rows[0]!.n
const storedPins = async (pool = 'pool1') =>
  (await store.query<{ address: string; member_id: string; explicit: boolean }>('select address, member_id, explicit from pool_pins where pool_id = $1 order by address', [pool])).rows
const ROUTE = { m1: 'lmtp:inet:[127.0.0.1]:24', m2: 'lmtp:inet:[127.0.0.2]:24', m3: 'lmtp:inet:[127.0.0.3]:2424' } as Record<string, string>
const memberOfRoute = (value: string | undefined) => Object.entries(ROUTE).find(([, r]) => r === value)?.[0]
const USERS = ['p1@example.org', 'p2@example.org', 'p3@example.org', 'p4@example.org', 'p5@example.org']

t.test('a pool through /v1/backends: created with its members, shown with them', async (t) => {
  const r = await api.post('/v1/backends', {
    id: 'pool1',
    kind: 'pool',
    mailHosts: ['pool1.example.org'],
    pinFor: '10m',
    members: [
      { id: 'm1', address: '127.0.0.1' },
      { id: 'm2', address: '127.0.0.2', weight: 2, ports: { imap: 1143 } },
    ],
  })
  t.equal(r.status, 201, JSON.stringify(r.body))
  t.match(r.body, {
    id: 'pool1',
    kind: 'pool',
    pinForMs: 600_000,
    accounts: 0,
    members: [
      { id: 'm1', address: '127.0.0.1', weight: 1, adminState: 'active', ports: { lmtp: 24, imap: 143 }, health: {} },
      { id: 'm2', address: '127.0.0.2', weight: 2, adminState: 'active', ports: { lmtp: 24, imap: 1143 } },
    ],
  })
  t.notOk('address' in r.body, 'a pool has no address')
  t.notOk('director' in r.body, 'no director unless set')
  const list = (await api.get('/v1/backends')).body.backends as any[]
  t.match(list.find((b) => b.id === 'pool1'), { kind: 'pool', members: [{ id: 'm1' }, { id: 'm2' }] })
  t.match(list.find((b) => b.id === 'mx1'), { kind: 'host', address: '10.0.0.11' })
  t.notOk('members' in list.find((b) => b.id === 'mx1'), 'a host has no members')
  const [created] = await auditOf('backend', 'pool1')
  t.match(created, { action: 'create', actor: 'demo-admin', after: { kind: 'pool', pinForMs: 600_000, members: [{ id: 'm1', ports: {} }, { id: 'm2', ports: { imap: 1143 } }] } })
  t.ok(d.daemon.registry.member('m2'), 'the registry has the members at once')

  const dir = await api.post('/v1/backends', { id: 'pool9', kind: 'pool', members: [{ id: 'm9', address: '127.0.0.9' }], director: { tag: 'pool9', address: '127.0.0.19' } })
  t.match(dir.body, { director: { tag: 'pool9', address: '127.0.0.19' }, pinForMs: 900_000 }, 'director mode; pinFor defaults to 15m')
  const patched = await api.patch('/v1/backends/pool9', { pinFor: '30s', director: null })
  t.equal(patched.status, 200, JSON.stringify(patched.body))
  t.equal(patched.body.pinForMs, 30_000)
  t.notOk('director' in patched.body, 'director mode off')
  isProblem(t, await api.patch('/v1/backends/pool9', { address: '127.0.0.9' }), 400, 'MH_HTTP_VALIDATION', 'a pool gets no address')
  isProblem(t, await api.patch('/v1/backends/mx1', { pinFor: '1m' }), 400, 'MH_HTTP_VALIDATION', 'a host gets no pinFor')
  t.equal((await api.del('/v1/backends/pool9')).status, 204, 'an empty pool is deleted')
  t.same((await store.query("select id from pool_members where id = 'm9'")).rows, [], 'its members with it')
})

t.test('refused pool and backend creations change nothing', async (t) => {
  const before = await auditCount()
  const cases: [string, unknown, number, string][] = [
    ['a pool with an address', { id: 'pool2', kind: 'pool', address: '127.0.0.5', members: [{ id: 'x1', address: '127.0.0.5' }] }, 400, 'MH_HTTP_VALIDATION'],
    ['a pool without members', { id: 'pool2', kind: 'pool' }, 400, 'MH_HTTP_VALIDATION'],
    ['a pool with no members', { id: 'pool2', kind: 'pool', members: [] }, 400, 'MH_HTTP_VALIDATION'],
    ['a host without an address', { id: 'mx7' }, 400, 'MH_HTTP_VALIDATION'],
    ['a host with members', { id: 'mx7', address: '10.0.0.17', members: [{ id: 'x1', address: '127.0.0.5' }] }, 400, 'MH_HTTP_VALIDATION'],
    ['a member address that is no IP', { id: 'pool2', kind: 'pool', members: [{ id: 'x1', address: 'store.example.org' }] }, 400, 'MH_HTTP_VALIDATION'],
    ['pinFor under 5s', { id: 'pool2', kind: 'pool', pinFor: '2s', members: [{ id: 'x1', address: '127.0.0.5' }] }, 400, 'MH_HTTP_VALIDATION'],
    ['a member named like a backend', { id: 'pool2', kind: 'pool', members: [{ id: 'MX1', address: '127.0.0.5' }] }, 409, 'MH_CONFLICT'],
    ['a member named like another pool\'s member', { id: 'pool2', kind: 'pool', members: [{ id: 'm1', address: '127.0.0.5' }] }, 409, 'MH_CONFLICT'],
    ['one member id twice', { id: 'pool2', kind: 'pool', members: [{ id: 'x1', address: '127.0.0.5' }, { id: 'x1', address: '127.0.0.6' }] }, 409, 'MH_CONFLICT'],
    ['a pool named like a member', { id: 'm2', kind: 'pool', members: [{ id: 'x1', address: '127.0.0.5' }] }, 409, 'MH_CONFLICT'],
    ['a host named like a member', { id: 'm1', address: '10.0.0.17' }, 409, 'MH_CONFLICT'],
  ]
  for (const [why, body, status, code] of cases) isProblem(t, await api.post('/v1/backends', body), status, code, why)
  t.match((await api.post('/v1/backends', { id: 'm1', address: '10.0.0.17' })).body.detail, /m1 already names a member of pool pool1/, 'the clash is named')
  t.equal((await api.get('/v1/backends/pool2')).status, 404)
  t.same((await store.query("select id from pool_members where id = 'x1'")).rows, [])
  t.equal(await auditCount(), before, 'nothing audited')
})

t.test('accounts on the pool: lookups pin them; status counts the pins and the hash shares', async (t) => {
  for (const address of USERS) t.equal((await api.post('/v1/accounts', { address, backend: 'pool1' })).status, 201, address)
  const routed = new Map<string, string>()
  for (const address of USERS) {
    const r = await lookup(api, 'transport', address)
    t.equal(r.outcome, 'found', `${address}: ${JSON.stringify(r)}`)
    routed.set(address, memberOfRoute(r.value)!)
  }
  t.same((await storedPins()).map((p) => [p.address, p.member_id]), USERS.map((u) => [u, routed.get(u)]), 'one stored pin per user, to the member the lookup answered')
  const s = (await api.get('/v1/pools/pool1', { token: READ_TOKEN })).body
  t.match(s, { id: 'pool1', pinForMs: 600_000, accounts: USERS.length, pins: USERS.length })
  const byId = Object.fromEntries((s.members as any[]).map((m) => [m.id, m]))
  t.match(byId.m1, { eligible: true, share: 33.33, pins: [...routed.values()].filter((m) => m === 'm1').length })
  t.match(byId.m2, { eligible: true, share: 66.67, pins: [...routed.values()].filter((m) => m === 'm2').length })
  isProblem(t, await api.get('/v1/pools/mx1'), 404, 'MH_NOT_FOUND', 'a host is no pool')
  isProblem(t, await api.get('/v1/pools/nope'), 404, 'MH_NOT_FOUND', 'no such pool')
})

t.test('the status page shows the pool with its members and their pinned users', async (t) => {
  const res = await fetch(`http://127.0.0.1:${d.port}/`, { headers: { authorization: `Bearer ${READ_TOKEN}` }, signal: AbortSignal.timeout(30_000) })
  const page = await res.text()
  t.equal(res.status, 200)
  t.match(page, /<h3 id="pool-pool1">Pool pool1<\/h3>/)
  const pins = await storedPins()
  for (const m of ['m1', 'm2']) {
    const at = page.indexOf(`data-member="${m}"`)
    t.ok(at > 0, `${m} has a row`)
    const row = page.slice(at, page.indexOf('</tr>', at))
    t.match(row, new RegExp(`data-field="pins"[^>]*>${pins.filter((p) => p.member_id === m).length}<`), `${m}: its pinned users`)
  }
})

t.test('members: add, weight, drain, maintenance; audited as the pool', async (t) => {
  const added = await api.post('/v1/pools/pool1/members', { id: 'm3', address: '127.0.0.3', ports: { lmtp: 2424 }, weight: 1 })
  t.equal(added.status, 201, JSON.stringify(added.body))
  t.match(added.body, { id: 'm3', address: '127.0.0.3', ports: { lmtp: 2424, smtp: 25 }, weight: 1, adminState: 'active' })
  isProblem(t, await api.post('/v1/pools/pool1/members', { id: 'mx2', address: '127.0.0.4' }), 409, 'MH_CONFLICT', 'a member named like a backend')
  isProblem(t, await api.post('/v1/pools/pool1/members', { id: 'm4', address: 'nope' }), 400, 'MH_HTTP_VALIDATION', 'an address that is no IP')
  isProblem(t, await api.post('/v1/pools/mx1/members', { id: 'm4', address: '127.0.0.4' }), 404, 'MH_NOT_FOUND', 'a host takes no members')
  isProblem(t, await api.post('/v1/pools/pool1/members', { id: 'm4', address: '127.0.0.4' }, { token: READ_TOKEN }), 403, 'MH_FORBIDDEN', 'a read token')

  const pinsBefore = await storedPins()
  const drained = await api.patch('/v1/pools/pool1/members/m2', { adminState: 'drain' })
  t.match(drained.body, { id: 'm2', adminState: 'drain', weight: 2 })
  const s = (await api.get('/v1/pools/pool1')).body
  t.match(
    (s.members as any[]).map((m) => [m.id, m.eligible, m.share]),
    [
      ['m1', true, 50],
      ['m2', false, 0],
      ['m3', true, 50],
    ],
  )
  for (const p of pinsBefore) t.equal(memberOfRoute((await lookup(api, 'transport', p.address)).value), p.member_id, `${p.address}: a drained member keeps its pins`)
  t.match((await api.patch('/v1/pools/pool1/members/m1', { weight: 3 })).body, { weight: 3 })
  isProblem(t, await api.patch('/v1/pools/pool1/members/m9', { weight: 3 }), 404, 'MH_NOT_FOUND', 'no such member')
  isProblem(t, await api.patch('/v1/pools/pool1/members/m1', {}), 400, 'MH_HTTP_VALIDATION', 'nothing to change')
  isProblem(t, await api.patch('/v1/pools/pool1/members/m1', { weight: -1 }), 400, 'MH_HTTP_VALIDATION', 'a negative weight')
  t.equal((await api.patch('/v1/pools/pool1/members/m2', { adminState: 'active' })).status, 200)
  const audit = await auditOf('pool', 'pool1')
  t.match(audit.slice(0, 4), [
    { action: 'update', before: { member: { id: 'm2', adminState: 'drain' } }, after: { member: { id: 'm2', adminState: 'active' } } },
    { action: 'update', before: { member: { id: 'm1', weight: 1 } }, after: { member: { id: 'm1', weight: 3 } } },
    { action: 'update', before: { member: { id: 'm2', adminState: 'active' } }, after: { member: { id: 'm2', adminState: 'drain' } } },
    { action: 'create', after: { member: { id: 'm3', address: '127.0.0.3', ports: { lmtp: 2424 } } } },
  ])
})

t.test("maintenance drops the member's pins in the store with the state change, in and out; drain and weight keep them", async (t) => {
  for (const u of USERS) await lookup(api, 'transport', u)
  const pins = await storedPins()
  const member = pins[0]!.member_id
  const users = pins.filter((p) => p.member_id === member).map((p) => p.address)
  const others = pins.filter((p) => p.member_id !== member)
  const lastAudit = async () => (await auditOf('pool', 'pool1'))[0]

  t.equal((await api.patch(`/v1/pools/pool1/members/${member}`, { adminState: 'drain' })).status, 200)
  t.same(await storedPins(), pins, 'drain: every pin stays')
  t.notOk('droppedPins' in (await lastAudit()).after, 'nothing dropped, nothing audited as dropped')
  t.equal((await api.patch(`/v1/pools/pool1/members/${member}`, { weight: 5 })).status, 200)
  t.same(await storedPins(), pins, 'weight: every pin stays')

  t.equal((await api.patch(`/v1/pools/pool1/members/${member}`, { adminState: 'maintenance' })).status, 200)
  t.same(
    (await storedPins()).map((p) => p.address),
    others.map((p) => p.address),
    `maintenance: ${member}'s pins are gone from the store, the others' stay`,
  )
  t.match(await lastAudit(), { action: 'update', before: { member: { id: member, adminState: 'drain' } }, after: { member: { adminState: 'maintenance' }, droppedPins: users.length } })
  for (const u of users) t.not(memberOfRoute((await lookup(api, 'transport', u)).value), member, `${u} goes to another member`)
  const moved = await storedPins()

  // A pin to a member in maintenance only comes from an instance that had not heard of it yet.
  await store.query("insert into pool_pins (address, pool_id, member_id) values ('stray@example.org', 'pool1', $1)", [member])
  t.equal((await api.patch(`/v1/pools/pool1/members/${member}`, { adminState: 'active', weight: 1 })).status, 200)
  t.match(await lastAudit(), { after: { member: { adminState: 'active' }, droppedPins: 1 } }, 'out of maintenance: a pin made to it meanwhile is dropped')
  t.same(await storedPins(), moved, 'the others stay')
  for (const u of users) t.not(memberOfRoute((await lookup(api, 'transport', u)).value), member, `${u} stays where it went while its pin lives`)
})

t.test('flush: one user, one member, the whole pool; this instance drops its local pins', async (t) => {
  const user = USERS[0]!
  const pinned = memberOfRoute((await lookup(api, 'transport', user)).value)!
  const other = pinned === 'm1' ? 'm3' : 'm1'
  isProblem(t, await api.post('/v1/pools/pool1/flush', { user: 'alice@example.org' }), 400, 'MH_HTTP_VALIDATION', 'a user on another backend')
  isProblem(t, await api.post('/v1/pools/pool1/flush', { user: 'nobody@example.org' }), 404, 'MH_NOT_FOUND', 'no such user')
  isProblem(t, await api.post('/v1/pools/pool1/flush', { user, member: 'm1' }), 400, 'MH_HTTP_VALIDATION', 'member and user')
  isProblem(t, await api.post('/v1/pools/pool1/flush', { member: 'mx1' }), 404, 'MH_NOT_FOUND', 'not a member of the pool')

  const r = await api.post('/v1/pools/pool1/flush', { user: user.toUpperCase() })
  t.same(r.body, { dropped: 1 }, 'the user, named in any case')
  // The store now says another member, live: only a lookup that no longer holds a local pin asks it.
  await store.query('insert into pool_pins (address, pool_id, member_id) values ($1, $2, $3)', [user, 'pool1', other])
  t.equal(memberOfRoute((await lookup(api, 'transport', user)).value), other, 'the local pin was dropped: the store was asked')
  t.match((await auditOf('pool', 'pool1'))[0], { action: 'flush', after: { user, dropped: 1 } })

  const onM1 = (await storedPins()).filter((p) => p.member_id === 'm1').length
  t.same((await api.post('/v1/pools/pool1/flush', { member: 'm1' })).body, { dropped: onM1 })
  t.equal((await storedPins()).filter((p) => p.member_id === 'm1').length, 0)
  const all = (await storedPins()).length
  t.same((await api.post('/v1/pools/pool1/flush', {})).body, { dropped: all }, 'the whole pool')
  t.same(await storedPins(), [])
  isProblem(t, await api.post('/v1/pools/pool1/flush', {}, { token: READ_TOKEN }), 403, 'MH_FORBIDDEN', 'a read token')
})

t.test('move-user: pinned explicitly, lookups follow; no kick without the doveadm section', async (t) => {
  const user = USERS[1]!
  const first = memberOfRoute((await lookup(api, 'transport', user)).value)!
  const target = first === 'm3' ? 'm1' : 'm3'
  const before = await auditCount()
  isProblem(t, await api.post('/v1/pools/pool1/move-user', { user, member: target, kick: true }), 400, 'MH_HTTP_VALIDATION', 'kick without doveadm')
  t.match((await api.post('/v1/pools/pool1/move-user', { user, member: target, kick: true })).body.detail, /doveadm/)
  isProblem(t, await api.post('/v1/pools/pool1/move-user', { user, member: 'mx1' }), 404, 'MH_NOT_FOUND', 'not a member')
  isProblem(t, await api.post('/v1/pools/pool1/move-user', { user: 'bob@example.org', member: target }), 400, 'MH_HTTP_VALIDATION', 'a user on another backend')
  t.equal(await auditCount(), before, 'refusals change nothing')
  t.equal(memberOfRoute((await lookup(api, 'transport', user)).value), first, 'still where it was')

  const r = await api.post('/v1/pools/pool1/move-user', { user, member: target })
  t.same(r.body, { user, member: target, previous: first })
  t.equal(memberOfRoute((await lookup(api, 'transport', user)).value), target, 'the next lookup goes to the new member')
  t.match(await storedPins(), [{ address: user, member_id: target, explicit: true }])
  t.match((await auditOf('pool', 'pool1'))[0], { action: 'move-user', before: { user, member: first }, after: { user, member: target } })
  t.equal((await api.patch('/v1/pools/pool1/members/m2', { adminState: 'maintenance' })).status, 200)
  isProblem(t, await api.post('/v1/pools/pool1/move-user', { user, member: 'm2' }), 409, 'MH_CONFLICT', 'to a member in maintenance')
  t.equal((await api.patch('/v1/pools/pool1/members/m2', { adminState: 'active' })).status, 200)
})

t.test('pins listing: by member, paged', async (t) => {
  for (const u of USERS) await lookup(api, 'transport', u)
  const all = (await api.get('/v1/pools/pool1/pins?limit=1000', { token: READ_TOKEN })).body.pins as any[]
  t.same(all.map((p) => p.address), USERS, 'every user, by address')
  t.match(all[1], { address: USERS[1], explicit: true, pinnedAt: String, lastSeen: String })
  const first = (await api.get('/v1/pools/pool1/pins?limit=2')).body
  t.equal(first.pins.length, 2)
  t.equal(first.next, USERS[1])
  const second = (await api.get(`/v1/pools/pool1/pins?limit=2&after=${encodeURIComponent(first.next)}`)).body
  t.same(second.pins.map((p: any) => p.address), USERS.slice(2, 4))
  const m = all[0].member
  t.same((await api.get(`/v1/pools/pool1/pins?member=${m}`)).body.pins.map((p: any) => p.address), all.filter((p) => p.member === m).map((p) => p.address))
  isProblem(t, await api.get('/v1/pools/pool1/pins?member=mx1'), 404, 'MH_NOT_FOUND', 'not a member')
  isProblem(t, await api.get('/v1/pools/pool1/pins?limit=0'), 400, 'MH_HTTP_VALIDATION', 'limit 0')
})

t.test('removing a member drops its pins; its users go to the others; the last member stays', async (t) => {
  const onM3 = (await storedPins()).filter((p) => p.member_id === 'm3').map((p) => p.address)
  t.ok(onM3.length > 0, 'm3 holds pins')
  t.equal((await api.del('/v1/pools/pool1/members/m3')).status, 204)
  t.equal((await storedPins()).filter((p) => p.member_id === 'm3').length, 0, 'its pins are gone')
  t.notOk(d.daemon.registry.member('m3'), 'and it from the registry')
  for (const u of onM3) t.not(memberOfRoute((await lookup(api, 'transport', u)).value), 'm3', `${u} goes elsewhere`)
  t.match((await auditOf('pool', 'pool1'))[0], { action: 'delete', before: { member: { id: 'm3' } }, after: { droppedPins: onM3.length } })
  isProblem(t, await api.del('/v1/pools/pool1/members/m3'), 404, 'MH_NOT_FOUND', 'gone already')
  t.equal((await api.del('/v1/pools/pool1/members/m2')).status, 204)
  isProblem(t, await api.del('/v1/pools/pool1/members/m1'), 409, 'MH_CONFLICT', 'the last member')
})

t.test('deleting a pool: refused while it holds accounts, then its members and pins go too', async (t) => {
  isProblem(t, await api.del('/v1/backends/pool1'), 409, 'MH_BACKEND_IN_USE', 'accounts on it')
  t.ok((await storedPins()).length > 0)
  for (const u of USERS) t.equal((await api.del(`/v1/accounts/${u}`)).status, 204)
  // A pin outlives its account until it expires; the pool's deletion drops it.
  t.equal((await api.del('/v1/backends/pool1')).status, 204)
  t.same((await store.query("select id from pool_members where pool_id = 'pool1'")).rows, [])
  t.same(await storedPins(), [])
  t.notOk(d.daemon.registry.member('m1'))
  t.match((await auditOf('backend', 'pool1'))[0], { action: 'delete', before: { kind: 'pool', members: [{ id: 'm1' }] } })
  t.equal((await api.post('/v1/backends', { id: 'm1', address: '10.0.0.21' })).status, 201, 'its member ids are free again')
  t.equal((await api.del('/v1/backends/m1')).status, 204)
})

t.test('OpenAPI documents the pool endpoints', async (t) => {
  const doc = (await api.get('/v1/openapi.json', { token: undefined })).body
  for (const p of ['/v1/pools/{id}', '/v1/pools/{id}/members', '/v1/pools/{id}/members/{member}', '/v1/pools/{id}/flush', '/v1/pools/{id}/move-user', '/v1/pools/{id}/pins']) t.ok(doc.paths[p], p)
})
