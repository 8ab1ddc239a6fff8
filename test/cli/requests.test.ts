// mailhostctl in-process with a recording fake API: command lines to requests, global options,
// where secrets come from, usage errors (which send nothing) and page following.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ApiRequest, ApiResponse, ClientOptions } from '../../src/cli/client.js'
import { ApiError } from '../../src/cli/client.js'
import type { Io } from '../../src/cli/io.js'
import { daemonUrl, main, splitAtCommand } from '../../src/cli/main.js'
import { readPassword, readToken, stripNewline } from '../../src/cli/secrets.js'
import { integer } from '../../src/cli/args.js'

type Answer = Partial<ApiResponse> | Error

interface Run {
  code: number
  stdout: string
  stderr: string
  requests: ApiRequest[]
  connects: ClientOptions[]
}

/**
 * Runs one command line. `answer` gives each request's answer (default: 200 with an empty
 * object, or the list key the path asks for).
 */
async function ctl(argv: string[], opts: { stdin?: string; env?: Record<string, string>; answer?: (req: ApiRequest, n: number) => Answer } = {}): Promise<Run> {
  const r: Run = { code: -1, stdout: '', stderr: '', requests: [], connects: [] }
  const io: Io = {
    out: (s) => (r.stdout += s),
    err: (s) => (r.stderr += s),
    stdin: () => Promise.resolve(opts.stdin ?? ''),
    env: opts.env ?? {},
  }
  const fallback = (req: ApiRequest): Answer => {
    const list = /^v1\/(accounts|domains|backends|moves|audit)$/.exec(req.path)
    const key = list?.[1] === 'audit' ? 'entries' : list?.[1]
    return { status: 200, body: req.method === 'GET' && key ? { [key]: [] } : { ok: true, moves: [] } }
  }
  r.code = await main(argv, io, (o) => {
    r.connects.push(o)
    return {
      send: <T>(req: ApiRequest): Promise<ApiResponse<T>> => {
        r.requests.push(req)
        const a = (opts.answer ?? fallback)(req, r.requests.length - 1)
        if (a instanceof Error) return Promise.reject(a)
        return Promise.resolve({ status: 200, body: undefined, replayed: false, ...a } as ApiResponse<T>)
      },
    }
  })
  return r
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('global options', async (t) => {
  t.same(splitAtCommand(['--url', 'http://x', '--json', 'account', 'list', '--all']), { global: ['--url', 'http://x', '--json'], command: 'account', rest: ['list', '--all'] })
  t.same(splitAtCommand(['--token-file=/t', 'audit']), { global: ['--token-file=/t'], command: 'audit', rest: [] })
  t.same(splitAtCommand(['--json', '--', 'lookup', 'a', 'b']), { global: ['--json'], command: 'lookup', rest: ['a', 'b'] })
  t.same(splitAtCommand(['--url']), { global: ['--url'], command: undefined, rest: [] })

  t.equal(daemonUrl(undefined, {}), 'http://127.0.0.1:10090')
  t.equal(daemonUrl(undefined, { MAILHOSTD_URL: 'https://admin.example:8443' }), 'https://admin.example:8443')
  t.equal(daemonUrl('http://10.0.0.1:10090', { MAILHOSTD_URL: 'https://other' }), 'http://10.0.0.1:10090', '--url wins')
  t.throws(() => daemonUrl('localhost:10090', {}), { name: 'UsageError', message: /--url/ })
  t.throws(() => daemonUrl(undefined, { MAILHOSTD_URL: 'not a url' }), { message: /\$MAILHOSTD_URL/ })

  const r = await ctl(['--url', 'http://10.1.1.1:1234', 'backend', 'list'], { env: { MAILHOSTD_TOKEN: 'mh_env' } })
  t.equal(r.code, 0)
  t.match(r.connects, [{ url: 'http://10.1.1.1:1234', token: 'mh_env' }])
  t.equal((await ctl(['--url'])).code, 64)
  t.equal((await ctl(['--bogus', 'account', 'list'])).code, 64)
  t.equal((await ctl([])).code, 64)
  const help = await ctl(['--help'])
  t.same([help.code, help.stderr], [0, ''])
  t.match(help.stdout, /^usage: mailhostctl \[--url URL\] \[--token-file FILE\] \[--json\] <command>/)
  t.match((await ctl(['help'])).stdout, /^usage: mailhostctl \[--url/)
  t.match((await ctl(['help', 'audit'])).stdout, /--subject-type/)
  t.match((await ctl(['help', 'nonsense'])).stdout, /^usage: mailhostctl \[--url/)
})

t.test('the token: file (one newline stripped) or environment, validated, never printed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailhostctl-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string, content: string) => {
    writeFileSync(join(dir, name), content)
    return join(dir, name)
  }
  t.equal(await readToken(file('t1', 'mh_abc\n'), { MAILHOSTD_TOKEN: 'mh_env' }), 'mh_abc', 'the file wins over the environment')
  t.equal(await readToken(file('t2', 'mh_abc\r\n'), {}), 'mh_abc')
  t.equal(await readToken(undefined, { MAILHOSTD_TOKEN: 'mh_env' }), 'mh_env')
  t.equal(await readToken(undefined, { MAILHOSTD_TOKEN: '' }), undefined, 'an empty variable is no token')
  t.equal(await readToken(undefined, {}), undefined)
  await t.rejects(readToken(file('t3', ''), {}), { name: 'TokenUnavailable', message: /is empty/ })
  await t.rejects(readToken(join(dir, 'missing'), {}), { message: `cannot read token file ${join(dir, 'missing')}: ENOENT` })
  // fetch would quote a malformed header value in its error, token and all.
  await t.rejects(readToken(file('t4', 'mh_secret1\nmh_secret2\n'), {}), { message: /^token file .* does not hold a token/ })
  await t.rejects(readToken(undefined, { MAILHOSTD_TOKEN: 'mh secret' }), { message: /^\$MAILHOSTD_TOKEN does not hold a token/ })

  const r = await ctl(['--token-file', join(dir, 't4'), 'account', 'list'])
  t.equal(r.code, 77)
  t.notMatch(r.stderr, /mh_secret/)
  t.same(r.requests, [], 'nothing sent')
  // lookup sends a token too (a listener off loopback needs one): an unreadable one stops it like any command.
  const lookup = await ctl(['--token-file', join(dir, 'missing'), 'lookup', 'transport', 'a@example.org'], { answer: () => ({ body: { map: 'transport', key: 'a@example.org', outcome: 'found', value: 'v', layer: 'cache', elapsedMs: 1 } }) })
  t.same([lookup.code, lookup.requests], [77, []], 'lookup with an unreadable token file: nothing sent')
  const given = await ctl(['--token-file', file('t5', 'mh_lookup-token\n'), 'lookup', 'transport', 'a@example.org'], { answer: () => ({ body: { map: 'transport', key: 'a@example.org', outcome: 'found', value: 'v', layer: 'cache', elapsedMs: 1 } }) })
  t.same([given.code, given.connects[0]?.token], [0, 'mh_lookup-token'], 'lookup sends the token it is given')
})

t.test('passwords: stdin or a file, one newline stripped, never empty', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailhostctl-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const io = (stdin: string): Io => ({ out: () => {}, err: () => {}, stdin: () => Promise.resolve(stdin), env: {} })
  t.equal(stripNewline('a\n\n'), 'a\n', 'exactly one')
  t.equal(stripNewline('a\r\n'), 'a')
  t.equal(stripNewline(' a '), ' a ', 'blanks are part of a password')
  t.equal(await readPassword({ 'password-stdin': true }, io('pw \n')), 'pw ')
  t.equal(await readPassword({ 'no-password': true }, io('')), null)
  t.equal(await readPassword({}, io('ignored')), undefined)
  writeFileSync(join(dir, 'pw'), 'from file\n')
  t.equal(await readPassword({ 'password-file': join(dir, 'pw') }, io('')), 'from file')
  await t.rejects(readPassword({ 'password-stdin': true }, io('\n')), { name: 'UsageError', message: 'the password is empty' })
  await t.rejects(readPassword({ 'password-file': join(dir, 'nope') }, io('')), { name: 'UsageError', message: /ENOENT/ })
  await t.rejects(readPassword({ 'password-stdin': true, 'password-file': 'x' }, io('')), { message: '--password-stdin and --password-file exclude each other' })
})

