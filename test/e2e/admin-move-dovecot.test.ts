// Acceptance: a mailbox move seen by IMAP clients through a real Dovecot front proxy (the
// release's proxy-lua.conf + mailhostd.lua) in front of two real Dovecot backends, with mailhostd
// on a real slapd writing through its admin bind, on each peer set, and a copy hook that really
// copies: it adds the account's password line to the target backend's users file and has the
// mailbox copied with doveadm backup (run against the target backend's configuration, by the
// test: doveadm must be the backends' own, which on Debian 13 runs inside that set's root), then
// waits for the test to release it.
// - alice (mx1) is moved to mx2: while the hook runs, and after it succeeded until the move is
//   completed, her login gets NO [UNAVAILABLE] (temporary, never AUTHENTICATIONFAILED) while bob
//   logs in as usual; after completion she lands on mx2, in the mailbox copied from mx1.
// - bob's move to mx1 is aborted while its hook runs: the hook is stopped, and bob lands on mx2.

import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { adminApi, DEMO_TOKENS } from '../harness/admin-api.js'
import { helloSubject, loggedIn, startDovecot, startLoginCluster, type Dovecot } from '../harness/dovecot.js'
import { imapLogin } from '../harness/imap-client.js'

eachPeerSet(t, async (t, set) => {
  const hookDir = await mkdtemp(join(tmpdir(), 'mailhostd-move-hook-'))
  t.teardown(() => rm(hookDir, { recursive: true, force: true }))
  const hookScript = join(hookDir, 'hook.sh')

  const c = await startLoginCluster(t, {
    set,
    ldap: (slapd) => ({ admin: { bindDN: slapd.rootDN, bindPassword: slapd.rootPassword } }),
    // No settle time (tested in test/admin/move-settle.test.ts): no mail is routed here.
    config: { admin: { tokens: DEMO_TOKENS, moves: { hook: ['/bin/sh', hookScript, hookDir], settle: '0s' } } },
  })
  const proxy = await startDovecot({ set, role: 'proxy-lua', httpPort: c.m.ports.http, secret: c.secret })
  t.teardown(() => proxy.stop())
  const api = adminApi(c.m.ports.http)
  const imap = (user: string, password: string) => imapLogin(proxy.ports.imap, user, password)

  // The hook, written once the backends' directories are known. It runs as mailhostd's user (root
  // here), without a shell but for the /bin/sh it is given to. Markers in $1 let the test follow it.
  const backendLine = (id: string, d: Dovecot) => `  ${id}) echo "${d.dir}" ;;`
  await writeFile(
    hookScript,
    `#!/bin/sh
# Gets one mailbox copied from the source backend to the target backend: adds the password line,
# asks the test to copy the Maildir (copy-<account> names it) and waits until it has
# (copied-<account>), then waits for release-<account>.
set -eu
state="$1"
backend() {
  case "$1" in
${backendLine('mx1', c.mx1)}
${backendLine('mx2', c.mx2)}
  *) echo "unknown backend $1" >&2; exit 2 ;;
  esac
}
account="$MAILHOSTD_ACCOUNT"
local_part="\${account%@*}"
domain="\${account#*@}"
src_dir=$(backend "$MAILHOSTD_SOURCE_BACKEND")
dst_dir=$(backend "$MAILHOSTD_TARGET_BACKEND")
# The password line, unless the target has one already.
awk -F: -v a="$account" '$1 == a' "$dst_dir/users" | grep -q . ||
  awk -F: -v a="$account" '$1 == a' "$src_dir/users" >> "$dst_dir/users"
# The mailbox: the test makes the target's mailbox an exact copy of the source Maildir.
echo "$src_dir/vmail/$domain/$local_part/Maildir" > "$state/copy-$account.part"
mv "$state/copy-$account.part" "$state/copy-$account"
while [ ! -e "$state/copied-$account" ]; do sleep 0.1; done
while [ ! -e "$state/release-$account" ]; do sleep 0.1; done
echo "copied $account from $MAILHOSTD_SOURCE_BACKEND to $MAILHOSTD_TARGET_BACKEND"
`,
  )

  const waitFor = async (what: string, check: () => boolean | Promise<boolean>, ms = 30_000) => {
    const deadline = Date.now() + ms
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await sleep(50)
    }
  }
  /** Does the copy the hook asks for, with the target backend's doveadm; copied-<account> tells the hook. */
  const copyFor = async (t: Test, account: string, target: Dovecot) => {
    const request = join(hookDir, `copy-${account}`)
    await waitFor(`the hook to ask for ${account}'s copy`, () => existsSync(request))
    const maildir = (await readFile(request, 'utf8')).trim()
    const r = await target.doveadm(['backup', '-R', '-u', account, `maildir:${maildir}`])
    t.equal(r.code, 0, `doveadm backup of ${account} into ${target.dir}: ${r.stderr}`)
    await writeFile(join(hookDir, `copied-${account}`), '')
  }
  const move = async (id: number) => (await api.get(`/v1/moves/${id}`)).body as { state: string; detail: string | null }
  /** Waits until the move is in `state`; throws with the hook's output if it failed instead. */
  const waitForState = async (id: number, state: string) => {
    await waitFor(`move ${id} ${state}`, async () => {
      const m = await move(id)
      if (m.state === 'failed') throw new Error(`move ${id} failed: ${m.detail}`)
      return m.state === state
    })
  }
  /** mailhostd's last log line about a login of `user` with message `msg`, once it is there. */
  const loginLog = async (msg: 'login routed' | 'login refused', user: string, after = 0) => {
    const find = () => c.m.logs().filter((l) => l.msg === msg && l.user === user)
    await waitFor(`${msg} for ${user} in mailhostd's log`, () => find().length > after)
    return find().at(-1)
  }
  const logins = (log: string, user: string) => log.split('\n').filter((l) => loggedIn(user).test(l)).length

  t.test('alice is moved from mx1 to mx2: refused temporarily during the move, on mx2 afterwards', async (t) => {
    const before = await imap('alice@example.org', 'wonderland')
    t.same([before.login.status, before.subject], ['OK', helloSubject('mx1')], 'alice lands on mx1 before the move')
    await c.mx1.waitForLog(loggedIn('alice@example.org'))
    t.equal(logins(await c.mx2.log(), 'alice@example.org'), 0, 'alice has never logged in on mx2')

    const started = await api.post('/v1/moves', { target: 'mx2', accounts: ['alice@example.org'] })
    t.equal(started.status, 201, JSON.stringify(started.body))
    const id = started.body.moves[0].id as number
    t.match(started.body.moves[0], { account: 'alice@example.org', source: { backend: 'mx1' }, target: 'mx2', state: 'pending' })
    await copyFor(t, 'alice@example.org', c.mx2)
    t.equal((await move(id)).state, 'copying', 'the hook is running')
    t.match((await api.get('/v1/accounts/alice@example.org')).body, { backend: 'mx1', moving: true })

    const during = await imap('alice@example.org', 'wonderland')
    t.same([during.login.status, during.login.code], ['NO', 'UNAVAILABLE'], `alice while the hook runs: ${during.login.line}`)
    t.not(during.login.code, 'AUTHENTICATIONFAILED', 'a temporary failure, not "authentication failed"')
    t.match(await loginLog('login refused', 'alice@example.org'), { result: 'tempfail', reason: 'account being moved' }, "mailhostd's reason")
    const bob = await imap('bob@example.org', 'builder')
    t.same([bob.login.status, bob.subject], ['OK', helloSubject('mx2')], 'bob logs in as usual during the move')

    await writeFile(join(hookDir, 'release-alice@example.org'), '')
    await waitForState(id, 'copied')
    const copied = await imap('alice@example.org', 'wonderland')
    t.same([copied.login.status, copied.login.code], ['NO', 'UNAVAILABLE'], `alice after the copy, before completion: ${copied.login.line}`)
    t.equal(logins(await c.mx2.log(), 'alice@example.org'), 0, 'no login of alice reached mx2 during the move')

    const completed = await api.post(`/v1/moves/${id}/complete`)
    t.equal(completed.status, 200, JSON.stringify(completed.body))
    t.equal(completed.body.state, 'completed')
    t.match((await api.get('/v1/accounts/alice@example.org')).body, { backend: 'mx2', mailHost: 'mx2.example.org', moving: false })

    const mx1Logins = logins(await c.mx1.log(), 'alice@example.org')
    const routed = c.m.logs().filter((l) => l.msg === 'login routed' && l.user === 'alice@example.org').length
    const after = await imap('alice@example.org', 'wonderland')
    t.same([after.login.status, after.subject], ['OK', helloSubject('mx1')], 'alice logs in after the move and finds the message copied from mx1')
    await c.mx2.waitForLog(loggedIn('alice@example.org', '.*rip=127\\.0\\.0\\.1'))
    t.pass("mx2's log shows alice's login")
    t.match(await loginLog('login routed', 'alice@example.org', routed), { host: '127.0.0.1', port: c.mx2.ports.imap }, "mailhostd routed her to mx2's IMAP port")
    t.equal(logins(await c.mx1.log(), 'alice@example.org'), mx1Logins, 'no new login of alice on mx1')
    const onMx2 = await c.mx2.doveadm(['fetch', '-u', 'alice@example.org', 'hdr.subject', 'mailbox', 'INBOX'])
    t.equal(onMx2.code, 0, onMx2.stderr)
    t.match(onMx2.stdout, helloSubject('mx1'), "the message is in alice's mailbox on mx2")
  })

  t.test("bob's move is aborted while the hook runs: bob stays on mx2", async (t) => {
    const started = await api.post('/v1/moves', { target: 'mx1', accounts: ['bob@example.org'] })
    t.equal(started.status, 201, JSON.stringify(started.body))
    const id = started.body.moves[0].id as number
    await copyFor(t, 'bob@example.org', c.mx1)
    t.equal((await move(id)).state, 'copying', 'the hook is running')
    const during = await imap('bob@example.org', 'builder')
    t.same([during.login.status, during.login.code], ['NO', 'UNAVAILABLE'], `bob during the move: ${during.login.line}`)

    const mx2Logins = logins(await c.mx2.log(), 'bob@example.org')
    const aborted = await api.post(`/v1/moves/${id}/abort`)
    t.equal(aborted.status, 200, JSON.stringify(aborted.body))
    t.equal(aborted.body.state, 'aborted')
    t.match((await api.get('/v1/accounts/bob@example.org')).body, { backend: 'mx2', mailHost: 'mx2.example.org', moving: false })
    const after = await imap('bob@example.org', 'builder')
    t.same([after.login.status, after.subject], ['OK', helloSubject('mx2')], 'bob lands on mx2 after the abort')
    await waitFor("bob's login in mx2's log", async () => logins(await c.mx2.log(), 'bob@example.org') > mx2Logins)
    t.pass("mx2's log shows bob's new login")
    t.equal(logins(await c.mx1.log(), 'bob@example.org'), 0, 'bob never logged in on mx1, where the hook had copied him')
    // The hook was stopped: the move stays aborted instead of turning copied or failed.
    const ended = () => c.m.logs().find((l) => l.msg === 'move: copy hook ended' && l.move === id)
    await waitFor('the aborted hook to end', () => ended() !== undefined)
    t.match(ended(), { result: 'the move was aborted' }, 'mailhostd stopped the hook')
    t.equal((await move(id)).state, 'aborted')
  })
})
