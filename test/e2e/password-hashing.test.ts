// Password hashing off the event loop, against the built daemon (SQL directory on PGlite, the
// demo cluster plus an account with an Argon2id password of 4 times the default cost, so each
// check keeps a worker busy for a good while):
// - cached socketmap lookups keep being answered while Argon2id checks run: asked one after the
//   other on one connection, several are answered while each of 8 concurrent checks is computed
//   (on the main thread each check held every lookup up: one got through between two checks);
// - beyond passwords.maxQueue a login gets a temporary failure at once, never "wrong password",
//   an admin request that hashes a password a 503, and mailhostd_password_jobs_total counts them;
// - attempts the brakes tarpit or refuse compute no hash (no job, no directory password check);
// - SIGTERM ends the daemon and its worker threads with exit status 0.
// Ordering and counts only, no timings.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { hashArgon2id, ARGON2_DEFAULT_COST } from '../../src/auth/argon2.js'
import { adminApi, DEMO_TOKENS } from '../harness/admin-api.js'
import { ROOT, startMailhostd, type Mailhostd } from '../harness/mailhostd.js'
import { scrape } from '../ops/prom.js'
import { Client } from '../server/client.js'
import { askSocketmap } from '../ops/daemon.js'
import { demoClusterConfig } from './demo-table.js'

const SECRET = 'password-hashing-login-secret'
const SLOW = { address: 'slow@example.org', password: 'patience-is-4x' }
/** 32 times the default cost: one check holds the worker long enough to send an admin request meanwhile. */
const HOLD = { address: 'hold@example.org', password: 'patience-is-32x' }

const work = mkdtempSync(join(tmpdir(), 'mh-hashing-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))
const argon = async (password: string, times: number) =>
  `{ARGON2ID}${await hashArgon2id(Buffer.from(password), { ...ARGON2_DEFAULT_COST, passes: times * ARGON2_DEFAULT_COST.passes })}`
const seed = join(work, 'slow.sql')
writeFileSync(
  seed,
  `insert into accounts (address, mailhost, status, password_hash) values
     ('${SLOW.address}', 'mx1.example.org', 'active', '${await argon(SLOW.password, 4)}'),
     ('${HOLD.address}', 'mx1.example.org', 'active', '${await argon(HOLD.password, 32)}')
   on conflict (address) do nothing;\n`,
)

async function start(t: Test, config: Record<string, unknown>): Promise<Mailhostd> {
  const m = await startMailhostd(
    { ...demoClusterConfig(), admin: { tokens: DEMO_TOKENS }, ...config, login: { secret: SECRET, ...(config.login as object | undefined) } },
    { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`, '--seed-sql', seed] },
  )
  t.teardown(() => m.stop())
  return m
}

type Answer = { result: string; reason?: string }
let ips = 0
/** A Dovecot passdb verify; each from its own client address unless `ip` is given, so no brake applies. */
async function verify(m: Mailhostd, user: string, password: string, ip = `192.0.2.${++ips % 250}`): Promise<Answer> {
  const r = await fetch(`http://127.0.0.1:${m.ports.http}/v1/dovecot/passdb/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-auth-key': SECRET },
    body: JSON.stringify({ user, password, service: 'imap', remoteIp: ip }),
    signal: AbortSignal.timeout(60_000),
  })
  return (await r.json()) as Answer
}

/** mailhostd_password_jobs_total by outcome, and the directory's password checks. */
async function counts(m: Mailhostd, operation = 'verify') {
  const s = await scrape(m.ports.http)
  const jobs = (outcome: string) => s.value('mailhostd_password_jobs_total', { operation, outcome })
  return {
    done: jobs('done'),
    busy: jobs('busy'),
    all: s.value('mailhostd_password_jobs_total', { operation }),
    checks: s.count('mailhostd_directory_call_duration_seconds', { operation: 'verify_password' }),
  }
}

t.test('cached lookups are answered while Argon2id checks run', async (t) => {
  const m = await start(t, { passwords: { workers: 1, maxQueue: 64 }, lookup: { deadline: '60s' } })
  const c = await Client.connect(m.ports.socketmap)
  t.teardown(() => c.destroy())
  t.match(await askSocketmap(c, 'transport', 'alice@example.org'), /^OK /, 'alice cached')

  // Lookups one after the other on one connection, as a Postfix process asks, for as long as
  // the checks run (bounded); each check's answer notes how many lookups had been answered.
  let answered = 0
  let pending = 8
  const seenAt: number[] = []
  const checks = Array.from({ length: 8 }, (_, i) =>
    verify(m, SLOW.address, `wrong-${i}`).then((a) => {
      seenAt.push(answered)
      pending--
      return a.result
    }),
  )
  const lookups = new Set<string>()
  for (let i = 0; pending > 0 && i < 200_000; i++) {
    lookups.add(await askSocketmap(c, 'transport', 'alice@example.org'))
    answered++
  }
  t.same(await Promise.all(checks), Array(8).fill('mismatch'), 'every check answered: wrong password')
  t.same([...lookups], ['OK lmtp:inet:[10.0.0.11]:24'], `all ${answered} lookups found`)
  // One worker computes the checks one after the other. On the event loop each check held every
  // lookup until it was done: a lookup or two got through between two checks' answers.
  const between = seenAt.slice(1).map((n, i) => n - seenAt[i]!)
  t.ok(between.every((n) => n >= 5), `lookups kept being answered while each check was computed (lookups between consecutive checks' answers: ${between.join(', ')})`)
  const n = await counts(m)
  t.equal(n.done, 8, 'eight checks computed by the pool')

  // The admin API hashes new passwords on the pool too (SQL directory: ARGON2ID).
  const created = await adminApi(m.ports.http).post('/v1/accounts', { address: 'hashed@example.org', password: 'made-on-a-worker', backend: 'mx1' })
  t.equal(created.status, 201, JSON.stringify(created.body))
  t.equal((await counts(m, 'hash')).done, 1, 'one hash job')
  t.same(await verify(m, 'hashed@example.org', 'made-on-a-worker'), { result: 'ok', fields: { proxy: 'y', host: '10.0.0.11', port: '143' } })

  t.equal(await m.stop('SIGTERM'), 0, 'SIGTERM: exit status 0, worker threads and all')
})

t.test('beyond the queue: a temporary failure at once, counted; never a wrong password', async (t) => {
  const m = await start(t, { passwords: { workers: 1, maxQueue: 1 }, lookup: { deadline: '60s' } })
  const order: string[] = []
  const answers = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      verify(m, SLOW.address, i === 0 ? SLOW.password : `wrong-${i}`).then((a) => {
        order.push(a.result)
        return a
      }),
    ),
  )
  const tempfails = answers.filter((a) => a.result === 'tempfail')
  t.ok(tempfails.length >= 1, `a full queue refused some: ${order.join(' ')}`)
  t.ok(tempfails.every((a) => a.reason === 'password checks unavailable'), 'with the reason')
  t.ok(answers.every((a) => a.result === 'tempfail' || a.result === (a === answers[0] ? 'ok' : 'mismatch')), 'the others checked as usual')
  t.ok(order.lastIndexOf('tempfail') < Math.max(order.lastIndexOf('mismatch'), order.lastIndexOf('ok')), `refusals answered before the last computed check: ${order.join(' ')}`)
  const n = await counts(m)
  t.equal(n.busy, tempfails.length, 'mailhostd_password_jobs_total{outcome="busy"} counts each')
  t.equal(n.done, answers.length - tempfails.length, 'and outcome="done" the computed ones')

  // An admin request that must hash while the worker is busy and the queue is full: 503, retry.
  const holding = [verify(m, HOLD.address, 'hold-1'), verify(m, HOLD.address, 'hold-2')]
  await waitFor(() => queueFull(m))
  const refused = await adminApi(m.ports.http).post('/v1/accounts', { address: 'later@example.org', password: 'not-now', backend: 'mx1' })
  t.same((await Promise.all(holding)).map((a) => a.result), ['mismatch', 'mismatch'], 'the checks that held the worker')
  t.equal(refused.status, 503, JSON.stringify(refused.body))
  t.equal((refused.body as { code: string }).code, 'MH_PASSWORD_BUSY')
  t.equal((await counts(m, 'hash')).busy, 1, 'counted as a busy hash')
  const retried = await adminApi(m.ports.http).post('/v1/accounts', { address: 'later@example.org', password: 'not-now', backend: 'mx1' })
  t.equal(retried.status, 201, 'the retry succeeds once the worker is free')
})