t.test('numbers', async (t) => {
  t.equal(integer('limit', '10', 1), 10)
  t.equal(integer('limit', undefined, 1), undefined)
  t.throws(() => integer('limit', '0', 1), { message: '--limit needs a whole number of at least 1, not "0"' })
  t.throws(() => integer('limit', '1e3', 1), { name: 'UsageError' })
  t.throws(() => integer('lmtp-port', '65536', 1, 65535), { message: '--lmtp-port needs a whole number from 1 to 65535, not "65536"' })
  t.throws(() => integer('limit', '99999999999999999999'), { name: 'UsageError' })
})

t.test('accounts', async (t) => {
  const list = await ctl(['account', 'list', '--domain', 'example.org', '--backend', 'mx1', '--status', 'active', '--limit', '5'])
  t.same(list.requests, [{ method: 'GET', path: 'v1/accounts', query: { domain: 'example.org', backend: 'mx1', status: 'active', limit: 5 } }])
  t.equal(list.stdout, 'ADDRESS  BACKEND  STATUS  ALIASES  MOVING\n')

  const create = await ctl(['account', 'create', 'a@example.org', '--password-stdin', '--backend', 'mx2', '--alias', 'b@example.org', '--send-as', '@example.net', '--send-as', 'c@example.org', '--disabled'], { stdin: 'secret\n', answer: () => ({ status: 201, body: { address: 'a@example.org' } }) })
  t.equal(create.code, 0)
  t.match(create.stdout, /^address {4}a@example\.org\nbackend {4}-\n/, 'fields missing from an answer show as -')
  const req = create.requests[0]!
  t.match(req, { method: 'POST', path: 'v1/accounts', retry: true })
  t.same(req.body, { address: 'a@example.org', password: 'secret', backend: 'mx2', status: 'disabled', aliases: ['b@example.org'], sendAs: ['@example.net', 'c@example.org'] })
  t.match(req.headers?.['Idempotency-Key'], UUID)
  t.same((await ctl(['account', 'create', 'a@example.org', '--idempotency-key', 'ticket 4711'])).requests[0]?.headers, { 'Idempotency-Key': 'ticket 4711' })
  for (const bad of [[], ['a@example.org', 'b@example.org'], ['a@example.org', '--idempotency-key', ''], ['a@example.org', '--idempotency-key', 'x'.repeat(256)], ['a@example.org', '--idempotency-key', 'tab\there'], ['a@example.org', '--password', 'secret'], ['a@example.org', '--no-password']]) {
    const r = await ctl(['account', 'create', ...bad])
    t.equal(r.code, 64, bad.join(' '))
    t.same(r.requests, [])
    t.notMatch(r.stderr, /secret/)
  }

  const update = await ctl(['account', 'update', 'a@example.org', '--password-file', '/dev/null'])
  t.same([update.code, update.stderr.split('\n')[0]], [64, 'mailhostctl: the password is empty'])
  t.same((await ctl(['account', 'update', 'a@example.org', '--send-as', 'x@example.org'])).requests, [{ method: 'PATCH', path: 'v1/accounts/a%40example.org', body: { sendAs: ['x@example.org'] } }])
  t.same((await ctl(['account', 'update', 'a@example.org', '--no-password'])).requests[0]?.body, { password: null })
  t.equal((await ctl(['account', 'update', 'a@example.org', '--send-as', 'x@example.org', '--no-send-as'])).code, 64)

  t.same((await ctl(['account', 'show', 'a+b@example.org'])).requests, [{ method: 'GET', path: 'v1/accounts/a%2Bb%40example.org' }])
  t.same((await ctl(['account', 'delete', 'a@example.org'])).requests, [{ method: 'DELETE', path: 'v1/accounts/a%40example.org' }])
})

