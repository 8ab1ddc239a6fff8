// The sending side of the mail chaos test: an MTA handing a stream of messages to the Postfix
// front-end over SMTP, and doing what a real one does with the answers. 2xx after DATA: the
// message is Postfix's now. 4xx (451 4.3.0 Temporary lookup failure at RCPT, or at DATA when
// cleanup's alias expansion hit a cold key): keep it and try again shortly. 5xx: a permanent
// refusal, which for a recipient the directory holds is as bad as a bounce; recorded, never
// retried. A broken session: every unanswered message is tried again.
//
// Each attempt uses its own envelope sender. smtpd caches every (sender, recipient) resolution,
// failures included, for the life of the process (smtpd_resolve.c, 100 entries): an attempt
// repeated a second later with the same sender could get the cached 451 although mailhostd
// answers again. A real MTA retries after minutes, long after that entry is gone; a test
// retrying after a second needs a fresh key to ask Postfix (and so mailhostd) again.

import { setTimeout as sleep } from 'node:timers/promises'
import { SmtpSession, type SmtpReply } from '../harness/smtp-client.js'
import type { Recipient } from './directory.js'

export interface Outgoing {
  readonly id: number
  readonly rcpt: Recipient
  /** Carries HOLD_HEADER: the front-end's header_checks put it in the hold queue. */
  readonly hold?: boolean
}

export const HOLD_HEADER = 'X-Chaos-Hold: yes'

export interface SenderStats {
  /** Messages Postfix accepted (250 after DATA). */
  accepted: number
  attempts: number
  /** Ids whose attempts got a 4xx at least once before Postfix took them. */
  readonly deferred: Set<number>
  readonly rcpt4xx: { count: number }
  readonly data4xx: { count: number }
  readonly rejected: { id: number; rcpt: string; reply: string }[]
  readonly sessionErrors: string[]
}

/** Messages per SMTP session: fewer handshakes, and smtpd's error limit (20) is never reached. */
const BATCH = 10
/** How soon a deferred message is tried again. */
const RETRY_MS = 1000
/** A message still refused after this many tries is given up: the test then fails. */
const MAX_ATTEMPTS = 400

export const SENDER_DOMAIN = 'sender.test'

export function messageText(m: Outgoing): string {
  return [
    `From: chaos-sender@${SENDER_DOMAIN}`,
    `To: <${m.rcpt.address}>`,
    `Subject: chaos ${m.id}`,
    `Message-ID: <chaos-${m.id}@${SENDER_DOMAIN}>`,
    `X-Chaos-Id: ${m.id}`,
    ...(m.hold ? [HOLD_HEADER] : []),
    '',
    `Message ${m.id} for ${m.rcpt.address} (${m.rcpt.kind}).`,
    '',
  ].join('\r\n')
}

/** The X-Chaos-Id of a received message, or undefined for anything else (a DSN, say). */
export function chaosId(content: string): number | undefined {
  const m = /^X-Chaos-Id: (\d+)$/m.exec(content)
  return m ? Number(m[1]) : undefined
}

interface Pending extends Outgoing {
  attempts: number
  notBefore: number
}

export class Sender {
  readonly stats: SenderStats = {
    accepted: 0,
    attempts: 0,
    deferred: new Set(),
    rcpt4xx: { count: 0 },
    data4xx: { count: 0 },
    rejected: [],
    sessionErrors: [],
  }
  readonly #queue: Pending[] = []
  #open = 0
  #ending = false
  readonly #workers: Promise<void>[]

  constructor(
    private readonly port: number,
    sessions: number,
  ) {
    this.#workers = Array.from({ length: sessions }, () => this.#work())
  }

  send(m: Outgoing): void {
    this.#open++
    this.#queue.push({ ...m, attempts: 0, notBefore: 0 })
  }

  /** Messages neither accepted nor given up yet. */
  get open(): number {
    return this.#open
  }

  /** Resolves once every message was accepted or given up; throws after timeoutMs. */
  async end(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.#open > 0) {
      if (Date.now() > deadline) {
        this.#ending = true
        throw new Error(`${this.#open} messages still not accepted by Postfix after ${timeoutMs} ms`)
      }
      await sleep(100)
    }
    this.#ending = true
    await Promise.all(this.#workers)
  }

  #take(): Pending[] {
    const now = Date.now()
    const batch: Pending[] = []
    for (let i = 0; i < this.#queue.length && batch.length < BATCH; ) {
      if (this.#queue[i]!.notBefore <= now) batch.push(...this.#queue.splice(i, 1))
      else i++
    }
    return batch
  }

  #later(m: Pending): void {
    if (m.attempts >= MAX_ATTEMPTS) {
      this.#open--
      this.stats.rejected.push({ id: m.id, rcpt: m.rcpt.address, reply: `given up after ${m.attempts} attempts` })
      return
    }
    m.notBefore = Date.now() + RETRY_MS
    this.#queue.push(m)
  }

  async #work(): Promise<void> {
    while (!this.#ending) {
      const batch = this.#take()
      if (batch.length === 0) {
        await sleep(50)
        continue
      }
      await this.#session(batch)
    }
  }

  /** One SMTP session for a batch; whatever it did not settle goes back to the queue. */
  async #session(batch: Pending[]): Promise<void> {
    let session: SmtpSession | undefined
    let i = 0
    try {
      const opened = await SmtpSession.open(this.port, '127.0.0.1', 60_000)
      session = opened.session
      if (opened.banner.code !== 220) throw new Error(`banner ${opened.banner.lines.join(' ')}`)
      const ehlo = await session.ehlo('chaos-sender.test')
      if (ehlo.code !== 250) throw new Error(`EHLO ${ehlo.lines.join(' ')}`)
      for (; i < batch.length; i++) {
        const m = batch[i]!
        m.attempts++
        this.stats.attempts++
        const mail = await session.mailFrom(`chaos-${m.id}-${m.attempts}@${SENDER_DOMAIN}`)
        if (mail.code !== 250) throw new Error(`MAIL FROM ${mail.lines.join(' ')}`)
        const rcpt = await session.rcptTo(m.rcpt.address)
        if (rcpt.code !== 250) {
          if (rcpt.code >= 400 && rcpt.code < 500) this.stats.rcpt4xx.count++
          this.#settle(m, rcpt)
          await session.command('RSET')
          continue
        }
        const data = await session.data(messageText(m))
        if (data.code >= 400 && data.code < 500) this.stats.data4xx.count++
        this.#settle(m, data)
      }
      await session.quit().catch(() => undefined)
    } catch (e) {
      this.stats.sessionErrors.push((e as Error).message)
      // The message in flight when the session broke may have been accepted without its reply
      // reaching us; sending it again is what an MTA does (a duplicate, never a loss).
      for (; i < batch.length; i++) this.#later(batch[i]!)
    } finally {
      session?.close()
    }
  }

  #settle(m: Pending, reply: SmtpReply): void {
    if (reply.code >= 200 && reply.code < 300) {
      this.#open--
      this.stats.accepted++
    } else if (reply.code >= 400 && reply.code < 500) {
      this.stats.deferred.add(m.id)
      this.#later(m)
    } else {
      this.#open--
      this.stats.rejected.push({ id: m.id, rcpt: m.rcpt.address, reply: reply.lines.join(' ') })
    }
  }
}
