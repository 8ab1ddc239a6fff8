// Backend health in the store: the state of each probed service, written by the instance whose
// checks saw it change, read by every instance (registry), the admin API and the status page.

import type { ProbedService, ServiceHealth } from '../resolve/registry.js'
import type { Queryable } from '../store/store.js'

export interface HealthRecord {
  readonly backend: string
  readonly service: ProbedService
  readonly state: ServiceHealth
  /** ISO 8601: when the service entered this state. */
  readonly since: string
  /** Why it is down (the probe's error), or null. */
  readonly detail: string | null
  /** The instance that recorded it (host:pid). */
  readonly instance: string
}

interface Row {
  backend_id: string
  service: ProbedService
  state: ServiceHealth
  since: Date | string
  detail: string | null
  instance: string
}

export async function healthRecords(db: Queryable): Promise<HealthRecord[]> {
  const { rows } = await db.query<Row>('select backend_id, service, state, since, detail, instance from backend_health order by backend_id, service')
  return rows.map((r) => ({ backend: r.backend_id, service: r.service, state: r.state, since: new Date(r.since).toISOString(), detail: r.detail, instance: r.instance }))
}

/** The states as the registry holds them: backend id -> service -> state. */
export async function loadHealth(db: Queryable): Promise<Map<string, Map<ProbedService, ServiceHealth>>> {
  return (await loadHealthTransitions(db)).states
}

/**
 * The states, and per server when its services last changed state (the latest `since`, as the
 * store's clock wrote it): a server whose mark moved went down or up since it was last read, even
 * if it is up again by now.
 */
export async function loadHealthTransitions(db: Queryable): Promise<{ states: Map<string, Map<ProbedService, ServiceHealth>>; changed: Map<string, string> }> {
  const states = new Map<string, Map<ProbedService, ServiceHealth>>()
  const changed = new Map<string, string>()
  for (const r of await healthRecords(db)) {
    if (!states.has(r.backend)) states.set(r.backend, new Map())
    states.get(r.backend)!.set(r.service, r.state)
    // ISO 8601 in UTC: compared as strings, in time order.
    if ((changed.get(r.backend) ?? '') < r.since) changed.set(r.backend, r.since)
  }
  return { states, changed }
}

/**
 * Records a state the checks settled on (after rise/fall). Returns whether it changed what the
 * store held: only then is `since` moved, and only then need other instances hear of it.
 */
export async function recordHealth(
  db: Queryable,
  r: { backend: string; service: ProbedService; state: ServiceHealth; detail: string | null; instance: string },
): Promise<boolean> {
  const { rows } = await db.query<{ changed: boolean }>(
    `insert into backend_health (backend_id, service, state, detail, instance) values ($1, $2, $3, $4, $5)
     on conflict (backend_id, service) do update set
       since = case when backend_health.state = excluded.state then backend_health.since else now() end,
       detail = excluded.detail, instance = excluded.instance, updated_at = now(),
       state = excluded.state
     returning (xmax = 0 or since = updated_at) as changed`,
    [r.backend, r.service, r.state, r.detail, r.instance],
  )
  return rows[0]?.changed ?? false
}

/** Drops a removed backend's states, so a new backend of the same id starts unprobed. */
export async function forgetHealth(db: Queryable, backend: string): Promise<void> {
  await db.query('delete from backend_health where backend_id = $1', [backend])
}
