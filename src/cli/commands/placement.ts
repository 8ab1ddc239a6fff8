// `mailhostctl placement`: which backend a new account would get now, and why the others would
// not, from GET /v1/placement. Creates nothing.

import { parse } from '../args.js'
import { apiPath } from '../client.js'
import { print, type Ctx, type Group } from '../command.js'
import { EXIT } from '../exit.js'
import { keyValue, list, table, text } from '../table.js'

interface Candidate {
  id: string
  accounts: number
  capacity: number | null
  weight: number
  adminState: string
}

export interface PlacementAnswer {
  ok: boolean
  backend?: string
  applied?: string
  reason?: string
  eligible?: string[]
  excluded?: { id: string; reason: string }[]
  candidates?: Candidate[]
}

const USAGE = `usage: mailhostctl [global options] placement [--domain D] [--policy P]

What placement would choose for a new account now (in domain D, with policy P instead of the
configured one: random, weighted, least-used, domain). Exits 3 when no backend may take one.`

export function placementText(p: PlacementAnswer): string {
  const excluded = (p.excluded ?? []).map((e) => `${e.id} (${e.reason})`)
  const head = p.ok
    ? keyValue([
        ['backend', text(p.backend)],
        ['policy', text(p.applied)],
        ['eligible', list(p.eligible)],
        ['excluded', list(excluded)],
      ])
    : keyValue([
        ['backend', 'none'],
        ['reason', text(p.reason)],
        ['excluded', list(excluded)],
      ])
  if (!p.candidates || p.candidates.length === 0) return head
  const candidates = table(p.candidates, [
    { header: 'ID', value: (c) => text(c.id) },
    { header: 'STATE', value: (c) => text(c.adminState) },
    { header: 'WEIGHT', value: (c) => text(c.weight), align: 'right' },
    { header: 'CAPACITY', value: (c) => text(c.capacity), align: 'right' },
    { header: 'ACCOUNTS', value: (c) => text(c.accounts), align: 'right' },
  ])
  return `${head}\n${candidates}`
}

async function run(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values } = parse(args, { domain: { type: 'string' }, policy: { type: 'string' } }, [0, 0])
  const { body } = await (await ctx.api()).send<PlacementAnswer>({
    method: 'GET',
    path: apiPath('placement'),
    query: { domain: values.domain, policy: values.policy },
  })
  print(ctx, body, () => placementText(body))
  // No eligible backend: what creating an account would be refused for (422), so a script can
  // check before it tries.
  return body.ok ? EXIT.OK : EXIT.REFUSED
}

export const placement: Group = { name: 'placement', usage: USAGE, run }
