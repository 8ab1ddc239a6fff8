// The admin API's data, declared once as TypeBox schemas: the admin services take and return the
// types derived from them (Static), and the HTTP layer (src/http/admin/schemas.ts) validates
// requests and serialises answers with the same schemas, so what a service returns is what an
// answer may carry (nothing unlisted can leak, such as a password hash) and the OpenAPI document
// describes exactly that. Closed sets come from the modules that own them.

import { Type, type Static, type TOptional } from 'typebox'
import { Literals } from '../config/literals.js'
import { PLACEMENT_POLICIES } from '../config/schema.js'
import { ACCOUNT_STATUSES } from '../directory/directory.js'
import { MAIL_HOST_PATTERN, MAIL_HOST_RULE } from '../resolve/mail-host.js'
import { ADMIN_STATES, BACKEND_ID_PATTERN, BACKEND_KINDS, PROBED_SERVICES, ROUTE_STYLES, SERVICE_HEALTH_STATES, type ProbedService } from '../resolve/vocabulary.js'
import { SUBJECT_TYPES } from './audit.js'
import { MOVE_STATES } from './move-states.js'

// Null first: fastify coerces types, and null would otherwise be coerced into the other branch (0, '').
export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([Type.Null(), t])

export const AddressText = Type.String({ minLength: 3, maxLength: 320, description: 'An email address; canonicalised (lowercase, IDN to ASCII).' })
const Status = Literals(ACCOUNT_STATUSES)
const AdminState = Literals(ADMIN_STATES)
const Route = Literals(ROUTE_STYLES)
const PortNumber = Type.Integer({ minimum: 1, maximum: 65535 })
export const BackendId = Type.String({ pattern: BACKEND_ID_PATTERN })
export const DomainName = Type.String({ minLength: 1, maxLength: 253 })
const Password = Type.String({ minLength: 1, maxLength: 4096, description: 'Plain text; hashed with admin.passwordScheme, never stored or shown.' })
const AddressList = Type.Array(AddressText, { maxItems: 1000, uniqueItems: true })
const SendAsList = Type.Array(Type.String({ minLength: 2, maxLength: 320, description: 'user@domain or @domain' }), { maxItems: 1000, uniqueItems: true })
const Limit = Type.Integer({ minimum: 1, maximum: 1000, default: 100 })
// Row ids (moves, audit entries) are bigints in the store: a number past 2^53 has lost its digits
// by the time it is parsed, and one past 2^63 makes PostgreSQL refuse the query (a 500). Such an
// id cannot exist, so it is a malformed request.
export const RowId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })
/** The largest value of an `integer` column (capacity, weight). */
const INT4_MAX = 2_147_483_647
// The resolver's own rule (resolve/mail-host.ts): a backend must not be named by what lookups refuse.
const MailHost = Type.String({ pattern: MAIL_HOST_PATTERN, description: `A mailHost: ${MAIL_HOST_RULE}.` })

export const Account = Type.Object({
  address: Type.String(),
  /** The backend the mailHost names, or null when it names none. */
  backend: Nullable(Type.String()),
  mailHost: Type.String(),
  status: Status,
  aliases: Type.Array(Type.String()),
  sendAs: Type.Array(Type.String()),
  hasPassword: Type.Boolean(),
  moving: Type.Boolean(),
})
export type AccountView = Static<typeof Account>

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
export type NewAccountRequest = Static<typeof AccountCreate>

export const AccountUpdate = Type.Object(
  {
    password: Type.Optional(Nullable(Password)),
    status: Type.Optional(Status),
    aliases: Type.Optional(AddressList),
    sendAs: Type.Optional(SendAsList),
  },
  { additionalProperties: false, minProperties: 1 },
)
export type AccountUpdateRequest = Static<typeof AccountUpdate>

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
export type AccountListRequest = Static<typeof AccountListQuery>

export const AccountPage = Type.Object({ accounts: Type.Array(Account), next: Type.Optional(Type.String()) })

export const Domain = Type.Object({
  name: Type.String(),
  aliasFor: Type.Optional(Type.String()),
  catchAll: Type.Optional(Type.Array(Type.String())),
  affinity: Type.Optional(Type.String()),
})
export type DomainView = Static<typeof Domain>

export const DomainCreate = Type.Object(
  {
    name: DomainName,
    aliasFor: Type.Optional(DomainName),
    catchAll: Type.Optional(Type.Array(AddressText, { minItems: 1, maxItems: 100 })),
    affinity: Type.Optional(BackendId),
  },
  { additionalProperties: false },
)
export type NewDomain = Static<typeof DomainCreate>

/** null clears a field; absent leaves it. */
export const DomainUpdate = Type.Object(
  {
    aliasFor: Type.Optional(Nullable(DomainName)),
    catchAll: Type.Optional(Nullable(Type.Array(AddressText, { minItems: 1, maxItems: 100 }))),
    affinity: Type.Optional(Nullable(BackendId)),
  },
  { additionalProperties: false, minProperties: 1 },
)
export type DomainChanges = Static<typeof DomainUpdate>

