// Wires one mailhostd instance: store (migrated, seeded), registry, directory behind a circuit
// breaker, cache, lookup service, and the listeners. start() resolves once every listener is
// bound; close() drains in reverse order so in-flight requests still find their directory.

import { mkdirSync } from 'node:fs'
import { dirname, isAbsolute, join } from 'node:path'
import type { Logger } from 'pino'
import { Brakes } from './auth/brakes.js'
import { LookupCache } from './cache/lookup-cache.js'
import { resolutionLoader } from './cache/resolution-loader.js'
import { toMs } from './config/duration.js'
import type { Config } from './config/schema.js'
import { CircuitBreakerDirectory } from './directory/circuit-breaker.js'
import type { Directory } from './directory/directory.js'
import { LdapDirectory } from './directory/ldap.js'
import { SqlDirectory } from './directory/sql.js'
import { startHttp, type HttpServer } from './http/server.js'
import { Metrics } from './metrics.js'
import { LoginRouter } from './login/router.js'
import { PolicyEngine } from './policy/engine.js'
import { Lookups } from './resolve/lookup-service.js'
import { Registry } from './resolve/registry.js'
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
import { movingAccounts } from './admin/moves.js'
import { loadHealth } from './health/health-repo.js'
import type { ChangeBus, ChangeEvent } from './cluster/changes.js'
import { LocalChangeBus } from './cluster/local-change-bus.js'
import { PgChangeBus } from './cluster/pg-change-bus.js'
import type { AccountWriter } from './directory/accounts.js'
import { LdapAccountWriter } from './directory/ldap-accounts.js'
import { LdapWatcher } from './directory/ldap-watch.js'
import { SqlAccountWriter } from './directory/sql-accounts.js'
import { openStore } from './store/open.js'
import { loadRegistry, seedFromConfig } from './store/registry-repo.js'
import { applySqlFile } from './store/sql-file.js'
import type { Store } from './store/store.js'
import { describeError } from './errors.js'

export interface DaemonOptions {
  /** SQL files applied at every start (idempotent), e.g. the demo directory. */
  readonly seedSql?: readonly string[]
}

export interface BoundAddress {
  readonly name: string
  readonly host: string
  readonly port: number
  /** Unix socket listeners (dict). */
  readonly path?: string
}

export class Daemon {
  readonly metrics = new Metrics()
  readonly bound: BoundAddress[] = []
  #registry = new Registry([], [])
  #store: Store | undefined
  #directory: CircuitBreakerDirectory | undefined
  #cache: LookupCache | undefined
  #servers: LineServer[] = []
  #http: HttpServer | undefined
  #bus: ChangeBus | undefined
  #writer: AccountWriter | undefined
  #watcher: LdapWatcher | undefined
  #admin: Admin | undefined
  #closing: Promise<void> | undefined

  constructor(
    readonly config: Config,
    readonly logger: Logger,
    private readonly options: DaemonOptions = {},
  ) {}

  get registry(): Registry {
    return this.#registry
  }

