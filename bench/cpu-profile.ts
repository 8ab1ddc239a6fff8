// Top frames by self time from a V8 .cpuprofile (what `node --cpu-prof` writes on exit): the
// sampled stack tops, with the time between samples attributed to the frame that was on top.
// Frames are merged by function, file and line, since one function appears as many call-tree
// nodes. Used to explain a missed target in docs/benchmarks.md.

import { readFileSync, readdirSync } from 'node:fs'
import { join, relative } from 'node:path'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
}
export interface CpuProfile {
  nodes: ProfileNode[]
  /** Microseconds on the monotonic clock, the one process.hrtime reads in every process. */
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

/**
 * A span of the monotonic clock in microseconds (process.hrtime.bigint() / 1000n in any
 * process on the machine): only samples taken inside it count, so the daemon's start-up and
 * warm-up stay out of a workload's profile.
 */
export interface Window {
  readonly fromUs: number
  readonly toUs: number
}

export const nowUs = () => Number(process.hrtime.bigint() / 1000n)

/** Calls f(nodeId, microseconds) for every sample inside the window (any of them, when several). */
function eachSample(profile: CpuProfile, window: Window | readonly Window[] | undefined, f: (id: number, us: number) => void): void {
  const windows = window === undefined ? undefined : 'fromUs' in window ? [window] : window
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i] ?? 0
    t += us
    if (windows && !windows.some((w) => t >= w.fromUs && t <= w.toUs)) continue
    f(profile.samples[i]!, us)
  }
}

export interface Frame {
  /** e.g. `writeGeneric node:internal/stream_base_commons:152` or `(garbage collector)`. */
  readonly name: string
  readonly selfMs: number
  /** Share of all sampled time, 0..100. */
  readonly percent: number
}

/** A file URL relative to the project (dependencies from node_modules/, wherever that lives). */
function shortUrl(url: string, root: string): string {
  const dep = url.lastIndexOf('/node_modules/')
  if (dep >= 0) return url.slice(dep + 1)
  if (root && url.startsWith(`file://${root}`)) return relative(root, url.slice(7))
  return url.replace(/^file:\/\//, '')
}

export function topFrames(profile: CpuProfile, n: number, root = '', window?: Window | readonly Window[]): Frame[] {
  const frameOf = new Map<number, string>()
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame
    const where = url === '' ? '' : ` ${shortUrl(url, root)}:${lineNumber + 1}`
    frameOf.set(node.id, `${functionName || '(anonymous)'}${where}`)
  }
  const self = new Map<string, number>()
  let total = 0
  // timeDeltas[i] is the time before sample i; it is charged to the frame sampled at i.
  eachSample(profile, window, (id, us) => {
    const name = frameOf.get(id) ?? '(unknown)'
    self.set(name, (self.get(name) ?? 0) + us)
    total += us
  })
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, selfMs: us / 1000, percent: total === 0 ? 0 : (100 * us) / total }))
}

/**
 * The .cpuprofile of the main thread of the one process that wrote into dir (`--cpu-prof-dir`).
 * Worker threads (the password hashing pool) write their own, named
 * CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread's id is 0.
 */
export function readProfile(dir: string): CpuProfile {
  return JSON.parse(readFileSync(join(dir, mainThreadProfile(readdirSync(dir))), 'utf8')) as CpuProfile
}

export function mainThreadProfile(files: readonly string[]): string {
  const all = files.filter((f) => f.endsWith('.cpuprofile'))
  const main = all.filter((f) => f.split('.')[4] === '0')
  if (main.length !== 1 || new Set(all.map((f) => f.split('.')[3])).size !== 1) throw new Error(`expected the profiles of one process with one main thread, found ${all.join(', ') || 'none'}`)
  return main[0]!
}

/** Compiled WebAssembly: on the daemon's main thread, the embedded store (PGlite's PostgreSQL). */
export const WASM = 'WebAssembly (wasm://)'

/** Frames with one self time for all WebAssembly functions, which V8 names only by index. */
export function mergeWasmFrames(frames: readonly Frame[]): Frame[] {
  const wasm = frames.filter((f) => f.name.startsWith('wasm-function['))
  if (wasm.length === 0) return [...frames]
  const merged = { name: `${WASM}: all ${wasm.length} functions`, selfMs: wasm.reduce((n, f) => n + f.selfMs, 0), percent: wasm.reduce((n, f) => n + f.percent, 0) }
  return [...frames.filter((f) => !f.name.startsWith('wasm-function[')), merged].sort((a, b) => b.selfMs - a.selfMs)
}

/**
 * Where the sampled time went, by kind: the daemon's own code (dist/), each dependency, Node's
 * internals (sockets, streams, timers), WebAssembly, garbage collection, and idle (waiting for work: the
 * daemon was not the bottleneck for that share of the run).
 */
export function timeByKind(profile: CpuProfile, window?: Window | readonly Window[]): { kind: string; percent: number }[] {
  const kindOf = new Map<number, string>()
  for (const node of profile.nodes) {
    const { functionName, url } = node.callFrame
    const dep = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
    const kind =
      url === ''
        ? functionName === '(idle)' || functionName === '(garbage collector)' || functionName === '(program)'
          ? functionName
          : 'V8 builtins and native code'
        : dep
          ? `dependency ${dep[1]}`
          : url.startsWith('node:')
            ? 'Node internals (net, streams, timers)'
            : url.includes('/dist/')
              ? 'mailhostd (dist/)'
              : url.startsWith('wasm://')
                ? WASM
                : 'other'
    kindOf.set(node.id, kind)
  }
  const time = new Map<string, number>()
  let total = 0
  eachSample(profile, window, (id, us) => {
    const k = kindOf.get(id) ?? 'other'
    time.set(k, (time.get(k) ?? 0) + us)
    total += us
  })
  return [...time.entries()].sort((a, b) => b[1] - a[1]).map(([kind, us]) => ({ kind, percent: total === 0 ? 0 : (100 * us) / total }))
}

export interface FrameCost {
  readonly name: string
  /** Self time per lookup in each workload, microseconds. */
  readonly aUs: number
  readonly bUs: number
}

/**
 * Where workload b spends more CPU per lookup than workload a: the frames of both profiles
 * with their self time divided by the lookups answered in their window, largest increase first.
 * Per lookup, because the windows are equally long but answer different numbers of lookups.
 */
export function extraCostPerLookup(a: { frames: readonly Frame[]; lookups: number }, b: { frames: readonly Frame[]; lookups: number }, n: number): FrameCost[] {
  const per = (f: { frames: readonly Frame[]; lookups: number }) => new Map(f.frames.map((x) => [x.name, f.lookups === 0 ? 0 : (1000 * x.selfMs) / f.lookups]))
  const ca = per(a)
  const cb = per(b)
  // Idle is time the daemon waited, not work a lookup cost.
  const names = new Set([...ca.keys(), ...cb.keys()].filter((name) => name !== '(idle)'))
  return [...names]
    .map((name) => ({ name, aUs: ca.get(name) ?? 0, bUs: cb.get(name) ?? 0 }))
    .sort((x, y) => y.bUs - y.aUs - (x.bUs - x.aUs))
    .slice(0, n)
}

/** The daemon's busy time (every sampled frame but idle) per lookup answered, in microseconds. */
export function busyUsPerLookup(frames: readonly Frame[], lookups: number): number {
  return lookups === 0 ? 0 : (1000 * frames.reduce((n, f) => n + (f.name === '(idle)' ? 0 : f.selfMs), 0)) / lookups
}