export const DomainList = Type.Object({ domains: Type.Array(Domain) })

const Ports = Type.Object({ lmtp: PortNumber, smtp: PortNumber, imap: PortNumber, pop3: PortNumber })
const PortsPatch = Type.Object(
  { lmtp: Type.Optional(PortNumber), smtp: Type.Optional(PortNumber), imap: Type.Optional(PortNumber), pop3: Type.Optional(PortNumber) },
  { additionalProperties: false },
)

const ServiceHealth = Type.Object({
  state: Literals(SERVICE_HEALTH_STATES),
  since: Type.String({ description: 'When the service entered this state (ISO 8601).' }),
  detail: Nullable(Type.String({ description: 'Why it is down: the failed probe.' })),
  instance: Type.String({ description: 'The mailhostd instance (host:pid) whose checks recorded it; the last writer wins.' }),
})
// Object.fromEntries loses the keys' literal types; they are exactly PROBED_SERVICES.
const healthProperties = Object.fromEntries(PROBED_SERVICES.map((s) => [s, Type.Optional(ServiceHealth)])) as Record<ProbedService, TOptional<typeof ServiceHealth>>
const BackendHealth = Type.Object(healthProperties, {
  description: 'The health checks\' recorded state per probed service; empty when none was recorded.',
})
export type BackendHealth = Static<typeof BackendHealth>

const IpAddress = Type.String({ minLength: 2, maxLength: 45, description: 'IP address (proxies need IP literals).' })
const MemberWeight = Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Share of new pins; 0 takes none.' })

/** A pool member as /v1/backends and /v1/pools show it. */
export const PoolMember = Type.Object({
  id: Type.String(),
  address: Type.String(),
  /** Its own where it set them, else the pool's. */
  ports: Ports,
  weight: Type.Integer(),
  adminState: AdminState,
  health: BackendHealth,
})
export type PoolMemberView = Static<typeof PoolMember>

const Director = Type.Object(
  {
    tag: Type.String({ pattern: BACKEND_ID_PATTERN, description: "The director_tag naming this pool in a Dovecot 2.3 director's director_mail_servers." }),
    address: IpAddress,
  },
  { additionalProperties: false, description: 'Dovecot 2.3 director mode: logins answer proxy=y director_tag=<tag>; mail and nginx go to the director at address.' },
)

export const Backend = Type.Object({
  id: Type.String(),
  kind: Literals(BACKEND_KINDS),
  mailHosts: Type.Array(Type.String()),
  /** A host's; a pool has none (its members have theirs). */
  address: Type.Optional(Type.String()),
  route: Route,
  ports: Ports,
  weight: Type.Integer(),
  capacity: Nullable(Type.Integer()),
  adminState: AdminState,
  accounts: Nullable(Type.Integer({ description: 'Accounts on it; null when the directory cannot count them (read-only LDAP).' })),
  health: BackendHealth,
  /** Pools only. */
  members: Type.Optional(Type.Array(PoolMember)),
  pinForMs: Type.Optional(Type.Integer({ description: 'A pool: how long a pin lives after the user\'s last lookup.' })),
  director: Type.Optional(Director),
})
export type BackendView = Static<typeof Backend>

/** A new member: in a new pool's `members`, or POST /v1/pools/:id/members. */
export const MemberCreate = Type.Object(
  {
    id: BackendId,
    address: IpAddress,
    ports: Type.Optional(Type.Object(
      { lmtp: Type.Optional(PortNumber), smtp: Type.Optional(PortNumber), imap: Type.Optional(PortNumber), pop3: Type.Optional(PortNumber) },
      { additionalProperties: false, description: "Where they differ from the pool's ports." },
    )),
    weight: Type.Optional(MemberWeight),
    adminState: Type.Optional(AdminState),
  },
  { additionalProperties: false },
)
export type NewMember = Static<typeof MemberCreate>

export const MemberUpdate = Type.Object({ weight: Type.Optional(MemberWeight), adminState: Type.Optional(AdminState) }, { additionalProperties: false, minProperties: 1 })
export type MemberChanges = Static<typeof MemberUpdate>

const PinFor = Type.String({
  pattern: '^\\s*\\d+\\s*(ms|s|m|h|d)?\\s*$',
  description: 'A pool: how long a user stays on a member after their last lookup, as in the config (90s, 15m, 1h; a bare number is seconds); at least 5s.',
})

const BackendFields = {
  address: IpAddress,
  mailHosts: Type.Optional(Type.Array(MailHost, { maxItems: 32, uniqueItems: true })),
  route: Type.Optional(Route),
  ports: Type.Optional(PortsPatch),
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  capacity: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: INT4_MAX }))),
  adminState: Type.Optional(AdminState),
}

