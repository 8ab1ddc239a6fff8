// Process trees of daemons that fork (Dovecot, nginx): finding a master's children, stopping
// the master by PID and reaping whatever it leaves, and removing temp dirs if a test crashes.

import { rmSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { isAlive, stopPid, untrack, type Started } from './process.js'

/** PIDs of every running descendant of pid (from /proc), for cleanup after the parent stops. */
export async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>()
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    // Fields after the command name (which may hold spaces and parentheses): state, ppid, ...
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (!parents.has(ppid)) parents.set(ppid, [])
    parents.get(ppid)!.push(Number(name))
  }
  const out: number[] = []
  const walk = (p: number) => {
    for (const c of parents.get(p) ?? []) {
      out.push(c)
      walk(c)
    }
  }
  walk(pid)
  return out
}

/**
 * Waits up to graceMs for pids to exit, then SIGKILLs the rest. Each is untracked afterwards, so
 * the exit hook of process.ts never signals a PID the system has since reused.
 */
export async function reap(pids: readonly number[], graceMs = 5_000): Promise<void> {
  const deadline = Date.now() + graceMs
  for (const pid of pids) {
    while (isAlive(pid) && Date.now() < deadline) await sleep(25)
    if (isAlive(pid)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // exited between the check and the kill
      }
    }
    untrack(pid)
  }
}

// A crashed test must not leave temp dirs behind; processes are killed by process.ts at exit.
const liveDirs = new Set<string>()
let exitHooked = false
export function removeOnExit(dir: string): void {
  liveDirs.add(dir)
  if (exitHooked) return
  exitHooked = true
  process.on('exit', () => {
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
  })
}
export function forget(dir: string): void {
  liveDirs.delete(dir)
}

/** Stops a daemon's master by its PID, then makes sure its children are gone too. */
export async function stopTree(proc: Started): Promise<void> {
  const children = await descendants(proc.pid)
  await stopPid(proc.pid, 'SIGTERM', 10_000)
  await proc.stop()
  await reap(children)
}
