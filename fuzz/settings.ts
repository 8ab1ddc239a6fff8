// The run's knobs, all from the environment so `npm run fuzz` needs no arguments and a failure
// can be replayed by setting the same variables. Defaults give the acceptance run: a million
// frames per codec, tens of thousands per listener, in well under ten minutes on two cores.

import { availableParallelism } from 'node:os'
import { validateConfig } from '../src/config/load.js'
import { randomSeed } from './rng.js'

export interface Settings {
  readonly seed: number
  /** Frames per codec. */
  readonly frames: number
  /** Frames per listener (each over loopback, so far fewer). */
  readonly listenerFrames: number
  readonly jobs: number
  /** A codec stuck on one input this long is hung (a watchdog, not a measurement). */
  readonly hangMs: number
  /** Each listener connection must be answered or closed within this. */
  readonly connectionBoundMs: number
  /** What FUZZ_ONLY selects: everything by default. */
  readonly select: Selection
  readonly only?: string
  /** `<codec>:<input index>`: rebuild one input, print it and what the codec made of it. */
  readonly replay?: string
  /** The daemon's default request limit, which the listeners enforce; codecs are also run with smaller ones. */
  readonly defaultMax: number
}

/**
 * FUZZ_ONLY: `codecs`, `listeners`, `codec:<name>` or `listener:<name>` (`listener:http` for
 * the HTTP endpoints). True runs every codec or listener, a name only that one.
 */
export interface Selection {
  readonly codecs: boolean | string
  readonly listeners: boolean | string
}

function selection(only: string | undefined): Selection {
  if (only === undefined || only === '') return { codecs: true, listeners: true }
  if (only === 'codecs') return { codecs: true, listeners: false }
  if (only === 'listeners') return { codecs: false, listeners: true }
  if (only.startsWith('codec:')) return { codecs: only.slice('codec:'.length), listeners: false }
  if (only.startsWith('listener:')) return { codecs: false, listeners: only.slice('listener:'.length) }
  throw new Error(`FUZZ_ONLY=${only}: expected codecs, listeners, codec:<name> or listener:<name>`)
}

/** The default seed: fixed, so two default runs fuzz the same inputs and their figures compare. */
export const DEFAULT_SEED = 20261201

function int(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw.replaceAll('_', ''))
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${raw}: expected a non-negative integer`)
  return n
}

export function readSettings(): Settings {
  const seedText = process.env.FUZZ_SEED
  return {
    seed: seedText === 'random' ? randomSeed() : int('FUZZ_SEED', DEFAULT_SEED) >>> 0,
    frames: int('FUZZ_FRAMES', 1_000_000),
    listenerFrames: int('FUZZ_LISTENER_FRAMES', 20_000),
    jobs: int('FUZZ_JOBS', Math.min(2, availableParallelism())),
    hangMs: int('FUZZ_HANG_MS', 10_000),
    connectionBoundMs: int('FUZZ_CONNECTION_BOUND_MS', 15_000),
    select: selection(process.env.FUZZ_ONLY),
    ...(process.env.FUZZ_ONLY ? { only: process.env.FUZZ_ONLY } : {}),
    ...(process.env.FUZZ_REPLAY ? { replay: process.env.FUZZ_REPLAY } : {}),
    defaultMax: validateConfig({}, {}).limits.maxRequestBytes,
  }
}

/** The command that repeats this run exactly. */
export function reproduceCommand(s: Settings): string {
  const env = [`FUZZ_SEED=${s.seed}`, `FUZZ_FRAMES=${s.frames}`, `FUZZ_LISTENER_FRAMES=${s.listenerFrames}`]
  if (s.only) env.push(`FUZZ_ONLY='${s.only}'`)
  return `${env.join(' ')} npm run fuzz`
}
