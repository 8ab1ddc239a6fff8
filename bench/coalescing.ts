// Coalescing: many concurrent lookups of one key nobody asked before must reach the directory
// once (single flight per key in the cache). Counted twice: by slapd itself (its stats log
// names the filter of every search it received; the independent count) and by mailhostd's
// /metrics. Runs against its own slapd and mailhostd: stats logging would slow the other
// scenarios' slapd, and a fresh daemon guarantees the key is cold.

import type { Mailhostd } from '../test/harness/mailhostd.js'
import type { Slapd } from '../test/harness/slapd.js'
import { encodeRequest, openConnections, takeReply } from './load-generator.js'
import { scrapeDirectoryFinds } from './metrics-scrape.js'

export interface CoalescingResult {
  readonly lookups: number
  readonly answered: number
  /** SRCH operations slapd logged whose filter names the key. */
  readonly slapdSearches: number
  /** Increase of mailhostd's directory find count over the burst. */
  readonly mailhostdFinds: number
  readonly ms: number
}

/** slapd `-d stats` lines like: conn=1003 op=2 SRCH base="..." scope=2 deref=0 filter="(&(...)(mail=KEY)...)" */
export function countSearchesFor(slapdOutput: string, key: string): number {
  let n = 0
  for (const line of slapdOutput.split('\n')) if (line.includes(' SRCH base=') && line.includes(`=${key})`)) n++
  return n
}

export async function checkCoalescing(slapd: Slapd, m: Mailhostd, key: string, lookups: number): Promise<CoalescingResult> {
  const target = { port: m.ports.socketmap, proto: 'socketmap' as const, map: 'transport' }
  const sockets = await openConnections(target.port, lookups)
  const findsBefore = await scrapeDirectoryFinds(m.ports.http)
  const request = encodeRequest(target, key)
  const t0 = performance.now()
  const replies = await Promise.all(
    sockets.map(
      (s) =>
        new Promise<string>((resolve, reject) => {
          let buf: Buffer = Buffer.alloc(0)
          s.on('data', (d: Buffer) => {
            buf = Buffer.concat([buf, d])
            const r = takeReply('socketmap', buf)
            if (r) resolve(r.text)
          })
          s.once('error', reject)
          // All writes are issued in this same tick: the daemon sees them as one burst.
          s.write(request)
        }),
    ),
  )
  const ms = performance.now() - t0
  for (const s of sockets) s.destroy()
  const mailhostdFinds = (await scrapeDirectoryFinds(m.ports.http)) - findsBefore
  // slapd writes its stats line when the operation starts; give the pipe a moment to deliver it.
  await new Promise((r) => setTimeout(r, 200))
  return {
    lookups,
    answered: replies.filter((r) => r.startsWith('OK ')).length,
    slapdSearches: countSearchesFor(slapd.output(), key),
    mailhostdFinds,
    ms,
  }
}