t.test('account create: a replayed answer is said so; a lost one tells how to retry', async (t) => {
  const account = { address: 'a@example.org', backend: 'mx1', mailHost: 'mx1', status: 'active', aliases: [], sendAs: [], hasPassword: false, moving: false }
  const replay = await ctl(['--json', 'account', 'create', 'a@example.org'], { answer: () => ({ status: 201, body: account, replayed: true }) })
  t.same(JSON.parse(replay.stdout), account)
  t.match(replay.stderr, /answer replayed/)
  const { DaemonUnreachable } = await import('../../src/cli/client.js')
  const lost = await ctl(['account', 'create', 'a@example.org'], { answer: () => new DaemonUnreachable('connection to mailhostd lost', true) })
  t.equal(lost.code, 69)
  t.match(lost.stderr, /^mailhostctl: to try again safely, add --idempotency-key [0-9a-f-]{36}\nmailhostctl: connection to mailhostd lost\n$/)
  const given = await ctl(['account', 'create', 'a@example.org', '--idempotency-key', 'k'], { answer: () => new DaemonUnreachable('lost', true) })
  t.equal(given.stderr, 'mailhostctl: lost\n', 'a key the user gave needs no reminder')
})

t.test('domains', async (t) => {
  t.same((await ctl(['domain', 'list'])).requests, [{ method: 'GET', path: 'v1/domains' }])
  t.same((await ctl(['domain', 'create', 'example.net', '--alias-for', 'example.org'])).requests[0]?.body, { name: 'example.net', aliasFor: 'example.org' })
  t.same((await ctl(['domain', 'update', 'example.net', '--no-alias-for', '--catch-all', 'a@example.org'])).requests[0], { method: 'PATCH', path: 'v1/domains/example.net', body: { aliasFor: null, catchAll: ['a@example.org'] } })
  t.equal((await ctl(['domain', 'update', 'example.net'])).code, 64, 'nothing to change')
  const created = await ctl(['domain', 'create', 'example.com'], { answer: () => ({ status: 201, body: undefined }) })
  t.equal(created.stdout, 'created domain example.com\n', 'an answer without a body')
  t.equal((await ctl(['domain', 'update', 'example.com', '--affinity', 'mx1'], { answer: () => ({ status: 204 }) })).stdout, 'changed domain example.com\n')
  t.equal((await ctl(['--json', 'domain', 'create', 'example.com'], { answer: () => ({ status: 201 }) })).stdout, '')
  t.same((await ctl(['domain', 'delete', 'example.com'])).requests, [{ method: 'DELETE', path: 'v1/domains/example.com' }])
  t.same((await ctl(['domain', 'show', 'example.com'])).requests, [{ method: 'GET', path: 'v1/domains/example.com' }])
})

