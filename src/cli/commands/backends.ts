// `mailhostctl backend ...`: the mail stores accounts live on, their routes, placement weight,
// capacity and admin state, on /v1/backends.

import { defined, exclusive, integer, parse, UsageError } from '../args.js'
import { apiPath } from '../client.js'
import { fetchList, print, subcommands, type Command, type Ctx, type Group } from '../command.js'
import { EXIT } from '../exit.js'
import { ADMIN_STATES, ROUTE_STYLES } from '../../resolve/vocabulary.js'
import { keyValue, list, table, text } from '../table.js'
import type { PoolMember } from './pools.js'

export interface Backend {
  id: string
  /** Absent from daemons older than pools. */
  kind?: string
  mailHosts: string[]
  /** A host's; absent for a pool. */
  address?: string
  route: string
  ports: Partial<Record<Port, number>>
  weight: number
  capacity: number | null
  adminState: string
  accounts: number
  /** By probed service; absent from daemons older than the health checks. */
  health?: Record<string, ServiceHealth>
  /** Pools only. */
  members?: PoolMember[]
  pinForMs?: number
  director?: { tag: string; address: string }
}

interface ServiceHealth {
  state: string
  since: string
  detail: string | null
}

const PORTS = ['lmtp', 'smtp', 'imap', 'pop3'] as const
type Port = (typeof PORTS)[number]

const USAGE = `usage: mailhostctl [global options] backend <subcommand>

  list
  show <id>
  create <id> --address IP [--mail-host H]... [--route ${ROUTE_STYLES.join('|')}] [--lmtp-port N]
         [--smtp-port N] [--imap-port N] [--pop3-port N] [--weight N] [--capacity N]
         [--state ${ADMIN_STATES.join('|')}]
  create <id> --kind pool --member ID=IP [--member ID=IP]... [--pin-for DURATION]
         [--director-tag TAG --director-address IP] [same options as a host, but no --address]
  update <id> [--address IP] [same options as create] [--no-capacity] [--pin-for DURATION]
  drain <id>         no new accounts; mail and logins still routed
  maintenance <id>   no new accounts; logins get a fast temporary failure
  activate <id>      back to normal
  delete <id>        only once no account lives on it and no move targets it

A pool's members share its storage; each user is pinned to one (mailhostctl pool ...).
On update, --mail-host replaces the whole list and --no-capacity makes the capacity unlimited.
To empty a backend: drain it, move its accounts (mailhostctl move start --from ID --target B),
then delete it.`

/** `up`, `down: imap, pop3` (the services down), or `-` when nothing was recorded. */
export function healthSummary(health: Backend['health']): string {
  const services = Object.entries(health ?? {})
  if (services.length === 0) return '-'
  const down = services.filter(([, h]) => h.state !== 'up').map(([service]) => service)
  return down.length === 0 ? 'up' : `down: ${down.join(', ')}`
}

/** One line per recorded service: state, since when, and why when down. */
function healthLines(health: Backend['health']): string {
  const services = Object.entries(health ?? {})
  if (services.length === 0) return '-'
  return services.map(([service, h]) => `${service} ${h.state} since ${h.since}${h.detail ? `: ${h.detail}` : ''}`).join('\n')
}

export function backendTable(backends: readonly Backend[]): string {
  return table(backends, [
    { header: 'ID', value: (b) => text(b.id) },
    { header: 'ADDRESS', value: (b) => text(b.address) },
    { header: 'ROUTE', value: (b) => text(b.route) },
    { header: 'STATE', value: (b) => text(b.adminState) },
    { header: 'HEALTH', value: (b) => healthSummary(b.health) },
    { header: 'WEIGHT', value: (b) => text(b.weight), align: 'right' },
    { header: 'CAPACITY', value: (b) => text(b.capacity), align: 'right' },
    { header: 'ACCOUNTS', value: (b) => text(b.accounts), align: 'right' },
  ])
}

export function backendBlock(b: Backend): string {
  const ports = PORTS.filter((p) => b.ports?.[p] !== undefined).map((p) => `${p} ${b.ports[p]}`)
  const pool = b.kind === 'pool'
  return keyValue([
    ['id', text(b.id)],
    ...(b.kind === undefined ? [] : [['kind', b.kind] as const]),
    ['mail hosts', list(b.mailHosts)],
    ...(pool ? [] : [['address', text(b.address)] as const]),
    ['route', text(b.route)],
    ['ports', list(ports)],
    ['weight', text(b.weight)],
    ['capacity', b.capacity === null ? 'unlimited' : text(b.capacity)],
    ['state', text(b.adminState)],
    ['health', healthLines(b.health)],
    ['accounts', text(b.accounts)],
    ...(pool
      ? ([
          ['pin for', b.pinForMs === undefined ? '-' : `${b.pinForMs / 1000}s`],
          ['director', b.director ? `tag ${b.director.tag} at ${b.director.address}` : '-'],
          ['members', (b.members ?? []).map((m) => `${m.id} ${m.address} weight ${m.weight} ${m.adminState} ${healthSummary(m.health)}`).join('\n') || '-'],
        ] as const)
      : []),
  ])
}

