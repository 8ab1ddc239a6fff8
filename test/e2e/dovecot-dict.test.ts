// Acceptance: the dict variant. A real Dovecot front proxy running dovecot/2.3/proxy-dict.conf and
// dovecot/2.3/dovecot-dict-auth.conf.ext asks the built mailhostd over its dict socket (listen.dict)
// where each mailbox lives; mailhostd answers nopassword, so the two real Dovecot backends check
// the passwords. Covered: routing (IMAP, POP3), alternate address to the canonical mailbox,
// wrong password refused by the backend, unknown and disabled users refused by the proxy,
// `doveadm auth lookup` / `doveadm user` showing what mailhostd answered, and the directory
// down giving a temporary failure.

import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { helloSubject, startDovecot, startLoginCluster } from '../harness/dovecot.js'
import { DEBIAN12_SET } from '../harness/peer-set.js'
import { imapLogin } from '../harness/imap-client.js'
import { pop3Login } from '../harness/pop3-client.js'

// Debian 12 only: Dovecot 2.4 (Debian 13) has no dict passdb and speaks dict protocol v4.
const set = DEBIAN12_SET
const c = await startLoginCluster(t, {
  set,
  dict: true,
  config: { cache: { ttl: '1s', negativeTtl: '1s', maxStale: '2s' }, login: { userdb: { home: '/var/vmail/%d/%n', uid: 'mail', gid: 'mail' } } },
})
const proxy = await startDovecot({ set, role: 'proxy-dict', dictSocket: c.dictSocket! })
t.teardown(() => proxy.stop())
const imap = (user: string, password: string) => imapLogin(proxy.ports.imap, user, password)

t.test('each mailbox lands on its own backend, IMAP and POP3', async (t) => {
  const alice = await imap('alice@example.org', 'wonderland')
  t.same([alice.login.status, alice.subject], ['OK', helloSubject('mx1')], 'alice (mx1)')
  const bob = await imap('bob@example.org', 'builder')
  t.same([bob.login.status, bob.subject], ['OK', helloSubject('mx2')], 'bob (mx2)')
  const bobPop = await pop3Login(proxy.ports.pop3, 'bob@example.org', 'builder')
  t.same([bobPop.login.ok, bobPop.subject], [true, helloSubject('mx2')], 'bob over POP3 (key passdb/pop3/...: the POP3 port)')
  const alt = await imap('alice.liddell@example.org', 'wonderland')
  t.same([alt.login.status, alt.subject], ['OK', helloSubject('mx1')], 'alternate address: the canonical mailbox')
  await proxy.waitForLog(/Started proxying to <127\.0\.0\.1> as user alice@example\.org/)
})

t.test('refusals', async (t) => {
  const wrong = await imap('alice@example.org', 'not-wonderland')
  t.same([wrong.login.status, wrong.login.code], ['NO', 'AUTHENTICATIONFAILED'], `wrong password, refused by the backend: ${wrong.login.line}`)
  await c.mx1.waitForLog(/auth failed|Password mismatch|Authentication failed/i)
  for (const [user, why] of [
    ['ghost@example.org', 'unknown user (N)'],
    ['postmaster@example.org', 'an alias is not a login (N)'],
    ['carol@example.org', 'disabled account (N)'],
  ] as const) {
    const r = await imap(user, user === 'carol@example.org' ? 'carol-disabled' : 'wonderland')
    t.same([r.login.status, r.login.code], ['NO', 'AUTHENTICATIONFAILED'], `${why}: ${r.login.line}`)
  }
})

t.test('doveadm shows what mailhostd answered', async (t) => {
  const r = await proxy.doveadm(['auth', 'lookup', '-x', 'service=imap', 'alice.liddell@example.org'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /proxy\s*:\s*y/, 'proxy')
  t.match(r.stdout, /host\s*:\s*127\.0\.0\.1/, 'host')
  t.match(r.stdout, new RegExp(`port\\s*:\\s*${c.mx1.ports.imap}\\b`), 'port: mx1 IMAP')
  t.match(r.stdout, /destuser\s*:\s*alice@example\.org/, 'destuser')
  const pop = await proxy.doveadm(['auth', 'lookup', '-x', 'service=pop3', 'bob@example.org'])
  t.match(pop.stdout, new RegExp(`port\\s*:\\s*${c.mx2.ports.pop3}\\b`), 'port for pop3: mx2 POP3')
  const user = await proxy.doveadm(['user', '-u', 'alice.liddell@example.org'])
  // -u: userdb only (a proxy has no mail storage to open).
  t.match(user.stdout, /home\s*:\s*\/var\/vmail\/example\.org\/alice/, `userdb: the login.userdb fields for the canonical address:\n${user.stdout}${user.stderr}`)
  t.match(user.stdout, /user\s*:\s*alice@example\.org/, 'userdb: user is the canonical address')
  const ghost = await proxy.doveadm(['auth', 'lookup', 'ghost@example.org'])
  t.not(ghost.code, 0, 'unknown user: not found')
})

t.test('directory down: NO [UNAVAILABLE] (dict F), never "authentication failed"', async (t) => {
  await c.slapd.kill()
  await sleep(3_000)
  for (const user of ['alice@example.org', 'ghost@example.org']) {
    const r = await imap(user, 'wonderland')
    t.same([r.login.status, r.login.code], ['NO', 'UNAVAILABLE'], `${user}: ${r.login.line}`)
  }
  await c.slapd.restart()
  let r = await imap('alice@example.org', 'wonderland')
  for (let i = 0; i < 20 && r.login.status !== 'OK'; i++) {
    await sleep(500)
    r = await imap('alice@example.org', 'wonderland')
  }
  t.same([r.login.status, r.subject], ['OK', helloSubject('mx1')], 'logins work again once the directory is back')
})
