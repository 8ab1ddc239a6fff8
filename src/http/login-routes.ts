// The login endpoints for Dovecot (Lua passdb, auth policy) and nginx (auth_http), per
// docs/login.md. Every one needs the shared secret header; answers follow the failure model:
// a temporary failure is never reported as a wrong password or an unknown user.

import { createHash, timingSafeEqual } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import { Type, type Static } from 'typebox'
import type { Brakes } from '../auth/brakes.js'
import { toMs } from '../config/duration.js'
import type { LoginConfig } from '../config/schema.js'
import { ErrorCodes, httpStatusOf, type ErrorCode } from '../errors.js'
import type { LoginRouter } from '../login/router.js'
import type { LoginResult } from '../login/types.js'
import type { Metrics } from '../metrics.js'
import { nginxAuth } from './nginx-auth.js'
import type { NginxHeaderProblem } from './nginx-headers.js'
import { LogThrottle } from '../log.js'
import type { KeyResolver } from '../policy/engine.js'
import { accountKey, loginAccount } from '../resolve/login-account.js'
import type { Registry } from '../resolve/registry.js'

export interface LoginRoutesOptions {
  readonly router: LoginRouter
  readonly brakes: Brakes
  readonly resolver: KeyResolver
  readonly registry: () => Registry
  readonly config: LoginConfig
  readonly metrics?: Metrics
}

