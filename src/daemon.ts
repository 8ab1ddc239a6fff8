// Wires one mailhostd instance: store (migrated, seeded), registry, directory behind a circuit
// breaker (its type's driver), cache, lookup service, and the listeners. start() builds them in
// one function and resolves once every listener is bound; close() stops the listeners, then
// closes the rest in reverse order of building, so in-flight requests still find their directory.
// reload() applies a changed configuration while running (SIGHUP): the services behind the
// listeners are rebuilt and reached through live() references, listeners move only when their
// address changed, and the cache keeps every answer still valid.

import { mkdirSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, isAbsolute, join } from 'node:path'
import type { Logger } from 'pino'
import { Brakes, type BrakesOptions } from './auth/brakes.js'
import { PasswordPool } from './auth/password-pool.js'
import { LookupCache } from './cache/lookup-cache.js'
import { listingPrimer, resolutionLoader } from './cache/resolution-loader.js'
import { WARMUP_CONCURRENCY, warmUp } from './cache/warmup.js'
import { applicableConfig, diffConfig, touches, type ConfigDiff } from './config/diff.js'
import { toMs } from './config/duration.js'
import type { Config } from './config/schema.js'
import { CircuitBreakerDirectory } from './directory/circuit-breaker.js'
import { InstrumentedDirectory } from './directory/instrumented.js'
import { directoryDriver, type DirectoryDriver, type DriverContext } from './directory/drivers/index.js'
import { startHttp, type HttpLimits } from './http/server.js'
import { live } from './live.js'
import { Metrics, type Labels } from './metrics.js'
import { LoginRouter } from './login/router.js'
import { PolicyEngine } from './policy/engine.js'
import { RateLimiter } from './policy/rate-limiter.js'
import { Lookups } from './resolve/lookup-service.js'
import { Registry, type ProbedService, type ServiceHealth } from './resolve/registry.js'
import { Resolver } from './resolve/resolver.js'
import { DictLogins } from './login/dict-service.js'
import {
  createDictServer,
  createPolicyServer,
  createSocketmapServer,
  createTcpTableServer,
  type ListenerLimits,
  type LineServer,
} from './server/index.js'
import { AccountCounts } from './admin/account-counts.js'
import { createAdmin, type Admin } from './admin/index.js'
import { Presence } from './cluster/presence.js'
import { movingAccounts } from './admin/moves.js'
import { TokenAuth } from './admin/tokens.js'
import { HealthChecker } from './health/checker.js'
import { loadHealthTransitions } from './health/health-repo.js'
import type { ChangeBus, ChangeEvent } from './cluster/changes.js'
import { LocalChangeBus } from './cluster/local-change-bus.js'
import { PgChangeBus } from './cluster/pg-change-bus.js'
import { ListenerSet, type BoundAddress, type ListenerSpec, type RunningListener, type UnboundListener } from './server/listener-set.js'
import { Closers } from './closers.js'
import { registerDaemonGauges } from './daemon-gauges.js'
import { openStore } from './store/open.js'
import { LOOKUP_OUTCOMES, PinLedger } from './pools/pin-ledger.js'
import { doveadmWho } from './pools/doveadm.js'
import { SessionWatch } from './pools/session-watch.js'
import { loadRegistry, seedFromConfig } from './store/registry-repo.js'
import { applySqlFile } from './store/sql-file.js'
import type { Store } from './store/store.js'
import { describeError } from './errors.js'

export interface DaemonOptions {
  /** SQL files applied at every start (idempotent), e.g. the demo directory. */
  readonly seedSql?: readonly string[]
}

export type { BoundAddress }

/** What answers requests: rebuilt from the configuration on reload, behind live() references. */
interface Services {
  readonly lookups: Lookups
  readonly policy: PolicyEngine
  readonly router: LoginRouter
  readonly dict: DictLogins
}

/**
 * What start() builds, whole: every part exists from then until close(), which closes them in the
 * reverse order of building (Closers). Only `services` changes: a reload rebuilds it.
 */
