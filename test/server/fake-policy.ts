// An in-memory PolicyService for listener and Postfix tests: answers from a function, records
// every request, and can hold chosen recipients' decisions until the test releases them.

import type { PolicyRequest, PolicyService } from '../../src/policy/types.js'

export class FakePolicy implements PolicyService {
  readonly requests: PolicyRequest[] = []
  readonly #decide: (request: PolicyRequest) => string | Promise<string>
  readonly #held: (() => void)[] = []
  readonly #holdRecipients = new Set<string>()

  constructor(decide: (request: PolicyRequest) => string | Promise<string>) {
    this.#decide = decide
  }

  /** Decisions for these recipients wait until release() is called. */
  hold(...recipients: string[]): void {
    for (const r of recipients) this.#holdRecipients.add(r)
  }

  /** Lets every held decision (and any later one for a held recipient) proceed. */
  release(): void {
    this.#holdRecipients.clear()
    for (const go of this.#held.splice(0)) go()
  }

  /** Decisions currently held. */
  get waiting(): number {
    return this.#held.length
  }

  async decide(request: PolicyRequest): Promise<string> {
    this.requests.push(request)
    const recipient = request.get('recipient')
    if (typeof recipient === 'string' && this.#holdRecipients.has(recipient)) {
      await new Promise<void>((resolve) => this.#held.push(resolve))
    }
    return this.#decide(request)
  }
}
