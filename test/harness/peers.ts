// Peers started at a test file's top level: every one is stopped at the end, and also as soon
// as a later start-up throws, because a file that dies at top level never reaches its teardown.

import type { Test } from 'tap'

export interface Stoppable {
  stop(): Promise<void>
}

/** Returns `setUp`, which awaits a starting peer and registers it for stopping. */
export function startedPeers(t: Pick<Test, 'teardown'>) {
  const started: Stoppable[] = []
  const stopAll = () => Promise.all(started.map((s) => s.stop()))
  t.teardown(stopAll)
  return async function setUp<T extends Stoppable>(starting: Promise<T>): Promise<T> {
    try {
      const peer = await starting
      started.push(peer)
      return peer
    } catch (e) {
      await stopAll()
      throw e
    }
  }
}
