// cache.warmup with the SQL directory (PGlite): the demo accounts and 1,500 generated ones, with
// alternate addresses, are in the cache once the warm-up is done; the daemon was ready (serving)
// before it finished; progress lines and a final line in the log.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Client } from '../server/client.js'
import { askSocketmap, startOpsDaemon } from './daemon.js'
import { scrape } from './prom.js'

const GENERATED = 1500

t.test('warm-up loads every mailbox address of the SQL directory', async (t) => {
  const dir = t.testdir()
  const sql = join(dir, 'generated.sql')
  writeFileSync(
    sql,
    `insert into accounts (address, mailhost, status)
       select 'user' || g || '@example.org', case when g % 2 = 0 then 'mx1.example.org' else 'mx2.example.org' end, 'active'
         from generate_series(1, ${GENERATED}) g
       on conflict do nothing;
     insert into account_addresses (address, account_id)
       select 'alt' || a.id || '@example.org', a.id from accounts a where a.address like 'user%' and a.id % 10 = 0
       on conflict do nothing;`,
  )
  const d = await startOpsDaemon(t, { cache: { warmup: true, ttl: '1h' } }, { seedSql: [sql] })
  await d.daemon.warmupDone()

  const { rows } = await d.daemon.store.query<{ n: number }>('select (select count(*) from accounts)::int + (select count(*) from account_addresses)::int as n')
  const total = rows[0]!.n
  t.ok(total > GENERATED, `${total} addresses in the directory`)
  const lines = d.lines()
  const ready = lines.findIndex((l) => l.msg === 'mailhostd ready')
  const done = lines.findIndex((l) => l.msg === 'cache warm-up: done')
  t.ok(ready >= 0 && done > ready, 'ready (serving) before the warm-up finished')
  t.match(lines[done], { level: 'info', total, loaded: total, failed: 0 })
  t.equal(lines.filter((l) => /^cache warm-up: \d0%$/.test(String(l.msg))).length, 9, 'a progress line every tenth')
  t.ok(d.daemon.cache.size >= total, `cache holds ${d.daemon.cache.size}`)

  const c = await Client.connect(d.port('socketmap'))
  t.teardown(() => c.destroy())
  for (const key of ['user1@example.org', 'user1500@example.org', 'alt100@example.org', 'alice.liddell@example.org']) {
    t.match(await d.lookup('transport', key), { outcome: 'found', layer: 'cache' }, `${key} answered from the cache`)
  }
  t.match(await askSocketmap(c, 'transport', 'user2@example.org'), /^OK lmtp:inet:\[10\.0\.0\.11\]:24$/)
  // The warm-up went through the cache, not the lookup counters.
  t.equal((await scrape(d.port('http'))).value('mailhostd_lookups_total', { layer: 'directory' }), 0, 'no lookup had to ask the directory')
})
