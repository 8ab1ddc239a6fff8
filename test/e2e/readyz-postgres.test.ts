// Acceptance: /readyz turns not-ready when PostgreSQL is gone and ready again after. The built
// program runs the SQL directory on a PostgreSQL started by the harness, which is killed
// (SIGKILL, as in a crash) and restarted on the same port; /healthz answers throughout.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { startPostgres } from '../harness/postgres.js'
import { demoClusterConfig } from './demo-table.js'

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not ${what} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

eachPeerSet(t, async (t, set) => {
  t.test('readiness follows PostgreSQL', async (t) => {
    const pg = await startPostgres({ set })
    t.teardown(() => pg.stop())
    const m = await startMailhostd(
      { ...demoClusterConfig(), directory: { type: 'sql' }, store: { url: pg.url, connectTimeout: '1s', statementTimeout: '2s' } },
      { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
    )
    t.teardown(() => m.stop())
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${m.ports.http}${path}`, { signal: AbortSignal.timeout(10_000) })
      const text = await res.text()
      return { status: res.status, text, body: JSON.parse(text) as Record<string, unknown> }
    }

    const ready = await get('/readyz')
    t.equal(ready.status, 200)
    t.match(ready.body, { status: 'ready', store: { kind: 'postgres', ok: true }, directory: { kind: 'sql', ok: true } })

    await pg.kill()
    let down = ready
    await until('not ready', 15_000, async () => (down = await get('/readyz')).status === 503)
    t.match(down.body, { status: 'not ready', store: { ok: false, error: String } }, 'the store check names the failure')
    t.notOk(down.text.includes(pg.password), 'the database password is not in the answer')
    t.same((await get('/healthz')).body, { status: 'ok' }, 'alive all the same')

    await pg.restart()
    let back = down
    await until('ready again', 30_000, async () => (back = await get('/readyz')).status === 200)
    t.match(back.body, { status: 'ready', store: { ok: true }, directory: { ok: true } })
    t.notOk(m.proc.output().includes(pg.password), 'nor in the logs')
  })
})
