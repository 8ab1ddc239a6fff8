// Acceptance: no password and no shared secret ever reaches a log, on each peer set. Logins with
// right and wrong passwords go through every path (Lua proxy in verify and in lookup mode, the
// dict proxy on Debian 12 (Dovecot 2.4 has no dict passdb), the backends' auth policy, nginx, the
// HTTP endpoints directly, and requests with a wrong secret, which get 401) while mailhostd, the
// proxies, both backends and nginx log at debug level; then every captured log (mailhostd's
// stdout, each Dovecot log file, nginx's error log, slapd's output) is searched for each password
// used and for both secrets.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { readFile } from 'node:fs/promises'
import { loggedIn, startDovecot, startLoginCluster } from '../harness/dovecot.js'
import { startNginx } from '../harness/nginx.js'
import { imapLogin } from '../harness/imap-client.js'
import { pop3Login } from '../harness/pop3-client.js'

eachPeerSet(t, async (t, set) => {
  // The dict proxy only where Dovecot has a dict passdb (2.3).
  const withDict = set.dovecot === '2.3'
  const c = await startLoginCluster(t, { set, dict: withDict, backends: { debug: true, authPolicy: true }, config: { login: { lookupMode: true } } })
  const lua = await startDovecot({ set, role: 'proxy-lua', httpPort: c.m.ports.http, secret: c.secret, debug: true })
  t.teardown(() => lua.stop())
  const lookup = await startDovecot({ set, role: 'proxy-lua', mode: 'lookup', httpPort: c.m.ports.http, secret: c.secret, debug: true })
  t.teardown(() => lookup.stop())
  const dict = withDict ? await startDovecot({ set, role: 'proxy-dict', dictSocket: c.dictSocket!, debug: true }) : undefined
  if (dict) t.teardown(() => dict.stop())
  const nginx = await startNginx({ set, authHttpPort: c.m.ports.http, secret: c.secret, debug: true })
  t.teardown(() => nginx.stop())

  const WRONG_SECRET = 'wrong-secret-0d4e91'
  // Distinct wrong passwords per path, so a leak names its path.
  const WRONG = {
    lua: 'Lua-Wrong-5c1e7a',
    pop: 'Pop-Wrong-9e0c33',
    lookup: 'Lookup-Wrong-1b7d40',
    ...(withDict ? { dict: 'Dict-Wrong-77ab02' } : {}),
    nginx: 'Nginx-Wrong-3f9d61',
    http: 'Http-Wrong-a2b4c8',
  }
  const RIGHT = ['wonderland', 'builder', 'carol-disabled']
  const base = `http://127.0.0.1:${c.m.ports.http}`

  t.test('logins through every path, right and wrong', async (t) => {
    t.equal((await imapLogin(lua.ports.imap, 'alice@example.org', 'wonderland')).login.status, 'OK', 'Lua: alice')
    t.equal((await imapLogin(lua.ports.imap, 'alice.liddell@example.org', WRONG.lua)).login.status, 'NO', 'Lua: wrong')
    t.equal((await imapLogin(lua.ports.imap, 'carol@example.org', 'carol-disabled')).login.status, 'NO', 'Lua: disabled')
    t.equal((await pop3Login(lua.ports.pop3, 'bob@example.org', 'builder')).login.ok, true, 'Lua POP3: bob')
    t.equal((await pop3Login(lua.ports.pop3, 'bob@example.org', WRONG.pop)).login.ok, false, 'Lua POP3: wrong')
    t.equal((await imapLogin(lookup.ports.imap, 'alice@example.org', 'wonderland')).login.status, 'OK', 'Lua lookup mode: alice')
    t.equal((await imapLogin(lookup.ports.imap, 'bob@example.org', WRONG.lookup)).login.status, 'NO', 'Lua lookup mode: wrong (backend, auth policy)')
    t.equal((await pop3Login(lookup.ports.pop3, 'bob@example.org', 'builder')).login.ok, true, 'Lua lookup mode POP3: bob')
    if (dict) {
      t.equal((await imapLogin(dict.ports.imap, 'bob@example.org', 'builder')).login.status, 'OK', 'dict: bob')
      t.equal((await imapLogin(dict.ports.imap, 'bob@example.org', WRONG.dict!)).login.status, 'NO', 'dict: wrong (backend, auth policy)')
    }
    t.equal((await imapLogin(nginx.ports.imap, 'alice@example.org', 'wonderland')).login.status, 'OK', 'nginx: alice')
    t.equal((await imapLogin(nginx.ports.imap, 'alice@example.org', WRONG.nginx)).login.status, 'NO', 'nginx: wrong')
    t.equal((await pop3Login(nginx.ports.pop3, 'bob@example.org', 'builder')).login.ok, true, 'nginx POP3: bob')

    const verify = (secret: string, password: string) =>
      fetch(`${base}/v1/dovecot/passdb/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-auth-key': secret },
        body: JSON.stringify({ user: 'alice@example.org', password, service: 'imap', remoteIp: '192.0.2.5' }),
      })
    t.equal((await verify(c.secret, 'wonderland')).status, 200, 'HTTP verify: right')
    t.equal((await verify(c.secret, WRONG.http)).status, 200, 'HTTP verify: wrong password')
    t.equal((await verify(WRONG_SECRET, 'wonderland')).status, 401, 'HTTP verify with a wrong secret: 401')
    const nginxAuth = await fetch(`${base}/v1/nginx/auth`, {
      headers: { 'Auth-Method': 'plain', 'Auth-User': 'alice@example.org', 'Auth-Pass': 'wonderland', 'Auth-Protocol': 'imap', 'Client-IP': '192.0.2.6', 'X-Auth-Key': WRONG_SECRET },
    })
    t.equal(nginxAuth.status, 401, 'nginx auth_http with a wrong secret: 401')
    const policy = await fetch(`${base}/v1/dovecot/policy?command=allow`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-Auth-Key': WRONG_SECRET },
      body: JSON.stringify({ login: 'alice@example.org', remote: '192.0.2.7' }),
    })
    t.equal(policy.status, 401, 'auth policy with a wrong secret: 401')
  })

  t.test('no log holds a password or a secret', async (t) => {
    // Settle: Dovecot's log process writes asynchronously.
    await c.mx2.waitForLog(loggedIn('bob@example.org'))
    const logs: [string, string][] = [
      ['mailhostd stdout', c.m.proc.output()],
      ['slapd output', c.slapd.output()],
    ]
    const dovecots = [['Lua proxy', lua], ['Lua lookup proxy', lookup], ...(dict ? [['dict proxy', dict] as const] : []), ['backend mx1', c.mx1], ['backend mx2', c.mx2]] as const
    for (const [name, d] of dovecots) {
      for (const f of d.logFiles) logs.push([`${name} ${f}`, await readFile(f, 'utf8')])
    }
    for (const f of nginx.logFiles) logs.push([`nginx ${f}`, await readFile(f, 'utf8')])

    // The logs are really at debug level and really saw these logins.
    t.match(c.m.proc.output(), /"level":"debug"/, 'mailhostd logged at debug')
    t.match(c.m.proc.output(), /login routed/, 'mailhostd logged the logins')
    for (const proxy of ['Lua proxy', 'Lua lookup proxy']) {
      t.match(logs.find(([n]) => n.startsWith(proxy))![1], /auth-worker\(.*Debug: .*lua/, `the ${proxy} logged at debug`)
    }
    if (dict) t.match(logs.find(([n]) => n.startsWith('dict proxy'))![1], /Debug: dict\(proxy\)/, 'the dict proxy logged at debug')
    t.match(logs.find(([n]) => n.startsWith('backend mx2'))![1], /policy/i, 'the backend logged its auth policy requests')
    t.match(logs.find(([n]) => n.startsWith('nginx'))![1], /\[debug\]/, 'nginx logged at debug')

    const needles: [string, string][] = [
      ...RIGHT.map((p): [string, string] => [`password ${p}`, p]),
      ...Object.entries(WRONG).map(([path, p]): [string, string] => [`wrong password (${path})`, p]),
      ['the shared secret', c.secret],
      ['a wrong secret', WRONG_SECRET],
    ]
    for (const [name, text] of logs) {
      t.ok(text.length > 0, `${name} is not empty`)
      for (const [what, needle] of needles) {
        const at = text.indexOf(needle)
        t.equal(at, -1, `${what} not in ${name}${at >= 0 ? `: ...${text.slice(Math.max(0, at - 200), at + 60)}` : ''}`)
      }
    }
  })
})
