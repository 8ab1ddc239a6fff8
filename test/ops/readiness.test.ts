// /readyz in-process against a real slapd: ready while the directory answers, still ready while
// it is down but answered within cache.maxStale (stale answers can be served), not ready past it,
// ready again once it answers; not ready while the store is gone. /healthz only says the process
// runs. (The e2e test test/e2e/readyz-postgres.test.ts kills a real PostgreSQL under the built program.)

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { startOpsDaemon } from './daemon.js'

eachPeerSet(t, async (t, set) => {
  t.test('readiness follows the directory within maxStale, and the store', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const d = await startOpsDaemon(t, {
      directory: slapdDirectory(slapd, { timeout: '1s', connectTimeout: '500ms', pollInterval: 0 }),
      cache: { maxStale: '1h' },
    })

    const ready = await d.http('/readyz')
    t.equal(ready.status, 200)
    t.match(ready.body, {
      status: 'ready',
      store: { ok: true, kind: 'pglite' },
      directory: { ok: true, reachable: true, kind: 'ldap', circuit: 'closed', lastAnswerSecondsAgo: 0, maxStaleSeconds: 3600 },
      listeners: { ok: true, unbound: [], bound: [{ name: 'socketmap' }, { name: 'tcp_table transport' }, { name: 'policy' }, { name: 'http' }] },
    })

    await slapd.kill()
    const stale = await d.http('/readyz')
    t.equal(stale.status, 200, 'down, but answered within maxStale: still worth sending traffic to')
    t.match(stale.body, { status: 'ready', directory: { ok: true, reachable: false, error: /MH_DIRECTORY_UNAVAILABLE|ECONNREFUSED/ } })

    await d.daemon.reload(d.configWith({ cache: { maxStale: '1s' } }))
    await new Promise((r) => setTimeout(r, 1500))
    const gone = await d.http('/readyz')
    t.equal(gone.status, 503, 'past maxStale: not ready')
    t.match(gone.body, { status: 'not ready', store: { ok: true }, directory: { ok: false, reachable: false, maxStaleSeconds: 1 } })
    t.same((await d.http('/healthz')).body, { status: 'ok' }, 'the process is alive all the same')

    await slapd.restart()
    const back = await d.http('/readyz')
    t.equal(back.status, 200, 'ready again once the directory answers')
    t.match(back.body, { directory: { ok: true, reachable: true } })

    await d.daemon.store.close()
    const noStore = await d.http('/readyz')
    t.equal(noStore.status, 503)
    t.match(noStore.body, { status: 'not ready', store: { ok: false, error: String }, directory: { ok: true } })
  })
})
