// The routing decision for mailboxes on a pool: every asker goes to the member the pin names,
// local/<member> finds every mailbox of the pool, a user without a pin is claimed first and
// fails temporarily when no pin can be had, director mode hands logins to a 2.3 director.

import t from 'tap'
import { decide, needsPins, settlePins, type Asker, type Decision } from '../../src/resolve/destination.js'
import { answerFor } from '../../src/resolve/maps.js'
import { Registry, type BackendInfo, type PoolInfo, type PoolMember, type ProbedService } from '../../src/resolve/registry.js'
import type { Resolution } from '../../src/resolve/resolver.js'
import { Brakes } from '../../src/auth/brakes.js'
import { silentLogger } from '../../src/log.js'
import { LoginRouter } from '../../src/login/router.js'
import { lookupStack } from '../fakes/lookup-stack.js'
import { MemoryDirectory } from '../fakes/memory-directory.js'
import { MemoryPins } from '../fakes/memory-pins.js'

const PORTS = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
const member = (id: string, address: string, over: Partial<PoolMember> = {}): PoolMember => ({ kind: 'member', id, pool: 'pool1', address, route: 'lmtp', ports: PORTS, weight: 1, ...over })
const M1 = member('m1', '10.0.1.1')
const M2 = member('m2', '10.0.1.2', { ports: { ...PORTS, imap: 1143 } })
const POOL: PoolInfo = { kind: 'pool', id: 'pool1', mailHosts: ['pool1.example.org'], route: 'lmtp', ports: PORTS, members: [M1, M2], pinForMs: 60_000 }
const HOST: BackendInfo = { id: 'mx1', mailHosts: [], address: '10.0.0.11', route: 'lmtp', ports: PORTS }
const ALICE = { address: 'alice@example.org', mailHost: 'POOL1.example.org' }
const BOB = { address: 'bob@example.org', mailHost: 'mx1' }

function registry(pins: MemoryPins, o: { pool?: PoolInfo; down?: Record<string, ProbedService[]>; moving?: string[] } = {}): Registry {
  const health = new Map(Object.entries(o.down ?? {}).map(([id, services]) => [id, new Map(services.map((s) => [s, 'down' as const]))]))
  return new Registry([{ name: 'example.org' }], [HOST, o.pool ?? POOL], o.moving ?? [], health, pins)
}

const TRANSPORT: Asker = { service: 'transport', unknownMailHost: 'smtp:[{mailHost}]:25' }
const route = (d: Decision) => (d.kind === 'destination' ? `${d.backend?.id} ${d.address}:${d.port} ${d.route}` : d.kind === 'unavailable' ? d.reason : d.kind)

t.test('a pinned user goes to the pinned member for every asker', async (t) => {
  const r = registry(new MemoryPins().pin(ALICE.address, 'm2'))
  const m2 = 'lmtp:inet:[10.0.1.2]:24'
  t.equal(route(decide(ALICE, TRANSPORT, r)), `m2 10.0.1.2:24 ${m2}`)
  t.equal(route(decide(ALICE, { service: 'imap' }, r)), `m2 10.0.1.2:1143 ${m2}`, "the member's own port")
  t.equal(route(decide(ALICE, { service: 'pop3' }, r)), `m2 10.0.1.2:110 ${m2}`)
  t.equal(route(decide(ALICE, { service: 'lmtp' }, r)), `m2 10.0.1.2:24 ${m2}`)
  t.equal(route(decide(ALICE, { service: 'nginx-smtp' }, r)), `m2 10.0.1.2:25 ${m2}`)
  t.equal(route(decide(ALICE, { service: 'local', backend: 'm1' }, r)), `m2 10.0.1.2:24 ${m2}`, 'local/<other member>: found, handed to the pinned member')
  t.equal(route(decide(ALICE, { service: 'local', backend: 'pool1' }, r)), `m2 10.0.1.2:24 ${m2}`, 'local/<pool> too')
  t.equal(route(decide(ALICE, { service: 'local', backend: 'mx1' }, r)), 'elsewhere', 'a host of its own is not the pool')
  t.equal(route(decide(BOB, { service: 'local', backend: 'm1' }, r)), 'elsewhere', "a host's mailbox is no member's")
  t.equal(route(decide(BOB, { service: 'imap' }, r)), 'mx1 10.0.0.11:143 lmtp:inet:[10.0.0.11]:24', 'hosts as before')
})

