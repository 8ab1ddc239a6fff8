// `mailhostctl domain ...`: served domains, alias domains, catch-alls and placement affinity,
// on /v1/domains.

import { defined, exclusive, parse, UsageError } from '../args.js'
import { apiPath } from '../client.js'
import { fetchList, print, subcommands, type Ctx, type Group } from '../command.js'
import { EXIT } from '../exit.js'
import { keyValue, list, table, text } from '../table.js'

export interface Domain {
  name: string
  aliasFor?: string | null
  catchAll?: string[] | null
  affinity?: string | null
}

const USAGE = `usage: mailhostctl [global options] domain <subcommand>

  list
  show <name>
  create <name> [--alias-for D] [--catch-all T]... [--affinity B]
  update <name> [--alias-for D | --no-alias-for] [--catch-all T... | --no-catch-all]
         [--affinity B | --no-affinity]
  delete <name>

--alias-for makes the domain an alias domain of a local one; --catch-all names the targets for
unknown local parts (on update, the whole list); --affinity is the backend the "domain"
placement policy prefers for the domain's new accounts.`

export function domainTable(domains: readonly Domain[]): string {
  return table(domains, [
    { header: 'NAME', value: (d) => text(d.name) },
    { header: 'ALIAS-FOR', value: (d) => text(d.aliasFor) },
    { header: 'CATCH-ALL', value: (d) => list(d.catchAll) },
    { header: 'AFFINITY', value: (d) => text(d.affinity) },
  ])
}

export function domainBlock(d: Domain): string {
  return keyValue([
    ['name', text(d.name)],
    ['alias for', text(d.aliasFor)],
    ['catch-all', list(d.catchAll)],
    ['affinity', text(d.affinity)],
  ])
}

async function listDomains(ctx: Ctx, args: readonly string[]): Promise<number> {
  parse(args, {}, [0, 0])
  const { body, items } = await fetchList<Domain>(ctx, await ctx.api(), { method: 'GET', path: apiPath('domains') }, { key: 'domains', cursor: 'after', all: false })
  print(ctx, body, () => domainTable(items))
  return EXIT.OK
}

async function show(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [1, 1], '<name>')
  const { body } = await (await ctx.api()).send<Domain>({ method: 'GET', path: apiPath('domains', positionals[0]!) })
  print(ctx, body, () => domainBlock(body))
  return EXIT.OK
}

/** A created or changed domain: the daemon's answer when it sent one. */
function printDomain(ctx: Ctx, body: Domain | undefined, name: string, verb: string): void {
  if (body === undefined) {
    if (!ctx.json) ctx.io.out(`${verb} domain ${name}\n`)
  } else print(ctx, body, () => domainBlock(body))
}

async function create(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { 'alias-for': { type: 'string' }, 'catch-all': { type: 'string', multiple: true }, affinity: { type: 'string' } },
    [1, 1],
    '<name>',
  )
  const name = positionals[0]!
  const body = defined({ name, aliasFor: values['alias-for'], catchAll: values['catch-all'], affinity: values.affinity })
  const res = await (await ctx.api()).send<Domain | undefined>({ method: 'POST', path: apiPath('domains'), body })
  printDomain(ctx, res.body, name, 'created')
  return EXIT.OK
}

async function update(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      'alias-for': { type: 'string' },
      'no-alias-for': { type: 'boolean' },
      'catch-all': { type: 'string', multiple: true },
      'no-catch-all': { type: 'boolean' },
      affinity: { type: 'string' },
      'no-affinity': { type: 'boolean' },
    },
    [1, 1],
    '<name>',
  )
  exclusive(values, 'alias-for', 'no-alias-for')
  exclusive(values, 'catch-all', 'no-catch-all')
  exclusive(values, 'affinity', 'no-affinity')
  // null clears a field (docs/admin.md, Domains).
  const body = defined({
    aliasFor: values['no-alias-for'] ? null : values['alias-for'],
    catchAll: values['no-catch-all'] ? null : values['catch-all'],
    affinity: values['no-affinity'] ? null : values.affinity,
  })
  if (Object.keys(body).length === 0) throw new UsageError('nothing to change')
  const name = positionals[0]!
  const res = await (await ctx.api()).send<Domain | undefined>({ method: 'PATCH', path: apiPath('domains', name), body })
  printDomain(ctx, res.body, name, 'changed')
  return EXIT.OK
}

async function remove(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [1, 1], '<name>')
  await (await ctx.api()).send({ method: 'DELETE', path: apiPath('domains', positionals[0]!) })
  if (!ctx.json) ctx.io.out(`deleted domain ${positionals[0]!}\n`)
  return EXIT.OK
}

export const domains: Group = {
  name: 'domain',
  usage: USAGE,
  run: subcommands({ list: listDomains, show, create, update, delete: remove }),
}
