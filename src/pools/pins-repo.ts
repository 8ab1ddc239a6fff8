// The pins in the store (docs/pools.md): one row per pinned user, claimed atomically, refreshed
// in batches, counted for status, dropped by the admin operations. Times are the store's clock
// (now()), so instances with skewed clocks still agree on what is live.

import type { Queryable } from '../store/store.js'

export interface StoredPin {
  readonly member: string
  readonly explicit: boolean
}

/** A pin `claim` must replace: another pool's, a member that may not hold pins, or expired. */
const STALE = `(pool_pins.pool_id <> excluded.pool_id or not (pool_pins.member_id = any($4::text[]))
  or pool_pins.last_seen < now() - $5::double precision * interval '1 millisecond')`

/**
 * One atomic statement: keeps a live pin of `address` to a member in `usable` (refreshing it),
 * else pins it to `choice`. Concurrent claims from several instances are serialised on the row,
 * so they all return the same member. Without a choice (no member takes new pins) only a live
 * pin is kept; undefined when there is none.
 */
export async function claimPin(
  db: Queryable,
  p: { address: string; pool: string; choice: string | undefined; usable: readonly string[]; pinForMs: number },
): Promise<StoredPin | undefined> {
  if (p.choice === undefined) {
    const { rows } = await db.query<{ member_id: string; explicit: boolean }>(
      `update pool_pins set last_seen = now()
        where address = $1 and pool_id = $2 and member_id = any($3::text[]) and last_seen >= now() - $4::double precision * interval '1 millisecond'
        returning member_id, explicit`,
      [p.address, p.pool, p.usable, p.pinForMs],
    )
    return rows[0] && { member: rows[0].member_id, explicit: rows[0].explicit }
  }
  const { rows } = await db.query<{ member_id: string; explicit: boolean }>(
    `insert into pool_pins (address, pool_id, member_id) values ($1, $2, $3)
     on conflict (address) do update set
       member_id = case when ${STALE} then excluded.member_id else pool_pins.member_id end,
       explicit = case when ${STALE} then false else pool_pins.explicit end,
       pinned_at = case when ${STALE} then now() else pool_pins.pinned_at end,
       pool_id = excluded.pool_id,
       last_seen = now()
     returning member_id, explicit`,
    [p.address, p.pool, p.choice, p.usable, p.pinForMs],
  )
  const row = rows[0]!
  return { member: row.member_id, explicit: row.explicit }
}

export interface PinRefresh {
  readonly address: string
  readonly pool: string
  readonly member: string
  readonly pinForMs: number
}

/**
 * Moves last_seen to now for pins the store still holds as given and live; returns the
 * addresses it did. A pin missing from the answer was flushed, moved or replaced meanwhile.
 */
export async function refreshPins(db: Queryable, pins: readonly PinRefresh[]): Promise<Set<string>> {
  if (pins.length === 0) return new Set()
  const { rows } = await db.query<{ address: string }>(
    `update pool_pins p set last_seen = now()
       from unnest($1::text[], $2::text[], $3::text[], $4::double precision[]) as t(address, pool_id, member_id, pin_for_ms)
      where p.address = t.address and p.pool_id = t.pool_id and p.member_id = t.member_id
        and p.last_seen >= now() - t.pin_for_ms * interval '1 millisecond'
      returning p.address`,
    [pins.map((p) => p.address), pins.map((p) => p.pool), pins.map((p) => p.member), pins.map((p) => p.pinForMs)],
  )
  return new Set(rows.map((r) => r.address))
}

/** Deletes pins no longer live (expired, or of a pool that is gone), a batch at a time. */
export async function sweepPins(db: Queryable, batch = 10_000): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `with gone as (
       select p.address from pool_pins p left join backends b on b.id = p.pool_id and b.kind = 'pool'
        where b.id is null or p.last_seen < now() - b.pin_for_ms * interval '1 millisecond'
        limit $1
     ), deleted as (delete from pool_pins where address in (select address from gone) returning 1)
     select count(*)::int as n from deleted`,
    [batch],
  )
  return rows[0]?.n ?? 0
}

/** Which pins an admin operation drops: a whole pool, one member's, or one user's. */
export interface PinSelector {
  readonly pool: string
  readonly member?: string
  readonly address?: string
}

