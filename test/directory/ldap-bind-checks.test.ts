// Bind-mode password checks on their own small set of connections: connections are reused from
// login to login (re-bound as each user), one check at a time each, waiting checks leave the
// queue when their caller gives up, and any error other than a wrong password discards the
// connection. A failure to check is an error, never a mismatch; a mismatch is never an error.
// Counts connections through a relay in front of slapd; asserts no timings.

import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import type { AccountEntry } from '../../src/directory/directory.js'
import { LdapDirectory } from '../../src/directory/ldap.js'
import { DirectoryError, ErrorCodes } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { ldapConfig, startSlapd } from '../harness/slapd.js'

const account = (id: string): AccountEntry => ({ kind: 'account', id, canonical: undefined, mailHost: 'mx1.example.org', status: 'active', sendAs: [] })
const alice = account('uid=alice,ou=people,dc=example,dc=org')
const bob = account('uid=bob,ou=people,dc=example,dc=org')

/** A TCP relay that counts connections; with `hang` set it stops passing slapd's answers on. */
async function relay(targetPort: number) {
  const state = { hang: false, accepted: 0 }
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    state.accepted++
    const upstream = connect(targetPort, '127.0.0.1')
    sockets.add(client)
    client.pipe(upstream)
    upstream.on('data', (chunk: Buffer) => {
      if (!state.hang) client.write(chunk)
    })
    const close = () => {
      sockets.delete(client)
      client.destroy()
      upstream.destroy()
    }
    for (const s of [client, upstream]) s.on('error', close).on('close', close)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    state,
    port: (server.address() as AddressInfo).port,
    /** Cuts every relayed connection, as a server restart or an idle timeout would. */
    cut: () => {
      for (const s of sockets) s.destroy()
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** True for 'ok' or a DirectoryError: what a check may end in when its connection was just cut. */
async function afterCut(check: Promise<'ok' | 'mismatch'>): Promise<boolean> {
  return check.then(
    (r) => r === 'ok',
    (e: unknown) => e instanceof DirectoryError,
  )
}

peerTest(t, 'bind checks reuse a bounded set of connections', async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  const r = await relay(slapd.port)
  t.teardown(() => r.close())
  const dir = new LdapDirectory(
    ldapConfig(slapd, { url: `ldap://127.0.0.1:${r.port}`, passwordCheck: 'bind', passwordConnections: 2, timeout: '1s', connectTimeout: '500ms', connections: 1 }),
    silentLogger,
  )
  t.teardown(() => dir.close())

  await t.test('one after another: one connection, re-bound as each user', async (t) => {
    const before = r.state.accepted
    const results: string[] = []
    for (const [who, password] of [
      [alice, 'wonderland'],
      [bob, 'builder'],
      [alice, 'builder'],
      [bob, 'wonderland'],
      [alice, 'wonderland'],
      [bob, 'builder'],
    ] as const) {
      results.push(await dir.verifyPassword(who, password))
    }
    t.same(results, ['ok', 'ok', 'mismatch', 'mismatch', 'ok', 'ok'], 'each check is for its own user, whoever was bound before')
    t.equal(r.state.accepted - before, 1, 'all on one connection')
    t.equal(await dir.verifyPassword(alice, ''), 'mismatch', 'an empty password is never sent as an (anonymous, successful) bind')
    t.equal(await dir.verifyPassword(account('uid=ghost,ou=people,dc=example,dc=org'), 'x'), 'mismatch', 'no such entry')
  })

  await t.test('many at once: at most passwordConnections, each check with its own identity', async (t) => {
    const before = r.state.accepted
    const kinds: readonly (readonly [AccountEntry, string])[] = [
      [alice, 'wonderland'],
      [bob, 'builder'],
      [alice, 'builder'],
      [bob, 'wonderland'],
    ]
    const attempts = Array.from({ length: 40 }, (_, i) => kinds[i % 4]!)
    const results = await Promise.all(attempts.map(([who, password]) => dir.verifyPassword(who, password)))
    t.same(results, attempts.map((_, i) => (i % 4 < 2 ? 'ok' : 'mismatch')))
    t.ok(r.state.accepted - before <= 1, `no more than the 2 check connections in all (${r.state.accepted - before} new)`)
    t.equal((await dir.findByAddress('bob@example.org')).length, 1, 'the service connection still searches as the service account')
  })

  await t.test('a connection lost while idle: the next check reconnects', async (t) => {
    r.cut()
    const before = r.state.accepted
    // A check racing the news of the close fails with the connection; never as a mismatch.
    t.ok(await afterCut(dir.verifyPassword(alice, 'wonderland')), 'ok, or an error: never a mismatch')
    t.equal(await dir.verifyPassword(alice, 'wonderland'), 'ok')
    t.equal(await dir.verifyPassword(alice, 'nope'), 'mismatch')
    t.ok(r.state.accepted - before >= 1, 'connected again')
  })

  await t.test('a hung directory: an error, never a mismatch; the connection is discarded', async (t) => {
    r.state.hang = true
    await t.rejects(dir.verifyPassword(alice, 'nope'), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_TIMEOUT })
    const caught = await dir.verifyPassword(bob, 'secret-never-echoed').catch((e: unknown) => e)
    t.ok(caught instanceof DirectoryError, 'an error, not a mismatch')
    t.notOk(String((caught as Error).message).includes('secret-never-echoed'), 'the password is not in the error')
    r.state.hang = false
    const before = r.state.accepted
    t.equal(await dir.verifyPassword(alice, 'wonderland'), 'ok', 'checks work again')
    t.equal(r.state.accepted - before, 1, 'on a fresh connection: the timed-out ones were dropped')
  })

  await t.test('waiting checks leave the queue when their caller gives up', async (t) => {
    r.state.hang = true
    // Both check connections hang in a bind; a third check waits for one of them.
    const busy = [dir.verifyPassword(alice, 'wonderland'), dir.verifyPassword(bob, 'builder')].map((p) => p.catch((e: unknown) => e))
    const caller = new AbortController()
    const waiting = dir.verifyPassword(alice, 'wonderland', caller.signal).catch((e: unknown) => e)
    caller.abort()
    t.match(await waiting, { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_TIMEOUT }, 'aborted: an error, never a mismatch')
    for (const e of await Promise.all(busy)) t.match(e, { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_TIMEOUT })
    r.state.hang = false
    t.equal(await dir.verifyPassword(bob, 'builder'), 'ok', 'and the checks heal')
  })

  await t.test('a caller giving up mid-bind: an error, and the connection is not reused', async (t) => {
    r.state.hang = true
    const caller = new AbortController()
    const pending = dir.verifyPassword(alice, 'wonderland', caller.signal).catch((e: unknown) => e)
    caller.abort()
    t.match(await pending, { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_TIMEOUT })
    r.state.hang = false
    const before = r.state.accepted
    t.equal(await dir.verifyPassword(alice, 'wonderland'), 'ok')
    t.equal(r.state.accepted - before, 1, 'a fresh connection: the late answer to the abandoned bind is never read as this one')
  })

  await t.test('closed: checks fail as DirectoryError', async (t) => {
    await dir.close()
    await t.rejects(dir.verifyPassword(alice, 'wonderland'), DirectoryError)
  })
})

