// Speaking the policy protocol from the Postfix side in listener tests: build requests, read
// `action=...` replies strictly, start a policy listener on a FakePolicy.

import { setTimeout as sleep } from 'node:timers/promises'
import type { PolicyRequest } from '../../src/policy/types.js'
import { createPolicyServer, type LineServer, type ListenerLimits } from '../../src/server/index.js'
import type { Client } from './client.js'
import { FakePolicy } from './fake-policy.js'
import { capturingLogger, defaultLimits } from './flavors.js'

/** A request as Postfix frames it: `name=value` lines, then an empty line. */
export function policyRequest(attrs: Record<string, string> | readonly (readonly [string, string])[]): Buffer {
  const entries = Array.isArray(attrs) ? attrs : Object.entries(attrs)
  return Buffer.from(entries.map(([name, value]) => `${name}=${value}\n`).join('') + '\n', 'utf8')
}

/** The smallest useful RCPT request. */
export const rcpt = (recipient: string) => policyRequest({ request: 'smtpd_access_policy', protocol_state: 'RCPT', recipient })

/**
 * The next reply's action text. Throws unless the reply is exactly `action=<text>\n\n`, which is
 * all Postfix accepts as a well-formed answer here.
 */
export async function readAction(c: Client, timeoutMs?: number): Promise<string> {
  const reply = await c.read((b) => {
    const end = b.indexOf('\n\n')
    return end < 0 ? -1 : end + 2
  }, timeoutMs)
  const text = reply.toString('utf8')
  if (!/^action=[^\n]*\n\n$/.test(text)) throw new Error(`not a policy reply: ${JSON.stringify(text)}`)
  return text.slice('action='.length, -2)
}

/**
 * Answers by recipient: `no…` unknown, `boom…` rejects, `sleep…` after a short random delay,
 * else `OK <recipient>`; a missing or non-UTF-8 recipient gets `DUNNO no recipient`.
 */
export async function decideByRecipient(request: PolicyRequest): Promise<string> {
  const recipient = request.get('recipient')
  if (typeof recipient !== 'string') return 'DUNNO no recipient'
  if (recipient.startsWith('no')) return `550 5.1.1 unknown ${recipient}`
  if (recipient.startsWith('boom')) throw new Error('bug in the engine')
  if (recipient.startsWith('sleep')) await sleep(Math.random() * 5)
  return `OK ${recipient}`
}

export interface RunningPolicy {
  readonly server: LineServer
  readonly port: number
  readonly policy: FakePolicy
  readonly logLines: () => Record<string, unknown>[]
}

export async function startPolicy(
  limits: Partial<ListenerLimits> = {},
  decide: (request: PolicyRequest) => string | Promise<string> = decideByRecipient,
): Promise<RunningPolicy> {
  const policy = new FakePolicy(decide)
  const { logger, lines } = capturingLogger()
  const server = createPolicyServer({ host: '127.0.0.1', port: 0, policy, logger, limits: { ...defaultLimits, ...limits } })
  const { port } = await server.listen()
  return { server, port, policy, logLines: lines }
}
