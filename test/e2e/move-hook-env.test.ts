// Acceptance, on the built daemon: the move hook's environment is the documented one. mailhostd
// runs with its LDAP passwords and the login secret in variables named by `*Env` keys, and with
// other secrets in its environment; a hook that dumps its whole environment sees PATH, HOME,
// LANG, LC_ALL and TZ, the variable admin.moves.hookEnvironment names, and the move's MAILHOSTD_
// variables, and nothing else. The accounts moved have shell metacharacters in their local parts
// (RFC 5321 dot-atoms, which the admin API accepts): they are written to slapd, found by lookups
// and moved, and the hook gets each address byte for byte, since it is passed in a variable and
// never through a shell. A config that allow-lists a secret's variable does not start.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { adminApi, DEMO_TOKENS, type AdminApi } from '../harness/admin-api.js'
import { startMailhostd } from '../harness/mailhostd.js'
import { eachPeerSet } from '../harness/peer-set.js'
import { DEMO_ADMIN_DN, DEMO_ADMIN_PASSWORD, DEMO_BIND_PASSWORD, slapdDirectory, startSlapd } from '../harness/slapd.js'
import { demoClusterConfig } from './demo-table.js'

// Writes its whole environment, as JSON, where the test reads it, and says it is done.
const HOOK = `import { writeFileSync } from 'node:fs'
writeFileSync(process.argv[2] + '/env-' + process.env.MAILHOSTD_MOVE_ID + '.json', JSON.stringify(process.env))
`

const LOGIN_SECRET = 'login-secret-value-4b1e'
/** What the daemon's environment holds besides what the harness passes on: secrets and not. */
const DAEMON_ENV = {
  MH_T_LDAP_PW: DEMO_BIND_PASSWORD,
  MH_T_LDAP_ADMIN_PW: DEMO_ADMIN_PASSWORD,
  MH_T_LOGIN_SECRET: LOGIN_SECRET,
  PGPASSWORD: 'pg-password-77c2',
  MH_T_OTHER_SECRET: 'other-secret-19ad',
  MH_T_PASSED: 'passed-value-5e',
  LANG: 'C.UTF-8',
  TZ: 'UTC',
}
const SECRETS = [DEMO_BIND_PASSWORD, DEMO_ADMIN_PASSWORD, LOGIN_SECRET, 'pg-password-77c2', 'other-secret-19ad']

// Every character of atext a shell treats specially, and a leading '-' (an option, to a tool
// given the address as an argument).
const ACCOUNTS = ["-o'k$x|y&z{w}`id`@example.org", "#!%^~*/=?_x@example.org"]

/**
 * The environment without what tap's process tracking adds: it is loaded into the daemon through
 * NODE_OPTIONS and puts its own variables into every child the daemon spawns. They are the test
 * runner's, not mailhostd's (in production nothing patches spawn).
 */
function testRunnerless(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(([k, v]) => !k.startsWith('_TAPJS_PROCESSINFO_') && !(k === 'NODE_OPTIONS' && /@tapjs\/processinfo/.test(v))),
  )
}

const waitFor = async (what: string, check: () => boolean | Promise<boolean>, ms = 30_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}
const lookup = async (api: AdminApi, map: string, key: string) =>
  (await api.get(`/v1/lookup?map=${map}&key=${encodeURIComponent(key)}`)).body as { outcome: string; value?: string }

t.test('a config that passes a secret to the hook does not start', async (t) => {
  const refused = startMailhostd(
    { ...demoClusterConfig(), login: { secretEnv: 'MH_T_LOGIN_SECRET' }, admin: { moves: { hook: ['/bin/true'], hookEnvironment: ['MH_T_LOGIN_SECRET'] } } },
    { env: DAEMON_ENV, timeoutMs: 20_000 },
  )
  await t.rejects(refused, /admin\.moves\.hookEnvironment\[0\].*MH_T_LOGIN_SECRET holds a secret \(login\.secretEnv\)/)
})

