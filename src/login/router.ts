// Login routing (docs/login.md): which backend a login goes to, and whether it may go at all.
// The name is resolved like any address (rules, cache, directory); it must name exactly one
// mailbox. One lookup deadline bounds the whole request: the resolution, the password check by the
// directory and a pooled user's pin claim each get what the steps before them left of it.
// Directory trouble and a deadline that ran out are a temporary failure, never "unknown user" or
// "wrong password"; the brakes decide before any password is checked, and an attempt they tarpit
// or refuse is never checked.

import type { Logger } from 'pino'
import type { Brakes } from '../auth/brakes.js'
import type { LoginConfig } from '../config/schema.js'
import type { AccountEntry, Directory } from '../directory/directory.js'
import { DeadlineError, ErrorCodes, codeOf, describeError, isMailhostdError } from '../errors.js'
import { LogThrottle } from '../log.js'
import type { Metrics } from '../metrics.js'
import type { KeyResolver } from '../policy/engine.js'
import { accountKey, loginAccount, type LoginAccount } from '../resolve/login-account.js'
import { decide, loginService, settlePins, type Unavailable } from '../resolve/destination.js'
import type { Registry } from '../resolve/registry.js'
import type { Mailbox } from '../resolve/resolver.js'
import type { LoginRequest, LoginResult } from './types.js'

export interface LoginRouterOptions {
  readonly resolver: KeyResolver
  readonly registry: () => Registry
  readonly directory: Pick<Directory, 'verifyPassword'>
  readonly brakes: Brakes
  readonly config: Pick<LoginConfig, 'proxyField' | 'lookupMode'>
  readonly deadlineMs: number
  readonly logger: Logger
  readonly metrics?: Metrics
}

/** Services in which no password is ever typed: a passdb lookup may answer nopassword for them. */
export const PASSWORDLESS_SERVICES: ReadonlySet<string> = new Set(['lmtp', 'doveadm'])

type Failure = Exclude<LoginResult, { result: 'ok' }>

/**
 * What a proxy is told (and logs) when the routing decision says a login cannot go now. decide()
 * never answers not-ip for a login (nginx checks its Auth-Server itself); the record is total.
 */
export const UNAVAILABLE_REASON: Readonly<Record<Unavailable, string>> = {
  'unknown-mailhost': 'backend unavailable (not configured)',
  maintenance: 'backend unavailable (maintenance)',
  down: 'backend unavailable (down)',
  moving: 'account being moved',
  'not-ip': 'backend unavailable (not configured)',
  unpinned: 'backend unavailable (pool pins unavailable)',
}

export class LoginRouter {
  readonly #o: LoginRouterOptions
  readonly #throttle = new LogThrottle(60_000)

  constructor(options: LoginRouterOptions) {
    this.#o = options
  }

  /** A login with a password (Dovecot verify, nginx). `protocol` labels metrics and logs. */
  async verify(req: LoginRequest & { password: string }, protocol: string): Promise<LoginResult> {
    const started = performance.now()
    // Resolve first (usually a cache hit): the brakes count the account, not the typed name, or
    // alice+x@ and alice@<alias domain> would each get their own allowance of guesses.
    const account = await this.#account(req.user)
    const found = this.#mailboxOf(account, 0)
    if ('result' in found && found.result === 'tempfail') return this.#done(protocol, req, found)
    const who = accountKey(account)
    const verdict = this.#o.brakes.check(who, req.remoteIp)
    if (verdict.action !== 'pass') this.#o.metrics?.brakes.inc({ scope: verdict.scope, action: verdict.action })
    const tarpitSeconds = verdict.action === 'tarpit' ? verdict.seconds : 0
    if (verdict.action === 'refuse') {
      return this.#done(protocol, req, { result: 'mismatch', reason: 'too many failed logins', tarpitSeconds: 0, refused: true })
    }
    if ('result' in found) {
      if (found.result === 'unknown') this.#o.brakes.failure(who, req.remoteIp)
      return this.#done(protocol, req, { ...found, tarpitSeconds })
    }
    if (verdict.action === 'tarpit') {
      // Not checked either: a guesser held by the tarpit must not cost a hash per attempt (an
      // Argon2 check is ~60 ms of CPU). Without a check it cannot succeed, so it counts as one
      // more failure, and the tarpit grows towards refusal as it did for wrong passwords.
      this.#o.brakes.failure(who, req.remoteIp)
      return this.#done(protocol, req, { result: 'mismatch', reason: 'too many failed logins', tarpitSeconds })
    }
    let check: 'ok' | 'mismatch'
    try {
      check = await this.#withDeadline(started, (signal) => this.#o.directory.verifyPassword(accountEntry(found.mailbox), req.password, signal))
    } catch (e) {
      return this.#done(protocol, req, this.#tempfail(e, tarpitSeconds))
    }
    if (check === 'mismatch') {
      this.#o.brakes.failure(who, req.remoteIp)
      return this.#done(protocol, req, { result: 'mismatch', reason: 'wrong password', tarpitSeconds })
    }
    this.#o.brakes.success(who, req.remoteIp)
    // No nopassword here: Dovecot's auth cache would remember "no password needed" for this
    // user and let any password in until the entry expires. The proxy forwards the typed one.
    return this.#done(protocol, req, await this.#route(req, found.mailbox, tarpitSeconds, false, started))
  }

