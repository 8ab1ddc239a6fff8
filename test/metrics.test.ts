// The metrics read from live objects at scrape time (src/metrics.ts): counters and gauges, with
// and without labels, all registered through one helper. Each scrape shows what the source says
// now: series it no longer yields disappear, a gauge may fall, an unlabelled one is one series.

import t from 'tap'
import { Metrics, type Labels } from '../src/metrics.js'

/** The sample lines and the TYPE line of one family, as Prometheus reads them. */
async function family(m: Metrics, name: string): Promise<{ type: string | undefined; samples: string[] }> {
  const text = await m.registry.getSingleMetricAsString(name)
  const lines = text.split('\n').filter((l) => l !== '')
  return { type: /^# TYPE \S+ (\S+)$/m.exec(text)?.[1], samples: lines.filter((l) => !l.startsWith('#')) }
}

t.test('counters and gauges read at scrape, with and without labels', async (t) => {
  const m = new Metrics({ defaultMetrics: false })
  const source = { total: 3, level: 7, byPool: new Map<string, number>([['pool1', 2]]), up: new Map<string, number>([['m1', 1], ['m2', 0]]) }
  m.counter('test_things_total', 'Things counted elsewhere.', () => source.total)
  m.gauge('test_level', 'A level read elsewhere.', () => source.level)
  m.labelledCounter('test_pool_lookups_total', 'Lookups per pool.', ['pool'], () => [...source.byPool].map(([pool, n]): [Labels, number] => [{ pool }, n]))
  m.labelledGauge('test_member_up', 'Members up.', ['member'], () => [...source.up].map(([member, n]): [Labels, number] => [{ member }, n]))

  t.same(await family(m, 'test_things_total'), { type: 'counter', samples: ['test_things_total 3'] })
  t.same(await family(m, 'test_level'), { type: 'gauge', samples: ['test_level 7'] })
  t.same(await family(m, 'test_pool_lookups_total'), { type: 'counter', samples: ['test_pool_lookups_total{pool="pool1"} 2'] })
  t.same(await family(m, 'test_member_up'), { type: 'gauge', samples: ['test_member_up{member="m1"} 1', 'test_member_up{member="m2"} 0'] })

  source.total = 5
  source.level = 4
  source.byPool.set('pool1', 9).set('pool2', 1)
  source.up.delete('m2')
  source.up.set('m1', 0)
  t.same((await family(m, 'test_things_total')).samples, ['test_things_total 5'], 'the total as the source has it, not added to the last')
  t.same((await family(m, 'test_level')).samples, ['test_level 4'], 'a gauge falls')
  t.same((await family(m, 'test_pool_lookups_total')).samples, ['test_pool_lookups_total{pool="pool1"} 9', 'test_pool_lookups_total{pool="pool2"} 1'])
  t.same((await family(m, 'test_member_up')).samples, ['test_member_up{member="m1"} 0'], 'a series the source no longer yields disappears')
})

t.test('open connections per listener, until untracked', async (t) => {
  const m = new Metrics({ defaultMetrics: false })
  let open = 2
  m.trackConnections('socketmap', () => open)
  m.trackConnections('http', () => 1)
  t.same(await family(m, 'mailhostd_open_connections'), { type: 'gauge', samples: ['mailhostd_open_connections{listener="socketmap"} 2', 'mailhostd_open_connections{listener="http"} 1'] })
  open = 0
  m.untrackConnections('http')
  t.same((await family(m, 'mailhostd_open_connections')).samples, ['mailhostd_open_connections{listener="socketmap"} 0'], 'a listener removed by a reload disappears')
})
