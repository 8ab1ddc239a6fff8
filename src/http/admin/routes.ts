// The admin REST API under /v1 (docs/admin.md) as one fastify plugin: bearer-token
// authentication before anything is parsed, role checks, Idempotency-Key handling for creates,
// and one route per operation of the admin services. Handlers stay thin: validation is the
// schema's, decisions are the services'.

import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import type { Static, TSchema } from 'typebox'
import { placement } from '../../admin/accounts.js'
import { queryAudit } from '../../admin/audit.js'
import type { AdminServices } from '../../admin/index.js'
import { IDEMPOTENCY_KEY, IdempotencyKeys, PendingAnswer } from '../../admin/idempotency.js'
import { redact } from '../../admin/audit.js'
import { allows, type Principal, type TokenAuth } from '../../admin/tokens.js'
import { AdminError, ErrorCodes } from '../../errors.js'
import { problemOf } from '../problem.js'
import * as S from './schemas.js'

/** The admin services (src/admin/index.ts) and the token check in force. */
export interface AdminRoutesOptions extends AdminServices {
  readonly auth: TokenAuth
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
  }
}

const BODY_LIMIT = 1024 * 1024

type Req<P extends TSchema | undefined = undefined, Q extends TSchema | undefined = undefined, B extends TSchema | undefined = undefined> = FastifyRequest<{
  Params: P extends TSchema ? Static<P> : unknown
  Querystring: Q extends TSchema ? Static<Q> : unknown
  Body: B extends TSchema ? Static<B> : unknown
}>

const actor = (req: FastifyRequest) => req.principal!.name
const schema = <R extends Record<number, TSchema>>(s: Record<string, unknown>, ok: R, tags: string[]) => ({
  schema: { ...s, tags, security: [{ bearer: [] }], response: { ...ok, ...S.ERRORS } },
})

