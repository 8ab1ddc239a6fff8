// Interop with the real Dovecot 2.3.19 dict client. First `doveadm dict get` on a `proxy:` URI
// (found values come back byte for byte, N is "doesn't exist", F is a temporary failure with our
// reason), then a throwaway Dovecot auth service with `passdb/userdb { driver = dict }` on our
// socket: the O{json} fields become passdb and userdb fields. The Dovecot instance has no inet
// listeners and lives in a temp dir; it is stopped (and killed at exit) whatever happens.
// Debian 12 only (the host's Dovecot): Dovecot 2.4 has no dict passdb and speaks dict protocol v4.

import t, { type Test } from 'tap'
import { access, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DictAnswer } from '../../src/login/types.js'
import { DICT_INTERNAL_FAILURE } from '../../src/server/dict-server.js'
import { run, start, type RunResult } from '../harness/process.js'
import { AWKWARD_VALUE, FakeDict, answerByKey, startDict } from './dict-peer.js'

/** sysexits.h codes doveadm uses: EX_NOUSER for a missing key, EX_TEMPFAIL for failures. */
const EX_NOUSER = 68
const EX_TEMPFAIL = 75
/** `doveadm auth test` exits 77 (EX_NOPERM) when authentication fails. */
const AUTH_FAILED = 77

/** A config doveadm accepts with nothing but its own dirs in a temp dir. */
async function doveadmConfig(dir: string): Promise<string> {
  const conf = join(dir, 'doveadm.conf')
  await writeFile(conf, [`base_dir = ${dir}/run`, `state_dir = ${dir}/state`, 'log_path = /dev/stderr', ''].join('\n'))
  return conf
}

async function dictGet(conf: string, socket: string, key: string, user: string): Promise<RunResult> {
  // -f json: the value comes back JSON-encoded, so every byte can be compared.
  return run('doveadm', ['-c', conf, '-f', 'json', 'dict', 'get', '-u', user, `proxy:idle_msecs=60000:${socket}:mailhost`, key], {
    timeoutMs: 20_000,
  })
}

t.test('doveadm dict get: found values arrive intact, N is "does not exist", F fails with our reason', async (t) => {
  const dict = new FakeDict(async (key, user): Promise<DictAnswer> => {
    if (key.includes('nul')) return { kind: 'found', value: 'before\0after' }
    return answerByKey(key, user)
  })
  const { path, dir, logLines } = await startDict(t, { dict })
  const conf = await doveadmConfig(dir)

  const found = await dictGet(conf, path, 'shared/passdb/alice@example.org', 'alice@example.org')
  t.equal(found.code, 0, found.stderr)
  t.same(JSON.parse(found.stdout), [{ value: JSON.stringify({ proxy: 'y', host: '10.0.0.5', key: 'shared/passdb/alice@example.org', user: 'alice@example.org' }) }])

  const awkward = await dictGet(conf, path, 'shared/passdb/awkward\tkey\n\x01ü@example.org', 'awkward\tuser')
  t.equal(awkward.code, 0, awkward.stderr)
  t.same(JSON.parse(awkward.stdout), [{ value: AWKWARD_VALUE }], 'TAB, LF, CR, \\x01 and UTF-8 in the value, byte for byte')

  const ghost = await dictGet(conf, path, 'shared/passdb/ghost@example.org', 'ghost@example.org')
  t.equal(ghost.code, EX_NOUSER, 'not found')
  t.match(ghost.stderr, "shared/passdb/ghost@example.org doesn't exist")

  const down = await dictGet(conf, path, 'shared/passdb/down@example.org', 'down@example.org')
  t.equal(down.code, EX_TEMPFAIL, 'failure is temporary')
  t.match(down.stderr, 'dict-server returned failure: directory down:\tLDAP timeout\nafter 3 s', 'the reason, TAB and LF included')

  const boom = await dictGet(conf, path, 'shared/passdb/boom@example.org', 'boom@example.org')
  t.equal(boom.code, EX_TEMPFAIL)
  t.match(boom.stderr, `dict-server returned failure: ${DICT_INTERNAL_FAILURE}`)

  // Dovecot keeps values as C strings: an escaped NUL arrives, and ends the value there.
  const nul = await dictGet(conf, path, 'shared/passdb/nul@example.org', 'nul@example.org')
  t.equal(nul.code, 0, nul.stderr)
  t.same(JSON.parse(nul.stdout), [{ value: 'before' }])

  t.same(
    dict.calls.map((c) => c.key),
    [
      'shared/passdb/alice@example.org',
      'shared/passdb/awkward\tkey\n\x01ü@example.org',
      'shared/passdb/ghost@example.org',
      'shared/passdb/down@example.org',
      'shared/passdb/boom@example.org',
      'shared/passdb/nul@example.org',
    ],
    'Dovecot escapes keys the way we unescape them',
  )
  t.same(dict.calls[1]!.user, 'awkward\tuser')
  const hellos = logLines().filter((l) => l.msg === 'dict handshake')
  t.equal(hellos.length, dict.calls.length, 'one connection and handshake per doveadm run')
  t.match(hellos[0], { minor: 2, valueType: 0, dict: 'mailhost' }, "Dovecot 2.3.19's handshake: 3.2, strings, the URI's dict name")
})

