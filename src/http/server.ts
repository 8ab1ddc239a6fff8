// The HTTP listener (default 127.0.0.1:10090): liveness, readiness, Prometheus metrics, the
// lookup endpoint behind `mailhostctl lookup`, the Dovecot/nginx login endpoints, the admin
// REST API with its OpenAPI document, and the status page at `/`. It binds to loopback by
// default. The login endpoints need their secret, the admin API and the status page a token;
// lookup, metrics and the OpenAPI document need a read token when the listener is reachable
// from other hosts (read-access.ts). Connections are limited like every listener's
// (limits.*): a cap with per-client room, and short timeouts for a request's headers and body.

import type { Socket } from 'node:net'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyError } from 'fastify'
import type { Logger } from 'pino'
import { Type } from 'typebox'
import { ErrorCodes, describeError } from '../errors.js'
import { requestContext } from '../log.js'
import { readiness, type ReadinessSource } from './readiness.js'
import type { LookupService } from '../resolve/answer.js'
import swagger from '@fastify/swagger'
import { clientErrorHandler } from './client-error.js'
import { loginRoutes, type LoginRoutesOptions } from './login-routes.js'
import { adminRoutes, type AdminRoutesOptions } from './admin/routes.js'
import { statusPage } from './status-page.js'
import type { StatusDaemon } from './status-data.js'
import type { Metrics } from '../metrics.js'
import { problemOf, sendProblem } from './problem.js'
import { VERSION } from '../version.js'
import { Admission } from '../server/admission.js'
import type { ListenerLimits } from '../server/options.js'
import type { ReadEndpoints } from '../config/schema.js'
import { readAccess } from './read-access.js'

/**
 * limits.* as the HTTP listener applies them. `idleTimeoutMs` is limits.httpIdleTimeout here:
 * keep-alive between requests, and how long a socket may see no traffic at all.
 */
export type HttpLimits = Pick<ListenerLimits, 'maxConnections' | 'maxConnectionsPerClient' | 'firstRequestTimeoutMs' | 'requestTimeoutMs' | 'idleTimeoutMs'>

export interface HttpServer {
  readonly address: { host: string; port: number }
  /** Open client connections right now (for metrics). */
  readonly connections: number
  close(): Promise<void>
}

/** What the HTTP routes read of the running instance: readiness, the status page and the metrics. */
export interface HttpInstance extends ReadinessSource, StatusDaemon {
  readonly directory: ReadinessSource['directory'] & StatusDaemon['directory']
  readonly config: ReadinessSource['config'] & StatusDaemon['config']
  readonly metrics: Pick<Metrics, 'registry'>
}

