// `mailhostctl move ...`: moving mailboxes between backends, on /v1/moves. A move holds the
// account's mail in the front-ends' queues until it is completed or aborted.

import { integer, parse, UsageError } from '../args.js'
import { apiPath } from '../client.js'
import { fetchList, print, subcommands, type Ctx, type Group } from '../command.js'
import { EXIT } from '../exit.js'
import { keyValue, table, text } from '../table.js'

export interface Move {
  id: number
  account: string
  source: { backend: string | null; mailHost: string }
  target: string
  state: string
  detail: string | null
  actor: string
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

const USAGE = `usage: mailhostctl [global options] move <subcommand>

  start --target B <address>...     move these accounts to backend B
  start --target B --from A [--limit N]
                                    move (up to N of) the accounts on backend A
  list [--state S] [--account A] [--active] [--limit N] [--all]
  show <id>
  complete <id> [--force]           switch the account to the target; --force when the state
                                    is failed or pending and you copied the mailbox yourself
  abort <id>                        leave the account where it was

While a move is unfinished, mail for the account waits in the front-ends' queues and logins get
a temporary failure. States: pending, copying, copied, completed, failed, aborted.`

const source = (m: Move) => text(m.source?.backend ?? m.source?.mailHost)

export function moveTable(moves: readonly Move[]): string {
  return table(moves, [
    { header: 'ID', value: (m) => text(m.id), align: 'right' },
    { header: 'ACCOUNT', value: (m) => text(m.account) },
    { header: 'SOURCE', value: source },
    { header: 'TARGET', value: (m) => text(m.target) },
    { header: 'STATE', value: (m) => text(m.state) },
    { header: 'UPDATED', value: (m) => text(m.updatedAt) },
  ])
}

export function moveBlock(m: Move): string {
  return keyValue([
    ['id', text(m.id)],
    ['account', text(m.account)],
    ['source', m.source?.mailHost && m.source.backend ? `${m.source.backend} (${m.source.mailHost})` : source(m)],
    ['target', text(m.target)],
    ['state', text(m.state)],
    ['actor', text(m.actor)],
    ['created', text(m.createdAt)],
    ['updated', text(m.updatedAt)],
    ['finished', text(m.finishedAt)],
    ['detail', text(m.detail)],
  ])
}

/** A move id is a positive number: anything else is a typo better caught here than as a 400. */
function moveId(value: string): string {
  if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`a move id is a positive number, not ${JSON.stringify(value)}`)
  return value
}

async function start(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { target: { type: 'string' }, from: { type: 'string' }, limit: { type: 'string' } },
    [0, Infinity],
  )
  if (values.target === undefined) throw new UsageError('--target is required')
  if (values.from !== undefined && positionals.length > 0) throw new UsageError('give either addresses or --from, not both')
  if (values.from === undefined && positionals.length === 0) throw new UsageError('give the addresses to move, or --from B')
  if (values.limit !== undefined && values.from === undefined) throw new UsageError('--limit goes with --from')
  const body =
    values.from === undefined
      ? { target: values.target, accounts: positionals }
      : { target: values.target, fromBackend: values.from, ...(values.limit === undefined ? {} : { limit: integer('limit', values.limit, 1) }) }
  const { body: answer } = await (await ctx.api()).send<{ moves: Move[] }>({ method: 'POST', path: apiPath('moves'), body })
  print(ctx, answer, () => moveTable(answer.moves ?? []))
  return EXIT.OK
}

async function listMoves(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values } = parse(
    args,
    { state: { type: 'string' }, account: { type: 'string' }, active: { type: 'boolean' }, limit: { type: 'string' }, all: { type: 'boolean' } },
    [0, 0],
  )
  const query = { state: values.state, account: values.account, active: values.active ? 'true' : undefined, limit: integer('limit', values.limit, 1) }
  const { body, items } = await fetchList<Move>(ctx, await ctx.api(), { method: 'GET', path: apiPath('moves'), query }, { key: 'moves', cursor: 'after', all: values.all ?? false })
  print(ctx, body, () => moveTable(items))
  return EXIT.OK
}

async function show(ctx: Ctx, args: readonly string[]): Promise<number> {
  const id = moveId(parse(args, {}, [1, 1], '<id>').positionals[0]!)
  const { body } = await (await ctx.api()).send<Move>({ method: 'GET', path: apiPath('moves', id) })
  print(ctx, body, () => moveBlock(body))
  return EXIT.OK
}

async function complete(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { force: { type: 'boolean' } }, [1, 1], '<id>')
  const id = moveId(positionals[0]!)
  const query = { force: values.force ? 'true' : undefined }
  const { body } = await (await ctx.api()).send<Move>({ method: 'POST', path: apiPath('moves', id, 'complete'), query })
  print(ctx, body, () => moveBlock(body))
  return EXIT.OK
}

async function abort(ctx: Ctx, args: readonly string[]): Promise<number> {
  const id = moveId(parse(args, {}, [1, 1], '<id>').positionals[0]!)
  const { body } = await (await ctx.api()).send<Move>({ method: 'POST', path: apiPath('moves', id, 'abort') })
  print(ctx, body, () => moveBlock(body))
  return EXIT.OK
}

export const moves: Group = {
  name: 'move',
  usage: USAGE,
  run: subcommands({ start, list: listMoves, show, complete, abort }),
}
