// One health probe of one backend service: connect, read the greeting, say goodbye. A service is
// healthy when it greets the way its protocol says a server ready for clients greets: SMTP and
// LMTP `220`, IMAP `* OK`, POP3 `+OK`. Anything else is a failure with a short reason that is safe
// to log (error codes and a clipped, printable excerpt of what the peer sent, never more).
//
// A probe never outlives its timeout and never holds more than MAX_GREETING_BYTES of the peer's
// data, and its promise settles only once the socket is closed, so a checker that awaits its
// probes leaves no socket behind.

import { connect } from 'node:net'
import type { ProbedService } from '../resolve/registry.js'

export interface ProbeTarget {
  readonly service: ProbedService
  readonly host: string
  readonly port: number
}

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly reason: string }

/** What the health checker probes with; the TCP prober in production, a fake in unit tests. */
export interface Prober {
  /** Settles within the prober's timeout; an aborted probe settles at once with a failure. */
  probe(target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult>
}

/** Real greetings are one line (SMTP: a few); more than this is not a server worth routing to. */
export const MAX_GREETING_BYTES = 4096
/** How much of an unexpected greeting a failure reason quotes. */
const EXCERPT_CHARS = 60

interface Protocol {
  /** One greeting line: the service is ready, keep reading (SMTP `220-` continuations), or not. */
  judge(line: string): 'ok' | 'more' | 'bad'
  /** The polite goodbye once the greeting was good, so the server logs a clean logout. */
  readonly quit: string
}

const SMTP: Protocol = {
  // RFC 5321 4.2: `220-text` continues a multi-line greeting, `220 text` (or a bare `220`) ends it.
  judge: (line) => (/^220-/.test(line) ? 'more' : /^220(?: |$)/.test(line) ? 'ok' : 'bad'),
  quit: 'QUIT\r\n',
}

const PROTOCOLS: Record<ProbedService, Protocol> = {
  // `delivery` is the route's port: LMTP (RFC 2033) greets exactly like SMTP.
  delivery: SMTP,
  // RFC 9051 7.1: `* OK` is ready; `* PREAUTH` would skip the login a proxy performs, `* BYE` refuses.
  imap: { judge: (line) => (/^\* OK(?: |$)/i.test(line) ? 'ok' : 'bad'), quit: 'a LOGOUT\r\n' },
  pop3: { judge: (line) => (/^\+OK(?: |$)/i.test(line) ? 'ok' : 'bad'), quit: 'QUIT\r\n' },
}

/** A peer's line as a reason may quote it: printable ASCII only, clipped. */
function excerpt(line: string): string {
  const clean = line.replace(/[^\x20-\x7e]/g, '?')
  return clean.length > EXCERPT_CHARS ? `${clean.slice(0, EXCERPT_CHARS)}...` : clean
}

const fail = (reason: string): ProbeResult => ({ ok: false, reason })

/** Probes one service once. Never rejects: every problem is a failed result. */
export function probeService(target: ProbeTarget, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  if (signal?.aborted) return Promise.resolve(fail('probe cancelled'))
  const protocol = PROTOCOLS[target.service]
  return new Promise((resolve) => {
    let verdict: ProbeResult | undefined
    let connected = false
    let pending = ''
    let read = 0
    const socket = connect({ host: target.host, port: target.port })
    const decide = (result: ProbeResult, goodbye?: string): void => {
      if (verdict) return
      verdict = result
      if (goodbye === undefined) socket.destroy()
      // The server answers the goodbye and closes; the timer below still bounds the wait.
      else socket.end(goodbye)
    }
    // One bound for everything: connecting, the greeting and the goodbye.
    const timer = setTimeout(() => {
      decide(fail(connected ? `no greeting within ${timeoutMs} ms` : `no connection within ${timeoutMs} ms`))
      socket.destroy()
    }, timeoutMs)
    const onAbort = (): void => {
      decide(fail('probe cancelled'))
      socket.destroy()
    }
    signal?.addEventListener('abort', onAbort, { once: true })

    socket.on('connect', () => (connected = true))
    socket.on('data', (chunk: Buffer) => {
      // After the verdict (the reply to the goodbye) nothing is kept.
      if (verdict) return
      // latin1 maps each byte to one character: lengths stay byte counts, nothing fails to decode.
      // Bytes past the bound are counted, never kept.
      pending += chunk.subarray(0, Math.max(0, MAX_GREETING_BYTES - read)).toString('latin1')
      read += chunk.length
      for (let eol = pending.indexOf('\n'); eol >= 0 && !verdict; eol = pending.indexOf('\n')) {
        const line = pending.slice(0, eol).replace(/\r$/, '')
        pending = pending.slice(eol + 1)
        const judged = protocol.judge(line)
        if (judged === 'ok') decide({ ok: true }, protocol.quit)
        else if (judged === 'bad') decide(fail(`unexpected greeting: ${excerpt(line)}`))
      }
      if (!verdict && read > MAX_GREETING_BYTES) decide(fail(`no complete greeting in ${MAX_GREETING_BYTES} bytes`))
    })
    // Errors after the verdict (a reset while saying goodbye) change nothing.
    socket.on('error', (e: NodeJS.ErrnoException) => decide(fail(`connection failed: ${e.code ?? 'socket error'}`)))
    socket.on('close', () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      // Without a verdict yet, the peer closed (a failed connect has decided on its error).
      decide(fail('connection closed before the greeting'))
      resolve(verdict!)
    })
  })
}

/** Probes over TCP with one timeout for every probe. */
export class TcpProber implements Prober {
  constructor(private readonly timeoutMs: number) {}

  probe(target: ProbeTarget, signal?: AbortSignal): Promise<ProbeResult> {
    return probeService(target, this.timeoutMs, signal)
  }
}
