// TypeBox schemas of every admin request and answer: fastify validates requests against them,
// serialises answers through them (nothing unlisted can leak, such as a password hash), and the
// OpenAPI document at /v1/openapi.json is generated from them. The data shapes are the admin
// layer's own (src/admin/shapes.ts), so the services' types and these schemas cannot drift; what
// is only HTTP (path parameters, problem details, empty answers) is declared here.

import { Type } from 'typebox'
import { AddressText, BackendId, DomainName, RowId } from '../../admin/shapes.js'

export {
  Account,
  AccountCreate,
  AccountListQuery,
  AccountPage,
  AccountUpdate,
  AuditPage,
  AuditQuery,
  Backend,
  BackendCreate,
  BackendList,
  BackendUpdate,
  Domain,
  DomainCreate,
  DomainList,
  DomainUpdate,
  Move,
  MoveBatch,
  MoveList,
  MoveListQuery,
  MoveStart,
  MemberCreate,
  MemberUpdate,
  MoveUser,
  MoveUserReply,
  PinPage,
  PinQuery,
  PlacementQuery,
  PlacementReply,
  PoolFlush,
  PoolFlushReply,
  PoolMember,
  PoolStatus,
} from '../../admin/shapes.js'

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable error code (docs/admin.md).' }),
  },
  { description: 'RFC 9457 problem details' },
)

export const AddressParams = Type.Object({ address: AddressText })
export const DomainParams = Type.Object({ name: DomainName })
export const BackendParams = Type.Object({ id: BackendId })
export const MemberParams = Type.Object({ id: BackendId, member: BackendId })
export const MoveParams = Type.Object({ id: RowId })
export const CompleteQuery = Type.Object({ force: Type.Optional(Type.Boolean()) }, { additionalProperties: false })

export const NoContent = Type.Null({ description: 'No content' })

/** Error answers every admin route may give, for the OpenAPI document. */
export const ERRORS = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem, 503: Problem }
