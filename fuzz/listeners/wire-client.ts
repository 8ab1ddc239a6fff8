// One fuzz connection: connect, write the chunks as separate writes (Nagle off, so they tend to
// arrive as separate segments), optionally half-close, and collect everything until the daemon
// closes. A connection neither answered nor closed within the bound is a hang.

import { connect, type Socket } from 'node:net'

export type Address = { readonly port: number } | { readonly path: string }

export interface Exchange {
  readonly reply: Buffer
  /** `closed`: the daemon ended or reset the connection; `bound`: the fuzzer gave up (a hang). */
  readonly end: 'closed' | 'bound'
  readonly ms: number
}

export function exchange(address: Address, chunks: readonly Buffer[], halfClose: boolean, boundMs: number): Promise<Exchange> {
  const started = process.hrtime.bigint()
  const socket: Socket = 'port' in address ? connect({ host: '127.0.0.1', port: address.port }) : connect({ path: address.path })
  socket.setNoDelay(true)
  const received: Buffer[] = []
  return new Promise((resolve) => {
    let settled = false
    const done = (end: Exchange['end']) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ reply: Buffer.concat(received), end, ms: Number(process.hrtime.bigint() - started) / 1e6 })
    }
    const timer = setTimeout(() => done('bound'), boundMs)
    socket.on('data', (d: Buffer) => received.push(d))
    // The daemon's FIN ends the exchange; a reset (it destroys after lingering) does too.
    socket.on('end', () => done('closed'))
    socket.on('close', () => done('closed'))
    socket.on('error', () => done('closed'))
    socket.once('connect', () => void writeAll(socket, chunks, halfClose))
  })
}

async function writeAll(socket: Socket, chunks: readonly Buffer[], halfClose: boolean): Promise<void> {
  for (const c of chunks) {
    if (socket.destroyed) return
    socket.write(c)
    // A turn of the event loop between writes, so they leave as separate segments.
    await new Promise((r) => setImmediate(r))
  }
  if (halfClose && !socket.destroyed) socket.end()
}
