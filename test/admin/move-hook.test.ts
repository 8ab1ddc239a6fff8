// Moves with a copy hook, on the daemon in-process: the hook gets the documented environment,
// runs a bounded number at a time, and its end decides copied or failed (with its output's
// tail); an abort kills it; a timeout kills it; autoComplete finishes the move; a daemon that
// stops while a hook runs records the move as failed instead of leaving it copying forever.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { AdminApi } from '../harness/admin-api.js'
import { hookEnvironment } from '../../src/admin/move-hook.js'
import { lookup, startAdminDaemon } from './daemon.js'

// The hook: records its environment, reports that it started, then waits until the test
// writes an exit code to release-<account>, and exits with it after printing some output.
const HOOK = `#!/bin/sh
dir="$1"
env | grep '^MAILHOSTD_' | sort > "$dir/env-$MAILHOSTD_ACCOUNT"
echo $$ > "$dir/started-$MAILHOSTD_ACCOUNT"
while [ ! -f "$dir/release-$MAILHOSTD_ACCOUNT" ]; do sleep 0.05; done
code=$(cat "$dir/release-$MAILHOSTD_ACCOUNT")
echo "copying $MAILHOSTD_ACCOUNT"
[ "$code" = 0 ] || echo "doveadm(backup): Error: connection refused" >&2
exit "$code"
`

async function hooked(t: Test, moves: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mh-hook-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const script = join(dir, 'hook.sh')
  writeFileSync(script, HOOK, { mode: 0o755 })
  const h = await startAdminDaemon(t, { dataDir: join(dir, 'data'), admin: { moves: { hook: ['/bin/sh', script, dir], ...moves } } })
  return { ...h, dir }
}

const waitFor = async (what: string, check: () => boolean | Promise<boolean>, ms = 15_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}
const state = async (api: AdminApi, id: number) => (await api.get(`/v1/moves/${id}`)).body.state as string
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test("hookEnvironment: the base variables and the named ones when set, then the move's; nothing else", async (t) => {
  const daemon = { PATH: '/usr/bin:/bin', HOME: '/var/lib/mailhostd', TZ: 'UTC', MH_LDAP_PW: 'secret', SSH_AUTH_SOCK: '/run/ssh', MAILHOSTD_ACCOUNT: 'stale' }
  const move = { MAILHOSTD_MOVE_ID: '7', MAILHOSTD_ACCOUNT: 'bob@example.org' }
  t.same(hookEnvironment(daemon, [], move), { PATH: '/usr/bin:/bin', HOME: '/var/lib/mailhostd', TZ: 'UTC', MAILHOSTD_MOVE_ID: '7', MAILHOSTD_ACCOUNT: 'bob@example.org' })
  t.same(hookEnvironment(daemon, ['SSH_AUTH_SOCK', 'UNSET_ONE'], move), { PATH: '/usr/bin:/bin', HOME: '/var/lib/mailhostd', TZ: 'UTC', SSH_AUTH_SOCK: '/run/ssh', MAILHOSTD_MOVE_ID: '7', MAILHOSTD_ACCOUNT: 'bob@example.org' })
  t.same(hookEnvironment({}, [], move), move, 'an empty environment: only the move')
})

t.test('a hook that succeeds: copying, then copied; the environment names the account and both backends', async (t) => {
  const h = await hooked(t)
  const { body } = await h.api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })
  const id = body.moves[0].id
  t.equal(body.moves[0].state, 'pending', 'waiting for the hook')
  await waitFor('the hook to start', () => existsSync(join(h.dir, 'started-bob@example.org')))
  await waitFor('copying', async () => (await state(h.api, id)) === 'copying')
  t.match(await lookup(h.api, 'transport', 'bob@example.org'), { outcome: 'temp' }, 'mail waits while the copy runs')
  t.same(readFileSync(join(h.dir, 'env-bob@example.org'), 'utf8').trim().split('\n'), [
    'MAILHOSTD_ACCOUNT=bob@example.org',
    `MAILHOSTD_MOVE_ID=${id}`,
    'MAILHOSTD_SOURCE_ADDRESS=10.0.0.12',
    'MAILHOSTD_SOURCE_BACKEND=mx2',
    'MAILHOSTD_TARGET_ADDRESS=10.0.0.11',
    'MAILHOSTD_TARGET_BACKEND=mx1',
  ])
  writeFileSync(join(h.dir, 'release-bob@example.org'), '0')
  await waitFor('copied', async () => (await state(h.api, id)) === 'copied')
  t.match(await lookup(h.api, 'transport', 'bob@example.org'), { outcome: 'temp' }, 'still waits: completing is the admin\'s call')
  t.equal((await h.api.post(`/v1/moves/${id}/complete`)).body.state, 'completed')
  t.match(await lookup(h.api, 'transport', 'bob@example.org'), { outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24' })
  const audit = await h.api.get(`/v1/audit?subjectType=move&subject=${id}`)
  t.same(audit.body.entries.map((e: { action: string; actor: string }) => `${e.action} ${e.actor}`), ['complete demo-admin', 'copied mailhostd', 'start demo-admin'])
})

