// nginx mail proxy auth_http (protocols.md §8, docs/login.md): request headers in, response
// headers out. Auth-Server must be an IP literal, Auth-Status exactly "OK" on success; a failure
// with Auth-Wait keeps the client's session for another try, without it nginx closes.

import type { IncomingHttpHeaders } from 'node:http'
import { isIP } from 'node:net'
import { toMs } from '../config/duration.js'
import type { LoginConfig } from '../config/schema.js'
import type { LoginRouter } from '../login/router.js'
import type { KeyResolver } from '../policy/engine.js'
import { decide, settlePins } from '../resolve/destination.js'
import type { Registry } from '../resolve/registry.js'
import { checkNginxHeaders, NGINX_REFUSAL, rawHeaderList, type NginxHeaderProblem } from './nginx-headers.js'

export interface NginxAuthDeps {
  readonly router: LoginRouter
  readonly resolver: KeyResolver
  readonly registry: () => Registry
  readonly config: LoginConfig
  /** Told of every request refused for its headers (the route logs and counts it). */
  readonly onInvalid?: (problem: NginxHeaderProblem, clientIp: string | undefined) => void
}

export interface NginxAnswer {
  readonly headers: Record<string, string>
  /** Delay before answering, when the brakes want one and Auth-Wait cannot carry it. */
  readonly delayMs: number
}

const TEXT = {
  mismatch: 'Invalid login or password',
  unknown: 'Invalid login or password',
  disabled: 'Account disabled',
  tempfail: 'Temporary authentication failure, try again later',
  refused: 'Too many failed logins, try again later',
  method: 'Authentication method not supported',
  rcptUnknown: 'mailbox unknown',
  rcptTemp: 'Temporary lookup failure, try again later',
} as const

/**
 * The answer to one auth_http request. `raw` is the request's rawHeaders: the only place a
 * header sent twice shows (nginx-headers.ts); without it, `h` stands in.
 */
export async function nginxAuth(h: IncomingHttpHeaders, d: NginxAuthDeps, raw: readonly string[] = rawHeaderList(h)): Promise<NginxAnswer> {
  const problem = checkNginxHeaders(raw)
  if (problem) {
    // The client's address for the log only when it is one IP literal (Node joins a duplicate's values).
    const ip = str(h['client-ip'])
    d.onInvalid?.(problem, isIP(ip) !== 0 ? ip : undefined)
    return { headers: { ...NGINX_REFUSAL }, delayMs: 0 }
  }
  const protocol = str(h['auth-protocol'])
  const method = str(h['auth-method']).toLowerCase()
  const attempt = Number.parseInt(str(h['auth-login-attempt']), 10) || 1
  const waitSeconds = Math.max(1, Math.round(toMs(d.config.nginx.wait) / 1000))
  const mayRetry = attempt < d.config.nginx.maxAttempts
  const clientIp = str(h['client-ip']) || undefined

  if (protocol === 'smtp' && method === 'none') return smtpRoute(str(h['auth-smtp-to']), d, waitSeconds)
  // nginx shows Auth-Status to the mail client: echo only a short prefix of what the peer sent.
  if (protocol !== 'imap' && protocol !== 'pop3' && protocol !== 'smtp') return fail(`unsupported protocol ${protocol.slice(0, 32) || '(none)'}`, undefined)
  // apop and cram-md5 would need the plaintext password handed back to nginx.
  if (method !== 'plain' && method !== 'login') return fail(TEXT.method, mayRetry ? waitSeconds : undefined)

  const user = percentDecode(str(h['auth-user']))
  const password = percentDecode(str(h['auth-pass']))
  if (user === undefined || password === undefined || user === '') return fail(TEXT.unknown, mayRetry ? waitSeconds : undefined)
  const r = await d.router.verify({ user, password, service: protocol, ...(clientIp ? { remoteIp: clientIp } : {}) }, 'nginx')
  if (r.result === 'ok') {
    if (r.port === undefined || isIP(r.host) === 0) return fail(TEXT.tempfail, mayRetry ? waitSeconds : undefined, '451 4.3.0')
    // nginx logs in to the backend itself, as Auth-User if given: the canonical name, which the
    // backend knows, rather than an alternate or alias-domain name, which it may not.
    const headers: Record<string, string> = { 'Auth-Status': 'OK', 'Auth-Server': r.host, 'Auth-Port': String(r.port) }
    if (r.canonical !== user.trim().toLowerCase()) headers['Auth-User'] = r.canonical
    return { headers, delayMs: 0 }
  }
  if ('refused' in r && r.refused) return fail(TEXT.refused, undefined, protocol === 'smtp' ? '454 4.7.0' : undefined)
  const code = protocol !== 'smtp' ? undefined : r.result === 'tempfail' ? '451 4.3.0' : '535 5.7.8'
  // The tarpit rides on Auth-Wait while the session may retry; on the last attempt, on the answer.
  const wait = mayRetry ? Math.max(waitSeconds, r.tarpitSeconds) : undefined
  return { ...fail(TEXT[r.result], wait, code), delayMs: mayRetry ? 0 : r.tarpitSeconds * 1000 }
}

