// Chaos, logins (issue 7, docs/reliability.md "Chaos"), on each peer set: IMAP clients log in
// through a Dovecot proxy running the release's proxy-lua.conf and dovecot/mailhostd.lua, which
// asks mailhostd (LDAP
// directory on slapd, store on PostgreSQL) for the backend and the password check, while slapd is
// killed and restarted three times and PostgreSQL once (faults.ts). Users live on two Dovecot
// backends whose INBOX holds a message naming the backend, so each successful login shows where
// it landed. Every login must land on its own backend or fail with NO [UNAVAILABLE] (try again
// later); a valid user is never told AUTHENTICATIONFAILED, and nobody lands on the other backend.
// Passwords are checked by binding to slapd, so while it is down no login can succeed: the
// stream counts how many failed temporarily, and a last round checks everybody gets in again.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { demoClusterConfig } from '../e2e/demo-table.js'
import { helloSubject, startDovecot } from '../harness/dovecot.js'
import { imapLogin, type ImapLoginOutcome } from '../harness/imap-client.js'
import { startMailhostd } from '../harness/mailhostd.js'
import { startedPeers } from '../harness/peers.js'
import { startPostgres } from '../harness/postgres.js'
import { startSlapd, slapdDirectory } from '../harness/slapd.js'
import { accounts, accountsLdif, prng, type BackendId, type ChaosAccount } from './directory.js'
import { describeOutages, runFaults } from './faults.js'
import { scrape, total } from './metrics.js'
import { SIZE } from './size.js'