t.test('a hook that fails: failed with its output; complete needs force', async (t) => {
  const h = await hooked(t)
  const id = (await h.api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })).body.moves[0].id
  await waitFor('the hook to start', () => existsSync(join(h.dir, 'started-bob@example.org')))
  writeFileSync(join(h.dir, 'release-bob@example.org'), '3')
  await waitFor('failed', async () => (await state(h.api, id)) === 'failed')
  const move = (await h.api.get(`/v1/moves/${id}`)).body
  t.match(move.detail, /^exit status 3: .*copying bob@example\.org[\s\S]*connection refused/)
  t.match(await lookup(h.api, 'transport', 'bob@example.org'), { outcome: 'temp' }, 'a failed copy keeps the mail waiting')
  const refused = await h.api.post(`/v1/moves/${id}/complete`)
  t.equal(refused.status, 409)
  t.match(refused.body.detail, /force=true/)
  t.equal((await h.api.post(`/v1/moves/${id}/complete?force=true`)).body.state, 'completed')
})

t.test('abort while the hook runs: the hook is killed, the account stays where it was', async (t) => {
  const h = await hooked(t)
  const id = (await h.api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })).body.moves[0].id
  await waitFor('the hook to start', () => existsSync(join(h.dir, 'started-bob@example.org')))
  const pid = Number(readFileSync(join(h.dir, 'started-bob@example.org'), 'utf8'))
  t.equal((await h.api.post(`/v1/moves/${id}/abort`)).body.state, 'aborted')
  await waitFor('the hook to be killed', () => !alive(pid))
  t.match(await lookup(h.api, 'transport', 'bob@example.org'), { outcome: 'found', value: 'lmtp:inet:[10.0.0.12]:24' })
  await sleep(200)
  t.equal(await state(h.api, id), 'aborted', 'the killed hook did not turn the abort into a failure')
})

t.test('at most `concurrency` hooks at once; a timeout kills a hook; autoComplete completes', async (t) => {
  const h = await hooked(t, { concurrency: 1, hookTimeout: '1s', autoComplete: true })
  const moves = (await h.api.post('/v1/moves', { target: 'mx2', accounts: ['alice@example.org', 'carol@example.org'] })).body.moves
  await waitFor('the first hook', () => existsSync(join(h.dir, 'started-alice@example.org')))
  t.notOk(existsSync(join(h.dir, 'started-carol@example.org')), 'the second waits for the first')
  await waitFor('the timeout', async () => (await state(h.api, moves[0].id)) === 'failed')
  t.match((await h.api.get(`/v1/moves/${moves[0].id}`)).body.detail, /ran longer than 1000 ms/)
  await waitFor('the second hook', () => existsSync(join(h.dir, 'started-carol@example.org')))
  writeFileSync(join(h.dir, 'release-carol@example.org'), '0')
  await waitFor('completed', async () => (await state(h.api, moves[1].id)) === 'completed')
  t.match(await lookup(h.api, 'transport', 'carol@example.org'), { outcome: 'found', value: 'lmtp:inet:[10.0.0.12]:24' }, 'completed without an admin')
})

t.test('the daemon stops while a hook runs: the move is failed, not left copying', async (t) => {
  const h = await hooked(t)
  const id = (await h.api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })).body.moves[0].id
  await waitFor('the hook to start', () => existsSync(join(h.dir, 'started-bob@example.org')))
  const pid = Number(readFileSync(join(h.dir, 'started-bob@example.org'), 'utf8'))
  await h.daemon.close(1000)
  t.notOk(alive(pid), 'the hook was stopped')
  t.ok(h.logs().includes('mailhostd stopped while the hook ran'), 'the reason is logged')
  const after = await startAdminDaemon(t, { dataDir: join(h.dir, 'data') })
  const move = (await after.api.get(`/v1/moves/${id}`)).body
  t.match(move, { state: 'failed', detail: /mailhostd stopped while the hook ran/ }, 'recorded as failed in the store')
  t.match(await lookup(after.api, 'transport', 'bob@example.org'), { outcome: 'temp' }, 'the account still waits for an admin')
})
