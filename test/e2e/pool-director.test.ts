// Acceptance (issue 15, point 5): a real Dovecot 2.3 director ring of one in front of real Dovecot
// backends, asking the built mailhostd through the Lua passdb (dovecot/2.3/proxy-lua.conf with
// dovecot/2.3/director.conf on top, dovecot/mailhostd.lua verbatim). mailhostd has the SQL
// directory on PGlite, a plain backend mx1 and a pool `pool1` in director mode (director: { tag,
// address }) whose three members are the backends at 127.0.0.31-33: for its accounts mailhostd
// answers proxy and director_tag, no host, and the director picks the member. Each member's INBOX
// holds a message naming it, so the Subject shows where a login landed; the members' own logs,
// `doveadm who` on them and `doveadm director status` on the director say the same.
// Covered: pooled users land on one member of the tagged pool, the same one on every login (IMAP,
// POP3, every spelling of the login) and for their mail (mailhostd's transport map names the
// director's LMTP, which hands the delivery to the user's member); a plain-backend user goes
// to its backend (an answer carrying host passes the director untouched); wrong password and
// unknown user refused.
//
// Debian 12 only: Debian 13's Dovecot 2.4 has no director (the binary is gone from its
// dovecot-core), which is why mailhostd pins pool members itself there.
//
// The members listen for IMAP and POP3 on 143 and 110 (each on its own address): the director
// names only the member's address and mailhostd's director-mode answer no port, so Dovecot's
// login proxy uses the protocol's standard one. LMTP reaches a member on the port it reached the
// director on, so the members share the director's LMTP port.

import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { helloSubject, loggedIn, startDovecot, type Dovecot, type MailUser } from '../harness/dovecot.js'
import { ImapSession, imapLogin } from '../harness/imap-client.js'
import { startMailhostd, postmapQuery, socketmap } from '../harness/mailhostd.js'
import { DEBIAN12_SET } from '../harness/peer-set.js'
import { pop3Login } from '../harness/pop3-client.js'
import { freePort } from '../harness/ports.js'
import { forget, removeOnExit } from '../harness/process-tree.js'
import { SmtpSession } from '../harness/smtp-client.js'
import { demoClusterConfig } from './demo-table.js'

const set = DEBIAN12_SET
const TAG = 'pool1'
const MEMBERS = [
  { id: 'm1', address: '127.0.0.31' },
  { id: 'm2', address: '127.0.0.32' },
  { id: 'm3', address: '127.0.0.33' },
] as const
const pooled: MailUser[] = Array.from({ length: 6 }, (_, i) => ({ user: `pooled${i}@example.org`, password: `pool-secret-${i}` }))
const plain: MailUser = { user: 'plain@example.org', password: 'plain-secret' }
/** Another spelling of pooled0's mailbox (account_addresses): the director must hash the canonical one. */
const ALTERNATE = 'pooled.zero@example.org'
const secret = `login-secret-${randomBytes(9).toString('hex')}`

// ---- The directory: the pool's accounts and one on mx1, PLAIN passwords (the members' too).
const seedDir = await mkdtemp(join(tmpdir(), 'mailhostd-pool-director-'))
removeOnExit(seedDir)
t.teardown(async () => {
  forget(seedDir)
  await rm(seedDir, { recursive: true, force: true })
})
const seed = join(seedDir, 'accounts.sql')
const row = (u: MailUser, mailHost: string) => `('${u.user}', '${mailHost}', 'active', '{PLAIN}${u.password}')`
await writeFile(
  seed,
  [
    'insert into accounts (address, mailhost, status, password_hash) values',
    [...pooled.map((u) => row(u, 'pool1.example.org')), row(plain, 'mx1.example.org')].join(',\n') + '\non conflict (address) do nothing;',
    `insert into account_addresses (address, account_id) select '${ALTERNATE}', id from accounts where address = '${pooled[0]!.user}' on conflict (address) do nothing;`,
    '',
  ].join('\n'),
)

