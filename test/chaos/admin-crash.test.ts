// Crash recovery of admin writes (issue 13, item 5), against the built daemon on real PostgreSQL,
// with the SQL directory and with the LDAP directory on slapd, on both peer sets. Each round:
// concurrent account creates with Idempotency-Keys, forced move completions and copy hooks that
// block, then SIGKILL at a point taken from observed progress, then a restart, then the checks:
//   - every key retried gets the original answer or a fresh success, never "in progress";
//   - every account has exactly one create entry in the audit log;
//   - no move's account names the target unless the move is completed (and the reverse);
//   - no move is copying without a running hook of the new process, within seconds of start;
//     and a move recovered that way completes with force=true or aborts.
// The windows are hit deterministically: every round kills while hooks block (hold* accounts),
// and round 0 holds an exclusive lock on audit_log, so every write stops at its audit entry and
// the kill lands there (after the directory write on a daemon that writes them apart, inside
// the one transaction on one that does not). Later rounds kill after a random number of answers
// (seed in the output; CRASH_SEED repeats it). `npm run chaos` runs more rounds (size.ts).

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import t, { type Test } from 'tap'
import { demoClusterConfig } from '../e2e/demo-table.js'
import { adminApi, DEMO_TOKENS, type AdminApi, type ApiReply } from '../harness/admin-api.js'
import { startMailhostd, type Mailhostd } from '../harness/mailhostd.js'
import { eachPeerSet, type PeerSet } from '../harness/peer-set.js'
import { startPostgres, type Pg } from '../harness/postgres.js'
import { isAlive } from '../harness/process.js'
import { slapdDirectory, startSlapd } from '../harness/slapd.js'
import { SIZE } from './size.js'

const ROUNDS = Number(process.env.ADMIN_CRASH_ROUNDS ?? SIZE.adminCrashRounds)
/** Per round: creates with keys, moves force-completed, moves whose hook blocks. */
const CREATES = 6
const COMPLETES = 3
const HOLDS = 2
/** "Within seconds of start": how long a copying move may wait for the recovery to see it. */
const RECOVERY_BOUND_MS = 15_000

// The copy hook: records that it started (move id and pid), then copies at once, except for the
// accounts named hold*, whose copy never ends: the daemon is killed while it runs.
const HOOK = `#!/bin/sh
dir="$1"
echo "$PPID" > "$dir/started-$MAILHOSTD_MOVE_ID-$$"
case "$MAILHOSTD_ACCOUNT" in
  hold*) while :; do sleep 0.1; done ;;
esac
exit 0
`

/** A small seeded generator, so a failing round can be repeated with CRASH_SEED. */
function random(seed: number): () => number {
  let s = seed % 2147483647 || 1
  return () => (s = (s * 48271) % 2147483647) / 2147483647
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(25)
  }
}

interface Move {
  id: number
  account: string
  state: string
}

interface Sent {
  readonly key: string
  readonly body: { address: string; password: string }
  /** The answer the first request got, if it got one before the kill. */
  reply?: ApiReply
}

interface Fixture {
  directory: 'sql' | 'ldap'
  pg: Pg
  hookDir: string
  config: Record<string, unknown>
  daemon: Mailhostd
  api: AdminApi
}

async function start(f: Fixture): Promise<void> {
  f.daemon = await startMailhostd(f.config, { timeoutMs: 60_000 })
  f.api = adminApi(f.daemon.ports.http)
}

/** Pids of hook processes (and the daemon that started them) by move id. */
function hooks(dir: string): { move: number; pid: number; parent: number }[] {
  return readdirSync(dir)
    .filter((n) => n.startsWith('started-'))
    .map((n) => {
      const [, move, pid] = n.split('-')
      return { move: Number(move), pid: Number(pid), parent: Number(readFileSync(join(dir, n), 'utf8').trim()) }
    })
}

/** Parent pid of a running process, from /proc. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return undefined
  }
}

/** Stops hook processes the killed daemons left behind (our test's own processes). */
function stopOrphanHooks(dir: string, except: number): void {
  for (const h of hooks(dir)) {
    if (h.parent !== except && isAlive(h.pid)) process.kill(h.pid, 'SIGKILL')
  }
}

async function moveState(api: AdminApi, id: number): Promise<string> {
  const r = await api.get<Move>(`/v1/moves/${id}`)
  if (r.status !== 200) throw new Error(`GET /v1/moves/${id}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body.state
}

/** Sessions of the daemon waiting for a lock (the audit_log lock of round 0). */
async function lockWaiters(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity where application_name = 'mailhostd' and wait_event_type = 'Lock'`,
  )
  return rows[0]!.n
}

