// Changes made in LDAP behind mailhostd's back (ldapmodify, another provisioning tool) reach
// the cache through polling: every pollInterval, the entries whose modifyTimestamp is at or past
// the newest one already seen are reported as changed, so the cache evicts what depended on them.
//
// Times are the server's: the watermark is the newest modifyTimestamp seen, never the local
// clock, except at start (the local clock minus a margin for skew). Each poll reaches back a
// few seconds behind the watermark, because a write stamped earlier can become visible after one
// stamped later (writers wait for each other); entries seen in that window are remembered by DN
// and change stamp (entryCSN on OpenLDAP, else modifyTimestamp), so each change is reported once.
//
// Polling cannot see deletions (a deleted entry matches no search): those wait for the cache
// TTL, unless the deletion went through mailhostd, whose change bus evicts at once.

import { AndFilter, GreaterThanEqualsFilter, SizeLimitExceededError, type Client, type Entry, type Filter, type SearchResult } from 'ldapts'
import { toMs } from '../config/duration.js'
import type { LdapConfig } from '../config/schema.js'
import { describeError } from '../errors.js'
import { LogThrottle, type Logger } from '../log.js'
import { canonicalAddress, type AddressOptions } from '../resolve/address.js'
import { ldapConnection, openLdapPool, parseExtraFilter } from './ldap-config.js'
import { attributeValues as values } from './ldap-entry.js'
import { LdapPool } from './ldap-pool.js'

/** How far before the local clock the first poll looks, for a server clock running behind. */
export const START_MARGIN_MS = 5 * 60_000
/** How far behind the watermark each poll looks again (writes that became visible late). */
export const OVERLAP_MS = 5_000
const PAGE_SIZE = 500

export type OnLdapChange = (addresses: string[], ids: string[]) => void

export interface LdapWatcherOptions {
  /**
   * Called when changes may have been missed (the server's size limit cut a poll short): the
   * caller should drop the whole cache. Without it, such a poll is only logged.
   */
  readonly onResync?: () => void
}

export class LdapWatcher {
  readonly #config: LdapConfig
  readonly #addresses: AddressOptions
  readonly #log: Logger
  readonly #onChange: OnLdapChange
  readonly #opts: LdapWatcherOptions
  readonly #pool: LdapPool
  readonly #intervalMs: number
  readonly #extraFilter: Filter | undefined
  readonly #attributes: string[]
  readonly #throttle = new LogThrottle(60_000)
  /** Newest modifyTimestamp seen (ms since the epoch, whole seconds). */
  #watermark = wholeSeconds(Date.now() - START_MARGIN_MS)
  /** `dn \n change stamp` -> its modifyTimestamp, for the changes inside the overlap window. */
  readonly #seen = new Map<string, number>()
  #timer: NodeJS.Timeout | undefined
  #failing = false
  #stopped = false

