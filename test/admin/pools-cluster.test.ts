// Pool operations across two instances on one PostgreSQL (two daemons in-process, SQL
// directory): a flush or a move through A makes B drop the local pins it holds, at once, through
// the change bus; a member removed through A stops taking B's users; a member put into maintenance
// and back through A faster than B reads its registry makes B drop its pins to it all the same
// (the state change announces the drop). And move-user's kick: the
// doveadm HTTP API of the OLD member is called with the API key (never logged), a kick that fails
// is reported while the move stands. The doveadm API is a fake on loopback, one per member address.

import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startPostgres } from '../harness/postgres.js'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ChangeEvent } from '../../src/cluster/changes.js'
import { lookup, startAdminDaemon, type AdminDaemon } from './daemon.js'

const API_KEY = 'doveadm-api-key-that-must-not-be-logged'

interface DoveadmCall {
  host: string
  authorization: string | undefined
  body: unknown
}

/** A fake doveadm HTTP API on `host`: records calls, answers with `reply()`. */
async function fakeDoveadm(host: string, port: number, calls: DoveadmCall[], reply: () => { status: number; body: unknown }): Promise<Server> {
  const server = createServer((req: IncomingMessage, res) => {
    let text = ''
    req.on('data', (c: Buffer) => (text += c.toString()))
    req.on('end', () => {
      calls.push({ host, authorization: req.headers.authorization, body: JSON.parse(text) })
      const r = reply()
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body))
    })
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve))
  return server
}

const postgres = await startPostgres()
t.teardown(() => postgres.stop())

const calls: DoveadmCall[] = []
let answer: () => { status: number; body: unknown } = () => ({ status: 200, body: [['doveadmResponse', [], 'c1']] })
const first = await fakeDoveadm('127.0.0.1', 0, calls, () => answer())
t.teardown(() => first.close())
const port = (first.address() as AddressInfo).port
const second = await fakeDoveadm('127.0.0.2', port, calls, () => answer())
t.teardown(() => second.close())

const config = { store: { url: postgres.url }, doveadm: { port, apiKey: API_KEY, timeout: '2s' }, cache: { ttl: '10m', negativeTtl: '10m' } }
// One after the other: the first migrates the store.
const A: AdminDaemon = await startAdminDaemon(t, config)
const B: AdminDaemon = await startAdminDaemon(t, config)
/** Polls an async check until it holds (a bounded wait: changes arrive in milliseconds). */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`)
    await sleep(25)
  }
}
/** The pins B's ledger dropped on hearing a pins change, as it logs them (debug), since `from` lines. */
function droppedOnB(from: number): { pool: string; member?: string; address?: string; dropped: number }[] {
  return B.logs()
    .split('\n')
    .slice(from)
    .filter((l) => l.includes('"pool pins dropped"'))
    .map((l) => JSON.parse(l))
}
const linesOfB = () => B.logs().split('\n').length - 1
const route = (value: string | undefined) => ({ 'lmtp:inet:[127.0.0.1]:24': 'm1', 'lmtp:inet:[127.0.0.2]:24': 'm2', 'lmtp:inet:[127.0.0.3]:24': 'm3' })[value ?? ''] ?? value

t.test('a pool and its users through A; B pins them alike', async (t) => {
  const pool = await A.api.post('/v1/backends', { id: 'pool1', kind: 'pool', members: [{ id: 'm1', address: '127.0.0.1' }, { id: 'm2', address: '127.0.0.2' }] })
  t.equal(pool.status, 201, JSON.stringify(pool.body))
  for (const u of ['u1', 'u2', 'u3', 'u4']) t.equal((await A.api.post('/v1/accounts', { address: `${u}@example.org`, backend: 'pool1' })).status, 201)
  await until('B has the pool', () => B.daemon.registry.member('m2') !== undefined)
  for (const u of ['u1', 'u2', 'u3', 'u4']) {
    const onA = route((await lookup(A.api, 'transport', `${u}@example.org`)).value)
    t.equal(route((await lookup(B.api, 'transport', `${u}@example.org`)).value), onA, `${u}: B answers A's member`)
  }
})

t.test("a flush through A drops the pins B's ledger holds", async (t) => {
  const user = 'u1@example.org'
  const held = route((await lookup(B.api, 'transport', user)).value)!
  const other = held === 'm1' ? 'm2' : 'm1'
  const from = linesOfB()
  t.same((await A.api.post('/v1/pools/pool1/flush', { user })).body, { dropped: 1 })
  // The bus, not the refresh (which would also notice within a second): B's ledger says so.
  await until("B's ledger drops the pin", () => droppedOnB(from).some((e) => e.pool === 'pool1' && e.address === user && e.dropped === 1))
  // The store now says the other member: B routes there only once its local pin is gone.
  await A.daemon.store.query('insert into pool_pins (address, pool_id, member_id) values ($1, $2, $3)', [user, 'pool1', other])
  await until('B asks the store again', async () => route((await lookup(B.api, 'transport', user)).value) === other)
  t.pass(`B dropped its pin of ${user} on ${held}`)

  const onMember = (await A.daemon.store.query<{ address: string }>("select address from pool_pins where member_id = 'm1'")).rows.map((r) => r.address)
  const before = linesOfB()
  t.same((await A.api.post('/v1/pools/pool1/flush', { member: 'm1' })).body, { dropped: onMember.length })
  await until("B's ledger drops m1's pins", () => droppedOnB(before).some((e) => e.pool === 'pool1' && e.member === 'm1' && e.address === undefined))
  for (const address of onMember) await A.daemon.store.query('insert into pool_pins (address, pool_id, member_id) values ($1, $2, $3)', [address, 'pool1', 'm2'])
  for (const address of onMember) await until(`B drops ${address}`, async () => route((await lookup(B.api, 'transport', address)).value) === 'm2')
})

