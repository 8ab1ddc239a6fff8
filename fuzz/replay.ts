// FUZZ_REPLAY='<codec>:<input>': rebuilds one codec input of the run's seed and shows it with
// what the codec made of it, in this process so a debugger or a console.log in src/ sees it.

import { checkInput } from './codec-check.js'
import { codecInput } from './codec-input.js'
import { CODECS } from './codecs/index.js'
import type { Settings } from './settings.js'

export function replay(s: Settings, what: string): boolean {
  const colon = what.lastIndexOf(':')
  const [name, index] = [what.slice(0, colon), Number(what.slice(colon + 1))]
  const codecIndex = CODECS.findIndex((c) => c.name === name)
  if (codecIndex < 0 || !Number.isSafeInteger(index)) throw new Error(`FUZZ_REPLAY=${what}: expected <codec>:<input>, codecs: ${CODECS.map((c) => c.name).join(', ')}`)
  const target = CODECS[codecIndex]!
  const input = codecInput(target, s.seed, codecIndex, index, s.defaultMax)
  console.log(`${name} input ${index} (seed ${s.seed}), limit ${input.max} bytes, ${input.frames} frames`)
  console.log('stream:', JSON.stringify(input.stream.toString('latin1')))
  console.log('chunk sizes:', input.chunks.map((c) => c.length).join(' '))
  console.log('expected before the damage:', input.validPrefix, input.allValid ? '(undamaged)' : '', input.hostileError ?? '')
  console.log('decoded:', target.decode(input.chunks, input.max))
  const r = checkInput(target, input)
  console.log(r.violation === undefined ? 'passes' : `FAILS: ${r.violation}`)
  return r.violation === undefined
}