eachPeerSet(t, async (t, set) => {
  t.test('the hook gets the documented environment and no secret; addresses with shell metacharacters reach it verbatim', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mh-hook-env-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const hook = join(dir, 'hook.mjs')
    writeFileSync(hook, HOOK)
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())

    const { bindPassword: _inline, ...ldap } = slapdDirectory(slapd, { admin: { bindDN: DEMO_ADMIN_DN, bindPasswordEnv: 'MH_T_LDAP_ADMIN_PW' } }).ldap
    const m = await startMailhostd(
      {
        ...demoClusterConfig(),
        directory: { type: 'ldap', ldap: { ...ldap, bindPasswordEnv: 'MH_T_LDAP_PW' } },
        login: { secretEnv: 'MH_T_LOGIN_SECRET' },
        admin: { tokens: DEMO_TOKENS, moves: { settle: '0s', hook: [process.execPath, hook, dir], hookEnvironment: ['MH_T_PASSED'] } },
      },
      { env: DAEMON_ENV },
    )
    t.teardown(() => m.stop())
    const api = adminApi(m.ports.http)

    for (const address of ACCOUNTS) {
      const created = await api.post('/v1/accounts', { address, backend: 'mx2' })
      t.match(created, { status: 201, body: { address, backend: 'mx2' } }, `created in LDAP: ${address}`)
      t.match(await lookup(api, 'transport', address), { outcome: 'found', value: 'lmtp:inet:[10.0.0.12]:24' }, `routed: ${address}`)
      t.equal((await api.get<{ address: string }>(`/v1/accounts/${encodeURIComponent(address)}`)).body.address, address, 'read back')
    }
    const started = await api.post<{ moves: { id: number; account: string }[] }>('/v1/moves', { target: 'mx1', accounts: ACCOUNTS })
    t.equal(started.status, 201)
    const moves = started.body.moves
    for (const move of moves) {
      await waitFor(`move ${move.id} copied`, async () => (await api.get<{ state: string }>(`/v1/moves/${move.id}`)).body.state === 'copied')
      const file = join(dir, `env-${move.id}.json`)
      t.ok(existsSync(file), 'the hook ran')
      const env = testRunnerless(JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>)
      const inherited: NodeJS.ProcessEnv = { ...process.env, ...DAEMON_ENV }
      const expected = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'MH_T_PASSED'].filter((k) => inherited[k] !== undefined)
      t.same(Object.keys(env).sort(), [...expected, 'MAILHOSTD_ACCOUNT', 'MAILHOSTD_MOVE_ID', 'MAILHOSTD_SOURCE_ADDRESS', 'MAILHOSTD_SOURCE_BACKEND', 'MAILHOSTD_TARGET_ADDRESS', 'MAILHOSTD_TARGET_BACKEND'].sort(), 'exactly the documented variables')
      for (const k of expected) t.equal(env[k], inherited[k], `${k} as mailhostd has it`)
      t.same(
        { account: env.MAILHOSTD_ACCOUNT, id: env.MAILHOSTD_MOVE_ID, source: [env.MAILHOSTD_SOURCE_BACKEND, env.MAILHOSTD_SOURCE_ADDRESS], target: [env.MAILHOSTD_TARGET_BACKEND, env.MAILHOSTD_TARGET_ADDRESS] },
        { account: move.account, id: String(move.id), source: ['mx2', '10.0.0.12'], target: ['mx1', '10.0.0.11'] },
        `the move's variables; the account verbatim: ${move.account}`,
      )
      const dump = JSON.stringify(env)
      for (const secret of SECRETS) t.notOk(dump.includes(secret), `no secret ${secret.slice(0, 6)}... in the hook's environment`)
    }
    t.same(moves.map((x) => x.account).sort(), [...ACCOUNTS].sort())

    for (const move of moves) t.equal((await api.post<{ state: string }>(`/v1/moves/${move.id}/complete`)).body.state, 'completed')
    for (const address of ACCOUNTS) {
      t.match(await lookup(api, 'transport', address), { outcome: 'found', value: 'lmtp:inet:[10.0.0.11]:24' }, `moved: ${address}`)
      t.equal((await api.del(`/v1/accounts/${encodeURIComponent(address)}`)).status, 204, `deleted: ${address}`)
      t.match(await lookup(api, 'transport', address), { outcome: 'notfound' })
    }
  })
})
