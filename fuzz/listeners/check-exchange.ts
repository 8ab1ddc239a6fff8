// What every fuzz connection must show, however damaged its input: an end within the bound
// (a hang otherwise), a reply stream of whole, well-formed replies, right answers to the valid
// requests before the damage, and for an oversized request the listener's too-large answer.

import type { ListenerInput } from './listener-input.js'
import type { ListenerTarget } from './targets.js'
import type { Exchange } from './wire-client.js'

export function checkExchange(target: ListenerTarget, input: ListenerInput, x: Exchange): string | undefined {
  if (x.end === 'bound') return `no answer or close within ${Math.round(x.ms)} ms`
  const { replies, bad } = target.replies(x.reply)
  if (bad !== undefined) return `bad reply stream: ${bad}`
  const n = input.validPrefix.length
  if (replies.length < n) return `${replies.length} replies for ${n} valid requests before the damage`
  for (let i = 0; i < n; i++) {
    const wrong = input.validPrefix[i]!.check(replies[i]!)
    if (wrong !== undefined) return `valid request ${i} answered ${JSON.stringify(replies[i])}, ${wrong}`
  }
  if (input.allValid && replies.length !== n) return `${replies.length} replies for ${n} valid requests`
  if (input.hostileFirst) {
    const expected = target.tooLargeReply === undefined ? [] : [target.tooLargeReply]
    const rest = replies.slice(n)
    if (JSON.stringify(rest) !== JSON.stringify(expected)) return `oversized request answered ${JSON.stringify(rest)}, expected ${JSON.stringify(expected)} and a close`
  }
  return undefined
}