const VerifyBody = Type.Object(
  {
    user: Type.String({ minLength: 1, maxLength: 512 }),
    password: Type.String({ maxLength: 4096 }),
    service: Type.String({ minLength: 1, maxLength: 64 }),
    remoteIp: Type.Optional(Type.String({ maxLength: 64 })),
    localIp: Type.Optional(Type.String({ maxLength: 64 })),
    session: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
)
const LookupBody = Type.Object(
  {
    user: Type.String({ minLength: 1, maxLength: 512 }),
    service: Type.String({ minLength: 1, maxLength: 64 }),
    // Sent by mailhostd.lua in lookup mode, so a mismatch with login.lookupMode is a temporary
    // failure with a reason rather than a refusal.
    mode: Type.Optional(Type.Literal('lookup')),
    remoteIp: Type.Optional(Type.String({ maxLength: 64 })),
    localIp: Type.Optional(Type.String({ maxLength: 64 })),
    session: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
)
const PassdbReply = Type.Object({
  result: Type.Union(['ok', 'mismatch', 'unknown', 'disabled', 'tempfail'].map((r) => Type.Literal(r))),
  fields: Type.Optional(Type.Record(Type.String(), Type.String())),
  reason: Type.Optional(Type.String()),
})
// Dovecot builds this body from auth_policy_request_attributes: accept what it sends.
const PolicyBody = Type.Object({
  login: Type.Optional(Type.String({ maxLength: 512 })),
  remote: Type.Optional(Type.String({ maxLength: 64 })),
  session_id: Type.Optional(Type.String({ maxLength: 256 })),
  success: Type.Optional(Type.Boolean()),
})
const PolicyQuery = Type.Object({ command: Type.Union([Type.Literal('allow'), Type.Literal('report')]) })

const problem = (reply: FastifyReply, code: ErrorCode, detail: string) => {
  const status = httpStatusOf(code)
  return reply.code(status).type('application/problem+json').send({ type: 'about:blank', title: detail, status, detail, code })
}

/** The login endpoints as a fastify plugin: its own scope, so the secret guard covers only them. */
export function loginRoutes(o: LoginRoutesOptions): FastifyPluginCallback {
  // o.config is read per request, not once here: a configuration reload may change the secret,
  // its header or the tarpit cap while the routes stay registered.
  const maxTarpitMs = () => toMs(o.config.brakes.maxTarpit)
  /** Failures the router already counted, by Dovecot session, so a policy report does not count them twice. */
  const counted = new Set<string>()
  // A proxy relaying hostile names could log one line per connection: one a minute per kind.
  const invalidLog = new LogThrottle(60_000)
  /** The configured secret's digest, made again only when a reload changes the secret. */
  let secretDigest = { secret: '', digest: digest('') }
  const digestOfSecret = (secret: string) => {
    if (secretDigest.secret !== secret) secretDigest = { secret, digest: digest(secret) }
    return secretDigest.digest
  }

  const guard = async (req: FastifyRequest, reply: FastifyReply) => {
    // nginx reads only headers: without an Auth-Status it reports an internal error to the
    // client; with one, a temporary failure the client can retry.
    if (req.url.startsWith('/v1/nginx/')) void reply.header('Auth-Status', 'Temporary authentication failure, try again later')
    const { secret, secretHeader } = o.config
    if (secret === '') return problem(reply, ErrorCodes.LOGIN_NO_SECRET, 'login.secret is not configured')
    const given = req.headers[secretHeader.toLowerCase()]
    if (typeof given !== 'string' || !timingSafeEqual(digest(given), digestOfSecret(secret))) {
      return problem(reply, ErrorCodes.LOGIN_SECRET, `missing or wrong ${o.config.secretHeader}`)
    }
  }

  const answer = async (r: LoginResult) => {
    // Tarpit: hold the answer. Each held answer holds one of Dovecot's auth workers (30 by
    // default), so the HTTP passdb's tarpit is capped low; the auth policy tarpits for longer
    // without holding a worker.
    if (r.tarpitSeconds > 0) await sleep(Math.min(r.tarpitSeconds * 1000, maxTarpitMs(), PASSDB_TARPIT_CAP_MS))
    return r.result === 'ok' ? { result: r.result, fields: { ...r.fields } } : { result: r.result, reason: r.reason }
  }

  return (scope, _opts, done) => {
    scope.addHook('onRequest', guard)

    scope.post('/v1/dovecot/passdb/verify', { schema: { body: VerifyBody, response: { 200: PassdbReply } }, bodyLimit: 65536 }, async (req) => {
      const b = req.body as Static<typeof VerifyBody>
      const r = await o.router.verify({ ...b }, 'dovecot')
      if (b.session && (r.result === 'mismatch' || r.result === 'unknown')) remember(counted, b.session)
      return answer(r)
    })

    scope.post('/v1/dovecot/passdb/lookup', { schema: { body: LookupBody, response: { 200: PassdbReply } }, bodyLimit: 65536 }, async (req) => {
      const b = req.body as Static<typeof LookupBody>
      return answer(await o.router.lookup(b, 'dovecot'))
    })

    scope.post('/v1/dovecot/policy', { schema: { body: PolicyBody, querystring: PolicyQuery }, bodyLimit: 65536 }, async (req) => {
      const b = req.body as Static<typeof PolicyBody>
      const { command } = req.query as Static<typeof PolicyQuery>
      // Counted per account, as the login router counts: bob+x@ and bob@<alias domain> are bob.
      // A name the directory cannot resolve now has no account key (Brakes says how it is judged).
      const login = b.login ?? ''
      const who = accountKey(loginAccount(await o.resolver.resolve(login, 'auth policy'), login))
      const ip = b.remote || undefined
      if (command === 'report') {
        if (b.success === true) o.brakes.success(who, ip)
        else if (b.success === false && !(b.session_id && counted.delete(b.session_id))) o.brakes.failure(who, ip)
        return { status: 0, msg: '' }
      }
      const v = o.brakes.check(who, ip)
      if (v.action === 'pass') return { status: 0, msg: '' }
      o.metrics?.brakes.inc({ scope: v.scope, action: v.action })
      return v.action === 'refuse' ? { status: -1, msg: 'Too many failed logins, try again later' } : { status: v.seconds, msg: '' }
    })

    scope.get('/v1/nginx/auth', async (req, reply) => {
      const onInvalid = (p: NginxHeaderProblem, rip: string | undefined) => {
        o.metrics?.logins.inc({ protocol: 'nginx', result: 'invalid' })
        // Names and reasons come from closed sets; no header value is logged, so neither the
        // password nor a hostile host name can reach the log.
        invalidLog.run(`${p.header}:${p.reason}`, (suppressed) =>
          req.log.warn({ protocol: 'nginx', header: p.header, reason: p.reason, byte: p.header === 'Auth-Pass' ? undefined : p.byte, rip, suppressed }, 'nginx auth request refused: invalid header'),
        )
      }
      const { headers, delayMs } = await nginxAuth(req.headers, { ...o, onInvalid }, req.raw.rawHeaders)
      if (delayMs > 0) await sleep(Math.min(delayMs, maxTarpitMs()))
      // nginx reads only the headers; the status line just has to be HTTP/1.x.
      return reply.code(200).headers(headers).send('')
    })
    done()
  }
}

/** Longest hold of a Dovecot passdb answer (docs/login.md). */
export const PASSDB_TARPIT_CAP_MS = 5000

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()

function remember(set: Set<string>, session: string): void {
  if (set.size >= 10_000) set.delete(set.values().next().value!)
  set.add(session)
}