async function round(t: Test, f: Fixture, r: number, mode: 'lock' | 'random', rand: () => number): Promise<void> {
  const api = f.api
  // Accounts to move, on mx1: completed by force during the load, or held by their hook.
  const movers = [...Array(COMPLETES).keys()].map((i) => `mv${r}-${i}@example.org`)
  const holders = [...Array(HOLDS).keys()].map((i) => `hold${r}-${i}@example.org`)
  for (const address of [...movers, ...holders]) {
    const res = await api.post('/v1/accounts', { address, backend: 'mx1' })
    t.equal(res.status, 201, `setup: ${address} created`)
  }
  const started = await api.post<{ moves: Move[] }>('/v1/moves', { target: 'mx2', accounts: movers })
  t.equal(started.status, 201, 'setup: moves started')
  const moveIds = started.body.moves.map((m) => m.id)
  await waitFor('the quick hooks to copy', async () => (await Promise.all(moveIds.map((id) => moveState(api, id)))).every((s) => s === 'copied'))
  const held = await api.post<{ moves: Move[] }>('/v1/moves', { target: 'mx2', accounts: holders })
  t.equal(held.status, 201, 'setup: held moves started')
  const holdIds = held.body.moves.map((m) => m.id)
  await waitFor('the held hooks to run', async () => (await Promise.all(holdIds.map((id) => moveState(api, id)))).every((s) => s === 'copying'))

  let locker: pg.Client | undefined
  if (mode === 'lock') {
    locker = new pg.Client({ connectionString: f.pg.url })
    await locker.connect()
    await locker.query('begin')
    await locker.query('lock table audit_log in exclusive mode')
    // Released below once the daemon is killed; if the round fails before that, here, so that
    // the next round's writes are not held by this one's lock.
    const held = locker
    t.teardown(() => held.end().catch(() => undefined))
  }
  // The load: every request at once; creates queue behind one another in the daemon.
  const sent: Sent[] = [...Array(CREATES).keys()].map((i) => ({
    key: `crash-${r}-${i}-${rand().toString(36).slice(2, 8)}`,
    body: { address: `new${r}-${i}@example.org`, password: `secret-${r}-${i}` },
  }))
  let answered = 0
  const requests = [
    ...sent.map((s) =>
      api.post('/v1/accounts', s.body, { idempotencyKey: s.key }).then((reply) => {
        s.reply = reply
        answered++
      }),
    ),
    ...moveIds.map((id) => api.post(`/v1/moves/${id}/complete?force=true`).then(() => answered++)),
  ].map((p) => p.catch(() => undefined))

  if (mode === 'lock') {
    // One create (they run one at a time) and every completion stop at the audit entry.
    // Bounded like the random mode's wait: the hooks, the password hashing and the creates
    // queued in front take a while on a loaded two-core machine (a CI run once passed 30 s).
    await waitFor('the writes to stop at the audit lock', async () => (await lockWaiters(locker!)) >= 1 + COMPLETES, 60_000)
  } else {
    const after = 1 + Math.floor(rand() * (CREATES + COMPLETES - 1))
    t.comment(`round ${r}: kill after ${after} answer(s)`)
    await waitFor(`${after} answers`, () => answered >= after, 60_000)
  }
  const killed = f.daemon.pid
  await f.daemon.stop('SIGKILL')
  if (locker) {
    await locker.query('rollback')
    await locker.end()
  }
  await Promise.all(requests)
  t.comment(`round ${r} (${mode}): killed with ${answered} of ${requests.length} answered`)

  await start(f)
  const restarted = f.daemon.pid

  // No move copying without a running hook of the new process, within seconds of start.
  const ours = [...moveIds, ...holdIds]
  const orphanedCopy = async () => {
    const states = await Promise.all(ours.map(async (id) => ({ id, state: await moveState(f.api, id) })))
    return states.filter(({ id, state }) => state === 'copying' && !hooks(f.hookDir).some((h) => h.move === id && h.parent === restarted && parentOf(h.pid) === restarted))
  }
  const deadline = Date.now() + RECOVERY_BOUND_MS
  let left = await orphanedCopy()
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100)
    left = await orphanedCopy()
  }
  t.same(left, [], `no move copying without a running hook ${RECOVERY_BOUND_MS / 1000} s after the restart`)
  const logged = (msg: string, field?: string, value?: string) =>
    f.daemon.logs().some((l) => String(l.msg).startsWith(msg) && (field === undefined || l[field] === value))
  t.ok(logged('moves: copy hooks of a stopped instance recorded as failed'), 'the recovery found the hooks the kill orphaned')
  if (mode === 'lock') {
    // The kill landed in the windows: after the LDAP write, before its record; or inside the
    // one SQL transaction, which took the key's claim with it.
    if (f.directory === 'ldap') {
      t.ok(logged('account write of a stopped request resolved', 'outcome', 'written'), 'an LDAP create that landed was recorded by the recovery')
      t.ok(logged('move completion of a stopped request resolved', 'outcome', 'completed'), 'an LDAP flip that landed completed its move in the recovery')
    } else {
      t.ok(logged('Idempotency-Keys of stopped requests freed'), 'keys of creates the kill rolled back were freed')
    }
  }
  stopOrphanHooks(f.hookDir, restarted)
  t.not(killed, restarted)

  // Every key retried: the original answer, or a fresh success; never "in progress".
  for (const s of sent) {
    const retry = await f.api.post('/v1/accounts', s.body, { idempotencyKey: s.key })
    t.equal(retry.status, 201, `retry of ${s.body.address} (first answer: ${s.reply?.status ?? 'none'}) succeeds: ${JSON.stringify(retry.body)}`)
    if (s.reply?.status === 201) {
      t.equal(retry.headers.get('idempotent-replayed'), 'true', `${s.body.address}: the first answer, replayed`)
      t.same(retry.body, s.reply.body, `${s.body.address}: the same answer`)
    }
  }

  // Every account has exactly one create entry in the audit log.
  const store = new pg.Client({ connectionString: f.pg.url })
  await store.connect()
  try {
    const { rows } = await store.query<{ subject: string; n: number }>(
      `select subject, count(*)::int as n from audit_log where subject_type = 'account' and action = 'create' group by subject`,
    )
    const audited = new Map(rows.map((x) => [x.subject, x.n]))
    for (const address of [...sent.map((s) => s.body.address), ...movers, ...holders]) {
      const account = await f.api.get(`/v1/accounts/${encodeURIComponent(address)}`)
      t.equal(account.status, 200, `${address} exists`)
      t.equal(audited.get(address), 1, `${address}: one create entry in the audit log`)
    }

    // No move's account names the target unless the move is completed, and the reverse.
    for (const id of ours) {
      const move = (await f.api.get<Move>(`/v1/moves/${id}`)).body
      const account = (await f.api.get<{ backend: string | null }>(`/v1/accounts/${encodeURIComponent(move.account)}`)).body
      const flipped = account.backend === 'mx2'
      t.equal(flipped, move.state === 'completed', `move ${id} (${move.state}): the directory names ${account.backend}`)
      const completes = await store.query<{ n: number }>(
        `select count(*)::int as n from audit_log where subject_type = 'move' and subject = $1 and action = 'complete'`,
        [String(id)],
      )
      t.equal(completes.rows[0]!.n, move.state === 'completed' ? 1 : 0, `move ${id}: complete audited ${move.state === 'completed' ? 'once' : 'never'}`)
    }
  } finally {
    await store.end()
  }

  // What the crash left is finished by hand as an admin would: the held moves (failed now)
  // complete by force or abort; the rest complete.
  for (const [i, id] of ours.entries()) {
    const state = await moveState(f.api, id)
    if (state === 'completed' || state === 'aborted') continue
    const action = i % 2 === 0 ? `/v1/moves/${id}/complete?force=true` : `/v1/moves/${id}/abort`
    const res = await f.api.post(action)
    t.equal(res.status, 200, `move ${id} (${state}): ${action.split('/').at(-1)} works: ${JSON.stringify(res.body)}`)
  }
  // Nothing of this round keeps running into the next: hooks of the new process end with its moves.
  await waitFor('no hook of this round left', () => hooks(f.hookDir).every((h) => !isAlive(h.pid)), 30_000).catch(() => stopOrphanHooks(f.hookDir, -1))
}

