// A small seeded PRNG (sfc32, seeded through splitmix32) so every input of a run can be rebuilt
// from the run's seed alone. Math.random cannot be seeded, and a failure that cannot be replayed
// is only half a finding.

export class Rng {
  #a: number
  #b: number
  #c: number
  #d: number

  /** `seed` and `stream` (e.g. the codec's and the input's index) pick an independent sequence. */
  constructor(seed: number, ...stream: number[]) {
    let s = seed >>> 0
    for (const n of stream) s = splitmix32(s ^ Math.imul(n >>> 0, 0x9e3779b1))
    this.#a = s = splitmix32(s)
    this.#b = s = splitmix32(s)
    this.#c = s = splitmix32(s)
    this.#d = splitmix32(s)
    for (let i = 0; i < 12; i++) this.u32()
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return t >>> 0
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n)
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + this.below(max - min + 1)
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff
    return out
  }
}

function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

/** A fresh seed for a run that was given none: printed, so the run can be repeated. */
export function randomSeed(): number {
  return (Date.now() ^ (process.pid << 16)) >>> 0
}
