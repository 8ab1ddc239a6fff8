// Acceptance: IMAP and POP3 logins through a real Dovecot front proxy running the release's
// proxy-lua.conf (dovecot/ for 2.4, dovecot/2.3/ for 2.3) and the one dovecot/mailhostd.lua
// against the built mailhostd (LDAP directory, PostgreSQL store), which routes them to two real
// Dovecot backends running the release's backend.conf; on each peer set. Each backend's INBOX
// holds a message naming it, so the Subject shows where a login landed. Covered: routing by
// mailbox, alternate address to the canonical mailbox (destuser), wrong password, unknown user,
// alias, disabled account, a backend in maintenance, doveadm auth lookup, the directory down
// (temporary failure, never "wrong password"), and lookup mode (mailhostd's login.lookupMode
// turned on by a reload; the script's mode = lookup): routed without mailhostd seeing the
// password, which the backend checks.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import pg from 'pg'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parse, stringify } from 'yaml'
import { helloSubject, loggedIn, startDovecot, startLoginCluster } from '../harness/dovecot.js'
import { imapLogin } from '../harness/imap-client.js'
import { pop3Login } from '../harness/pop3-client.js'

eachPeerSet(t, async (t, set) => {
  // Short cache times, so that with slapd killed no cached answer can stand in for it.
  const c = await startLoginCluster(t, { set, postgres: true, config: { cache: { ttl: '1s', negativeTtl: '1s', maxStale: '2s' } } })
  const proxy = await startDovecot({ set, role: 'proxy-lua', httpPort: c.m.ports.http, secret: c.secret })
  t.teardown(() => proxy.stop())
  const imap = (user: string, password: string) => imapLogin(proxy.ports.imap, user, password)

  t.test('each mailbox lands on its own backend, IMAP and POP3', async (t) => {
    const alice = await imap('alice@example.org', 'wonderland')
    t.same([alice.login.status, alice.subject], ['OK', helloSubject('mx1')], 'alice (mx1)')
    const bob = await imap('bob@example.org', 'builder')
    t.same([bob.login.status, bob.subject], ['OK', helloSubject('mx2')], 'bob (mx2)')
    const bobPop = await pop3Login(proxy.ports.pop3, 'bob@example.org', 'builder')
    t.same([bobPop.login.ok, bobPop.subject], [true, helloSubject('mx2')], 'bob over POP3: the backend POP3 port')
    const mixedCase = await imap('Alice@Example.ORG', 'wonderland')
    t.same([mixedCase.login.status, mixedCase.subject], ['OK', helloSubject('mx1')], 'the login name is case-insensitive')
  })

  t.test('an alternate address logs in to the canonical mailbox', async (t) => {
    const r = await imap('alice.liddell@example.org', 'wonderland')
    t.same([r.login.status, r.subject], ['OK', helloSubject('mx1')])
    // 2.3 names the host ("to <127.0.0.1> as user"), 2.4 does not ("to remote host as user").
    await proxy.waitForLog(/proxy\(alice\.liddell@example\.org,127\.0\.0\.1:\d+\): Started proxying to (<127\.0\.0\.1>|remote host) as user alice@example\.org/)
    t.pass('the proxy logged in to the backend as alice@example.org (destuser)')
    await c.mx1.waitForLog(loggedIn('alice@example.org', '.*rip=127\\.0\\.0\\.1'))
    const viaDomain = await imap('alice@example.net', 'wonderland')
    t.same([viaDomain.login.status, viaDomain.subject], ['OK', helloSubject('mx1')], 'the alias domain too')
  })

  t.test('refusals are "authentication failed", not temporary failures', async (t) => {
    for (const [user, password, why] of [
      ['alice@example.org', 'not-wonderland', 'wrong password'],
      ['ghost@example.org', 'wonderland', 'unknown user'],
      ['postmaster@example.org', 'wonderland', 'an alias is not a login'],
      ['anyone@example.com', 'builder', 'a catch-all is not a login'],
    ] as const) {
      const r = await imap(user, password)
      t.same([r.login.status, r.login.code, r.login.text], ['NO', 'AUTHENTICATIONFAILED', 'Authentication failed.'], `${why}: ${r.login.line}`)
    }
    const carol = await imap('carol@example.org', 'carol-disabled')
    t.equal(carol.login.status, 'NO', `carol (disabled) is refused even with her password: ${carol.login.line}`)
    t.not(carol.login.code, 'UNAVAILABLE', 'refused, not "try again later"')
  })

  t.test('doveadm auth lookup (auth_passdb_lookup) shows the proxy fields', async (t) => {
    const r = await proxy.doveadm(['auth', 'lookup', 'bob@example.org'])
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /proxy\s*:\s*y/)
    t.match(r.stdout, /host\s*:\s*127\.0\.0\.1/)
    const lmtp = await proxy.doveadm(['auth', 'lookup', '-x', 'service=lmtp', 'bob@example.org'])
    t.match(lmtp.stdout, new RegExp(`port\\s*:\\s*${c.mx2.ports.lmtp}\\b`), 'service lmtp: the backend LMTP port (LMTP proxying)')
    const imapLookup = await proxy.doveadm(['auth', 'lookup', '-x', 'service=imap', 'bob@example.org'])
    t.notMatch(imapLookup.stdout, /proxy\s*:/, 'no fields for a password-less imap lookup (non-plaintext mechanisms)')
  })

  t.test('a backend in maintenance: temporary failure for its users only', async (t) => {
    const client = new pg.Client({ connectionString: c.pg!.url })
    await client.connect()
    t.teardown(() => client.end())
    const reloaded = () => c.m.logs().filter((l) => l.msg === 'registry loaded').length
    const setState = async (state: string) => {
      const before = reloaded()
      await client.query('update backends set admin_state = $1 where id = $2', [state, 'mx2'])
      process.kill(c.m.pid, 'SIGHUP')
      for (let i = 0; i < 100 && reloaded() === before; i++) await sleep(50)
      t.ok(reloaded() > before, `mailhostd re-read the registry (mx2 ${state})`)
    }
    await setState('maintenance')
    const bob = await imap('bob@example.org', 'builder')
    t.same([bob.login.status, bob.login.code], ['NO', 'UNAVAILABLE'], `bob: ${bob.login.line}`)
    const alice = await imap('alice@example.org', 'wonderland')
    t.same([alice.login.status, alice.subject], ['OK', helloSubject('mx1')], 'alice (mx1) is not affected')
    await setState('active')
    const back = await imap('bob@example.org', 'builder')
    t.same([back.login.status, back.subject], ['OK', helloSubject('mx2')], 'bob again after maintenance')
  })

  t.test('directory down: NO [UNAVAILABLE], never "authentication failed"', async (t) => {
    await c.slapd.kill()
    // Past cache.maxStale (2 s) and ttl: nothing cached may answer for the directory.
    await sleep(3_000)
    for (const [user, password] of [
      ['alice@example.org', 'wonderland'],
      ['alice@example.org', 'not-wonderland'],
      ['ghost@example.org', 'x'],
    ] as const) {
      const r = await imap(user, password)
      t.same([r.login.status, r.login.code], ['NO', 'UNAVAILABLE'], `${user} / ${password === 'wonderland' ? 'right' : 'wrong'} password: ${r.login.line}`)
    }
    await c.slapd.restart()
    let r = await imap('alice@example.org', 'wonderland')
    // The circuit may still be open for circuit.openFor (5 s) after the restart.
    for (let i = 0; i < 20 && r.login.status !== 'OK'; i++) {
      await sleep(500)
      r = await imap('alice@example.org', 'wonderland')
    }
    t.same([r.login.status, r.subject], ['OK', helloSubject('mx1')], 'logins work again once the directory is back')
  })

  t.test('lookup mode: mailhostd routes without the password, the backend checks it', async (t) => {
    const lookup = await startDovecot({ set, role: 'proxy-lua', httpPort: c.m.ports.http, secret: c.secret, mode: 'lookup' })
    t.teardown(() => lookup.stop())
    // Before mailhostd allows lookup mode: a configuration mismatch, a temporary failure, never
    // "authentication failed" (mail clients would drop the stored password).
    const early = await imapLogin(lookup.ports.imap, 'alice@example.org', 'wonderland')
    t.same([early.login.status, early.login.code], ['NO', 'UNAVAILABLE'], `login.lookupMode off: temporary failure (${early.login.line})`)
    t.ok(c.m.logs().some((l) => l.msg === 'a Dovecot proxy asks in lookup mode but login.lookupMode is off; its logins fail temporarily' && (l.level === 'error' || l.level === 50)), 'mailhostd says why, at error level')

    // login.lookupMode on, by a reload (the key is applied while running).
    const file = join(c.m.dir, 'mailhostd.yaml')
    const config = parse(readFileSync(file, 'utf8')) as { login: Record<string, unknown> }
    writeFileSync(file, stringify({ ...config, login: { ...config.login, lookupMode: true } }))
    const reloads = () => c.m.logs().filter((l) => l.msg === 'configuration reloaded').length
    const before = reloads()
    process.kill(c.m.pid, 'SIGHUP')
    for (let i = 0; i < 100 && reloads() === before; i++) await sleep(50)
    t.match(c.m.logs().filter((l) => l.msg === 'configuration reloaded').at(-1), { changed: ['login.lookupMode'] }, 'mailhostd applied login.lookupMode')

    const login = (user: string, password: string) => imapLogin(lookup.ports.imap, user, password)
    const alice = await login('alice@example.org', 'wonderland')
    t.same([alice.login.status, alice.subject], ['OK', helloSubject('mx1')], 'alice lands on mx1')
    const bob = await pop3Login(lookup.ports.pop3, 'bob@example.org', 'builder')
    t.same([bob.login.ok, bob.subject], [true, helloSubject('mx2')], 'bob over POP3 on mx2')
    const alt = await login('alice.liddell@example.org', 'wonderland')
    t.same([alt.login.status, alt.subject], ['OK', helloSubject('mx1')], 'an alternate address: destuser')
    const routed = c.m.logs().filter((l) => l.msg === 'login routed' && l.service === 'imap' && l.user === 'alice@example.org').at(-1)
    t.match(routed, { host: '127.0.0.1', port: c.mx1.ports.imap }, 'mailhostd routed the login')

    const backendRefusals = async () => (await c.mx1.log()).split('\n').filter((l) => /auth failed.*user=<alice@example\.org>/.test(l)).length
    const refusedBefore = await backendRefusals()
    const aliceLines = () => c.m.logs().filter((l) => l.user === 'alice@example.org' && (l.msg === 'login routed' || l.msg === 'login refused'))
    const linesBefore = aliceLines().length
    const wrong = await login('alice@example.org', 'not-wonderland')
    t.same([wrong.login.status, wrong.login.code], ['NO', 'AUTHENTICATIONFAILED'], `a wrong password: ${wrong.login.line}`)
    t.match(aliceLines().slice(linesBefore), [{ msg: 'login routed' }], 'mailhostd routed it: it never saw the password')
    for (let i = 0; i < 50 && (await backendRefusals()) === refusedBefore; i++) await sleep(100)
    t.equal(await backendRefusals(), refusedBefore + 1, 'refused by mx1, which checked the password')
    for (const [user, password, why] of [
      ['ghost@example.org', 'wonderland', 'unknown user'],
      ['postmaster@example.org', 'wonderland', 'an alias is not a login'],
      ['carol@example.org', 'carol-disabled', 'a disabled account'],
    ] as const) {
      const r = await login(user, password)
      t.same([r.login.status, r.login.code], ['NO', 'AUTHENTICATIONFAILED'], `${why}: refused at the proxy (${r.login.line})`)
    }
  })
})