  /**
   * A passdb lookup without a password: only for services where none is typed, unless
   * login.lookupMode says the proxies asking are in lookup mode. Then the backends check every
   * password, and answering nopassword for imap or pop3 lets no unchecked password through; without
   * it, such a lookup comes from a non-plaintext mechanism on a proxy that relies on mailhostd's
   * check, and answering would let any password in.
   */
  async lookup(req: LoginRequest & { readonly mode?: 'lookup' }, protocol: string): Promise<LoginResult> {
    if (!this.#o.config.lookupMode && !PASSWORDLESS_SERVICES.has(req.service)) {
      if (req.mode === 'lookup') {
        // A proxy in lookup mode that mailhostd does not serve: a configuration mismatch, not
        // a wrong password. A refusal would make mail clients drop their stored passwords; a
        // temporary failure keeps them until the admin fixes one side.
        this.#throttle.run('lookup-mode-off', (suppressed) =>
          this.#o.logger.error({ service: req.service, suppressed }, 'a Dovecot proxy asks in lookup mode but login.lookupMode is off; its logins fail temporarily'),
        )
        return this.#done(protocol, req, { result: 'tempfail', reason: 'login.lookupMode is off in mailhostd', tarpitSeconds: 0 })
      }
      return this.#done(protocol, req, {
        result: 'mismatch',
        reason: `no password lookups for service ${req.service}: allow only plaintext mechanisms on the proxy (or set login.lookupMode for proxies in lookup mode)`,
        tarpitSeconds: 0,
      })
    }
    return this.route(req, protocol)
  }

  /**
   * Fields without checking a password, for any service: the dict passdb, where Dovecot forwards
   * the typed password to the backend, which checks it. Reachable over HTTP for logins only
   * through lookup() with login.lookupMode on.
   */
  async route(req: LoginRequest, protocol: string): Promise<LoginResult> {
    const started = performance.now()
    const found = this.#mailboxOf(await this.#account(req.user), 0)
    if ('result' in found) return this.#done(protocol, req, found)
    return this.#done(protocol, req, await this.#route(req, found.mailbox, 0, true, started))
  }

  /** The lookup deadline every request is answered within, counted from its start (nginx's smtp routing keeps it too). */
  get deadlineMs(): number {
    return this.#o.deadlineMs
  }

  /** What is left of the deadline of a request that started at `started` (performance.now()); 0 or less: none. */
  #left(started: number): number {
    return this.#o.deadlineMs - (performance.now() - started)
  }

  async #account(user: string): Promise<LoginAccount> {
    return loginAccount(await this.#o.resolver.resolve(user, 'login'), user)
  }

  /** The one mailbox a login name stands for, or why there is none. */
  #mailboxOf(account: LoginAccount, tarpitSeconds: number): { mailbox: Mailbox } | Failure {
    // The detailed reason (server, bind DN) is in our log; proxies log only what we answer.
    if (account.kind === 'failed') return { result: 'tempfail', reason: 'directory unavailable', tarpitSeconds }
    if (account.kind === 'none') return { result: 'unknown', reason: account.reason, tarpitSeconds }
    return { mailbox: account.mailbox }
  }

  async #route(req: LoginRequest, mailbox: Mailbox, tarpitSeconds: number, nopassword: boolean, started: number): Promise<LoginResult> {
    if (mailbox.status === 'disabled') return { result: 'disabled', reason: 'account disabled', tarpitSeconds }
    const registry = this.#o.registry()
    // A pooled user new to this instance: its pin is claimed in the store first (docs/pools.md),
    // within what the resolution and the password check left of the deadline; without a pin by
    // then, decide() answers a temporary failure.
    await settlePins([mailbox], registry, this.#left(started))
    const d = decide(mailbox, { service: loginService(req.service) }, registry)
    if (d.kind !== 'destination') {
      if (d.reason === 'unknown-mailhost') {
        this.#throttle.run(`nobackend:${mailbox.mailHost}`, (suppressed) =>
          this.#o.logger.error({ mailHost: mailbox.mailHost, account: mailbox.address, suppressed }, 'mailHost names no configured backend; logins to it fail temporarily'),
        )
      }
      return { result: 'tempfail', reason: UNAVAILABLE_REASON[d.reason], tarpitSeconds }
    }
    const { address: host, port } = d
    // Director mode (a Dovecot 2.3 director asks): the tag names the pool, the director picks the
    // member, so neither host nor port is given.
    const fields: Record<string, string> = d.directorTag === undefined ? { [this.#o.config.proxyField]: 'y', host } : { [this.#o.config.proxyField]: 'y', director_tag: d.directorTag }
    if (nopassword) fields.nopassword = 'y'
    if (port !== undefined && d.directorTag === undefined) fields.port = String(port)
    if (mailbox.address !== req.user.trim().toLowerCase()) fields.destuser = mailbox.address
    return { result: 'ok', canonical: mailbox.address, host, ...(port === undefined ? {} : { port }), fields, tarpitSeconds }
  }

  /**
   * Answers DeadlineError at the deadline of the request that started at `started`, and aborts
   * `run`'s signal then, so the directory stops working (or waiting for a connection) for a login
   * that has been answered already. With nothing left of the deadline, `run` is not started.
   */
  #withDeadline<T>(started: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const left = this.#left(started)
    if (left <= 0) return Promise.reject(new DeadlineError(this.#o.deadlineMs))
    const abort = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new DeadlineError(this.#o.deadlineMs))
        abort.abort()
      }, left)
    })
    const work = run(abort.signal)
    work.catch(() => undefined) // it may settle after the deadline; never unhandled
    return Promise.race([work, deadline]).finally(() => clearTimeout(timer))
  }

  #tempfail(e: unknown, tarpitSeconds: number): Failure {
    const code = codeOf(e)
    const dataError = isMailhostdError(e) && !e.transient
    const busy = code === ErrorCodes.PASSWORD_BUSY || code === ErrorCodes.PASSWORD_WORKER
    this.#throttle.run(`verify:${code}`, (suppressed) =>
      (dataError ? this.#o.logger.error : this.#o.logger.warn).call(this.#o.logger, { code, reason: describeError(e), suppressed }, 'password check failed; answering temporary failure'),
    )
    return { result: 'tempfail', reason: dataError ? 'stored password unusable' : busy ? 'password checks unavailable' : 'directory unavailable', tarpitSeconds }
  }

  #done(protocol: string, req: LoginRequest, result: LoginResult): LoginResult {
    this.#o.metrics?.logins.inc({ protocol, result: result.result })
    // One object per line, built in place: this runs for every login.
    const { service, user, remoteIp: rip, session } = req
    if (result.result === 'ok') this.#o.logger.info({ protocol, service, user, rip, session, result: result.result, host: result.host, port: result.port }, 'login routed')
    else this.#o.logger.info({ protocol, service, user, rip, session, result: result.result, reason: result.reason, tarpit: result.tarpitSeconds || undefined }, 'login refused')
    return result
  }
}

function accountEntry(m: Mailbox): AccountEntry {
  return { kind: 'account', id: m.id, canonical: m.address, mailHost: m.mailHost, status: m.status, sendAs: m.sendAs }
}
