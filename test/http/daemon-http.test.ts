// The daemon wired in-process on PGlite with the demo data: HTTP routes, readiness, metrics,
// problem+json errors, registry reload and an orderly close.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import t from 'tap'
import { parseConfig } from '../../src/config/load.js'
import { Daemon } from '../../src/daemon.js'
import { silentLogger } from '../../src/log.js'
import { ROOT } from '../harness/mailhostd.js'
import { demoClusterConfig } from '../e2e/demo-table.js'

t.test('daemon in-process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mh-daemon-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = parseConfig(JSON.stringify({
    ...demoClusterConfig(),
    dataDir: dir,
    listen: { socketmap: { port: 0 }, tcpTable: [{ map: 'transport', port: 0 }, { map: 'local/mx1', port: 0 }], http: { port: 0 }, policy: { port: 0 } },
  }), 'test')
  const daemon = await new Daemon(config, silentLogger, { seedSql: [`${ROOT}/fixtures/demo/directory.sql`] }).start()
  t.teardown(() => daemon.close(1000))
  const http = daemon.bound.find((b) => b.name === 'http')!
  const base = `http://127.0.0.1:${http.port}`
  t.same(daemon.bound.map((b) => b.name), ['socketmap', 'tcp_table transport', 'tcp_table local/mx1', 'policy', 'http'])

  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`)
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.text()) }
  }

  t.same(JSON.parse((await get('/healthz')).body), { status: 'ok' })
  const ready = await get('/readyz')
  t.equal(ready.status, 200)
  t.match(JSON.parse(ready.body), { status: 'ready', store: { kind: 'pglite', ok: true }, directory: { kind: 'sql', ok: true, circuit: 'closed' } })

  const first: unknown = JSON.parse((await get('/v1/lookup?map=transport&key=alice%40example.org')).body)
  t.match(first, { outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24', layer: 'directory' })
  t.match(JSON.parse((await get('/v1/lookup?map=recipient&key=alice%40example.org')).body), { outcome: 'found', layer: 'cache' })
  t.match(JSON.parse((await get('/v1/lookup?map=transport&key=*')).body), { outcome: 'notfound', layer: 'rules' })
  t.match(JSON.parse((await get('/v1/lookup?map=nope&key=a%40example.org')).body), { outcome: 'perm' })

  const bad = await get('/v1/lookup?map=transport')
  t.equal(bad.status, 400)
  t.match(bad.type, /application\/problem\+json/)
  t.match(JSON.parse(bad.body), { status: 400, code: 'MH_HTTP_VALIDATION' })
  const missing = await get('/nope')
  t.equal(missing.status, 404)
  t.match(JSON.parse(missing.body), { code: 'MH_HTTP_NOT_FOUND' })

  const metrics = await get('/metrics')
  t.match(metrics.body, /mailhostd_lookups_total\{protocol="http",map="transport",outcome="found",layer="directory"\} 1/)
  t.match(metrics.body, /mailhostd_cache_entries \d/)
  t.match(metrics.body, /mailhostd_open_connections\{listener="socketmap"\} 0/)

  // The policy listener: two requests on one connection, answered in order.
  const policyPort = daemon.bound.find((b) => b.name === 'policy')!.port
  const replies = await new Promise<string>((resolve, reject) => {
    const sock = connect({ port: policyPort, host: '127.0.0.1' })
    let got = ''
    sock.on('data', (d: Buffer) => {
      got += d.toString()
      if (got.split('\n\n').length === 3) {
        sock.end()
        resolve(got)
      }
    })
    sock.on('error', reject)
    const req = (rcpt: string) => `request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=1\nsender=\nrecipient=${rcpt}\nsasl_username=\n\n`
    sock.write(req('nobody@example.org') + req('bob@example.org'))
  })
  t.equal(replies, 'action=550 5.1.1 mailbox unknown in this mail cluster\n\naction=DUNNO\n\n')
  t.match((await get('/metrics')).body, /mailhostd_policy_decisions_total\{rule_set="default",result="reject"\} 1/)

  // A domain added to the store shows up after a registry reload (SIGHUP), and the cache is cleared.
  await daemon.store.query(`insert into domains (name) values ('example.info')`)
  t.match(JSON.parse((await get('/v1/lookup?map=transport&key=x%40example.info')).body), { reason: 'domain not served' })
  await daemon.reloadRegistry()
  t.match(JSON.parse((await get('/v1/lookup?map=transport&key=x%40example.info')).body), { reason: 'no such address', layer: 'directory' })
  t.equal(daemon.cache.size, 1)
})
