// Acceptance: SIGHUP with a changed TTL takes effect without dropping connections. The built
// program re-reads its configuration file: a socketmap connection opened before the signal
// stays open and answers after it, and an answer cached under the old TTL (1 h) is asked of the
// directory again once it is older than the new one (1 s), which the lookup endpoint shows as
// its layer going from cache to directory. An invalid file is logged and changes nothing.

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { Client } from '../server/client.js'
import { until } from '../harness/until.js'
import { demoClusterConfig } from './demo-table.js'

async function ask(c: Client, map: string, key: string): Promise<string> {
  const payload = Buffer.from(`${map} ${key}`)
  c.write(Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]))
  return c.readNetstring(10_000)
}

t.test('SIGHUP applies a new TTL and keeps connections', async (t) => {
  const m = await startMailhostd({ ...demoClusterConfig(), directory: { type: 'sql' }, cache: { ttl: '1h' } }, { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] })
  t.teardown(() => m.stop())
  const lookup = async (key: string) => {
    const res = await fetch(`http://127.0.0.1:${m.ports.http}/v1/lookup?map=transport&key=${encodeURIComponent(key)}`)
    return (await res.json()) as { outcome: string; layer: string }
  }
  const c = await Client.connect(m.ports.socketmap)
  t.teardown(() => c.destroy())
  t.match(await ask(c, 'transport', 'alice@example.org'), /^OK lmtp:inet:\[10\.0\.0\.11\]:24$/)
  t.match(await lookup('alice@example.org'), { outcome: 'found', layer: 'cache' }, 'cached under the 1 h TTL')

  const file = join(m.dir, 'mailhostd.yaml')
  const config = parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  writeFileSync(file, stringify({ ...config, cache: { ttl: '1s' } }))
  process.kill(m.pid, 'SIGHUP')
  const reloaded = await until('reload line', 10_000, () => m.logs().find((l) => l.msg === 'configuration reloaded'))
  t.match(reloaded, { changed: ['cache.ttl'], restartNeeded: [] })

  t.match(await ask(c, 'transport', 'bob@example.org'), /^OK lmtp:inet:\[10\.0\.0\.12\]:24$/, 'the connection opened before SIGHUP still answers')
  await new Promise((r) => setTimeout(r, 1200))
  t.match(await lookup('alice@example.org'), { outcome: 'found', layer: 'directory' }, 'older than the new TTL: asked again')
  t.match(await lookup('alice@example.org'), { outcome: 'found', layer: 'cache' }, 'and cached again')
  t.match(await ask(c, 'transport', 'alice@example.org'), /^OK /, 'same connection, still open')

  // An invalid file: logged, nothing changes, the daemon keeps serving.
  writeFileSync(file, stringify({ ...config, cache: { ttl: 'whenever' } }))
  process.kill(m.pid, 'SIGHUP')
  const refused = await until('refusal', 10_000, () => m.logs().find((l) => l.msg === 'configuration reload: the file is not valid; keeping the running configuration'))
  t.match(refused, { level: 'error', err: /cache\.ttl/ })
  t.match(await ask(c, 'transport', 'alice@example.org'), /^OK /)
  t.equal(await m.stop('SIGTERM'), 0)
})