export function adminRoutes(o: AdminRoutesOptions): FastifyPluginCallback {
  return (scope, _opts, done) => {
    scope.decorateRequest('principal', undefined)

    // onRequest runs before the body is read: an unauthenticated client learns nothing about
    // what a valid request would look like, and sends no body we would parse.
    scope.addHook('onRequest', (req, reply, done) => {
      const p = o.auth.authenticate(req.headers.authorization)
      if (!p) {
        void reply.header('WWW-Authenticate', 'Bearer realm="mailhostd"')
        const why = req.headers.authorization === undefined ? 'no bearer token' : 'unknown bearer token'
        done(new AdminError(ErrorCodes.UNAUTHORIZED, o.auth.configured ? why : `${why}: no admin.tokens are configured`))
        return
      }
      if (!allows(p.role, req.method)) {
        done(new AdminError(ErrorCodes.FORBIDDEN, `token ${p.name} has role ${p.role}: it may only read`))
        return
      }
      req.principal = p
      done()
    })

    /**
     * Runs a create once per Idempotency-Key and answers retries with the first answer. The
     * service records the answer inside the transaction that makes the write (PendingAnswer), so
     * a crash never leaves a write whose key has no answer; refusals are recorded here.
     */
    const created = async (
      req: FastifyRequest,
      reply: FastifyReply,
      run: (answer: PendingAnswer | undefined) => Promise<unknown>,
      location?: (body: unknown) => string,
    ) => {
      const send = (status: number, body: unknown) => {
        if (status === 201 && location) void reply.header('Location', location(body))
        return reply.code(status).type(status >= 400 ? 'application/problem+json' : 'application/json').send(body)
      }
      const key = req.headers['idempotency-key']
      if (key === undefined) return send(201, await run(undefined))
      if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) throw new AdminError(ErrorCodes.VALIDATION, 'Idempotency-Key: 1-255 printable ASCII characters')
      // The body's secrets (a new account's password) never go into the stored hash.
      const hash = IdempotencyKeys.requestHash(req.method, req.url, redact(req.body))
      const claim = await o.idempotency.claim(actor(req), key, hash)
      if (claim.kind === 'replay') {
        void reply.header('Idempotent-Replayed', 'true')
        return send(claim.answer.status, claim.answer.body)
      }
      const answer = new PendingAnswer(claim.claim)
      let body: unknown
      try {
        body = await run(answer)
      } catch (e) {
        const p = problemOf(e)
        if (p.status < 500) await o.idempotency.finish(claim.claim, { status: p.status, body: p })
        else await o.idempotency.release(claim.claim)
        throw e
      }
      // What a retry replays must be what the first client got: the serialised answer.
      if (!answer.sealed) await o.idempotency.finish(claim.claim, { status: 201, body })
      return send(201, body)
    }

    // Accounts
    scope.post('/v1/accounts', { ...schema({ body: S.AccountCreate }, { 201: S.Account }, ['accounts']), bodyLimit: BODY_LIMIT }, (req: Req<undefined, undefined, typeof S.AccountCreate>, reply) =>
      created(req, reply, (answer) => o.accounts.create(actor(req), req.body, answer), (b) => `/v1/accounts/${encodeURIComponent((b as { address: string }).address)}`),
    )
    scope.get('/v1/accounts', schema({ querystring: S.AccountListQuery }, { 200: S.AccountPage }, ['accounts']), (req: Req<undefined, typeof S.AccountListQuery>) =>
      o.accounts.list(req.query),
    )
    scope.get('/v1/accounts/:address', schema({ params: S.AddressParams }, { 200: S.Account }, ['accounts']), (req: Req<typeof S.AddressParams>) =>
      o.accounts.get(req.params.address),
    )
    scope.patch(
      '/v1/accounts/:address',
      { ...schema({ params: S.AddressParams, body: S.AccountUpdate }, { 200: S.Account }, ['accounts']), bodyLimit: BODY_LIMIT },
      (req: Req<typeof S.AddressParams, undefined, typeof S.AccountUpdate>) => o.accounts.update(actor(req), req.params.address, req.body),
    )
    scope.delete('/v1/accounts/:address', schema({ params: S.AddressParams }, { 204: S.NoContent }, ['accounts']), async (req: Req<typeof S.AddressParams>, reply) => {
      await o.accounts.remove(actor(req), req.params.address)
      return reply.code(204).send()
    })

    // Domains
    scope.get('/v1/domains', schema({}, { 200: S.DomainList }, ['domains']), async () => ({ domains: await o.domains.list() }))
    scope.post('/v1/domains', schema({ body: S.DomainCreate }, { 201: S.Domain }, ['domains']), (req: Req<undefined, undefined, typeof S.DomainCreate>, reply) =>
      created(req, reply, (answer) => o.domains.create(actor(req), req.body, answer), (b) => `/v1/domains/${(b as { name: string }).name}`),
    )
    scope.get('/v1/domains/:name', schema({ params: S.DomainParams }, { 200: S.Domain }, ['domains']), (req: Req<typeof S.DomainParams>) => o.domains.get(req.params.name))
    scope.patch('/v1/domains/:name', schema({ params: S.DomainParams, body: S.DomainUpdate }, { 200: S.Domain }, ['domains']), (req: Req<typeof S.DomainParams, undefined, typeof S.DomainUpdate>) =>
      o.domains.update(actor(req), req.params.name, req.body),
    )
    scope.delete('/v1/domains/:name', schema({ params: S.DomainParams }, { 204: S.NoContent }, ['domains']), async (req: Req<typeof S.DomainParams>, reply) => {
      await o.domains.remove(actor(req), req.params.name)
      return reply.code(204).send()
    })

    // Backends
    scope.get('/v1/backends', schema({}, { 200: S.BackendList }, ['backends']), async () => ({ backends: await o.backends.list() }))
    scope.post('/v1/backends', schema({ body: S.BackendCreate }, { 201: S.Backend }, ['backends']), (req: Req<undefined, undefined, typeof S.BackendCreate>, reply) =>
      created(req, reply, (answer) => o.backends.create(actor(req), req.body, answer), (b) => `/v1/backends/${(b as { id: string }).id}`),
    )
    scope.get('/v1/backends/:id', schema({ params: S.BackendParams }, { 200: S.Backend }, ['backends']), (req: Req<typeof S.BackendParams>) => o.backends.get(req.params.id))
    scope.patch('/v1/backends/:id', schema({ params: S.BackendParams, body: S.BackendUpdate }, { 200: S.Backend }, ['backends']), (req: Req<typeof S.BackendParams, undefined, typeof S.BackendUpdate>) =>
      o.backends.update(actor(req), req.params.id, req.body),
    )
    scope.delete('/v1/backends/:id', schema({ params: S.BackendParams }, { 204: S.NoContent }, ['backends']), async (req: Req<typeof S.BackendParams>, reply) => {
      await o.backends.remove(actor(req), req.params.id)
      return reply.code(204).send()
    })

    // Pools: their members and pins (docs/pools.md, "Operations"); pools themselves are backends.
    scope.get('/v1/pools/:id', schema({ params: S.BackendParams }, { 200: S.PoolStatus }, ['pools']), (req: Req<typeof S.BackendParams>) => o.pools.status(req.params.id))
    scope.post('/v1/pools/:id/members', schema({ params: S.BackendParams, body: S.MemberCreate }, { 201: S.PoolMember }, ['pools']), (req: Req<typeof S.BackendParams, undefined, typeof S.MemberCreate>, reply) =>
      created(req, reply, () => o.pools.addMember(actor(req), req.params.id, req.body), () => `/v1/pools/${req.params.id}`),
    )
    scope.patch(
      '/v1/pools/:id/members/:member',
      schema({ params: S.MemberParams, body: S.MemberUpdate }, { 200: S.PoolMember }, ['pools']),
      (req: Req<typeof S.MemberParams, undefined, typeof S.MemberUpdate>) => o.pools.updateMember(actor(req), req.params.id, req.params.member, req.body),
    )
    scope.delete('/v1/pools/:id/members/:member', schema({ params: S.MemberParams }, { 204: S.NoContent }, ['pools']), async (req: Req<typeof S.MemberParams>, reply) => {
      await o.pools.removeMember(actor(req), req.params.id, req.params.member)
      return reply.code(204).send()
    })
    scope.post('/v1/pools/:id/flush', schema({ params: S.BackendParams, body: S.PoolFlush }, { 200: S.PoolFlushReply }, ['pools']), (req: Req<typeof S.BackendParams, undefined, typeof S.PoolFlush>) =>
      o.pools.flush(actor(req), req.params.id, req.body ?? {}),
    )
    scope.post('/v1/pools/:id/move-user', schema({ params: S.BackendParams, body: S.MoveUser }, { 200: S.MoveUserReply }, ['pools']), (req: Req<typeof S.BackendParams, undefined, typeof S.MoveUser>) =>
      o.pools.moveUser(actor(req), req.params.id, req.body),
    )
    scope.get('/v1/pools/:id/pins', schema({ params: S.BackendParams, querystring: S.PinQuery }, { 200: S.PinPage }, ['pools']), (req: Req<typeof S.BackendParams, typeof S.PinQuery>) =>
      o.pools.pins(req.params.id, req.query),
    )

    // Placement dry run: reads only, so a read token may ask.
    scope.get('/v1/placement', schema({ querystring: S.PlacementQuery }, { 200: S.PlacementReply }, ['placement']), async (req: Req<undefined, typeof S.PlacementQuery>) => {
      const domain = req.query.domain === undefined ? undefined : o.deps.registry().domain(req.query.domain.trim().toLowerCase())
      if (req.query.domain !== undefined && !domain) throw new AdminError(ErrorCodes.DOMAIN_NOT_SERVED, `${req.query.domain} is not a served domain`)
      const r = await placement(o.deps, domain?.affinity, req.query.policy)
      return { ...r, candidates: r.candidates.map(({ id, accounts, capacity, weight, adminState }) => ({ id, accounts, capacity, weight, adminState })) }
    })

    // Moves
    scope.post('/v1/moves', schema({ body: S.MoveStart }, { 201: S.MoveBatch }, ['moves']), (req: Req<undefined, undefined, typeof S.MoveStart>, reply) =>
      created(req, reply, async (answer) => ({ moves: await o.moves.start(actor(req), req.body, answer) })),
    )
    scope.get('/v1/moves', schema({ querystring: S.MoveListQuery }, { 200: S.MoveList }, ['moves']), (req: Req<undefined, typeof S.MoveListQuery>) => o.moves.list(req.query))
    scope.get('/v1/moves/:id', schema({ params: S.MoveParams }, { 200: S.Move }, ['moves']), (req: Req<typeof S.MoveParams>) => o.moves.get(req.params.id))
    scope.post('/v1/moves/:id/complete', schema({ params: S.MoveParams, querystring: S.CompleteQuery }, { 200: S.Move }, ['moves']), (req: Req<typeof S.MoveParams, typeof S.CompleteQuery>) =>
      o.moves.complete(actor(req), req.params.id, req.query.force ?? false),
    )
    scope.post('/v1/moves/:id/abort', schema({ params: S.MoveParams }, { 200: S.Move }, ['moves']), (req: Req<typeof S.MoveParams>) => o.moves.abort(actor(req), req.params.id))

    // Audit
    scope.get('/v1/audit', schema({ querystring: S.AuditQuery }, { 200: S.AuditPage }, ['audit']), (req: Req<undefined, typeof S.AuditQuery>) => queryAudit(o.deps.store, req.query))
    done()
  }
}