const FIELD_OPTIONS = {
  address: { type: 'string' },
  'mail-host': { type: 'string', multiple: true },
  route: { type: 'string' },
  'lmtp-port': { type: 'string' },
  'smtp-port': { type: 'string' },
  'imap-port': { type: 'string' },
  'pop3-port': { type: 'string' },
  weight: { type: 'string' },
  capacity: { type: 'string' },
  state: { type: 'string' },
  'pin-for': { type: 'string' },
} as const

type FieldValues = { [K in keyof typeof FIELD_OPTIONS]?: (typeof FIELD_OPTIONS)[K] extends { multiple: true } ? string[] : string }

/** The ports given on the command line, or undefined when none was. */
function portOptions(values: FieldValues): Partial<Record<Port, number>> | undefined {
  const ports = defined(Object.fromEntries(PORTS.map((p) => [p, integer(`${p}-port`, values[`${p}-port`], 1, 65535)])))
  return Object.keys(ports).length > 0 ? ports : undefined
}

/** The body fields every write shares, without the ports. */
function fields(values: FieldValues) {
  return {
    address: values.address,
    mailHosts: values['mail-host'],
    route: values.route,
    weight: integer('weight', values.weight),
    capacity: integer('capacity', values.capacity),
    adminState: values.state,
    pinFor: values['pin-for'],
  }
}

/** `--member ID=IP`: a new pool's member (weight, ports and state through `pool` afterwards). */
function memberOption(value: string): { id: string; address: string } {
  const eq = value.indexOf('=')
  if (eq <= 0 || eq === value.length - 1) throw new UsageError(`--member needs ID=IP, not ${JSON.stringify(value)}`)
  return { id: value.slice(0, eq), address: value.slice(eq + 1) }
}

async function listBackends(ctx: Ctx, args: readonly string[]): Promise<number> {
  parse(args, {}, [0, 0])
  const { body, items } = await fetchList<Backend>(ctx, await ctx.api(), { method: 'GET', path: apiPath('backends') }, { key: 'backends', cursor: 'after', all: false })
  print(ctx, body, () => backendTable(items))
  return EXIT.OK
}

async function show(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [1, 1], '<id>')
  const { body } = await (await ctx.api()).send<Backend>({ method: 'GET', path: apiPath('backends', positionals[0]!) })
  print(ctx, body, () => backendBlock(body))
  return EXIT.OK
}

async function create(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...FIELD_OPTIONS, kind: { type: 'string' }, member: { type: 'string', multiple: true }, 'director-tag': { type: 'string' }, 'director-address': { type: 'string' } },
    [1, 1],
    '<id>',
  )
  const pool = values.kind === 'pool'
  if (values.kind !== undefined && !pool && values.kind !== 'host') throw new UsageError(`--kind is host or pool, not ${JSON.stringify(values.kind)}`)
  if (!pool && values.address === undefined) throw new UsageError('--address is required')
  if (pool && values.member === undefined) throw new UsageError('a pool needs at least one --member ID=IP')
  if ((values['director-tag'] === undefined) !== (values['director-address'] === undefined)) throw new UsageError('--director-tag and --director-address go together')
  const director = values['director-tag'] === undefined ? undefined : { tag: values['director-tag'], address: values['director-address']! }
  const body = defined({ id: positionals[0]!, kind: values.kind, ...fields(values), ports: portOptions(values), members: values.member?.map(memberOption), director })
  const { body: backend } = await (await ctx.api()).send<Backend>({ method: 'POST', path: apiPath('backends'), body })
  print(ctx, backend, () => backendBlock(backend))
  return EXIT.OK
}

async function patch(ctx: Ctx, id: string, body: object): Promise<number> {
  const { body: backend } = await (await ctx.api()).send<Backend>({ method: 'PATCH', path: apiPath('backends', id), body })
  print(ctx, backend, () => backendBlock(backend))
  return EXIT.OK
}

async function update(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...FIELD_OPTIONS, 'no-capacity': { type: 'boolean' } }, [1, 1], '<id>')
  exclusive(values, 'capacity', 'no-capacity')
  // The daemon merges `ports` with the current ones, so --lmtp-port alone keeps the other three.
  const body = defined({ ...fields(values), capacity: values['no-capacity'] ? null : integer('capacity', values.capacity), ports: portOptions(values) })
  if (Object.keys(body).length === 0) throw new UsageError('nothing to change')
  return patch(ctx, positionals[0]!, body)
}

function setState(adminState: string): Command {
  return async (ctx, args) => {
    const { positionals } = parse(args, {}, [1, 1], '<id>')
    return patch(ctx, positionals[0]!, { adminState })
  }
}

async function remove(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [1, 1], '<id>')
  await (await ctx.api()).send({ method: 'DELETE', path: apiPath('backends', positionals[0]!) })
  if (!ctx.json) ctx.io.out(`deleted backend ${positionals[0]!}\n`)
  return EXIT.OK
}

export const backends: Group = {
  name: 'backend',
  usage: USAGE,
  run: subcommands({
    list: listBackends,
    show,
    create,
    update,
    drain: setState('drain'),
    maintenance: setState('maintenance'),
    activate: setState('active'),
    delete: remove,
  }),
}