t.test('backends', async (t) => {
  const backend = { id: 'mx1', mailHosts: [], address: '10.0.0.11', route: 'lmtp', ports: { lmtp: 24, smtp: 25, imap: 143, pop3: 110 }, weight: 1, capacity: null, adminState: 'active', accounts: 0 }
  const answer = () => ({ body: backend })
  const create = await ctl(['backend', 'create', 'mx9', '--address', '10.0.0.19', '--imap-port', '1143', '--pop3-port', '1110', '--lmtp-port', '2424', '--capacity', '0'], { answer })
  t.same(create.requests[0]?.body, { id: 'mx9', address: '10.0.0.19', capacity: 0, ports: { lmtp: 2424, imap: 1143, pop3: 1110 } })
  const update = await ctl(['backend', 'update', 'mx1', '--weight', '0', '--address', '10.0.0.21', '--mail-host', 'a.example.org'], { answer })
  t.same(update.requests, [{ method: 'PATCH', path: 'v1/backends/mx1', body: { address: '10.0.0.21', mailHosts: ['a.example.org'], weight: 0 } }])
  t.same((await ctl(['backend', 'update', 'mx1', '--pop3-port', '1110'], { answer })).requests[0]?.body, { ports: { pop3: 1110 } })
  t.same((await ctl(['backend', 'maintenance', 'mx1'], { answer })).requests[0]?.body, { adminState: 'maintenance' })
  t.equal((await ctl(['backend', 'drain'])).code, 64)
  t.equal((await ctl(['backend', 'create', 'mx9', '--address', '10.0.0.19', '--capacity', '-1'])).code, 64)
})

