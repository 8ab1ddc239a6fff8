// Acceptance: mailhostd's brute-force brakes as real clients meet them, on each peer set. Small
// thresholds (account: tarpit after 3 failures, refuse after 5; tarpit 1 s doubling to 2 s).
// Through the Lua proxy from one client address: failures 1-3 answered promptly, the 4th and 5th
// held by the tarpit, then the right password refused from that address, while the same account
// from a clean address still logs in (asked directly over HTTP and as nginx asks, with another
// client IP, since every real client here is 127.0.0.1). Where mailhostd never sees passwords,
// the backends' auth policy (the release's auth-policy.conf) reports the failures and refuses in
// turn: through the Lua proxy in lookup mode (both releases; dave's account), and through the
// dict proxy (Debian 12 only: Dovecot 2.4 has no dict passdb and speaks dict protocol v4; bob's).
// mailhostd_brakes_total counts each brake.
//
// Dovecot's own delays are turned off so the timings are mailhostd's: auth_failure_delay (2 s on
// every failure) here, the auth penalty by the harness. Dovecot still answers a failure on its
// next half-second check, so "prompt" means under a second; a tarpit adds at least its time.

import t, { type Test } from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { helloSubject, startDovecot, startLoginCluster } from '../harness/dovecot.js'
import { imapLogin } from '../harness/imap-client.js'
import type { ChaosAccount } from '../chaos/directory.js'

