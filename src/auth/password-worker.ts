// One worker thread of password-pool.ts: computes the jobs it is sent, one at a time, with the
// same functions the calling thread would use, and posts each result or error back.

import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import type { PasswordJob, PasswordReply, WorkerError } from './password-pool.js'
import { hashPassword, verifyPassword } from './passwords.js'
import { UnsupportedSchemeError } from './scheme-support.js'

/** What the pool tells each worker at its start. */
export interface PasswordWorkerData {
  /** How much nicer than the daemon this thread runs (password-pool.ts). */
  readonly niceness: number
}

lowerPriority((workerData as PasswordWorkerData | undefined)?.niceness ?? 0)
const port = parentPort!
port.on('message', (job: PasswordJob) => void run(job))

async function run(job: PasswordJob): Promise<void> {
  let reply: PasswordReply
  try {
    const value = job.op === 'verify' ? await verifyPassword(job.stored, job.plain) : await hashPassword(job.plain, job.scheme)
    reply = { id: job.id, ok: true, value }
  } catch (e) {
    reply = { id: job.id, ok: false, error: toReply(e) }
  }
  port.postMessage(reply)
}

function toReply(e: unknown): WorkerError {
  if (e instanceof UnsupportedSchemeError) return { kind: 'scheme', scheme: e.scheme, problem: e.problem }
  if (e instanceof RangeError) return { kind: 'range', message: e.message }
  return { kind: 'other', message: e instanceof Error ? e.message : String(e) }
}

/**
 * Linux keeps a nice value per thread, and setpriority() given a thread id sets only that
 * thread's: /proc/thread-self names this one. Elsewhere the workers keep the daemon's priority.
 */
function lowerPriority(by: number): void {
  if (by <= 0) return
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + by))
  } catch {
    // No /proc (another OS) or not permitted: the same work at the same priority.
  }
}
