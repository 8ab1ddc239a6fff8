// The valid requests each listener is fuzzed around, with the answer each must get: the demo
// case table (test/cases/demo-cases.ts) asked the way each peer asks. The same list is the
// canary sent on a fresh connection after every batch.

import { DEMO_FOUND, DEMO_MISSES, MAILHOST } from '../../test/cases/demo-cases.js'
import { demoClusterConfig, DEMO_ROUTES } from '../../test/e2e/demo-table.js'
import { encodeNetstring } from '../../src/protocols/netstring.js'
import { socketmapReplyPayload } from '../../src/protocols/socketmap.js'
import { hexQuote, tcpTableReplyLine } from '../../src/protocols/tcp-table.js'
import { DISABLED_RECIPIENT, DUNNO, UNKNOWN_RECIPIENT } from '../../src/policy/replies.js'
import { found } from '../../src/resolve/answer.js'

export interface ValidRequest {
  readonly bytes: Buffer
  /** Undefined when the reply is right, else what was expected. */
  check(reply: string): string | undefined
}

const exactly = (want: string) => (got: string) => (got === want ? undefined : `expected ${JSON.stringify(want)}`)
const oneOf = (...want: string[]) => (got: string) => (want.includes(got) ? undefined : `expected one of ${JSON.stringify(want)}`)
const matching = (re: RegExp) => (got: string) => (re.test(got) ? undefined : `expected ${re}`)

/** The demo's disabled account: it still routes mail, but it may not log in (architecture.md §7). */
const DISABLED = 'carol@example.org'

export function socketmapRequests(): ValidRequest[] {
  const ask = (map: string, key: string, check: ValidRequest['check']) => ({ bytes: encodeNetstring(`${map} ${key}`), check })
  const out: ValidRequest[] = []
  for (const c of DEMO_FOUND) {
    out.push(ask('transport', c.key, exactly(socketmapReplyPayload(found(DEMO_ROUTES[c.owner!])))))
    out.push(ask('recipient', c.key, exactly(socketmapReplyPayload(found(MAILHOST[c.owner!])))))
    if (c.alias) out.push(ask('alias', c.key, exactly(socketmapReplyPayload(found(c.alias)))))
    out.push(ask(`local/${c.owner!}`, c.key, c.local ? matching(/^OK ./) : exactly('NOTFOUND ')))
  }
  for (const c of DEMO_MISSES) for (const map of ['transport', 'recipient']) out.push(ask(map, c.key, exactly('NOTFOUND ')))
  return out
}

/** A tcp_table listener answers one map: the route (transport) or the mailHost (recipient). */
export function tcpTableRequests(map: 'transport' | 'recipient'): ValidRequest[] {
  const ask = (key: string, check: ValidRequest['check']) => ({ bytes: Buffer.from(`get ${hexQuote(key)}\n`, 'latin1'), check })
  // The reply without its LF, as replies.ts splits them.
  const line = (value: string) => tcpTableReplyLine(found(value)).slice(0, -1)
  return [
    ...DEMO_FOUND.map((c) => ask(c.key, exactly(line(map === 'transport' ? DEMO_ROUTES[c.owner!] : MAILHOST[c.owner!])))),
    ...DEMO_MISSES.map((c) => ask(c.key, matching(/^500 /))),
  ]
}

/** An RCPT-time request as Postfix 3.7 sends it (protocols.md §3), abridged to what matters. */
function rcpt(recipient: string): Buffer {
  const attrs = ['request=smtpd_access_policy', 'protocol_state=RCPT', 'protocol_name=ESMTP', 'client_address=192.0.2.1', 'sender=sender@example.net', `recipient=${recipient}`, 'instance=fuzz.1', 'policy_context=']
  return Buffer.from(`${attrs.join('\n')}\n\n`)
}

export function policyRequests(): ValidRequest[] {
  const action = (a: string) => `action=${a}`
  return [
    // An existing recipient is no business of the policy service; a disabled one may be refused.
    ...DEMO_FOUND.map((c) => ({ bytes: rcpt(c.key), check: c.key === DISABLED ? oneOf(action(DUNNO), action(DISABLED_RECIPIENT)) : exactly(action(DUNNO)) })),
    // A miss is refused in a served domain and left to Postfix otherwise; never deferred.
    ...DEMO_MISSES.map((c) => ({ bytes: rcpt(c.key), check: oneOf(action(DUNNO), action(UNKNOWN_RECIPIENT)) })),
  ]
}

/** The handshake Dovecot 2.3's dict client sends first (protocols.md §7). */
export const DICT_HELLO = Buffer.from('H3\t2\t0\t\tmailhost\n')

export function dictRequests(): ValidRequest[] {
  const address = new Map((demoClusterConfig().backends as { id: string; address: string }[]).map((b) => [b.id, b.address]))
  const ask = (key: string, check: ValidRequest['check']) => ({ bytes: Buffer.from(`Lshared/passdb/${key}\t${key}\n`), check })
  return [
    // Mailbox addresses log in to their backend; a disabled account and every miss do not.
    ...DEMO_FOUND.filter((c) => c.local).map((c) =>
      ask(c.key, c.key === DISABLED ? exactly('N') : matching(new RegExp(`^O\\{.*"host":"${address.get(c.owner!)!.replaceAll('.', '\\.')}"`))),
    ),
    ...DEMO_MISSES.map((c) => ask(c.key, exactly('N'))),
  ]
}
