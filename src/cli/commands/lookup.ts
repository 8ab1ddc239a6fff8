// `mailhostctl lookup <map> <key>`: what Postfix would be told, and which layer answered, from
// GET /v1/lookup (a read token when the daemon's HTTP listener is not on loopback:
// admin.readEndpoints). Its exit codes follow the answer: 0 found, 1 not found, 2
// temporary or configuration failure, or any error answer from the daemon.

import { parse } from '../args.js'
import { apiPath, ApiError } from '../client.js'
import { print, type Ctx, type Group } from '../command.js'
import { errorLine, EXIT } from '../exit.js'
import { keyValue, text } from '../table.js'

interface LookupReply {
  map: string
  key: string
  outcome: 'found' | 'notfound' | 'temp' | 'perm'
  value?: string
  reason?: string
  layer: string
  elapsedMs: number
}

const USAGE = `usage: mailhostctl [global options] lookup <map> <key>

Asks the daemon what Postfix would be told, and which layer answered.
maps: transport, recipient, alias, local/<backend-id>
exit codes: 0 found, 1 not found, 2 temporary or configuration failure`

const LAYER_TEXT: Record<string, string> = {
  cache: 'fresh cache',
  stale: 'stale cache (directory failing)',
  directory: 'directory',
  rules: 'address rules (no directory query)',
  none: 'none (no answer available)',
}

export function lookupText(r: LookupReply): string {
  return keyValue([
    ['map', text(r.map)],
    ['key', text(r.key)],
    ['outcome', text(r.outcome)],
    [r.outcome === 'found' ? 'value' : 'reason', r.value ?? r.reason ?? ''],
    ['layer', LAYER_TEXT[r.layer] ?? r.layer],
    ['time', `${r.elapsedMs.toFixed(3)} ms`],
  ])
}

async function run(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [2, 2], '<map> <key>')
  const [map, key] = positionals as [string, string]
  let body: LookupReply
  try {
    ;({ body } = await (await ctx.api()).send<LookupReply>({ method: 'GET', path: apiPath('lookup'), query: { map, key } }))
  } catch (e) {
    // An error answer is a failure of the lookup (2), whatever its status: 1 means "no such
    // address", which a refused request does not say.
    if (!(e instanceof ApiError)) throw e
    ctx.io.err(errorLine(e))
    return EXIT.FAILURE
  }
  print(ctx, body, () => lookupText(body))
  return body.outcome === 'found' ? EXIT.OK : body.outcome === 'notfound' ? EXIT.NOT_FOUND : EXIT.FAILURE
}

export const lookup: Group = { name: 'lookup', usage: USAGE, run }
