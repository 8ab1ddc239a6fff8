// Prometheus metrics. One registry per daemon (not prom-client's global) so tests can run
// several instances in one process. docs/operations.md lists every name and what it means.
//
// Counts kept by other objects (the cache's statistics) are exposed as counters read at scrape
// time, so the objects need not know about Prometheus; those sources only ever grow.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { PASSWORD_JOB_OUTCOMES, PASSWORD_OPERATIONS } from './auth/password-pool.js'
import { ErrorCodes } from './errors.js'
import type { Layer } from './resolve/answer.js'

/** Buckets for request and directory latencies: sub-millisecond cache hits to multi-second timeouts. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export type Labels = Record<string, string>

/**
 * The label value for a name a peer sent that names nothing configured (a socketmap map, a
 * policy_context). Every label value must come from a closed set: one series per name a client
 * makes up would grow /metrics, and the registry's memory, without bound. The parentheses keep it
 * apart from every real name (map names and rule set names cannot contain them).
 */
export const UNKNOWN_LABEL = '(unknown)'

/** A counter with labels, registered in `registry` (not prom-client's global one). */
function labelledCounter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  return new Counter({ name, help, labelNames, registers: [registry] })
}

/** A latency histogram in seconds with LATENCY_BUCKETS, registered in `registry`. */
function latencyHistogram<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Histogram<L> {
  return new Histogram({ name, help, labelNames, buckets: LATENCY_BUCKETS, registers: [registry] })
}

type Observer = { observe(value: number): void }
type Incrementer = { inc(value?: number): void }

