// The health checker in-process with a programmable prober (our own Prober interface) and the
// real store code on an in-memory PGlite: rise/fall hysteresis, the state each service starts
// from, maintenance not probed, backends added and removed between rounds, what is recorded and
// announced (once per change), store and bus failures retried, and a clean stop.

import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Change } from '../../src/cluster/changes.js'
import { HealthChecker, serviceTarget, type HealthCheckerOptions } from '../../src/health/checker.js'
import { forgetHealth, healthRecords, loadHealth, recordHealth } from '../../src/health/health-repo.js'
import type { ProbeResult, ProbeTarget, Prober } from '../../src/health/probe.js'
import { createLogger } from '../../src/log.js'
import { Registry, type HostInfo, type ProbedService } from '../../src/resolve/registry.js'
import { migrate } from '../../src/store/migrate.js'
import { IN_MEMORY, openPglite } from '../../src/store/pglite.js'
import type { Store } from '../../src/store/store.js'

const ports = { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }
const backend = (id: string, address: string, over: Partial<HostInfo> = {}): HostInfo => ({ id, mailHosts: [], address, route: 'lmtp', ports, ...over })
const MX1 = backend('mx1', '10.0.0.11')
const MX2 = backend('mx2', '10.0.0.12')

/** Answers each probe from `results` by "host:port" (default: ok), and records every call. */
class FakeProber implements Prober {
  readonly calls: ProbeTarget[] = []
  readonly results = new Map<string, ProbeResult | (() => Promise<ProbeResult>)>()

  set(b: HostInfo, service: ProbedService, r: ProbeResult | (() => Promise<ProbeResult>)): void {
    const target = serviceTarget(b, service)
    this.results.set(`${target.host}:${target.port}`, r)
  }

  async probe(target: ProbeTarget): Promise<ProbeResult> {
    this.calls.push(target)
    const r = this.results.get(`${target.host}:${target.port}`) ?? { ok: true }
    return typeof r === 'function' ? r() : r
  }

  probed(id: string, b: HostInfo[]): number {
    const address = b.find((x) => x.id === id)!.address
    return this.calls.filter((c) => c.host === address).length
  }
}

const down = (reason = 'connection failed: ECONNREFUSED'): ProbeResult => ({ ok: false, reason })

interface Rig {
  store: Store
  checker: HealthChecker
  prober: FakeProber
  published: Change[]
  applied: Change[]
  backends: HostInfo[]
  registry: () => Registry
  /** Re-reads the health states into the registry, as a change notification makes the daemon do. */
  reload: () => Promise<void>
  logs: () => Record<string, unknown>[]
}

// One store for the file (opening PGlite takes seconds); each test starts with no records.
const store = await openPglite(IN_MEMORY)
await migrate(store, createLogger('silent'))
t.teardown(() => store.close())

