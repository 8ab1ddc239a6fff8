// mailhostctl as a process against an in-memory daemon (fake-daemon.ts): what each command sends
// (method, path, query, body, bearer token, Idempotency-Key), what it prints, pagination with
// --all, and the documented exit code for every kind of answer.

import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { freePort } from '../harness/ports.js'
import { buildCli, ctlRunner } from './ctl.js'
import { ADMIN_TOKEN, FakeDaemon, READ_TOKEN } from './fake-daemon.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const PASSWORD = 'correct horse battery staple'

t.test('mailhostctl commands', async (t) => {
  const cli = buildCli()
  t.teardown(cli.remove)
  const d = await new FakeDaemon().start()
  t.teardown(() => d.stop())
  const dir = mkdtempSync(join(tmpdir(), 'mailhostctl-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tokenFile = join(dir, 'token')
  writeFileSync(tokenFile, `${ADMIN_TOKEN}\n`)
  const readTokenFile = join(dir, 'read-token')
  writeFileSync(readTokenFile, READ_TOKEN)

  const run = ctlRunner(cli.entry)
  // Everything any run printed, to prove at the end that no secret was ever shown.
  const printed: string[] = []
  const raw = async (args: readonly string[], opts: Parameters<typeof run>[1] = {}) => {
    const r = await run(args, opts)
    printed.push(r.stdout, r.stderr)
    return r
  }
  const ctl = (args: readonly string[], opts: Parameters<typeof run>[1] = {}) => raw(['--url', d.url, '--token-file', tokenFile, ...args], opts)
  const one = (t: Test) => {
    const reqs = d.take()
    t.equal(reqs.length, 1, 'one request')
    return reqs[0]!
  }

  t.test('token from a file or the environment, sent as a bearer token', async (t) => {
    t.equal((await ctl(['account', 'list'])).code, 0)
    const req = one(t)
    t.equal(req.headers.authorization, `Bearer ${ADMIN_TOKEN}`, 'trailing newline stripped')
    t.match(req.headers.accept, /application\/json/)
    t.same([req.method, req.path], ['GET', '/v1/accounts'])

    const env = await raw(['account', 'list'], { env: { MAILHOSTD_URL: d.url, MAILHOSTD_TOKEN: ADMIN_TOKEN } })
    t.equal(env.code, 0, '$MAILHOSTD_URL and $MAILHOSTD_TOKEN')
    t.equal(one(t).headers.authorization, `Bearer ${ADMIN_TOKEN}`)
  })

  t.test('account create', async (t) => {
    const r = await ctl(
      ['account', 'create', 'Alice@Example.org', '--backend', 'mx2', '--password-stdin', '--alias', 'a.l@example.org', '--alias', 'al@example.org', '--send-as', '@example.org', '--disabled'],
      { input: `${PASSWORD}\n` },
    )
    t.equal(r.code, 0, r.stderr)
    const req = one(t)
    t.same([req.method, req.path], ['POST', '/v1/accounts'])
    t.same(req.json, { address: 'Alice@Example.org', password: PASSWORD, backend: 'mx2', status: 'disabled', aliases: ['a.l@example.org', 'al@example.org'], sendAs: ['@example.org'] }, 'one trailing newline stripped from the password')
    t.equal(req.headers['content-type'], 'application/json')
    t.match(req.headers['idempotency-key'], UUID, 'a random Idempotency-Key')
    t.match(r.stdout, /^address +alice@example\.org$/m)
    t.match(r.stdout, /^backend +mx2$/m)
    t.match(r.stdout, /^aliases +a\.l@example\.org, al@example\.org$/m)
    t.match(r.stdout, /^password +set$/m)

    t.equal((await ctl(['account', 'create', 'bob@example.org'])).code, 0, 'no password, placement picks')
    const bob = one(t)
    t.same(bob.json, { address: 'bob@example.org' })
    t.not(bob.headers['idempotency-key'], req.headers['idempotency-key'], 'a new key per invocation')

    const file = join(dir, 'password')
    writeFileSync(file, `${PASSWORD}\r\n`)
    t.equal((await ctl(['account', 'create', 'carol@example.org', '--password-file', file])).code, 0)
    t.same(one(t).json, { address: 'carol@example.org', password: PASSWORD }, 'CRLF stripped from the password file')

    const json = await ctl(['--json', 'account', 'create', 'dave@example.org'])
    t.same(JSON.parse(json.stdout), { address: 'dave@example.org', backend: 'mx1', mailHost: 'mx1.example.org', status: 'active', aliases: [], sendAs: [], hasPassword: false, moving: false })
    d.take()
  })

  t.test('an address with shell metacharacters, or starting with -, after --: sent as it is', async (t) => {
    const address = "-o'k$x|y&z{w}`id`@example.org"
    t.equal((await ctl(['account', 'create', address])).code, 64, 'without --: an unknown option')
    t.equal(d.take().length, 0)
    const r = await ctl(['account', 'create', '--', address])
    t.equal(r.code, 0, r.stderr)
    t.same(one(t).json, { address })
    t.equal((await ctl(['account', 'show', '--', address])).code, 0)
    t.same([one(t).path], [`/v1/accounts/${encodeURIComponent(address)}`])
    t.equal((await ctl(['account', 'delete', '--', address])).code, 0)
    t.same([one(t).method], ['DELETE'])
  })

  t.test('account create: Idempotency-Key given, replayed, reused', async (t) => {
    const first = await ctl(['account', 'create', 'erin@example.org', '--idempotency-key', 'k-erin'])
    t.equal(first.code, 0)
    t.equal(one(t).headers['idempotency-key'], 'k-erin')
    const again = await ctl(['account', 'create', 'erin@example.org', '--idempotency-key', 'k-erin'])
    t.equal(again.code, 0, 'a replay succeeds')
    t.match(again.stderr, /replayed/)
    d.take()
    const other = await ctl(['account', 'create', 'frank@example.org', '--idempotency-key', 'k-erin'])
    t.equal(other.code, 3)
    t.match(other.stderr, /^mailhostctl: .* \(MH_IDEMPOTENCY_MISMATCH\)\n$/)
    d.take()
    t.equal((await ctl(['account', 'create', 'x@example.org', '--idempotency-key', ' padded'])).code, 64)
    t.equal(d.take().length, 0)
  })

  t.test('account create retries once, with the same key, when the connection breaks', async (t) => {
    d.resetNext()
    const r = await ctl(['account', 'create', 'grace@example.org'])
    t.equal(r.code, 0, r.stderr)
    t.match(r.stderr, /connection to mailhostd .* lost.*trying once more/)
    const [a, b] = d.take()
    t.equal(a?.headers['idempotency-key'], b?.headers['idempotency-key'])
    t.same(a?.json, b?.json)

    d.resetNext()
    d.resetNext()
    const twice = await ctl(['account', 'create', 'heidi@example.org'])
    t.equal(twice.code, 69, 'gives up after one retry')
    t.match(twice.stderr, /the change may or may not have been made/)
    const key = d.take().map((q) => q.headers['idempotency-key'])
    t.equal(key.length, 2)
    t.match(twice.stderr, `add --idempotency-key ${String(key[0])}`, 'says how to retry safely')

    d.resetNext()
    const other = await ctl(['domain', 'create', 'example.com'])
    t.equal(other.code, 69, 'other writes are not retried')
    t.equal(d.take().length, 1)
  })

  t.test('account list: one page, or all of them', async (t) => {
    d.seedAccounts(250)
    const total = d.accounts.size
    const page = await ctl(['account', 'list', '--limit', '100'])
    t.equal(page.code, 0)
    t.same(one(t).query, { limit: '100' })
    t.equal(page.stdout.trimEnd().split('\n').length, 101, 'header and 100 rows')
    t.match(page.stderr, /more accounts follow: add --all/)
    t.match(page.stdout, 'ADDRESS              BACKEND  STATUS    ALIASES  MOVING\nalice@example.org    mx2      disabled        2  no\n', 'aligned columns, counts right-aligned')

    const all = await ctl(['account', 'list', '--all', '--limit', '100'])
    t.equal(all.code, 0)
    t.equal(all.stderr, '')
    const reqs = d.take()
    t.same(
      reqs.map((r) => r.query),
      [{ limit: '100' }, { limit: '100', after: expectNth(d, 99) }, { limit: '100', after: expectNth(d, 199) }],
      'follows next as after',
    )
    t.equal(all.stdout.trimEnd().split('\n').length, total + 1)

    const json = JSON.parse((await ctl(['--json', 'account', 'list', '--all', '--limit', '100'])).stdout) as { accounts: unknown[]; next?: unknown }
    t.equal(json.accounts.length, total)
    t.notOk('next' in json)
    d.take()
    const jsonPage = JSON.parse((await ctl(['--json', 'account', 'list', '--limit', '2'])).stdout) as { accounts: unknown[]; next?: unknown }
    t.same(jsonPage.next, 'bob@example.org', 'the page object as the daemon sent it')
    d.take()

    t.equal((await ctl(['account', 'list', '--domain', 'example.org', '--backend', 'mx2', '--status', 'disabled'])).code, 0)
    t.same(one(t).query, { domain: 'example.org', backend: 'mx2', status: 'disabled' })
    t.equal((await ctl(['account', 'list', '--limit', 'lots'])).code, 64)
    t.equal(d.take().length, 0, 'usage errors send nothing')
  })

  t.test('account show, update, delete', async (t) => {
    const show = await ctl(['account', 'show', 'alice@example.org'])
    t.equal(show.code, 0)
    t.same([one(t).path], ['/v1/accounts/alice%40example.org'])
    t.match(show.stdout, /^send as +@example\.org$/m)

    const upd = await ctl(['account', 'update', 'alice@example.org', '--password-stdin', '--status', 'active', '--alias', 'ali@example.org'], { input: PASSWORD })
    t.equal(upd.code, 0)
    const req = one(t)
    t.same([req.method, req.path], ['PATCH', '/v1/accounts/alice%40example.org'])
    t.same(req.json, { password: PASSWORD, status: 'active', aliases: ['ali@example.org'] })
    t.notOk(req.headers['idempotency-key'], 'only account create sends a key')

    t.equal((await ctl(['account', 'update', 'alice@example.org', '--no-password', '--no-aliases', '--no-send-as'])).code, 0)
    t.same(one(t).json, { password: null, aliases: [], sendAs: [] }, '--no-password sends null')

    for (const bad of [['--alias', 'x@example.org', '--no-aliases'], ['--no-password', '--password-stdin'], [], ['--password', PASSWORD]]) {
      const r = await ctl(['account', 'update', 'alice@example.org', ...bad], { input: '' })
      t.equal(r.code, 64, bad.join(' ') || 'nothing to change')
    }
    t.equal(d.take().length, 0)

    const del = await ctl(['account', 'delete', 'bob@example.org'])
    t.equal(del.code, 0)
    t.same([one(t).method], ['DELETE'])
    t.equal(del.stdout, 'deleted account bob@example.org\n')
    const delJson = await ctl(['--json', 'account', 'delete', 'carol@example.org'])
    t.same([delJson.code, delJson.stdout], [0, ''], '204 has nothing to print')
    d.take()
  })

  t.test('exit codes for every kind of answer', async (t) => {
    const cases: [string, string[], number, RegExp][] = [
      ['404', ['account', 'show', 'nobody@example.org'], 1, /^mailhostctl: no such account \(MH_NOT_FOUND\)\n$/],
      ['409', ['account', 'create', 'alice@example.org'], 3, /\(MH_ADDRESS_TAKEN\)/],
      ['422', ['account', 'create', 'x@example.net'], 3, /\(MH_DOMAIN_NOT_SERVED\)/],
      ['400', ['account', 'list', '--limit', '5000'], 3, /limit .*\(MH_HTTP_VALIDATION\)/],
    ]
    for (const [status, args, code, stderr] of cases) {
      const r = await ctl(args)
      t.equal(r.code, code, status)
      t.match(r.stderr, stderr)
    }
    d.take()

    const none = await raw(['--url', d.url, 'account', 'list'])
    t.same([none.code, none.stderr], [77, 'mailhostctl: a valid bearer token is required (MH_UNAUTHORIZED)\n'], '401 without a token')
    t.notOk(one(t).headers.authorization)
    t.equal((await raw(['--url', d.url, 'account', 'list'], { env: { MAILHOSTD_TOKEN: 'mh_unknown' } })).code, 77, '401 for an unknown token')
    const forbidden = await raw(['--url', d.url, '--token-file', readTokenFile, 'account', 'delete', 'alice@example.org'])
    t.same([forbidden.code, forbidden.stderr], [77, 'mailhostctl: this token may only read (MH_FORBIDDEN)\n'], '403: a read token on a write')
    t.equal((await raw(['--url', d.url, '--token-file', readTokenFile, 'account', 'show', 'alice@example.org'])).code, 0, 'a read token reads')
    t.equal((await raw(['--url', d.url, '--token-file', join(dir, 'missing'), 'account', 'list'])).code, 77, 'unreadable token file')
    d.take()

    d.failNext(500, 'MH_INTERNAL', 'boom')
    const e500 = await ctl(['backend', 'list'])
    t.same([e500.code, e500.stderr], [2, 'mailhostctl: boom (MH_INTERNAL)\n'])
    d.failNext(503, 'MH_DIRECTORY_UNAVAILABLE', 'the directory did not answer')
    t.equal((await ctl(['account', 'update', 'alice@example.org', '--status', 'active'])).code, 2, '503')
    d.take()

    const closed = await freePort()
    const down = await raw(['--url', `http://127.0.0.1:${closed}`, '--token-file', tokenFile, 'account', 'list'])
    t.equal(down.code, 69)
    t.match(down.stderr, /^mailhostctl: cannot reach mailhostd at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/)
    t.equal((await raw(['--url', 'ftp://x', 'account', 'list'])).code, 64, 'not an http URL')
  })

  t.test('domains', async (t) => {
    const list = await ctl(['domain', 'list'])
    t.equal(list.code, 0)
    t.equal(list.stdout, 'NAME         ALIAS-FOR    CATCH-ALL  AFFINITY\nexample.org  -            -          -\nexample.net  example.org  -          -\n')
    d.take()

    const create = await ctl(['domain', 'create', 'example.com', '--catch-all', 'bob@example.org', '--catch-all', 'carol@example.org', '--affinity', 'mx2'])
    t.equal(create.code, 0, create.stderr)
    const req = one(t)
    t.same([req.method, req.path, req.json], ['POST', '/v1/domains', { name: 'example.com', catchAll: ['bob@example.org', 'carol@example.org'], affinity: 'mx2' }])
    t.match(create.stdout, /^catch-all +bob@example\.org, carol@example\.org$/m)

    t.equal((await ctl(['domain', 'create', 'example.com'])).code, 3, '409 exists')
    d.take()
    t.equal((await ctl(['domain', 'update', 'example.com', '--no-catch-all', '--no-affinity', '--alias-for', 'example.org'])).code, 0)
    const upd = one(t)
    t.same([upd.method, upd.path, upd.json], ['PATCH', '/v1/domains/example.com', { aliasFor: 'example.org', catchAll: null, affinity: null }])
    t.equal((await ctl(['domain', 'update', 'example.com', '--affinity', 'mx1', '--no-affinity'])).code, 64)
    t.equal((await ctl(['domain', 'show', 'example.com'])).code, 0)
    t.equal((await ctl(['domain', 'delete', 'example.org'])).code, 3, '409 while accounts use it')
    const del = await ctl(['domain', 'delete', 'example.com'])
    t.same([del.code, del.stdout], [0, 'deleted domain example.com\n'])
    t.equal((await ctl(['domain', 'show', 'example.com'])).code, 1)
    d.take()
  })

  t.test('backends', async (t) => {
    const list = await ctl(['backend', 'list'])
    t.equal(list.code, 0)
    const onMx1 = [...d.accounts.values()].filter((a) => a.backend === 'mx1').length
    t.match(list.stdout, `ID   ADDRESS    ROUTE  STATE   HEALTH  WEIGHT  CAPACITY  ACCOUNTS\nmx1  10.0.0.11  lmtp   active  -            1         -  ${String(onMx1).padStart(8)}\n`)
    t.match(list.stdout, 'mx3  10.0.0.13  lmtp   drain   -            1         -         0\n')
    d.take()

    const create = await ctl(['backend', 'create', 'mx4', '--address', '10.0.0.14', '--mail-host', 'mx4.example.org', '--mail-host', 'store4.example.org', '--route', 'smtp', '--smtp-port', '2525', '--weight', '3', '--capacity', '100', '--state', 'drain'])
    t.equal(create.code, 0, create.stderr)
    t.same(one(t).json, { id: 'mx4', address: '10.0.0.14', mailHosts: ['mx4.example.org', 'store4.example.org'], route: 'smtp', weight: 3, capacity: 100, adminState: 'drain', ports: { smtp: 2525 } })
    t.match(create.stdout, /^ports +lmtp 24, smtp 2525, imap 143, pop3 110$/m)

    t.equal((await ctl(['backend', 'update', 'mx4', '--lmtp-port', '2424', '--no-capacity'])).code, 0)
    const patch = one(t)
    t.same([patch.method, patch.path, patch.json], ['PATCH', '/v1/backends/mx4', { capacity: null, ports: { lmtp: 2424 } }])
    t.match((await ctl(['backend', 'show', 'mx4'])).stdout, /^ports +lmtp 2424, smtp 2525, imap 143, pop3 110$/m, 'the daemon kept the other ports')
    d.take()

    for (const [verb, state] of [['drain', 'drain'], ['maintenance', 'maintenance'], ['activate', 'active']] as const) {
      const r = await ctl(['backend', verb, 'mx4'])
      t.equal(r.code, 0)
      t.same(one(t).json, { adminState: state }, verb)
      t.match(r.stdout, new RegExp(`^state +${state}$`, 'm'))
    }
    for (const bad of [['create', 'mx5'], ['create', 'mx5', '--address', '10.0.0.15', '--weight', '2.5'], ['create', 'mx5', '--address', '10.0.0.15', '--lmtp-port', '70000'], ['update', 'mx4'], ['update', 'mx4', '--capacity', '1', '--no-capacity']]) {
      t.equal((await ctl(['backend', ...bad])).code, 64, bad.join(' '))
    }
    t.equal(d.take().length, 0)

    const inUse = await ctl(['backend', 'delete', 'mx1'])
    t.equal(inUse.code, 3)
    t.match(inUse.stderr, /\(MH_BACKEND_IN_USE\)/)
    t.equal((await ctl(['backend', 'delete', 'mx4'])).code, 0)
    t.equal((await ctl(['backend', 'show', 'mx4'])).code, 1)
    d.take()
  })

  t.test('pools', async (t) => {
    const create = await ctl(['backend', 'create', 'pool1', '--kind', 'pool', '--member', 'm1=127.0.0.11', '--member', 'm2=127.0.0.12', '--pin-for', '10m', '--mail-host', 'pool1.example.org'])
    t.equal(create.code, 0, create.stderr)
    t.same(one(t).json, { id: 'pool1', kind: 'pool', mailHosts: ['pool1.example.org'], pinFor: '10m', members: [{ id: 'm1', address: '127.0.0.11' }, { id: 'm2', address: '127.0.0.12' }] })
    t.match(create.stdout, /^kind +pool$/m)
    t.notMatch(create.stdout, /^address/m, 'a pool shows no address')
    t.match(create.stdout, /^members +m1 127\.0\.0\.11 weight 1 active -\n +m2 127\.0\.0\.12 weight 1 active -$/m)
    const dir = await ctl(['backend', 'create', 'pool2', '--kind', 'pool', '--member', 'n1=127.0.0.21', '--director-tag', 'pool2', '--director-address', '127.0.0.20'])
    t.equal(dir.code, 0, dir.stderr)
    t.same((one(t).json as { director: unknown }).director, { tag: 'pool2', address: '127.0.0.20' })
    for (const bad of [
      ['create', 'pool3', '--kind', 'pool'],
      ['create', 'pool3', '--kind', 'pool', '--member', 'm3'],
      ['create', 'pool3', '--kind', 'pool', '--member', '=127.0.0.1'],
      ['create', 'pool3', '--kind', 'cluster', '--address', '10.0.0.1'],
      ['create', 'pool3', '--kind', 'pool', '--member', 'm3=127.0.0.1', '--director-tag', 'x'],
    ]) {
      t.equal((await ctl(['backend', ...bad])).code, 64, bad.join(' '))
    }
    t.equal(d.take().length, 0, 'usage errors send nothing')
    t.match((await ctl(['backend', 'list'])).stdout, /^pool1 +- +lmtp +active/m, 'a pool in the list, without an address')
    d.take()

    const add = await ctl(['pool', 'add-member', 'pool1', 'm3', '--address', '127.0.0.13', '--imap-port', '1143', '--weight', '2', '--state', 'drain'])
    t.equal(add.code, 0, add.stderr)
    const addReq = one(t)
    t.same([addReq.method, addReq.path, addReq.json], ['POST', '/v1/pools/pool1/members', { id: 'm3', address: '127.0.0.13', ports: { imap: 1143 }, weight: 2, adminState: 'drain' }])
    t.match(add.stdout, /^member +m3\naddress +127\.0\.0\.13\nports +lmtp 24, smtp 25, imap 1143, pop3 110\nweight +2\nstate +drain$/m)

    for (const [args, body] of [
      [['weight', 'pool1', 'm1', '3'], { weight: 3 }],
      [['drain', 'pool1', 'm1'], { adminState: 'drain' }],
      [['maintenance', 'pool1', 'm1'], { adminState: 'maintenance' }],
      [['activate', 'pool1', 'm1'], { adminState: 'active' }],
      [['activate', 'pool1', 'm3'], { adminState: 'active' }],
    ] as const) {
      const r = await ctl(['pool', ...args])
      t.equal(r.code, 0, args.join(' '))
      const req = one(t)
      t.same([req.method, req.path, req.json], ['PATCH', `/v1/pools/pool1/members/${args[2]}`, body], args.join(' '))
    }

    const status = await ctl(['pool', 'status', 'pool1'])
    t.equal(status.code, 0, status.stderr)
    t.same([one(t).path], ['/v1/pools/pool1'])
    t.match(status.stdout, /^pool +pool1\n/)
    t.match(status.stdout, /^pin for +900s$/m)
    t.match(status.stdout, /^MEMBER +ADDRESS +STATE +HEALTH +WEIGHT +ELIGIBLE +SHARE +PINS$/m)
    t.match(status.stdout, /^m1 +127\.0\.0\.11 +active +- +3 +yes +50% +0$/m)
    t.match(status.stdout, /^m3 +127\.0\.0\.13 +active +- +2 +yes +33\.33% +0$/m)
    const json = await ctl(['--json', 'pool', 'status', 'pool1'])
    t.match(JSON.parse(json.stdout), { id: 'pool1', members: [{ id: 'm1', share: 50 }, { id: 'm2' }, { id: 'm3' }] })
    d.take()

    const move = await ctl(['pool', 'move-user', 'pool1', 'Ann@example.org', 'm2', '--kick'])
    t.equal(move.code, 0, move.stderr)
    t.same(one(t).json, { user: 'Ann@example.org', member: 'm2', kick: true })
    t.match(move.stdout, /^user +ann@example\.org\nmember +m2\nprevious +-\nkicked +no: no previous pin: no member to kick on$/m)
    t.equal((await ctl(['pool', 'move-user', 'pool1', 'bea@example.org', 'm1'])).code, 0)
    t.same(one(t).json, { user: 'bea@example.org', member: 'm1' }, 'no kick unless asked')
    t.equal((await ctl(['pool', 'move-user', 'pool1', 'bea@example.org', 'm3', '--kick'])).code, 0)
    d.take()

    const pins = await ctl(['pool', 'pins', 'pool1', '--limit', '1'])
    t.equal(pins.code, 0)
    t.same(one(t).query, { limit: '1' })
    t.match(pins.stdout, /^ADDRESS +MEMBER +EXPLICIT +PINNED +LAST SEEN\nann@example\.org +m2 +yes /)
    t.match(pins.stderr, /more pins follow: add --all/)
    const all = await ctl(['pool', 'pins', 'pool1', '--all', '--member', 'm3'])
    t.match(all.stdout, /bea@example\.org +m3 +yes/)
    t.same(d.take().map((r) => r.query), [{ member: 'm3' }])

    const flushUser = await ctl(['pool', 'flush', 'pool1', '--user', 'ann@example.org'])
    t.same([flushUser.code, flushUser.stdout], [0, 'dropped 1 pin(s)\n'])
    t.same(one(t).json, { user: 'ann@example.org' })
    t.equal((await ctl(['pool', 'flush', 'pool1', '--member', 'm3'])).code, 0)
    t.same(one(t).json, { member: 'm3' })
    t.equal((await ctl(['pool', 'flush', 'pool1'])).code, 0)
    t.same([one(t).json], [{}], 'the whole pool')
    t.equal((await ctl(['pool', 'flush', 'pool1', '--member', 'm1', '--user', 'a@example.org'])).code, 64, '--member and --user exclude each other')

    const removed = await ctl(['pool', 'remove-member', 'pool1', 'm3'])
    t.same([removed.code, removed.stdout], [0, 'removed member m3 from pool pool1\n'])
    t.same([one(t).method, d.requests.length], ['DELETE', 0])
    const missing = await ctl(['pool', 'weight', 'pool1', 'm3', '1'])
    t.equal(missing.code, 1, 'no such member: not found')
    t.match(missing.stderr, /MH_NOT_FOUND/)
    t.equal((await ctl(['pool', 'status', 'mx1'])).code, 1, 'a host is no pool')
    for (const id of ['pool1', 'pool2']) t.equal((await ctl(['backend', 'delete', id])).code, 0, `pool ${id} deleted`)
    d.take()
    for (const bad of [['status'], ['weight', 'pool1', 'm1'], ['weight', 'pool1', 'm1', 'heavy'], ['add-member', 'pool1', 'm4'], ['move-user', 'pool1', 'a@example.org'], ['frobnicate', 'pool1']]) {
      t.equal((await ctl(['pool', ...bad])).code, 64, bad.join(' '))
    }
    t.equal(d.take().length, 0)
  })

  t.test('placement', async (t) => {
    const r = await ctl(['placement', '--domain', 'example.org', '--policy', 'weighted'])
    t.equal(r.code, 0)
    t.same(one(t).query, { domain: 'example.org', policy: 'weighted' })
    t.match(r.stdout, /^backend +mx1\npolicy {4}weighted\neligible {2}mx1, mx2\nexcluded {2}mx3 \(drain\)\n\nID {3}STATE/)

    for (const id of ['mx1', 'mx2']) d.backends.get(id)!.adminState = 'maintenance'
    const none = await ctl(['placement'])
    t.equal(none.code, 3, 'no eligible backend: refused, as creating an account would be')
    t.match(none.stdout, /^backend +none\nreason {4}no eligible backend\n/)
    t.equal((await ctl(['--json', 'placement'])).code, 3)
    for (const id of ['mx1', 'mx2']) d.backends.get(id)!.adminState = 'active'
    d.take()
  })

  t.test('moves', async (t) => {
    const start = await ctl(['move', 'start', '--target', 'mx2', 'user000@example.org', 'user001@example.org'])
    t.equal(start.code, 0, start.stderr)
    t.same(one(t).json, { target: 'mx2', accounts: ['user000@example.org', 'user001@example.org'] })
    t.equal(
      start.stdout,
      'ID  ACCOUNT              SOURCE  TARGET  STATE   UPDATED\n' +
        ' 1  user000@example.org  mx1     mx2     copied  2026-12-01T10:00:00.000Z\n' +
        ' 2  user001@example.org  mx1     mx2     copied  2026-12-01T10:00:00.000Z\n',
    )

    t.equal((await ctl(['move', 'start', '--target', 'mx2', '--from', 'mx1', '--limit', '3'])).code, 0)
    t.same(one(t).json, { target: 'mx2', fromBackend: 'mx1', limit: 3 })
    const moving = await ctl(['move', 'start', '--target', 'mx2', 'user000@example.org'])
    t.equal(moving.code, 3, '409: already moving')
    d.take()
    for (const bad of [['--target', 'mx2'], ['--from', 'mx1'], ['--target', 'mx2', '--from', 'mx1', 'a@example.org'], ['--target', 'mx2', '--limit', '3', 'a@example.org']]) {
      t.equal((await ctl(['move', 'start', ...bad])).code, 64, bad.join(' '))
    }
    t.equal(d.take().length, 0)

    const all = await ctl(['move', 'list', '--active', '--limit', '2', '--all'])
    t.equal(all.code, 0)
    t.same(d.take().map((r) => r.query), [{ active: 'true', limit: '2' }, { active: 'true', limit: '2', after: '2' }, { active: 'true', limit: '2', after: '4' }])
    t.equal(all.stdout.trimEnd().split('\n').length, 6, 'five moves')
    t.equal((await ctl(['move', 'list', '--state', 'copied', '--account', 'user000@example.org'])).code, 0)
    t.same(one(t).query, { state: 'copied', account: 'user000@example.org' })

    const show = await ctl(['move', 'show', '1'])
    t.match(show.stdout, /^source +mx1 \(mx1\.example\.org\)$/m)
    d.take()
    const done = await ctl(['move', 'complete', '1'])
    t.equal(done.code, 0)
    t.same([one(t).path], ['/v1/moves/1/complete'])
    t.match(done.stdout, /^state +completed$/m)
    t.equal((await ctl(['move', 'complete', '1'])).code, 3, '409 MH_MOVE_STATE')
    d.take()
    d.moves[1]!.state = 'failed'
    t.equal((await ctl(['move', 'complete', '2', '--force'])).code, 0)
    t.same(one(t).query, { force: 'true' })
    t.equal((await ctl(['move', 'abort', '3'])).code, 0)
    t.same([one(t).path], ['/v1/moves/3/abort'])
    t.equal((await ctl(['move', 'show', 'x'])).code, 64)
    t.equal((await ctl(['move', 'show', '99'])).code, 1)
    d.take()
  })

  t.test('audit', async (t) => {
    const total = d.audit.filter((e) => e.actor === 'ops').length
    const r = await ctl(['audit', '--actor', 'ops', '--limit', '10', '--all'])
    t.equal(r.code, 0)
    const reqs = d.take()
    t.equal(reqs.length, Math.ceil(total / 10) + (total % 10 === 0 ? 1 : 0))
    t.same(reqs[1]?.query, { actor: 'ops', limit: '10', before: String(d.audit.filter((e) => e.actor === 'ops').reverse()[9]!.id) }, 'next passed as before')
    t.equal(r.stdout.trimEnd().split('\n').length, total + 1)
    const [header, first] = r.stdout.split('\n')
    t.equal(header, 'ID  AT                        ACTOR  ACTION  TYPE     SUBJECT')
    t.match(first, /^\d\d {2}2026-12-01T10:00:\d\d\.000Z {2}ops {4}start {3}move {5}\d+$/)

    const q = await ctl(['audit', '--subject-type', 'account', '--subject', 'alice@example.org', '--action', 'update', '--since', '2026-12-01T00:00:00Z', '--until', '2026-12-02T00:00:00Z'])
    t.equal(q.code, 0)
    t.same(one(t).query, { subjectType: 'account', subject: 'alice@example.org', action: 'update', since: '2026-12-01T00:00:00Z', until: '2026-12-02T00:00:00Z' })
    const entries = (JSON.parse((await ctl(['--json', 'audit', '--subject', 'alice@example.org'])).stdout) as { entries: { after: unknown }[] }).entries
    t.ok(entries.length >= 2)
    t.match(entries[0]?.after, { password: '(changed)' })
    d.take()
  })

  t.test('token new works offline', async (t) => {
    const closed = await freePort()
    const r = await raw(['--url', `http://127.0.0.1:${closed}`, 'token', 'new', 'ops', '--role', 'admin'])
    t.equal(r.code, 0)
    const m = /^token: {2}(mh_[A-Za-z0-9_-]{43})\nconfig: \{name: ops, role: admin, sha256: "([0-9a-f]{64})"\}\n$/.exec(r.stdout)
    t.ok(m, r.stdout)
    t.equal(m?.[2], createHash('sha256').update(m?.[1] ?? '').digest('hex'))
    const json = JSON.parse((await raw(['--json', 'token', 'new', 'viewer'])).stdout) as Record<string, string>
    t.same(Object.keys(json), ['token', 'name', 'role', 'sha256'])
    t.equal(json.role, 'read', 'read unless asked')
    t.equal((await raw(['token', 'new', 'ops', '--role', 'root'])).code, 64)
    t.equal((await raw(['token', 'new', 'bad name'])).code, 64)
  })

  t.test('lookup sends the token it is given (a listener off loopback needs it), and works without one', async (t) => {
    const found = await ctl(['lookup', 'recipient', 'alice@example.org'])
    t.equal(found.code, 0)
    t.match(found.stdout, /^value +mx2\.example\.org$/m)
    const req = one(t)
    t.equal(req.headers.authorization, `Bearer ${ADMIN_TOKEN}`)
    t.same(req.query, { map: 'recipient', key: 'alice@example.org' })
    const anonymous = await raw(['--url', d.url, 'lookup', 'recipient', 'alice@example.org'])
    t.equal(anonymous.code, 0, 'no token given: asked without one')
    t.notOk(one(t).headers.authorization)
    t.equal((await ctl(['lookup', 'recipient', 'nobody@example.org'])).code, 1)
    d.failNext(400, 'MH_HTTP_VALIDATION', 'querystring/map is wrong')
    const refused = await ctl(['lookup', 'recipient', 'x@example.org'])
    t.same([refused.code, refused.stderr], [2, 'mailhostctl: querystring/map is wrong (MH_HTTP_VALIDATION)\n'], 'any error answer is a failure for lookup')
    d.take()
  })

  t.test('help and usage', async (t) => {
    for (const group of ['account', 'domain', 'backend', 'pool', 'placement', 'move', 'audit', 'token', 'lookup']) {
      const r = await raw([group, '--help'])
      t.equal(r.code, 0, group)
      t.match(r.stdout, /^usage: mailhostctl /, group)
    }
    t.match((await raw(['account', 'create', '--help'])).stdout, /update <address>/, 'subcommand --help shows the group')
    t.match((await raw(['help', 'move'])).stdout, /start --target B/)
    const unknown = await raw(['account', 'frobnicate'])
    t.equal(unknown.code, 64)
    t.match(unknown.stderr, /unknown subcommand "frobnicate"\nusage: mailhostctl \[global options\] account/)
    t.equal((await raw(['account'])).code, 64)
    t.equal((await raw(['--json'])).code, 64, 'no command')
    t.equal((await raw(['account', 'list', '--json'])).code, 64, 'global options go before the command')
    t.equal(d.take().length, 0)
  })

  t.test('no secret is ever printed', async (t) => {
    const all = printed.join('\n')
    for (const secret of [ADMIN_TOKEN, READ_TOKEN, PASSWORD]) t.notOk(all.includes(secret), secret)
  })
})

/** The address of the nth account in list order (the cursor a page of n+1 ends with). */
function expectNth(d: FakeDaemon, n: number): string {
  return [...d.accounts.keys()].sort()[n]!
}
