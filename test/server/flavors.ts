// The two listeners behind one test interface, so every listener behaviour is tested on both.

import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { createLogger, type Logger } from '../../src/log.js'
import { encodeNetstring } from '../../src/protocols/netstring.js'
import { hexQuote } from '../../src/protocols/tcp-table.js'
import { found, notFound, temp, type Answer } from '../../src/resolve/answer.js'
import { createSocketmapServer, createTcpTableServer, type LineServer, type ListenerLimits, type ServerOptions } from '../../src/server/index.js'
import type { Client } from './client.js'
import { FakeLookup, type Call } from './fake-lookup.js'

export interface Flavor {
  readonly name: 'socketmap' | 'tcp_table'
  create(options: ServerOptions): LineServer
  /** A request for `key` in the `transport` map. */
  request(key: string | Buffer): Buffer
  /** The next reply, as text: the netstring payload, or the line without its LF. */
  reply(client: Client, timeoutMs?: number): Promise<string>
  found(value: string): string
  notFound: string
  temp(reason: string): string
  tooLarge: string
  malformed: string
  garbage: Buffer
  /** The first part of a valid request. */
  halfRequest: Buffer
  /** A 1 MiB request. */
  huge: Buffer
}

export const flavors: readonly Flavor[] = [
  {
    name: 'socketmap',
    create: (o) => createSocketmapServer(o),
    request: (key) => encodeNetstring(Buffer.concat([Buffer.from('transport '), Buffer.from(key)])),
    reply: (c, ms) => c.readNetstring(ms),
    found: (v) => `OK ${v}`,
    notFound: 'NOTFOUND ',
    temp: (r) => `TEMP ${r}`,
    tooLarge: 'PERM request too large',
    malformed: 'PERM malformed request',
    garbage: Buffer.from('hello world\r\n'),
    halfRequest: Buffer.from('27:transport alice@exam'),
    huge: Buffer.concat([Buffer.from('1048576:transport '), Buffer.alloc(1048576 - 10, 0x61), Buffer.from(',')]),
  },
  {
    name: 'tcp_table',
    create: (o) => createTcpTableServer('transport', o),
    request: (key) => Buffer.from(`get ${hexQuote(key)}\n`, 'latin1'),
    reply: (c, ms) => c.readLine(ms),
    found: (v) => `200 ${hexQuote(v)}`,
    notFound: '500 no%20such%20key',
    temp: (r) => `400 ${hexQuote(r)}`,
    tooLarge: '400 request%20too%20large',
    malformed: '400 malformed%20request',
    garbage: Buffer.from('HELO there\r\n'),
    halfRequest: Buffer.from('get alice@exam'),
    huge: Buffer.concat([Buffer.from('get '), Buffer.alloc(1048576 - 5, 0x61), Buffer.from('\n')]),
  },
]

/** Answers by key: `no…` not found, `temp…` temporary failure, `boom…` rejects, `sleep…` after a short random delay. */
export async function answerByKey({ key }: Call): Promise<Answer> {
  if (key === null || key.startsWith('no')) return notFound('no such key')
  if (key.startsWith('temp')) return temp('directory down')
  if (key.startsWith('boom')) throw new Error('bug in the service')
  if (key.startsWith('sleep')) await sleep(Math.random() * 5)
  return found(`route-for ${key}`)
}

export const defaultLimits: ListenerLimits = {
  maxConnections: 100,
  maxConnectionsPerClient: 100,
  firstRequestTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
  requestTimeoutMs: 10_000,
  maxRequestBytes: 16384,
}

/** A logger whose JSON lines the test can inspect. */
export function capturingLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk.toString())
      cb()
    },
  })
  const logger = createLogger('debug', sink)
  return {
    logger,
    lines: () =>
      out
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

export interface Running {
  readonly server: LineServer
  readonly port: number
  readonly lookup: FakeLookup
  readonly logLines: () => Record<string, unknown>[]
}

export async function startFlavor(
  flavor: Flavor,
  limits: Partial<ListenerLimits> = {},
  answer: (call: Call) => Answer | Promise<Answer> = answerByKey,
): Promise<Running> {
  const lookup = new FakeLookup(answer)
  const { logger, lines } = capturingLogger()
  const server = flavor.create({ host: '127.0.0.1', port: 0, lookup, logger, limits: { ...defaultLimits, ...limits } })
  const { port } = await server.listen()
  return { server, port, lookup, logLines: lines }
}

/** Polls until cond() holds; throws after timeoutMs so a test never hangs. */
export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}
