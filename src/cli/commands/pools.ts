// `mailhostctl pool ...`: a pool's members and pins on /v1/pools (docs/pools.md, "Operations"),
// what `doveadm director` did for the Dovecot director. Pools themselves are created, changed and
// deleted as backends (`mailhostctl backend create <id> --kind pool --member ID=IP ...`).

import { defined, exclusive, integer, parse, UsageError } from '../args.js'
import { apiPath } from '../client.js'
import { fetchList, print, subcommands, type Command, type Ctx, type Group } from '../command.js'
import { EXIT } from '../exit.js'
import { ADMIN_STATES } from '../../resolve/vocabulary.js'
import { keyValue, list, table, text, yesNo } from '../table.js'
import { healthSummary } from './backends.js'

const PORTS = ['lmtp', 'smtp', 'imap', 'pop3'] as const

export interface PoolMember {
  id: string
  address: string
  ports: Partial<Record<(typeof PORTS)[number], number>>
  weight: number
  adminState: string
  health?: Record<string, { state: string; since: string; detail: string | null }>
}

interface MemberStatus extends PoolMember {
  eligible: boolean
  pins: number
  share: number
}

interface PoolStatus {
  id: string
  mailHosts: string[]
  route: string
  adminState: string
  pinForMs: number
  director?: { tag: string; address: string }
  accounts: number | null
  pins: number
  members: MemberStatus[]
}

interface Pin {
  address: string
  member: string
  explicit: boolean
  pinnedAt: string
  lastSeen: string
}

const USAGE = `usage: mailhostctl [global options] pool <subcommand>

  status <pool>                       members: state, health, weight, live pins, share of new pins
  add-member <pool> <member> --address IP [--lmtp-port N] [--smtp-port N] [--imap-port N]
             [--pop3-port N] [--weight N] [--state ${ADMIN_STATES.join('|')}]
  remove-member <pool> <member>       its pins are dropped: its users go to the next member by hash
  weight <pool> <member> <N>          share of new pins (0: none); existing pins stay
  drain <pool> <member>               no new pins; existing pins stay until they expire
  maintenance <pool> <member>         treated as down: its pins are replaced at the next lookup
  activate <pool> <member>            back to taking new pins
  flush <pool> [--member M | --user ADDRESS]
                                      drop pins (one member's, one user's, or the whole pool's)
  move-user <pool> <user> <member> [--kick]
                                      pin a user to a member; --kick ends their sessions on the
                                      old member (doveadm HTTP API, the daemon's doveadm section)
  pins <pool> [--member M] [--limit N] [--all]

A pool is a backend of kind pool: create, list and delete pools with \`mailhostctl backend\`.
Member ids share the backend id namespace.`

/** A share in percent with at most two decimals, as the daemon computed it. */
const percent = (share: number) => `${share}%`

export function memberTable(members: readonly MemberStatus[]): string {
  return table(members, [
    { header: 'MEMBER', value: (m) => text(m.id) },
    { header: 'ADDRESS', value: (m) => text(m.address) },
    { header: 'STATE', value: (m) => text(m.adminState) },
    { header: 'HEALTH', value: (m) => healthSummary(m.health) },
    { header: 'WEIGHT', value: (m) => text(m.weight), align: 'right' },
    { header: 'ELIGIBLE', value: (m) => yesNo(m.eligible) },
    { header: 'SHARE', value: (m) => percent(m.share), align: 'right' },
    { header: 'PINS', value: (m) => text(m.pins), align: 'right' },
  ])
}

function statusBlock(s: PoolStatus): string {
  const head = keyValue([
    ['pool', text(s.id)],
    ['mail hosts', list(s.mailHosts)],
    ['state', text(s.adminState)],
    ['pin for', `${s.pinForMs / 1000}s`],
    ['director', s.director ? `tag ${s.director.tag} at ${s.director.address}` : '-'],
    ['accounts', text(s.accounts)],
    ['pins', text(s.pins)],
  ])
  return `${head}\n${memberTable(s.members)}`
}

function memberBlock(m: PoolMember): string {
  return keyValue([
    ['member', text(m.id)],
    ['address', text(m.address)],
    ['ports', list(PORTS.filter((p) => m.ports?.[p] !== undefined).map((p) => `${p} ${m.ports[p]}`))],
    ['weight', text(m.weight)],
    ['state', text(m.adminState)],
    ['health', healthSummary(m.health)],
  ])
}

async function status(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [1, 1], '<pool>')
  const { body } = await (await ctx.api()).send<PoolStatus>({ method: 'GET', path: apiPath('pools', positionals[0]!) })
  print(ctx, body, () => statusBlock(body))
  return EXIT.OK
}

