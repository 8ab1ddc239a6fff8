// smtp-sink (Postfix's test SMTP/LMTP server) standing in for a backend mail store, with a record
// of what it received.
//
// How arrivals are observed without reading half-written messages: with `-D FILE` smtp-sink
// spools each transaction to an unlinked temp file and appends it to FILE only when "." arrives,
// before it answers 250; with `-c` it then prints "sess=N quit=N mesg=N" on stdout. smtp-sink is a
// single-threaded event loop, so when stdout says mesg=N the first N messages in FILE are
// complete, and the N+1st cannot have started yet. `-S` puts a per-sink random marker line before
// each message so the file splits without guessing where a body ends.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { DEBIAN12_SET, type PeerSet } from './peer-set.js'
import { freePort } from './ports.js'
import { waitForListener } from './postfix.js'

export interface SinkMessage {
  /** The envelope sender (MAIL FROM address, without <> and parameters). */
  mailFrom: string
  /** Envelope recipients in RCPT order (addresses without <> and parameters such as ORCPT). */
  rcptTo: string[]
  /** MAIL FROM and RCPT TO arguments exactly as the client sent them. */
  mailArgs: string
  rcptArgs: string[]
  helo?: string
  clientAddr: string
  /** SMTP, ESMTP or LMTP. */
  proto: string
  /** Header and body as received (dot-unstuffed, LF line endings), including the client's Received:. */
  content: string
}

export interface Sink {
  readonly port: number
  readonly pid: number
  /** Every message completely received so far, in arrival order. */
  messages(): Promise<SinkMessage[]>
  /** Resolves with messages() once at least n messages arrived; throws after timeoutMs. */
  waitForMessages(n: number, timeoutMs?: number): Promise<SinkMessage[]>
  /** Stops smtp-sink and removes its dump directory. Idempotent. */
  stop(): Promise<void>
}

export interface SinkOptions {
  /** Whose smtp-sink (Postfix 3.7's by default, or 3.10's). */
  set?: PeerSet
  /** Listen on this port (e.g. one a transport table already points at); default: a free one. */
  port?: number
  /** Speak LMTP (for `lmtp:inet:[127.0.0.1]:port` routes). */
  lmtp?: boolean
}

function envelopeAddress(args: string): string {
  const m = /^<([^>]*)>/.exec(args.trim())
  return m?.[1] ?? args.trim().split(/\s/)[0] ?? ''
}

function parseMessage(block: string): SinkMessage {
  const lines = block.split('\n')
  // smtp-sink's own records end with its three-line Received: header, the first one in the block;
  // the client's data follows.
  const received = lines.findIndex((l) => l.startsWith('Received: '))
  const ownHeaders = received < 0 ? lines : lines.slice(0, received)
  const pick = (prefix: string) => ownHeaders.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length))
  const mailArgs = pick('X-Mail-Args: ')[0] ?? ''
  const rcptArgs = pick('X-Rcpt-Args: ')
  const helo = pick('X-Helo-Args: ')[0]
  // The data ends with the empty line smtp-sink writes for the terminating ".".
  const content = received < 0 ? '' : lines.slice(received + 3).join('\n').replace(/\n$/, '')
  return {
    mailFrom: envelopeAddress(mailArgs),
    rcptTo: rcptArgs.map(envelopeAddress),
    mailArgs,
    rcptArgs,
    ...(helo === undefined ? {} : { helo }),
    clientAddr: pick('X-Client-Addr: ')[0] ?? '',
    proto: pick('X-Client-Proto: ')[0] ?? '',
    content,
  }
}

export async function startSmtpSink(opts: SinkOptions = {}): Promise<Sink> {
  const port = opts.port ?? (await freePort())
  const dir = await mkdtemp(join(tmpdir(), 'mailhostd-sink-'))
  const dumpFile = join(dir, 'messages')
  const marker = `==smtp-sink-message-${randomBytes(8).toString('hex')}==`
  // As root smtp-sink insists on -u. It stays root: dropping to another user would need a dump
  // directory that user may write.
  const asUser = process.getuid?.() === 0 ? ['-u', userInfo().username] : []
  const proc = (opts.set ?? DEBIAN12_SET).start('smtp-sink', [
    '-4',
    '-c',
    ...asUser,
    ...(opts.lmtp ? ['-L'] : []),
    '-h',
    `sink-${port}`,
    '-S',
    `${marker}\\n`,
    '-D',
    dumpFile,
    `127.0.0.1:${port}`,
    '64',
  ])
  try {
    await waitForListener(proc, port, () => Promise.resolve(proc.pid), 20_000)
  } catch (e) {
    await proc.stop()
    await rm(dir, { recursive: true, force: true })
    throw new Error(`smtp-sink on 127.0.0.1:${port} did not start: ${(e as Error).message}\n${proc.output()}`, { cause: e })
  }

  const completed = () => {
    const counters = [...proc.output().matchAll(/mesg=(\d+)/g)]
    return Number(counters.at(-1)?.[1] ?? 0)
  }
  const messages = async (): Promise<SinkMessage[]> => {
    const n = completed()
    if (n === 0) return []
    const text = await readFile(dumpFile, 'utf8')
    return text
      .split(`${marker}\n`)
      .slice(1, n + 1)
      .map(parseMessage)
  }
  let stopping: Promise<void> | undefined

  return {
    port,
    pid: proc.pid,
    messages,
    waitForMessages: async (n, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs
      while (completed() < n) {
        if (Date.now() > deadline) throw new Error(`smtp-sink on port ${port} got ${completed()} of ${n} messages in ${timeoutMs} ms`)
        await sleep(50)
      }
      return messages()
    },
    stop: () =>
      (stopping ??= (async () => {
        await proc.stop()
        await rm(dir, { recursive: true, force: true })
      })()),
  }
}
