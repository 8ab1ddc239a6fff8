// What every command group gets (the context) and the plumbing they share: dispatch to a
// subcommand, printing an answer as JSON or for humans, and following list pages.

import type { Api, ApiRequest } from './client.js'
import { BadAnswer } from './client.js'
import type { Io } from './io.js'
import { HelpRequested, UsageError } from './args.js'

export interface Ctx {
  /** --json: print the daemon's JSON as it is. */
  readonly json: boolean
  readonly io: Io
  /**
   * The daemon's API, set up on first use: `token new` and --help need neither a URL nor a
   * token. The token, when one is given, goes with every request: even the lookup endpoint
   * needs it when the daemon's HTTP listener is not on loopback (admin.readEndpoints).
   */
  api(): Promise<Api>
}

export type Command = (ctx: Ctx, args: readonly string[]) => Promise<number>

export interface Group {
  readonly name: string
  /** The group's usage, printed by `--help` and after a usage error. */
  readonly usage: string
  readonly run: Command
}

/** A group's run(): the first argument picks the subcommand. */
export function subcommands(commands: Readonly<Record<string, Command>>): Command {
  // async, so that a command throwing before its first await still rejects rather than throws.
  return async (ctx, args) => {
    const [name, ...rest] = args
    if (name === '--help' || name === '-h') throw new HelpRequested()
    if (name === undefined) throw new UsageError('missing subcommand')
    const command = Object.hasOwn(commands, name) ? commands[name] : undefined
    if (!command) throw new UsageError(`unknown subcommand ${JSON.stringify(name)}`)
    return command(ctx, rest)
  }
}

/** The daemon's JSON on one line with --json, else the human rendering. */
export function print(ctx: Ctx, body: unknown, human: () => string): void {
  ctx.io.out(ctx.json ? `${JSON.stringify(body)}\n` : human())
}

export interface ListOptions {
  /** The array's key in the page object (`accounts`). */
  readonly key: string
  /** The query parameter `next` goes back in: `after`, or `before` for the audit log. */
  readonly cursor: 'after' | 'before'
  /** Follow `next` to the end. */
  readonly all: boolean
}

/**
 * One page, or with `all` every page. `body` is what --json prints: the page as it is, or an
 * object with the concatenated array. Without `all`, a note on stderr says when more follow.
 */
export async function fetchList<T>(ctx: Ctx, api: Api, req: ApiRequest, o: ListOptions): Promise<{ body: unknown; items: T[] }> {
  const items: T[] = []
  const seen = new Set<string>()
  let cursor: string | undefined
  for (;;) {
    const query = cursor === undefined ? req.query : { ...req.query, [o.cursor]: cursor }
    const { body } = await api.send<Record<string, unknown> | undefined>({ ...req, query })
    const page = body?.[o.key]
    if (!Array.isArray(page)) throw new BadAnswer(`${req.path}: the answer has no ${o.key} list`)
    items.push(...(page as T[]))
    const next = typeof body?.next === 'string' || typeof body?.next === 'number' ? String(body.next) : undefined
    if (!o.all) {
      if (next !== undefined) ctx.io.err(`mailhostctl: more ${o.key} follow: add --all to list them all\n`)
      return { body, items }
    }
    if (next === undefined) return { body: { [o.key]: items }, items }
    // A daemon handing out the same cursor twice would keep us here for ever.
    if (seen.has(next)) throw new BadAnswer(`${req.path}: the daemon returned the page cursor ${JSON.stringify(next)} twice`)
    seen.add(next)
    cursor = next
  }
}
