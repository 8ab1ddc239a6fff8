// The HTTP listener (default 127.0.0.1:10090): liveness, readiness, Prometheus metrics, the
// lookup endpoint behind `mailhostctl lookup`, the Dovecot/nginx login endpoints, the admin
// REST API with its OpenAPI document, and the status page at `/`. It binds to loopback by
// default; the lookup endpoint reveals no more than the socketmap port, the others need their
// secret or token.

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyError } from 'fastify'
import type { Logger } from 'pino'
import { Type } from 'typebox'
import type { Daemon } from '../daemon.js'
import { describeError } from '../errors.js'
import type { LookupService } from '../resolve/answer.js'
import swagger from '@fastify/swagger'
import { loginRoutes, type LoginRoutesOptions } from './login-routes.js'
import { adminRoutes, type AdminRoutesOptions } from './admin/routes.js'
import { statusPage } from './status-page.js'
import { problemOf, sendProblem } from './problem.js'
import { VERSION } from '../version.js'

export interface HttpServer {
  readonly address: { host: string; port: number }
  close(): Promise<void>
}

export interface HttpOptions {
  readonly host: string
  readonly port: number
  readonly daemon: Daemon
  readonly lookups: LookupService
  readonly logger: Logger
  /** Dovecot and nginx login endpoints (docs/login.md). */
  readonly login?: LoginRoutesOptions
  /** The admin REST API (docs/admin.md). */
  readonly admin?: AdminRoutesOptions
}

const PROBE_TIMEOUT_MS = 2000

const LookupQuery = Type.Object(
  {
    map: Type.String({ minLength: 1, maxLength: 256 }),
    key: Type.String({ maxLength: 4096 }),
  },
  { additionalProperties: false },
)

const LookupReply = Type.Object({
  map: Type.String(),
  key: Type.String(),
  outcome: Type.Union([Type.Literal('found'), Type.Literal('notfound'), Type.Literal('temp'), Type.Literal('perm')]),
  value: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
  layer: Type.String(),
  elapsedMs: Type.Number(),
})

export async function startHttp(o: HttpOptions): Promise<HttpServer> {
  // Lookups are logged by the lookup service; fastify's own per-request lines would double them.
  const app = Fastify({
    loggerInstance: o.logger.child({ listener: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    // An unknown field is refused, not silently dropped: a typo such as `pasword` must not
    // create an account without a password.
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Errors as RFC 9457 problem+json with our stable codes.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const p = problemOf(err)
    if (p.status === 500) o.logger.error({ err: describeError(err), method: req.method, path: req.url.split('?')[0] }, 'http handler failed')
    else if (p.status >= 500) o.logger.warn({ code: p.code, detail: p.detail, method: req.method, path: req.url.split('?')[0] }, 'http request failed')
    void reply.code(p.status).type('application/problem+json').send(p)
  })
  app.setNotFoundHandler((req, reply) => {
    void sendProblem(reply, 404, 'MH_HTTP_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)
  })

  // The OpenAPI document is built from every route's schemas; registered before the routes.
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'mailhostd', version: VERSION, description: 'Admin REST API (docs/admin.md) and the Dovecot/nginx login endpoints (docs/login.md).' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  })
  app.get('/v1/openapi.json', { schema: { hide: true } }, () => app.swagger())

  if (o.login) await app.register(loginRoutes(o.login))
  if (o.admin) await app.register(adminRoutes(o.admin))
  if (o.admin) await app.register(statusPage({ daemon: o.daemon, auth: o.admin.auth, backends: o.admin.backends }))

  app.get('/healthz', () => ({ status: 'ok' }))

  app.get('/readyz', async (_req, reply) => {
    const [store, directory] = await Promise.all([
      probe(() => o.daemon.store.query('select 1')),
      probe(() => o.daemon.directory.ping(AbortSignal.timeout(PROBE_TIMEOUT_MS))),
    ])
    const ready = store.ok && directory.ok
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not ready',
      store: { kind: o.daemon.store.kind, ...store },
      directory: { kind: o.daemon.directory.kind, circuit: o.daemon.directory.state, ...directory },
      listeners: o.daemon.bound,
    })
  })

  app.get('/metrics', async (_req, reply) => {
    return reply.type(o.daemon.metrics.registry.contentType).send(await o.daemon.metrics.registry.metrics())
  })

  app.get('/v1/lookup', { schema: { querystring: LookupQuery, response: { 200: LookupReply } } }, async (req) => {
    const { map, key } = req.query
    const r = await o.lookups.lookup(map, key, 'http')
    const a = r.answer
    return {
      map,
      key,
      outcome: a.outcome,
      ...(a.outcome === 'found' ? { value: a.value } : { reason: a.reason }),
      layer: r.layer,
      elapsedMs: r.elapsedMs,
    }
  })

  await app.listen({ host: o.host, port: o.port })
  const addr = app.server.address()
  const port = addr && typeof addr === 'object' ? addr.port : o.port
  return { address: { host: o.host, port }, close: () => app.close() }
}

async function probe(fn: () => Promise<unknown>): Promise<{ ok: boolean; error?: string; ms: number }> {
  const t = performance.now()
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS)
      }),
    ])
    return { ok: true, ms: Math.round(performance.now() - t) }
  } catch (e) {
    return { ok: false, error: describeError(e), ms: Math.round(performance.now() - t) }
  } finally {
    clearTimeout(timer)
  }
}
