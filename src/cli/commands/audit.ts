// `mailhostctl audit`: the audit log of every write, newest first, from GET /v1/audit.

import { integer, parse } from '../args.js'
import { apiPath } from '../client.js'
import { fetchList, print, type Ctx, type Group } from '../command.js'
import { EXIT } from '../exit.js'
import { table, text } from '../table.js'

export interface AuditEntry {
  id: number
  at: string
  actor: string
  action: string
  subjectType: string
  subject: string
  before: unknown
  after: unknown
}

const USAGE = `usage: mailhostctl [global options] audit [--subject-type T] [--subject S] [--actor A]
         [--action X] [--since TIME] [--until TIME] [--limit N] [--all]

Newest first, one page (--limit) unless --all. T: account, domain, backend, move. X: create,
update, delete; for moves start, copied, failed, complete, abort. TIME: ISO 8601
(2026-12-01T10:00:00Z). --json shows each entry's before and after.`

export function auditTable(entries: readonly AuditEntry[]): string {
  return table(entries, [
    { header: 'ID', value: (e) => text(e.id), align: 'right' },
    { header: 'AT', value: (e) => text(e.at) },
    { header: 'ACTOR', value: (e) => text(e.actor) },
    { header: 'ACTION', value: (e) => text(e.action) },
    { header: 'TYPE', value: (e) => text(e.subjectType) },
    { header: 'SUBJECT', value: (e) => text(e.subject) },
  ])
}

async function run(ctx: Ctx, args: readonly string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      'subject-type': { type: 'string' },
      subject: { type: 'string' },
      actor: { type: 'string' },
      action: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      limit: { type: 'string' },
      all: { type: 'boolean' },
    },
    [0, 0],
  )
  const query = {
    subjectType: values['subject-type'],
    subject: values.subject,
    actor: values.actor,
    action: values.action,
    since: values.since,
    until: values.until,
    limit: integer('limit', values.limit, 1),
  }
  // Newest first, so older pages are the ones `before` the cursor.
  const { body, items } = await fetchList<AuditEntry>(ctx, await ctx.api(), { method: 'GET', path: apiPath('audit'), query }, { key: 'entries', cursor: 'before', all: values.all ?? false })
  print(ctx, body, () => auditTable(items))
  return EXIT.OK
}

export const audit: Group = { name: 'audit', usage: USAGE, run }