// ---- The peers. The director asks mailhostd's HTTP port, and mailhostd's pool names the
// director's ports: the HTTP port is chosen first.
const httpPort = await freePort()
const director = await startDovecot({ set, role: 'director', httpPort, secret, mailServers: MEMBERS.map((m) => ({ address: m.address, tag: TAG })) })
t.teardown(() => director.stop())
const members = new Map<string, Dovecot>()
for (const m of MEMBERS) {
  const d = await startDovecot({ set, role: 'backend', name: m.id, address: m.address, ports: { imap: 143, pop3: 110, lmtp: director.ports.lmtp! }, users: pooled })
  t.teardown(() => d.stop())
  members.set(m.id, d)
}
const mx1 = await startDovecot({ set, role: 'backend', name: 'mx1', users: [plain] })
t.teardown(() => mx1.stop())

const m = await startMailhostd(
  {
    domains: demoClusterConfig().domains,
    directory: { type: 'sql' },
    backends: [
      { id: 'mx1', mailHosts: ['mx1.example.org'], address: '127.0.0.1', route: 'lmtp', ports: { imap: mx1.ports.imap, pop3: mx1.ports.pop3, lmtp: mx1.ports.lmtp } },
      {
        id: 'pool1',
        kind: 'pool',
        mailHosts: ['pool1.example.org'],
        route: 'lmtp',
        // In director mode the pool's ports are the director's: nginx and Postfix connect there.
        ports: { imap: director.ports.imap, pop3: director.ports.pop3, lmtp: director.ports.lmtp },
        director: { tag: TAG, address: '127.0.0.1' },
        members: MEMBERS.map((x) => ({ id: x.id, address: x.address })),
      },
    ],
    login: { secret },
    listen: { http: { host: '127.0.0.1', port: httpPort } },
  },
  { args: ['--seed-sql', seed] },
)
t.teardown(() => m.stop())

const imap = (user: string, password: string) => imapLogin(director.ports.imap, user, password)
const memberBySubject = new Map(MEMBERS.map((x) => [helloSubject(x.id), x]))
/** The member each pooled user landed on at their first login. */
const home = new Map<string, (typeof MEMBERS)[number]>()

t.test('mailhostd hands the choice to the director: proxy and director_tag, no host', async (t) => {
  const r = await director.doveadm(['auth', 'lookup', pooled[0]!.user])
  t.equal(r.code, 0, `doveadm auth lookup on the director exits 0 ${r.stderr}`)
  t.match(r.stdout, /proxy\s*:\s*y/, 'proxy')
  t.match(r.stdout, new RegExp(`director_tag\\s*:\\s*${TAG}\\b`), `director_tag ${TAG}`)
  t.notMatch(r.stdout, /\bhost\s*:/, 'no host: the director adds it')
  t.notMatch(r.stdout, /\bport\s*:/, 'no port either')
})

t.test('each pooled user lands on one member of the tagged pool, the same on every login', async (t) => {
  for (const u of pooled) {
    const first = await imap(u.user, u.password)
    t.equal(first.login.status, 'OK', `${u.user} logged in through the director (${first.login.status === 'OK' ? 'OK' : first.login.line})`)
    const member = memberBySubject.get(first.subject ?? '')
    if (!member) {
      t.fail(`${u.user} landed on no member of the pool (INBOX subject ${first.subject})`)
      continue
    }
    home.set(u.user, member)
    for (let i = 0; i < 3; i++) {
      const again = await imap(u.user, u.password)
      t.equal(again.subject, first.subject, `${u.user}: IMAP login ${i + 2} on ${member.id} again`)
    }
    const pop = await pop3Login(director.ports.pop3, u.user, u.password)
    t.same([pop.login.ok, pop.subject], [true, first.subject], `${u.user}: POP3 on ${member.id} too`)
    const status = await director.doveadm(['director', 'status', u.user, TAG])
    t.match(status.stdout, new RegExp(`^Current: ${member.address.replace(/\./g, '\\.')} `, 'm'), `the director has ${u.user} on ${member.address}`)
  }
  t.ok(new Set(home.values()).size >= 2, `the users are spread over the members (${[...home].map(([u, x]) => `${u}: ${x.id}`).join(', ')})`)

  // What the members saw: each pooled user's logins on its own member only.
  for (const x of MEMBERS) {
    const log = await members.get(x.id)!.log()
    for (const u of pooled) {
      const expected = home.get(u.user)?.id === x.id
      t.equal(loggedIn(u.user).test(log), expected, `${x.id} ${expected ? 'served' : 'never saw'} ${u.user}`)
    }
  }
})

