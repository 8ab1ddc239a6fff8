// A raw TCP test client: write bytes, read framed replies with a bound on waiting, observe close.

import { connect, type Socket } from 'node:net'
import { NetstringDecoder } from '../../src/protocols/netstring.js'

export class Client {
  readonly socket: Socket
  /** Resolves when the server closed (or reset) the connection. */
  readonly closed: Promise<void>
  #buf = Buffer.alloc(0)
  #wake: (() => void) | undefined
  #gone = false

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d])
      this.#wake?.()
    })
    socket.on('error', () => undefined)
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.#gone = true
        this.#wake?.()
        resolve()
      }),
    )
  }

  /** `localAddress`: the client's own address, e.g. 127.0.0.2 to be another client on loopback. */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, ...(localAddress === undefined ? {} : { localAddress }) })
      s.once('error', reject)
      s.once('connect', () => {
        s.off('error', reject)
        resolve(new Client(s))
      })
    })
  }

  write(data: string | Buffer): boolean {
    return this.socket.write(data)
  }

  /** Bytes received and not yet consumed by a read. */
  get buffered(): Buffer {
    return this.#buf
  }

  /**
   * Waits until `take` finds a complete item in the received bytes (returning how many bytes it
   * spans) and returns those bytes; rejects on close or after timeoutMs.
   */
  async read(take: (buf: Buffer) => number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const n = take(this.#buf)
      if (n >= 0) {
        const item = this.#buf.subarray(0, n)
        this.#buf = this.#buf.subarray(n)
        return item
      }
      if (this.#gone) throw new Error(`connection closed; unread: ${JSON.stringify(this.#buf.toString('latin1'))}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; have ${JSON.stringify(this.#buf.toString('latin1'))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.#wake = undefined
    }
  }

  /** One LF-terminated line, without the LF. */
  async readLine(timeoutMs?: number): Promise<string> {
    const line = await this.read((b) => {
      const i = b.indexOf(0x0a)
      return i < 0 ? -1 : i + 1
    }, timeoutMs)
    return line.subarray(0, -1).toString('latin1')
  }

  /** One netstring, returned as its payload decoded as UTF-8. */
  async readNetstring(timeoutMs?: number): Promise<string> {
    const frame = await this.read((b) => {
      const d = new NetstringDecoder(1 << 20)
      d.push(b)
      const item = d.next()
      if (item?.type === 'error') throw new Error(`bad netstring from server: ${b.toString('latin1')}`)
      return item === undefined ? -1 : b.length - d.pendingBytes
    }, timeoutMs)
    return frame.subarray(frame.indexOf(0x3a) + 1, -1).toString('utf8')
  }

  /** Resolves true if the server closes the connection within timeoutMs. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))
    const r = await Promise.race([this.closed.then(() => true), timedOut])
    clearTimeout(timer)
    return r
  }

  destroy(): void {
    this.socket.destroy()
  }
}
