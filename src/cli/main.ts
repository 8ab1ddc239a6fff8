// mailhostctl's global options and dispatch: `mailhostctl [--url URL] [--token-file FILE]
// [--json] <command> ...`. Everything a command throws ends here and becomes one line on stderr
// and an exit code (exit.ts).

import { parseArgs } from 'node:util'
import { HelpRequested, UsageError } from './args.js'
import { AdminClient, DEFAULT_URL, type Api, type ClientOptions } from './client.js'
import type { Ctx, Group } from './command.js'
import { errorLine, EXIT, exitFor } from './exit.js'
import type { Io } from './io.js'
import { readToken } from './secrets.js'
import { accounts } from './commands/accounts.js'
import { audit } from './commands/audit.js'
import { backends } from './commands/backends.js'
import { domains } from './commands/domains.js'
import { lookup } from './commands/lookup.js'
import { moves } from './commands/moves.js'
import { placement } from './commands/placement.js'
import { pools } from './commands/pools.js'
import { token } from './commands/token.js'

export const USAGE = `usage: mailhostctl [--url URL] [--token-file FILE] [--json] <command> ...

commands:
  lookup <map> <key>       what Postfix would be told, and which layer answered
  account list|show|create|update|delete
  domain list|show|create|update|delete
  backend list|show|create|update|drain|maintenance|activate|delete
  pool status|add-member|remove-member|weight|drain|maintenance|activate|flush|move-user|pins
  placement                which backend a new account would get
  move start|list|show|complete|abort
  audit                    the audit log
  token new <name>         a new API token and its configuration line (offline)
  mailhostctl <command> --help shows a command's options.

options:
  --url URL          the daemon's HTTP listener ($MAILHOSTD_URL, default ${DEFAULT_URL})
  --token-file FILE  the admin API token (default: $MAILHOSTD_TOKEN)
  --json             the daemon's JSON instead of tables

exit codes: 0 ok (lookup: found), 1 not found, 2 daemon failure (lookup: temporary or
configuration failure), 3 refused (invalid or conflicting request), 64 usage, 69 daemon
unreachable, 77 no token or not allowed`

const GROUPS: ReadonlyMap<string, Group> = new Map([accounts, audit, backends, domains, lookup, moves, placement, pools, token].map((g) => [g.name, g]))

const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/**
 * Splits argv at the command: global options come before it, and everything after it is the
 * command's own (so `account list --domain x` never meets the global parser).
 */
export function splitAtCommand(argv: readonly string[]): { global: string[]; command: string | undefined; rest: string[] } {
  let i = 0
  while (i < argv.length) {
    const a = argv[i]!
    if (a === '--') {
      return { global: argv.slice(0, i), command: argv[i + 1], rest: argv.slice(i + 2) }
    }
    if (!a.startsWith('-') || a === '-') break
    i += a === '--url' || a === '--token-file' ? 2 : 1
  }
  return { global: argv.slice(0, i), command: argv[i], rest: argv.slice(i + 1) }
}

/** The daemon URL, checked: an http(s) URL or a usage error. */
export function daemonUrl(flag: string | undefined, env: Io['env']): string {
  const url = flag ?? (env.MAILHOSTD_URL || DEFAULT_URL)
  let parsed: URL | undefined
  try {
    parsed = new URL(url)
  } catch {
    parsed = undefined
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    throw new UsageError(`${flag === undefined ? '$MAILHOSTD_URL' : '--url'} is not an http:// or https:// URL`)
  }
  return url
}

export type Connect = (opts: ClientOptions) => Api

/** Runs one command line; resolves to the exit code. `connect` is replaced by tests. */
export async function main(argv: readonly string[], io: Io, connect: Connect = (o) => new AdminClient(o)): Promise<number> {
  const { global, command, rest } = splitAtCommand(argv)
  let values
  try {
    values = parseArgs({ args: global, options: GLOBAL_OPTIONS, allowPositionals: false, strict: true }).values
  } catch (e) {
    return usage(io, USAGE, (e as Error).message)
  }
  if (values.help || command === 'help') {
    const group = command === 'help' ? GROUPS.get(rest[0] ?? '') : undefined
    io.out(`${group?.usage ?? USAGE}\n`)
    return EXIT.OK
  }
  if (command === undefined) return usage(io, USAGE, 'no command given')
  const group = GROUPS.get(command)
  if (!group) return usage(io, USAGE, `unknown command ${JSON.stringify(command)}`)

  const ctx: Ctx = {
    json: values.json ?? false,
    io,
    api: async () =>
      connect({
        url: daemonUrl(values.url, io.env),
        token: await readToken(values['token-file'], io.env),
        onRetry: (why) => io.err(`mailhostctl: ${why}; trying once more\n`),
      }),
  }
  try {
    return await group.run(ctx, rest)
  } catch (e) {
    if (e instanceof HelpRequested) {
      io.out(`${group.usage}\n`)
      return EXIT.OK
    }
    if (e instanceof UsageError) return usage(io, group.usage, e.message)
    io.err(errorLine(e))
    return exitFor(e)
  }
}

function usage(io: Io, text: string, problem: string): number {
  io.err(`mailhostctl: ${problem}\n${text}\n`)
  return EXIT.USAGE
}
