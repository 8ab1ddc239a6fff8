// Login password checks against LDAP (directory.ldap.passwordCheck):
// - bind: bind as the entry's DN on one of a few dedicated "check" connections (never the
//   service account's, never used for searches), so the service account's connections never
//   change identity and the server applies its own hash schemes and password policy;
// - compare: read the password attribute with the service account and verify the hash here.
// An empty password is refused without asking: LDAP treats a bind with a DN and an empty
// password as an anonymous ("unauthenticated") bind, which succeeds (RFC 4513 §5.1.2).

import { InvalidCredentialsError, type Client } from 'ldapts'
import { UnsupportedSchemeError, type PasswordHasher } from '../auth/passwords.js'
import { DirectoryDataError, DirectoryError, ErrorCodes } from '../errors.js'
import { silentLogger } from '../log.js'
import type { AccountEntry } from './directory.js'
import type { LdapConnection } from './ldap-config.js'
import { LdapPool } from './ldap-pool.js'

export type PasswordCheck = 'bind' | 'compare'

export interface LdapPasswordOptions {
  readonly mode: PasswordCheck
  readonly attribute: string
  /** The connections bind mode checks on; undefined in compare mode. */
  readonly binds: LdapBindChecks | undefined
  /** The service account's pool, for compare mode. */
  readonly servicePool: LdapPool
  /** Where compare mode checks the hashes it read (the daemon's worker pool). */
  readonly passwords: PasswordHasher
}

export async function checkLdapPassword(
  o: LdapPasswordOptions,
  account: AccountEntry,
  password: string,
  signal?: AbortSignal,
): Promise<'ok' | 'mismatch'> {
  if (password === '') return 'mismatch'
  if (o.mode === 'compare') return compare(o, account, password, signal)
  if (o.binds === undefined) throw new Error('bind-mode password checks need their connections')
  return o.binds.check(account.id, password, signal)
}

/** One check connection: a one-connection pool that never binds by itself (the check does). */
type CheckConnection = LdapPool

interface Waiter {
  readonly grant: (c: CheckConnection) => void
  readonly fail: (e: DirectoryError) => void
}

/**
 * A small, bounded set of connections on which password checks bind as each user in turn, one
 * check at a time per connection: connecting (and StartTLS) happens once per connection instead
 * of once per login. A failed bind with invalidCredentials leaves the connection anonymous and
 * reusable (RFC 4511 §4.2.1); any other error (timeout, connection lost, protocol error, the
 * caller giving up mid-bind) discards the connection, and the next check opens a fresh one.
 * Checks beyond `size` wait in order, until their caller's signal aborts.
 */
export class LdapBindChecks {
  readonly #connection: LdapConnection
  readonly #size: number
  readonly #idle: CheckConnection[] = []
  readonly #waiting: Waiter[] = []
  /** Connections open or being used (idle ones included). */
  #open = 0
  #closed = false

  constructor(connection: LdapConnection, size: number) {
    this.#connection = connection
    this.#size = size
  }

  async check(dn: string, password: string, signal?: AbortSignal): Promise<'ok' | 'mismatch'> {
    const conn = await this.#acquire(signal)
    let reusable = false
    try {
      // ldapts binds on an open connection again to change identity; it connects (and, through
      // the pool, upgrades with StartTLS) first when the connection is new or was lost.
      await conn.run(`password bind as ${dn}`, (client) => client.bind(dn, password), signal)
      reusable = true
      return 'ok'
    } catch (e) {
      if (e instanceof DirectoryError && e.cause instanceof InvalidCredentialsError) {
        reusable = true
        return 'mismatch'
      }
      throw censor(e, password)
    } finally {
      this.#release(conn, reusable)
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    const closing = new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'LDAP password checks: directory closed')
    for (const w of this.#waiting.splice(0)) w.fail(closing)
    await Promise.all(this.#idle.splice(0).map((c) => c.close()))
  }

  #acquire(signal: AbortSignal | undefined): Promise<CheckConnection> {
    if (this.#closed) return Promise.reject(new DirectoryError(ErrorCodes.DIRECTORY_UNAVAILABLE, 'LDAP password checks: directory closed'))
    if (signal?.aborted) return Promise.reject(aborted())
    const idle = this.#idle.pop()
    if (idle !== undefined) return Promise.resolve(idle)
    if (this.#open < this.#size) {
      this.#open++
      return Promise.resolve(this.#newConnection())
    }
    return new Promise<CheckConnection>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter)
        if (i !== -1) this.#waiting.splice(i, 1)
        reject(aborted())
      }
      const waiter: Waiter = {
        grant: (c) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(c)
        },
        fail: (e) => {
          signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(waiter)
    })
  }

  #release(conn: CheckConnection, reusable: boolean): void {
    if (!reusable || this.#closed) {
      // Ends whatever was still in flight on it; nothing waits for that.
      void conn.close()
      this.#open--
      if (this.#closed) return
      const next = this.#waiting.shift()
      if (next !== undefined) {
        this.#open++
        next.grant(this.#newConnection())
      }
      return
    }
    const next = this.#waiting.shift()
    if (next !== undefined) next.grant(conn)
    else this.#idle.push(conn)
  }

  #newConnection(): CheckConnection {
    // Anonymous (no service bind) and without autoRebind: ldapts would otherwise keep the last
    // user's password to replay it on a reconnect. Silent: a wrong password is not the
    // directory becoming unavailable, and the circuit breaker and the router log failures.
    return new LdapPool({ ...this.#connection, bindDN: '', bindPassword: '', size: 1, autoRebind: false }, silentLogger)
  }
}

const aborted = () => new DirectoryError(ErrorCodes.DIRECTORY_TIMEOUT, 'LDAP password bind: aborted by the caller while waiting for a check connection')

/** Defence in depth: no library or server message should ever echo the user's password. */
function censor(e: unknown, password: string): unknown {
  if (!(e instanceof DirectoryError) || !e.message.includes(password)) return e
  return new DirectoryError(e.code, e.message.split(password).join('[redacted]'), { cause: e.cause })
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
      if ((await o.passwords.verify(stored, password, signal)) === 'ok') return 'ok'
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