/** smtp_auth none: nginx asks once per session, at the first RCPT, and proxies to that backend. */
async function smtpRoute(rcptLine: string, d: NginxAuthDeps, waitSeconds: number): Promise<NginxAnswer> {
  // One lookup deadline for the whole answer, as for logins: the pin claim gets what the
  // resolution left of it.
  const started = performance.now()
  const m = /^RCPT TO:\s*<([^>]*)>/i.exec(rcptLine.trim())
  const rcpt = m ? percentDecode(m[1]!) : undefined
  const r = await d.resolver.resolve(rcpt ?? null, 'nginx smtp')
  if (r.kind === 'failed') return fail(TEXT.rcptTemp, waitSeconds, '451 4.3.0')
  if (r.kind === 'rules' || r.resolution.kind === 'none') return fail(TEXT.rcptUnknown, undefined, '550 5.1.1')
  // An alias may reach several backends: the first mailbox's backend takes the session, and
  // relays the rest through the front-end like any backend Postfix does. An alias to external
  // addresses only has no backend to take it: a temporary failure, like an unreachable one.
  const mailbox = r.resolution.mailboxes[0]
  const registry = d.registry()
  if (mailbox) await settlePins([mailbox], registry, d.router.deadlineMs - (performance.now() - started))
  const to = mailbox && decide(mailbox, { service: 'nginx-smtp' }, registry)
  if (to?.kind !== 'destination') return fail(TEXT.rcptTemp, waitSeconds, '451 4.3.0')
  return { headers: { 'Auth-Status': 'OK', 'Auth-Server': to.address, 'Auth-Port': String(to.port) }, delayMs: 0 }
}

function fail(text: string, waitSeconds: number | undefined, smtpCode?: string): NginxAnswer {
  const headers: Record<string, string> = { 'Auth-Status': text }
  if (waitSeconds !== undefined) headers['Auth-Wait'] = String(waitSeconds)
  if (smtpCode !== undefined) headers['Auth-Error-Code'] = smtpCode
  return { headers, delayMs: 0 }
}

const str = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? '') : (v ?? ''))

/**
 * nginx escapes space, `%` and control bytes as %XX and sends other bytes raw (UTF-8 arrives as
 * latin1 characters in Node's header strings). Byte-wise decoding, then strict UTF-8; `+` is a
 * plus. Undefined when the result is not valid UTF-8.
 */
export function percentDecode(value: string): string | undefined {
  const raw = Buffer.from(value, 'latin1')
  const out = Buffer.alloc(raw.length)
  let n = 0
  for (let i = 0; i < raw.length; i++) {
    const hex = raw[i] === 0x25 && i + 2 < raw.length ? raw.subarray(i + 1, i + 3).toString('latin1') : ''
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out[n++] = Number.parseInt(hex, 16)
      i += 2
    } else out[n++] = raw[i]!
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(out.subarray(0, n))
  } catch {
    return undefined
  }
}
