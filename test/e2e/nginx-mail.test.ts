// Acceptance: a real nginx mail proxy running nginx/mail.conf asks the built mailhostd
// (GET /v1/nginx/auth, LDAP directory) where each login goes, and relays IMAP and POP3 sessions
// to two real Dovecot backends whose INBOX names them. Covered: routing by mailbox for both
// protocols, an alternate address landing on the canonical mailbox, a wrong password answered
// with mailhostd's text while the session survives (Auth-Wait) for a second LOGIN that works,
// unknown users, and the directory down.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { helloSubject, startLoginCluster } from '../harness/dovecot.js'
import { startNginx } from '../harness/nginx.js'
import { imapLogin, ImapSession } from '../harness/imap-client.js'
import { pop3Login, Pop3Session } from '../harness/pop3-client.js'

// login.nginx.wait 1s: failures keep the session after a 1 s pause instead of 3 s.
eachPeerSet(t, async (t, set) => {
  const c = await startLoginCluster(t, { set, config: { login: { nginx: { wait: '1s' } }, cache: { ttl: '1s', negativeTtl: '1s', maxStale: '2s' } } })
  const nginx = await startNginx({ set, authHttpPort: c.m.ports.http, secret: c.secret })
  t.teardown(() => nginx.stop())

  t.test('IMAP and POP3 logins reach the right backend', async (t) => {
    const alice = await imapLogin(nginx.ports.imap, 'alice@example.org', 'wonderland')
    t.same([alice.login.status, alice.subject], ['OK', helloSubject('mx1')], 'IMAP alice (mx1)')
    const bob = await imapLogin(nginx.ports.imap, 'bob@example.org', 'builder')
    t.same([bob.login.status, bob.subject], ['OK', helloSubject('mx2')], 'IMAP bob (mx2)')
    const bobPop = await pop3Login(nginx.ports.pop3, 'bob@example.org', 'builder')
    t.same([bobPop.login.ok, bobPop.subject], [true, helloSubject('mx2')], 'POP3 bob (mx2): the backend POP3 port')
    const alicePop = await pop3Login(nginx.ports.pop3, 'alice@example.org', 'wonderland')
    t.same([alicePop.login.ok, alicePop.subject], [true, helloSubject('mx1')], 'POP3 alice (mx1)')
  })

  t.test('an alternate address lands on the canonical mailbox', async (t) => {
    // nginx logs in to the backend with the name the client typed unless mailhostd answers
    // Auth-User; the backend knows the mailbox by its canonical address.
    const r = await imapLogin(nginx.ports.imap, 'alice.liddell@example.org', 'wonderland')
    t.same([r.login.status, r.subject], ['OK', helloSubject('mx1')], r.login.line)
  })

  t.test('a wrong password: the failure text, and the session survives for a second LOGIN', async (t) => {
    const { session } = await ImapSession.open(nginx.ports.imap)
    const started = Date.now()
    const bad = await session.login('alice@example.org', 'not-wonderland')
    t.same([bad.status, bad.text], ['NO', 'Invalid login or password'], 'mailhostd\'s Auth-Status text')
    t.ok(Date.now() - started >= 900, 'after Auth-Wait (login.nginx.wait, 1 s)')
    const good = await session.login('alice@example.org', 'wonderland')
    t.equal(good.status, 'OK', 'the second LOGIN in the same session works')
    t.equal((await session.select()).status, 'OK')
    t.equal(await session.subject(1), helloSubject('mx1'), 'on alice\'s backend')
    await session.logout()

    const { session: pop } = await Pop3Session.open(nginx.ports.pop3)
    const popBad = await pop.login('bob@example.org', 'not-builder')
    t.same([popBad.ok, popBad.text], [false, 'Invalid login or password'], 'POP3: -ERR with the text')
    const popGood = await pop.login('bob@example.org', 'builder')
    t.equal(popGood.ok, true, 'POP3: USER/PASS again in the same session')
    t.equal((await pop.stat())?.count, 1)
    await pop.quit()
  })

  t.test('unknown user, alias, disabled account', async (t) => {
    for (const [user, password, text] of [
      ['ghost@example.org', 'x', 'Invalid login or password'],
      ['postmaster@example.org', 'wonderland', 'Invalid login or password'],
      ['carol@example.org', 'carol-disabled', 'Account disabled'],
    ] as const) {
      const r = await imapLogin(nginx.ports.imap, user, password)
      t.same([r.login.status, r.login.text], ['NO', text], user)
    }
  })

  t.test('directory down: the temporary-failure text, not "invalid login"', async (t) => {
    await c.slapd.kill()
    await sleep(3_000)
    const r = await imapLogin(nginx.ports.imap, 'alice@example.org', 'wonderland')
    t.same([r.login.status, r.login.text], ['NO', 'Temporary authentication failure, try again later'])
    await c.slapd.restart()
  })
})
