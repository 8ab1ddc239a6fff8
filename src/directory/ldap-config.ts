// What every LDAP user in mailhostd (lookups, password binds, the admin writer, the watcher)
// reads the same way from directory.ldap: the extra filter, and the connection settings with
// their checks. One place, so a TLS or timeout setting can never apply to lookups but not writes.

import { readFileSync } from 'node:fs'
import { FilterParser, type Filter } from 'ldapts'
import { toMs } from '../config/duration.js'
import type { LdapConfig } from '../config/schema.js'
import { ConfigError, describeError } from '../errors.js'
import type { Logger } from '../log.js'
import { LdapPool, type LdapPoolOptions } from './ldap-pool.js'

export type LdapConnection = Omit<LdapPoolOptions, 'bindDN' | 'bindPassword' | 'size'>

/** directory.ldap.filter as a filter object, or undefined when it is empty. */
export function parseExtraFilter(text: string): Filter | undefined {
  if (text.trim() === '') return undefined
  try {
    return FilterParser.parseString(text.trim())
  } catch (e) {
    throw new ConfigError('directory.ldap.filter', `not an LDAP filter (RFC 4515): ${describeError(e)}`)
  }
}

/** URL, timeouts and TLS; `timeoutMs` overrides directory.ldap.timeout for slow, unwaited work. */
export function ldapConnection(config: LdapConfig, timeoutMs = toMs(config.timeout)): LdapConnection {
  if (config.startTLS && config.url.startsWith('ldaps:')) {
    throw new ConfigError('directory.ldap.startTLS', 'StartTLS needs an ldap:// URL; ldaps:// is encrypted already')
  }
  return {
    url: config.url,
    timeoutMs,
    connectTimeoutMs: toMs(config.connectTimeout),
    startTLS: config.startTLS,
    tls: { rejectUnauthorized: config.tls.rejectUnauthorized, ...readCa(config.tls.caFile) },
  }
}

/** A pool on `connection` bound as `bind`; a URL ldapts refuses is a configuration error. */
export function openLdapPool(connection: LdapConnection, bind: { bindDN: string; bindPassword: string; size: number }, logger: Logger): LdapPool {
  try {
    return new LdapPool({ ...connection, ...bind }, logger)
  } catch (e) {
    if (e instanceof ConfigError) throw e
    throw new ConfigError('directory.ldap.url', describeError(e))
  }
}

function readCa(caFile: string | undefined): { ca?: string } {
  if (caFile === undefined) return {}
  try {
    return { ca: readFileSync(caFile, 'utf8') }
  } catch (e) {
    throw new ConfigError('directory.ldap.tls.caFile', `cannot read ${caFile}: ${describeError(e)}`)
  }
}
