// The miss path: what a cache miss costs in mailhostd against the same question asked of slapd
// directly with ldapts (the search LdapDirectory.findByAddress makes: the configured filter
// ANDed with an equality match per address attribute, the same attributes and limits). Both
// sides hold a bound connection before timing, ask one key at a time, and each key is asked of
// both, in alternating order, so neither side always finds slapd's entry cache warmed by the
// other.

import { createHistogram } from 'node:perf_hooks'
import { AndFilter, Client, EqualityFilter, OrFilter, type Filter } from 'ldapts'
import { parseExtraFilter } from '../src/directory/ldap-config.js'
import { entryMapping, requestedAttributes } from '../src/directory/ldap-entry.js'
import { MAX_OWNERS } from '../src/directory/ldap.js'
import { ldapConfig, type Slapd } from '../test/harness/slapd.js'
import { summarise, type LatencySummary } from './histogram.js'
import { encodeRequest, openConnections, takeReply } from './load-generator.js'

export interface MissPathResult {
  readonly keys: number
  readonly direct: LatencySummary
  readonly mailhostd: LatencySummary
  /** Replies from mailhostd that were not a found route (must be 0: every key exists). */
  readonly unexpected: number
}

/** A search equal to LdapDirectory.findByAddress with the default directory.ldap settings. */
function directSearch(slapd: Slapd): { filter: (address: string) => Filter; attributes: string[]; timeLimit: number } {
  const c = ldapConfig(slapd)
  const extra = parseExtraFilter(c.filter)
  const attributes = requestedAttributes(entryMapping(c))
  return {
    filter: (address) => {
      const match = new OrFilter({ filters: c.attributes.address.map((attribute) => new EqualityFilter({ attribute, value: address })) })
      return extra ? new AndFilter({ filters: [extra, match] }) : match
    },
    attributes,
    timeLimit: 2,
  }
}

export async function compareMissPath(slapd: Slapd, socketmapPort: number, coldKeys: readonly string[]): Promise<MissPathResult> {
  const search = directSearch(slapd)
  const client = new Client({ url: slapd.url, timeout: 5000 })
  await client.bind(slapd.bindDN, slapd.bindPassword)
  const [socket] = await openConnections(socketmapPort, 1)
  const direct = createHistogram()
  const ours = createHistogram()
  let unexpected = 0

  const askDirect = async (key: string) => {
    const t0 = process.hrtime.bigint()
    const r = await client.search(slapd.baseDN, {
      scope: 'sub',
      filter: search.filter(key),
      attributes: search.attributes,
      derefAliases: 'never',
      sizeLimit: MAX_OWNERS + 1,
      timeLimit: search.timeLimit,
    })
    direct.record(Math.max(1, Number(process.hrtime.bigint() - t0)))
    if (r.searchEntries.length !== 1) throw new Error(`direct search for ${key}: ${r.searchEntries.length} entries`)
  }
  let failed: Error | undefined
  socket!.on('error', (e) => (failed = e))
  const askOurs = (key: string) =>
    new Promise<void>((resolve, reject) => {
      if (failed) return reject(failed)
      let buf: Buffer = Buffer.alloc(0)
      const t0 = process.hrtime.bigint()
      const onData = (d: Buffer) => {
        buf = Buffer.concat([buf, d])
        const r = takeReply('socketmap', buf)
        if (!r) return
        ours.record(Math.max(1, Number(process.hrtime.bigint() - t0)))
        socket!.off('data', onData)
        if (!r.text.startsWith('OK ')) unexpected++
        resolve()
      }
      socket!.on('data', onData)
      socket!.write(encodeRequest({ port: socketmapPort, proto: 'socketmap', map: 'recipient' }, key))
    })

  try {
    for (const [i, key] of coldKeys.entries()) {
      if (i % 2 === 0) {
        await askOurs(key)
        await askDirect(key)
      } else {
        await askDirect(key)
        await askOurs(key)
      }
    }
  } finally {
    socket!.destroy()
    await client.unbind()
  }
  return { keys: coldKeys.length, direct: summarise(direct), mailhostd: summarise(ours), unexpected }
}
