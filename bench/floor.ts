// Starts bench/floor-server.mjs as its own process (tracked by the harness, stopped by PID).

import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { start, type Started } from '../test/harness/process.js'

const SERVER = fileURLToPath(new URL('./floor-server.mjs', import.meta.url))

export interface Floor {
  readonly port: number
  readonly proc: Started
  stop(): Promise<void>
}

export async function startFloor(nodeArgs: readonly string[] = []): Promise<Floor> {
  const proc = start(process.execPath, [...nodeArgs, SERVER])
  const deadline = Date.now() + 30_000
  for (;;) {
    const m = /^port (\d+)$/m.exec(proc.output())
    if (m) return { port: Number(m[1]), proc, stop: () => proc.stop('SIGTERM') }
    if (proc.child.exitCode !== null || Date.now() > deadline) {
      await proc.stop('SIGKILL')
      throw new Error(`floor server did not start:\n${proc.output()}`)
    }
    await sleep(25)
  }
}
