// A load generator that asks like Postfix does: N persistent connections, each with one
// request outstanding (Postfix's dict clients never pipeline), until the run's duration or its
// request count is used up. Requests are encoded once per key up front so the generator spends
// its share of the shared CPU on sockets, not on string building. Latency is recorded per
// request in an HDR histogram (perf_hooks) in nanoseconds.

import { connect, type Socket } from 'node:net'
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks'
import { summarise, type LatencySummary } from './histogram.js'

export type LineProto = 'socketmap' | 'tcp_table'

export interface LoadTarget {
  readonly port: number
  readonly proto: LineProto
  /** The socketmap map name (`transport`, `recipient`, ...); tcp_table has one map per port. */
  readonly map?: string
}

export interface LoadOptions {
  readonly connections: number
  readonly durationMs: number
  readonly maxRequests: number
  /** Keys in asking order; the run cycles through them. */
  readonly keys: readonly string[]
  /** How a reply of the expected kind starts, e.g. /^(OK|NOTFOUND) / ; others count as unexpected. */
  readonly expect: RegExp
}

export interface LoadResult extends LatencySummary {
  readonly requests: number
  readonly unexpected: number
  readonly elapsedMs: number
  /** Completed requests per second of wall time. */
  readonly rps: number
  /** The first unexpected reply, to say what went wrong. */
  readonly sample?: string
}

/** The request bytes for one key, as Postfix's dict_sockmap / dict_tcp clients send them. */
export function encodeRequest(target: LoadTarget, key: string): Buffer {
  if (target.proto === 'socketmap') {
    const payload = Buffer.from(`${target.map ?? 'transport'} ${key}`)
    return Buffer.concat([Buffer.from(`${payload.length}:`), payload, Buffer.from(',')])
  }
  // tcp_table(5) quotes %, whitespace and control characters as %XX.
  // eslint-disable-next-line no-control-regex
  return Buffer.from(`get ${key.replace(/[%\s\x00-\x1f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}\n`)
}

/**
 * Length of the first complete reply in buf (bytes to consume) and its text, or undefined when
 * the reply is not complete yet.
 */
export function takeReply(proto: LineProto, buf: Buffer): { used: number; text: string } | undefined {
  if (proto === 'socketmap') {
    const colon = buf.indexOf(0x3a)
    if (colon < 0) return undefined
    const len = Number(buf.subarray(0, colon).toString('latin1'))
    if (buf.length < colon + len + 2) return undefined
    return { used: colon + len + 2, text: buf.subarray(colon + 1, colon + 1 + len).toString() }
  }
  const nl = buf.indexOf(0x0a)
  if (nl < 0) return undefined
  return { used: nl + 1, text: buf.subarray(0, nl).toString() }
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', noDelay: true }, () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}

/** Opens `n` connections, a few at a time so a listen backlog never drops one. */
export async function openConnections(port: number, n: number): Promise<Socket[]> {
  const out: Socket[] = []
  while (out.length < n) out.push(...(await Promise.all(Array.from({ length: Math.min(64, n - out.length) }, () => open(port)))))
  return out
}

export async function runLoad(target: LoadTarget, o: LoadOptions): Promise<LoadResult> {
  if (o.keys.length === 0) throw new Error('runLoad: no keys')
  const requests = o.keys.map((k) => encodeRequest(target, k))
  const sockets = await openConnections(target.port, o.connections)
  const hist: RecordableHistogram = createHistogram()
  let cursor = 0
  let sent = 0
  let done = 0
  let unexpected = 0
  let sample: string | undefined
  const start = process.hrtime.bigint()
  const stopAt = start + BigInt(Math.round(o.durationMs * 1e6))

  await new Promise<void>((resolveAll, rejectAll) => {
    let live = sockets.length
    for (const s of sockets) {
      let buf: Buffer = Buffer.alloc(0)
      let t0 = 0n
      let finished = false
      const finish = () => {
        finished = true
        s.destroy()
        if (--live === 0) resolveAll()
      }
      const next = () => {
        if (sent >= o.maxRequests || process.hrtime.bigint() >= stopAt) return finish()
        sent++
        const req = requests[cursor]!
        cursor = cursor + 1 === requests.length ? 0 : cursor + 1
        t0 = process.hrtime.bigint()
        s.write(req)
      }
      s.on('data', (d: Buffer) => {
        buf = buf.length === 0 ? d : Buffer.concat([buf, d])
        const reply = takeReply(target.proto, buf)
        if (!reply) return
        hist.record(Math.max(1, Number(process.hrtime.bigint() - t0)))
        buf = buf.subarray(reply.used)
        done++
        if (!o.expect.test(reply.text)) {
          unexpected++
          sample ??= reply.text
        }
        next()
      })
      s.on('error', (e) => rejectAll(e))
      s.on('close', () => {
        // A close we did not ask for mid-run is a failure of the daemon under test.
        if (!finished) rejectAll(new Error('connection closed by the server'))
      })
      next()
    }
  })

  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6
  return { ...summarise(hist), requests: done, unexpected, elapsedMs, rps: done / (elapsedMs / 1000), ...(sample === undefined ? {} : { sample }) }
}

/** One request on a fresh connection; for warming single keys and for checks. */
export async function askOnce(target: LoadTarget, key: string): Promise<string> {
  const s = await open(target.port)
  try {
    return await new Promise<string>((resolve, reject) => {
      let buf: Buffer = Buffer.alloc(0)
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d])
        const r = takeReply(target.proto, buf)
        if (r) resolve(r.text)
      })
      s.once('error', reject)
      s.write(encodeRequest(target, key))
    })
  } finally {
    s.destroy()
  }
}
