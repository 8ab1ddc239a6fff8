// An in-memory LookupService for listener tests: answers from a function, records every call,
// and can hold chosen lookups until the test releases them (a slow directory, on demand).

import type { Answer, LookupResult, LookupService } from '../../src/resolve/answer.js'

export interface Call {
  readonly map: string
  readonly key: string | null
  readonly protocol: string
}

export class FakeLookup implements LookupService {
  readonly calls: Call[] = []
  #answer: (call: Call) => Answer | Promise<Answer>
  readonly #held: (() => void)[] = []
  #holdKeys = new Set<string>()

  constructor(answer: (call: Call) => Answer | Promise<Answer>) {
    this.#answer = answer
  }

  /** Lookups for these keys wait until release() is called. */
  hold(...keys: string[]): void {
    for (const k of keys) this.#holdKeys.add(k)
  }

  /** Lets every held lookup (and any later one for a held key) proceed. */
  release(): void {
    this.#holdKeys.clear()
    for (const go of this.#held.splice(0)) go()
  }

  get waiting(): number {
    return this.#held.length
  }

  async lookup(map: string, key: string | null, protocol: string): Promise<LookupResult> {
    const call = { map, key, protocol }
    this.calls.push(call)
    if (key !== null && this.#holdKeys.has(key)) await new Promise<void>((resolve) => this.#held.push(resolve))
    const answer = await this.#answer(call)
    return { answer, layer: 'rules', elapsedMs: 0 }
  }
}
