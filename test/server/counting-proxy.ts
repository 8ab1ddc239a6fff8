// A loopback TCP relay that counts the connections it accepts: the only way to observe, from
// outside the listener, how many connections a peer such as Postfix opened (reuse, retries).

import { connect, createServer, type Socket } from 'node:net'

export interface CountingProxy {
  readonly port: number
  /** Connections accepted so far. */
  readonly accepted: number
  /** Stops listening and drops every relayed connection. */
  close(): Promise<void>
}

export async function countingProxy(targetPort: number): Promise<CountingProxy> {
  let accepted = 0
  const sockets = new Set<Socket>()
  const track = (s: Socket) => {
    sockets.add(s)
    s.on('error', () => s.destroy())
    s.on('close', () => sockets.delete(s))
  }
  const server = createServer((down) => {
    accepted++
    const up = connect({ host: '127.0.0.1', port: targetPort })
    track(down)
    track(up)
    // pipe() forwards each side's FIN, so a close without a reply reaches the peer as one.
    down.pipe(up)
    up.pipe(down)
    down.on('close', () => up.destroy())
    up.on('close', () => down.destroy())
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address !== null && typeof address === 'object') resolve(address.port)
      else reject(new Error('proxy has no port'))
    })
  })
  return {
    port,
    get accepted() {
      return accepted
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
