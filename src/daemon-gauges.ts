// The daemon's gauges and counters read from live objects at scrape time: the cache, the
// directory's circuit, the registry (backend health, moves). Registered once at start; the
// getters follow reloads, which replace the registry and the configuration.

import type { LookupCache } from './cache/lookup-cache.js'
import type { Config } from './config/schema.js'
import type { CircuitBreakerDirectory } from './directory/circuit-breaker.js'
import type { Labels, Metrics } from './metrics.js'
import type { Registry } from './resolve/registry.js'

export interface GaugeSources {
  readonly cache: LookupCache
  readonly directory: CircuitBreakerDirectory
  readonly registry: () => Registry
  readonly config: () => Config
  /** When the directory last answered (ms since the epoch), or undefined. */
  readonly directoryAnsweredAt: () => number | undefined
}

export function registerDaemonGauges(m: Metrics, s: GaugeSources): void {
  const { cache, directory: dir } = s
  m.gauge('mailhostd_cache_entries', 'Entries in the lookup cache (fresh, and expired ones kept as the stale reserve).', () => cache.size)
  m.counter('mailhostd_cache_hits_total', 'Lookups answered by a fresh cache entry.', () => cache.stats.hits)
  m.counter('mailhostd_cache_misses_total', 'Lookups without a fresh cache entry (the directory was asked, or the stale reserve used).', () => cache.stats.misses)
  m.counter('mailhostd_cache_stale_served_total', 'Expired answers served because the directory failed (within cache.maxStale).', () => cache.stats.staleServed)
  m.counter('mailhostd_cache_evictions_total', 'Entries evicted to stay within cache.maxEntries.', () => cache.stats.evictions)
  m.counter('mailhostd_cache_invalidations_total', 'Cached answers dropped by change notifications (admin API, other instances, LDAP polling).', () => cache.stats.invalidated)
  m.gauge('mailhostd_directory_circuit_open', '1 while the directory circuit is open or half-open (the directory is not called, or only for a trial).', () => (dir.state === 'closed' ? 0 : 1))
  m.labelledGauge('mailhostd_directory_circuit_state', 'The directory circuit state: 1 for the current one of closed, open, half-open.', ['state'], () =>
    (['closed', 'open', 'half-open'] as const).map((state): [Labels, number] => [{ state }, dir.state === state ? 1 : 0]),
  )
  m.gauge('mailhostd_directory_last_answer_timestamp_seconds', 'When the directory last answered (Unix time; 0: never since start).', () => (s.directoryAnsweredAt() ?? 0) / 1000)
  m.labelledGauge(
    'mailhostd_backend_up',
    'Per backend (or pool member) and probed service: 1 when usable (health checks, admin state), 0 when down or in maintenance.',
    ['backend', 'service'],
    () => {
      const r = s.registry()
      return r.servers.flatMap((b) => s.config().health.services.map((service): [Labels, number] => [{ backend: b.id, service }, r.isUp(b, service) ? 1 : 0]))
    },
  )
  m.gauge('mailhostd_moves_in_progress', 'Mailboxes being moved between backends.', () => s.registry().movingCount)
}
