// mailhostctl (the built CLI) against a running mailhostd: output, --json and exit codes.

import t from 'tap'
import { CTL, ROOT, startMailhostd } from '../harness/mailhostd.js'
import { run } from '../harness/process.js'
import { freePort } from '../harness/ports.js'
import { demoClusterConfig } from '../e2e/demo-table.js'

t.test('mailhostctl lookup', async (t) => {
  const m = await startMailhostd({ ...demoClusterConfig(), directory: { type: 'sql' } }, { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] })
  t.teardown(() => m.stop())
  const url = `http://127.0.0.1:${m.ports.http}`
  const ctl = (...args: string[]) => run(process.execPath, [CTL, '--url', url, ...args])

  const found = await ctl('lookup', 'transport', 'bob@example.org')
  t.equal(found.code, 0)
  t.match(found.stdout, /outcome\s+found/)
  t.match(found.stdout, /value\s+lmtp:inet:\[10\.0\.0\.12\]:24/)
  t.match(found.stdout, /layer\s+directory/)
  t.match(found.stdout, /time\s+[\d.]+ ms/)
  t.match((await ctl('lookup', 'transport', 'bob@example.org')).stdout, /layer\s+fresh cache/, 'second time from the cache')

  const miss = await ctl('lookup', 'recipient', 'nobody@example.org')
  t.equal(miss.code, 1)
  t.match(miss.stdout, /reason\s+no such address/)

  const json = await ctl('--json', 'lookup', 'alias', 'alice@example.net')
  t.equal(json.code, 0)
  t.match(JSON.parse(json.stdout), { outcome: 'found', value: 'alice@example.org', layer: 'directory' })

  t.equal((await ctl('lookup', 'mailbox', 'bob@example.org')).code, 2, 'unknown map: failure exit code')
  t.equal((await ctl('lookup', 'transport')).code, 64, 'usage')
  t.equal((await ctl('frobnicate')).code, 64, 'unknown command')
  t.equal((await run(process.execPath, [CTL, '--bogus'])).code, 64, 'unknown option')
  t.match((await run(process.execPath, [CTL, '--help'])).stdout, /lookup <map> <key>/)

  const closed = await freePort()
  const down = await run(process.execPath, [CTL, '--url', `http://127.0.0.1:${closed}`, 'lookup', 'transport', 'bob@example.org'])
  t.equal(down.code, 69, 'daemon unreachable')
  t.match(down.stderr, /cannot reach mailhostd/)
})