/** Drops the selected pins; returns how many live or not. */
export async function dropPins(db: Queryable, s: PinSelector): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `with deleted as (
       delete from pool_pins where pool_id = $1 and ($2::text is null or member_id = $2) and ($3::text is null or address = $3) returning 1
     ) select count(*)::int as n from deleted`,
    [s.pool, s.member ?? null, s.address ?? null],
  )
  return rows[0]?.n ?? 0
}

/** Pins `address` to `member` whatever it held (an admin's move): explicit, live from now. */
export async function setPin(db: Queryable, p: { address: string; pool: string; member: string }): Promise<string | undefined> {
  const { rows } = await db.query<{ before: string | null }>(
    `with old as (select member_id from pool_pins where address = $1 for update)
     insert into pool_pins (address, pool_id, member_id, explicit) values ($1, $2, $3, true)
     on conflict (address) do update set pool_id = excluded.pool_id, member_id = excluded.member_id, explicit = true, pinned_at = now(), last_seen = now()
     returning (select member_id from old) as before`,
    [p.address, p.pool, p.member],
  )
  return rows[0]?.before ?? undefined
}

/** Live pins per member of a pool. */
export async function pinCounts(db: Queryable, pool: string, pinForMs: number): Promise<Map<string, number>> {
  const { rows } = await db.query<{ member_id: string; n: number }>(
    `select member_id, count(*)::int as n from pool_pins
      where pool_id = $1 and last_seen >= now() - $2::double precision * interval '1 millisecond' group by member_id`,
    [pool, pinForMs],
  )
  return new Map(rows.map((r) => [r.member_id, r.n]))
}

export interface PinRow {
  readonly address: string
  readonly member: string
  readonly explicit: boolean
  readonly pinnedAt: string
  readonly lastSeen: string
}

/** Live pins of a pool (optionally one member's), by address, a page after `after`. */
export async function listPins(db: Queryable, q: { pool: string; pinForMs: number; member?: string; after?: string; limit: number }): Promise<PinRow[]> {
  const { rows } = await db.query<{ address: string; member_id: string; explicit: boolean; pinned_at: Date | string; last_seen: Date | string }>(
    `select address, member_id, explicit, pinned_at, last_seen from pool_pins
      where pool_id = $1 and last_seen >= now() - $2::double precision * interval '1 millisecond'
        and ($3::text is null or member_id = $3) and ($4::text is null or address > $4)
      order by address limit $5`,
    [q.pool, q.pinForMs, q.member ?? null, q.after ?? null, q.limit],
  )
  return rows.map((r) => ({
    address: r.address,
    member: r.member_id,
    explicit: r.explicit,
    pinnedAt: new Date(r.pinned_at).toISOString(),
    lastSeen: new Date(r.last_seen).toISOString(),
  }))
}

/**
 * Keeps the pins of users with live sessions on `member` (doveadm who) live, and pins to it a
 * user whose pin had expired or was missing: the session is where the user is. A live pin of
 * the user to another member is left alone and reported: such a user is on two members, the
 * split this module exists to prevent (a session older than an expired pin on a cluster without
 * the session watch, or sessions opened behind mailhostd's back).
 */
export async function keepSessionPins(
  db: Queryable,
  p: { pool: string; member: string; addresses: readonly string[]; pinForMs: number },
): Promise<{ kept: number; elsewhere: { address: string; member: string }[] }> {
  if (p.addresses.length === 0) return { kept: 0, elsewhere: [] }
  const { rows: kept } = await db.query<{ address: string }>(
    `insert into pool_pins (address, pool_id, member_id) select a, $1, $2 from unnest($3::text[]) as a
     on conflict (address) do update set last_seen = now(), member_id = excluded.member_id, pool_id = excluded.pool_id,
       pinned_at = case when pool_pins.member_id = excluded.member_id and pool_pins.pool_id = excluded.pool_id then pool_pins.pinned_at else now() end,
       explicit = pool_pins.explicit and pool_pins.member_id = excluded.member_id
     where (pool_pins.member_id = excluded.member_id and pool_pins.pool_id = excluded.pool_id)
        or pool_pins.last_seen < now() - $4::double precision * interval '1 millisecond'
     returning address`,
    [p.pool, p.member, p.addresses, p.pinForMs],
  )
  const done = new Set(kept.map((r) => r.address))
  const { rows: others } = await db.query<{ address: string; member_id: string }>(
    `select address, member_id from pool_pins where address = any($1::text[]) and not (address = any($2::text[]))`,
    [p.addresses, [...done]],
  )
  return { kept: done.size, elsewhere: others.map((r) => ({ address: r.address, member: r.member_id })) }
}
