// Runs every codec's fuzz in worker threads, a few at a time, under a watchdog: a worker whose
// input index has not moved for `hangMs` is stuck in one input, which is a hang. It is then
// terminated, the input recorded, and the codec resumed after it, so one hang does not hide
// the rest of the run.

import { Worker } from 'node:worker_threads'
import type { CodecJob, CodecReport, Failure } from './codec-worker.js'
import { CODECS } from './codecs/index.js'

export interface CodecResult extends CodecReport {
  readonly codec: string
  readonly hangs: readonly number[]
  readonly elapsedMs: number
}

export interface CodecFuzzOptions {
  readonly seed: number
  readonly frames: number
  readonly jobs: number
  readonly hangMs: number
  readonly defaultMax: number
  readonly only?: string
  readonly onDone?: (r: CodecResult) => void
}

const WORKER = new URL('./codec-worker.ts', import.meta.url)
/** How long a worker may take to load before it counts as failed to start. */
const STARTUP_MS = 120_000

export async function fuzzCodecs(o: CodecFuzzOptions): Promise<CodecResult[]> {
  const indexes = CODECS.map((_, i) => i).filter((i) => o.only === undefined || CODECS[i]!.name === o.only)
  const results: CodecResult[] = []
  let next = 0
  const lane = async () => {
    while (next < indexes.length) {
      const r = await fuzzCodec(indexes[next++]!, o)
      results.push(r)
      o.onDone?.(r)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, o.jobs) }, lane))
  return indexes.map((i) => results.find((r) => r.codec === CODECS[i]!.name)!)
}

async function fuzzCodec(codecIndex: number, o: CodecFuzzOptions): Promise<CodecResult> {
  const started = Date.now()
  const hangs: number[] = []
  const parts: CodecReport[] = []
  let [startInput, startFrames] = [0, 0]
  for (;;) {
    const progress = new SharedArrayBuffer(8)
    const job: CodecJob = { codecIndex, seed: o.seed, frames: o.frames, startInput, startFrames, defaultMax: o.defaultMax, progress }
    const r = await runWorker(job, o.hangMs)
    if (r.kind === 'done') {
      parts.push(r.report)
      break
    }
    // Stuck: the input in progress is the hang. Resume after it, counting its frame as run.
    const view = new Int32Array(progress)
    const stuck = Atomics.load(view, 0)
    if (stuck < 0) throw new Error(`the ${CODECS[codecIndex]!.name} fuzz worker did not start within ${STARTUP_MS} ms`)
    hangs.push(stuck)
    startInput = stuck + 1
    startFrames = Atomics.load(view, 1) + 1
    if (hangs.length >= 3) break
  }
  return { codec: CODECS[codecIndex]!.name, hangs, elapsedMs: Date.now() - started, ...merge(parts, startFrames) }
}

type WorkerOutcome = { kind: 'done'; report: CodecReport } | { kind: 'hung' }

function runWorker(job: CodecJob, hangMs: number): Promise<WorkerOutcome> {
  return new Promise((resolve, reject) => {
    const view = new Int32Array(job.progress)
    // -1 until the worker starts its first input: loading TypeScript in a fresh thread takes
    // seconds on a busy machine, and is not the codec's time.
    Atomics.store(view, 0, -1)
    const worker = new Worker(WORKER, { workerData: job })
    let [seen, since] = [-1, Date.now()]
    const watchdog = setInterval(() => {
      const now = Atomics.load(view, 0)
      if (now !== seen) [seen, since] = [now, Date.now()]
      else if (Date.now() - since > (now < 0 ? STARTUP_MS : hangMs)) {
        clearInterval(watchdog)
        void worker.terminate().then(() => resolve({ kind: 'hung' }))
      }
    }, Math.min(1000, hangMs / 4))
    worker.once('message', (report: CodecReport) => {
      clearInterval(watchdog)
      resolve({ kind: 'done', report })
    })
    worker.once('error', (err) => {
      clearInterval(watchdog)
      reject(err)
    })
  })
}

/** The report of a codec's last worker, with the frames of those terminated before it. */
function merge(parts: readonly CodecReport[], framesBefore: number): CodecReport {
  const endings: Record<string, number> = {}
  const failures: Failure[] = []
  let best = { maxNs: 0, maxInput: -1 }
  const sum = { inputs: 0, frames: 0, bytes: 0, crashes: 0, violations: 0, totalNs: 0 }
  for (const p of parts) {
    for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += p[k]
    for (const [k, v] of Object.entries(p.endings)) endings[k] = (endings[k] ?? 0) + v
    failures.push(...p.failures)
    if (p.maxNs > best.maxNs) best = { maxNs: p.maxNs, maxInput: p.maxInput }
  }
  // Frames run by workers that hung and were terminated (their reports are lost) count too.
  sum.frames += framesBefore
  return { ...sum, failures, endings, ...best }
}
