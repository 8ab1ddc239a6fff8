// Acceptance (architecture.md §2): slapd killed mid-test. Cached keys keep answering from the
// stale cache, uncached keys get TEMP / 400 within the deadline, no answer is ever a miss;
// after slapd restarts, fresh answers resume without restarting mailhostd. Then the same for
// a hung slapd (SIGSTOP), where only the deadline stands between Postfix and a 100 s stall.

import t from 'tap'
import { eachPeerSet, type PeerSet } from '../harness/peer-set.js'
import { postmapQuery, socketmap, startMailhostd, tcp, type Mailhostd } from '../harness/mailhostd.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { demoClusterConfig, DEMO_ROUTES } from './demo-table.js'

const DEADLINE_MS = 3000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function layerOf(m: Mailhostd, key: string): Promise<{ outcome: string; layer: string; value?: string }> {
  const res = await fetch(`http://127.0.0.1:${m.ports.http}/v1/lookup?map=transport&key=${encodeURIComponent(key)}`)
  return (await res.json()) as { outcome: string; layer: string }
}

/** Polls until the directory answers `key` again (the circuit closes after a trial). */
async function waitForFresh(m: Mailhostd, key: string) {
  let r = { outcome: '', layer: '' }
  for (let i = 0; i < 60 && r.layer !== 'directory'; i++) {
    await sleep(250)
    r = await layerOf(m, key)
  }
  return r
}

/** postmap through both protocols; returns what Postfix would conclude. */
async function ask(m: Mailhostd, key: string, set: PeerSet) {
  const started = Date.now()
  const [sm, tc] = await Promise.all([postmapQuery(socketmap(m.ports.socketmap, 'transport'), key, set), postmapQuery(tcp(m.ports.transport), key, set)])
  const verdict = (r: { code: number; stdout: string; stderr: string }) =>
    r.code === 0 ? `found ${r.stdout.trim()}` : /query error|lookup error/.test(r.stderr) ? 'temp' : 'miss'
  return { socketmap: verdict(sm), tcp: verdict(tc), ms: Date.now() - started }
}

eachPeerSet(t, async (t, set) => {
  t.test('slapd dies, hangs and comes back', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const m = await startMailhostd({
      ...demoClusterConfig(),
      directory: slapdDirectory(slapd, { timeout: '1s', connectTimeout: '500ms' }),
      cache: { ttl: '1s', negativeTtl: '1s', maxStale: '1h' },
      lookup: { deadline: `${DEADLINE_MS}ms` },
      circuit: { failureThreshold: 3, openFor: '1s' },
    })
    t.teardown(() => m.stop())

    const cached = ['alice@example.org', 'bob@example.org', 'postmaster@example.org']
    for (const k of cached) t.match(await ask(m, k, set), { socketmap: /^found/, tcp: /^found/ }, `warm ${k}`)

    await slapd.kill()
    await sleep(1500) // past the TTL: every cached answer is now stale

    for (const k of cached) {
      const r = await ask(m, k, set)
      const route = k.startsWith('bob') ? DEMO_ROUTES.mx2 : DEMO_ROUTES.mx1
      t.same([r.socketmap, r.tcp], [`found ${route}`, `found ${route}`], `stale answer for ${k} while slapd is dead`)
      t.match(await layerOf(m, k), { outcome: 'found', layer: 'stale' })
    }
    for (const k of ['carol@example.org', 'nobody@example.org', 'alice+new@example.org', 'x@example.net', 'y@example.com']) {
      const r = await ask(m, k, set)
      t.same([r.socketmap, r.tcp], ['temp', 'temp'], `uncached ${k}: TEMP and 400, never a miss`)
      t.ok(r.ms < DEADLINE_MS + 2000, `answered within the deadline (${r.ms} ms)`)
    }
    t.match(await layerOf(m, 'carol@example.org'), { outcome: 'temp', layer: 'none' })
    t.match(await ask(m, 'someone@unserved.test', set), { socketmap: 'miss', tcp: 'miss' }, 'rules still answer misses without the directory')

    await slapd.restart()
    t.match(await waitForFresh(m, 'carol@example.org'), { outcome: 'found', layer: 'directory' }, 'fresh answers resume after slapd restarts')
    t.match(await ask(m, 'nobody@example.org', set), { socketmap: 'miss', tcp: 'miss' }, 'authoritative misses again')

    await slapd.pause()
    t.teardown(() => slapd.resume())
    await sleep(1200)
    for (const k of ['alice@example.org', 'bob@example.org']) {
      t.match(await ask(m, k, set), { socketmap: /^found/, tcp: /^found/ }, `hung slapd: stale answer for ${k}`)
    }
    const hung = await ask(m, 'dave@example.org', set)
    t.same([hung.socketmap, hung.tcp], ['temp', 'temp'], 'hung slapd: uncached key is TEMP')
    t.ok(hung.ms < DEADLINE_MS + 2000, `hung slapd: answered within the deadline (${hung.ms} ms)`)
    await slapd.resume()
    t.match(await waitForFresh(m, 'alice@example.org'), { outcome: 'found', layer: 'directory' }, 'fresh answers after slapd resumes')
  })
})
