// Prometheus metrics. One registry per daemon (not prom-client's global) so tests can run
// several instances in one process.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Layer } from './resolve/answer.js'

export class Metrics {
  readonly registry = new Registry()
  readonly lookups = new Counter({
    name: 'mailhostd_lookups_total',
    help: 'Lookups by protocol, map, outcome (found/notfound/temp/perm) and answering layer.',
    labelNames: ['protocol', 'map', 'outcome', 'layer'] as const,
    registers: [this.registry],
  })
  readonly lookupSeconds = new Histogram({
    name: 'mailhostd_lookup_duration_seconds',
    help: 'Time from request to answer, per protocol.',
    labelNames: ['protocol'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  })
  readonly policyDecisions = new Counter({
    name: 'mailhostd_policy_decisions_total',
    help: 'Policy delegation answers by rule set and result (dunno/reject/defer).',
    labelNames: ['rule_set', 'result'] as const,
    registers: [this.registry],
  })
  readonly logins = new Counter({
    name: 'mailhostd_login_total',
    help: 'Login routing answers by protocol (dovecot, nginx, dict) and result.',
    labelNames: ['protocol', 'result'] as const,
    registers: [this.registry],
  })
  readonly brakes = new Counter({
    name: 'mailhostd_brakes_total',
    help: 'Brute-force brakes applied, by scope (ip, account) and action (tarpit, refuse).',
    labelNames: ['scope', 'action'] as const,
    registers: [this.registry],
  })
  readonly #connectionSources = new Map<string, () => number>()
  readonly openConnections = new Gauge({
    name: 'mailhostd_open_connections',
    help: 'Open client connections per listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [listener, read] of this.#connectionSources) this.openConnections.set({ listener }, read())
    },
  })

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry })
  }

  /** Gauges whose value is read from a live object at scrape time. */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read())
      },
    })
  }

  trackConnections(listener: string, read: () => number): void {
    this.#connectionSources.set(listener, read)
  }

  recordLookup(protocol: string, map: string, outcome: string, layer: Layer, seconds: number): void {
    this.lookups.inc({ protocol, map, outcome, layer })
    this.lookupSeconds.observe({ protocol }, seconds)
  }
}