t.test('without a pin: claimed first; unavailable when none can be had', async (t) => {
  const pins = new MemoryPins()
  const r = registry(pins)
  t.ok(needsPins([ALICE], r))
  t.notOk(needsPins([BOB], r), 'hosts need no pin')
  t.equal(route(decide(ALICE, { service: 'imap' }, r)), 'unpinned', 'decide() never guesses')
  await settlePins([ALICE, BOB], r, 1000)
  t.same(pins.claims, [ALICE.address], 'one claim, for the pooled mailbox only')
  t.equal(route(decide(ALICE, { service: 'imap' }, r)), 'm1 10.0.1.1:143 lmtp:inet:[10.0.1.1]:24')
  t.notOk(needsPins([ALICE], r))
  await settlePins([ALICE], r, 1000)
  t.equal(pins.claims.length, 1, 'a held pin is not claimed again')

  const failing = new MemoryPins()
  failing.mode = 'fail'
  const rf = registry(failing)
  await settlePins([ALICE], rf, 1000)
  t.equal(route(decide(ALICE, TRANSPORT, rf)), 'unpinned', 'the store did not answer: temporary, never a member by hash')
})

t.test('members down, in maintenance or draining', async (t) => {
  const pins = new MemoryPins().pin(ALICE.address, 'm1')
  t.equal(route(decide(ALICE, { service: 'imap' }, registry(pins, { down: { m1: ['pop3'] } }))), 'unpinned', 'any probed service down unpins: one member for every service')
  const drained: PoolInfo = { ...POOL, members: [{ ...M1, adminState: 'drain' }, M2] }
  t.equal(route(decide(ALICE, { service: 'imap' }, registry(pins, { pool: drained }))), 'm1 10.0.1.1:143 lmtp:inet:[10.0.1.1]:24', 'drain keeps existing pins')
  const none = registry(new MemoryPins(), { down: { m1: ['imap'], m2: ['delivery'] } })
  t.equal(route(decide(ALICE, { service: 'imap' }, none)), 'down', 'no member up: down, not unpinned')
  await settlePins([ALICE], none, 1000)
  t.equal(route(decide(ALICE, TRANSPORT, none)), 'down', 'mail waits')
  const maintenance = registry(pins, { pool: { ...POOL, adminState: 'maintenance' } })
  t.equal(route(decide(ALICE, { service: 'imap' }, maintenance)), 'maintenance')
  t.equal(route(decide(ALICE, { service: 'imap' }, registry(pins, { moving: [ALICE.address] }))), 'moving')
  t.equal(route(decide(ALICE, TRANSPORT, registry(pins, { moving: [ALICE.address] }))), 'moving')
})

t.test('the maps: transport and local/<member> fail temporarily without a member, never "not found"', async (t) => {
  const pins = new MemoryPins()
  pins.mode = 'fail'
  const r = registry(pins)
  const found: Resolution = { kind: 'found', via: 'account', mailboxes: [{ ...ALICE, id: 'alice', status: 'active', sendAs: [] }], external: [], rewrite: [] } as unknown as Resolution
  t.match(answerFor('transport', found, r, { unknownMailHost: 'x' }), { outcome: 'temp', reason: /pool member unavailable \(unpinned\)/ })
  t.match(answerFor('local/m1', found, r, { unknownMailHost: 'x' }), { outcome: 'temp' })
  pins.pin(ALICE.address, 'm2')
  t.match(answerFor('transport', found, r, { unknownMailHost: 'x' }), { outcome: 'found', value: 'lmtp:inet:[10.0.1.2]:24' })
  t.match(answerFor('recipient', found, r, { unknownMailHost: 'x' }), { outcome: 'found', value: 'POOL1.example.org' }, 'recipient names the mailHost, as for hosts')
})

