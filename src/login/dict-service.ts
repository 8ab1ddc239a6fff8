// The dict protocol's keys (docs/login.md): `shared/passdb/[<service>/]<user>` answers the proxy
// fields with nopassword (Dovecot forwards the typed password; the backend checks it), and
// `shared/userdb/<user>` the canonical user plus the configured static fields. The service
// segment (Dovecot's %s in the key template) lets the answer carry the backend's port for it.

import type { LoginRouter } from './router.js'
import type { DictAnswer, DictService } from './types.js'

/** Services Dovecot may put before the user in a passdb key. */
const SERVICES: ReadonlySet<string> = new Set(['imap', 'pop3', 'lmtp', 'submission', 'sieve', 'managesieve', 'doveadm'])

export class DictLogins implements DictService {
  constructor(
    private readonly router: LoginRouter,
    private readonly userdbFields: Readonly<Record<string, string>>,
  ) {}

  async lookup(key: string): Promise<DictAnswer> {
    const m = /^shared\/(passdb|userdb)\/(.+)$/s.exec(key)
    // An unexpected key is a configuration mistake in dovecot-dict-auth.conf.ext: fail loudly
    // (temporary failure) rather than answer "unknown user".
    if (!m) return { kind: 'fail', reason: `mailhostd serves shared/passdb/... and shared/userdb/... keys, not ${key.slice(0, 64)}` }
    const [, db, rest] = m as unknown as [string, 'passdb' | 'userdb', string]
    const slash = rest.indexOf('/')
    const service = db === 'passdb' && slash > 0 && SERVICES.has(rest.slice(0, slash)) ? rest.slice(0, slash) : 'dict'
    const user = service === 'dict' ? rest : rest.slice(slash + 1)
    const r = await this.router.route({ user, service }, 'dict')
    if (r.result === 'tempfail') return { kind: 'fail', reason: r.reason }
    if (r.result !== 'ok') return { kind: 'notfound' }
    if (db === 'passdb') return { kind: 'found', value: JSON.stringify(r.fields) }
    return { kind: 'found', value: JSON.stringify({ user: r.canonical, ...expand(this.userdbFields, r.canonical) }) }
  }
}

/** %u the canonical address, %n its local part, %d its domain, %% a percent sign. */
export function expand(fields: Readonly<Record<string, string>>, user: string): Record<string, string> {
  const at = user.lastIndexOf('@')
  const vars: Record<string, string> = { u: user, n: at < 0 ? user : user.slice(0, at), d: at < 0 ? '' : user.slice(at + 1), '%': '%' }
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.replace(/%([und%])/g, (_, c: string) => vars[c]!)]))
}
