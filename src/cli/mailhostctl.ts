#!/usr/bin/env node
// mailhostctl: the command-line client of a running mailhostd.
// Exit codes (stable, for scripts): 0 found / success, 1 not found, 2 temporary or
// configuration failure answered by the daemon, 64 usage error, 69 daemon unreachable.

import { parseArgs } from 'node:util'
import { DaemonUnreachable, DEFAULT_URL, getJson } from './client.js'

export const EXIT = { OK: 0, NOT_FOUND: 1, FAILURE: 2, USAGE: 64, UNAVAILABLE: 69 } as const

const USAGE = `usage: mailhostctl [--url URL] [--json] <command> [args]

commands:
  lookup <map> <key>   ask the daemon what Postfix would be told, and which layer answered
                       maps: transport, recipient, alias, local/<backend-id>

options:
  --url URL   the daemon's HTTP listener (default $MAILHOSTD_URL or ${DEFAULT_URL})
  --json      machine-readable output

exit codes: 0 found, 1 not found, 2 temporary/configuration failure, 64 usage, 69 unreachable`

interface LookupReply {
  map: string
  key: string
  outcome: 'found' | 'notfound' | 'temp' | 'perm'
  value?: string
  reason?: string
  layer: string
  elapsedMs: number
}

const LAYER_TEXT: Record<string, string> = {
  cache: 'fresh cache',
  stale: 'stale cache (directory failing)',
  directory: 'directory',
  rules: 'address rules (no directory query)',
  none: 'none (no answer available)',
}

async function lookup(url: string, json: boolean, args: string[]): Promise<number> {
  if (args.length !== 2) return usage('lookup needs <map> <key>')
  const [map, key] = args as [string, string]
  const { status, body } = await getJson<LookupReply & { detail?: string }>(url, 'v1/lookup', { map, key })
  if (status !== 200) {
    process.stderr.write(`mailhostctl: daemon answered ${status}: ${body.detail ?? JSON.stringify(body)}\n`)
    return EXIT.FAILURE
  }
  if (json) process.stdout.write(`${JSON.stringify(body)}\n`)
  else {
    const rows: [string, string][] = [
      ['map', body.map],
      ['key', body.key],
      ['outcome', body.outcome],
      [body.outcome === 'found' ? 'value' : 'reason', body.value ?? body.reason ?? ''],
      ['layer', LAYER_TEXT[body.layer] ?? body.layer],
      ['time', `${body.elapsedMs.toFixed(3)} ms`],
    ]
    process.stdout.write(rows.map(([k, v]) => `${k.padEnd(8)} ${v}`).join('\n') + '\n')
  }
  return body.outcome === 'found' ? EXIT.OK : body.outcome === 'notfound' ? EXIT.NOT_FOUND : EXIT.FAILURE
}

function usage(problem?: string): number {
  if (problem) process.stderr.write(`mailhostctl: ${problem}\n`)
  process.stderr.write(`${USAGE}\n`)
  return EXIT.USAGE
}

async function main(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      options: { url: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    })
  } catch (e) {
    return usage((e as Error).message)
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    return EXIT.OK
  }
  const url = values.url ?? process.env.MAILHOSTD_URL ?? DEFAULT_URL
  const [command, ...rest] = positionals
  try {
    if (command === 'lookup') return await lookup(url, values.json ?? false, rest)
    return usage(command ? `unknown command ${command}` : 'no command given')
  } catch (e) {
    if (e instanceof DaemonUnreachable) {
      process.stderr.write(`mailhostctl: ${e.message}\n`)
      return EXIT.UNAVAILABLE
    }
    throw e
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    process.stderr.write(`mailhostctl: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exitCode = EXIT.FAILURE
  },
)