t.test('director mode: logins name the tag and the director, mail goes to the director', async (t) => {
  const pins = new MemoryPins()
  const r = registry(pins, { pool: { ...POOL, director: { tag: 'pool1', address: '10.0.2.1' } } })
  const login = decide(ALICE, { service: 'imap' }, r)
  t.match(login, { kind: 'destination', address: '10.0.2.1', port: 143, directorTag: 'pool1' })
  t.equal(route(decide(ALICE, TRANSPORT, r)), 'pool1 10.0.2.1:24 lmtp:inet:[10.0.2.1]:24')
  t.notOk(needsPins([ALICE], r), "the director keeps its own users: mailhostd's pins are not used")
  t.equal(route(decide(ALICE, { service: 'imap' }, registry(pins, { pool: { ...POOL, adminState: 'maintenance', director: { tag: 'pool1', address: '10.0.2.1' } } }))), 'maintenance')
})

t.test('the registry: servers, members by id, usability of a pool', async (t) => {
  const r = registry(new MemoryPins(), { down: { m1: ['imap'] } })
  t.same(r.servers.map((s) => s.id), ['mx1', 'm1', 'm2'])
  t.equal(r.member('m2')?.address, '10.0.1.2')
  t.ok(r.hasServerOrBackend('m1') && r.hasServerOrBackend('pool1') && !r.hasServerOrBackend('m9'))
  t.same(r.eligibleMembers(POOL).map((m) => m.id), ['m2'])
  t.ok(r.isUp(POOL), 'one member up keeps the pool up')
  t.notOk(registry(new MemoryPins(), { down: { m1: ['imap'], m2: ['imap'] } }).isUp(POOL, 'imap'))
  const idle: PoolInfo = { ...POOL, members: [{ ...M1, weight: 0 }, { ...M2, adminState: 'drain' }] }
  t.same(registry(new MemoryPins(), { pool: idle }).eligibleMembers(idle), [], 'weight 0 and drain take no new users')
})

t.test('login answers: the member for a pooled user, the director tag in director mode', async (t) => {
  const dir = new MemoryDirectory().account('alice', ['alice@example.org'], 'pool1').withPasswords({ alice: 'wonderland' })
  const routerWith = (pool: PoolInfo) => {
    const r = registry(new MemoryPins(), { pool })
    const { lookups } = lookupStack(dir, { registry: r })
    const brakes = new Brakes({ windowMs: 60_000, ip: { tarpitAfter: 10, refuseAfter: 20 }, account: { tarpitAfter: 5, refuseAfter: 9 }, tarpitMs: 1000, maxTarpitMs: 4000 })
    return new LoginRouter({ resolver: lookups, registry: () => r, directory: dir, brakes, config: { proxyField: 'proxy', lookupMode: false }, deadlineMs: 500, logger: silentLogger })
  }
  const login = { user: 'alice@example.org', password: 'wonderland', service: 'imap', remoteIp: '192.0.2.1' }
  t.match(await routerWith(POOL).verify(login, 'test'), { result: 'ok', host: '10.0.1.1', port: 143, fields: { proxy: 'y', host: '10.0.1.1', port: '143' } }, 'claimed, then routed')
  const director = await routerWith({ ...POOL, director: { tag: 'pool1', address: '10.0.2.1' } }).verify(login, 'test')
  t.match(director, { result: 'ok', host: '10.0.2.1', port: 143 }, 'nginx would go to the director')
  t.same(director.result === 'ok' && director.fields, { proxy: 'y', director_tag: 'pool1' }, 'Dovecot: the tag, no host, no port')
})