t.test('pools: every subcommand to its request, and what it prints', async (t) => {
  const member = { id: 'm3', address: '127.0.0.13', ports: { lmtp: 24, imap: 1143 }, weight: 2, adminState: 'drain', health: { imap: { state: 'up', since: '2026-12-07T20:00:00Z', detail: null } } }
  const status = {
    id: 'pool1',
    mailHosts: ['pool1.example.org'],
    route: 'lmtp',
    adminState: 'active',
    pinForMs: 900_000,
    director: { tag: 'pool1', address: '127.0.0.20' },
    accounts: 300,
    pins: 42,
    members: [{ ...member, eligible: false, pins: 42, share: 0 }],
  }
  const st = await ctl(['pool', 'status', 'pool1'], { answer: () => ({ body: status }) })
  t.same(st.requests, [{ method: 'GET', path: 'v1/pools/pool1' }])
  t.match(st.stdout, /^pin for +900s$/m)
  t.match(st.stdout, /^director +tag pool1 at 127\.0\.0\.20$/m)
  t.match(st.stdout, /^m3 +127\.0\.0\.13 +drain +.* +2 +no +0% +42$/m)
  const noDirector = await ctl(['pool', 'status', 'pool1'], { answer: () => ({ body: { ...status, director: undefined, accounts: null } }) })
  t.match(noDirector.stdout, /^director +-$/m)

  const add = await ctl(['pool', 'add-member', 'pool1', 'm3', '--address', '127.0.0.13', '--imap-port', '1143', '--weight', '2', '--state', 'drain'], { answer: () => ({ body: member }) })
  t.same(add.requests, [{ method: 'POST', path: 'v1/pools/pool1/members', body: { id: 'm3', address: '127.0.0.13', ports: { imap: 1143 }, weight: 2, adminState: 'drain' } }])
  t.match(add.stdout, /^ports +lmtp 24, imap 1143$/m)
  t.same((await ctl(['pool', 'add-member', 'pool1', 'm4', '--address', '127.0.0.14'], { answer: () => ({ body: member }) })).requests[0]?.body, { id: 'm4', address: '127.0.0.14' }, 'no ports, weight or state: the pool\'s')
  for (const bad of [
    ['add-member', 'pool1', 'm3'],
    ['add-member', 'pool1', 'm3', '--address', '127.0.0.13', '--imap-port', '0'],
    ['weight', 'pool1', 'm3', '-1'],
    ['weight', 'pool1', 'm3'],
    ['flush', 'pool1', '--member', 'm1', '--user', 'a@example.org'],
    ['move-user', 'pool1', 'a@example.org'],
    ['pins', 'pool1', '--limit', '0'],
    ['status'],
  ]) {
    const r = await ctl(['pool', ...bad])
    t.same([r.code, r.requests.length], [64, 0], bad.join(' '))
  }

  for (const [args, body] of [
    [['weight', 'pool1', 'm3', '5'], { weight: 5 }],
    [['drain', 'pool1', 'm3'], { adminState: 'drain' }],
    [['maintenance', 'pool1', 'm3'], { adminState: 'maintenance' }],
    [['activate', 'pool1', 'm3'], { adminState: 'active' }],
  ] as const) {
    const r = await ctl(['pool', ...args], { answer: () => ({ body: member }) })
    t.same(r.requests, [{ method: 'PATCH', path: 'v1/pools/pool1/members/m3', body }], args.join(' '))
    t.match(r.stdout, /^member +m3$/m)
  }

  const rm = await ctl(['pool', 'remove-member', 'pool1', 'm3'], { answer: () => ({ status: 204 }) })
  t.same([rm.requests, rm.stdout], [[{ method: 'DELETE', path: 'v1/pools/pool1/members/m3' }], 'removed member m3 from pool pool1\n'])
  t.equal((await ctl(['--json', 'pool', 'remove-member', 'pool1', 'm3'], { answer: () => ({ status: 204 }) })).stdout, '', '--json prints nothing for a 204')

  const flush = await ctl(['pool', 'flush', 'pool1', '--user', 'a@example.org'], { answer: () => ({ body: { dropped: 1 } }) })
  t.same([flush.requests, flush.stdout], [[{ method: 'POST', path: 'v1/pools/pool1/flush', body: { user: 'a@example.org' } }], 'dropped 1 pin(s)\n'])
  t.same((await ctl(['pool', 'flush', 'pool1'], { answer: () => ({ body: { dropped: 0 } }) })).requests[0]?.body, {}, 'the whole pool')

  const moved = { user: 'a@example.org', member: 'm2', previous: 'm1' }
  const mv = await ctl(['pool', 'move-user', 'pool1', 'a@example.org', 'm2'], { answer: () => ({ body: moved }) })
  t.same(mv.requests, [{ method: 'POST', path: 'v1/pools/pool1/move-user', body: { user: 'a@example.org', member: 'm2' } }])
  t.notMatch(mv.stdout, /kicked/, 'no kick asked, none shown')
  const kick = await ctl(['pool', 'move-user', 'pool1', 'a@example.org', 'm2', '--kick'], { answer: () => ({ body: { ...moved, kicked: false, reason: 'no doveadm section' } }) })
  t.same(kick.requests[0]?.body, { user: 'a@example.org', member: 'm2', kick: true })
  t.match(kick.stdout, /^kicked +no: no doveadm section$/m)
  t.match((await ctl(['pool', 'move-user', 'pool1', 'a@example.org', 'm2', '--kick'], { answer: () => ({ body: { ...moved, kicked: true } }) })).stdout, /^kicked +yes$/m)

  const pin = { address: 'a@example.org', member: 'm2', explicit: true, pinnedAt: '2026-12-07T20:00:00Z', lastSeen: '2026-12-07T20:01:00Z' }
  const pages = [{ pins: [pin], next: 'a@example.org' }, { pins: [{ ...pin, address: 'b@example.org', explicit: false }] }]
  const all = await ctl(['pool', 'pins', 'pool1', '--member', 'm2', '--limit', '1', '--all'], { answer: (_r, n) => ({ body: pages[n] }) })
  t.same(all.requests.map((r) => [r.path, r.query?.member, r.query?.limit, r.query?.after]), [
    ['v1/pools/pool1/pins', 'm2', 1, undefined],
    ['v1/pools/pool1/pins', 'm2', 1, 'a@example.org'],
  ])
  t.match(all.stdout, /^a@example\.org +m2 +yes /m)
  t.match(all.stdout, /^b@example\.org +m2 +no /m)
  const help = await ctl(['pool', '--help'])
  t.same([help.code, help.requests.length], [0, 0])
  t.match(help.stdout, /move-user <pool> <user> <member> \[--kick\]/)
})