  constructor(config: LdapConfig, addresses: AddressOptions, logger: Logger, onChange: OnLdapChange, options: LdapWatcherOptions = {}) {
    this.#config = config
    this.#addresses = addresses
    this.#log = logger.child({ component: 'ldap-watch' })
    this.#onChange = onChange
    this.#opts = options
    this.#intervalMs = toMs(config.pollInterval)
    this.#extraFilter = parseExtraFilter(config.filter)
    const attrs = [...config.attributes.address, config.attributes.routingAddress, 'modifyTimestamp', 'entryCSN']
    this.#attributes = [...new Set(attrs.filter((a) => a !== ''))]
    // Nothing waits on a poll, and one after an outage may have a lot to read: it may take up to
    // an interval, rather than the per-lookup timeout.
    this.#pool = openLdapPool(
      ldapConnection(config, Math.max(toMs(config.timeout), this.#intervalMs)),
      { bindDN: config.bindDN, bindPassword: config.bindPassword, size: 1 },
      this.#log,
    )
  }

  /** Polls every pollInterval until stop(); a pollInterval of 0 means never. */
  start(): void {
    if (this.#intervalMs === 0 || this.#stopped || this.#timer !== undefined) return
    this.#log.info({ intervalMs: this.#intervalMs }, 'LDAP watch: polling modifyTimestamp for changes made outside mailhostd')
    this.#schedule()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    void this.#pool.close()
  }

  // One poll at a time: the next is scheduled when this one is over, however long it took.
  #schedule(): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => void this.#tick(), this.#intervalMs)
    this.#timer.unref()
  }

  async #tick(): Promise<void> {
    try {
      await this.#poll()
      if (this.#failing) this.#log.info('LDAP watch: polling works again; changes made meanwhile were picked up')
      this.#failing = false
    } catch (e) {
      if (!this.#stopped) {
        this.#failing = true
        this.#throttle.run('poll', (suppressed) =>
          this.#log.warn(
            { reason: describeError(e), suppressed },
            'LDAP watch: polling for changes failed; retrying every interval (until then, changes made outside mailhostd wait for the cache TTL)',
          ),
        )
      }
    } finally {
      this.#schedule()
    }
  }

  async #poll(): Promise<void> {
    const since = this.#watermark - OVERLAP_MS
    const changed = new GreaterThanEqualsFilter({ attribute: 'modifyTimestamp', value: generalizedTime(since) })
    const filter = this.#extraFilter ? new AndFilter({ filters: [changed, this.#extraFilter] }) : changed
    const search = (client: Client) =>
      client.search(this.#config.baseDN, {
        scope: this.#config.scope,
        filter,
        attributes: this.#attributes,
        derefAliases: 'never',
        paged: { pageSize: PAGE_SIZE },
      })
    let result: SearchResult
    try {
      result = await this.#pool.run('search for changed entries', search)
    } catch (e) {
      if (!(e instanceof Error && e.cause instanceof SizeLimitExceededError)) throw e
      this.#tooMany()
      return
    }
    this.#report(result.searchEntries)
  }

  #report(entries: readonly Entry[]): void {
    const addresses = new Set<string>()
    const ids = new Set<string>()
    let newest = this.#watermark
    for (const entry of entries) {
      const stampText = first(entry, 'modifyTimestamp')
      const stamp = stampText === undefined ? undefined : parseGeneralizedTime(stampText)
      // The filter matched it, so it has one; an unreadable one is treated as brand new.
      const at = stamp ?? Date.now()
      const seenKey = `${entry.dn}\n${first(entry, 'entryCSN') ?? stampText ?? ''}`
      if (this.#seen.has(seenKey)) continue
      this.#seen.set(seenKey, at)
      if (stamp !== undefined && stamp > newest) newest = stamp
      ids.add(entry.dn)
      for (const attribute of [...this.#config.attributes.address, this.#config.attributes.routingAddress]) {
        for (const raw of values(entry, attribute)) {
          const c = canonicalAddress(raw, this.#addresses)
          if (c.ok) addresses.add(c.address)
        }
      }
    }
    this.#watermark = newest
    for (const [key, at] of this.#seen) if (at < newest - OVERLAP_MS) this.#seen.delete(key)
    if (ids.size === 0) return
    this.#log.debug({ entries: ids.size, addresses: addresses.size }, 'LDAP watch: entries changed')
    try {
      this.#onChange([...addresses], [...ids])
    } catch (e) {
      this.#log.error({ reason: describeError(e) }, 'LDAP watch: handling changed entries failed')
    }
  }

  /** More changed entries than the server returns: drop everything rather than miss some. */
  #tooMany(): void {
    this.#log.warn(
      { resync: this.#opts.onResync !== undefined },
      "LDAP watch: more changed entries than the server's size limit returns; dropping the whole cache",
    )
    // Skip past the burst: what it changed is covered by the resync.
    this.#watermark = Math.max(this.#watermark, wholeSeconds(Date.now() - OVERLAP_MS))
    this.#seen.clear()
    try {
      this.#opts.onResync?.()
    } catch (e) {
      this.#log.error({ reason: describeError(e) }, 'LDAP watch: resync failed')
    }
  }
}

/**
 * The watermark is kept in whole seconds, as the search filter states it: with a fraction, a
 * poll's filter (floored to the second) would return entries from the part of a second that the
 * forgetting of seen entries (at the unfloored bound) had already dropped, and report them again
 * on every poll until a newer change moved the watermark.
 */
const wholeSeconds = (ms: number) => Math.floor(ms / 1000) * 1000

/** `YYYYMMDDHHMMSSZ` (GeneralizedTime, UTC, whole seconds). */
export function generalizedTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z')
}

/**
 * A GeneralizedTime as servers write modifyTimestamp (`20261201112233Z`, optionally with a
 * fraction or an offset) to ms since the epoch, whole seconds; undefined when it is not one.
 */
export function parseGeneralizedTime(text: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:[.,]\d+)?(Z|[+-]\d{4})$/.exec(text.trim())
  if (!m) return undefined
  const [, y, mo, d, h, mi, s, zone] = m
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s))
  if (zone !== 'Z') {
    const sign = zone!.startsWith('-') ? -1 : 1
    ms -= sign * (Number(zone!.slice(1, 3)) * 60 + Number(zone!.slice(3, 5))) * 60_000
  }
  return Number.isNaN(ms) ? undefined : ms
}

const first = (entry: Entry, attribute: string): string | undefined => values(entry, attribute)[0]