export const BackendCreate = Type.Object(
  {
    id: BackendId,
    kind: Type.Optional(Literals(BACKEND_KINDS)),
    ...BackendFields,
    address: Type.Optional(BackendFields.address),
    members: Type.Optional(Type.Array(MemberCreate, { minItems: 1, maxItems: 256, description: 'A pool only: its members.' })),
    pinFor: Type.Optional(PinFor),
    director: Type.Optional(Director),
  },
  { additionalProperties: false, description: 'A host needs an address; a pool needs members and has no address.' },
)
export type NewBackend = Static<typeof BackendCreate>
export const BackendUpdate = Type.Object(
  { ...BackendFields, address: Type.Optional(BackendFields.address), pinFor: Type.Optional(PinFor), director: Type.Optional(Nullable(Director)) },
  { additionalProperties: false, minProperties: 1 },
)
export type BackendChanges = Static<typeof BackendUpdate>
export const BackendList = Type.Object({ backends: Type.Array(Backend) })

/** A member in a pool's status: what it is, and what the pins and the hash give it. */
export const PoolMemberStatus = Type.Object({
  ...PoolMember.properties,
  /** Whether new pins may go to it: up on every probed service, active, weight above 0. */
  eligible: Type.Boolean(),
  pins: Type.Integer({ description: 'Live pins (users kept on it).' }),
  share: Type.Number({ description: 'Percent of new pins the hash gives it: weight over the eligible members\' total; 0 when not eligible.' }),
})
export const PoolStatus = Type.Object({
  id: Type.String(),
  mailHosts: Type.Array(Type.String()),
  route: Route,
  ports: Ports,
  adminState: AdminState,
  pinForMs: Type.Integer(),
  director: Type.Optional(Director),
  accounts: Nullable(Type.Integer()),
  pins: Type.Integer({ description: 'Live pins in the whole pool.' }),
  members: Type.Array(PoolMemberStatus),
})
export type PoolStatusView = Static<typeof PoolStatus>

export const PoolFlush = Type.Object(
  { member: Type.Optional(BackendId), user: Type.Optional(AddressText) },
  { additionalProperties: false, description: "One member's pins, one user's, or (neither) the whole pool's." },
)
export type FlushRequest = Static<typeof PoolFlush>
export const PoolFlushReply = Type.Object({ dropped: Type.Integer() })

export const MoveUser = Type.Object(
  {
    user: AddressText,
    member: BackendId,
    kick: Type.Optional(Type.Boolean({ description: "Also kick the user's live sessions on the old member (doveadm HTTP API; needs the doveadm config section)." })),
  },
  { additionalProperties: false },
)
export type MoveUserRequest = Static<typeof MoveUser>
export const MoveUserReply = Type.Object({
  user: Type.String({ description: 'The canonical primary address the pin is kept by.' }),
  member: Type.String(),
  previous: Nullable(Type.String({ description: 'The member the store pinned the user to before (live or not); null when none.' })),
  kicked: Type.Optional(Type.Boolean({ description: 'Present when a kick was asked: whether the old member kicked the sessions.' })),
  reason: Type.Optional(Type.String({ description: 'Why no kick was done or why it failed; the move stands either way.' })),
})
export type MoveUserView = Static<typeof MoveUserReply>

export const PinQuery = Type.Object(
  { member: Type.Optional(BackendId), after: Type.Optional(Type.String({ maxLength: 320 })), limit: Limit },
  { additionalProperties: false },
)
export type PinListRequest = Static<typeof PinQuery>
export const Pin = Type.Object({ address: Type.String(), member: Type.String(), explicit: Type.Boolean(), pinnedAt: Type.String(), lastSeen: Type.String() })
export const PinPage = Type.Object({ pins: Type.Array(Pin), next: Type.Optional(Type.String()) })

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
export type MoveView = Static<typeof Move>

export const MoveStart = Type.Object(
  {
    target: BackendId,
    accounts: Type.Optional(Type.Array(AddressText, { minItems: 1, maxItems: 10_000 })),
    fromBackend: Type.Optional(BackendId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
)
export type StartRequest = Static<typeof MoveStart>
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
export type MoveListRequest = Static<typeof MoveListQuery>

export const AuditQuery = Type.Object(
  {
    subjectType: Type.Optional(Literals(SUBJECT_TYPES)),
    subject: Type.Optional(Type.String({ maxLength: 320 })),
    actor: Type.Optional(Type.String({ maxLength: 64 })),
    action: Type.Optional(Type.String({ maxLength: 32 })),
    /** ISO 8601 timestamps, inclusive `since`, exclusive `until`. */
    since: Type.Optional(Type.String({ format: 'date-time' })),
    until: Type.Optional(Type.String({ format: 'date-time' })),
    /** Keyset pagination, newest first: only entries with a smaller id. */
    before: Type.Optional(RowId),
    limit: Limit,
  },
  { additionalProperties: false },
)
export type AuditQuery = Static<typeof AuditQuery>

export const AuditEntry = Type.Object({
  id: Type.Integer(),
  at: Type.String(),
  actor: Type.String(),
  action: Type.String(),
  subjectType: Type.String(),
  subject: Type.String(),
  before: Type.Unknown(),
  after: Type.Unknown(),
})
export type AuditEntry = Static<typeof AuditEntry>
export const AuditPage = Type.Object({ entries: Type.Array(AuditEntry), next: Type.Optional(Type.Integer()) })
