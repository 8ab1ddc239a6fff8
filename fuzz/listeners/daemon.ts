// The daemon under fuzz: the built program (dist/) with the demo SQL directory, every line
// listener plus the dict socket and the HTTP login endpoints, as test/e2e/bad-input.test.ts
// starts it. Short request and idle timeouts, so a connection the fuzzer leaves open is closed
// by the daemon within the per-connection bound rather than after the 30-minute default.

import { readFileSync } from 'node:fs'
import { isAlive } from '../../test/harness/process.js'
import { ROOT, startMailhostd, type Mailhostd } from '../../test/harness/mailhostd.js'
import { demoClusterConfig } from '../../test/e2e/demo-table.js'

/** The login secret the HTTP login endpoints require (a test value). */
export const LOGIN_SECRET = 'fuzz-login-secret'

const EXPECTED_ERRORS = /"msg":"policy_context names no rule set/

export interface FuzzDaemon {
  readonly m: Mailhostd
  /** Where each line listener is: a TCP port or the dict socket path. */
  readonly listeners: Readonly<Record<string, { port: number } | { path: string }>>
  readonly http: number
  /** Alive, and nothing in its output that means an uncaught error or a crash. */
  health(): { alive: boolean; crashLines: string[]; errorLines: string[]; rssKb: number | undefined }
}

export async function startFuzzDaemon(requestTimeout: string, idleTimeout: string): Promise<FuzzDaemon> {
  const m = await startMailhostd(
    {
      ...demoClusterConfig(),
      directory: { type: 'sql' },
      log: { level: 'info' },
      // Brakes short: the HTTP fuzz fails many logins, and the tarpit would only slow it down.
      login: { secret: LOGIN_SECRET, brakes: { tarpit: '100ms', maxTarpit: '200ms' } },
      limits: { requestTimeout, idleTimeout },
      listen: { dict: { path: 'dict.sock' } },
    },
    { args: ['--seed-sql', `${ROOT}/fixtures/demo/directory.sql`] },
  )
  const ready = m.logs().find((l) => l.msg === 'mailhostd ready')!.listeners as { name: string; port: number; path?: string }[]
  const listeners: Record<string, { port: number } | { path: string }> = {}
  for (const l of ready) listeners[l.name] = l.path === undefined ? { port: l.port } : { path: l.path }
  return {
    m,
    listeners,
    http: m.ports.http,
    health() {
      const out = m.proc.output()
      const lines = out.split('\n')
      return {
        alive: isAlive(m.pid),
        crashLines: lines.filter((l) => /uncaught|unhandled|FATAL|RangeError|TypeError|heap out of memory/i.test(l)).slice(0, 5),
        // The daemon logs error and fatal for its own failures (a reply that threw, a lookup
        // service that rejected), never for a peer's bad bytes, which are debug. One error is
        // about the peer's configuration and is meant to be loud: a policy_context that names
        // no rule set (a main.cf mistake; the fuzz damages the attribute).
        errorLines: lines.filter((l) => /^\{"level":"(error|fatal)"/.test(l) && !EXPECTED_ERRORS.test(l)).slice(0, 5),
        rssKb: rss(m.pid),
      }
    },
  }
}

function rss(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1])
  } catch {
    return undefined
  }
}
