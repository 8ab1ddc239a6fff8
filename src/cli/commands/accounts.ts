// `mailhostctl account ...`: mailboxes, on /v1/accounts.

import { randomUUID } from 'node:crypto'
import { defined, exclusive, integer, parse, UsageError } from '../args.js'
import { apiPath, DaemonUnreachable } from '../client.js'
import { fetchList, print, subcommands, type Ctx, type Group } from '../command.js'
import { EXIT } from '../exit.js'
import { readPassword } from '../secrets.js'
import { keyValue, list, table, text, yesNo } from '../table.js'

export interface Account {
  address: string
  backend: string | null
  mailHost: string
  status: string
  aliases: string[]
  sendAs: string[]
  hasPassword: boolean
  moving: boolean
}

const USAGE = `usage: mailhostctl [global options] account <subcommand>

  list [--domain D] [--backend B] [--status S] [--limit N] [--all]
  show <address>
  create <address> [--backend B] [--password-stdin | --password-file F] [--alias A]...
         [--send-as S]... [--disabled] [--idempotency-key K]
  update <address> [--password-stdin | --password-file F | --no-password] [--status S]
         [--alias A]... [--no-aliases] [--send-as S]... [--no-send-as]
  delete <address>

list shows one page (--limit, default 100) unless --all. create without --backend lets the
placement policy choose. On update, --alias and --send-as replace the whole list. A password
is read from standard input or a file, never the command line; one trailing newline is
removed. create repeats itself once, with the same Idempotency-Key (random unless given), when
the connection breaks.`

export function accountTable(accounts: readonly Account[]): string {
  return table(accounts, [
    { header: 'ADDRESS', value: (a) => text(a.address) },
    // An account whose mailHost names no backend shows the mailHost, so the operator sees why.
    { header: 'BACKEND', value: (a) => a.backend ?? `- (${text(a.mailHost)})` },
    { header: 'STATUS', value: (a) => text(a.status) },
    { header: 'ALIASES', value: (a) => String(a.aliases?.length ?? 0), align: 'right' },
    { header: 'MOVING', value: (a) => yesNo(a.moving) },
  ])
}

export function accountBlock(a: Account): string {
  return keyValue([
    ['address', text(a.address)],
    ['backend', text(a.backend)],
    ['mail host', text(a.mailHost)],
    ['status', text(a.status)],
    ['aliases', list(a.aliases)],
    ['send as', list(a.sendAs)],
    ['password', a.hasPassword ? 'set' : 'none'],
    ['moving', yesNo(a.moving)],
  ])
}

// Printable ASCII, no blank at either end (HTTP would strip it), 1-255 characters.
const IDEMPOTENCY_KEY = /^[!-~]([ -~]{0,253}[!-~])?$/

async function listAccounts(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values } = parse(
    args,
    { domain: { type: 'string' }, backend: { type: 'string' }, status: { type: 'string' }, limit: { type: 'string' }, all: { type: 'boolean' } },
    [0, 0],
  )
  const query = { domain: values.domain, backend: values.backend, status: values.status, limit: integer('limit', values.limit, 1) }
  const api = await ctx.api()
  const { body, items } = await fetchList<Account>(ctx, api, { method: 'GET', path: apiPath('accounts'), query }, { key: 'accounts', cursor: 'after', all: values.all ?? false })
  print(ctx, body, () => accountTable(items))
  return EXIT.OK
}

async function show(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [1, 1], '<address>')
  const { body } = await (await ctx.api()).send<Account>({ method: 'GET', path: apiPath('accounts', positionals[0]!) })
  print(ctx, body, () => accountBlock(body))
  return EXIT.OK
}

async function create(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      backend: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      'password-file': { type: 'string' },
      alias: { type: 'string', multiple: true },
      'send-as': { type: 'string', multiple: true },
      disabled: { type: 'boolean' },
      'idempotency-key': { type: 'string' },
    },
    [1, 1],
    '<address>',
  )
  const given = values['idempotency-key']
  if (given !== undefined && !IDEMPOTENCY_KEY.test(given)) throw new UsageError('--idempotency-key needs 1-255 printable characters, not starting or ending with a blank')
  // A fresh key per invocation: the retry below is then safe, and a second run is a new request.
  const key = given ?? randomUUID()
  const api = await ctx.api()
  const password = await readPassword(values, ctx.io)
  const body = defined({
    address: positionals[0]!,
    password,
    backend: values.backend,
    status: values.disabled ? 'disabled' : undefined,
    aliases: values.alias,
    sendAs: values['send-as'],
  })
  let res
  try {
    res = await api.send<Account>({ method: 'POST', path: apiPath('accounts'), body, headers: { 'Idempotency-Key': key }, retry: true })
  } catch (e) {
    // The key is no secret; with it a later run cannot create the account twice.
    if (e instanceof DaemonUnreachable && given === undefined) ctx.io.err(`mailhostctl: to try again safely, add --idempotency-key ${key}\n`)
    throw e
  }
  if (res.replayed) ctx.io.err('mailhostctl: answer replayed: this Idempotency-Key was used before, nothing was changed now\n')
  print(ctx, res.body, () => accountBlock(res.body))
  return EXIT.OK
}

async function update(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      'password-stdin': { type: 'boolean' },
      'password-file': { type: 'string' },
      'no-password': { type: 'boolean' },
      status: { type: 'string' },
      alias: { type: 'string', multiple: true },
      'no-aliases': { type: 'boolean' },
      'send-as': { type: 'string', multiple: true },
      'no-send-as': { type: 'boolean' },
    },
    [1, 1],
    '<address>',
  )
  exclusive(values, 'alias', 'no-aliases')
  exclusive(values, 'send-as', 'no-send-as')
  exclusive(values, 'password-stdin', 'password-file', 'no-password')
  const changes = {
    status: values.status,
    aliases: values['no-aliases'] ? [] : values.alias,
    sendAs: values['no-send-as'] ? [] : values['send-as'],
  }
  const askedPassword = values['password-stdin'] || values['password-file'] !== undefined || values['no-password']
  if (!askedPassword && Object.values(changes).every((v) => v === undefined)) throw new UsageError('nothing to change')
  const api = await ctx.api()
  const body = defined({ password: await readPassword(values, ctx.io), ...changes })
  const { body: account } = await api.send<Account>({ method: 'PATCH', path: apiPath('accounts', positionals[0]!), body })
  print(ctx, account, () => accountBlock(account))
  return EXIT.OK
}

async function remove(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [1, 1], '<address>')
  await (await ctx.api()).send({ method: 'DELETE', path: apiPath('accounts', positionals[0]!) })
  if (!ctx.json) ctx.io.out(`deleted account ${positionals[0]!}\n`)
  return EXIT.OK
}

export const accounts: Group = {
  name: 'account',
  usage: USAGE,
  run: subcommands({ list: listAccounts, show, create, update, delete: remove }),
}