interface Runtime {
  readonly store: Store
  /** Worker threads for the costly password schemes: login checks (SQL, LDAP compare) and admin hashes. */
  readonly passwords: PasswordPool
  /** What the directory driver builds its parts from. */
  readonly context: DriverContext
  /** The directory's calls, measured; readiness asks it when the directory last answered. */
  readonly calls: InstrumentedDirectory
  readonly directory: CircuitBreakerDirectory
  /** The cache's resolver, for the warm-up's bulk mode. */
  readonly resolver: Resolver
  readonly cache: LookupCache
  readonly brakes: Brakes
  readonly bus: ChangeBus
  /** This instance's pool pins; the registry carries it to the routing decision. */
  readonly pins: PinLedger
  /** Reached by the listeners through live(). */
  services: Services
}

export class Daemon {
  readonly metrics = new Metrics()
  #config: Config
  #registry = new Registry([], [])
  /** The directory type's parts (directory.type, a restart-only key). */
  readonly #driver: DirectoryDriver
  /** Set once, when start() has built it whole. */
  #runtime: Runtime | undefined
  /** Everything built so far, to close in reverse. */
  readonly #closers = new Closers()
  /** Rate-limit windows outlive policy rule set changes (a bucket is keyed by its limit). */
  readonly #limiter = new RateLimiter()
  /** The token check of the admin.tokens in force (#auth()). */
  #tokens: { readonly tokens: Config['admin']['tokens']; readonly auth: TokenAuth } | undefined
  /** By name, in the order they were first bound (the `bound` list and the ready log line). */
  readonly #listeners: ListenerSet
  /** The admin side, built with the first HTTP listener (there is no admin API without one). */
  #admin: Admin | undefined
  /** None while health.interval is 0. */
  #health: HealthChecker | undefined
  /** Per server, when its health last changed in the store (the latest read, and the one pins were last checked against). */
  #healthMarks = new Map<string, string>()
  #seenMarks = new Map<string, string>()
  /** None unless cache.warmup. */
  #warmup: { readonly done: Promise<unknown>; readonly stop: AbortController } | undefined
  /** Reloads run one at a time, in the order asked. */
  #reloading: Promise<unknown> = Promise.resolve()
  #closing: Promise<void> | undefined

  constructor(
    config: Config,
    readonly logger: Logger,
    private readonly options: DaemonOptions = {},
  ) {
    this.#config = config
    this.#driver = directoryDriver(config.directory.type)
    this.#listeners = new ListenerSet(logger, this.metrics)
  }

  /** The configuration in force: the start one, then what each reload applied. */
  get config(): Config {
    return this.#config
  }

  /** Where each listener is bound, in start order. */
  get bound(): BoundAddress[] {
    return this.#listeners.bound
  }

  /** When the directory last answered (ms since the epoch), or undefined; readiness reads it. */
  get directoryAnsweredAt(): number | undefined {
    return this.#runtime?.calls.lastAnswerAt
  }

  /**
   * The listeners the configuration asks for that are not bound where it says (a re-bind that
   * failed on reload), with the reason; readiness reads it.
   */
  get unboundListeners(): UnboundListener[] {
    return this.#listeners.unbound(this.#listenerSpecs(this.#config))
  }

  get registry(): Registry {
    return this.#registry
  }

  /** This instance's backend health checks (none while health.interval is 0); states() for metrics. */
  get healthChecks(): HealthChecker | undefined {
    return this.#health
  }

  get directory(): CircuitBreakerDirectory {
    return this.#running().directory
  }

  get store(): Store {
    return this.#running().store
  }

  get cache(): LookupCache {
    return this.#running().cache
  }

  #running(): Runtime {
    if (!this.#runtime) throw new Error('daemon not started')
    return this.#runtime
  }

