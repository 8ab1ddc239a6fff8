// The audit log: every write through the admin API, and every change the configuration file
// makes at start, with who, when, and the subject before and after. Written in the same
// transaction as the change it records, so the log never claims a change that rolled back.
// Secrets never reach it: password hashes are replaced before the row is built.

import { Filter } from '../store/filter.js'
import type { Queryable } from '../store/store.js'
import type { AuditEntry, AuditQuery } from './shapes.js'

/** What an audit entry can be about; the admin API's audit filter derives from it. */
export const SUBJECT_TYPES = ['account', 'domain', 'backend', 'move', 'pool'] as const
export type SubjectType = (typeof SUBJECT_TYPES)[number]
export type AuditAction = 'create' | 'update' | 'delete' | 'start' | 'copied' | 'failed' | 'complete' | 'abort'

export interface AuditRecord {
  readonly actor: string
  readonly action: AuditAction
  readonly subjectType: SubjectType
  readonly subject: string
  readonly before?: object | undefined
  readonly after?: object | undefined
}

export type { AuditEntry, AuditQuery } from './shapes.js'

/** Keys whose values are secrets wherever they appear in a recorded object. */
const SECRET_KEYS = new Set(['password', 'passwordHash', 'password_hash', 'userPassword', 'bindPassword', 'token', 'secret'])

/** Values that say a secret changed without being one. */
const MARKERS: ReadonlySet<unknown> = new Set(['(changed)'])

/** A copy of v with every secret value replaced; a changed password is visible, its value is not. */
export function redact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redact)
  if (v === null || typeof v !== 'object') return v
  const out: Record<string, unknown> = {}
  for (const [k, value] of Object.entries(v)) {
    out[k] = SECRET_KEYS.has(k) && !MARKERS.has(value) ? (value === null || value === undefined ? value : '(secret)') : redact(value)
  }
  return out
}

export async function recordAudit(tx: Queryable, r: AuditRecord): Promise<void> {
  await tx.query(
    `insert into audit_log (actor, action, subject_type, subject, before, after)
     values ($1, $2, $3, $4, $5::jsonb, $6::jsonb)`,
    [r.actor, r.action, r.subjectType, r.subject, json(r.before), json(r.after)],
  )
}

const json = (v: object | undefined) => (v === undefined ? null : JSON.stringify(redact(v)))

interface AuditRow {
  id: string
  at: Date | string
  actor: string
  action: string
  subject_type: string
  subject: string
  before: unknown
  after: unknown
}

export async function queryAudit(db: Queryable, q: AuditQuery): Promise<{ entries: AuditEntry[]; next?: number }> {
  const f = new Filter()
  if (q.subjectType !== undefined) f.add('subject_type = ?', q.subjectType)
  if (q.subject !== undefined) f.add('subject = ?', q.subject)
  if (q.actor !== undefined) f.add('actor = ?', q.actor)
  if (q.action !== undefined) f.add('action = ?', q.action)
  if (q.since !== undefined) f.add('at >= ?::timestamptz', q.since)
  if (q.until !== undefined) f.add('at < ?::timestamptz', q.until)
  if (q.before !== undefined) f.add('id < ?', q.before)
  const limit = f.limitPage(q.limit)
  // Ordered by the bigint column, not the text alias `id` (as text, 10 sorts before 9).
  const { rows } = await db.query<AuditRow>(
    `select id::text as id, at, actor, action, subject_type, subject, before, after
       from audit_log ${f.where}
      order by audit_log.id desc ${limit}`,
    f.params,
  )
  const page = rows.slice(0, q.limit)
  const entries = page.map((r) => ({
    id: Number(r.id),
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    action: r.action,
    subjectType: r.subject_type,
    subject: r.subject,
    before: r.before,
    after: r.after,
  }))
  return rows.length > q.limit ? { entries, next: entries.at(-1)!.id } : { entries }
}
