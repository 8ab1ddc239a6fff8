// Issue 13 item 9 against the built daemon on the demo SQL directory: a stream of distinct
// unknown addresses on the socketmap port does not push the found answers out of the cache.
// cache.maxEntries is 5, exactly the demo's found answers asked here; the misses have a room of
// their own (cache.maxMisses, default). Read back through mailhostd_cache_evictions_total and
// mailhostd_lookups_total by layer.

import t from 'tap'
import { ROOT, startMailhostd } from '../harness/mailhostd.js'
import { Client } from '../server/client.js'
import { demoClusterConfig } from './demo-table.js'

const FOUND = ['alice@example.org', 'bob@example.org', 'alice.liddell@example.org', 'alice@example.net', 'postmaster@example.org']

t.test('misses do not evict found answers', async (t) => {
  const m = await startMailhostd(
    { ...demoClusterConfig(), directory: { type: 'sql' }, cache: { maxEntries: FOUND.length } },
    { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
  )
  t.teardown(() => m.stop())
  const c = await Client.connect(m.ports.socketmap)
  t.teardown(() => c.destroy())
  const ask = async (key: string) => {
    const request = `recipient ${key}`
    c.write(`${Buffer.byteLength(request)}:${request},`)
    return c.readNetstring()
  }
  const metrics = async () => (await fetch(`http://127.0.0.1:${m.ports.http}/metrics`)).text()
  const evictions = async () => Number(/^mailhostd_cache_evictions_total (\d+)/m.exec(await metrics())?.[1])
  /** Found recipient answers on the socketmap port by the layer that gave them. */
  const found = async (layer: string) =>
    [...(await metrics()).matchAll(/^mailhostd_lookups_total\{([^}]*)\} (\d+)/gm)]
      .filter(([, labels]) => ['protocol="socketmap"', 'map="recipient"', 'outcome="found"', `layer="${layer}"`].every((l) => labels!.includes(l)))
      .reduce((sum, [, , n]) => sum + Number(n), 0)

  for (const key of FOUND) t.match(await ask(key), /^OK /, `${key} found`)
  t.equal(await found('directory'), FOUND.length, 'each asked of the directory once')
  for (let i = 0; i < 200; i++) t.equal(await ask(`nobody${i}@example.org`), 'NOTFOUND ', `miss ${i}`)
  t.equal(await evictions(), 0, 'mailhostd_cache_evictions_total: no found answer evicted by 200 misses')
  for (const key of FOUND) t.match(await ask(key), /^OK /, `${key} again`)
  t.equal(await found('cache'), FOUND.length, 'every one answered from the cache')
  t.equal(await found('directory'), FOUND.length, 'none asked of the directory again')
})