async function crashRounds(t: Test, set: PeerSet, directory: 'sql' | 'ldap'): Promise<void> {
  const pgServer = await startPostgres({ set })
  t.teardown(() => pgServer.stop())
  let dirConfig: Record<string, unknown> = {}
  if (directory === 'ldap') {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    dirConfig = { directory: slapdDirectory(slapd, { admin: { bindDN: slapd.rootDN, bindPassword: slapd.rootPassword } }) }
  }
  const hookDir = mkdtempSync(join(tmpdir(), 'mh-crash-'))
  t.teardown(() => {
    stopOrphanHooks(hookDir, -1)
    rmSync(hookDir, { recursive: true, force: true })
  })
  const script = join(hookDir, 'hook.sh')
  writeFileSync(script, HOOK, { mode: 0o755 })
  const f: Omit<Fixture, 'daemon' | 'api'> & Partial<Fixture> = {
    directory,
    pg: pgServer,
    hookDir,
    config: {
      ...demoClusterConfig(),
      ...dirConfig,
      store: { url: pgServer.url },
      admin: { tokens: DEMO_TOKENS, moves: { settle: '0s', hook: ['/bin/sh', script, hookDir], concurrency: 8 } },
    },
  }
  await start(f as Fixture)
  t.teardown(() => f.daemon!.stop())
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000)
  t.comment(`${directory} directory, ${set.label}: ${ROUNDS} rounds, CRASH_SEED=${seed}`)
  const rand = random(seed)
  for (let r = 0; r < ROUNDS; r++) {
    const mode = r === 0 ? 'lock' : 'random'
    await t.test(`round ${r}: killed ${mode === 'lock' ? 'at the audit entry' : 'at a random answer'}, while hooks run`, (t) => round(t, f as Fixture, r, mode, rand))
  }
}

eachPeerSet(t, async (t, set) => {
  await t.test('SQL directory on PostgreSQL', (t) => crashRounds(t, set, 'sql'))
  await t.test('LDAP directory on slapd', (t) => crashRounds(t, set, 'ldap'))
})