const PORT_OPTIONS = { 'lmtp-port': { type: 'string' }, 'smtp-port': { type: 'string' }, 'imap-port': { type: 'string' }, 'pop3-port': { type: 'string' } } as const

async function addMember(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { address: { type: 'string' }, weight: { type: 'string' }, state: { type: 'string' }, ...PORT_OPTIONS }, [2, 2], '<pool> <member>')
  if (values.address === undefined) throw new UsageError('--address is required')
  const ports = defined(Object.fromEntries(PORTS.map((p) => [p, integer(`${p}-port`, values[`${p}-port`], 1, 65535)])))
  const body = defined({
    id: positionals[1]!,
    address: values.address,
    ports: Object.keys(ports).length > 0 ? ports : undefined,
    weight: integer('weight', values.weight, 0, 1_000_000),
    adminState: values.state,
  })
  const { body: member } = await (await ctx.api()).send<PoolMember>({ method: 'POST', path: apiPath('pools', positionals[0]!, 'members'), body })
  print(ctx, member, () => memberBlock(member))
  return EXIT.OK
}

async function patchMember(ctx: Ctx, pool: string, member: string, body: object): Promise<number> {
  const { body: m } = await (await ctx.api()).send<PoolMember>({ method: 'PATCH', path: apiPath('pools', pool, 'members', member), body })
  print(ctx, m, () => memberBlock(m))
  return EXIT.OK
}

async function weight(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [3, 3], '<pool> <member> <weight>')
  return patchMember(ctx, positionals[0]!, positionals[1]!, { weight: integer('weight', positionals[2], 0, 1_000_000) })
}

function setState(adminState: string): Command {
  return async (ctx, args) => {
    const { positionals } = parse(args, {}, [2, 2], '<pool> <member>')
    return patchMember(ctx, positionals[0]!, positionals[1]!, { adminState })
  }
}

async function removeMember(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { positionals } = parse(args, {}, [2, 2], '<pool> <member>')
  await (await ctx.api()).send({ method: 'DELETE', path: apiPath('pools', positionals[0]!, 'members', positionals[1]!) })
  if (!ctx.json) ctx.io.out(`removed member ${positionals[1]!} from pool ${positionals[0]!}\n`)
  return EXIT.OK
}

async function flush(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { member: { type: 'string' }, user: { type: 'string' } }, [1, 1], '<pool>')
  exclusive(values, 'member', 'user')
  const { body } = await (await ctx.api()).send<{ dropped: number }>({ method: 'POST', path: apiPath('pools', positionals[0]!, 'flush'), body: defined({ member: values.member, user: values.user }) })
  print(ctx, body, () => `dropped ${body.dropped} pin(s)\n`)
  return EXIT.OK
}

async function moveUser(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { kick: { type: 'boolean' } }, [3, 3], '<pool> <user> <member>')
  const body = defined({ user: positionals[1]!, member: positionals[2]!, kick: values.kick })
  const { body: r } = await (await ctx.api()).send<{ user: string; member: string; previous: string | null; kicked?: boolean; reason?: string }>({
    method: 'POST',
    path: apiPath('pools', positionals[0]!, 'move-user'),
    body,
  })
  print(ctx, r, () =>
    keyValue([
      ['user', text(r.user)],
      ['member', text(r.member)],
      ['previous', text(r.previous)],
      ...(r.kicked === undefined ? [] : [['kicked', r.kicked ? 'yes' : `no${r.reason ? `: ${r.reason}` : ''}`] as const]),
    ]),
  )
  return EXIT.OK
}

async function pins(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, { member: { type: 'string' }, limit: { type: 'string' }, all: { type: 'boolean' } }, [1, 1], '<pool>')
  const query = defined({ member: values.member, limit: integer('limit', values.limit, 1, 1000) })
  const { body, items } = await fetchList<Pin>(ctx, await ctx.api(), { method: 'GET', path: apiPath('pools', positionals[0]!, 'pins'), query }, { key: 'pins', cursor: 'after', all: values.all ?? false })
  print(ctx, body, () =>
    table(items, [
      { header: 'ADDRESS', value: (p) => text(p.address) },
      { header: 'MEMBER', value: (p) => text(p.member) },
      { header: 'EXPLICIT', value: (p) => yesNo(p.explicit) },
      { header: 'PINNED', value: (p) => text(p.pinnedAt) },
      { header: 'LAST SEEN', value: (p) => text(p.lastSeen) },
    ]),
  )
  return EXIT.OK
}

export const pools: Group = {
  name: 'pool',
  usage: USAGE,
  run: subcommands({
    status,
    'add-member': addMember,
    'remove-member': removeMember,
    weight,
    drain: setState('drain'),
    maintenance: setState('maintenance'),
    activate: setState('active'),
    flush,
    'move-user': moveUser,
    pins,
  }),
}