t.test('when we close instead of answering (a line over our limit), doveadm fails temporarily', async (t) => {
  // Every bad line is answered by closing; this is what Dovecot makes of that.
  const { path, dir, logLines } = await startDict(t, { limits: { maxRequestBytes: 40 } })
  const conf = await doveadmConfig(dir)
  const r = await dictGet(conf, path, 'shared/passdb/a-key-longer-than-the-limit@example.org', 'x')
  t.equal(r.code, EX_TEMPFAIL, r.stderr)
  t.match(r.stderr, /dict_lookup\(shared\/passdb\/a-key-longer-than-the-limit@example\.org\) failed: .*(Connection closed|disconnected)/i)
  t.equal(logLines().filter((l) => l.level === 'error').length, 0, 'nothing logged as an error on our side')
})

/** Fields as `doveadm auth test` prints them under "extra fields:". */
function extraFields(stdout: string): Record<string, string> {
  const lines = stdout.split('\n')
  const from = lines.indexOf('extra fields:')
  if (from < 0) return {}
  return Object.fromEntries(
    lines
      .slice(from + 1)
      .filter((l) => l.startsWith('  '))
      .map((l) => {
        const eq = l.indexOf('=')
        return eq < 0 ? [l.trim(), ''] : [l.slice(2, eq), l.slice(eq + 1)]
      }),
  )
}

async function startDovecotAuth(t: Test, dir: string, socket: string): Promise<{ conf: string; run: string }> {
  const runDir = join(dir, 'run')
  const dictConf = join(dir, 'dict-auth.conf.ext')
  await writeFile(
    dictConf,
    [
      `uri = proxy:idle_msecs=60000:${socket}:mailhost`,
      'default_pass_scheme = PLAIN',
      'iterate_disable = yes',
      'key passdb {',
      '  key = passdb/%s/%u',
      '  format = json',
      '}',
      'key userdb {',
      '  key = userdb/%u',
      '  format = json',
      '}',
      'passdb_objects = passdb',
      'userdb_objects = userdb',
      '',
    ].join('\n'),
  )
  const conf = join(dir, 'dovecot.conf')
  await writeFile(
    conf,
    [
      `base_dir = ${runDir}`,
      `state_dir = ${dir}/state`,
      `instance_name = mailhostd-dict-${process.pid}`,
      `log_path = ${dir}/dovecot.log`,
      // Auth only: no protocols, so no login services and no inet listeners.
      'protocols =',
      'listen = 127.0.0.1',
      'ssl = no',
      'auth_mechanisms = plain',
      'disable_plaintext_auth = no',
      // Failed logins are held 2 s by default; nothing to slow down here.
      'auth_failure_delay = 0',
      `passdb {\n  driver = dict\n  args = ${dictConf}\n}`,
      `userdb {\n  driver = dict\n  args = ${dictConf}\n}`,
      '',
    ].join('\n'),
  )
  const dovecot = start('dovecot', ['-F', '-c', conf])
  t.teardown(() => dovecot.stop('SIGTERM', 10_000))
  const deadline = Date.now() + 15_000
  for (;;) {
    const ready = await access(join(runDir, 'auth-client')).then(
      () => true,
      () => false,
    )
    if (ready) break
    if (dovecot.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`dovecot did not start: ${dovecot.output()}`)
    }
    await sleep(50)
  }
  return { conf, run: runDir }
}

