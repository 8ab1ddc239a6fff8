// The daemon in-process for the operations tests (metrics, readiness, logs, reload, warm-up):
// the demo cluster on PGlite, every listener on a free port, debug logs kept for inspection.
// In-process, so its code counts for coverage; e2e tests run the built program instead.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { parseConfig } from '../../src/config/load.js'
import type { Config } from '../../src/config/schema.js'
import { Daemon } from '../../src/daemon.js'
import { createLogger } from '../../src/log.js'
import { demoClusterConfig } from '../e2e/demo-table.js'
import { DEMO_TOKENS } from '../harness/admin-api.js'
import { ROOT, parseLogs } from '../harness/mailhostd.js'
import { Client } from '../server/client.js'

export const LOGIN_SECRET = 'ops-login-secret-value'

export interface LookupReply {
  readonly outcome: string
  readonly layer: string
  readonly value?: string
  readonly reason?: string
}

export interface OpsDaemon {
  readonly daemon: Daemon
  readonly dir: string
  /** The full configuration the daemon started with, as given to parseConfig (for reload tests). */
  readonly raw: Record<string, unknown>
  port(listener: string): number
  logs(): string
  lines(): Record<string, unknown>[]
  /** GET (or another method) on the HTTP listener: status and parsed JSON (or text). */
  http(path: string, init?: RequestInit): Promise<{ status: number; body: unknown }>
  /** The lookup endpoint's answer. */
  lookup(map: string, key: string): Promise<LookupReply>
  /** Parses `raw` merged with `changes` (top-level keys replaced) into a Config, as a SIGHUP would read it. */
  configWith(changes: Record<string, unknown>): Config
}

export async function startOpsDaemon(t: Test, config: Record<string, unknown> = {}, opts: { seedDemo?: boolean; seedSql?: string[] } = {}): Promise<OpsDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'mh-ops-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const raw: Record<string, unknown> = {
    ...demoClusterConfig(),
    dataDir: join(dir, 'data'),
    log: { level: 'debug' },
    listen: { socketmap: { port: 0 }, tcpTable: [{ map: 'transport', port: 0 }], http: { port: 0 }, policy: { port: 0 } },
    admin: { tokens: DEMO_TOKENS },
    login: { secret: LOGIN_SECRET },
    health: { interval: 0 },
    ...config,
  }
  let text = ''
  const logger = createLogger('debug', { write: (s: string) => void (text += s) })
  const seedSql = [...(opts.seedDemo === false ? [] : [`${ROOT}/fixtures/demo/directory.sql`]), ...(opts.seedSql ?? [])]
  const daemon = await new Daemon(parseConfig(JSON.stringify(raw), 'test'), logger, { seedSql }).start()
  t.teardown(() => daemon.close(1000))
  const port = (listener: string) => {
    const b = daemon.bound.find((x) => x.name === listener)
    if (!b) throw new Error(`no listener ${listener}; bound: ${daemon.bound.map((x) => x.name).join(', ')}`)
    return b.port
  }
  const http = async (path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`http://127.0.0.1:${port('http')}${path}`, { ...init, signal: AbortSignal.timeout(15_000) })
    const body = await res.text()
    try {
      return { status: res.status, body: JSON.parse(body) as unknown }
    } catch {
      return { status: res.status, body }
    }
  }
  return {
    daemon,
    dir,
    raw,
    port,
    logs: () => text,
    lines: () => parseLogs(text),
    http,
    lookup: async (map, key) => (await http(`/v1/lookup?map=${encodeURIComponent(map)}&key=${encodeURIComponent(key)}`)).body as LookupReply,
    configWith: (changes) => parseConfig(JSON.stringify({ ...raw, ...changes }), 'test'),
  }
}

/** One socketmap request on an open connection: the reply's payload (`OK value`, `NOTFOUND `, ...). */
export async function askSocketmap(c: Client, map: string, key: string, timeoutMs = 10_000): Promise<string> {
  const payload = Buffer.from(`${map} ${key}`)
  c.write(Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')]))
  return c.readNetstring(timeoutMs)
}
