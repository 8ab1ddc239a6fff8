// Drives each line listener of one running daemon with fuzz connections, a batch at a time.
// After every batch: the daemon must still be alive with no crash or error line in its output,
// and a canary (a fresh connection carrying every valid request) must get every answer right.

import type { FuzzDaemon } from './daemon.js'
import { checkExchange } from './check-exchange.js'
import { listenerInput } from './listener-input.js'
import type { ListenerTarget } from './targets.js'
import { exchange, type Address } from './wire-client.js'

export interface ListenerResult {
  readonly listener: string
  readonly connections: number
  readonly frames: number
  readonly hangs: number
  /** Connections whose replies broke an invariant (wrong answer, malformed reply stream). */
  readonly violations: number
  readonly canaries: number
  readonly canaryFailures: number
  /** Longest time from connect to the daemon's close, for connections the fuzzer half-closed. */
  readonly maxMs: number
  /** The same for connections left open, which the daemon's request or idle timeout closes. */
  readonly maxOpenMs: number
  readonly failures: readonly { readonly input: number; readonly why: string }[]
  /** Set when the daemon died or logged a crash: the run stops there. */
  readonly crash?: string
  readonly elapsedMs: number
}

export interface ListenerFuzzOptions {
  readonly seed: number
  readonly frames: number
  readonly boundMs: number
  readonly max: number
  /** Connections open at once. */
  readonly concurrency: number
  /** Connections between health checks and canaries. */
  readonly batch: number
}

const KEEP_FAILURES = 5

export async function fuzzListener(d: FuzzDaemon, target: ListenerTarget, listenerIndex: number, o: ListenerFuzzOptions): Promise<ListenerResult> {
  const started = Date.now()
  const address = d.listeners[target.name]
  if (address === undefined) throw new Error(`the daemon has no ${target.name} listener`)
  const failures: { input: number; why: string }[] = []
  let [connections, frames, hangs, violations, canaries, canaryFailures, maxMs, maxOpenMs] = [0, 0, 0, 0, 0, 0, 0, 0]
  let crash: string | undefined
  let index = 0
  while (frames < o.frames && crash === undefined) {
    const batchEnd = index + o.batch
    const lane = async () => {
      while (index < batchEnd && frames < o.frames) {
        const i = index++
        const input = listenerInput(target, listenerIndex, o.seed, i, o.max)
        frames += input.frames
        connections++
        const x = await exchange(address, input.chunks, input.halfClose, o.boundMs)
        if (input.halfClose) maxMs = Math.max(maxMs, x.ms)
        else maxOpenMs = Math.max(maxOpenMs, x.ms)
        if (x.end === 'bound') hangs++
        const why = checkExchange(target, input, x)
        if (why === undefined) continue
        violations++
        if (failures.length < KEEP_FAILURES) failures.push({ input: i, why })
      }
    }
    await Promise.all(Array.from({ length: o.concurrency }, lane))
    crash = crashOf(d)
    if (crash !== undefined) break
    canaries++
    const why = await canary(address, target, o.boundMs)
    if (why !== undefined) {
      canaryFailures++
      if (failures.length < KEEP_FAILURES) failures.push({ input: -1, why: `canary after connection ${index}: ${why}` })
    }
  }
  return { listener: target.name, connections, frames, hangs, violations, canaries, canaryFailures, maxMs, maxOpenMs, failures, ...(crash ? { crash } : {}), elapsedMs: Date.now() - started }
}

/** Every valid request on one fresh connection, pipelined: each must get its right answer. */
async function canary(address: Address, target: ListenerTarget, boundMs: number): Promise<string | undefined> {
  const bytes = Buffer.concat([...(target.preamble ? [target.preamble] : []), ...target.valid.map((v) => v.bytes)])
  const x = await exchange(address, [bytes], true, boundMs)
  if (x.end === 'bound') return 'no answer within the bound'
  const { replies, bad } = target.replies(x.reply)
  if (bad !== undefined) return bad
  if (replies.length !== target.valid.length) return `${replies.length} replies to ${target.valid.length} requests`
  for (let i = 0; i < replies.length; i++) {
    const wrong = target.valid[i]!.check(replies[i]!)
    if (wrong !== undefined) return `request ${i} answered ${JSON.stringify(replies[i])}, ${wrong}`
  }
  return undefined
}

export function crashOf(d: FuzzDaemon): string | undefined {
  const h = d.health()
  if (!h.alive) return 'the daemon is not running'
  if (h.crashLines.length > 0) return `crash in its output: ${h.crashLines[0]!.slice(0, 300)}`
  if (h.errorLines.length > 0) return `error logged: ${h.errorLines[0]!.slice(0, 300)}`
  return undefined
}
