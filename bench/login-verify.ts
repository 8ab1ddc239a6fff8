// Only the HTTP passdb verify runs of `npm run bench` (cached route, password checked by the
// directory): LDAP bind (the default passwordCheck) on slapd, and SQL on PostgreSQL, with the
// same daemon settings, load and knobs (BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_MAX_REQUESTS) as
// the full bench, in a fraction of its time. For before/after figures of login-path changes:
//   npm run build && node --import=@tapjs/typescript/import bench/login-verify.ts

import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { startPostgres } from '../test/harness/postgres.js'
import { startSlapd } from '../test/harness/slapd.js'
import { benchConfig } from './config.js'
import { DEMO_SQL, LOGIN, LOGIN_SECRET, ldapDirectory, startDaemon } from './daemons.js'
import { passdbVerify, runHttpLoad } from './http-load.js'

const cfg = benchConfig()
const bounds = { connections: cfg.connections, durationMs: cfg.seconds * 1000, maxRequests: cfg.maxRequests }
const load1 = () => loadavg()[0]!.toFixed(2)

/**
 * The daemon's CPU time so far in ms (user + system, Linux /proc; clock ticks of 10 ms). On a
 * shared machine req/s swings with the neighbours' load; CPU time per request much less.
 */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

async function measure(name: string, pid: number, port: number): Promise<void> {
  const load = load1()
  const cpuBefore = cpuMs(pid)
  const r = await runHttpLoad(passdbVerify(port, LOGIN_SECRET, LOGIN.user, LOGIN.password), bounds)
  const cpuPerReq = ((cpuMs(pid) - cpuBefore) * 1000) / r.requests
  process.stdout.write(
    `${name}: ${Math.round(r.rps)} req/s, daemon CPU ${Math.round(cpuPerReq)} µs/request, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.requests} requests, non2xx ${r.non2xx}, errors ${r.errors} (load ${load} before)\n`,
  )
}

const slapd = await startSlapd()
try {
  const m = await startDaemon(ldapDirectory(slapd))
  try {
    await measure('passdb verify, LDAP bind', m.pid, m.ports.http)
  } finally {
    await m.stop()
  }
} finally {
  await slapd.stop()
}

const pg = await startPostgres()
try {
  const m = await startDaemon({ type: 'sql' }, { seedSql: [DEMO_SQL], config: { store: { url: pg.url } } })
  try {
    await measure('passdb verify, SQL on PostgreSQL', m.pid, m.ports.http)
  } finally {
    await m.stop()
  }
} finally {
  await pg.stop()
}