  /** Builds everything, binds every listener; on any failure closes what was built and throws. */
  async start(): Promise<this> {
    const c = this.config
    try {
      const rt = await this.#build(c)
      this.#runtime = rt
      await this.reloadRegistry()
      registerDaemonGauges(this.metrics, {
        cache: rt.cache,
        directory: rt.directory,
        registry: () => this.#registry,
        config: () => this.#config,
        directoryAnsweredAt: () => this.directoryAnsweredAt,
      })
      await this.#watchChanges(rt)
      // Probes record and announce changes: stopped before the bus and the store close.
      this.#closers.push('health checks', () => this.#health?.stop())
      const sessions = this.#watchSessions(rt)
      this.#closers.push('pool session watch', () => sessions.stop())
      for (const spec of this.#listenerSpecs(c)) await this.#listeners.bind(spec)
    } catch (e) {
      await this.close(0)
      throw e
    }
    this.logger.info({ directory: this.#driver.name, store: this.store.kind, listeners: this.bound }, 'mailhostd ready')
    await this.#startHealthChecks(c)
    if (c.cache.warmup) this.#startWarmup()
    return this
  }

  /** The parts every request needs, in dependency order, each closer pushed as its part is built. */
  async #build(c: Config): Promise<Runtime> {
    const log = this.logger
    const closers = this.#closers
    const store = await openStore(c, log)
    closers.push('store', () => store.close())
    await seedFromConfig(store, c)
    for (const file of this.options.seedSql ?? []) await applySqlFile(store, file)
    // After everything that checks or hashes passwords: ends the worker threads.
    const passwords = this.#startPasswords(c)
    closers.push('password workers', () => passwords.close())
    const context: DriverContext = { store, logger: log, passwords, addresses: c.addresses }
    const calls = new InstrumentedDirectory(this.#driver.lookups(c.directory, context), this.metrics)
    const directory = new CircuitBreakerDirectory(calls, { failureThreshold: c.circuit.failureThreshold, openForMs: toMs(c.circuit.openFor) }, log)
    closers.push('directory', () => directory.close())
    const resolver = new Resolver(directory, () => this.#registry, c.addresses, log)
    const cache = new LookupCache(
      {
        maxEntries: c.cache.maxEntries,
        maxMisses: c.cache.maxMisses,
        ttlMs: toMs(c.cache.ttl),
        negativeTtlMs: toMs(c.cache.negativeTtl),
        maxStaleMs: toMs(c.cache.maxStale),
        directory,
      },
      resolutionLoader(resolver, c.addresses),
    )
    const brakes = new Brakes(brakesOptions(c))
    // Change notifications between instances; started once the runtime is whole (#watchChanges).
    const bus: ChangeBus =
      store.kind === 'postgres' && c.store.url !== undefined
        ? new PgChangeBus({ url: c.store.url, connectTimeoutMs: toMs(c.store.connectTimeout), logger: log, store })
        : new LocalChangeBus({ store, logger: log })
    closers.push('change bus', () => bus.close())
    const pins = this.#startPins(c, store)
    // Before the store: its last refresh tells the store which pins this instance still used.
    closers.push('pool pins', () => pins.close())
    const parts = { store, passwords, context, calls, directory, resolver, cache, brakes, bus, pins }
    return { ...parts, services: this.#buildServices(c, parts) }
  }

  /**
   * Re-reads domains, backends and moving accounts from the store, and drops the cache, whose
   * answers may depend on them. With `keepCacheIfSame`, a registry whose domains and backends did
   * not change leaves the cache alone (a reload that changed something else).
   */
  async reloadRegistry(opts: { keepCacheIfSame?: boolean } = {}): Promise<void> {
    const { domains, backends } = await loadRegistry(this.store)
    const before = this.#registry
    this.#registry = new Registry(domains, backends, await movingAccounts(this.store), await this.#recordedHealth(), this.#running().pins)
    this.#dropPinsOfChangedMembers()
    const same = JSON.stringify([before.domains, before.backends]) === JSON.stringify([domains, backends])
    if (!(opts.keepCacheIfSame === true && same)) this.cache.clear()
    this.logger.info({ domains: domains.length, backends: backends.length, moving: this.#registry.movingCount }, 'registry loaded')
  }

  /**
   * Applies a changed configuration while running (SIGHUP; docs/operations.md): what can change
   * live is applied, keys that need a restart keep their running values and are logged. Returns
   * what changed. Throws when applying failed part-way (the store unreachable for the re-seed);
   * what was applied before stays applied.
   */
  reload(next: Config): Promise<ConfigDiff> {
    const run = this.#reloading.then(() => this.#reload(next))
    this.#reloading = run.catch(() => undefined)
    return run
  }

  /**
   * SIGHUP: reads the configuration again with `load` (the same file and environment as at
   * start) and applies it. An invalid file changes nothing: the running configuration stays and
   * the error names the key at fault. Never throws; the result is also counted in metrics.
   */
  async reloadFrom(load: () => Config): Promise<'applied' | 'invalid' | 'failed'> {
    let result: 'applied' | 'invalid' | 'failed' = 'applied'
    try {
      const next = load()
      try {
        await this.reload(next)
      } catch (e) {
        result = 'failed'
        this.logger.error({ err: describeError(e) }, 'configuration reload failed part-way; what was applied before the failure stays')
      }
    } catch (e) {
      result = 'invalid'
      this.logger.error({ err: describeError(e) }, 'configuration reload: the file is not valid; keeping the running configuration')
    }
    this.metrics.reloads.inc({ result })
    return result
  }

  async #reload(next: Config): Promise<ConfigDiff> {
    const log = this.logger
    const diff = diffConfig(this.#config, next)
    if (this.#closing) {
      log.info('configuration reload skipped: shutting down')
      return diff
    }
    const rt = this.#runtime
    if (!rt) throw new Error('still starting: the configuration is read again only once every listener is bound')
    if (diff.restart.length > 0) {
      log.warn({ keys: diff.restart }, 'configuration reload: these keys take effect only at a restart; they keep their running values')
    }
    const c = applicableConfig(this.#config, next)
    this.#config = c
    if (touches(diff, 'log.level')) this.logger.level = c.log.level
    if (touches(diff, 'cache')) {
      rt.cache.setTimes({ ttlMs: toMs(c.cache.ttl), negativeTtlMs: toMs(c.cache.negativeTtl), maxStaleMs: toMs(c.cache.maxStale) })
    }
    if (touches(diff, 'login.brakes')) rt.brakes.reconfigure(brakesOptions(c))
    // Cheap and stateless (counters and rate windows live outside them): always rebuilt.
    rt.services = this.#buildServices(c, rt)
    await this.#listeners.rebind(this.#listenerSpecs(c), toMs(c.limits.shutdownGrace))
    // Domains and backends from the file, then the registry from the store, as at start.
    await seedFromConfig(rt.store, c)
    await this.reloadRegistry({ keepCacheIfSame: true })
    if (touches(diff, 'health')) await this.#startHealthChecks(c)
    log.info({ changed: diff.live, restartNeeded: diff.restart }, 'configuration reloaded')
    return diff
  }

  /** The password worker pool, sized from `c.passwords` (restart-only keys), with its metrics. */
  #startPasswords(c: Config): PasswordPool {
    const pool = new PasswordPool({
      workers: c.passwords.workers === 0 ? availableParallelism() : c.passwords.workers,
      maxQueue: c.passwords.maxQueue,
      niceness: c.passwords.niceness,
      logger: this.logger.child({ component: 'passwords' }),
      onJob: (operation, outcome) => this.metrics.passwordJobs.inc({ operation, outcome }),
      onSchemeRefused: (scheme) => this.metrics.passwordSchemeRefusals.inc({ scheme }),
    })
    this.metrics.gauge('mailhostd_password_jobs_waiting', 'Password jobs waiting for a worker thread (at most passwords.maxQueue).', () => pool.waiting)
    return pool
  }

  /** The pin ledger (docs/pools.md), refreshing touched pins every second, with its metrics. */
  #startPins(c: Config, store: Store): PinLedger {
    const pins = new PinLedger({
      store,
      logger: this.logger.child({ component: 'pools' }),
      refreshIntervalMs: PIN_REFRESH_MS,
      claimTimeoutMs: toMs(c.lookup.deadline),
      onStoreError: () => this.metrics.poolPinStoreErrors.inc(),
    })
    this.metrics.gauge('mailhostd_pool_local_pins', 'Pool pins this instance holds in memory (live or awaiting their sweep).', () => pins.size)
    this.metrics.labelledCounter(
      'mailhostd_pool_pin_lookups_total',
      `Routing of pooled mailboxes by pool and result: ${LOOKUP_OUTCOMES.join('/')}: pinned (a live pin on this instance, no store round trip), claimed (a pin claimed in the store: kept or new), none-up (no member may take the user), failed (the store did not answer: temporary failure).`,
      ['pool', 'result'],
      () => [...pins.outcomes()].flatMap(([pool, counts]) => LOOKUP_OUTCOMES.map((result): [Labels, number] => [{ pool, result }, counts[result]])),
    )
    pins.start()
    return pins
  }

  /** Keeps the pins of users with live sessions on pool members live (doveadm who; docs/pools.md). */
  #watchSessions(rt: Runtime): SessionWatch {
    const watch = new SessionWatch({
      store: rt.store,
      registry: () => this.#registry,
      active: () => this.#config.doveadm !== undefined,
      who: (address) => doveadmWho(this.#config.doveadm!, address),
      logger: this.logger.child({ component: 'pools' }),
      onSplit: (pool, member, users) => this.metrics.poolSplitUsers.inc({ pool, member }, users),
      onError: () => this.metrics.poolSessionErrors.inc(),
    })
    watch.start()
    return watch
  }

  /** (Re)starts the backend health checks with `c.health`; none while its interval is 0. */
  async #startHealthChecks(c: Config): Promise<void> {
    await this.#health?.stop()
    this.#health = undefined
    const h = c.health
    if (toMs(h.interval) === 0) return
    const { store, bus } = this.#running()
    this.#health = new HealthChecker({
      intervalMs: toMs(h.interval),
      timeoutMs: toMs(h.timeout),
      rise: h.rise,
      fall: h.fall,
      services: h.services,
      registry: () => this.#registry,
      store,
      publish: (change) => bus.publish(change),
      apply: (change) => this.applyChange(change),
      logger: this.logger,
    })
    this.#health.start()
  }

  /** Re-reads only the accounts being moved: maps apply that state to cached resolutions, so the cache stays. */
  async reloadMoves(): Promise<void> {
    this.#registry = this.#registry.withMoving(await movingAccounts(this.store))
    this.logger.debug({ moving: this.#registry.movingCount }, 'moving accounts loaded')
  }

  /** Re-reads only the backends' health states: maps and logins apply them per answer, so the cache stays. */
  async reloadHealth(): Promise<void> {
    this.#registry = this.#registry.withHealth(await this.#recordedHealth())
    this.#dropPinsOfChangedMembers()
  }

  /**
   * A pool member that went down (or down and up again) since the last read loses the local pins
   * to it: while it was down another instance may have pinned its users elsewhere, and a local pin
   * that outlived the outage would send them back beside their new sessions.
   */
  #dropPinsOfChangedMembers(): void {
    const registry = this.#registry
    for (const server of registry.servers) {
      if (server.kind !== 'member') continue
      const mark = this.#healthMarks.get(server.id)
      const seen = this.#seenMarks.get(server.id)
      if (mark !== seen || !registry.isUp(server)) {
        const dropped = this.#running().pins.drop({ pool: server.pool, member: server.id })
        if (dropped > 0) this.logger.info({ pool: server.pool, member: server.id, dropped }, 'pool member changed state: its local pins dropped')
      }
    }
    this.#seenMarks = this.#healthMarks
  }

  /**
   * The states the health checks recorded; none while this instance's checks are off
   * (health.interval 0), so turning them off never leaves an old "down" refusing logins.
   */
  async #recordedHealth(): Promise<Map<string, Map<ProbedService, ServiceHealth>>> {
    if (toMs(this.config.health.interval) === 0) {
      this.#healthMarks = new Map()
      return new Map()
    }
    const { states, changed } = await loadHealthTransitions(this.store)
    this.#healthMarks = changed
    return states
  }

  /** Applies a change from any instance (this one included) to this instance. */
  async applyChange(event: ChangeEvent): Promise<void> {
    switch (event.kind) {
      case 'entries': {
        const evicted = this.cache.invalidateEntries(event.addresses, event.ids)
        this.logger.debug({ addresses: event.addresses.length, ids: event.ids.length, evicted }, 'cache: entries changed')
        return
      }
      case 'moves':
        return this.reloadMoves()
      case 'health':
        return this.reloadHealth()
      case 'registry':
        return this.reloadRegistry()
      case 'pins': {
        const dropped = this.#running().pins.drop(event)
        this.logger.debug({ pool: event.pool, member: event.member, address: event.address, dropped }, 'pool pins dropped')
        return
      }
      case 'resync':
        this.logger.info('change notifications may have been lost: reloading the registry and dropping the cache')
        // Pins too: a flush or move this instance did not hear of would otherwise last a refresh interval.
        this.#running().pins.drop('all')
        return this.reloadRegistry()
    }
  }

  /** Change notifications between instances, and changes made behind mailhostd's back (the driver's watcher). */
  async #watchChanges(rt: Runtime): Promise<void> {
    const { bus, cache } = rt
    bus.subscribe((event) => {
      this.applyChange(event).catch((e: unknown) => this.logger.warn({ change: event.kind, err: describeError(e) }, 'applying a change failed; the cache TTL bounds what it leaves stale'))
    })
    if (bus instanceof PgChangeBus) await bus.start()
    const watcher = this.#driver.watcher(this.config.directory, rt.context, {
      entries: (addresses, ids) => void this.applyChange({ kind: 'entries', addresses, ids }),
      resync: () => cache.clear(),
    })
    if (watcher) {
      watcher.start()
      this.#closers.push('change watcher', () => watcher.stop())
    }
  }

