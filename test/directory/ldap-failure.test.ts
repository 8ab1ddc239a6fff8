// The LDAP directory when slapd dies, hangs and comes back: every lookup fails with a coded
// DirectoryError (never []) within the configured time, and the SAME LdapDirectory instance heals
// by itself once slapd is back. Margins are generous: this asserts bounds, not speed.

import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import type { DirectoryEntry } from '../../src/directory/directory.js'
import { LdapDirectory } from '../../src/directory/ldap.js'
import { DirectoryError, ErrorCodes } from '../../src/errors.js'
import { createLogger } from '../../src/log.js'
import { ldapConfig, startSlapd } from '../harness/slapd.js'

const TIMEOUT_MS = 1000
const CONNECT_TIMEOUT_MS = 500
/** Every call settles within connectTimeout + timeout; the rest is slack for a loaded machine. */
const BOUND_MS = CONNECT_TIMEOUT_MS + TIMEOUT_MS + 2000
const CONNECTIONS = 3

const alice = { kind: 'account', id: 'uid=alice,ou=people,dc=example,dc=org', mailHost: 'mx1.example.org' }

function captureLog() {
  let text = ''
  const logger = createLogger('debug', { write: (s: string) => void (text += s) })
  return { logger, text: () => text }
}

async function outcome(p: Promise<DirectoryEntry[]>): Promise<{ ms: number; entries?: DirectoryEntry[]; error?: unknown }> {
  const started = Date.now()
  try {
    const entries = await p
    return { ms: Date.now() - started, entries }
  } catch (error) {
    return { ms: Date.now() - started, error }
  }
}

peerTest(t, 'slapd dies, hangs and comes back', async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  const log = captureLog()
  const config = ldapConfig(slapd, { timeout: `${TIMEOUT_MS}ms`, connectTimeout: `${CONNECT_TIMEOUT_MS}ms`, connections: CONNECTIONS })
  const dir = new LdapDirectory(config, log.logger)
  t.teardown(() => dir.close())

  // Touch every connection so each one is bound before the outages.
  const lookupOnEach = () => Promise.all(Array.from({ length: CONNECTIONS * 2 }, () => outcome(dir.findByAddress('alice@example.org'))))
  for (const r of await lookupOnEach()) t.match(r.entries, [alice])

  await t.test('killed: fast DirectoryError, never []', async (t) => {
    await slapd.kill()
    for (const r of await lookupOnEach()) {
      t.ok(r.error instanceof DirectoryError, 'DirectoryError')
      t.match(r.error, { code: ErrorCodes.DIRECTORY_UNAVAILABLE, transient: true })
      t.ok(r.ms < BOUND_MS, `failed within the bound (${r.ms} ms)`)
    }
    await t.rejects(dir.ping(), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE })
  })

  await t.test('restarted on the same port: the same instance heals', async (t) => {
    await slapd.restart()
    for (const r of await lookupOnEach()) t.match(r.entries, [alice], 'found again')
    await dir.ping()
  })

  await t.test('hung (SIGSTOP): DIRECTORY_TIMEOUT within about the timeout', async (t) => {
    await slapd.pause()
    const results = await lookupOnEach()
    for (const r of results) {
      t.ok(r.error instanceof DirectoryError, 'DirectoryError')
      t.match(r.error, { code: ErrorCodes.DIRECTORY_TIMEOUT })
      t.ok(r.ms < BOUND_MS, `timed out within the bound (${r.ms} ms)`)
    }
    // The broken connections are now reconnecting into a frozen server: connect succeeds through
    // the listen backlog, and the bind is what hangs.
    const again = await outcome(dir.findByAddress('bob@example.org'))
    t.match(again.error, { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_TIMEOUT })
    t.ok(again.ms < BOUND_MS, `a reconnect into a hung server is bounded too (${again.ms} ms)`)
    await t.rejects(dir.ping(), { code: ErrorCodes.DIRECTORY_TIMEOUT })
  })

  await t.test('resumed: lookups succeed again', async (t) => {
    await slapd.resume()
    for (const r of await lookupOnEach()) t.match(r.entries, [alice], 'found again')
  })

  t.match(log.text(), /LDAP directory unavailable/, 'the outage is logged')
  t.match(log.text(), /LDAP directory reachable again/, 'so is the recovery')
  t.notOk(log.text().includes(slapd.bindPassword), 'the bind password never reaches the log')
})

peerTest(t, 'a directory created while slapd is down binds once it is up', async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  await slapd.kill()
  const log = captureLog()
  const dir = new LdapDirectory(
    ldapConfig(slapd, { timeout: `${TIMEOUT_MS}ms`, connectTimeout: `${CONNECT_TIMEOUT_MS}ms`, connections: 2 }),
    log.logger,
  )
  t.teardown(() => dir.close())
  for (let i = 0; i < 4; i++) {
    const r = await outcome(dir.findByAddress('alice@example.org'))
    t.match(r.error, { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE, message: /bind as .*ECONNREFUSED/ })
    t.notOk(String((r.error as Error).message).includes(slapd.bindPassword))
  }
  await slapd.restart()
  for (let i = 0; i < 4; i++) t.match(await dir.findByAddress('alice@example.org'), [alice])
  t.notOk(log.text().includes(slapd.bindPassword), 'the bind password never reaches the log')
})

peerTest(t, 'with no timeout configured (0), the caller’s deadline still cuts a hung lookup short', async (t, set) => {
  const slapd = await startSlapd({ set })
  t.teardown(() => slapd.stop())
  const dir = new LdapDirectory(ldapConfig(slapd, { timeout: 0, connectTimeout: 0 }), createLogger('silent'))
  t.teardown(() => dir.close())
  t.match(await dir.findByAddress('alice@example.org'), [alice])
  await slapd.pause()
  const r = await outcome(dir.findByAddress('alice@example.org', AbortSignal.timeout(300)))
  t.match(r.error, { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_TIMEOUT, message: /aborted/ })
  t.ok(r.ms < 5000, `settled when the caller gave up (${r.ms} ms)`)
  await slapd.resume()
  t.match(await dir.findByAddress('alice@example.org'), [alice], 'and the connection still works')
})
