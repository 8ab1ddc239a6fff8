// The registry's closed sets, each declared once as data. Their TypeScript types, the config and
// admin API schemas, and the SQL that names them derive from these arrays; the store's CHECK
// constraints, written by migrations that cannot change once applied, are held to them by
// test/store/vocabulary.test.ts.

/** active: normal; drain: no new accounts placed; maintenance: treated as down for logins. */
export const ADMIN_STATES = ['active', 'drain', 'maintenance'] as const
export type AdminState = (typeof ADMIN_STATES)[number]

/** Services the health checker probes (config `health.services`); `delivery` is the route's port. */
export const PROBED_SERVICES = ['delivery', 'imap', 'pop3'] as const
export type ProbedService = (typeof PROBED_SERVICES)[number]

/** A backend service's state as the health checker last recorded it. Absent: never probed (up). */
export const SERVICE_HEALTH_STATES = ['up', 'down'] as const
export type ServiceHealth = (typeof SERVICE_HEALTH_STATES)[number]

/** How mail reaches a backend: the protocol of its delivery port. */
export const ROUTE_STYLES = ['lmtp', 'smtp'] as const
export type RouteStyle = (typeof ROUTE_STYLES)[number]

/** A backend id: it names the backend in routes, logs and URLs, so a plain token of 63 at most. */
export const BACKEND_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'

/** host: one server; pool: members sharing storage, each user pinned to one of them (docs/pools.md). */
export const BACKEND_KINDS = ['host', 'pool'] as const
export type BackendKind = (typeof BACKEND_KINDS)[number]
