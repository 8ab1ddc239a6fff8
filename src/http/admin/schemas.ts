// TypeBox schemas of every admin request and answer: fastify validates requests against them,
// serialises answers through them (nothing unlisted can leak, such as a password hash), and the
// OpenAPI document at /v1/openapi.json is generated from them.

import { Type } from 'typebox'
import { HEALTH_SERVICES, PLACEMENT_POLICIES } from '../../config/schema.js'
import { MOVE_STATES } from '../../admin/moves.js'
import { MAIL_HOST_PATTERN, MAIL_HOST_RULE } from '../../resolve/mail-host.js'

// Null first: fastify coerces types, and null would otherwise be coerced into the other branch (0, '').
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([Type.Null(), t])
const Literals = (values: readonly string[]) => Type.Union(values.map((v) => Type.Literal(v)))

const AddressText = Type.String({ minLength: 3, maxLength: 320, description: 'An email address; canonicalised (lowercase, IDN to ASCII).' })
const Status = Literals(['active', 'disabled'])
const AdminState = Literals(['active', 'drain', 'maintenance'])
const Route = Literals(['lmtp', 'smtp'])
const PortNumber = Type.Integer({ minimum: 1, maximum: 65535 })
const BackendId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' })
const DomainName = Type.String({ minLength: 1, maxLength: 253 })
const Password = Type.String({ minLength: 1, maxLength: 4096, description: 'Plain text; hashed with admin.passwordScheme, never stored or shown.' })
const AddressList = Type.Array(AddressText, { maxItems: 1000, uniqueItems: true })
const SendAsList = Type.Array(Type.String({ minLength: 2, maxLength: 320, description: 'user@domain or @domain' }), { maxItems: 1000, uniqueItems: true })
const Limit = Type.Integer({ minimum: 1, maximum: 1000, default: 100 })
// Row ids (moves, audit entries) are bigints in the store: a number past 2^53 has lost its digits
// by the time it is parsed, and one past 2^63 makes PostgreSQL refuse the query (a 500). Such an
// id cannot exist, so it is a malformed request.
const RowId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })
/** The largest value of an `integer` column (capacity, weight). */
const INT4_MAX = 2_147_483_647
// The resolver's own rule (resolve/mail-host.ts): a backend must not be named by what lookups refuse.
const MailHost = Type.String({ pattern: MAIL_HOST_PATTERN, description: `A mailHost: ${MAIL_HOST_RULE}.` })

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

export const Account = Type.Object({
  address: Type.String(),
  backend: Nullable(Type.String()),
  mailHost: Type.String(),
  status: Status,
  aliases: Type.Array(Type.String()),
  sendAs: Type.Array(Type.String()),
  hasPassword: Type.Boolean(),
  moving: Type.Boolean(),
})

export const AccountCreate = Type.Object(
  {
    address: AddressText,
    password: Type.Optional(Password),
    backend: Type.Optional(BackendId),
    status: Type.Optional(Status),
    aliases: Type.Optional(AddressList),
    sendAs: Type.Optional(SendAsList),
  },
  { additionalProperties: false },
)

export const AccountUpdate = Type.Object(
  {
    password: Type.Optional(Nullable(Password)),
    status: Type.Optional(Status),
    aliases: Type.Optional(AddressList),
    sendAs: Type.Optional(SendAsList),
  },
  { additionalProperties: false, minProperties: 1 },
)

export const AccountListQuery = Type.Object(
  {
    domain: Type.Optional(DomainName),
    backend: Type.Optional(BackendId),
    status: Type.Optional(Status),
    after: Type.Optional(Type.String({ maxLength: 320 })),
    limit: Limit,
  },
  { additionalProperties: false },
)

export const AccountPage = Type.Object({ accounts: Type.Array(Account), next: Type.Optional(Type.String()) })

export const AddressParams = Type.Object({ address: AddressText })

export const Domain = Type.Object({
  name: Type.String(),
  aliasFor: Type.Optional(Type.String()),
  catchAll: Type.Optional(Type.Array(Type.String())),
  affinity: Type.Optional(Type.String()),
})

export const DomainCreate = Type.Object(
  {
    name: DomainName,
    aliasFor: Type.Optional(DomainName),
    catchAll: Type.Optional(Type.Array(AddressText, { minItems: 1, maxItems: 100 })),
    affinity: Type.Optional(BackendId),
  },
  { additionalProperties: false },
)

export const DomainUpdate = Type.Object(
  {
    aliasFor: Type.Optional(Nullable(DomainName)),
    catchAll: Type.Optional(Nullable(Type.Array(AddressText, { minItems: 1, maxItems: 100 }))),
    affinity: Type.Optional(Nullable(BackendId)),
  },
  { additionalProperties: false, minProperties: 1 },
)

export const DomainList = Type.Object({ domains: Type.Array(Domain) })
export const DomainParams = Type.Object({ name: DomainName })

const Ports = Type.Object({ lmtp: PortNumber, smtp: PortNumber, imap: PortNumber, pop3: PortNumber })
const PortsPatch = Type.Object(
  { lmtp: Type.Optional(PortNumber), smtp: Type.Optional(PortNumber), imap: Type.Optional(PortNumber), pop3: Type.Optional(PortNumber) },
  { additionalProperties: false },
)