export class Metrics {
  readonly registry = new Registry()
  readonly lookups = labelledCounter(this.registry, 'mailhostd_lookups_total', 'Lookups by protocol, map, outcome (found/notfound/temp/perm) and answering layer (cache/stale/directory/rules/none); stale answers are layer="stale", names that are no map map="(unknown)".', ['protocol', 'map', 'outcome', 'layer'])
  readonly lookupSeconds = latencyHistogram(this.registry, 'mailhostd_lookup_duration_seconds', 'Time from request to answer, per protocol.', ['protocol'])
  readonly directoryCallSeconds = latencyHistogram(this.registry, 'mailhostd_directory_call_duration_seconds', 'Directory calls (find, verify_password, ping) by directory, operation and result (ok/error); calls the circuit breaker refused are not made and not counted.', ['directory', 'operation', 'result'])
  readonly directoryErrors = labelledCounter(this.registry, 'mailhostd_directory_errors_total', `Failed directory calls by directory, operation and error code (${ErrorCodes.DIRECTORY_UNAVAILABLE}, ${ErrorCodes.DIRECTORY_TIMEOUT}, ${ErrorCodes.DUPLICATE_OWNER}, ...).`, ['directory', 'operation', 'code'])
  readonly policyDecisions = labelledCounter(this.registry, 'mailhostd_policy_decisions_total', 'Policy delegation answers by rule set and result (dunno/reject/defer); a policy_context naming no rule set is rule_set="(unknown)".', ['rule_set', 'result'])
  readonly logins = labelledCounter(this.registry, 'mailhostd_login_total', 'Login routing answers by protocol (dovecot, nginx, dict) and result (ok/mismatch/unknown/disabled/tempfail/invalid); wrong passwords are result="mismatch", nginx requests refused for their headers result="invalid".', ['protocol', 'result'])
  readonly brakes = labelledCounter(this.registry, 'mailhostd_brakes_total', 'Brute-force brakes applied, by scope (ip, account) and action (tarpit, refuse).', ['scope', 'action'])
  readonly passwordJobs = labelledCounter(this.registry, 'mailhostd_password_jobs_total', `Password checks and hashes handed to the worker threads (Argon2, bcrypt, SHA-crypt), by operation (${PASSWORD_OPERATIONS.join('/')}) and outcome (${PASSWORD_JOB_OUTCOMES.join('/')}): busy = queue full, answered with a temporary failure at once; crashed = its worker died (temporary failure, worker replaced); abandoned = its caller stopped waiting.`, ['operation', 'outcome'])
  readonly passwordSchemeRefusals = labelledCounter(this.registry, 'mailhostd_password_scheme_refusals_total', 'Password checks refused because the stored value is in a scheme or crypt method mailhostd does not verify (DES crypt, MD4, ...) or is malformed, by scheme (Dovecot\'s name; none = no prefix, other = a name Dovecot does not know). Each was answered with a temporary failure, never "wrong password"; the log names the fault once per scheme and hour.', ['scheme'])
  readonly poolPinStoreErrors = new Counter({ name: 'mailhostd_pool_pin_store_errors_total', help: 'Pin claims and refreshes the store failed or did not answer in time (docs/pools.md).', registers: [this.registry] })
  readonly poolSplitUsers = labelledCounter(this.registry, 'mailhostd_pool_split_users_total', 'Users found with live sessions (doveadm who) on a pool member while pinned to another: each is a user on two members; kick them (docs/pools.md).', ['pool', 'member'])
  readonly poolSessionErrors = new Counter({ name: 'mailhostd_pool_session_watch_errors_total', help: "A pool member's doveadm HTTP API did not list its sessions (config doveadm).", registers: [this.registry] })
  readonly reloads = labelledCounter(this.registry, 'mailhostd_config_reloads_total', 'Configuration reloads (SIGHUP) by result: applied, invalid (the file did not validate; nothing changed) or failed (applied in part).', ['result'])
  readonly #connectionSources = new Map<string, () => number>()

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry })
    // A listener removed by a reload disappears from the series instead of freezing.
    this.labelledGauge('mailhostd_open_connections', 'Open client connections per listener.', ['listener'], () =>
      [...this.#connectionSources].map(([listener, read]): [Labels, number] => [{ listener }, read()]),
    )
    // A closed set: every series from the start, so rates and alerts see zeros, not gaps.
    for (const operation of PASSWORD_OPERATIONS) for (const outcome of PASSWORD_JOB_OUTCOMES) this.passwordJobs.inc({ operation, outcome }, 0)
  }

  /** A gauge whose value is read from a live object at scrape time. */
  gauge(name: string, help: string, read: () => number): void {
    this.#readAtScrape(Gauge, name, help, [], () => [[{}, read()]])
  }

  /**
   * A counter with one series per label set, its totals read at scrape time from a source that
   * counts in plain numbers (a hot path that must not pay for prom-client's label lookup).
   */
  labelledCounter(name: string, help: string, labelNames: readonly string[], read: () => Iterable<readonly [Labels, number]>): void {
    this.#readAtScrape(Counter, name, help, labelNames, read)
  }

  /**
   * A gauge with one series per label set, all read at scrape time; series the source no longer
   * yields (a backend removed from the registry) disappear.
   */
  labelledGauge(name: string, help: string, labelNames: readonly string[], read: () => Iterable<readonly [Labels, number]>): void {
    this.#readAtScrape(Gauge, name, help, labelNames, read)
  }

  /** A counter whose total is kept elsewhere (it must never decrease) and read at scrape time. */
  counter(name: string, help: string, read: () => number): void {
    this.#readAtScrape(Counter, name, help, [], () => [[{}, read()]])
  }

  /**
   * The one way a metric kept elsewhere is exposed: at each scrape every series is dropped and
   * written again from `read` (an unlabelled one as the label set {}). Adding to a series just
   * reset sets it, so counters and gauges share this; a counter's source must never decrease.
   */
  #readAtScrape(Metric: typeof Counter | typeof Gauge, name: string, help: string, labelNames: readonly string[], read: () => Iterable<readonly [Labels, number]>): void {
    const metric: { reset(): void; inc(labels: Labels, value: number): void } = new Metric({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect: () => {
        metric.reset()
        for (const [labels, value] of read()) metric.inc(labels, value)
      },
    })
  }

  /** Reports a listener's open connections under `listener` until untrackConnections. */
  trackConnections(listener: string, read: () => number): void {
    this.#connectionSources.set(listener, read)
  }

  untrackConnections(listener: string): void {
    this.#connectionSources.delete(listener)
  }

  /**
   * Label-bound series of the lookup metrics, made on first use: every lookup records into
   * them, and looking them up here is cheaper than prom-client's label objects per call. As
   * many as the series themselves (prom-client keeps one per label set anyway).
   */
  readonly #lookupSeries = new Map<string, { readonly seconds: Observer; readonly counts: Map<string, Map<string, Incrementer>> }>()

  /** `map` must be a valid map name or UNKNOWN_LABEL (see there); `protocol` one of ours. */
  recordLookup(protocol: string, map: string, outcome: string, layer: Layer, seconds: number): void {
    let p = this.#lookupSeries.get(protocol)
    if (p === undefined) this.#lookupSeries.set(protocol, (p = { seconds: this.lookupSeconds.labels({ protocol }), counts: new Map() }))
    let byMap = p.counts.get(map)
    if (byMap === undefined) p.counts.set(map, (byMap = new Map<string, Incrementer>()))
    const outcomeLayer = `${outcome}/${layer}`
    let count = byMap.get(outcomeLayer)
    if (count === undefined) byMap.set(outcomeLayer, (count = this.lookups.labels({ protocol, map, outcome, layer })))
    count.inc()
    p.seconds.observe(seconds)
  }
}
