// The demo case table (test/cases/demo-cases.ts) asked the way Postfix asks: `postmap -q`
// through socketmap and through tcp_table, against a running mailhostd.

import type { Test } from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { DEMO_FOUND, DEMO_MISSES, MAILHOST } from '../cases/demo-cases.js'
import { postmapBatch, postmapQuery, ROOT, socketmap, tcp, type Ports } from '../harness/mailhostd.js'
import { DEBIAN12_SET, type PeerSet } from '../harness/peer-set.js'

/**
 * Domains and backends of the demo (fixtures/demo/mailhostd.yaml), for test configs, with its
 * health settings: its backends are example addresses nothing answers on, so they are not probed.
 */
export function demoClusterConfig(): { domains: unknown[]; backends: unknown[]; health: unknown } {
  const demo = parse(readFileSync(`${ROOT}/fixtures/demo/mailhostd.yaml`, 'utf8')) as { domains: unknown[]; backends: unknown[]; health: unknown }
  return { domains: demo.domains, backends: demo.backends, health: demo.health }
}

export const DEMO_ROUTES = { mx1: 'lmtp:inet:[10.0.0.11]:24', mx2: 'lmtp:inet:[10.0.0.12]:24' } as const

/** The demo case table through `postmap -q` of the peer set's Postfix (Debian 12's by default). */
export async function checkDemoTable(
  t: Test,
  ports: Ports,
  { routes = DEMO_ROUTES, set = DEBIAN12_SET }: { routes?: Record<'mx1' | 'mx2', string>; set?: PeerSet } = {},
): Promise<void> {
  for (const c of DEMO_FOUND) {
    const owner = c.owner!
    const expect = async (map: string, value: string, what: string) => {
      const r = await postmapQuery(map, c.key, set)
      t.same({ code: r.code, out: r.stdout.trim() }, { code: 0, out: value }, `${what} ${c.key} (${c.why})`)
    }
    await expect(socketmap(ports.socketmap, 'transport'), routes[owner], 'socketmap transport')
    await expect(tcp(ports.transport), routes[owner], 'tcp_table transport')
    await expect(socketmap(ports.socketmap, 'recipient'), MAILHOST[owner], 'socketmap recipient')
    await expect(tcp(ports.recipient), MAILHOST[owner], 'tcp_table recipient')
    if (c.alias) await expect(socketmap(ports.socketmap, 'alias'), c.alias, 'socketmap alias')
    const local = await postmapQuery(socketmap(ports.socketmap, `local/${owner}`), c.key, set)
    t.equal(local.code, c.local ? 0 : 1, `local/${owner} ${c.key}`)
  }
  for (const c of DEMO_MISSES) {
    for (const map of [socketmap(ports.socketmap, 'transport'), tcp(ports.transport), socketmap(ports.socketmap, 'recipient'), tcp(ports.recipient)]) {
      const r = await postmapQuery(map, c.key, set)
      // A miss is exit 1 with no output and no "query error" (that would be a temporary failure).
      t.same({ code: r.code, out: r.stdout, err: /error/.test(r.stderr) }, { code: 1, out: '', err: false }, `miss ${map.split(':')[0]} ${c.key.slice(0, 40)} (${c.why})`)
    }
  }
  // Many keys over one connection, as a long-lived Postfix process asks.
  const batch = await postmapBatch(tcp(ports.transport), DEMO_FOUND.map((c) => c.key), set)
  t.equal(batch.stdout.trim().split('\n').length, DEMO_FOUND.length, 'batch over one tcp_table connection')
}
