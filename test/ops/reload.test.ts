// Daemon.reload (what SIGHUP does after reading the file): what can change while running does,
// at once, without dropping connections or valid cached answers; listeners move only when their
// address changes; keys that need a restart keep their running values; a bad file changes nothing.

import { createServer } from 'node:net'
import t from 'tap'
import { ADMIN_TOKEN, DEMO_TOKENS, READ_TOKEN, adminApi } from '../harness/admin-api.js'
import { freePort } from '../harness/ports.js'
import { Client } from '../server/client.js'
import { LOGIN_SECRET, askSocketmap, startOpsDaemon, type OpsDaemon } from './daemon.js'
import { scrape } from './prom.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function policy(d: OpsDaemon, context: string, recipient: string): Promise<string> {
  const c = await Client.connect(d.port('policy'))
  try {
    c.write(`request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=1\npolicy_context=${context}\nsender=\nrecipient=${recipient}\n\n`)
    return await c.readLine()
  } finally {
    c.destroy()
  }
}

async function verify(d: OpsDaemon, secret: string, password: string): Promise<{ status: number; result?: string }> {
  const res = await fetch(`http://127.0.0.1:${d.port('http')}/v1/dovecot/passdb/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-auth-key': secret },
    body: JSON.stringify({ user: 'alice@example.org', password, service: 'imap', remoteIp: '192.0.2.20' }),
  })
  const body = (await res.json()) as { result?: string }
  return { status: res.status, ...(body.result === undefined ? {} : { result: body.result }) }
}

t.test('cache times change for the answers already cached, none dropped', async (t) => {
  const d = await startOpsDaemon(t, { cache: { ttl: '1h', negativeTtl: '1h' } })
  const c = await Client.connect(d.port('socketmap'))
  t.teardown(() => c.destroy())
  t.match(await d.lookup('transport', 'alice@example.org'), { layer: 'directory' })
  t.match(await d.lookup('transport', 'nobody@example.org'), { layer: 'directory', outcome: 'notfound' })
  t.match(await askSocketmap(c, 'transport', 'alice@example.org'), /^OK /)
  t.match(await d.lookup('transport', 'alice@example.org'), { layer: 'cache' })
  const cached = d.daemon.cache.size

  const diff = await d.daemon.reload(d.configWith({ cache: { ttl: '300ms', negativeTtl: '200ms' } }))
  t.same(diff, { live: ['cache.ttl', 'cache.negativeTtl'], restart: [] })
  t.equal(d.daemon.cache.size, cached, 'no cached answer dropped')
  await sleep(400)
  t.match(await d.lookup('transport', 'alice@example.org'), { layer: 'directory' }, 'the shorter TTL applies to an answer cached before')
  t.match(await d.lookup('transport', 'nobody@example.org'), { layer: 'directory' }, 'and the shorter negative TTL to a cached miss')
  t.match(await askSocketmap(c, 'transport', 'alice@example.org'), /^OK /, 'the connection kept across the reload still answers')

  await sleep(400)
  await d.daemon.reload(d.configWith({ cache: { ttl: '1h', negativeTtl: '1h' } }))
  t.match(await d.lookup('transport', 'alice@example.org'), { layer: 'cache' }, 'a longer TTL makes an expired answer fresh again')
})

t.test('log level, tokens, login secret, brakes, policy, domains', async (t) => {
  const d = await startOpsDaemon(t, { policy: { ruleSets: { default: {} } } })
  const api = adminApi(d.port('http'), ADMIN_TOKEN)

  // Before: a debug line per lookup; the demo admin token; the first login secret; no rule set
  // named strict; example.info not served; a wrong password counted (no brake yet).
  await d.lookup('transport', 'alice@example.org')
  t.ok(d.lines().some((l) => l.msg === 'lookup'), 'debug lines')
  t.equal((await api.get('/v1/backends')).status, 200)
  t.same(await verify(d, LOGIN_SECRET, 'wrong'), { status: 200, result: 'mismatch' })
  t.match(await policy(d, 'strict', 'carol@example.org'), /^action=DEFER_IF_PERMIT 4\.3\.5 no policy rule set named strict/)
  t.match(await d.lookup('transport', 'x@example.info'), { reason: 'domain not served' })

  const diff = await d.daemon.reload(
    d.configWith({
      log: { level: 'info' },
      admin: { tokens: DEMO_TOKENS.filter((x) => x.role === 'read') },
      login: { secret: 'the-new-login-secret', brakes: { ip: { tarpitAfter: 1, refuseAfter: 30 }, tarpit: '1s', maxTarpit: '1s' } },
      policy: { ruleSets: { default: {}, strict: { recipients: { disabled: 'reject' } } } },
      domains: [...(d.raw.domains as object[]), { name: 'example.info' }],
    }),
  )
  t.same(diff.restart, [], 'nothing needs a restart')
  t.ok(diff.live.includes('log.level') && diff.live.includes('admin.tokens') && diff.live.includes('domains'), diff.live.join(' '))

  const lines = d.lines().length
  await d.lookup('transport', 'bob@example.org')
  t.notOk(d.lines().slice(lines).some((l) => l.level === 'debug'), 'no debug lines at level info, from any logger')
  t.equal((await api.get('/v1/backends')).status, 401, 'the removed admin token is refused')
  t.equal((await api.get('/v1/backends', { token: READ_TOKEN })).status, 200, 'the read token still works')
  t.equal((await verify(d, LOGIN_SECRET, 'wrong')).status, 401, 'the old login secret is refused')
  const before = (await scrape(d.port('http'))).value('mailhostd_brakes_total')
  t.same(await verify(d, 'the-new-login-secret', 'wrong'), { status: 200, result: 'mismatch' }, 'the new secret works')
  t.equal((await scrape(d.port('http'))).value('mailhostd_brakes_total') - before, 1, 'the lower threshold brakes, counting the failure from before the reload')
  t.equal(await policy(d, 'strict', 'carol@example.org'), 'action=550 5.2.1 mailbox disabled', 'the new rule set answers')
  t.match(await d.lookup('transport', 'x@example.info'), { outcome: 'notfound', reason: 'no such address', layer: 'directory' }, 'the domain from the file is served')
})

t.test('listeners: kept, moved, added, removed; a failed move keeps the old one', async (t) => {
  const d = await startOpsDaemon(t)
  const listen = d.raw.listen as Record<string, unknown>
  const kept = await Client.connect(d.port('socketmap'))
  t.teardown(() => kept.destroy())
  const oldPolicy = d.port('policy')
  const onOldPolicy = await Client.connect(oldPolicy)
  t.teardown(() => onOldPolicy.destroy())

  const newPolicy = await freePort()
  await d.daemon.reload(d.configWith({ listen: { ...listen, policy: { port: newPolicy }, tcpTable: [{ map: 'recipient', port: 0 }] } }))
  t.match(await askSocketmap(kept, 'transport', 'alice@example.org'), /^OK /, 'an unchanged listener keeps its connections')
  t.equal(d.port('policy'), newPolicy, 'policy moved')
  t.ok(await onOldPolicy.closesWithin(5000), 'the idle connection on the old address is closed (Postfix reconnects)')
  await t.rejects(Client.connect(oldPolicy), { code: 'ECONNREFUSED' }, 'the old address is closed')
  t.same(
    d.daemon.bound.map((b) => b.name),
    ['socketmap', 'policy', 'http', 'tcp_table recipient'],
    'tcp_table transport removed, recipient added',
  )
  const recipient = await Client.connect(d.port('tcp_table recipient'))
  t.teardown(() => recipient.destroy())
  recipient.write('get bob@example.org\n')
  t.equal(await recipient.readLine(), '200 mx2.example.org')
  const metrics = await scrape(d.port('http'))
  t.equal(metrics.value('mailhostd_open_connections', { listener: 'tcp_table recipient' }), 1)
  t.notOk(metrics.family('mailhostd_open_connections').metrics.some((s) => s.labels?.listener === 'tcp_table transport'), 'removed listener no longer reported')

  // A move to an address in use fails: the listener stays where it was, readiness says so.
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const taken = (blocker.address() as { port: number }).port
  await d.daemon.reload(d.configWith({ listen: { ...listen, policy: { port: taken }, tcpTable: [{ map: 'recipient', port: 0 }] } }))
  t.equal(d.port('policy'), newPolicy, 'still on its old address')
  t.match(d.lines().find((l) => l.msg === 'listener could not move to its new address; it stays where it was'), { level: 'error', listener: 'policy' })
  const ready = await d.http('/readyz')
  t.equal(ready.status, 503)
  t.match(ready.body, { status: 'not ready', listeners: { ok: false, unbound: [{ name: 'policy', address: `127.0.0.1:${taken}`, boundAt: `127.0.0.1:${newPolicy}` }] } })

  // Asking for the address it has makes it ready again.
  await d.daemon.reload(d.configWith({ listen: { ...listen, policy: { port: newPolicy }, tcpTable: [{ map: 'recipient', port: 0 }] } }))
  t.equal((await d.http('/readyz')).status, 200)
})

t.test('restart-only keys keep their values; a bad file changes nothing; failures are reported', async (t) => {
  const d = await startOpsDaemon(t)
  const diff = await d.daemon.reload(d.configWith({ store: { poolSize: 3 }, cache: { maxEntries: 10, ttl: '5m' }, circuit: { failureThreshold: 9 } }))
  t.same(diff, { live: ['cache.ttl'], restart: ['store.poolSize', 'cache.maxEntries', 'circuit.failureThreshold'] })
  t.equal(d.daemon.config.store.poolSize, 10, 'running value kept')
  t.equal(d.daemon.config.cache.maxEntries, 100000, 'running value kept')
  t.equal(d.daemon.config.cache.ttl, '5m', 'live key applied')
  t.match(d.lines().find((l) => l.msg?.toString().startsWith('configuration reload: these keys take effect only at a restart')), {
    level: 'warn',
    keys: ['store.poolSize', 'cache.maxEntries', 'circuit.failureThreshold'],
  })

  t.equal(await d.daemon.reloadFrom(() => d.configWith({ backends: [{ id: 'bad', address: 'not-an-ip' }] })), 'invalid')
  t.equal(d.daemon.config.backends.length, 2, 'nothing changed')
  t.match(d.lines().find((l) => l.msg === 'configuration reload: the file is not valid; keeping the running configuration'), { level: 'error', err: /backends\[0\]\.address/ })
  t.equal(await d.daemon.reloadFrom(() => d.configWith({ cache: { ttl: '7m' } })), 'applied')
  t.equal(d.daemon.config.cache.ttl, '7m')

  // The store gone: the re-seed fails part-way; reported, and what came before stays applied.
  await d.daemon.store.close()
  t.equal(await d.daemon.reloadFrom(() => d.configWith({ cache: { ttl: '9m' } })), 'failed')
  t.equal(d.daemon.config.cache.ttl, '9m')
  const m = await scrape(d.port('http'))
  t.same([m.value('mailhostd_config_reloads_total', { result: 'applied' }), m.value('mailhostd_config_reloads_total', { result: 'invalid' }), m.value('mailhostd_config_reloads_total', { result: 'failed' })], [1, 1, 1])

  // Once shutting down, a reload does nothing.
  const closing = d.daemon.close(1000)
  const late = await d.daemon.reload(d.configWith({ cache: { ttl: '11m' } }))
  t.same(late.live, ['cache.ttl'])
  t.equal(d.daemon.config.cache.ttl, '9m', 'not applied while closing')
  await closing
})
