// The daemon in-process on PGlite with the demo data and the demo admin tokens, for admin API
// tests: fast to start, and its code counts for coverage. Logs are kept (debug level) so tests
// can check that no secret reaches them.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { parseConfig } from '../../src/config/load.js'
import { Daemon } from '../../src/daemon.js'
import { createLogger } from '../../src/log.js'
import { demoClusterConfig } from '../e2e/demo-table.js'
import { adminApi, DEMO_TOKENS, type AdminApi } from '../harness/admin-api.js'
import { ROOT } from '../harness/mailhostd.js'

export interface AdminDaemon {
  readonly daemon: Daemon
  readonly api: AdminApi
  readonly port: number
  readonly dir: string
  /** Everything logged so far (JSON lines). */
  logs(): string
}

export async function startAdminDaemon(t: Test, config: Record<string, unknown> = {}): Promise<AdminDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'mh-admin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { admin, ...rest } = config
  const parsed = parseConfig(
    JSON.stringify({
      ...demoClusterConfig(),
      dataDir: join(dir, 'data'),
      log: { level: 'debug' },
      listen: { socketmap: { port: 0 }, tcpTable: [], http: { port: 0 }, policy: false },
      // No settle time unless a test asks for one: moves complete at once.
      admin: { tokens: DEMO_TOKENS, ...(admin as object | undefined), moves: { settle: '0s', ...(admin as { moves?: object } | undefined)?.moves } },
      ...rest,
    }),
    'test',
  )
  let text = ''
  const logger = createLogger('debug', { write: (s: string) => void (text += s) })
  const daemon = await new Daemon(parsed, logger, { seedSql: [`${ROOT}/fixtures/demo/directory.sql`] }).start()
  t.teardown(() => daemon.close(1000))
  const port = daemon.bound.find((b) => b.name === 'http')!.port
  return { daemon, api: adminApi(port), port, dir, logs: () => text }
}

/** What the lookup endpoint answers for a map and key. */
export async function lookup(api: AdminApi, map: string, key: string): Promise<{ outcome: string; value?: string; reason?: string }> {
  return (await api.get(`/v1/lookup?map=${encodeURIComponent(map)}&key=${encodeURIComponent(key)}`)).body
}