t.test('placement, moves, audit', async (t) => {
  const p = await ctl(['placement'], { answer: () => ({ body: { ok: true, backend: 'mx1', applied: 'random', eligible: ['mx1'], excluded: [] } }) })
  t.same(p.requests, [{ method: 'GET', path: 'v1/placement', query: { domain: undefined, policy: undefined } }])
  t.equal(p.code, 0)
  t.equal((await ctl(['placement', 'extra'])).code, 64)

  t.same((await ctl(['move', 'start', '--target', 'mx2', '--from', 'mx1'])).requests[0]?.body, { target: 'mx2', fromBackend: 'mx1' })
  t.equal((await ctl(['move', 'start', '--target', 'mx2', '--from', 'mx1', '--limit', '0'])).code, 64)
  t.same((await ctl(['move', 'list'])).requests[0]?.query, { state: undefined, account: undefined, active: undefined, limit: undefined })
  t.same((await ctl(['move', 'complete', '12'])).requests, [{ method: 'POST', path: 'v1/moves/12/complete', query: { force: undefined } }])
  t.same((await ctl(['move', 'abort', '12'])).requests, [{ method: 'POST', path: 'v1/moves/12/abort' }])
  for (const bad of [['show', '0'], ['complete', '-1'], ['abort', '1.5'], ['abort'], ['complete', '1', '2']]) t.equal((await ctl(['move', ...bad])).code, 64, bad.join(' '))

  const audit = await ctl(['audit', '--limit', '3'])
  t.same(audit.requests, [{ method: 'GET', path: 'v1/audit', query: { subjectType: undefined, subject: undefined, actor: undefined, action: undefined, since: undefined, until: undefined, limit: 3 } }])
  t.equal(audit.stdout, 'ID  AT  ACTOR  ACTION  TYPE  SUBJECT\n')
  t.equal((await ctl(['audit', 'account'])).code, 64)
})