const ServiceHealth = Type.Object({
  state: Literals(['up', 'down']),
  since: Type.String({ description: 'When the service entered this state (ISO 8601).' }),
  detail: Nullable(Type.String({ description: 'Why it is down: the failed probe.' })),
  instance: Type.String({ description: 'The mailhostd instance (host:pid) whose checks recorded it; the last writer wins.' }),
})
const BackendHealth = Type.Object(Object.fromEntries(HEALTH_SERVICES.map((s) => [s, Type.Optional(ServiceHealth)])), {
  description: 'The health checks\' recorded state per probed service; empty when none was recorded.',
})

export const Backend = Type.Object({
  id: Type.String(),
  mailHosts: Type.Array(Type.String()),
  address: Type.String(),
  route: Route,
  ports: Ports,
  weight: Type.Integer(),
  capacity: Nullable(Type.Integer()),
  adminState: AdminState,
  accounts: Nullable(Type.Integer({ description: 'Accounts on it; null when the directory cannot count them (read-only LDAP).' })),
  health: BackendHealth,
})

const BackendFields = {
  address: Type.String({ minLength: 2, maxLength: 45, description: 'IP address (proxies need IP literals).' }),
  mailHosts: Type.Optional(Type.Array(MailHost, { maxItems: 32, uniqueItems: true })),
  route: Type.Optional(Route),
  ports: Type.Optional(PortsPatch),
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  capacity: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: INT4_MAX }))),
  adminState: Type.Optional(AdminState),
}

export const BackendCreate = Type.Object({ id: BackendId, ...BackendFields }, { additionalProperties: false })
export const BackendUpdate = Type.Object({ ...BackendFields, address: Type.Optional(BackendFields.address) }, { additionalProperties: false, minProperties: 1 })
export const BackendList = Type.Object({ backends: Type.Array(Backend) })
export const BackendParams = Type.Object({ id: BackendId })

export const PlacementQuery = Type.Object(
  { domain: Type.Optional(DomainName), policy: Type.Optional(Literals(PLACEMENT_POLICIES)) },
  { additionalProperties: false },
)
export const PlacementReply = Type.Object({
  ok: Type.Boolean(),
  backend: Type.Optional(Type.String()),
  applied: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
  eligible: Type.Optional(Type.Array(Type.String())),
  excluded: Type.Array(Type.Object({ id: Type.String(), reason: Type.String() })),
  candidates: Type.Array(
    Type.Object({ id: Type.String(), accounts: Type.Integer(), capacity: Nullable(Type.Integer()), weight: Type.Integer(), adminState: AdminState }),
  ),
})

export const Move = Type.Object({
  id: Type.Integer(),
  account: Type.String(),
  source: Type.Object({ backend: Nullable(Type.String()), mailHost: Type.String() }),
  target: Type.String(),
  state: Literals(MOVE_STATES),
  detail: Nullable(Type.String()),
  actor: Type.String(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  finishedAt: Nullable(Type.String()),
})

export const MoveStart = Type.Object(
  {
    target: BackendId,
    accounts: Type.Optional(Type.Array(AddressText, { minItems: 1, maxItems: 10_000 })),
    fromBackend: Type.Optional(BackendId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
)
export const MoveList = Type.Object({ moves: Type.Array(Move), next: Type.Optional(Type.Integer()) })
export const MoveBatch = Type.Object({ moves: Type.Array(Move) })
export const MoveListQuery = Type.Object(
  {
    state: Type.Optional(Literals(MOVE_STATES)),
    account: Type.Optional(AddressText),
    active: Type.Optional(Type.Boolean()),
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    limit: Limit,
  },
  { additionalProperties: false },
)
export const MoveParams = Type.Object({ id: RowId })
export const CompleteQuery = Type.Object({ force: Type.Optional(Type.Boolean()) }, { additionalProperties: false })

export const AuditQuery = Type.Object(
  {
    subjectType: Type.Optional(Literals(['account', 'domain', 'backend', 'move'])),
    subject: Type.Optional(Type.String({ maxLength: 320 })),
    actor: Type.Optional(Type.String({ maxLength: 64 })),
    action: Type.Optional(Type.String({ maxLength: 32 })),
    since: Type.Optional(Type.String({ format: 'date-time' })),
    until: Type.Optional(Type.String({ format: 'date-time' })),
    before: Type.Optional(RowId),
    limit: Limit,
  },
  { additionalProperties: false },
)
export const AuditPage = Type.Object({
  entries: Type.Array(
    Type.Object({
      id: Type.Integer(),
      at: Type.String(),
      actor: Type.String(),
      action: Type.String(),
      subjectType: Type.String(),
      subject: Type.String(),
      before: Type.Unknown(),
      after: Type.Unknown(),
    }),
  ),
  next: Type.Optional(Type.Integer()),
})

export const NoContent = Type.Null({ description: 'No content' })

/** Error answers every admin route may give, for the OpenAPI document. */
export const ERRORS = { 400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem, 422: Problem, 503: Problem }