async function rig(t: Test, o: Partial<HealthCheckerOptions> & { backends?: HostInfo[]; keepRecords?: boolean } = {}): Promise<Rig> {
  if (!o.keepRecords) await store.query('delete from backend_health')
  const backends = o.backends ?? [MX1, MX2]
  // Rebuilt at every call: tests change `backends` between rounds, as admin writes would.
  let health = await loadHealth(store)
  const registry = () => new Registry([], backends, [], health)
  const prober = new FakeProber()
  const published: Change[] = []
  const applied: Change[] = []
  let text = ''
  const checker = new HealthChecker({
    intervalMs: 60_000,
    timeoutMs: 1000,
    rise: 2,
    fall: 3,
    services: ['delivery', 'imap', 'pop3'],
    registry,
    store,
    publish: async (c) => void published.push(c),
    apply: async (c) => {
      applied.push(c)
      health = await loadHealth(store)
    },
    logger: createLogger('debug', { write: (s: string) => void (text += s) }),
    prober,
    instance: 'test:1',
    ...o,
  })
  t.teardown(() => checker.stop())
  return {
    store,
    checker,
    prober,
    published,
    applied,
    backends,
    registry,
    reload: async () => void (health = await loadHealth(store)),
    logs: () =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

const stateOf = (r: Rig, backend: string, service: ProbedService) => r.checker.states().find((s) => s.backend === backend && s.service === service)
const rounds = async (r: Rig, n: number) => {
  for (let i = 0; i < n; i++) await r.checker.check()
}

t.test('fall and rise: a service goes down after `fall` failures in a row and up after `rise` successes', async (t) => {
  const r = await rig(t)
  t.same(r.checker.states(), [], 'nothing known before the first round')

  await r.checker.check()
  t.match(stateOf(r, 'mx1', 'imap'), { state: 'unknown', up: true, consecutive: 1, lastReason: null }, 'unknown after one good probe: counts as up')
  t.same(await healthRecords(r.store), [], 'nothing recorded before a verdict')
  await r.checker.check()
  t.match(stateOf(r, 'mx1', 'imap'), { state: 'up', up: true, consecutive: 2 }, 'up after rise = 2')
  const first = await healthRecords(r.store)
  t.equal(first.length, 6, 'the first verdict of every service is recorded')
  t.ok(first.every((h) => h.state === 'up' && h.detail === null && h.instance === 'test:1'))
  t.same(r.published, [{ kind: 'health' }], 'announced once for the whole round')
  t.same(r.applied, [{ kind: 'health' }], 'and applied here')

  r.prober.set(MX2, 'imap', down())
  await rounds(r, 2)
  t.match(stateOf(r, 'mx2', 'imap'), { state: 'up', up: true, consecutive: 2, lastReason: 'connection failed: ECONNREFUSED' }, 'two failures: still up')
  t.ok(r.registry().isUp(MX2, 'imap'))
  await r.checker.check()
  t.match(stateOf(r, 'mx2', 'imap'), { state: 'down', up: false, consecutive: 3 }, 'down after fall = 3')
  t.notOk(r.registry().isUp(MX2, 'imap'), 'the registry has reloaded: logins to mx2 imap fail fast')
  t.ok(r.registry().isUp(MX2, 'pop3'), 'other services of mx2 stay up')
  t.notOk(r.registry().isUp(MX2), 'placement: mx2 is not up as a whole')
  t.match((await healthRecords(r.store)).find((h) => h.backend === 'mx2' && h.service === 'imap'), { state: 'down', detail: 'connection failed: ECONNREFUSED' })
  t.equal(r.published.length, 2, 'announced once more')
  const warn = r.logs().find((l) => l.msg === 'backend service down')
  t.match(warn, { level: 'warn', backend: 'mx2', service: 'imap', reason: 'connection failed: ECONNREFUSED', probes: 3 })

  await rounds(r, 3)
  t.equal(r.published.length, 2, 'staying down announces nothing')
  const since = (await healthRecords(r.store)).find((h) => h.backend === 'mx2' && h.service === 'imap')!.since

  r.prober.set(MX2, 'imap', { ok: true })
  await r.checker.check()
  t.match(stateOf(r, 'mx2', 'imap'), { state: 'down', consecutive: 1, lastReason: null }, 'one success: still down')
  r.prober.set(MX2, 'imap', down('no greeting within 1000 ms'))
  await r.checker.check()
  t.match(stateOf(r, 'mx2', 'imap'), { state: 'down', consecutive: 1 }, 'a failure in between starts rise over')
  r.prober.set(MX2, 'imap', { ok: true })
  await rounds(r, 2)
  t.match(stateOf(r, 'mx2', 'imap'), { state: 'up' }, 'up after rise = 2 in a row')
  t.ok(r.registry().isUp(MX2, 'imap'))
  const upAgain = (await healthRecords(r.store)).find((h) => h.backend === 'mx2' && h.service === 'imap')!
  t.match(upAgain, { state: 'up', detail: null })
  t.not(upAgain.since, since, 'since moved with the change')
  t.equal(r.published.length, 3)
  t.match(r.logs().filter((l) => l.msg === 'backend service up').at(-1), { level: 'info', backend: 'mx2', service: 'imap' })
  t.equal(r.logs().filter((l) => l.msg === 'backend service down').length, 1, 'one warning per change, not per failed probe')
})

t.test('a service starts from the state the store holds', async (t) => {
  await store.query('delete from backend_health')
  await recordHealth(store, { backend: 'mx2', service: 'delivery', state: 'down', detail: 'connection failed: ECONNREFUSED', instance: 'other:2' })
  await recordHealth(store, { backend: 'mx1', service: 'delivery', state: 'up', detail: null, instance: 'other:2' })
  const r = await rig(t, { keepRecords: true, services: ['delivery'] })

  await r.checker.check()
  t.match(stateOf(r, 'mx2', 'delivery'), { state: 'down', up: false, consecutive: 1 }, 'down, as another instance recorded it')
  t.match(stateOf(r, 'mx1', 'delivery'), { state: 'up' }, 'up, as recorded')
  t.same(r.published, [], 'agreeing with the store writes and announces nothing')
  t.same(r.applied, [])
  await r.checker.check()
  t.match(stateOf(r, 'mx2', 'delivery'), { state: 'up' }, 'rise good probes bring it up')
  t.match(await healthRecords(r.store), [
    { backend: 'mx1', state: 'up', instance: 'other:2' },
    { backend: 'mx2', state: 'up', instance: 'test:1', detail: null },
  ])
  t.same(r.published, [{ kind: 'health' }])
})

t.test('the store holds the verdict already (another instance wrote it first): reload here, announce nothing', async (t) => {
  const r = await rig(t, { services: ['imap'], backends: [MX1] })
  r.prober.set(MX1, 'imap', down())
  await rounds(r, 2)
  // Another instance settles first and tells everyone; this instance's registry missed it.
  await recordHealth(r.store, { backend: 'mx1', service: 'imap', state: 'down', detail: 'refused', instance: 'other:2' })
  await r.checker.check()
  t.match(stateOf(r, 'mx1', 'imap'), { state: 'down' })
  t.same(r.published, [], 'the store did not change: nobody else needs telling')
  t.same(r.applied, [{ kind: 'health' }], 'this instance reloads, so its own verdict applies here')
  t.notOk(r.registry().isUp(MX1, 'imap'))
  t.match(await healthRecords(r.store), [{ state: 'down', instance: 'test:1', detail: 'connection failed: ECONNREFUSED' }], 'last writer wins')
})

t.test('a verdict the store lost (its backend removed and added again) is written again', async (t) => {
  const r = await rig(t, { services: ['imap'], backends: [MX1], rise: 1 })
  await r.checker.check()
  t.match(await healthRecords(r.store), [{ state: 'up' }])
  // As a backend removal does: rows dropped, then every instance reloads its registry.
  await forgetHealth(r.store, 'mx1')
  await r.reload()
  await r.checker.check()
  t.match(await healthRecords(r.store), [{ backend: 'mx1', service: 'imap', state: 'up' }], 'written again')
  t.equal(r.published.length, 2, 'and announced')
})

t.test('backends in maintenance are not probed; added and removed backends are followed', async (t) => {
  const backends = [MX1, { ...MX2, adminState: 'maintenance' as const }]
  const r = await rig(t, { backends })
  await r.checker.check()
  t.equal(r.prober.probed('mx1', backends), 3, 'mx1: delivery, imap and pop3')
  t.equal(r.prober.probed('mx2', backends), 0, 'mx2 in maintenance: not probed')
  t.same([...new Set(r.checker.states().map((s) => s.backend))], ['mx1'])
  t.notOk(r.registry().isUp(backends[1]!), 'maintenance counts as down without probing')

  // mx2 back to active, mx3 added, mx1 removed (the registry is re-read every round).
  const mx3 = backend('mx3', '10.0.0.13', { route: 'smtp', ports: { ...ports, smtp: 2525 } })
  backends.splice(0, 2, { ...MX2, adminState: 'active' }, mx3)
  r.prober.calls.length = 0
  await r.checker.check()
  t.same(
    r.prober.calls.map((c) => `${c.host}:${c.port} ${c.service}`),
    ['10.0.0.12:24 delivery', '10.0.0.12:143 imap', '10.0.0.12:110 pop3', '10.0.0.13:2525 delivery', '10.0.0.13:143 imap', '10.0.0.13:110 pop3'],
    "mx2 and mx3 probed (mx3's smtp route: delivery is its SMTP port), mx1 no longer",
  )
  t.same([...new Set(r.checker.states().map((s) => s.backend))], ['mx2', 'mx3'], 'mx1 forgotten')
})

t.test('a backend moved to another address counts afresh', async (t) => {
  const backends = [MX1]
  const r = await rig(t, { backends, services: ['pop3'] })
  r.prober.set(MX1, 'pop3', down())
  await rounds(r, 2)
  t.match(stateOf(r, 'mx1', 'pop3'), { consecutive: 2 })
  backends[0] = { ...MX1, address: '10.0.0.21' }
  await r.checker.check()
  t.match(stateOf(r, 'mx1', 'pop3'), { state: 'unknown', consecutive: 1, lastReason: null }, 'the new address answers; the old failures do not count')
})

t.test('a failed store write is retried next round; so is a failed announcement', async (t) => {
  const r = await rig(t, { services: ['imap'], backends: [MX1] })
  let storeDown = true
  let busDown = true
  let applyFails = true
  const published: Change[] = []
  let text = ''
  const checker = new HealthChecker({
    intervalMs: 60_000,
    timeoutMs: 1000,
    rise: 1,
    fall: 1,
    services: ['imap'],
    registry: r.registry,
    // The checker only writes: every write fails while storeDown.
    store: { query: (sql, params) => (storeDown ? Promise.reject(new Error('store unreachable')) : r.store.query(sql, params)) },
    publish: async (c) => {
      if (busDown) throw new Error('bus closed')
      published.push(c)
    },
    apply: async () => {
      if (applyFails) throw new Error('reload failed')
    },
    logger: createLogger('debug', { write: (s: string) => void (text += s) }),
    prober: r.prober,
  })
  t.teardown(() => checker.stop())

  await checker.check()
  t.match(checker.states(), [{ state: 'up' }], 'settled in memory')
  t.same(await healthRecords(r.store), [], 'but the write failed')
  t.match(text, /"err":"store unreachable".*recording backend health failed; retrying next round/)

  storeDown = false
  await checker.check()
  t.match(await healthRecords(r.store), [{ state: 'up' }], 'written on the next round')
  t.same(published, [], 'the bus failed')
  t.match(text, /announcing a backend health change failed; retrying next round/)
  t.match(text, /reloading backend health failed/)

  busDown = false
  applyFails = false
  await checker.check()
  t.same(published, [{ kind: 'health' }], 'announced on the round after')
  await checker.check()
  t.same(published, [{ kind: 'health' }], 'once')
})

t.test('a prober that throws counts as a failed probe', async (t) => {
  const r = await rig(t, { services: ['delivery'], backends: [MX1], fall: 1 })
  r.prober.set(MX1, 'delivery', () => Promise.reject(new Error('bug')))
  await r.checker.check()
  t.match(stateOf(r, 'mx1', 'delivery'), { state: 'down', lastReason: 'probe error: bug' })
})

t.test('timer rounds: probes every interval until stop(); stop cancels in-flight probes and leaves nothing running', async (t) => {
  const resources = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const signals: AbortSignal[] = []
  let calls = 0
  let hang = false
  const prober: Prober = {
    probe: (_target, signal) => {
      calls++
      if (!hang) return Promise.resolve({ ok: true })
      signals.push(signal!)
      // A probe that never answers by itself: only the abort settles it.
      return new Promise((resolve) => signal!.addEventListener('abort', () => resolve({ ok: false, reason: 'probe cancelled' })))
    },
  }
  let registryFails = true
  const r = await rig(t, { intervalMs: 20, services: ['imap'], backends: [MX1], prober })
  const checker = new HealthChecker({
    intervalMs: 20,
    timeoutMs: 1000,
    rise: 1,
    fall: 1,
    services: ['imap'],
    registry: () => {
      // A round that breaks in an unexpected place is logged and the next one still runs.
      if (registryFails) {
        registryFails = false
        throw new Error('registry broken')
      }
      return r.registry()
    },
    store: r.store,
    publish: async () => undefined,
    apply: async () => undefined,
    logger: createLogger('silent'),
    prober,
  })
  const before = resources()
  checker.start()
  checker.start()
  const deadline = Date.now() + 10_000
  while (calls < 3 && Date.now() < deadline) await sleep(10)
  t.ok(calls >= 3, `probed round after round (${calls} probes), also after a broken round`)
  hang = true
  while (signals.length === 0 && Date.now() < deadline) await sleep(10)
  t.equal(signals.length, 1, 'a probe is in flight')
  await checker.stop()
  t.ok(signals[0]!.aborted, 'stop() cancelled it')
  t.match(checker.states(), [{ state: 'up' }], "the cancelled probe's failure was not counted")
  const after = calls
  await sleep(100)
  t.equal(calls, after, 'no round after stop()')
  t.equal(resources(), before, 'no timer left')
  checker.start()
  await sleep(50)
  t.equal(calls, after, 'a stopped checker does not start again')
})
