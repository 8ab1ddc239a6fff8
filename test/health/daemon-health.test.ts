// The health checks wired into the daemon (in-process, so this counts for coverage), probing real
// peers of each peer set: mx1 is a Dovecot backend (2.3 or 2.4) (IMAP, POP3, LMTP all up); mx2 is an smtp-sink speaking LMTP
// with nothing on its IMAP and POP3 ports. Its down services are recorded in the store, shown by
// the admin API, refuse bob's logins fast and keep placement off mx2, while its transport route
// stays. Maintenance stops the probes; a removed backend's records go with it.

import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { healthRecords, recordHealth } from '../../src/health/health-repo.js'
import { startAdminDaemon, lookup } from '../admin/daemon.js'
import { DEMO_MAIL_USERS, startDovecot } from '../harness/dovecot.js'
import { freePorts } from '../harness/ports.js'
import { startSmtpSink } from '../harness/smtp-sink.js'
import { eachPeerSet } from '../harness/peer-set.js'

const SECRET = 'health-test-login-secret'

eachPeerSet(t, async (t, set) => {
  const mx1 = await startDovecot({ set, role: 'backend', name: 'mx1', users: DEMO_MAIL_USERS.mx1 })
  t.teardown(() => mx1.stop())
  const sink = await startSmtpSink({ set, lmtp: true })
  t.teardown(() => sink.stop())
  const [closedImap, closedPop3, closedLmtp] = (await freePorts(3)) as [number, number, number]

  const d = await startAdminDaemon(t, {
    backends: [
      { id: 'mx1', mailHosts: ['mx1.example.org'], address: '127.0.0.1', route: 'lmtp', ports: { lmtp: mx1.ports.lmtp, imap: mx1.ports.imap, pop3: mx1.ports.pop3 } },
      { id: 'mx2', mailHosts: ['mx2.example.org'], address: '127.0.0.1', route: 'lmtp', ports: { lmtp: sink.port, imap: closedImap, pop3: closedPop3 } },
    ],
    health: { interval: '200ms', timeout: '2s', rise: 1, fall: 2 },
    login: { secret: SECRET },
  })
  const { api, daemon } = d

  const waitFor = async <T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> => {
    const deadline = Date.now() + ms
    for (;;) {
      const v = await get()
      if (ok(v)) return v
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`)
      await sleep(50)
    }
  }
  type Health = Record<string, { state: string; detail: string | null }>
  const health = async (id: string) => ((await api.get(`/v1/backends/${id}`)).body as { health: Health }).health
  const verify = async (user: string, password: string, service: string) => {
    const r = await fetch(`http://127.0.0.1:${d.port}/v1/dovecot/passdb/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-auth-key': SECRET },
      body: JSON.stringify({ user, password, service, remoteIp: '192.0.2.9' }),
    })
    return (await r.json()) as { result: string; reason?: string }
  }

  t.test('down services are recorded, shown, refuse logins and placement; routes stay', async (t) => {
    const settled = (h: Record<string, { state: string }>) => Object.keys(h).length === 3
    const h2 = await waitFor('mx2 to be settled', () => health('mx2'), settled)
    const h1 = await waitFor('mx1 to be settled', () => health('mx1'), settled)
    t.match(h1, { delivery: { state: 'up', detail: null }, imap: { state: 'up', detail: null }, pop3: { state: 'up', detail: null } }, 'mx1: all up')
    t.match(
      h2,
      {
        delivery: { state: 'up', detail: null },
        imap: { state: 'down', detail: 'connection failed: ECONNREFUSED' },
        pop3: { state: 'down', detail: 'connection failed: ECONNREFUSED' },
      },
      'mx2: delivery up (the sink), imap and pop3 down',
    )
    t.match(h2.imap, { since: /^\d{4}-\d\d-\d\dT/, instance: /^.+:\d+$/ }, 'since when, and which instance recorded it')

    const list = ((await api.get('/v1/backends')).body as { backends: { id: string; health: Health }[] }).backends
    t.same(Object.fromEntries(list.map((b) => [b.id, b.health])), { mx1: h1, mx2: h2 }, 'the list shows the same')
    t.same(
      (await healthRecords(daemon.store)).map((r) => `${r.backend} ${r.service} ${r.state}`),
      ['mx1 delivery up', 'mx1 imap up', 'mx1 pop3 up', 'mx2 delivery up', 'mx2 imap down', 'mx2 pop3 down'],
    )

    t.match(
      daemon.healthChecks!.states().filter((s) => s.backend === 'mx2'),
      [
        { service: 'delivery', state: 'up', up: true },
        { service: 'imap', state: 'down', up: false, lastReason: 'connection failed: ECONNREFUSED' },
        { service: 'pop3', state: 'down', up: false },
      ],
      "this instance's own view, for metrics",
    )
    t.notOk(daemon.registry.isUp(daemon.registry.backends.find((b) => b.id === 'mx2')!, 'imap'), 'the registry was reloaded')

    t.same(await verify('bob@example.org', 'builder', 'imap'), { result: 'tempfail', reason: 'backend unavailable (down)' }, 'bob (mx2): IMAP login refused, temporarily')
    t.match(await verify('bob@example.org', 'builder', 'pop3'), { result: 'tempfail', reason: 'backend unavailable (down)' }, 'and POP3')
    t.match(await verify('alice@example.org', 'wonderland', 'imap'), { result: 'ok', fields: { host: '127.0.0.1', port: String(mx1.ports.imap) } }, 'alice (mx1) logs in')

    const placement = (await api.get('/v1/placement?domain=example.org')).body as unknown
    t.match(placement, { ok: true, backend: 'mx1', excluded: [{ id: 'mx2', reason: 'down' }] }, 'placement skips mx2')
    t.match(await lookup(api, 'transport', 'bob@example.org'), { outcome: 'found', value: `lmtp:inet:[127.0.0.1]:${sink.port}` }, "mx2's route stays: Postfix queues")

    const warn = d.logs().split('\n').find((l) => l.includes('"msg":"backend service down"') && l.includes('"service":"imap"'))
    t.match(warn, /"level":"warn".*"backend":"mx2".*"reason":"connection failed: ECONNREFUSED"/, 'logged once, at warn, with the reason')
  })

  t.test('maintenance: not probed; a removed backend takes its records along', async (t) => {
    t.equal((await api.patch('/v1/backends/mx2', { adminState: 'maintenance' })).status, 200)
    await waitFor('mx2 to leave the checks', async () => daemon.healthChecks!.states(), (s) => s.every((x) => x.backend !== 'mx2'))
    t.match(await verify('bob@example.org', 'builder', 'imap'), { result: 'tempfail', reason: 'backend unavailable (maintenance)' })
    t.equal((await api.patch('/v1/backends/mx2', { adminState: 'active' })).status, 200)

    const created = await api.post('/v1/backends', { id: 'mx3', address: '127.0.0.1', ports: { lmtp: closedLmtp, imap: mx1.ports.imap, pop3: mx1.ports.pop3 } })
    t.equal(created.status, 201, JSON.stringify(created.body))
    await waitFor('mx3 delivery down', () => health('mx3'), (h) => h.delivery?.state === 'down')
    t.equal((await api.del('/v1/backends/mx3')).status, 204)
    t.same(
      (await healthRecords(daemon.store)).filter((r) => r.backend === 'mx3'),
      [],
      "its records are gone: a new backend of that name starts unprobed",
    )
    // Added again at once (before a round noticed it had gone): the checks write their verdict again.
    t.equal((await api.post('/v1/backends', { id: 'mx3', address: '127.0.0.1', ports: { lmtp: closedLmtp, imap: mx1.ports.imap, pop3: mx1.ports.pop3 } })).status, 201)
    await waitFor('mx3 delivery down again', () => health('mx3'), (h) => h.delivery?.state === 'down')
    t.pass('recorded again')
    t.equal((await api.del('/v1/backends/mx3')).status, 204)
  })

  t.test('close() stops the checks', async (t) => {
    const checks = daemon.healthChecks!
    await daemon.close(1000)
    const before = checks.states().map((s) => s.consecutive)
    await sleep(600)
    t.same(
      checks.states().map((s) => s.consecutive),
      before,
      'no probe after close',
    )
  })
})

t.test('checks off (health.interval 0): recorded states are ignored, every backend counts as up', async (t) => {
  const off = await startAdminDaemon(t, { health: { interval: 0 }, login: { secret: SECRET } })
  t.equal(off.daemon.healthChecks, undefined, 'no checker')
  await recordHealth(off.daemon.store, { backend: 'mx2', service: 'imap', state: 'down', detail: 'left from when the checks ran', instance: 'old:1' })
  await off.daemon.applyChange({ kind: 'health' })
  await off.daemon.reloadRegistry()
  const mx2 = off.daemon.registry.backends.find((b) => b.id === 'mx2')!
  t.ok(off.daemon.registry.isUp(mx2, 'imap'), 'an old "down" does not refuse logins')
  t.match((await off.api.get('/v1/backends/mx2')).body, { health: { imap: { state: 'down' } } }, 'the admin API still shows the record')
})