peerTest(t, 'bind checks over StartTLS', async (t, set) => {
  const slapd = await startSlapd({ set, tls: true })
  t.teardown(() => slapd.stop())
  const r = await relay(slapd.port)
  t.teardown(() => r.close())
  const dir = new LdapDirectory(
    ldapConfig(slapd, { url: `ldap://127.0.0.1:${r.port}`, startTLS: true, tls: { caFile: slapd.caFile }, passwordCheck: 'bind', passwordConnections: 1, timeout: '2s', connectTimeout: '1s' }),
    silentLogger,
  )
  t.teardown(() => dir.close())
  const before = r.state.accepted
  for (let i = 0; i < 3; i++) {
    t.equal(await dir.verifyPassword(alice, 'wonderland'), 'ok')
    t.equal(await dir.verifyPassword(bob, 'wonderland'), 'mismatch')
  }
  t.equal(r.state.accepted - before, 1, 'one upgraded connection for all checks')
  r.cut()
  t.ok(await afterCut(dir.verifyPassword(alice, 'wonderland')), 'ok, or an error: never a mismatch')
  t.equal(await dir.verifyPassword(alice, 'wonderland'), 'ok', 'a lost upgraded connection is replaced, upgraded again')
  t.equal(await dir.verifyPassword(alice, 'nope'), 'mismatch')

  // A server without StartTLS: an error, never a plain-text bind and never a mismatch.
  const plain = await startSlapd({ set })
  t.teardown(() => plain.stop())
  const noTls = new LdapDirectory(ldapConfig(plain, { startTLS: true, passwordCheck: 'bind' }), silentLogger)
  t.teardown(() => noTls.close())
  await t.rejects(noTls.verifyPassword(alice, 'wonderland'), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE })
})
