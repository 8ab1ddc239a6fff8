// Starting and stopping throwaway peers by PID. Every process a test starts is registered and
// killed when the test process exits, so a failing test never leaves a slapd or Postfix behind.

import { spawn, execFile, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'

const execFileP = promisify(execFile)

export interface RunResult {
  stdout: string
  stderr: string
  code: number
}

/** Runs a command to completion; never throws on a non-zero exit (the caller checks `code`). */
export async function run(
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  if (opts.input !== undefined) return runWithInput(cmd, args, opts)
  try {
    const { stdout, stderr } = await execFileP(cmd, [...args], {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      timeout: opts.timeoutMs ?? 60_000,
      maxBuffer: 16 * 1024 * 1024,
    })
    return { stdout, stderr, code: 0 }
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number | string }
    return { stdout: err.stdout ?? '', stderr: err.stderr ?? String(e), code: typeof err.code === 'number' ? err.code : 127 }
  }
}

function runWithInput(
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, [...args], { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', (e) => {
      clearTimeout(timer)
      resolve({ stdout, stderr: stderr + String(e), code: 127 })
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ stdout, stderr, code: code ?? 128 })
    })
    child.stdin.end(opts.input)
  })
}

/** Like run(), but throws with the command's stderr when it fails. */
export async function mustRun(cmd: string, args: readonly string[], opts: Parameters<typeof run>[2] = {}) {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`)
  return r
}

const live = new Set<number>()
let hooked = false
function killAllOnExit() {
  if (hooked) return
  hooked = true
  process.on('exit', () => {
    for (const pid of live) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        /* already gone */
      }
    }
  })
}

/** Registers a PID (e.g. a daemon that forked and wrote a pid file) for cleanup at exit. */
export function track(pid: number): void {
  killAllOnExit()
  live.add(pid)
}

export function untrack(pid: number): void {
  live.delete(pid)
}

/**
 * True while pid runs. A zombie counts as dead: in containers whose PID 1 does not reap
 * orphans, a stopped daemon can stay a zombie for good, and waiting on it would never end.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** Sends `signal` to pid, waits for it to exit, escalates to SIGKILL after graceMs. */
export async function stopPid(pid: number, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  try {
    process.kill(pid, signal)
  } catch {
    untrack(pid)
    return
  }
  const deadline = Date.now() + graceMs
  while (isAlive(pid) && Date.now() < deadline) await sleep(25)
  if (isAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      /* gone */
    }
    for (let i = 0; i < 200 && isAlive(pid); i++) await sleep(25)
  }
  untrack(pid)
}

export interface Started {
  readonly child: ChildProcess
  readonly pid: number
  /** Everything the process wrote so far (stdout and stderr interleaved). */
  output(): string
  /** Resolves with the exit code once the process ends. */
  readonly exited: Promise<number | null>
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>
}

/** Spawns a long-running process, tracked for cleanup. */
export function start(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Started {
  const child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  if (child.pid === undefined) throw new Error(`could not spawn ${cmd}`)
  const pid = child.pid
  track(pid)
  let out = ''
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  void exited.then(() => untrack(pid))
  return {
    child,
    pid,
    output: () => out,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      await stopPid(pid, signal, graceMs)
      await exited
    },
  }
}