export interface HttpOptions {
  readonly host: string
  readonly port: number
  readonly limits: HttpLimits
  readonly instance: HttpInstance
  readonly lookups: LookupService
  readonly logger: Logger
  /** Dovecot and nginx login endpoints (docs/login.md). */
  readonly login?: LoginRoutesOptions
  /** The admin REST API (docs/admin.md); its tokens also open the read endpoints when they need one. */
  readonly admin?: AdminRoutesOptions
  /** admin.readEndpoints, read per request (a reload changes it). */
  readonly readEndpoints: () => ReadEndpoints
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
  const limits = o.limits
  // Node enforces headersTimeout (which it also applies from connect to a first request's
  // headers) and requestTimeout by checking every connection this often; its default, 30 s,
  // would let a silent connection stay far longer than the timeout says.
  const headersTimeout = Math.min(limits.firstRequestTimeoutMs, limits.requestTimeoutMs)
  const checkEvery = Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4)))
  // fastify's own request lines are replaced by one line per request at debug (below), which
  // names the route and never the query, headers or body.
  const app = Fastify({
    http: { headersTimeout, requestTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: checkEvery },
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    // No traffic either way for this long (a client that stops reading its answer): closed.
    connectionTimeout: limits.idleTimeoutMs,
    loggerInstance: o.logger.child({ listener: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    // An unknown field is refused, not silently dropped: a typo such as `pasword` must not
    // create an account without a password.
    ajv: { customOptions: { removeAdditional: false } },
    // Requests the HTTP parser refuses: nginx's get a refusal it can show (client-error.ts).
    clientErrorHandler: clientErrorHandler({ logger: o.logger, metrics: o.login?.metrics }),
  }).withTypeProvider<TypeBoxTypeProvider>()

  // The connection cap, as on the line listeners (admission.ts): a connection that has not
  // completed a request head is the one to make room, and Node's headersTimeout closes it anyway.
  const httpLog = o.logger.child({ listener: 'http' })
  const admission = new Admission<Socket>(limits, (socket) => socket.destroy(), httpLog)
  app.server.on('connection', (socket: Socket) => {
    if (!admission.admit(socket, socket.remoteAddress)) {
      socket.destroy()
      return
    }
    socket.once('close', () => admission.release(socket))
  })
  app.server.on('request', (req: { socket: Socket }) => admission.started(req.socket))

  // Every line logged while a request is handled (lookups, logins, admin changes) carries its
  // reqId. Body parsing runs in the socket's async context, not the request's, so the context is
  // entered again before validation, from where the handler runs.
  app.addHook('onRequest', (req, _reply, done) => requestContext.run({ reqId: req.id }, done))
  app.addHook('preValidation', (req, _reply, done) => requestContext.run({ reqId: req.id }, done))
  app.addHook('onResponse', (req, reply, done) => {
    if (o.logger.isLevelEnabled('debug')) {
      o.logger.debug({ reqId: req.id, method: req.method, route: req.routeOptions.url ?? '(none)', status: reply.statusCode, ms: Math.round(reply.elapsedTime * 1000) / 1000 }, 'http request')
    }
    done()
  })

  // Errors as RFC 9457 problem+json with our stable codes.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const p = problemOf(err)
    const where = { reqId: req.id, method: req.method, path: req.url.split('?')[0] }
    if (p.status === 500) o.logger.error({ ...where, err: describeError(err) }, 'http handler failed')
    else if (p.status >= 500) o.logger.warn({ ...where, code: p.code, detail: p.detail }, 'http request failed')
    void reply.code(p.status).type('application/problem+json').send(p)
  })
  app.setNotFoundHandler((req, reply) => {
    void sendProblem(reply, ErrorCodes.HTTP_NOT_FOUND, `no route ${req.method} ${req.url.split('?')[0]}`)
  })

  // The OpenAPI document is built from every route's schemas; registered before the routes.
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'mailhostd', version: VERSION, description: 'Admin REST API (docs/admin.md) and the Dovecot/nginx login endpoints (docs/login.md).' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  })
  // Lookups, metrics and the OpenAPI document: open on loopback, a read token elsewhere.
  let boundHost = o.host
  const reads = readAccess({ mode: o.readEndpoints, boundHost: () => boundHost, auth: () => o.admin?.auth })
  app.get('/v1/openapi.json', { schema: { hide: true }, onRequest: reads }, () => app.swagger())

  if (o.login) await app.register(loginRoutes(o.login))
  if (o.admin) await app.register(adminRoutes(o.admin))
  if (o.admin) await app.register(statusPage({ daemon: o.instance, auth: o.admin.auth, backends: o.admin.backends }))

  app.get('/healthz', () => ({ status: 'ok' }))

  app.get('/readyz', async (_req, reply) => {
    const r = await readiness(o.instance, PROBE_TIMEOUT_MS)
    return reply.code(r.ready ? 200 : 503).send(r.body)
  })

  app.get('/metrics', { onRequest: reads }, async (_req, reply) => {
    return reply.type(o.instance.metrics.registry.contentType).send(await o.instance.metrics.registry.metrics())
  })

  app.get('/v1/lookup', { schema: { querystring: LookupQuery, response: { 200: LookupReply } }, onRequest: reads }, async (req) => {
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
  // What the socket is bound to decides (a name such as localhost resolved to an address).
  if (addr && typeof addr === 'object') boundHost = addr.address
  return {
    address: { host: o.host, port },
    get connections() {
      return admission.size
    },
    close: () => app.close(),
  }
}
