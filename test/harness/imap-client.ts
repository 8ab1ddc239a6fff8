// A small IMAP client for tests that log in through Dovecot or nginx: LOGIN (quoted strings or
// synchronising literals, as the arguments need), SELECT, FETCH of the Subject header, LOGOUT.
// Tagged results are returned, not thrown: tests assert on NO/BAD answers and their response
// codes ([UNAVAILABLE], [AUTHENTICATIONFAILED]), so only a broken connection or a server that
// stops answering is an error. Also the line reader the POP3 client shares.

import { connect, type Socket } from 'node:net'

/** Buffers a socket's bytes and hands out CRLF lines or exact byte counts, in order. */
export class LineReader {
  private buffer = Buffer.alloc(0)
  private waiter: (() => void) | undefined
  private failure: Error | undefined

  constructor(
    readonly socket: Socket,
    private readonly timeoutMs: number,
    what: string,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk])
      this.wake()
    })
    socket.on('error', (e) => this.fail(e))
    socket.on('close', () => this.fail(new Error(`${what} connection closed by the server`)))
  }

  /** The next line without its CRLF (or LF). */
  async line(): Promise<string> {
    for (;;) {
      const eol = this.buffer.indexOf('\n')
      if (eol >= 0) {
        const line = this.buffer.subarray(0, eol).toString('utf8').replace(/\r$/, '')
        this.buffer = this.buffer.subarray(eol + 1)
        return line
      }
      await this.more()
    }
  }

  /** Exactly n bytes (an IMAP literal). */
  async bytes(n: number): Promise<Buffer> {
    while (this.buffer.length < n) await this.more()
    const out = this.buffer.subarray(0, n)
    this.buffer = this.buffer.subarray(n)
    return out
  }

  write(data: string | Buffer): void {
    this.socket.write(data)
  }

  close(): void {
    this.socket.destroy()
  }

  private more(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        reject(new Error(`no answer within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.waiter = () => {
        clearTimeout(timer)
        this.waiter = undefined
        if (this.failure && !this.buffer.length) reject(this.failure)
        else resolve()
      }
    })
  }

  private wake(): void {
    this.waiter?.()
  }

  private fail(e: Error): void {
    this.failure ??= e
    this.wake()
  }
}

/** Opens a TCP connection to a loopback server. */
export function connectTo(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host })
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}

export interface ImapResult {
  status: 'OK' | 'NO' | 'BAD'
  /** The response code in brackets, e.g. `UNAVAILABLE` or `AUTHENTICATIONFAILED`, if any. */
  code?: string
  /** The text after the status and code. */
  text: string
  /** The tagged line as received. */
  line: string
  /** Untagged responses (`* ...`) that came before it, literals inlined. */
  untagged: string[]
  /**
   * The server closed the connection after an untagged `* BYE` or `* BAD` instead of answering
   * the command (nginx's "internal server error"); status is then BAD and text that line's.
   */
  closed?: boolean
}

/** Quoted string when the value allows it, otherwise a synchronising literal (RFC 3501 4.3). */
function needsLiteral(value: string): boolean {
  // Controls and non-ASCII cannot go in a quoted string (RFC 3501 "QUOTED-CHAR").
  return [...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) > 0x7e) || value.length > 200
}

const TAGGED = /^(\S+) (OK|NO|BAD)(?: \[([^\]]*)\])? ?(.*)$/

export class ImapSession {
  private seq = 0

  /** When the connection closed (Date.now()), by either side: a server that dies ends it at once. */
  readonly closed: Promise<number>

  private constructor(private readonly reader: LineReader) {
    this.closed = new Promise((resolve) => reader.socket.once('close', () => resolve(Date.now())))
  }

  /** Connects and reads the greeting (`* OK ...`, or `* BYE ...` from a server that refuses). */
  static async open(port: number, opts: { host?: string; timeoutMs?: number } = {}): Promise<{ session: ImapSession; greeting: string }> {
    const socket = await connectTo(port, opts.host)
    const reader = new LineReader(socket, opts.timeoutMs ?? 30_000, 'IMAP')
    return { session: new ImapSession(reader), greeting: await reader.line() }
  }

  /** LOGIN; a user name or password that a quoted string cannot carry goes as a literal. */
  login(user: string, password: string): Promise<ImapResult> {
    return this.command(['LOGIN', { arg: user }, { arg: password }])
  }

  select(mailbox = 'INBOX'): Promise<ImapResult> {
    return this.command(['SELECT', { arg: mailbox }])
  }

  /** The Subject of message `seq` of the selected mailbox, or undefined when the FETCH fails. */
  async subject(seq = 1): Promise<string | undefined> {
    const r = await this.command([`FETCH ${seq} (BODY.PEEK[HEADER.FIELDS (SUBJECT)])`])
    if (r.status !== 'OK') return undefined
    // The header arrives as a literal inlined into the FETCH line: "... {27}" + "Subject: ...".
    const m = /(?:^|\s)Subject:[ \t]*([^\r\n]*)/i.exec(r.untagged.join('\n'))
    return m?.[1]?.trim()
  }

  /**
   * The server's ID fields (RFC 2971 `ID NIL`), names lower-cased; empty when it sends none or
   * refuses. Through a proxy, after LOGIN, it is the backend that answers.
   */
  async id(): Promise<Record<string, string>> {
    const r = await this.command(['ID NIL'])
    const line = r.untagged.find((l) => /^\* ID \(/i.test(l))
    if (r.status !== 'OK' || !line) return {}
    const strings = [...line.matchAll(/"((?:[^"\\]|\\.)*)"|NIL/g)].map((m) => (m[1] === undefined ? '' : m[1].replace(/\\(.)/g, '$1')))
    const fields: Record<string, string> = {}
    for (let i = 0; i + 1 < strings.length; i += 2) fields[strings[i]!.toLowerCase()] = strings[i + 1]!
    return fields
  }

  async logout(): Promise<ImapResult> {
    const r = await this.command(['LOGOUT'])
    this.close()
    return r
  }

  close(): void {
    this.reader.close()
  }

  /**
   * Sends one command; words are sent as they are, `{arg}` parts are quoted or sent as literals
   * (waiting for the server's `+` continuation). Resolves with the tagged result.
   */
  async command(parts: readonly (string | { arg: string })[]): Promise<ImapResult> {
    const tag = `a${++this.seq}`
    let pending = tag
    for (const part of parts) {
      if (typeof part === 'string') {
        pending += ` ${part}`
        continue
      }
      if (!needsLiteral(part.arg)) {
        pending += ` "${part.arg.replace(/[\\"]/g, (c) => `\\${c}`)}"`
        continue
      }
      const bytes = Buffer.from(part.arg, 'utf8')
      this.reader.write(`${pending} {${bytes.length}}\r\n`)
      const cont = await this.reader.line()
      if (!cont.startsWith('+')) return this.result(tag, cont, [])
      this.reader.write(bytes)
      pending = ''
    }
    this.reader.write(`${pending}\r\n`)
    return this.readResult(tag)
  }

  private async readResult(tag: string): Promise<ImapResult> {
    const untagged: string[] = []
    for (;;) {
      let line: string
      try {
        line = await this.reader.line()
      } catch (e) {
        const last = untagged.at(-1)
        if (!last || !/^\* (BYE|BAD)\b/.test(last)) throw e
        return { status: 'BAD', text: last.replace(/^\* (BYE|BAD) ?/, ''), line: last, untagged, closed: true }
      }
      // A line ending in {n} is followed by n bytes of literal, then the rest of the line.
      for (let m = /\{(\d+)\}$/.exec(line); m; m = /\{(\d+)\}$/.exec(line)) {
        const literal = await this.reader.bytes(Number(m[1]))
        line = line.slice(0, m.index) + literal.toString('utf8') + (await this.reader.line())
      }
      if (line.startsWith(`${tag} `)) return this.result(tag, line, untagged)
      untagged.push(line)
    }
  }

  private result(tag: string, line: string, untagged: string[]): ImapResult {
    const m = TAGGED.exec(line)
    if (!m || m[1] !== tag) throw new Error(`unexpected IMAP answer to ${tag}: ${line}`)
    const code = m[3]?.split(' ')[0]
    return { status: m[2] as ImapResult['status'], ...(code ? { code } : {}), text: m[4] ?? '', line, untagged }
  }
}

export interface ImapLoginOutcome {
  login: ImapResult
  /** The Subject of the first INBOX message, when the login succeeded. */
  subject?: string
}

/** Connect, LOGIN, and on success SELECT INBOX, read the first Subject and LOGOUT. */
export async function imapLogin(port: number, user: string, password: string, timeoutMs = 30_000): Promise<ImapLoginOutcome> {
  const { session } = await ImapSession.open(port, { timeoutMs })
  try {
    const login = await session.login(user, password)
    if (login.status !== 'OK') return { login }
    const select = await session.select()
    if (select.status !== 'OK') throw new Error(`SELECT INBOX failed after login: ${select.line}`)
    const subject = await session.subject(1)
    await session.logout()
    return { login, ...(subject === undefined ? {} : { subject }) }
  } finally {
    session.close()
  }
}