t.test('Dovecot auth with passdb and userdb { driver = dict } on our socket', async (t) => {
  const dict = new FakeDict(async (key): Promise<DictAnswer> => {
    if (key === 'shared/passdb/imap/alice@example.org') {
      return { kind: 'found', value: JSON.stringify({ proxy: 'y', host: '10.0.0.5', port: '143', nopassword: 'y' }) }
    }
    if (key === 'shared/userdb/alice@example.org') return { kind: 'found', value: JSON.stringify({ user: 'alice@example.org', home: '/srv/mail/alice' }) }
    if (key.includes('down')) return { kind: 'fail', reason: 'directory down' }
    return { kind: 'notfound' }
  })
  const { path, dir } = await startDict(t, { dict, mode: 0o660 })
  const { conf, run: runDir } = await startDovecotAuth(t, dir, path)
  const auth = (user: string) =>
    run('doveadm', ['-c', conf, 'auth', 'test', '-a', join(runDir, 'auth-client'), '-x', 'service=imap', user, 'any password'], { timeoutMs: 20_000 })

  const alice = await auth('alice@example.org')
  t.equal(alice.code, 0, alice.stdout + alice.stderr)
  t.match(alice.stdout, 'passdb: alice@example.org auth succeeded')
  t.match(extraFields(alice.stdout), { user: 'alice@example.org', proxy: '', host: '10.0.0.5', port: '143' }, 'the JSON fields are passdb fields')

  const ghost = await auth('ghost@example.org')
  t.equal(ghost.code, AUTH_FAILED, 'N: authentication fails')
  t.notOk('code' in extraFields(ghost.stdout), 'as an unknown user, not a temporary failure')

  const down = await auth('down@example.org')
  t.equal(down.code, AUTH_FAILED)
  t.match(extraFields(down.stdout), { code: 'temp_fail' }, 'F: a temporary failure')

  const lookup = await run('doveadm', ['-c', conf, 'auth', 'lookup', '-a', join(runDir, 'auth-userdb'), '-x', 'service=imap', 'alice@example.org'], {
    timeoutMs: 20_000,
  })
  t.equal(lookup.code, 0, lookup.stderr)
  t.match(lookup.stdout, /host\s*: 10\.0\.0\.5/)
  t.match(lookup.stdout, /port\s*: 143/)

  const user = await run('doveadm', ['-c', conf, '-f', 'json', 'user', '-a', join(runDir, 'auth-userdb'), 'alice@example.org'], { timeoutMs: 20_000 })
  t.equal(user.code, 0, user.stderr)
  const fields = JSON.parse(user.stdout) as { field: string; value: string }[]
  t.equal(fields.find((f) => f.field === 'home')?.value, '/srv/mail/alice', 'the userdb JSON fields are userdb fields')

  t.same(
    dict.calls.map((c) => c.key),
    [
      'shared/passdb/imap/alice@example.org',
      'shared/passdb/imap/ghost@example.org',
      'shared/passdb/imap/down@example.org',
      'shared/passdb/imap/alice@example.org',
      'shared/userdb/alice@example.org',
    ],
  )
  t.ok(dict.calls.every((c) => c.key.endsWith(`/${c.user}`)), 'the user field is the auth user')
})
