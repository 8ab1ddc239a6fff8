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

/** Calls f(nodeId, microseconds) for every sample inside the window. */
function eachSample(profile: CpuProfile, window: Window | undefined, f: (id: number, us: number) => void): void {
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i] ?? 0
    t += us
    if (window && (t < window.fromUs || t > window.toUs)) continue
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

export function topFrames(profile: CpuProfile, n: number, root = '', window?: Window): Frame[] {
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

/** The one .cpuprofile a process wrote into dir (`--cpu-prof-dir`). */
export function readProfile(dir: string): CpuProfile {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${dir}, found ${files.length}`)
  return JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as CpuProfile
}

/**
 * Where the sampled time went, by kind: the daemon's own code (dist/), each dependency, Node's
 * internals (sockets, streams, timers), garbage collection, and idle (waiting for work: the
 * daemon was not the bottleneck for that share of the run).
 */
export function timeByKind(profile: CpuProfile, window?: Window): { kind: string; percent: number }[] {
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
