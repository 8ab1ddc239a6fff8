// Dovecot's doveadm HTTP API (config `doveadm`): one command per request to one server,
// `POST http://<address>:<port>/doveadm/v1` with `[[command, parameters, tag]]`, answered with
// `[["doveadmResponse", result, tag]]` or `[["error", {type, exitCode}, tag]]` (Dovecot 2.3 and 2.4
// alike). The API key travels only in the Authorization header and is never logged.

import { toMs } from '../config/duration.js'
import type { Config } from '../config/schema.js'

export type DoveadmConfig = NonNullable<Config['doveadm']>

/** The doveadm HTTP API's URL on a server (an IPv6 address goes in brackets). */
export function doveadmUrl(address: string, port: number): string {
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}/doveadm/v1`
}

/** Why a command did not run: the message names the server, never the key. */
export class DoveadmError extends Error {}

/** Runs one command on the server at `address`; resolves to its result, rejects with DoveadmError. */
export async function doveadmCommand(c: DoveadmConfig, address: string, command: string, parameters: Record<string, unknown>): Promise<unknown> {
  const url = doveadmUrl(address, c.port)
  let res: Response
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `X-Dovecot-API ${Buffer.from(c.apiKey).toString('base64')}` },
      body: JSON.stringify([[command, parameters, 'c1']]),
      signal: AbortSignal.timeout(toMs(c.timeout)),
    })
  } catch (e) {
    throw new DoveadmError(`doveadm at ${url}: ${(e as Error).name === 'TimeoutError' ? `no answer within ${toMs(c.timeout)} ms` : ((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message)}`)
  }
  const text = await res.text()
  if (!res.ok) throw new DoveadmError(`doveadm at ${url} answered HTTP ${res.status}`)
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

/** The users with live sessions on the server (`doveadm who`: one row per user with `username`). */
export async function doveadmWho(c: DoveadmConfig, address: string): Promise<string[]> {
  const rows = await doveadmCommand(c, address, 'who', {})
  if (!Array.isArray(rows)) throw new DoveadmError(`doveadm who at ${doveadmUrl(address, c.port)} answered no list`)
  return rows.flatMap((r) => (r !== null && typeof r === 'object' && typeof (r as { username?: unknown }).username === 'string' ? [(r as { username: string }).username] : []))
}
