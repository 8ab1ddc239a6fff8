// The policy delegation decisions (protocols.md §3): a rule set chosen by policy_context, then
// the sender-login check, the recipient check and the rate limits. Directory trouble always
// defers (DEFER_IF_PERMIT), never rejects; a rejected or deferred message is not counted against
// a rate limit. The directory lookups of one request run concurrently, each within the lookup
// deadline, so the answer comes within the deadline too.

import type { Logger } from 'pino'
import { ipKey } from '../auth/ip-key.js'
import { toMs } from '../config/duration.js'
import type { Config, RuleSetConfig } from '../config/schema.js'
import { LogThrottle } from '../log.js'
import { UNKNOWN_LABEL, type Metrics } from '../metrics.js'
import { canonicalAddress, type AddressOptions } from '../resolve/address.js'
import type { KeyResolution } from '../resolve/lookup-service.js'
import { accountKey, loginAccount, type LoginAccount } from '../resolve/login-account.js'
import { RateLimiter, type Limit, type RateRoom } from './rate-limiter.js'
import * as R from './replies.js'
import { ownsSender } from './sender-owner.js'
import type { PolicyRequest, PolicyService } from './types.js'

export interface KeyResolver {
  resolve(key: string | null, context: string): Promise<KeyResolution>
}

export interface PolicyEngineOptions {
  readonly policy: Config['policy']
  readonly resolver: KeyResolver
  readonly addresses: AddressOptions
  readonly logger: Logger
  readonly metrics?: Metrics
  readonly limiter?: RateLimiter
}

/** How a value that was not valid UTF-8 shows in replies (and counts, for a login). */
const NOT_UTF8 = '(not UTF-8)'

/** Protocol states that concern one message (rate limits and sender checks apply). */
const MESSAGE_STATES = new Set(['MAIL', 'RCPT', 'DATA', 'END-OF-MESSAGE'])

export class PolicyEngine implements PolicyService {
  readonly #o: PolicyEngineOptions
  readonly #limiter: RateLimiter
  readonly #throttle = new LogThrottle(60_000)

  constructor(options: PolicyEngineOptions) {
    this.#o = options
    this.#limiter = options.limiter ?? new RateLimiter()
  }