t.test('attempts the brakes tarpit or refuse compute no hash', async (t) => {
  const m = await start(t, {
    passwords: { workers: 1, maxQueue: 8 },
    login: { brakes: { ip: { tarpitAfter: 1, refuseAfter: 3 }, tarpit: '1s', maxTarpit: '1s' } },
  })
  const ip = '198.51.100.7'
  t.same(await verify(m, SLOW.address, 'wrong-1', ip), { result: 'mismatch', reason: 'wrong password' })
  const before = await counts(m)
  t.equal(before.done, 1, 'the first failure was checked on the pool')

  t.same(await verify(m, SLOW.address, SLOW.password, ip), { result: 'mismatch', reason: 'too many failed logins' }, 'tarpitted: not checked, even the right password')
  t.same(await verify(m, SLOW.address, 'wrong-2', ip), { result: 'mismatch', reason: 'too many failed logins' }, 'tarpitted again')
  t.same(await verify(m, SLOW.address, SLOW.password, ip), { result: 'mismatch', reason: 'too many failed logins' }, 'then refused')
  const after = await counts(m)
  t.equal(after.all, before.all, 'no password job for tarpitted or refused attempts')
  t.equal(after.checks, before.checks, 'and no password check by the directory')
  const s = await scrape(m.ports.http)
  t.equal(s.value('mailhostd_brakes_total', { action: 'tarpit' }), 2, 'two tarpits')
  t.equal(s.value('mailhostd_brakes_total', { action: 'refuse' }), 1, 'one refusal')

  t.equal((await verify(m, SLOW.address, SLOW.password, '203.0.113.9')).result, 'ok', 'the owner from a clean address is checked and let in')
  t.equal((await counts(m)).done, 2)
})

/** True while a password job waits for the worker: the queue is full at maxQueue 1. */
async function queueFull(m: Mailhostd): Promise<boolean> {
  return (await scrape(m.ports.http)).value('mailhostd_password_jobs_waiting') >= 1
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}