t.test('every spelling of a pooled login lands on the same member (destuser is hashed)', async (t) => {
  const u = pooled[0]!
  const want = helloSubject(home.get(u.user)!.id)
  for (const spelling of [ALTERNATE, 'POOLED0@Example.ORG', 'pooled0@example.net']) {
    const r = await imap(spelling, u.password)
    t.same([r.login.status, r.subject], ['OK', want], `${spelling}: on ${home.get(u.user)!.id}`)
  }
})

t.test('live sessions: doveadm who on the members shows each user on its member only', async (t) => {
  const sessions: ImapSession[] = []
  t.teardown(() => sessions.forEach((s) => s.close()))
  for (const u of pooled) {
    const { session } = await ImapSession.open(director.ports.imap)
    sessions.push(session)
    t.equal((await session.login(u.user, u.password)).status, 'OK', `${u.user} logged in, session held`)
    t.equal((await session.select()).status, 'OK', 'INBOX selected')
  }
  for (const x of MEMBERS) {
    const who = await members.get(x.id)!.doveadm(['who', '-1'])
    t.equal(who.code, 0, `doveadm who on ${x.id} exits 0 ${who.stderr}`)
    const users = new Set(
      who.stdout
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0])
        .filter(Boolean),
    )
    const expected = pooled.filter((u) => home.get(u.user)?.id === x.id).map((u) => u.user)
    t.same([...users].sort(), expected.sort(), `${x.id} holds the sessions of its users only`)
  }
  for (const s of sessions) await s.logout()
})

t.test("mail follows the director: mailhostd's transport names the director's LMTP, which delivers on the user's member", async (t) => {
  for (const u of pooled.slice(0, 3)) {
    const route = await postmapQuery(socketmap(m.ports.socketmap, 'transport'), u.user, set)
    t.equal(route.stdout.trim(), `lmtp:inet:[127.0.0.1]:${director.ports.lmtp}`, `${u.user}: transport to the director`)
    const { session: lmtp } = await SmtpSession.open(director.ports.lmtp!)
    await lmtp.command('LHLO pool-director.test')
    await lmtp.mailFrom('sender@example.net')
    t.equal((await lmtp.rcptTo(u.user)).code, 250, `the director's LMTP takes ${u.user}`)
    t.equal((await lmtp.data(`Subject: for ${u.user} through the director\n\nhi\n`)).code, 250, 'and the message')
    await lmtp.quit()
    const { session } = await ImapSession.open(director.ports.imap)
    await session.login(u.user, u.password)
    await session.select()
    t.same(
      [await session.subject(1), await session.subject(2)],
      [helloSubject(home.get(u.user)!.id), `for ${u.user} through the director`],
      `delivered on ${home.get(u.user)!.id}, where ${u.user} logs in`,
    )
    await session.logout()
  }
})

t.test('a plain-backend user is proxied to its backend: an answer with host passes the director', async (t) => {
  const r = await imap(plain.user, plain.password)
  t.same([r.login.status, r.subject], ['OK', helloSubject('mx1')], `${plain.user} on mx1`)
  await mx1.waitForLog(loggedIn(plain.user))
  const lookup = await director.doveadm(['auth', 'lookup', plain.user])
  t.match(lookup.stdout, /host\s*:\s*127\.0\.0\.1/, 'mailhostd answered its host')
  t.notMatch(lookup.stdout, /director_tag/, 'and no tag')
  const pop = await pop3Login(director.ports.pop3, plain.user, plain.password)
  t.same([pop.login.ok, pop.subject], [true, helloSubject('mx1')], 'POP3 too')
})

t.test('refusals: wrong password and unknown user', async (t) => {
  for (const [user, password, why] of [
    [pooled[1]!.user, 'not-the-password', 'a pooled user with a wrong password'],
    [plain.user, 'not-the-password', 'a plain user with a wrong password'],
    ['ghost@example.org', 'whatever', 'an unknown user'],
  ] as const) {
    const r = await imap(user, password)
    t.same([r.login.status, r.login.code], ['NO', 'AUTHENTICATIONFAILED'], `${why}: ${r.login.line}`)
  }
  for (const x of MEMBERS) t.notMatch(await members.get(x.id)!.log(), /ghost@example\.org/, `${x.id} never saw the unknown user`)
})
