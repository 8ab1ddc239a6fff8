// A tiny POP3 client for tests: USER/PASS, STAT, RETR, TOP, QUIT. Answers are returned, not
// thrown (`-ERR` is a result tests assert on); a broken connection or silence is an error.

import { connectTo, LineReader } from './imap-client.js'

export interface Pop3Reply {
  ok: boolean
  /** The text after `+OK` / `-ERR`. */
  text: string
  /** The lines of a multi-line answer, dot-unstuffed, without the final `.`. */
  lines: string[]
}

export class Pop3Session {
  private constructor(private readonly reader: LineReader) {}

  static async open(port: number, opts: { host?: string; timeoutMs?: number } = {}): Promise<{ session: Pop3Session; greeting: Pop3Reply }> {
    const reader = new LineReader(await connectTo(port, opts.host), opts.timeoutMs ?? 30_000, 'POP3')
    const session = new Pop3Session(reader)
    return { session, greeting: await session.reply(false) }
  }

  /** USER then, if accepted, PASS; the PASS reply (or the USER one when that failed). */
  async login(user: string, password: string): Promise<Pop3Reply> {
    const u = await this.command(`USER ${user}`)
    return u.ok ? this.command(`PASS ${password}`) : u
  }

  /** Message count and mailbox size, or undefined after `-ERR`. */
  async stat(): Promise<{ count: number; size: number } | undefined> {
    const r = await this.command('STAT')
    const m = /^(\d+) (\d+)/.exec(r.text)
    return r.ok && m ? { count: Number(m[1]), size: Number(m[2]) } : undefined
  }

  retr(n: number): Promise<Pop3Reply> {
    return this.command(`RETR ${n}`, true)
  }

  top(n: number, bodyLines = 0): Promise<Pop3Reply> {
    return this.command(`TOP ${n} ${bodyLines}`, true)
  }

  async quit(): Promise<Pop3Reply> {
    const r = await this.command('QUIT')
    this.close()
    return r
  }

  close(): void {
    this.reader.close()
  }

  async command(line: string, multiline = false): Promise<Pop3Reply> {
    this.reader.write(`${line}\r\n`)
    return this.reply(multiline)
  }

  private async reply(multiline: boolean): Promise<Pop3Reply> {
    const first = await this.reader.line()
    const m = /^(\+OK|-ERR) ?(.*)$/.exec(first)
    if (!m) throw new Error(`unexpected POP3 answer: ${first}`)
    const ok = m[1] === '+OK'
    const lines: string[] = []
    if (ok && multiline) {
      for (let l = await this.reader.line(); l !== '.'; l = await this.reader.line()) lines.push(l.startsWith('..') ? l.slice(1) : l)
    }
    return { ok, text: m[2] ?? '', lines }
  }
}

export interface Pop3LoginOutcome {
  login: Pop3Reply
  /** The Subject of message 1, when the login succeeded and the mailbox is not empty. */
  subject?: string
  count?: number
}

/** Connect, USER/PASS, and on success STAT, TOP 1 0 for the Subject, QUIT. */
export async function pop3Login(port: number, user: string, password: string, timeoutMs = 30_000): Promise<Pop3LoginOutcome> {
  const { session } = await Pop3Session.open(port, { timeoutMs })
  try {
    const login = await session.login(user, password)
    if (!login.ok) return { login }
    const stat = await session.stat()
    const top = stat && stat.count > 0 ? await session.top(1, 0) : undefined
    const subject = top?.lines.map((l) => /^Subject:\s*(.*)$/i.exec(l)?.[1]).find((s) => s !== undefined)
    await session.quit()
    return { login, ...(stat ? { count: stat.count } : {}), ...(subject === undefined ? {} : { subject: subject.trim() }) }
  } finally {
    session.close()
  }
}
