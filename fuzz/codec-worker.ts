// Runs one codec's share of the fuzz in a worker thread, so the main thread can watch it: a
// decoder stuck in a loop cannot be interrupted from its own thread, only observed from another
// and terminated. The worker publishes the input it is on through shared memory before each one.

import { parentPort, workerData } from 'node:worker_threads'
import { checkInput } from './codec-check.js'
import { codecInput } from './codec-input.js'
import { CODECS } from './codecs/index.js'

export interface CodecJob {
  readonly codecIndex: number
  readonly seed: number
  /** Frames to run in all; the worker stops at the first input that reaches it. */
  readonly frames: number
  readonly startInput: number
  readonly startFrames: number
  readonly defaultMax: number
  /** Int32Array over it: [input index in progress, frames done]. */
  readonly progress: SharedArrayBuffer
}

export interface Failure {
  readonly input: number
  readonly violation: string
}

export interface CodecReport {
  readonly inputs: number
  readonly frames: number
  readonly bytes: number
  readonly crashes: number
  readonly violations: number
  readonly failures: readonly Failure[]
  readonly maxNs: number
  readonly maxInput: number
  /** Time spent decoding and checking, summed over inputs: with `inputs`, the mean per input. */
  readonly totalNs: number
  /** How inputs ended: the last item's kind, so a run that only ever hits one error shows it. */
  readonly endings: Readonly<Record<string, number>>
}

/** Failures kept with their details; the rest are only counted. */
const KEEP_FAILURES = 5

function run(job: CodecJob): CodecReport {
  const target = CODECS[job.codecIndex]!
  const progress = new Int32Array(job.progress)
  const failures: Failure[] = []
  const endings: Record<string, number> = {}
  let [frames, inputs, bytes, crashes, violations, maxNs, maxInput, totalNs] = [job.startFrames, 0, 0, 0, 0, 0, -1, 0]
  for (let index = job.startInput; frames < job.frames; index++) {
    Atomics.store(progress, 0, index)
    const input = codecInput(target, job.seed, job.codecIndex, index, job.defaultMax)
    const started = process.hrtime.bigint()
    const result = checkInput(target, input)
    const ns = Number(process.hrtime.bigint() - started)
    totalNs += ns
    if (ns > maxNs) [maxNs, maxInput] = [ns, index]
    frames += input.frames
    inputs++
    bytes += input.stream.length
    Atomics.store(progress, 1, frames)
    if (result.threw) crashes++
    if (result.violation !== undefined) {
      violations++
      if (failures.length < KEEP_FAILURES) failures.push({ input: index, violation: result.violation })
    }
    const last = result.last
    const ending = last === undefined ? 'nothing' : last.startsWith('E:') ? last.slice(2) : 'request'
    endings[ending] = (endings[ending] ?? 0) + 1
  }
  return { inputs, frames: frames - job.startFrames, bytes, crashes, violations, failures, maxNs, maxInput, totalNs, endings }
}

parentPort!.postMessage(run(workerData as CodecJob))
