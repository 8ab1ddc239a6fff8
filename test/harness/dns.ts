// A tiny authoritative DNS responder on 127.0.0.1 (UDP) for nginx's `resolver`: answers PTR
// and A questions from a table, with labels given as raw bytes, so a test can hand nginx a
// reverse name no real zone would hold (CR LF or control bytes inside a label). Every question
// is recorded. Records carry TTL 0, so nothing outlives the test in a cache.

import { createSocket, type RemoteInfo } from 'node:dgram'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'

export const TYPE = { A: 1, PTR: 12, AAAA: 28 } as const

export interface DnsQuestion {
  /** The name asked for, labels joined with dots (latin1, as sent). */
  readonly name: string
  readonly type: number
}

export interface DnsAnswers {
  /** The PTR answer for a reverse name (e.g. `1.0.0.127.in-addr.arpa`): the labels, raw. */
  readonly ptr?: Readonly<Record<string, readonly Buffer[]>>
  /** A answers by name (lower case, labels joined with dots, latin1); `*` answers any name. */
  readonly a?: Readonly<Record<string, string>>
}

export interface DnsResponder {
  readonly port: number
  readonly questions: readonly DnsQuestion[]
  /** Resolves once a question matching `test` has arrived; throws after timeoutMs. */
  waitFor(test: (q: DnsQuestion) => boolean, timeoutMs?: number): Promise<DnsQuestion>
  stop(): Promise<void>
}

/** The question section at `offset`: its labels, type and where it ends. */
function readQuestion(msg: Buffer, offset: number): { labels: Buffer[]; type: number; end: number } | undefined {
  const labels: Buffer[] = []
  let p = offset
  for (;;) {
    const n = msg[p]
    if (n === undefined || n > 63) return undefined
    p++
    if (n === 0) break
    labels.push(msg.subarray(p, p + n))
    p += n
  }
  if (p + 4 > msg.length) return undefined
  return { labels, type: msg.readUInt16BE(p), end: p + 4 }
}

function encodeName(labels: readonly Buffer[]): Buffer {
  return Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0])])
}

/** One answer record for the question at offset 12 (a compression pointer names it). */
function record(type: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12)
  head.writeUInt16BE(0xc00c, 0)
  head.writeUInt16BE(type, 2)
  head.writeUInt16BE(1, 4) // class IN
  head.writeUInt32BE(0, 6) // TTL 0
  head.writeUInt16BE(rdata.length, 10)
  return Buffer.concat([head, rdata])
}

function answer(msg: Buffer, table: DnsAnswers, seen: DnsQuestion[]): Buffer | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined
  const q = readQuestion(msg, 12)
  if (!q) return undefined
  const name = q.labels.map((l) => l.toString('latin1')).join('.').toLowerCase()
  seen.push({ name, type: q.type })
  const records: Buffer[] = []
  const ptr = table.ptr?.[name]
  const a = table.a?.[name] ?? table.a?.['*']
  if (q.type === TYPE.PTR && ptr) records.push(record(TYPE.PTR, encodeName(ptr)))
  if (q.type === TYPE.A && a) records.push(record(TYPE.A, Buffer.from(a.split('.').map(Number))))
  const known = ptr !== undefined || a !== undefined
  const head = Buffer.alloc(12)
  head.writeUInt16BE(msg.readUInt16BE(0), 0) // the query's id
  // QR, AA, RD as asked, RA; NXDOMAIN for a name the table does not hold at all.
  head.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | (known ? 0 : 3), 2)
  head.writeUInt16BE(1, 4)
  head.writeUInt16BE(records.length, 6)
  return Buffer.concat([head, msg.subarray(12, q.end), ...records])
}

export async function startDnsResponder(table: DnsAnswers): Promise<DnsResponder> {
  const socket = createSocket('udp4')
  const questions: DnsQuestion[] = []
  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    const reply = answer(msg, table, questions)
    if (reply) socket.send(reply, from.port, from.address)
  })
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  let stopped: Promise<void> | undefined
  return {
    port: socket.address().port,
    questions,
    async waitFor(test, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const q = questions.find(test)
        if (q) return q
        if (Date.now() > deadline) throw new Error(`no matching DNS question within ${timeoutMs} ms; got ${JSON.stringify(questions)}`)
        await sleep(50)
      }
    },
    stop: () => (stopped ??= new Promise<void>((resolve) => socket.close(() => resolve()))),
  }
}