t.test('pages: followed with --all, a note without, and a daemon that loops is caught', async (t) => {
  const pages = [
    { entries: [{ id: 9 }, { id: 8 }], next: 8 },
    { entries: [{ id: 7 }, { id: 6 }], next: 6 },
    { entries: [{ id: 5 }] },
  ]
  const all = await ctl(['--json', 'audit', '--all', '--limit', '2'], { answer: (_r, n) => ({ body: pages[n] }) })
  t.same(all.requests.map((r) => r.query?.before), [undefined, '8', '6'])
  t.same(JSON.parse(all.stdout), { entries: [{ id: 9 }, { id: 8 }, { id: 7 }, { id: 6 }, { id: 5 }] })
  t.equal(all.stderr, '')

  const one = await ctl(['--json', 'audit', '--limit', '2'], { answer: () => ({ body: pages[0] }) })
  t.same(JSON.parse(one.stdout), pages[0], 'the page as the daemon sent it')
  t.equal(one.stderr, 'mailhostctl: more entries follow: add --all to list them all\n')

  const loop = await ctl(['account', 'list', '--all'], { answer: () => ({ body: { accounts: [], next: 'a@example.org' } }) })
  t.equal(loop.code, 2)
  t.match(loop.stderr, /cursor "a@example.org" twice/)
  t.equal(loop.requests.length, 2)

  const odd = await ctl(['move', 'list'], { answer: () => ({ body: { items: [] } }) })
  t.same([odd.code, odd.stderr], [2, 'mailhostctl: v1/moves: the answer has no moves list\n'])
  t.equal((await ctl(['backend', 'list'], { answer: () => ({ status: 204 }) })).code, 2, 'no body at all')
})

t.test('errors thrown by the API become exit codes and one line', async (t) => {
  const r = await ctl(['account', 'show', 'a@example.org'], { answer: () => new ApiError(403, 'MH_FORBIDDEN', 'read token') })
  t.same([r.code, r.stdout, r.stderr], [77, '', 'mailhostctl: read token (MH_FORBIDDEN)\n'])
  const bug = await ctl(['account', 'show', 'a@example.org'], { answer: () => new TypeError('unexpected') })
  t.same([bug.code, bug.stderr], [2, 'mailhostctl: unexpected\n'])
})

t.test('show, delete and --help in every group', async (t) => {
  t.same((await ctl(['backend', 'show', 'mx1'])).requests, [{ method: 'GET', path: 'v1/backends/mx1' }])
  const del = await ctl(['backend', 'delete', 'mx1'], { answer: () => ({ status: 204 }) })
  t.same([del.requests, del.stdout], [[{ method: 'DELETE', path: 'v1/backends/mx1' }], 'deleted backend mx1\n'])
  t.same((await ctl(['move', 'show', '3'])).requests, [{ method: 'GET', path: 'v1/moves/3' }])
  for (const argv of [['account', '--help'], ['backend', 'update', 'mx1', '-h'], ['move', 'start', '--target', '--help'], ['audit', '--help']]) {
    const r = await ctl(argv)
    t.same([r.code, r.stderr, r.requests], [0, '', []], argv.join(' '))
    t.match(r.stdout, /^usage: mailhostctl /)
  }
  t.equal((await ctl(['audit', '--', '--help'])).code, 64, 'after --, --help is an argument')
})

t.test('lookup: answers, and failures that are not answers', async (t) => {
  const reply = { map: 'transport', key: 'a@example.org', outcome: 'temp', reason: 'directory down', layer: 'none', elapsedMs: 3000 }
  const temp = await ctl(['lookup', 'transport', 'a@example.org'], { answer: () => ({ body: reply }) })
  t.same([temp.code, temp.requests], [2, [{ method: 'GET', path: 'v1/lookup', query: { map: 'transport', key: 'a@example.org' } }]])
  t.equal((await ctl(['--json', 'lookup', 'transport', 'a@example.org'], { answer: () => ({ body: { ...reply, outcome: 'notfound' } }) })).code, 1)
  const { DaemonUnreachable } = await import('../../src/cli/client.js')
  t.equal((await ctl(['lookup', 'transport', 'a@example.org'], { answer: () => new DaemonUnreachable('down', false) })).code, 69)
  t.equal((await ctl(['lookup', 'transport', 'a@example.org'], { answer: () => new ApiError(404, 'MH_HTTP_NOT_FOUND', 'no route') })).code, 2, 'a 404 from an old daemon is no "not found"')
})
