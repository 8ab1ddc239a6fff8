// StartTLS against a slapd with a certificate from a throwaway CA: verified connections work,
// unverifiable ones fail as DirectoryError (never a plain-text fallback, never []), and a
// StartTLS connection heals after slapd restarts, upgraded and bound again.

import t from 'tap'
import { peerTest } from '../harness/peer-set.js'
import { connect, createServer, type AddressInfo } from 'node:net'
import { LdapDirectory } from '../../src/directory/ldap.js'
import { DirectoryError, ErrorCodes } from '../../src/errors.js'
import { createLogger, silentLogger } from '../../src/log.js'
import { ldapConfig, startSlapd } from '../harness/slapd.js'

const alice = { kind: 'account', id: 'uid=alice,ou=people,dc=example,dc=org', mailHost: 'mx1.example.org', status: 'active' }

/**
 * A TCP relay in front of slapd. With `hang` set, a connection passes only the server's first
 * reply (the StartTLS result) and swallows the rest: a server that hangs mid-handshake.
 */
async function relay(targetPort: number) {
  const state = { hang: false }
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1')
    const hang = state.hang
    let replies = 0
    client.pipe(upstream)
    upstream.on('data', (chunk: Buffer) => {
      if (!hang || replies++ === 0) client.write(chunk)
    })
    const close = () => {
      client.destroy()
      upstream.destroy()
    }
    for (const s of [client, upstream]) s.on('error', close).on('close', close)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    state,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

peerTest(t, 'StartTLS', async (t, set) => {
  const slapd = await startSlapd({ set, tls: true, anonymousRead: true })
  t.teardown(() => slapd.stop())
  const caFile = slapd.caFile!
  t.ok(caFile, 'the harness made a CA')

  let logText = ''
  const logger = createLogger('debug', { write: (s: string) => void (logText += s) })
  const dir = new LdapDirectory(
    ldapConfig(slapd, { startTLS: true, tls: { caFile }, timeout: '2s', connectTimeout: '1s', connections: 2 }),
    logger,
  )
  t.teardown(() => dir.close())

  await t.test('verified against the configured CA', async (t) => {
    for (let i = 0; i < 4; i++) t.match(await dir.findByAddress('alice@example.org'), [alice])
    await dir.ping()
  })

  await t.test('anonymous over StartTLS', async (t) => {
    const anonymous = new LdapDirectory(ldapConfig(slapd, { bindDN: '', bindPassword: '', startTLS: true, tls: { caFile } }), silentLogger)
    t.teardown(() => anonymous.close())
    t.match(await anonymous.findByAddress('alice@example.org'), [alice])
    await anonymous.ping()
  })

  await t.test('an unknown CA is refused, and stays refused', async (t) => {
    const untrusted = new LdapDirectory(ldapConfig(slapd, { startTLS: true }), silentLogger)
    t.teardown(() => untrusted.close())
    for (let i = 0; i < 3; i++) {
      const err = await untrusted.findByAddress('alice@example.org').catch((e: unknown) => e)
      t.ok(err instanceof DirectoryError, 'DirectoryError, not a plain-text fallback')
      t.match(err, { code: ErrorCodes.DIRECTORY_UNAVAILABLE, message: /certificate/i })
    }
    const unverified = new LdapDirectory(ldapConfig(slapd, { startTLS: true, tls: { rejectUnauthorized: false } }), silentLogger)
    t.teardown(() => unverified.close())
    t.match(await unverified.findByAddress('alice@example.org'), [alice], 'rejectUnauthorized: false accepts it')
  })

  await t.test('ldaps://', async (t) => {
    const ldaps = new LdapDirectory(ldapConfig(slapd, { url: slapd.ldapsUrl, tls: { caFile } }), silentLogger)
    t.teardown(() => ldaps.close())
    t.match(await ldaps.findByAddress('alice@example.org'), [alice])
    const untrusted = new LdapDirectory(ldapConfig(slapd, { url: slapd.ldapsUrl }), silentLogger)
    t.teardown(() => untrusted.close())
    await t.rejects(untrusted.findByAddress('alice@example.org'), {
      name: 'DirectoryError',
      code: ErrorCodes.DIRECTORY_UNAVAILABLE,
      message: /certificate/i,
    })
  })

  await t.test('a server that hangs in the handshake: bounded, then healed', async (t) => {
    const r = await relay(slapd.port)
    t.teardown(() => r.close())
    const viaRelay = new LdapDirectory(
      ldapConfig(slapd, { url: `ldap://127.0.0.1:${r.port}`, startTLS: true, tls: { caFile }, timeout: '1s', connectTimeout: '500ms', connections: 1 }),
      silentLogger,
    )
    t.teardown(() => viaRelay.close())
    r.state.hang = true
    const started = Date.now()
    await t.rejects(viaRelay.findByAddress('alice@example.org'), {
      name: 'DirectoryError',
      code: ErrorCodes.DIRECTORY_TIMEOUT,
      message: /StartTLS handshake timed out/,
    })
    t.ok(Date.now() - started < 1500 + 2000, 'within connectTimeout + timeout, with slack')
    r.state.hang = false
    t.match(await viaRelay.findByAddress('alice@example.org'), [alice], 'the same connection slot heals')
  })

  await t.test('the same instance heals after a restart, upgraded again', async (t) => {
    await slapd.kill()
    for (let i = 0; i < 2; i++) {
      await t.rejects(dir.findByAddress('alice@example.org'), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE })
    }
    await slapd.restart()
    for (let i = 0; i < 4; i++) t.match(await dir.findByAddress('alice@example.org'), [alice])
  })

  t.notOk(logText.includes(slapd.bindPassword), 'the bind password never reaches the log')
})

peerTest(t, 'StartTLS against a server without TLS fails as DirectoryError', async (t, set) => {
  const plain = await startSlapd({ set })
  t.teardown(() => plain.stop())
  const dir = new LdapDirectory(ldapConfig(plain, { startTLS: true }), silentLogger)
  t.teardown(() => dir.close())
  for (let i = 0; i < 2; i++) {
    await t.rejects(dir.findByAddress('alice@example.org'), { name: 'DirectoryError', code: ErrorCodes.DIRECTORY_UNAVAILABLE })
  }
})
