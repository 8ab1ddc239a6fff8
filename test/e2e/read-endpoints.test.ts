// Acceptance (issue 13, item 9): /v1/lookup, /metrics and /v1/openapi.json answer anyone on a
// loopback listener, and take a read or admin token when admin.readEndpoints says so (auto: when
// the listener is not on loopback; test/packaging/cluster.test.ts tries that with the demo
// cluster's 0.0.0.0 listener in its own network namespace). /healthz and /readyz stay open for
// probes. SIGHUP switches the setting without a restart. The built daemon, on loopback.

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { ADMIN_TOKEN, DEMO_TOKENS, READ_TOKEN } from '../harness/admin-api.js'
import { CTL, ROOT, startMailhostd } from '../harness/mailhostd.js'
import { run } from '../harness/process.js'
import { until } from '../harness/until.js'
import { demoClusterConfig } from './demo-table.js'

const READS = ['/v1/lookup?map=transport&key=alice@example.org', '/metrics', '/v1/openapi.json']

t.test('the read endpoints and their token', async (t) => {
  const m = await startMailhostd(
    { ...demoClusterConfig(), directory: { type: 'sql' }, admin: { tokens: DEMO_TOKENS } },
    { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
  )
  t.teardown(() => m.stop())
  const get = async (path: string, init: { token?: string; method?: string } = {}) => {
    const res = await fetch(`http://127.0.0.1:${m.ports.http}${path}`, {
      method: init.method ?? 'GET',
      headers: init.token === undefined ? {} : { authorization: `Bearer ${init.token}` },
      signal: AbortSignal.timeout(10_000),
    })
    return { status: res.status, type: res.headers.get('content-type') ?? '', auth: res.headers.get('www-authenticate'), body: await res.text() }
  }

  // auto on loopback (the default): open, as before.
  for (const path of READS) t.equal((await get(path)).status, 200, `auto, loopback: ${path} without a token`)

  const file = join(m.dir, 'mailhostd.yaml')
  const config = parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  const reload = async (readEndpoints: string) => {
    const before = m.logs().filter((l) => l.msg === 'configuration reloaded').length
    writeFileSync(file, stringify({ ...config, admin: { tokens: DEMO_TOKENS, readEndpoints } }))
    process.kill(m.pid, 'SIGHUP')
    const lines = await until('reload line', 10_000, () => {
      const all = m.logs().filter((l) => l.msg === 'configuration reloaded')
      return all.length > before ? all : undefined
    })
    t.match(lines.at(-1), { changed: ['admin.readEndpoints'], restartNeeded: [] }, `reloaded with readEndpoints ${readEndpoints}, live`)
  }

  await reload('token')
  for (const path of READS) {
    const none = await get(path)
    t.equal(none.status, 401, `token: ${path} without a token`)
    t.match(none.type, /^application\/problem\+json/)
    t.match(JSON.parse(none.body), { code: 'MH_UNAUTHORIZED', detail: /read or admin token/ })
    t.equal(none.auth, 'Bearer realm="mailhostd"')
    t.notMatch(none.body, /lmtp:|mailhostd_lookups_total|openapi/, 'nothing of the answer in the refusal')
    t.equal((await get(path, { token: 'mh_not-a-token' })).status, 401, `token: ${path} with an unknown token`)
    t.equal((await get(path, { token: READ_TOKEN })).status, 200, `token: ${path} with the read token`)
    t.equal((await get(path, { token: ADMIN_TOKEN })).status, 200, `token: ${path} with the admin token`)
    t.equal((await get(path, { method: 'HEAD' })).status, 401, `token: HEAD ${path} without a token`)
  }
  t.match(JSON.parse((await get(READS[0]!, { token: READ_TOKEN })).body), { outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24' })
  for (const probe of ['/healthz', '/readyz']) t.equal((await get(probe)).status, 200, `token: ${probe} stays open for probes`)
  // mailhostctl lookup sends the token it is given.
  const ctl = (env: NodeJS.ProcessEnv) =>
    run(process.execPath, [CTL, '--url', `http://127.0.0.1:${m.ports.http}`, 'lookup', 'transport', 'alice@example.org'], { env: { PATH: process.env.PATH, ...env }, timeoutMs: 30_000 })
  const withToken = await ctl({ MAILHOSTD_TOKEN: READ_TOKEN })
  t.same([withToken.code, /lmtp:inet:\[10\.0\.0\.11\]:24/.test(withToken.stdout)], [0, true], `token: mailhostctl lookup with $MAILHOSTD_TOKEN (${withToken.stderr.trim()})`)
  const without = await ctl({})
  t.same([without.code, /MH_UNAUTHORIZED/.test(without.stderr)], [2, true], 'token: mailhostctl lookup without one is refused')

  await reload('open')
  for (const path of READS) t.equal((await get(path)).status, 200, `open: ${path} without a token`)
})