  #buildServices(c: Config, rt: Pick<Runtime, 'cache' | 'directory' | 'brakes'>): Services {
    const log = this.logger
    const deadlineMs = toMs(c.lookup.deadline)
    const lookups = new Lookups({
      registry: () => this.#registry,
      cache: rt.cache,
      addresses: c.addresses,
      routes: c.routing,
      deadlineMs,
      logger: log,
      metrics: this.metrics,
    })
    const policy = new PolicyEngine({ policy: c.policy, resolver: lookups, addresses: c.addresses, logger: log, metrics: this.metrics, limiter: this.#limiter })
    const router = new LoginRouter({
      resolver: lookups,
      registry: () => this.#registry,
      directory: rt.directory,
      brakes: rt.brakes,
      config: c.login,
      deadlineMs,
      logger: log,
      metrics: this.metrics,
    })
    return { lookups, policy, router, dict: new DictLogins(router, c.login.userdb) }
  }

  /** The listeners `c` asks for; their servers reach the current services through live(). */
  #listenerSpecs(c: Config): ListenerSpec[] {
    const log = this.logger
    const limits: ListenerLimits = {
      maxConnections: c.limits.maxConnections,
      maxConnectionsPerClient: c.limits.maxConnectionsPerClient,
      firstRequestTimeoutMs: toMs(c.limits.firstRequestTimeout),
      idleTimeoutMs: toMs(c.limits.idleTimeout),
      requestTimeoutMs: toMs(c.limits.requestTimeout),
      maxRequestBytes: c.limits.maxRequestBytes,
    }
    const services = () => this.#running().services
    const lookup = live(() => services().lookups)
    const specs: ListenerSpec[] = []
    const line = (name: string, address: string, server: () => LineServer) =>
      specs.push({ name, address, open: () => this.#openLine(name, address, server()) })
    if (c.listen.socketmap) {
      const o = c.listen.socketmap
      line('socketmap', `${o.host}:${o.port}`, () => createSocketmapServer({ ...o, lookup, logger: log, limits }))
    }
    for (const t of c.listen.tcpTable) {
      line(`tcp_table ${t.map}`, `${t.host}:${t.port}`, () => createTcpTableServer(t.map, { host: t.host, port: t.port, lookup, logger: log, limits }))
    }
    if (c.listen.policy) {
      const o = c.listen.policy
      line('policy', `${o.host}:${o.port}`, () => createPolicyServer({ ...o, policy: live(() => services().policy), logger: log, limits }))
    }
    if (c.listen.dict) {
      const { path: configured, mode } = c.listen.dict
      const path = isAbsolute(configured) ? configured : join(c.dataDir, configured)
      line('dict', `${path} mode ${mode}`, () => {
        // dataDir exists only if PGlite created it; with PostgreSQL it may be new.
        mkdirSync(dirname(path), { recursive: true, mode: 0o750 })
        return createDictServer({ path, mode: Number.parseInt(mode, 8), logger: log, limits, dict: live(() => services().dict) })
      })
    }
    if (c.listen.http) {
      const { host, port } = c.listen.http
      const address = `${host}:${port}`
      const httpLimits: HttpLimits = { ...limits, idleTimeoutMs: toMs(c.limits.httpIdleTimeout) }
      specs.push({ name: 'http', address, open: () => this.#openHttp(host, port, address, httpLimits) })
    }
    return specs
  }

  async #openLine(name: string, address: string, server: LineServer): Promise<RunningListener> {
    const bound = await server.listen()
    return { address, bound: { name, ...bound }, close: (graceMs) => server.close(graceMs), connections: () => server.connections }
  }

  async #openHttp(host: string, port: number, address: string, limits: HttpLimits): Promise<RunningListener> {
    const rt = this.#running()
    this.#admin ??= await this.#startAdmin(rt)
    const admin = this.#admin
    const login = {
      router: live(() => rt.services.router),
      brakes: rt.brakes,
      resolver: live(() => rt.services.lookups),
      registry: () => this.#registry,
      config: live(() => this.#config.login),
      metrics: this.metrics,
    }
    const http = await startHttp({
      host,
      port,
      limits,
      instance: this,
      lookups: live(() => rt.services.lookups),
      logger: this.logger,
      login,
      admin: { ...admin, auth: live(() => this.#auth()) },
      readEndpoints: () => this.#config.admin.readEndpoints,
    })
    return { address, bound: { name: 'http', ...http.address }, close: () => http.close(), connections: () => http.connections }
  }

  /** The token check of the admin.tokens in force: the one place it is built, again only when a reload changed them. */
  #auth(): TokenAuth {
    const tokens = this.#config.admin.tokens
    if (this.#tokens?.tokens !== tokens) this.#tokens = { tokens, auth: new TokenAuth(tokens) }
    return this.#tokens.auth
  }

  /** The admin side, started; each part closed in the reverse order of building. */
  async #startAdmin(rt: Runtime): Promise<Admin> {
    const c = this.config
    const { writer, terms } = this.#driver.accountWrites(c.directory, rt.context)
    if (writer) this.#closers.push('account writer', () => writer.close())
    // Registered before the admin starts: its recovery tells the dead from the living by it.
    const presence = new Presence({ store: rt.store, url: c.store.url, connectTimeoutMs: toMs(c.store.connectTimeout), logger: this.logger })
    await presence.start()
    // After the hooks were recorded: a clean stop leaves nothing that others would take over.
    this.#closers.push('presence', () => presence.close())
    const admin = createAdmin({
      store: rt.store,
      bus: rt.bus,
      registry: () => this.#registry,
      directory: rt.directory,
      writer,
      terms,
      counts: writer && new AccountCounts(writer),
      config: c,
      logger: this.logger,
      instance: presence,
      apply: (change) => this.applyChange(change),
      passwords: rt.passwords,
    })
    // Hooks first (their moves are recorded as failed in the store), then what feeds the cache.
    this.#closers.push('admin', () => admin.close())
    await admin.start()
    return admin
  }

  /** Loads every mailbox address into the cache in the background (cache.warmup). */
  #startWarmup(): void {
    const c = this.config
    const rt = this.#running()
    const source = this.#driver.mailboxAddresses(c.directory, rt.context)
    const stop = new AbortController()
    const lookups = rt.services.lookups
    const primer = listingPrimer({ resolver: rt.resolver, cache: rt.cache, registry: () => this.#registry, addresses: c.addresses })
    const done = warmUp({
      source,
      resolve: (key, context) => lookups.resolve(key, context),
      primer,
      concurrency: WARMUP_CONCURRENCY,
      logger: this.logger,
      signal: stop.signal,
    })
      .catch((e: unknown) => this.logger.error({ err: describeError(e) }, 'cache warm-up failed'))
      .finally(() => source.close().catch(() => undefined))
    this.#warmup = { done, stop }
  }

  /** Resolves when the cache warm-up has finished (at once when there is none). */
  async warmupDone(): Promise<void> {
    await this.#warmup?.done
  }

  /** Stops accepting, lets in-flight requests finish within graceMs, then releases everything. */
  close(graceMs: number): Promise<void> {
    this.#closing ??= this.#close(graceMs)
    return this.#closing
  }

  async #close(graceMs: number): Promise<void> {
    this.#warmup?.stop.abort()
    // A reload in progress may still bind listeners: let it finish (later ones do nothing).
    await this.#reloading
    await this.#listeners.close(graceMs)
    await this.#warmup?.done
    // Then everything else, newest first: the admin's hooks, presence, health checks, the change
    // watcher and bus, the directory, the password workers, and the store last.
    await this.#closers.close(this.logger)
    this.logger.info('mailhostd stopped')
  }
}

/**
 * How often touched pins are refreshed in the store: the bound on how long a flush or move an
 * instance did not hear of can go unnoticed (docs/pools.md).
 */
const PIN_REFRESH_MS = 1000

function brakesOptions(c: Config): Pick<BrakesOptions, 'windowMs' | 'ip' | 'account' | 'tarpitMs' | 'maxTarpitMs' | 'ipv6Prefix'> {
  const b = c.login.brakes
  return { windowMs: toMs(b.window), ip: b.ip, account: b.account, tarpitMs: toMs(b.tarpit), maxTarpitMs: toMs(b.maxTarpit), ipv6Prefix: b.ipv6Prefix }
}
