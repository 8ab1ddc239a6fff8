// mailhostd as the bench runs it: the built daemon in its own process (test/harness), with
// the demo cluster's domains and backends, the login secret the HTTP runs send, and optionally
// under `node --cpu-prof` for the profile of a missed target.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, startMailhostd, type Mailhostd } from '../test/harness/mailhostd.js'
import type { Slapd } from '../test/harness/slapd.js'
import { demoClusterConfig } from '../test/e2e/demo-table.js'

/** Shared secret of the login endpoints in the bench (a throwaway value, loopback only). */
export const LOGIN_SECRET = 'bench-login-secret'
/** The demo account the HTTP runs log in as (fixtures/ldap/demo.ldif, fixtures/demo/directory.sql). */
export const LOGIN = { user: 'alice@example.org', password: 'wonderland' } as const
export const DEMO_SQL = `${ROOT}/fixtures/demo/directory.sql`

export interface DaemonOptions {
  /** Config keys merged over the bench defaults (cache, directory, ...). */
  readonly config?: Record<string, unknown>
  /** --seed-sql files. */
  readonly seedSql?: readonly string[]
  /** Write a .cpuprofile into this directory when the daemon exits. */
  readonly cpuProfDir?: string
}

export function ldapDirectory(slapd: Slapd, extra: Record<string, unknown> = {}): Record<string, unknown> {
  // Four service connections, so cold runs are not limited by one socket's round trips.
  return { type: 'ldap', ldap: { url: slapd.url, bindDN: slapd.bindDN, bindPassword: slapd.bindPassword, baseDN: slapd.baseDN, connections: 4, ...extra } }
}

export async function startDaemon(directory: Record<string, unknown>, o: DaemonOptions = {}): Promise<Mailhostd> {
  const config = {
    ...demoClusterConfig(),
    // info is the default level: the figures include the log lines an operator's daemon writes.
    log: { level: 'info' },
    login: { secret: LOGIN_SECRET },
    directory,
    ...o.config,
  }
  const args = (o.seedSql ?? []).flatMap((f) => ['--seed-sql', f])
  const nodeArgs = o.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`]
  return startMailhostd(config, { args, nodeArgs, timeoutMs: 60_000 })
}

export const newProfileDir = () => mkdtempSync(join(tmpdir(), 'mailhostd-bench-prof-'))