eachPeerSet(t, async (t, set) => {
  const started = Date.now()
  const setUp = startedPeers(t)
  const users = accounts(2 * SIZE.loginUsersPerBackend, 'login')
  const slapd = await setUp(startSlapd({ set, extraLdif: [accountsLdif(users)] }))
  const pg = await setUp(startPostgres({ set }))
  const backend = (name: BackendId) =>
    setUp(startDovecot({ set, role: 'backend', name, users: users.filter((u) => u.backend === name).map((u) => ({ user: u.address, password: u.password })) }))
  const backends = { mx1: await backend('mx1'), mx2: await backend('mx2') }
  const secret = `chaos-login-${randomBytes(9).toString('hex')}`
  const m = await startMailhostd({
    domains: demoClusterConfig().domains,
    backends: (['mx1', 'mx2'] as const).map((id) => ({
      id,
      mailHosts: [`${id}.example.org`],
      address: '127.0.0.1',
      route: 'lmtp',
      ports: { imap: backends[id].ports.imap, pop3: backends[id].ports.pop3, lmtp: backends[id].ports.lmtp },
    })),
    directory: slapdDirectory(slapd, { timeout: '1s', connectTimeout: '500ms' }),
    store: { url: pg.url, connectTimeout: '1s' },
    login: { secret },
    // As in mail.test.ts: routes outlive the TTL as the stale reserve; the circuit retries soon.
    cache: { ttl: '2s', negativeTtl: '1s' },
    circuit: { openFor: '1s' },
    log: { level: 'info' },
  })
  t.teardown(() => m.stop())
  const proxy = await setUp(startDovecot({ set, role: 'proxy-lua', httpPort: m.ports.http, secret }))
  t.comment(`${set.label}, size ${SIZE.name}: ${users.length} login users on mx1 and mx2, set up in ${Date.now() - started} ms`)

  /** The q-quantile of a list of durations, for the report. */
  const ms = (list: number[], q: number) => [...list].sort((a, b) => a - b)[Math.max(0, Math.ceil(q * list.length) - 1)] ?? 0

  type Verdict = 'ok' | 'unavailable' | 'misrouted' | 'refused' | 'error'

  function verdict(u: ChaosAccount, r: ImapLoginOutcome): Verdict {
    if (r.login.status === 'OK') return r.subject === helloSubject(u.backend) ? 'ok' : 'misrouted'
    return r.login.status === 'NO' && r.login.code === 'UNAVAILABLE' ? 'unavailable' : 'refused'
  }

  /** Logs in as u by its address or, for every third attempt, its alias-domain address. */
  const login = (u: ChaosAccount, n: number) => imapLogin(proxy.ports.imap, n % 3 === 0 ? u.address.replace('@example.org', '@example.net') : u.address, u.password)

  t.test('IMAP logins while slapd dies three times and PostgreSQL once', async (t) => {
    const counts: Record<Verdict, number> = { ok: 0, unavailable: 0, misrouted: 0, refused: 0, error: 0 }
    let unavailableInOutage = 0
    /** How long each NO [UNAVAILABLE] took, login to answer: what a user waits during an outage. */
    const unavailableMs: number[] = []
    const problems: string[] = []
    const t0 = Date.now()
    const faults = runFaults({ slapd, pg, streamMs: SIZE.streamMs, outageMs: SIZE.outageMs, t0 })
    let attempts = 0

    const client = async (seed: number) => {
      const random = prng(seed)
      while (Date.now() - t0 < SIZE.streamMs) {
        const u = users[Math.floor(random() * users.length)]!
        const n = attempts++
        const at = Date.now() - t0
        let v: Verdict
        try {
          const r = await login(u, n)
          v = verdict(u, r)
          if (v !== 'ok' && v !== 'unavailable') problems.push(`${u.address} (${u.backend}): ${r.login.line} ${r.subject ?? ''}`)
        } catch (e) {
          v = 'error'
          problems.push(`${u.address}: ${(e as Error).message}`)
        }
        counts[v]++
        if (v === 'unavailable') unavailableMs.push(Date.now() - t0 - at)
        if (v === 'unavailable' && (faults.during('slapd', at) || faults.during('slapd', Date.now() - t0))) unavailableInOutage++
        // A breath between logins: two cores also run slapd, PostgreSQL, three Dovecots and mailhostd.
        await sleep(10)
      }
    }
    await Promise.all(Array.from({ length: SIZE.imapClients }, (_, i) => client(100 + i)))
    const outages = await faults.done

    // After the last restart (and the circuit's next trial), everybody gets in, on their backend.
    const final: Record<string, string> = {}
    for (const [i, u] of users.entries()) {
      let r = await login(u, i)
      for (let k = 0; k < 20 && verdict(u, r) === 'unavailable'; k++) {
        await sleep(500)
        r = await login(u, i)
      }
      final[u.address] = verdict(u, r)
    }
    const finalOk = Object.values(final).filter((v) => v === 'ok').length

    const metrics = await scrape(m.ports.http)
    t.comment(
      [
        `CHAOS LOGINS (${set.id}, ${SIZE.name}): ${attempts} IMAP logins by ${SIZE.imapClients} clients, ${counts.ok} landed on the right backend, ` +
          `${counts.unavailable} NO [UNAVAILABLE] (${unavailableInOutage} while slapd was down, ${counts.unavailable - unavailableInOutage} just after a restart), ` +
          `${counts.misrouted} on the wrong backend, ${counts.refused} refused otherwise, ${counts.error} broken sessions`,
        `NO [UNAVAILABLE] answered after ${ms(unavailableMs, 0.5)} ms (median), ${ms(unavailableMs, 1)} ms (longest)`,
        `after the last restart: ${finalOk} of ${users.length} users logged in on their own backend`,
        ...describeOutages(outages),
        `mailhostd login answers: ok ${total(metrics, 'mailhostd_login_total', { result: 'ok' })}, tempfail ${total(metrics, 'mailhostd_login_total', { result: 'tempfail' })}, ` +
          `mismatch ${total(metrics, 'mailhostd_login_total', { result: 'mismatch' })}, unknown ${total(metrics, 'mailhostd_login_total', { result: 'unknown' })}`,
        `file ${((Date.now() - started) / 1000).toFixed(1)} s`,
      ].join('\n'),
    )
    t.equal(outages.filter((o) => o.peer === 'slapd').length, 3, 'slapd was killed and restarted three times')
    t.same(problems.slice(0, 20), [], 'every login landed on its own backend or failed with NO [UNAVAILABLE]')
    t.equal(counts.misrouted, 0, 'no login on the wrong backend')
    t.equal(counts.refused, 0, 'no valid user refused (AUTHENTICATIONFAILED or otherwise)')
    t.equal(counts.error, 0, 'no broken session')
    t.ok(counts.ok > 0, 'logins succeeded between the outages')
    t.ok(unavailableInOutage > 0, 'logins during the outages failed temporarily')
    t.equal(finalOk, users.length, `everyone logs in after the last restart (${JSON.stringify(Object.entries(final).filter(([, v]) => v !== 'ok'))})`)
    t.equal(total(metrics, 'mailhostd_login_total', { result: 'mismatch' }) + total(metrics, 'mailhostd_login_total', { result: 'unknown' }), 0, 'mailhostd never answered "wrong password" or "unknown user"')
    t.equal(m.proc.child.exitCode, null, 'mailhostd ran throughout')
  })
})
