// Free loopback ports for throwaway peers. Bind to port 0, read the port, release it: the tiny
// race with other processes is acceptable on a test machine and avoids fixed-port collisions.

import { createServer, connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const addr = srv.address()
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < n) ports.add(await freePort(host))
  return [...ports]
}

/** Whether host:port can be bound right now. */
function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', () => resolve(false))
    srv.listen(port, host, () => srv.close(() => resolve(true)))
  })
}

/**
 * n ports free on every one of `hosts` at once: for peers that listen on the same ports, each on
 * its own loopback address (a pool's members).
 */
export async function freePortsOnAll(hosts: readonly string[], n: number): Promise<number[]> {
  const [first, ...rest] = hosts
  if (first === undefined) throw new Error('freePortsOnAll: no hosts')
  const ports = new Set<number>()
  for (let tries = 0; ports.size < n; tries++) {
    if (tries > 100 * n) throw new Error(`no ${n} ports free on all of ${hosts.join(', ')}`)
    const port = await freePort(first)
    if (ports.has(port)) continue
    if ((await Promise.all(rest.map((h) => bindable(port, h)))).every(Boolean)) ports.add(port)
  }
  return [...ports]
}

/** Resolves once something accepts TCP connections on host:port, or throws after timeoutMs. */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host })
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`)
    await sleep(50)
  }
}