  async decide(req: PolicyRequest): Promise<string> {
    const context = req.get('policy_context') || this.#o.policy.defaultRuleSet
    const rules = Object.hasOwn(this.#o.policy.ruleSets, context) ? this.#o.policy.ruleSets[context] : undefined
    if (!rules) {
      // One topic for every unknown context: per-context topics would let a peer that invents
      // names write one error line per name.
      this.#throttle.run('unknown-context', (suppressed) =>
        this.#o.logger.error({ policy_context: context, suppressed }, 'policy_context names no rule set in policy.ruleSets; deferring'),
      )
      return this.#done(context, R.unknownContext(context), req, UNKNOWN_LABEL)
    }
    const state = req.get('protocol_state') ?? ''
    // The login is resolved once, for the sender check and the rate limits by sasl_username.
    const login = req.get('sasl_username')
    const usesLogin = rules.senderLogin.check || rules.rateLimits.some((l) => l.by === 'sasl_username')
    // A login that is not valid UTF-8 (null) is a login too: it owns no sender and has a limit.
    const account = login !== undefined && login !== '' && usesLogin && MESSAGE_STATES.has(state) ? this.#account(login) : undefined
    const [sender, recipient] = await Promise.all([this.#senderLogin(rules, state, req, account), this.#recipient(rules, state, req)])
    const verdict = sender ?? recipient ?? (await this.#rateLimit(context, rules, state, req, account)) ?? R.DUNNO
    return this.#done(context, verdict, req)
  }

  async #account(login: string | null): Promise<LoginAccount> {
    return loginAccount(await this.#o.resolver.resolve(login, 'policy login'), login ?? NOT_UTF8)
  }

  async #senderLogin(rules: RuleSetConfig, state: string, req: PolicyRequest, account: Promise<LoginAccount> | undefined): Promise<string | undefined> {
    const login = req.get('sasl_username')
    if (!rules.senderLogin.check || account === undefined || !MESSAGE_STATES.has(state)) return undefined
    const sender = req.get('sender')
    // The null sender (bounces, DSNs) belongs to nobody; no sender attribute, nothing to check.
    if (sender === '' || sender === undefined) return undefined
    const [l, s] = await Promise.all([account, this.#o.resolver.resolve(sender, 'policy sender')])
    if (l.kind === 'failed' || s.kind === 'failed') return R.DIRECTORY_DEFER
    const senderAddr = sender === null ? undefined : canonicalAddress(sender, this.#o.addresses)
    if (l.kind === 'account' && senderAddr?.ok && ownsSender(l.mailbox, senderAddr, s.kind === 'resolved' ? s.resolution : undefined, this.#o.addresses)) {
      return undefined
    }
    return R.senderNotOwned(sender ?? NOT_UTF8, login ?? NOT_UTF8)
  }

  async #recipient(rules: RuleSetConfig, state: string, req: PolicyRequest): Promise<string | undefined> {
    const rcpt = req.get('recipient')
    if (!rules.recipients.check || state !== 'RCPT' || rcpt === '' || rcpt === undefined || rcpt === null) return undefined
    const r = await this.#o.resolver.resolve(rcpt, 'policy recipient')
    // Unserved domains and non-addresses are Postfix's own business (reject_unauth_destination).
    if (r.kind === 'rules') return undefined
    if (r.kind === 'failed') return R.DIRECTORY_DEFER
    if (r.resolution.kind === 'none') return R.UNKNOWN_RECIPIENT
    const { mailboxes, external } = r.resolution
    const allDisabled = mailboxes.length > 0 && external.length === 0 && mailboxes.every((m) => m.status === 'disabled')
    return allDisabled && rules.recipients.disabled === 'reject' ? R.DISABLED_RECIPIENT : undefined
  }

  async #rateLimit(context: string, rules: RuleSetConfig, state: string, req: PolicyRequest, account: Promise<LoginAccount> | undefined): Promise<string | undefined> {
    const instance = req.get('instance')
    if (rules.rateLimits.length === 0 || !MESSAGE_STATES.has(state) || !instance) return undefined
    const limits: (Limit & { by: string; key: string; window: string })[] = []
    for (const l of rules.rateLimits) {
      let counted: { room: RateRoom; key: string; display: string } | undefined
      if (l.by === 'sasl_username') {
        if (account === undefined) continue // unauthenticated session: no sasl_username to count
        // The account, not the name as typed: ALICE@, alice+1@ and alice@<alias domain> are one
        // login. A name that is no account is counted as typed, in a room of its own. While the
        // directory cannot tell which account it is, the message waits (an error is never "no
        // such account", and counting it under the typed name would let variants through).
        counted = accountKey(await account)
        if (counted === undefined) return R.DIRECTORY_DEFER
      } else {
        const value = req.get(l.by)
        if (!value) continue
        // One client however its address is written, as for the login brakes: ::ffff:a.b.c.d is
        // a.b.c.d and IPv6 counts per prefix, or one host would get a fresh counter for every
        // address of its /64. A value that is no IP address (XCLIENT can send anything) is
        // counted as written: still one counter per value, never let through uncounted.
        const key = ipKey(value, l.ipv6Prefix) ?? value
        counted = { room: 'client', key, display: key }
      }
      const window = typeof l.window === 'number' ? `${l.window}s` : l.window.trim()
      limits.push({
        bucket: `${context}\0${l.by}\0${counted.key}\0${l.messages}/${window}`,
        room: counted.room,
        messages: l.messages,
        windowMs: toMs(l.window),
        by: l.by,
        key: counted.display,
        window,
      })
    }
    const broken = this.#limiter.admit(`${context}\0${instance}`, limits)
    if (!broken) return undefined
    return R.rateLimited(broken.by === 'sasl_username' ? 'login' : 'client', broken.key, broken.messages, broken.window)
  }

  /** `label`: the rule set as a metric label, which a policy_context naming none must not be (UNKNOWN_LABEL). */
  #done(ruleSet: string, action: string, req: PolicyRequest, label = ruleSet): string {
    const result = action === R.DUNNO ? 'dunno' : action.startsWith('DEFER') || action.startsWith('4') ? 'defer' : 'reject'
    this.#o.metrics?.policyDecisions.inc({ rule_set: label, result })
    const log = this.#o.logger
    const fields = {
      rule_set: ruleSet,
      state: req.get('protocol_state'),
      client: req.get('client_address'),
      login: req.get('sasl_username') || undefined,
      sender: req.get('sender'),
      recipient: req.get('recipient'),
      action,
    }
    if (result === 'dunno') log.debug(fields, 'policy')
    else log.info(fields, 'policy')
    return action
  }
}
