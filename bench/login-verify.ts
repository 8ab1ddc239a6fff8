// Only the HTTP passdb verify runs of `npm run bench` (cached route, password checked by the
// directory): LDAP bind (the default passwordCheck) on slapd, and SQL on PostgreSQL, with the
// same daemon settings, load and knobs (BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_MAX_REQUESTS) as
// the full bench, in a fraction of its time. For before/after figures of login-path changes:
//   npm run build && node --import=@tapjs/typescript/import bench/login-verify.ts

import { loadavg } from 'node:os'
import { startPostgres } from '../test/harness/postgres.js'
import { startSlapd } from '../test/harness/slapd.js'
import { benchConfig } from './config.js'
import { DEMO_SQL, LOGIN, LOGIN_SECRET, ldapDirectory, startDaemon } from './daemons.js'
import { passdbVerify, runHttpLoad, type HttpResult } from './http-load.js'

const cfg = benchConfig()
const bounds = { connections: cfg.connections, durationMs: cfg.seconds * 1000, maxRequests: cfg.maxRequests }
const load1 = () => loadavg()[0]!.toFixed(2)

function report(name: string, r: HttpResult, loadBefore: string): void {
  process.stdout.write(
    `${name}: ${Math.round(r.rps)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.requests} requests, non2xx ${r.non2xx}, errors ${r.errors} (load ${loadBefore} before)\n`,
  )
}

const slapd = await startSlapd()
try {
  const m = await startDaemon(ldapDirectory(slapd))
  try {
    const load = load1()
    report('passdb verify, LDAP bind', await runHttpLoad(passdbVerify(m.ports.http, LOGIN_SECRET, LOGIN.user, LOGIN.password), bounds), load)
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
    const load = load1()
    report('passdb verify, SQL on PostgreSQL', await runHttpLoad(passdbVerify(m.ports.http, LOGIN_SECRET, LOGIN.user, LOGIN.password), bounds), load)
  } finally {
    await m.stop()
  }
} finally {
  await pg.stop()
}
