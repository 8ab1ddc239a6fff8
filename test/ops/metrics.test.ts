// /metrics parses with a Prometheus text-format parser, and its counters move as traffic flows:
// lookups found, missed, answered from the cache, served stale and failed temporarily while the
// directory (a real slapd) is killed; directory calls and errors; logins, brakes, backend
// health, moves and open connections. The daemon runs in-process so its code counts for coverage.

import t from 'tap'
import { eachPeerSet } from '../harness/peer-set.js'
import { ADMIN_TOKEN, DEMO_TOKENS, adminApi } from '../harness/admin-api.js'
import { DEMO_ADMIN_DN, DEMO_ADMIN_PASSWORD, startSlapd, slapdDirectory } from '../harness/slapd.js'
import { Client } from '../server/client.js'
import { LOGIN_SECRET, askSocketmap, startOpsDaemon } from './daemon.js'
import { scrape } from './prom.js'

eachPeerSet(t, async (t, set) => {
  t.test('metrics follow lookups, directory trouble, logins and the registry', async (t) => {
    const slapd = await startSlapd({ set })
    t.teardown(() => slapd.stop())
    const d = await startOpsDaemon(t, {
      directory: slapdDirectory(slapd, { timeout: '1s', connectTimeout: '500ms', pollInterval: 0, admin: { bindDN: DEMO_ADMIN_DN, bindPassword: DEMO_ADMIN_PASSWORD } }),
      cache: { ttl: '1s', maxStale: '1h' },
      circuit: { failureThreshold: 2, openFor: '1h' },
      login: { secret: LOGIN_SECRET, brakes: { ip: { tarpitAfter: 1, refuseAfter: 30 }, tarpit: '1s', maxTarpit: '1s' } },
      admin: { tokens: DEMO_TOKENS, moves: { settle: '0s' } },
    })
    const http = d.port('http')
    const before = await scrape(http)

    // Every mailhostd family is documented and typed; counters follow the _total convention.
    for (const [name, f] of before.families) {
      if (!name.startsWith('mailhostd_')) continue
      t.ok(f.help.length > 10, `${name} has help text`)
      if (f.type === 'COUNTER') t.match(name, /_total$/, `${name} is a counter named _total`)
    }
    t.ok(before.families.has('process_cpu_user_seconds_total'), 'default process metrics')
    t.ok(before.families.has('nodejs_heap_size_used_bytes'), 'default Node.js metrics')
    t.equal(before.family('mailhostd_directory_call_duration_seconds').type, 'HISTOGRAM')
    t.equal(before.family('mailhostd_cache_hits_total').type, 'COUNTER')
    t.equal(before.family('mailhostd_cache_entries').type, 'GAUGE')

    // The registry (changes to it drop the cache, so first): mx2 into maintenance, carol moving.
    const api = adminApi(http, ADMIN_TOKEN)
    const move = await api.post('/v1/moves', { target: 'mx2', accounts: ['carol@example.org'] })
    t.equal(move.status, 201, JSON.stringify(move.body))
    t.equal((await api.patch('/v1/backends/mx2', { adminState: 'maintenance' })).status, 200)

    // Traffic while the directory answers: found from the directory, then from the cache; an
    // authoritative miss; a rules miss; an unknown map.
    const c = await Client.connect(d.port('socketmap'))
    t.teardown(() => c.destroy())
    t.match(await askSocketmap(c, 'transport', 'alice@example.org'), /^OK lmtp:inet:\[10\.0\.0\.11\]:24$/)
    t.match(await askSocketmap(c, 'transport', 'alice@example.org'), /^OK /)
    t.equal(await askSocketmap(c, 'transport', 'nobody@example.org'), 'NOTFOUND ')
    t.equal(await askSocketmap(c, 'transport', 'someone@unserved.example'), 'NOTFOUND ')
    t.match(await askSocketmap(c, 'nosuchmap', 'alice@example.org'), /^PERM /)

    // Logins: a wrong password twice from one IP (the second is braked: tarpitAfter 1).
    const verify = () =>
      fetch(`http://127.0.0.1:${http}/v1/dovecot/passdb/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-auth-key': LOGIN_SECRET },
        body: JSON.stringify({ user: 'alice@example.org', password: 'not-her-password', service: 'imap', remoteIp: '192.0.2.7' }),
      }).then(async (r) => ((await r.json()) as { result: string }).result)
    t.equal(await verify(), 'mismatch')
    t.equal(await verify(), 'mismatch')

    const up = await scrape(http)
    const moved = (name: string, labels: Record<string, string> = {}) => up.value(name, labels) - before.value(name, labels)
    t.equal(moved('mailhostd_lookups_total', { protocol: 'socketmap', outcome: 'found', layer: 'directory' }), 1, 'found, asked the directory')
    t.equal(moved('mailhostd_lookups_total', { protocol: 'socketmap', outcome: 'found', layer: 'cache' }), 1, 'found in the cache')
    t.equal(moved('mailhostd_lookups_total', { protocol: 'socketmap', outcome: 'notfound', layer: 'directory' }), 1, 'authoritative miss')
    t.equal(moved('mailhostd_lookups_total', { protocol: 'socketmap', outcome: 'notfound', layer: 'rules' }), 1, 'miss by the rules')
    t.equal(moved('mailhostd_lookups_total', { protocol: 'socketmap', outcome: 'perm' }), 1, 'unknown map')
    t.equal(up.count('mailhostd_lookup_duration_seconds', { protocol: 'socketmap' }) - before.count('mailhostd_lookup_duration_seconds', { protocol: 'socketmap' }), 5, 'latency of every socketmap lookup')
    t.ok(moved('mailhostd_cache_hits_total') >= 1, 'cache hits counted')
    t.ok(moved('mailhostd_cache_misses_total') >= 2, 'cache misses counted')
    t.ok(up.value('mailhostd_cache_entries') >= 2, 'cache entries')
    t.ok(up.count('mailhostd_directory_call_duration_seconds', { directory: 'ldap', operation: 'find', result: 'ok' }) >= 2, 'directory finds timed')
    t.ok(up.count('mailhostd_directory_call_duration_seconds', { directory: 'ldap', operation: 'verify_password', result: 'ok' }) >= 1, 'password checks timed')
    t.equal(moved('mailhostd_login_total', { protocol: 'dovecot', result: 'mismatch' }), 2, 'wrong passwords')
    t.equal(moved('mailhostd_brakes_total', { scope: 'ip', action: 'tarpit' }), 1, 'brake applied')
    t.equal(up.value('mailhostd_backend_up', { backend: 'mx1', service: 'imap' }), 1, 'mx1 up')
    t.equal(up.value('mailhostd_backend_up', { backend: 'mx2', service: 'imap' }), 0, 'mx2 in maintenance counts as down')
    t.equal(up.value('mailhostd_moves_in_progress'), 1, 'one move in progress')
    t.equal(up.value('mailhostd_open_connections', { listener: 'socketmap' }), 1, 'our socketmap connection')
    t.equal(up.value('mailhostd_directory_circuit_state', { state: 'closed' }), 1, 'circuit closed')
    t.ok(up.value('mailhostd_directory_last_answer_timestamp_seconds') > Date.now() / 1000 - 60, 'the directory answered recently')

    // The directory dies. alice's answer (older than the 1 s TTL) is served stale; bob was never
    // cached, so he gets a temporary failure; two failures open the circuit.
    await new Promise((r) => setTimeout(r, 1200))
    await slapd.kill()
    t.match(await askSocketmap(c, 'transport', 'alice@example.org'), /^OK lmtp:inet:\[10\.0\.0\.11\]:24$/, 'stale answer')
    t.match(await askSocketmap(c, 'transport', 'bob@example.org'), /^TEMP /, 'no cached answer: temporary failure')
    t.match(await askSocketmap(c, 'transport', 'bob@example.org'), /^TEMP /, 'refused by the open circuit')

    const down = await scrape(http)
    const movedDown = (name: string, labels: Record<string, string> = {}) => down.value(name, labels) - up.value(name, labels)
    t.equal(movedDown('mailhostd_lookups_total', { protocol: 'socketmap', outcome: 'found', layer: 'stale' }), 1, 'stale counted by layer')
    t.equal(movedDown('mailhostd_lookups_total', { protocol: 'socketmap', outcome: 'temp' }), 2, 'temporary failures counted')
    t.equal(movedDown('mailhostd_cache_stale_served_total'), 1, 'stale served counted by the cache')
    t.ok(movedDown('mailhostd_directory_errors_total', { directory: 'ldap', operation: 'find', code: 'MH_DIRECTORY_UNAVAILABLE' }) >= 1, 'directory errors by code')
    t.ok(down.count('mailhostd_directory_call_duration_seconds', { operation: 'find', result: 'error' }) >= 1, 'failed calls timed')
    t.equal(down.value('mailhostd_directory_circuit_state', { state: 'open' }), 1, 'circuit open')
    t.equal(down.value('mailhostd_directory_circuit_open'), 1)

    // A reload with an unreadable file is counted, and changes nothing.
    t.equal(await d.daemon.reloadFrom(() => d.configWith({ cache: { ttl: 'soon' } })), 'invalid')
    t.equal((await scrape(http)).value('mailhostd_config_reloads_total', { result: 'invalid' }), 1)
  })
})