t.test('move-user through A with a kick: B follows; the old member is kicked with the key', async (t) => {
  const user = 'u2@example.org'
  const old = route((await lookup(B.api, 'transport', user)).value)!
  const target = old === 'm1' ? 'm2' : 'm1'
  calls.length = 0
  const r = await A.api.post('/v1/pools/pool1/move-user', { user, member: target, kick: true })
  t.same(r.body, { user, member: target, previous: old, kicked: true })
  t.same(calls, [{ host: old === 'm1' ? '127.0.0.1' : '127.0.0.2', authorization: `X-Dovecot-API ${Buffer.from(API_KEY).toString('base64')}`, body: [['kick', { mask: [user] }, 'c1']] }], 'one kick, on the old member')
  await until('B routes to the new member', async () => route((await lookup(B.api, 'transport', user)).value) === target)

  answer = () => ({ status: 200, body: [['error', { type: 'exitCode', exitCode: 67 }, 'c1']] })
  const back = await A.api.post('/v1/pools/pool1/move-user', { user, member: old, kick: true })
  t.match(back.body, { user, member: old, previous: target, kicked: false, reason: /exitCode 67/ }, 'a failed kick is reported; the move stands')
  t.equal(route((await lookup(A.api, 'transport', user)).value), old)
  answer = () => ({ status: 401, body: {} })
  t.match((await A.api.post('/v1/pools/pool1/move-user', { user, member: target, kick: true })).body, { kicked: false, reason: /HTTP 401/ })
  t.match((await A.api.post('/v1/pools/pool1/move-user', { user, member: target, kick: true })).body, { kicked: false, reason: /already pinned/ }, 'no kick where the user already is')
  answer = () => ({ status: 200, body: [['doveadmResponse', [], 'c1']] })
  t.match((await A.api.post('/v1/pools/pool1/move-user', { user: 'u3@example.org', member: 'm1', kick: true })).body, { previous: String }, 'u3 had a pin')
  t.match((await A.api.get('/v1/audit?subjectType=pool&subject=pool1&action=move-user&limit=1')).body.entries[0], { actor: 'demo-admin', after: { member: 'm1', kick: true } })
  for (const d of [A, B]) t.notMatch(d.logs(), API_KEY, 'the key is never logged')
  t.notMatch(A.logs() + B.logs(), Buffer.from(API_KEY).toString('base64'), 'nor its base64')
})

t.test('a member removed through A: B sends its users elsewhere', async (t) => {
  const onM1 = (await A.daemon.store.query<{ address: string }>("select address from pool_pins where member_id = 'm1'")).rows.map((r) => r.address)
  t.ok(onM1.length > 0, 'm1 holds pins')
  t.equal((await A.api.del('/v1/pools/pool1/members/m1')).status, 204)
  for (const address of onM1) await until(`B moves ${address}`, async () => route((await lookup(B.api, 'transport', address)).value) === 'm2')
})


t.test("maintenance and back through A before B reads its registry: B drops its pins to the member on hearing the change", async (t) => {
  t.equal((await A.api.post('/v1/pools/pool1/members', { id: 'm3', address: '127.0.0.3' })).status, 201)
  await until('B has m3', () => B.daemon.registry.member('m3') !== undefined)
  const user = 'u4@example.org'
  const held = route((await lookup(B.api, 'transport', user)).value)
  t.equal(held, 'm2', 'B holds the user on m2 (m1 is gone)')

  // B reads no registry change until the end: both state changes reach it only as pins changes.
  const waiting: ChangeEvent[] = []
  const apply = B.daemon.applyChange.bind(B.daemon)
  B.daemon.applyChange = (event) => (event.kind === 'registry' ? (waiting.push(event), Promise.resolve()) : apply(event))
  t.teardown(() => {
    B.daemon.applyChange = apply
  })
  const from = linesOfB()
  t.equal((await A.api.patch('/v1/pools/pool1/members/m2', { adminState: 'maintenance' })).status, 200)
  t.equal(route((await lookup(A.api, 'transport', user)).value), 'm3', 'A pins the user to m3 meanwhile')
  t.equal((await A.api.patch('/v1/pools/pool1/members/m2', { adminState: 'active' })).status, 200)
  await until("B's ledger drops m2's pins", () => droppedOnB(from).some((e) => e.pool === 'pool1' && e.member === 'm2' && e.address === undefined && e.dropped > 0))
  t.equal(B.daemon.registry.member('m2')?.adminState ?? 'active', 'active', "B's registry never saw the maintenance")
  t.equal(route((await lookup(B.api, 'transport', user)).value), 'm3', "B answers A's pin, not its own old one")
  t.ok(waiting.length >= 2, 'the registry changes were held back')

  B.daemon.applyChange = apply
  for (const event of waiting) await apply(event)
  t.equal(route((await lookup(B.api, 'transport', user)).value), 'm3')
})
