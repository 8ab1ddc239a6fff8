// Acceptance (issue: cluster-wide invalidation; docs/admin.md "Cluster-wide changes"): two
// mailhostd processes A and B on one PostgreSQL, SQL directory. Every change is made through
// A's admin API while B's cache is warm, and B must answer it within 1 s:
// - a move: B's transport answers TEMP while the account moves, then the new route, for every
//   key B had cached for the account (user+ext@, alias domain, alternate address, forwarding
//   alias, catch-all), and never the old route once it has answered TEMP;
// - a deletion: notfound; a creation (and a new alternate address) that B had cached as a miss:
//   found; a backend put in maintenance: B's login routing fails temporarily; a new domain: B
//   serves it;
// - B's listening session killed in PostgreSQL: B resyncs (picking up a change it never heard
//   of), and the next change through A reaches B within 1 s again.
// The cache TTLs are 10 minutes, so within this test only the notifications can explain B's
// fresh answers; B's answers are checked to come from its cache ("layer": "cache") beforehand.

import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import pg from 'pg'
import { adminApi, DEMO_TOKENS } from '../harness/admin-api.js'
import { postmapQuery, socketmap, startMailhostd, type Mailhostd } from '../harness/mailhostd.js'
import { startPostgres } from '../harness/postgres.js'
import { follow as followChange, lookup, probe, sleep, summarize, warm, type FollowOptions, type Probe } from './admin-follow.js'
import { demoClusterConfig, DEMO_ROUTES } from './demo-table.js'

/** The acceptance bound: a change made through A is answered by B within this time. */
const BOUND_MS = 1000
/** How often B is asked while waiting for a change. */
const POLL_MS = 25
/**
 * How long a wait goes on before giving up. Longer than the bound on purpose: a change that
 * arrives late is reported with its actual delay (a clearer failure than "not seen in 1 s"),
 * and a change that never arrives still ends the test.
 */
const GIVE_UP_MS = 5000
const LOGIN_SECRET = 'cluster-test-login-secret'
const LISTENER_APPLICATION_NAME = 'mailhostd-changes'

