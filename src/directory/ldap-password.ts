// Login password checks against LDAP (directory.ldap.passwordCheck):
// - bind: bind as the entry's DN on a separate, short-lived connection, so the service
//   account's connections never change identity and the server applies its own hash schemes
//   and password policy;
// - compare: read the password attribute with the service account and verify the hash here.
// An empty password is refused without asking: LDAP treats a bind with a DN and an empty
// password as an anonymous ("unauthenticated") bind, which succeeds (RFC 4513 §5.1.2).

import { InvalidCredentialsError, type Client } from 'ldapts'
import { verifyPassword as verifyHash, UnsupportedSchemeError } from '../auth/passwords.js'
import { DirectoryDataError, DirectoryError, ErrorCodes } from '../errors.js'
import { silentLogger } from '../log.js'
import type { AccountEntry } from './directory.js'
import { LdapPool, type LdapPoolOptions } from './ldap-pool.js'

export type PasswordCheck = 'bind' | 'compare'

export interface LdapPasswordOptions {
  readonly mode: PasswordCheck
  readonly attribute: string
  /** Connection settings for the bind mode (URL, timeouts, TLS); identity is per check. */
  readonly connection: Omit<LdapPoolOptions, 'bindDN' | 'bindPassword' | 'size'>
  /** The service account's pool, for compare mode. */
  readonly servicePool: LdapPool
}

export async function checkLdapPassword(
  o: LdapPasswordOptions,
  account: AccountEntry,
  password: string,
  signal?: AbortSignal,
): Promise<'ok' | 'mismatch'> {
  if (password === '') return 'mismatch'
  return o.mode === 'bind' ? bindAs(o, account.id, password, signal) : compare(o, account, password, signal)
}

async function bindAs(o: LdapPasswordOptions, dn: string, password: string, signal?: AbortSignal): Promise<'ok' | 'mismatch'> {
  // A one-connection pool bound as the user: connect, StartTLS if configured, bind, done. Its
  // logger is silent: a wrong password is not the directory becoming unavailable.
  const pool = new LdapPool({ ...o.connection, bindDN: dn, bindPassword: password, size: 1 }, silentLogger)
  try {
    await pool.run('password bind', () => Promise.resolve(), signal)
    return 'ok'
  } catch (e) {
    if (e instanceof DirectoryError && e.cause instanceof InvalidCredentialsError) return 'mismatch'
    throw e
  } finally {
    await pool.close()
  }
}

async function compare(o: LdapPasswordOptions, account: AccountEntry, password: string, signal?: AbortSignal): Promise<'ok' | 'mismatch'> {
  const { searchEntries } = await o.servicePool.run(
    'password read',
    (client: Client) => client.search(account.id, { scope: 'base', attributes: [o.attribute], explicitBufferAttributes: [o.attribute] }),
    signal,
  )
  const raw = searchEntries[0]?.[Object.keys(searchEntries[0] ?? {}).find((k) => k.toLowerCase() === o.attribute.toLowerCase()) ?? '']
  const values = raw === undefined ? [] : (Array.isArray(raw) ? raw : [raw]).map((v) => (typeof v === 'string' ? v : v.toString('utf8')))
  // Several values are several valid passwords (e.g. during a rehash): any match will do, and
  // an unverifiable value is a data error only when nothing matched.
  let unverifiable = false
  for (const stored of values) {
    try {
      if ((await verifyHash(stored, password)) === 'ok') return 'ok'
    } catch (e) {
      if (!(e instanceof UnsupportedSchemeError)) throw e
      unverifiable = true
    }
  }
  if (unverifiable) {
    throw new DirectoryDataError(ErrorCodes.DIRECTORY_DATA, `${o.attribute} of ${account.id} uses a password scheme mailhostd cannot verify`)
  }
  return 'mismatch'
}
