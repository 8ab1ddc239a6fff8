// A minimal SMTP client for tests that talk to a throwaway Postfix. Replies are returned, not
// thrown: tests assert on 4xx/5xx answers (550 5.1.1, 451 4.3.0), so only a broken connection or a
// server that stops answering is an error.

import { connect, type Socket } from 'node:net'

export interface SmtpReply {
  code: number
  /** RFC 3463 enhanced status code (e.g. `5.1.1`) when the server sent one. */
  enhanced?: string
  /** The reply text without codes; lines of a multi-line reply are joined with `\n`. */
  text: string
  /** The reply lines as received, without line endings. */
  lines: string[]
}

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/

function parseReply(lines: string[]): SmtpReply {
  const code = Number(lines[0]?.slice(0, 3))
  let enhanced: string | undefined
  const texts = lines.map((line) => {
    const rest = line.slice(4)
    const m = ENHANCED.exec(rest)
    if (!m) return rest
    enhanced ??= m[1]
    return rest.slice(m[0].length)
  })
  return { code, ...(enhanced === undefined ? {} : { enhanced }), text: texts.join('\n'), lines }
}

/** CRLF line endings, a leading dot doubled on every line (RFC 5321 4.5.2), then the end marker. */
export function dotStuff(message: string): string {
  const lines = message.replace(/\r\n|\r/g, '\n').split('\n')
  if (lines.at(-1) === '') lines.pop()
  return lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n') + '\r\n.\r\n'
}

/** RFC 3461 xtext: "+", "=" and bytes outside "!".."~" become +XX. */
export function xtext(value: string): string {
  return [...Buffer.from(value, 'utf8')]
    .map((b) => (b < 0x21 || b > 0x7e || b === 0x2b || b === 0x3d ? `+${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b)))
    .join('')
}

export class SmtpSession {
  private buffered = ''
  private replyLines: string[] = []
  private readonly replies: SmtpReply[] = []
  private waiter: { resolve: (r: SmtpReply) => void; reject: (e: Error) => void } | undefined
  private failure: Error | undefined

  private constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
  ) {
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => this.receive(chunk))
    socket.on('error', (e) => this.fail(e))
    socket.on('close', () => this.fail(new Error('SMTP connection closed by the server')))
  }

  /** Connects and reads the greeting; `banner` is the server's first reply (220, or 554 etc.). */
  static async open(port: number, host = '127.0.0.1', timeoutMs = 60_000): Promise<{ session: SmtpSession; banner: SmtpReply }> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ port, host })
      s.once('connect', () => {
        s.off('error', reject)
        resolve(s)
      })
      s.once('error', reject)
    })
    const session = new SmtpSession(socket, timeoutMs)
    return { session, banner: await session.read() }
  }

  ehlo(name = 'client.test'): Promise<SmtpReply> {
    return this.command(`EHLO ${name}`)
  }

  /**
   * XCLIENT (Postfix's XCLIENT_README): from a client in smtpd_authorized_xclient_hosts, replaces
   * the session's client attributes, e.g. `{ LOGIN: 'alice@example.org' }` (a SASL login, as the
   * nginx mail proxy sends it) or `{ ADDR: '192.0.2.7' }`. Values are sent xtext-encoded. On
   * success the server starts a new session and greets again (220); send EHLO next.
   */
  xclient(attributes: Record<string, string>): Promise<SmtpReply> {
    const args = Object.entries(attributes).map(([name, value]) => `${name}=${xtext(value)}`)
    return this.command(`XCLIENT ${args.join(' ')}`)
  }

  mailFrom(address: string): Promise<SmtpReply> {
    return this.command(`MAIL FROM:<${address}>`)
  }

  rcptTo(address: string): Promise<SmtpReply> {
    return this.command(`RCPT TO:<${address}>`)
  }

  /** Sends DATA and, if the server says 354, the dot-stuffed message; returns the final reply. */
  async data(message: string): Promise<SmtpReply> {
    const go = await this.command('DATA')
    if (go.code !== 354) return go
    this.socket.write(dotStuff(message), 'utf8')
    return this.read()
  }

  async quit(): Promise<SmtpReply> {
    const bye = await this.command('QUIT')
    this.close()
    return bye
  }

  close(): void {
    this.socket.destroy()
  }

  command(line: string): Promise<SmtpReply> {
    this.socket.write(`${line}\r\n`, 'utf8')
    return this.read()
  }

  /** The next reply from the server, in order. */
  read(): Promise<SmtpReply> {
    const ready = this.replies.shift()
    if (ready) return Promise.resolve(ready)
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        reject(new Error(`no SMTP reply within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer)
          resolve(r)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
    })
  }

  private receive(chunk: string): void {
    this.buffered += chunk
    for (let eol = this.buffered.indexOf('\n'); eol >= 0; eol = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, eol).replace(/\r$/, '')
      this.buffered = this.buffered.slice(eol + 1)
      this.replyLines.push(line)
      // "250-..." continues a multi-line reply; "250 ..." or a bare "250" ends it.
      if (line.charAt(3) !== '-') {
        const reply = parseReply(this.replyLines)
        this.replyLines = []
        const waiter = this.waiter
        this.waiter = undefined
        if (waiter) waiter.resolve(reply)
        else this.replies.push(reply)
      }
    }
  }

  private fail(e: Error): void {
    this.failure ??= e
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(this.failure)
  }
}

export interface SendMailOptions {
  port: number
  host?: string
  from: string
  to: readonly string[]
  /** The whole message: header lines, an empty line, the body. Line endings are normalised. */
  body: string
  helo?: string
  timeoutMs?: number
  /**
   * XCLIENT attributes sent after the first EHLO (see SmtpSession.xclient); the transaction then
   * continues after the server's new greeting and a second EHLO.
   */
  xclient?: Record<string, string>
}

export interface SendMailResult {
  banner: SmtpReply
  /** The reply to the last EHLO (after XCLIENT, the second one). */
  ehloReply: SmtpReply
  /** The reply to XCLIENT (220 on success) when `xclient` was given. */
  xclientReply?: SmtpReply
  mailReply: SmtpReply
  /** One reply per address in `to`, in order. */
  rcptReplies: SmtpReply[]
  /** The reply to DATA when it was not 354 (e.g. 554 no valid recipients), else the end-of-data reply. */
  dataReply: SmtpReply
}

/**
 * One complete SMTP transaction. Every command is sent whatever the previous reply was, so a test
 * sees exactly what the server answers at each step (a rejected MAIL makes RCPT get 503, and so on).
 */
export async function sendMail(opts: SendMailOptions): Promise<SendMailResult> {
  const { session, banner } = await SmtpSession.open(opts.port, opts.host, opts.timeoutMs)
  try {
    let ehloReply = await session.ehlo(opts.helo)
    let xclientReply: SmtpReply | undefined
    if (opts.xclient) {
      xclientReply = await session.xclient(opts.xclient)
      // Only a successful XCLIENT starts a new session that needs a new EHLO.
      if (xclientReply.code === 220) ehloReply = await session.ehlo(opts.helo)
    }
    const mailReply = await session.mailFrom(opts.from)
    const rcptReplies: SmtpReply[] = []
    for (const rcpt of opts.to) rcptReplies.push(await session.rcptTo(rcpt))
    const dataReply = await session.data(opts.body)
    await session.quit()
    return { banner, ehloReply, ...(xclientReply ? { xclientReply } : {}), mailReply, rcptReplies, dataReply }
  } finally {
    session.close()
  }
}