async function loginLookup(m: Mailhostd, user: string): Promise<{ result: string; fields?: Record<string, string>; reason?: string }> {
  const res = await fetch(`http://127.0.0.1:${m.ports.http}/v1/dovecot/passdb/lookup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-auth-key': LOGIN_SECRET },
    body: JSON.stringify({ user, service: 'lmtp' }),
    signal: AbortSignal.timeout(10_000),
  })
  return (await res.json()) as { result: string; fields?: Record<string, string>; reason?: string }
}

const delays: FollowOptions['record'] = []
/*
 * The 1 s assertions on these delays are the acceptance criterion itself, not a guess at how
 * long an operation takes: the issue promises that a change made through one instance is
 * answered by every other instance within 1 s. The real delay on loopback is a few ms (one
 * NOTIFY and, for a registry change, one reload query), and what is measured is an upper
 * bound (until B's answer is received, B being asked every 25 ms), so the bound has more than an
 * order of magnitude of headroom even on a loaded 2-core machine: a miss means notifications
 * were lost or applied late, which is the bug this test is for.
 */
const ONE_SECOND: FollowOptions = { boundMs: BOUND_MS, pollMs: POLL_MS, giveUpMs: GIVE_UP_MS, record: delays }
const follow = (t: Test, what: string, since: number, probes: readonly Probe[]) => followChange(t, what, since, probes, ONE_SECOND)
const onB = probe

/** Ports of B's TCP connections to PostgreSQL, from /proc (the client_port PostgreSQL sees). */
function clientPortsOf(pid: number, serverPort: number): number[] {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m) inodes.add(m[1]!)
    } catch {
      // the fd closed meanwhile
    }
  }
  const ports: number[] = []
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 10 || !inodes.has(f[9]!)) continue
      const local = Number.parseInt(f[1]!.split(':').at(-1)!, 16)
      const remote = Number.parseInt(f[2]!.split(':').at(-1)!, 16)
      if (remote === serverPort) ports.push(local)
    }
  }
  return ports
}

const logged = (m: Mailhostd, msg: RegExp) => m.logs().filter((l) => typeof l.msg === 'string' && msg.test(l.msg))

async function untilLogged(m: Mailhostd, msg: RegExp, ms = 10_000): Promise<number> {
  const deadline = Date.now() + ms
  while (logged(m, msg).length === 0) {
    if (Date.now() > deadline) throw new Error(`no log line matching ${msg} within ${ms} ms:\n${m.proc.output().slice(-4000)}`)
    await sleep(10)
  }
  return Date.now()
}

eachPeerSet(t, async (t, set) => {
  t.test('two instances on one PostgreSQL: changes through A reach B within 1 s', async (t) => {
    const postgres = await startPostgres({ set })
    t.teardown(() => postgres.stop())
    const sql = new pg.Client({ connectionString: postgres.url })
    await sql.connect()
    t.teardown(() => sql.end())

    const config = {
      ...demoClusterConfig(),
      directory: { type: 'sql' },
      store: { url: postgres.url },
      // No settle time (tested in test/admin/move-settle.test.ts): moves complete at once here.
      admin: { tokens: DEMO_TOKENS, moves: { settle: '0s' } },
      // Far longer than the test: no answer of B's can become fresh by expiring.
      cache: { ttl: '10m', negativeTtl: '10m' },
      login: { secret: LOGIN_SECRET },
    }
    // One after the other: the first migrates the store.
    const A = await startMailhostd(config)
    t.teardown(() => A.stop())
    const B = await startMailhostd(config)
    t.teardown(() => B.stop())
    const api = adminApi(A.ports.http)
    const routes = DEMO_ROUTES

    // Seed through A. The forwarding alias has no API (aliases of an account are addresses it
    // owns; the `aliases` table is a plain list of forwardings): it goes into the store directly,
    // before B has looked anything up.
    const created = await Promise.all([
      api.post('/v1/accounts', { address: 'alice@example.org', backend: 'mx1', aliases: ['alice.liddell@example.org'] }),
      api.post('/v1/accounts', { address: 'bob@example.org', backend: 'mx2', aliases: ['robert@example.org'] }),
    ])
    t.same(created.map((r) => r.status), [201, 201], 'alice and bob created through A')
    await sql.query("insert into aliases (address, target) values ('builders@example.org', 'bob@example.org')")

    const bobKeys = [
      'bob@example.org',
      'Bob+Lists@Example.ORG', // user+ext@, case folded
      'bob@example.net', // alias domain
      'robert@example.org', // alternate address
      'robert+x@example.net', // alternate address, extension and alias domain
      'builders@example.org', // forwarding alias
      'anyone@example.com', // the demo catch-all, to bob
    ]
    const aliceKeys = ['alice@example.org', 'alice+x@example.org', 'alice@example.net', 'alice.liddell@example.org']

    await t.test('B warms its cache', async (t) => {
      for (const k of bobKeys) await warm(t, B, 'transport', k, `found ${routes.mx2}`)
      await warm(t, B, 'recipient', 'bob@example.org', 'found mx2.example.org')
      for (const k of aliceKeys) await warm(t, B, 'recipient', k, 'found mx1.example.org')
      await warm(t, B, 'transport', 'alice@example.org', `found ${routes.mx1}`)
    })

    await t.test('a move through A: B defers, then routes to the target', async (t) => {
      const start = await api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })
      const started = Date.now()
      t.equal(start.status, 201, 'move started on A')
      const move = start.body.moves[0] as { id: number; state: string }
      t.equal(move.state, 'copied', 'no hook: straight to copied')
      await follow(t, 'move start', started, [
        ...bobKeys.map((k) => onB(B, 'transport', k, 'temp')),
        // Recipient maps still say the address exists: the mail is accepted and waits.
        onB(B, 'recipient', 'bob@example.org', 'found mx2.example.org'),
      ])
      const r = await postmapQuery(socketmap(B.ports.socketmap, 'transport'), 'bob@example.org', set)
      t.same({ code: r.code !== 0, out: r.stdout, temp: /query error|lookup error/.test(r.stderr) }, { code: true, out: '', temp: true }, "postmap over B's socketmap: a temporary lookup failure, not a route")

      const complete = await api.post(`/v1/moves/${move.id}/complete`)
      const completed = Date.now()
      t.same({ status: complete.status, state: complete.body.state }, { status: 200, state: 'completed' }, 'move completed on A')
      const followed = await follow(t, 'move complete', completed, [
        ...bobKeys.map((k) => onB(B, 'transport', k, `found ${routes.mx1}`)),
        onB(B, 'recipient', 'bob@example.org', 'found mx1.example.org'),
      ])
      // Mail that waited during the move must go to the target: once B has deferred, it may
      // answer TEMP or the new route, never the old one.
      for (const f of followed) t.notOk(f.seen.includes(`found ${routes.mx2}`), `${f.name}: never the old route after the move started (${f.seen.join(' -> ')})`)
      const pm = await postmapQuery(socketmap(B.ports.socketmap, 'transport'), 'Bob+Lists@Example.ORG', set)
      t.same({ code: pm.code, out: pm.stdout.trim() }, { code: 0, out: routes.mx1 }, "postmap over B's socketmap: the new route")
      // Eviction is by dependency: the move did not flush B's cache.
      t.match(await lookup(B, 'transport', 'alice@example.org'), { outcome: 'found', value: routes.mx1, layer: 'cache' }, "alice's answer is still cached on B")
    })

    await t.test('a deletion through A: B answers notfound', async (t) => {
      for (const k of aliceKeys) t.match(await lookup(B, 'recipient', k), { outcome: 'found', layer: 'cache' }, `B still has ${k} cached`)
      const del = await api.del('/v1/accounts/alice@example.org')
      const deleted = Date.now()
      t.equal(del.status, 204, 'alice deleted through A')
      await follow(t, 'delete', deleted, [...aliceKeys.map((k) => onB(B, 'recipient', k, 'notfound')), onB(B, 'transport', 'alice@example.org', 'notfound')])
      const pm = await postmapQuery(socketmap(B.ports.socketmap, 'recipient'), 'alice@example.org', set)
      t.same({ code: pm.code, out: pm.stdout, err: /error/.test(pm.stderr) }, { code: 1, out: '', err: false }, "postmap over B's socketmap: no such user")
    })

    await t.test('a creation through A of addresses B had cached as misses: found', async (t) => {
      const erinKeys = ['erin@example.org', 'erin+x@example.org', 'erin@example.net', 'erin.e@example.org']
      for (const k of erinKeys) await warm(t, B, 'recipient', k, 'notfound')
      const made = await api.post('/v1/accounts', { address: 'erin@example.org', backend: 'mx2', aliases: ['erin.e@example.org'] })
      const createdAt = Date.now()
      t.equal(made.status, 201, 'erin created through A')
      await follow(t, 'create', createdAt, erinKeys.map((k) => onB(B, 'recipient', k, 'found mx2.example.org')))

      await warm(t, B, 'recipient', 'bobby@example.org', 'notfound')
      const patched = await api.patch('/v1/accounts/bob@example.org', { aliases: ['robert@example.org', 'bobby@example.org'] })
      const patchedAt = Date.now()
      t.equal(patched.status, 200, 'bob gets another alternate address through A')
      await follow(t, 'new alternate address', patchedAt, [onB(B, 'recipient', 'bobby@example.org', 'found mx1.example.org')])
    })

    await t.test("registry changes through A reach B's registry", async (t) => {
      const login = async () => {
        const r = await loginLookup(B, 'bob@example.org')
        return r.result === 'ok' ? `ok ${r.fields?.host}` : `${r.result} ${r.reason ?? ''}`.trim()
      }
      t.equal(await login(), 'ok 10.0.0.11', "B routes bob's logins to mx1")
      const maint = await api.patch('/v1/backends/mx1', { adminState: 'maintenance' })
      const maintAt = Date.now()
      t.same({ status: maint.status, state: maint.body.adminState }, { status: 200, state: 'maintenance' }, 'mx1 in maintenance through A')
      await follow(t, 'backend maintenance', maintAt, [
        { name: 'login bob@example.org', ask: login, want: 'tempfail backend unavailable (maintenance)' },
        // Mail still goes to a backend in maintenance: Postfix queues while it is down.
        onB(B, 'transport', 'bob@example.org', `found ${routes.mx1}`),
      ])
      const active = await api.patch('/v1/backends/mx1', { adminState: 'active' })
      const activeAt = Date.now()
      t.equal(active.status, 200, 'mx1 active again through A')
      await follow(t, 'backend active', activeAt, [{ name: 'login bob@example.org', ask: login, want: 'ok 10.0.0.11' }])

      t.match(await lookup(B, 'alias', 'anyone@example.edu'), { outcome: 'notfound', layer: 'rules' }, 'B does not serve example.edu yet')
      const dom = await api.post('/v1/domains', { name: 'example.edu', catchAll: ['bob@example.org'] })
      const domAt = Date.now()
      t.equal(dom.status, 201, 'example.edu created through A, with a catch-all to bob')
      await follow(t, 'new domain', domAt, [onB(B, 'alias', 'anyone@example.edu', 'found bob@example.org')])
      const frank = await api.post('/v1/accounts', { address: 'frank@example.edu', backend: 'mx2' })
      const frankAt = Date.now()
      t.equal(frank.status, 201, 'an account in the new domain through A')
      await follow(t, 'account in the new domain', frankAt, [onB(B, 'transport', 'frank@example.edu', `found ${routes.mx2}`)])
    })

    await t.test("B's listening session killed: B resyncs, and changes reach it again", async (t) => {
      const sessions = async () =>
        (
          await sql.query<{ pid: number; client_port: number }>('select pid, client_port from pg_stat_activity where application_name = $1', [
            LISTENER_APPLICATION_NAME,
          ])
        ).rows
      const before = await sessions()
      t.equal(before.length, 2, "A's and B's listening sessions")
      const bPorts = clientPortsOf(B.pid, postgres.port)
      const bSession = before.filter((s) => bPorts.includes(s.client_port))
      t.equal(bSession.length, 1, `B's listening session found by its client port (${bSession.map((s) => s.client_port).join(',')})`)

      // A change B never hears of: written in the store behind every instance's back, it stands
      // for a notification sent while B's session was down. B's warm cache keeps the old answer.
      await warm(t, B, 'transport', 'erin@example.org', `found ${routes.mx2}`)
      await sql.query("update accounts set mailhost = 'mx1.example.org' where address = 'erin@example.org'")
      t.match(await lookup(B, 'transport', 'erin@example.org'), { value: routes.mx2, layer: 'cache' }, 'B has not heard of it')

      const aLostBefore = logged(A, /listening session lost/).length
      const killedAt = Date.now()
      const killed = await sql.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [bSession[0]!.pid])
      t.same(killed.rows, [{ ok: true }], "B's listening session terminated")
      await untilLogged(B, /listening session lost/)
      const resyncAt = await untilLogged(B, /change notifications may have been lost/)
      delays.push({ what: 'resync: session killed -> B logs the resync', ms: resyncAt - killedAt, polls: 0, seen: [] })
      t.ok(logged(B, /listening again; resyncing caches/).length === 1, 'B listens again and says it resyncs')
      t.equal(logged(A, /listening session lost/).length, aLostBefore, "A's session was not touched")
      t.match(await lookup(B, 'transport', 'erin@example.org'), { outcome: 'found', value: routes.mx1, layer: 'directory' }, 'after the resync B answers what it never heard of')

      let after = await sessions()
      for (let i = 0; i < 100 && after.length < 2; i++) {
        await sleep(20)
        after = await sessions()
      }
      t.equal(after.length, 2, 'two listening sessions again')
      t.notOk(after.some((s) => s.pid === bSession[0]!.pid), "B's is a new one")

      await warm(t, B, 'recipient', 'erin@example.org', 'found mx1.example.org')
      await warm(t, B, 'recipient', 'erin+x@example.net', 'found mx1.example.org')
      const del = await api.del('/v1/accounts/erin@example.org')
      const deletedAt = Date.now()
      t.equal(del.status, 204, 'erin deleted through A')
      await follow(t, 'after resync', deletedAt, [onB(B, 'recipient', 'erin@example.org', 'notfound'), onB(B, 'recipient', 'erin+x@example.net', 'notfound')])
    })

    summarize(t, "B's delays after A's answer", delays)
  })
})
