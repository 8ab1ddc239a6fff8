// Dovecot's doveadm HTTP API (config `doveadm`): one command per request to one server,
// `POST http://<address>:<port>/doveadm/v1` with `[[command, parameters, tag]]`, answered with
// `[["doveadmResponse", result, tag]]` or `[["error", {type, exitCode}, tag]]` (Dovecot 2.3 and 2.4
// alike). The API key travels only in the Authorization header and is never logged.

import { toMs } from '../config/duration.js'
import type { Config } from '../config/schema.js'
import { ErrorCodes, MailhostdError } from '../errors.js'

export type DoveadmConfig = NonNullable<Config['doveadm']>

/**
 * The most of a reply mailhostd reads (docs/pools.md, "Open sessions, and the session watch").
 * `who` answers one row per user and service, about 110 bytes each (username, connections,
 * service, pids, ips), so a member with 100,000 sessions answers about 11 MB and 32 MiB leaves
 * room for three times that. A larger reply would have mailhostd buffer without bound whatever
 * the member (or something posing as one) sends: the request fails instead.
 */
export const MAX_DOVEADM_REPLY_BYTES = 32 * 1024 * 1024

export interface DoveadmLimits {
  /** The most of a reply to read; MAX_DOVEADM_REPLY_BYTES unless a test wants a small one. */
  readonly maxReplyBytes?: number
}

/** The doveadm HTTP API's URL on a server (an IPv6 address goes in brackets). */
export function doveadmUrl(address: string, port: number): string {
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}/doveadm/v1`
}

/** Why a command did not run, or its reply could not be read: the message names the server, never the key. */
export class DoveadmError extends MailhostdError {
  constructor(message: string, code: typeof ErrorCodes.DOVEADM_FAILED | typeof ErrorCodes.DOVEADM_REPLY_TOO_LARGE = ErrorCodes.DOVEADM_FAILED) {
    super(code, message)
    this.name = 'DoveadmError'
  }
}

/** Runs one command on the server at `address`; resolves to its result, rejects with DoveadmError. */
export async function doveadmCommand(c: DoveadmConfig, address: string, command: string, parameters: Record<string, unknown>, limits: DoveadmLimits = {}): Promise<unknown> {
  const url = doveadmUrl(address, c.port)
  const timeoutMs = toMs(c.timeout)
  const failed = (e: unknown) =>
    new DoveadmError(`doveadm at ${url}: ${(e as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : ((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message)}`)
  let res: Response
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `X-Dovecot-API ${Buffer.from(c.apiKey).toString('base64')}` },
      body: JSON.stringify([[command, parameters, 'c1']]),
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch (e) {
    throw failed(e)
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined)
    throw new DoveadmError(`doveadm at ${url} answered HTTP ${res.status}`)
  }
  const text = await readCapped(res, limits.maxReplyBytes ?? MAX_DOVEADM_REPLY_BYTES, `doveadm ${command} at ${url}`, failed)
  let reply: unknown
  try {
    reply = JSON.parse(text)
  } catch {
    throw new DoveadmError(`doveadm at ${url} answered something that is not JSON`)
  }
  const first = Array.isArray(reply) && Array.isArray(reply[0]) ? (reply[0] as unknown[]) : undefined
  if (first?.[0] === 'doveadmResponse') return first[1]
  if (first?.[0] === 'error') {
    const detail = first[1] as { type?: unknown; exitCode?: unknown } | undefined
    const type = typeof detail?.type === 'string' ? detail.type : 'error'
    const exit = typeof detail?.exitCode === 'number' ? ` ${detail.exitCode}` : ''
    throw new DoveadmError(`doveadm ${command} at ${url} failed (${type}${exit})`)
  }
  throw new DoveadmError(`doveadm at ${url} answered an unexpected reply`)
}

/**
 * The body as text, read as it arrives and given up (the connection closed) at the first byte
 * beyond `maxBytes`, or at once when the declared length says it would be. A body cut short by
 * the timeout or the peer is a DoveadmError like any failed request.
 */
async function readCapped(res: Response, maxBytes: number, what: string, failed: (e: unknown) => DoveadmError): Promise<string> {
  const tooLarge = () => new DoveadmError(`${what} answered more than ${maxBytes} bytes: not read (MAX_DOVEADM_REPLY_BYTES)`, ErrorCodes.DOVEADM_REPLY_TOO_LARGE)
  const declared = Number(res.headers.get('content-length') ?? Number.NaN)
  if (res.body === null) return ''
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  if (declared > maxBytes) {
    await reader.cancel().catch(() => undefined)
    throw tooLarge()
  }
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    let next: Awaited<ReturnType<typeof reader.read>>
    try {
      next = await reader.read()
    } catch (e) {
      throw failed(e)
    }
    if (next.done) break
    size += next.value.byteLength
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined)
      throw tooLarge()
    }
    chunks.push(next.value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** The users with live sessions on the server (`doveadm who`: one row per user with `username`). */
export async function doveadmWho(c: DoveadmConfig, address: string, limits: DoveadmLimits = {}): Promise<string[]> {
  const rows = await doveadmCommand(c, address, 'who', {}, limits)
  if (!Array.isArray(rows)) throw new DoveadmError(`doveadm who at ${doveadmUrl(address, c.port)} answered no list`)
  return rows.flatMap((r) => (r !== null && typeof r === 'object' && typeof (r as { username?: unknown }).username === 'string' ? [(r as { username: string }).username] : []))
}
