// What the status page shows, gathered from this instance's live state (the registry it routes
// by, its cache) and from the store (account counts, health records, the audit log). Each part
// read from the store or the directory has its own deadline and its own failure: a page that
// fails whole when the store is down would hide exactly what an operator opened it to see.

import { queryAudit, type AuditEntry } from '../admin/audit.js'
import type { Backends } from '../admin/backends.js'
import { toMs } from '../config/duration.js'
import type { LookupCache } from '../cache/lookup-cache.js'
import type { Config } from '../config/schema.js'
import type { CircuitBreakerDirectory } from '../directory/circuit-breaker.js'
import { withinDeadline } from '../deadline.js'
import { describeError } from '../errors.js'
import { healthRecords, type HealthRecord } from '../health/health-repo.js'
import type { AdminState, BackendInfo, ProbedService, Registry, ServiceHealth } from '../resolve/registry.js'
import type { Store } from '../store/store.js'
import { VERSION } from '../version.js'

/** How many audit entries the page lists, newest first. */
export const AUDIT_ENTRIES = 20

/** What the page needs of the daemon (which has all of it); tests hand in fakes of a failing store. */
export interface StatusDaemon {
  readonly registry: Registry
  readonly cache: Pick<LookupCache, 'size' | 'stats'>
  readonly store: Pick<Store, 'kind' | 'query'>
  readonly config: Pick<Config, 'lookup' | 'health'>
  readonly directory: Pick<CircuitBreakerDirectory, 'kind' | 'state'>
}

export interface ServiceStatus {
  readonly service: ProbedService
  /** `not probed`: no check has recorded a state yet, or probing is off (health.interval 0). */
  readonly state: ServiceHealth | 'not probed'
  /** ISO 8601: when the recorded state began. */
  readonly since?: string
  /** The failed probe's error, for a service that is down. */
  readonly detail?: string
}

export interface BackendStatus {
  readonly id: string
  readonly address: string
  readonly mailHosts: readonly string[]
  readonly adminState: AdminState
  /** Whether this instance sends logins and placements there (Registry.isUp): maintenance counts as down. */
  readonly state: ServiceHealth | 'maintenance' | 'not probed'
  readonly services: readonly ServiceStatus[]
  /** null: not counted (a read-only LDAP directory, or the count failed). */
  readonly accounts: number | null
  readonly capacity: number | null
}

export interface CacheStatus {
  readonly hits: number
  readonly misses: number
  /** hits / (hits + misses); null before the first lookup. */
  readonly hitRate: number | null
  readonly entries: number
  readonly staleServed: number
}

export interface StatusSnapshot {
  /** ISO 8601. */
  readonly generatedAt: string
  readonly version: string
  /** false when health.interval is 0: every service stays `not probed`. */
  readonly probing: boolean
  readonly directory: { readonly kind: string; readonly circuit: string }
  readonly store: string
  readonly backends: readonly BackendStatus[]
  readonly cache: CacheStatus
  /** Accounts being moved (Registry.movingCount). */
  readonly moving: number
  readonly audit: readonly AuditEntry[]
  /** Parts that could not be read, and why; the page shows the rest. */
  readonly problems: { readonly counts?: string; readonly health?: string; readonly audit?: string }
}

export async function statusData(d: StatusDaemon, backends: Pick<Backends, 'list'>, now: Date = new Date()): Promise<StatusSnapshot> {
  // One registry snapshot for the whole page, so states and counts describe the same moment.
  const registry = d.registry
  const deadlineMs = toMs(d.config.lookup.deadline)
  const [counts, records, audit] = await Promise.all([
    attempt(deadlineMs, async () => new Map((await backends.list()).map((b) => [b.id, b.accounts]))),
    attempt(deadlineMs, () => healthRecords(d.store)),
    attempt(deadlineMs, async () => (await queryAudit(d.store, { limit: AUDIT_ENTRIES })).entries),
  ])
  const probing = toMs(d.config.health.interval) > 0
  const cache = d.cache
  const { hits, misses, staleServed } = cache.stats
  const problems: { counts?: string; health?: string; audit?: string } = {}
  if ('error' in counts) problems.counts = counts.error
  if ('error' in records) problems.health = records.error
  if ('error' in audit) problems.audit = audit.error
  return {
    generatedAt: now.toISOString(),
    version: VERSION,
    probing,
    directory: { kind: d.directory.kind, circuit: d.directory.state },
    store: d.store.kind,
    backends: registry.backends.map((b) => {
      const recorded = 'value' in records ? records.value.filter((r) => r.backend === b.id) : []
      return {
        id: b.id,
        address: b.kind === 'pool' ? b.members.map((m) => m.address).join(' ') : b.address,
        mailHosts: b.mailHosts,
        adminState: b.adminState ?? 'active',
        state: backendState(registry, b),
        services: services(registry, b.id, probing ? d.config.health.services : [], recorded),
        accounts: 'value' in counts ? (counts.value.get(b.id) ?? null) : null,
        capacity: b.capacity ?? null,
      }
    }),
    cache: { hits, misses, hitRate: hits + misses === 0 ? null : hits / (hits + misses), entries: cache.size, staleServed },
    moving: registry.movingCount,
    audit: 'value' in audit ? audit.value : [],
    problems,
  }
}

function backendState(registry: Registry, b: BackendInfo): BackendStatus['state'] {
  if (b.adminState === 'maintenance') return 'maintenance'
  if (!registry.isUp(b)) return 'down'
  return registry.healthOf(b.id).size === 0 ? 'not probed' : 'up'
}

/**
 * The configured services, then any other the store has a state for (health.services changed):
 * the state is the registry's, which this instance acts on; since and detail come from the record.
 */
function services(registry: Registry, id: string, configured: readonly ProbedService[], recorded: readonly HealthRecord[]): ServiceStatus[] {
  const states = registry.healthOf(id)
  const names = [...new Set([...configured, ...states.keys()])]
  return names.map((service) => {
    const state = states.get(service)
    if (state === undefined) return { service, state: 'not probed' }
    const r = recorded.find((x) => x.service === service && x.state === state)
    const status: ServiceStatus = { service, state }
    return r === undefined ? status : { ...status, since: r.since, ...(r.detail === null ? {} : { detail: r.detail }) }
  })
}

/** The part's value, or why it could not be had within the deadline. */
async function attempt<T>(ms: number, work: () => Promise<T>): Promise<{ value: T } | { error: string }> {
  try {
    return { value: await withinDeadline(ms, work) }
  } catch (e) {
    return { error: describeError(e) }
  }
}
