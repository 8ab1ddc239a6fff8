// The status page's rendering without a daemon: every value a user or a remote peer controls
// is escaped, each state reads in text, and the parts that could not be read say so.

import t from 'tap'
import type { StatusSnapshot } from '../../src/http/status-data.js'
import { elapsed, escapeHtml, REFRESH_SECONDS, renderStatus, renderUnauthorized, utc } from '../../src/http/status-html.js'

const HOSTILE = '<script>alert("x")</script>'
const viewer = { name: 'ops', role: 'read' } as const

function snapshot(over: Partial<StatusSnapshot> = {}): StatusSnapshot {
  return {
    generatedAt: '2026-12-01T10:05:00.000Z',
    version: '0.1.0',
    probing: true,
    directory: { kind: 'sql', circuit: 'closed' },
    store: 'pglite',
    backends: [
      {
        id: 'mx1',
        address: '10.0.0.11',
        mailHosts: ['mx1.example.org'],
        adminState: 'active',
        state: 'up',
        services: [{ service: 'delivery', state: 'up', since: '2026-12-01T10:00:00.000Z' }],
        accounts: 3,
        capacity: 100,
      },
      {
        id: 'mx2',
        address: '10.0.0.12',
        mailHosts: [`"><img src=x onerror=alert(1)>`],
        adminState: 'drain',
        state: 'down',
        services: [
          { service: 'delivery', state: 'up' },
          { service: 'imap', state: 'down', since: '2026-12-01T09:05:00.000Z', detail: `connect ECONNREFUSED ${HOSTILE}` },
          { service: 'pop3', state: 'not probed' },
        ],
        accounts: 1,
        capacity: null,
      },
      { id: 'mx3', address: '10.0.0.13', mailHosts: [], adminState: 'maintenance', state: 'maintenance', services: [], accounts: null, capacity: null },
    ],
    pools: [],
    cache: { hits: 3, misses: 1, hitRate: 0.75, entries: 4, staleServed: 2 },
    moving: 1,
    audit: [
      { id: 7, at: '2026-12-01T10:04:59.123Z', actor: 'ops&co', action: 'create', subjectType: 'account', subject: HOSTILE, before: null, after: null },
      { id: 6, at: '2026-12-01T10:04:00.000Z', actor: 'config', action: 'update', subjectType: 'backend', subject: "mx2' onmouseover='x", before: null, after: null },
    ],
    problems: {},
    ...over,
  }
}

t.test('values from users and peers are escaped, never markup', async (t) => {
  const out = renderStatus(snapshot(), viewer)
  t.notOk(/<script/i.test(out), 'no script element at all')
  t.notOk(out.includes('<img'), 'no element from a mailHost value')
  t.notOk(out.includes("mx2' onmouseover"), 'no attribute breakout')
  t.ok(out.includes('<strong>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</strong>'), 'the audit subject is shown as text')
  t.ok(out.includes('ops&amp;co'))
  t.ok(out.includes('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'))
  t.ok(out.includes('(connect ECONNREFUSED &lt;script&gt;'), 'the probe error is shown as text')
  t.equal(escapeHtml(`&<>"'`), '&amp;&lt;&gt;&quot;&#39;')
  // The reason is ours, but goes through the same escaping.
  t.ok(renderUnauthorized('a <b> c').includes('<p>a &lt;b&gt; c</p>'))
})

t.test('each state reads in text, with its time and the share of accounts', async (t) => {
  const out = renderStatus(snapshot(), viewer)
  t.match(out, /<title>mailhostd status: 3 backends, 2 down<\/title>/)
  t.match(out, new RegExp(`<meta http-equiv="refresh" content="${REFRESH_SECONDS}">`))
  t.match(out, /<tr data-backend="mx1">[\s\S]*?data-field="health" data-label="Health"><span class="state state-up">UP<\/span>/)
  t.match(out, /<tr data-backend="mx2">[\s\S]*?data-field="health" data-label="Health"><span class="state state-down">DOWN<\/span>/)
  t.match(out, /<tr data-backend="mx3">[\s\S]*?MAINTENANCE \(down\)/)
  t.match(out, /data-service="imap">imap: <span class="state state-down">DOWN<\/span> <small title="since 2026-12-01 09:05:00 UTC">for 60 min<\/small>/)
  t.match(out, /data-service="delivery">delivery: <span class="state state-up">UP<\/span> <small title="since 2026-12-01 10:00:00 UTC">for 5 min<\/small>/)
  t.match(out, /data-service="pop3">pop3: <span class="state state-not-probed">NOT PROBED<\/span><\/li>/)
  t.match(out, /data-field="admin-state" data-label="Admin state">drain</)
  t.match(out, /data-field="accounts" data-label="Accounts" class="num">3<br><small>of 100<\/small>/)
  t.match(out, /aria-label="75\.0% of all accounts"><span style="width: 75\.0%">/)
  t.match(out, /aria-label="25\.0% of all accounts"/)
  t.match(out, /<tr data-backend="mx3">[\s\S]*?none configured/)
  t.match(out, /data-field="accounts" data-label="Accounts" class="num">not counted/)
  t.match(out, /4 accounts in all\./)
  t.match(out, /id="cache-hit-rate">75\.0%<\/dd>\s*<small>3 hits, 1 miss<\/small>/)
  t.match(out, /id="cache-entries">4</)
  t.match(out, /id="cache-stale">2</)
  t.match(out, /id="moving">1</)
  t.match(out, /id="directory">sql<\/dd><small>circuit closed/)
  t.match(out, /<tr data-audit-id="7"><td><time datetime="2026-12-01T10:04:59\.123Z">2026-12-01 10:04:59 UTC<\/time><\/td><td data-label="Actor">ops&amp;co<\/td><td data-label="Action">create<\/td><td data-label="Subject">account/)
  t.match(out, /viewed with token ops \(read\)/)
  t.notOk(out.includes('role="alert"'), 'no problems, no alerts')
})