  get directory(): CircuitBreakerDirectory {
    if (!this.#directory) throw new Error('daemon not started')
    return this.#directory
  }

  get store(): Store {
    if (!this.#store) throw new Error('daemon not started')
    return this.#store
  }

  get cache(): LookupCache {
    if (!this.#cache) throw new Error('daemon not started')
    return this.#cache
  }

  async start(): Promise<this> {
    const c = this.config
    const log = this.logger
    const store = await openStore(c, log)
    this.#store = store
    await seedFromConfig(store, c)
    for (const file of this.options.seedSql ?? []) await applySqlFile(store, file)
    await this.reloadRegistry()

    const inner: Directory = c.directory.type === 'ldap' ? new LdapDirectory(c.directory.ldap!, log) : new SqlDirectory(store)
    this.#directory = new CircuitBreakerDirectory(
      inner,
      { failureThreshold: c.circuit.failureThreshold, openForMs: toMs(c.circuit.openFor) },
      log,
    )
    const resolver = new Resolver(this.#directory, () => this.#registry, c.addresses, log)
    this.#cache = new LookupCache(
      {
        maxEntries: c.cache.maxEntries,
        ttlMs: toMs(c.cache.ttl),
        negativeTtlMs: toMs(c.cache.negativeTtl),
        maxStaleMs: toMs(c.cache.maxStale),
        directory: this.#directory,
      },
      resolutionLoader(resolver, c.addresses),
    )
    this.#registerGauges()
    const lookups = new Lookups({
      registry: () => this.#registry,
      cache: this.#cache,
      addresses: c.addresses,
      routes: c.routing,
      deadlineMs: toMs(c.lookup.deadline),
      logger: log,
      metrics: this.metrics,
    })

    await this.#watchChanges()

    const limits: ListenerLimits = {
      maxConnections: c.limits.maxConnections,
      idleTimeoutMs: toMs(c.limits.idleTimeout),
      requestTimeoutMs: toMs(c.limits.requestTimeout),
      maxRequestBytes: c.limits.maxRequestBytes,
    }
    try {
      if (c.listen.socketmap) {
        await this.#listen('socketmap', createSocketmapServer({ ...c.listen.socketmap, lookup: lookups, logger: log, limits }))
      }
      for (const t of c.listen.tcpTable) {
        await this.#listen(`tcp_table ${t.map}`, createTcpTableServer(t.map, { host: t.host, port: t.port, lookup: lookups, logger: log, limits }))
      }
      if (c.listen.policy) {
        const policy = new PolicyEngine({ policy: c.policy, resolver: lookups, addresses: c.addresses, logger: log, metrics: this.metrics })
        await this.#listen('policy', createPolicyServer({ ...c.listen.policy, policy, logger: log, limits }))
      }
      const b = c.login.brakes
      const brakes = new Brakes({
        windowMs: toMs(b.window),
        ip: b.ip,
        account: b.account,
        tarpitMs: toMs(b.tarpit),
        maxTarpitMs: toMs(b.maxTarpit),
      })
      const router = new LoginRouter({
        resolver: lookups,
        registry: () => this.#registry,
        directory: this.#directory,
        brakes,
        config: c.login,
        deadlineMs: toMs(c.lookup.deadline),
        logger: log,
        metrics: this.metrics,
      })
      if (c.listen.dict) {
        const path = isAbsolute(c.listen.dict.path) ? c.listen.dict.path : join(c.dataDir, c.listen.dict.path)
        // dataDir exists only if PGlite created it; with PostgreSQL it may be new.
        mkdirSync(dirname(path), { recursive: true, mode: 0o750 })
        const dict = new DictLogins(router, c.login.userdb)
        await this.#listen('dict', createDictServer({ path, mode: Number.parseInt(c.listen.dict.mode, 8), logger: log, limits, dict }))
      }
      if (c.listen.http) {
        const login = { router, brakes, resolver: lookups, registry: () => this.#registry, config: c.login, metrics: this.metrics }
        const admin = this.#startAdmin()
        await admin.start()
        this.#http = await startHttp({ ...c.listen.http, daemon: this, lookups, logger: log, login, admin })
        this.bound.push({ name: 'http', ...this.#http.address })
      }
    } catch (e) {
      await this.close(0)
      throw e
    }
    log.info({ directory: c.directory.type, store: store.kind, listeners: this.bound }, 'mailhostd ready')
    return this
  }

  /** Re-reads domains, backends and moving accounts from the store; drops the cache, whose answers may depend on them. */
  async reloadRegistry(): Promise<void> {
    const { domains, backends } = await loadRegistry(this.store)
    this.#registry = new Registry(domains, backends, await movingAccounts(this.store), await loadHealth(this.store))
    this.#cache?.clear()
    this.logger.info({ domains: domains.length, backends: backends.length, moving: this.#registry.movingCount }, 'registry loaded')
  }

  /** Re-reads only the accounts being moved: maps apply that state to cached resolutions, so the cache stays. */
  async reloadMoves(): Promise<void> {
    this.#registry = this.#registry.withMoving(await movingAccounts(this.store))
    this.logger.debug({ moving: this.#registry.movingCount }, 'moving accounts loaded')
  }

  /** Re-reads only the backends' health states: maps and logins apply them per answer, so the cache stays. */
  async reloadHealth(): Promise<void> {
    this.#registry = this.#registry.withHealth(await loadHealth(this.store))
  }

  /** Applies a change from any instance (this one included) to this instance. */
  async applyChange(event: ChangeEvent): Promise<void> {
    switch (event.kind) {
      case 'entries': {
        const evicted = this.#cache?.invalidateEntries(event.addresses, event.ids) ?? 0
        this.logger.debug({ addresses: event.addresses.length, ids: event.ids.length, evicted }, 'cache: entries changed')
        return
      }
      case 'moves':
        return this.reloadMoves()
      case 'health':
        return this.reloadHealth()
      case 'registry':
        return this.reloadRegistry()
      case 'resync':
        this.logger.info('change notifications may have been lost: reloading the registry and dropping the cache')
        return this.reloadRegistry()
    }
  }

  /** Change notifications between instances, and LDAP changes made behind mailhostd's back. */
  async #watchChanges(): Promise<void> {
    const c = this.config
    const store = this.store
    const bus =
      store.kind === 'postgres'
        ? new PgChangeBus({ url: c.store.url!, connectTimeoutMs: toMs(c.store.connectTimeout), logger: this.logger, store })
        : new LocalChangeBus({ store, logger: this.logger })
    this.#bus = bus
    bus.subscribe((event) => {
      this.applyChange(event).catch((e: unknown) => this.logger.warn({ change: event.kind, err: describeError(e) }, 'applying a change failed; the cache TTL bounds what it leaves stale'))
    })
    if (bus instanceof PgChangeBus) await bus.start()
    const ldap = c.directory.type === 'ldap' ? c.directory.ldap! : undefined
    if (ldap && toMs(ldap.pollInterval) > 0) {
      this.#watcher = new LdapWatcher(
        ldap,
        c.addresses,
        this.logger,
        (addresses, ids) => void this.applyChange({ kind: 'entries', addresses, ids }),
        // More changed entries than one poll could read: which keys they touched is unknown.
        { onResync: () => this.#cache?.clear() },
      )
      this.#watcher.start()
    }
  }

  #startAdmin(): Admin {
    const c = this.config
    const ldap = c.directory.type === 'ldap' ? c.directory.ldap! : undefined
    this.#writer = ldap === undefined ? new SqlAccountWriter(this.store) : ldap.admin ? new LdapAccountWriter(ldap, this.logger) : undefined
    this.#admin = createAdmin({
      store: this.store,
      bus: this.#bus!,
      registry: () => this.#registry,
      directory: this.directory,
      writer: this.#writer,
      counts: this.#writer && new AccountCounts(this.#writer),
      config: c,
      logger: this.logger,
      apply: (change) => this.applyChange(change),
    })
    return this.#admin
  }

  async #listen(name: string, server: LineServer): Promise<void> {
    this.#servers.push(server)
    const addr = await server.listen()
    this.bound.push({ name, ...addr })
    this.metrics.trackConnections(name, () => server.connections)
  }

  #registerGauges(): void {
    const cache = this.#cache!
    const dir = this.#directory!
    this.metrics.gauge('mailhostd_cache_entries', 'Entries in the lookup cache.', () => cache.size)
    this.metrics.gauge('mailhostd_cache_hits', 'Fresh cache hits since start.', () => cache.stats.hits)
    this.metrics.gauge('mailhostd_cache_misses', 'Cache misses since start.', () => cache.stats.misses)
    this.metrics.gauge('mailhostd_cache_stale_served', 'Stale answers served since start.', () => cache.stats.staleServed)
    this.metrics.gauge('mailhostd_cache_evictions', 'Entries evicted for space since start.', () => cache.stats.evictions)
    this.metrics.gauge('mailhostd_directory_circuit_open', '1 while the directory circuit is open.', () => (dir.state === 'closed' ? 0 : 1))
  }

  /** Stops accepting, lets in-flight requests finish within graceMs, then releases everything. */
  close(graceMs: number): Promise<void> {
    this.#closing ??= this.#close(graceMs)
    return this.#closing
  }

  async #close(graceMs: number): Promise<void> {
    const results = await Promise.allSettled([
      ...this.#servers.map((s) => s.close(graceMs)),
      ...(this.#http ? [this.#http.close()] : []),
    ])
    for (const r of results) if (r.status === 'rejected') this.logger.warn({ err: String(r.reason) }, 'listener close failed')
    // Hooks first (their moves are recorded as failed in the store), then what feeds the cache.
    await this.#admin?.close().catch((e: unknown) => this.logger.warn({ err: describeError(e) }, 'admin close failed'))
    this.#watcher?.stop()
    await this.#bus?.close().catch((e: unknown) => this.logger.warn({ err: describeError(e) }, 'change bus close failed'))
    await this.#writer?.close().catch((e: unknown) => this.logger.warn({ err: describeError(e) }, 'account writer close failed'))
    await this.#directory?.close().catch((e: unknown) => this.logger.warn({ err: String(e) }, 'directory close failed'))
    await this.#store?.close().catch((e: unknown) => this.logger.warn({ err: String(e) }, 'store close failed'))
    this.logger.info('mailhostd stopped')
  }
}