eachPeerSet(t, async (t, set) => {
  const NO_DELAY = { auth_failure_delay: '0 secs' }
  // The dict proxy only where Dovecot has a dict passdb (2.3).
  const withDict = set.dovecot === '2.3'
  // An account of its own for the lookup-mode proxy: the others' counters are spent by then.
  const dave: ChaosAccount = { uid: 'dave', address: 'dave@example.org', backend: 'mx2', password: 'diver-5e1f' }
  const c = await startLoginCluster(t, {
    set,
    dict: withDict,
    accounts: [dave],
    backends: { authPolicy: true, settings: NO_DELAY },
    config: {
      login: {
        lookupMode: true,
        nginx: { wait: '1s' },
        brakes: { window: '15m', ip: { tarpitAfter: 100, refuseAfter: 200 }, account: { tarpitAfter: 3, refuseAfter: 5 }, tarpit: '1s', maxTarpit: '2s' },
      },
    },
  })
  const lua = await startDovecot({ set, role: 'proxy-lua', httpPort: c.m.ports.http, secret: c.secret, settings: NO_DELAY })
  t.teardown(() => lua.stop())
  const lookup = await startDovecot({ set, role: 'proxy-lua', mode: 'lookup', httpPort: c.m.ports.http, secret: c.secret, settings: NO_DELAY })
  t.teardown(() => lookup.stop())
  const dict = withDict ? await startDovecot({ set, role: 'proxy-dict', dictSocket: c.dictSocket!, settings: NO_DELAY }) : undefined
  if (dict) t.teardown(() => dict.stop())

  const base = `http://127.0.0.1:${c.m.ports.http}`
  async function brakesTotal(action: 'tarpit' | 'refuse'): Promise<number> {
    const text = await (await fetch(`${base}/metrics`)).text()
    return [...text.matchAll(/^mailhostd_brakes_total\{([^}]*)\} (\d+)/gm)]
      .filter((m) => m[1]!.includes(`action="${action}"`))
      .reduce((sum, m) => sum + Number(m[2]), 0)
  }
  async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
    const started = Date.now()
    const value = await work
    return { value, ms: Date.now() - started }
  }
  const verify = (body: Record<string, string>) =>
    fetch(`${base}/v1/dovecot/passdb/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-auth-key': c.secret },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { result: string; reason?: string } }))

  t.test('Lua proxy: prompt failures, then the tarpit, then refusal from that address', async (t) => {
    const tarpits = await brakesTotal('tarpit')
    for (let i = 1; i <= 3; i++) {
      const r = await timed(imapLogin(lua.ports.imap, 'alice@example.org', `wrong-${i}`))
      t.equal(r.value.login.code, 'AUTHENTICATIONFAILED', `failure ${i}`)
      t.ok(r.ms < 1_000, `failure ${i} answered promptly (${r.ms} ms)`)
    }
    const fourth = await timed(imapLogin(lua.ports.imap, 'alice@example.org', 'wrong-4'))
    t.equal(fourth.value.login.code, 'AUTHENTICATIONFAILED', 'failure 4')
    t.ok(fourth.ms >= 1_000 && fourth.ms < 5_000, `failure 4 held by the 1 s tarpit (${fourth.ms} ms)`)
    const fifth = await timed(imapLogin(lua.ports.imap, 'alice@example.org', 'wrong-5'))
    t.ok(fifth.ms >= 2_000 && fifth.ms < 6_000, `failure 5: the tarpit doubled to 2 s (${fifth.ms} ms)`)
    t.ok((await brakesTotal('tarpit')) >= tarpits + 2, 'mailhostd_brakes_total{action="tarpit"} went up')

    const refusals = await brakesTotal('refuse')
    const right = await imapLogin(lua.ports.imap, 'alice@example.org', 'wonderland')
    t.same([right.login.status, right.login.code], ['NO', 'AUTHENTICATIONFAILED'], 'the right password is refused from this address')
    t.equal(await brakesTotal('refuse'), refusals + 1, 'mailhostd_brakes_total{action="refuse"} went up')
    const http = await verify({ user: 'alice@example.org', password: 'wonderland', service: 'imap', remoteIp: '127.0.0.1' })
    t.same(http.body, { result: 'mismatch', reason: 'too many failed logins' }, 'asked directly from that address: refused')
  })

  t.test('the owner from a clean address is not locked out', async (t) => {
    const r = await timed(verify({ user: 'alice@example.org', password: 'wonderland', service: 'imap', remoteIp: '192.0.2.99' }))
    t.equal(r.value.status, 200)
    t.equal(r.value.body.result, 'ok', 'Dovecot verify from 192.0.2.99: ok')
    t.ok(r.ms < 1_000, `and not tarpitted (${r.ms} ms)`)

    const nginx = await fetch(`${base}/v1/nginx/auth`, {
      headers: {
        'Auth-Method': 'plain',
        'Auth-User': 'alice@example.org',
        'Auth-Pass': 'wonderland',
        'Auth-Protocol': 'imap',
        'Auth-Login-Attempt': '1',
        'Client-IP': '198.51.100.7',
        'X-Auth-Key': c.secret,
      },
    })
    t.equal(nginx.headers.get('auth-status'), 'OK', 'nginx auth_http with Client-IP 198.51.100.7: OK')
    t.equal(nginx.headers.get('auth-port'), String(c.mx1.ports.imap), 'routed to mx1')
  })

  /** Failures through a proxy whose backends check the passwords: their auth policy reports them and brakes. */
  const policyBrakes = async (t: Test, port: number, user: string, password: string, backend: string) => {
    const tarpits = await brakesTotal('tarpit')
    for (let i = 1; i <= 3; i++) {
      const r = await timed(imapLogin(port, user, `wrong-${i}`))
      t.equal(r.value.login.status, 'NO', `failure ${i} (the backend checked)`)
      t.ok(r.ms < 1_000, `failure ${i} answered promptly (${r.ms} ms)`)
    }
    const fourth = await timed(imapLogin(port, user, 'wrong-4'))
    t.equal(fourth.value.login.status, 'NO')
    t.ok(fourth.ms >= 1_000, `failure 4 held by the policy's tarpit (${fourth.ms} ms)`)
    await imapLogin(port, user, 'wrong-5')
    t.ok((await brakesTotal('tarpit')) >= tarpits + 2, 'mailhostd_brakes_total{action="tarpit"} went up')
    const right = await imapLogin(port, user, password)
    t.equal(right.login.status, 'NO', `the right password is refused by the policy: ${right.login.line}`)
    t.not(right.subject, helloSubject(backend))
    const clean = await verify({ user, password, service: 'imap', remoteIp: '192.0.2.100' })
    t.equal(clean.body.result, 'ok', `${user} from a clean address: ok`)
  }

  t.test('Lua proxy in lookup mode: the backends report failures through the auth policy, which brakes', async (t) => {
    const ok = await imapLogin(lookup.ports.imap, dave.address, dave.password)
    t.same([ok.login.status, ok.subject], ['OK', helloSubject('mx2')], 'dave logs in on mx2 (the backend checked his password)')
    await policyBrakes(t, lookup.ports.imap, dave.address, dave.password, 'mx2')
  })

  if (dict) {
    t.test('dict proxy: the backends report failures through the auth policy, which brakes', async (t) => {
      await policyBrakes(t, dict.ports.imap, 'bob@example.org', 'builder', 'mx2')
    })
  }
})