t.test('empty and unreadable parts say so', async (t) => {
  const empty = renderStatus(snapshot({ backends: [], audit: [], cache: { hits: 0, misses: 0, hitRate: null, entries: 0, staleServed: 0 }, probing: false }), viewer)
  t.match(empty, /No backends are registered\./)
  t.match(empty, /No entries yet\./)
  t.match(empty, /id="cache-hit-rate">no lookups yet</)
  t.match(empty, /Health probing is off on this instance \(health\.interval is 0\)/)
  t.match(empty, /0 backends, 0 down/)

  const one = renderStatus(
    snapshot({
      backends: [{ id: 'mx1', address: '10.0.0.11', mailHosts: [], adminState: 'active', state: 'not probed', services: [], accounts: 0, capacity: null }],
      probing: false,
    }),
    viewer,
  )
  t.match(one, /1 backend, 0 down/)
  t.match(one, /probing off/)
  t.match(one, /aria-label="0\.0% of all accounts"/, 'no accounts anywhere: a share of 0, not NaN')

  const broken = renderStatus(snapshot({ audit: [], problems: { counts: 'directory down', health: 'no answer within 3000 ms', audit: 'store <gone>' } }), viewer)
  t.match(broken, /role="alert"><strong>Account counts unavailable:<\/strong> directory down/)
  t.match(broken, /Health records unavailable:<\/strong> no answer within 3000 ms/)
  t.match(broken, /Audit log unavailable:<\/strong> store &lt;gone&gt;/)
  t.notOk(broken.includes('No entries yet.'), 'an unreadable log is not an empty one')
  t.match(renderStatus(snapshot({ backends: [] }), viewer), /<title>mailhostd status: 0 backends/)
})

t.test('the login page has no refresh and explains what to send', async (t) => {
  const out = renderUnauthorized('This page needs a token.')
  t.notOk(out.includes('http-equiv="refresh"'))
  t.match(out, /<title>mailhostd status: token needed<\/title>/)
  t.match(out, /Authorization: Bearer &lt;token&gt;/)
})

t.test('times', async (t) => {
  t.equal(utc('2026-12-01T10:04:59.123Z'), '2026-12-01 10:04:59 UTC')
  t.equal(utc('2026-12-01T10:04:59Z'), '2026-12-01 10:04:59 UTC')
  const at = (s: number) => new Date(Date.parse('2026-12-01T00:00:00Z') + s * 1000).toISOString()
  t.same(
    [0, 119, 120, 7199, 7200, 172799, 172800, -5].map((s) => elapsed(at(0), at(s))),
    ['0 s', '119 s', '2 min', '120 min', '2 h', '48 h', '2 d', '0 s'],
  )
})

t.test('pools: each member with its state, weight, share of new users and pinned users', async (t) => {
  const member = (id: string, over: object = {}) => ({ id, address: `127.0.0.${id.slice(1)}`, adminState: 'active' as const, state: 'up' as const, services: [], weight: 1, eligible: true, pins: 4, ...over })
  const pools = [
    {
      id: 'pool1',
      pinForMs: 900_000,
      director: { tag: 'pool1', address: '127.0.0.9' },
      members: [member('m1', { weight: 3 }), member('m2'), member('m3', { adminState: 'drain', eligible: false, pins: 2 }), member('m4', { state: 'down', eligible: false, pins: null })],
    },
  ]
  const out = renderStatus(snapshot({ pools }), viewer)
  t.match(out, /<h2 id="pools-title">Pools<\/h2>/)
  t.match(out, /Users stay on their member 900 s after their last lookup; logins hand the choice to the Dovecot director \(tag pool1 at 127\.0\.0\.9\)/)
  const row = (id: string) => out.slice(out.indexOf(`data-member="${id}"`), out.indexOf('</tr>', out.indexOf(`data-member="${id}"`)))
  t.match(row('m1'), /data-field="share"[^>]*>75\.0%/)
  t.match(row('m1'), /data-field="pins"[^>]*>4</)
  t.match(row('m2'), />25\.0%/)
  t.match(row('m3'), /none \(drain\)/)
  t.match(row('m3'), /data-field="pins"[^>]*>2</, 'a drained member keeps its pins')
  t.match(row('m4'), /DOWN/)
  t.match(row('m4'), /none \(down\)/)
  t.match(row('m4'), /not counted/)
  t.match(renderStatus(snapshot({ pools, problems: { pins: 'timeout' } }), viewer), /Pinned users could not be counted:<\/strong> timeout/)
  t.notMatch(renderStatus(snapshot(), viewer), /pools-title/, 'no pools: no section')
})
