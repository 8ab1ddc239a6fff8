// Waiting for a condition instead of sleeping a fixed time: polls `check` until it gives a
// value, and fails naming what it waited for once the bound has passed.

import { setTimeout as sleep } from 'node:timers/promises'

export async function until<T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`)
    await sleep(50)
  }
}
