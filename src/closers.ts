// What one daemon built, closed in the reverse order of building (as fastify's avvio runs its
// onClose hooks): whatever was built later may use what was built before, never the other way,
// so everything still finds what it needs while it stops. A failing close is logged and the
// rest still close.

import { describeError } from './errors.js'
import type { Logger } from './log.js'

export class Closers {
  readonly #stack: { readonly name: string; readonly close: () => Promise<unknown> | void }[] = []

  /** `close` runs before everything pushed earlier and after everything pushed later. */
  push(name: string, close: () => Promise<unknown> | void): void {
    this.#stack.push({ name, close })
  }

  /** Closes everything pushed so far, newest first; once each. */
  async close(logger: Logger): Promise<void> {
    for (let next = this.#stack.pop(); next !== undefined; next = this.#stack.pop()) {
      try {
        await next.close()
      } catch (e) {
        logger.warn({ err: describeError(e) }, `${next.name} close failed`)
      }
    }
  }
}
