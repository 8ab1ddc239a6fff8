// The HTTP endpoints, lightly: nginx auth_http requests with damaged headers sent as raw
// HTTP/1.0 (as nginx sends them, bytes >= 0x80 raw), lookups with damaged query strings, Dovecot
// passdb calls with damaged JSON, and plain garbage. The parser and the schemas own most of
// this; what is checked is that nothing becomes a 5xx (an unhandled error), every nginx answer
// carries Auth-Status (nginx needs one to tell the client anything), and the routes still
// answer right afterwards.

import { demoClusterConfig, DEMO_ROUTES } from '../../test/e2e/demo-table.js'
import { mutate } from '../mutate.js'
import { Rng } from '../rng.js'
import { LOGIN_SECRET, type FuzzDaemon } from './daemon.js'
import { exchange } from './wire-client.js'

export interface HttpResult {
  readonly requests: number
  readonly hangs: number
  readonly violations: number
  readonly maxMs: number
  readonly failures: readonly { readonly input: number; readonly why: string }[]
  readonly canaryFailures: number
  readonly elapsedMs: number
}

const STREAM = 200
const DELIMITERS = ['%', '%2', '\r\n', ':', '\t', '<', '>', '"', '{', '}', '\\u0000', '&', '='].map((s) => Buffer.from(s))

/** One raw HTTP/1.0 request; header values are damaged but never carry CR or LF (those would end the header). */
function request(rng: Rng): { bytes: Buffer; nginx: boolean } {
  const damage = (s: string) => (rng.chance(0.5) ? mutate(rng, Buffer.from(s, 'latin1'), DELIMITERS).toString('latin1').replace(/[\r\n]/g, '') : s)
  const kind = rng.below(10)
  if (kind < 6) {
    const headers = [
      ['Host', '127.0.0.1'],
      ['Auth-Method', damage(rng.pick(['plain', 'login', 'none', 'apop', 'cram-md5']))],
      ['Auth-User', damage(rng.pick(['alice@example.org', 'bob@example.org', 'p%20q@example.org', 'ghost@example.org']))],
      ['Auth-Pass', damage(rng.pick(['wonderland', 'builder', 'p@ss%20word%25']))],
      ['Auth-Protocol', damage(rng.pick(['imap', 'pop3', 'smtp']))],
      ['Auth-Login-Attempt', damage(rng.pick(['1', '4', '5', '99999999999999999999', '-1']))],
      ['Client-IP', damage(`192.0.2.${rng.int(1, 254)}`)],
      ['Auth-SMTP-To', damage('RCPT TO:<alice@example.org> SIZE=100')],
      ['X-Auth-Key', rng.chance(0.9) ? LOGIN_SECRET : damage(LOGIN_SECRET)],
    ].filter(() => rng.chance(0.9))
    const head = `GET /v1/nginx/auth HTTP/1.0\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
    return { bytes: Buffer.from(head, 'latin1'), nginx: true }
  }
  if (kind < 8) {
    const query = damage(`map=${rng.pick(['transport', 'recipient', 'alias', 'local/mx1'])}&key=${encodeURIComponent(rng.pick(['alice@example.org', 'nobody@example.org', '*']))}`)
    return { bytes: Buffer.from(`GET /v1/lookup?${query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`, 'latin1'), nginx: false }
  }
  if (kind < 9) {
    const body = mutate(rng, Buffer.from(JSON.stringify({ user: 'alice@example.org', password: 'wonderland', service: 'imap', remoteIp: '192.0.2.9' })), DELIMITERS)
    const head = `POST /v1/dovecot/passdb/verify HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Auth-Key: ${LOGIN_SECRET}\r\nContent-Length: ${body.length}\r\n\r\n`
    return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), body]), nginx: false }
  }
  return { bytes: Buffer.concat([rng.bytes(rng.int(0, 200)), Buffer.from('\r\n\r\n')]), nginx: false }
}

/** Status and headers of a raw response; undefined when there is none (the server may just close on garbage). */
function parse(wire: Buffer): { status: number; headers: Map<string, string> } | undefined {
  const text = wire.toString('latin1')
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text)
  if (!m) return undefined
  const headers = new Map<string, string>()
  for (const line of text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n').slice(1)) {
    const colon = line.indexOf(':')
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim())
  }
  return { status: Number(m[1]), headers }
}

export async function fuzzHttp(d: FuzzDaemon, seed: number, count: number, boundMs: number, concurrency: number): Promise<HttpResult> {
  const started = Date.now()
  const failures: { input: number; why: string }[] = []
  let [index, hangs, violations, maxMs] = [0, 0, 0, 0]
  const lane = async () => {
    while (index < count) {
      const i = index++
      const { bytes, nginx } = request(new Rng(seed, STREAM, i))
      const x = await exchange({ port: d.http }, [bytes], false, boundMs)
      maxMs = Math.max(maxMs, x.ms)
      let why: string | undefined
      const r = parse(x.reply)
      if (x.end === 'bound') {
        hangs++
        why = 'no answer or close within the bound'
      } else if (r && r.status >= 500) why = `status ${r.status}: ${x.reply.toString('latin1').slice(0, 300)}`
      else if (nginx && r && !r.headers.has('auth-status') && r.status !== 400) why = `nginx answer without Auth-Status: ${x.reply.toString('latin1').slice(0, 300)}`
      if (why === undefined) continue
      violations++
      if (failures.length < 5) failures.push({ input: i, why })
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const canaryFailures = await canary(d, failures)
  return { requests: count, hangs, violations, maxMs, failures, canaryFailures, elapsedMs: Date.now() - started }
}

/** The lookup and nginx SMTP routing answers for alice, which no fuzz request can have changed. */
async function canary(d: FuzzDaemon, failures: { input: number; why: string }[]): Promise<number> {
  let failed = 0
  const mx1 = (demoClusterConfig().backends as { id: string; address: string }[]).find((b) => b.id === 'mx1')!.address
  const lookup = (await (await fetch(`http://127.0.0.1:${d.http}/v1/lookup?map=transport&key=alice%40example.org`)).json()) as { value?: string }
  if (lookup.value !== DEMO_ROUTES.mx1) {
    failed++
    failures.push({ input: -1, why: `canary lookup answered ${JSON.stringify(lookup)}` })
  }
  const nginx = await fetch(`http://127.0.0.1:${d.http}/v1/nginx/auth`, {
    headers: { 'X-Auth-Key': LOGIN_SECRET, 'Auth-Method': 'none', 'Auth-Protocol': 'smtp', 'Auth-User': '', 'Auth-Pass': '', 'Auth-SMTP-To': 'RCPT TO:<alice@example.org>', 'Client-IP': '198.51.100.1' },
  })
  if (nginx.headers.get('auth-status') !== 'OK' || nginx.headers.get('auth-server') !== mx1) {
    failed++
    failures.push({ input: -1, why: `canary nginx route answered ${JSON.stringify([...nginx.headers])}` })
  }
  return failed
}
