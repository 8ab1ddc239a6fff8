// `npm run fuzz`: every codec with millions of random and mutated frames (fuzz/codecs), then every
// listener of a real daemon with tens of thousands (fuzz/listeners); prints a summary table and
// exits non-zero on any crash, hang, wrong answer or broken invariant. Knobs: fuzz/settings.ts.

import { fuzzCodecs, type CodecResult } from './codec-fuzz.js'
import { CODECS } from './codecs/index.js'
import { fuzzListeners, startDaemon } from './listeners/index.js'
import { replay } from './replay.js'
import { readSettings, reproduceCommand } from './settings.js'
import { codecTable, failureLines, listenerTable } from './summary.js'

const s = readSettings()
if (s.replay !== undefined) process.exit(replay(s, s.replay) ? 0 : 1)

const started = Date.now()
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`
console.log(`fuzz: seed ${s.seed}, ${s.frames} frames per codec, ${s.listenerFrames} per listener, ${s.jobs} jobs`)
console.log(`repeat with: ${reproduceCommand(s)}`)

const { codecs: codecSelection, listeners: listenerSelection } = s.select
if (typeof codecSelection === 'string' && !CODECS.some((c) => c.name === codecSelection)) {
  throw new Error(`FUZZ_ONLY: no codec ${codecSelection}; codecs: ${CODECS.map((c) => c.name).join(', ')}`)
}
const runCodecs = codecSelection !== false
const runListeners = listenerSelection !== false

const daemon = runListeners ? await startDaemon() : undefined
let codecs: CodecResult[] = []
if (runCodecs) {
  codecs = await fuzzCodecs({
    seed: s.seed,
    frames: s.frames,
    jobs: s.jobs,
    hangMs: s.hangMs,
    defaultMax: s.defaultMax,
    ...(typeof codecSelection === 'string' ? { only: codecSelection } : {}),
    onDone: (r) => console.log(`  codec ${r.codec}: ${r.frames} frames, ${r.crashes + r.violations + r.hangs.length} failures (${(r.elapsedMs / 1000).toFixed(0)} s; at ${elapsed()})`),
  })
}
const l = daemon
  ? await fuzzListeners(daemon, {
      seed: s.seed,
      frames: s.listenerFrames,
      boundMs: s.connectionBoundMs,
      max: s.defaultMax,
      ...(typeof listenerSelection === 'string' ? { only: listenerSelection } : {}),
      onDone: (r) => console.log(`  listener ${r.listener}: ${r.frames} frames, ${r.connections} connections, ${r.hangs + r.violations + r.canaryFailures} failures (${(r.elapsedMs / 1000).toFixed(0)} s; at ${elapsed()})`),
    })
  : { listeners: [] }

console.log('')
if (codecs.length > 0) console.log(`${codecTable(codecs)}\n`)
if (l.listeners.length > 0 || l.http) console.log(`${listenerTable(l.listeners, l.http)}\n`)
if (l.rssKb) console.log(`daemon resident memory: ${l.rssKb[0]} KiB before the listener fuzz, ${l.rssKb[1]} KiB after\n`)
const failures = failureLines(codecs, l.listeners, l.http)
if (l.crash && !l.listeners.some((r) => r.crash)) failures.push(`daemon: ${l.crash}`)
for (const f of failures) console.log(`FAIL ${f}`)
console.log(`seed ${s.seed}; elapsed ${elapsed()}; ${failures.length === 0 ? 'no crash, no hang, no broken invariant' : `${failures.length} failure(s)`}`)
console.log(`repeat with: ${reproduceCommand(s)}`)
process.exit(failures.length === 0 ? 0 : 1)
