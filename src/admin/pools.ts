// The operations on a pool's members and pins (docs/pools.md, "Operations"), the Dovecot
// director's `doveadm director` commands: status, add / weight / drain / remove a member, flush
// pins, move a user to a member. Members are registry rows (a change reloads every instance's
// registry); pins live in the store and in every instance's PinLedger, so a write that drops or
// sets pins does it in the store and announces a pins change, at its commit, that makes every
// instance drop its matching local pins. Every write is audited as subject type `pool`.

import { AdminError, ErrorCodes } from '../errors.js'
import { forgetHealth } from '../health/health-repo.js'
import { dropPins, listPins, pinCounts, setPin } from '../pools/pins-repo.js'
import { canonicalAddress } from '../resolve/address.js'
import type { Change } from '../cluster/changes.js'
import type { Queryable } from '../store/store.js'
import { recordAudit, type AuditAction } from './audit.js'
import { BACKENDS_TABLE, healthByServer, portsOf, type Row } from './backends.js'
import { applied, rowOf, type AdminDeps } from './context.js'
import { kick, type KickOutcome } from './doveadm-kick.js'
import { checkAddress, claimServerIds, insertMember, memberView, membersOf, recordedMember, STORED_MEMBER_COLUMNS, type StoredMember } from './pool-members.js'
import type { FlushRequest, MemberChanges, MoveUserRequest, MoveUserView, NewMember, PinListRequest, PoolMemberView, PoolStatusView } from './shapes.js'

export class Pools {
  constructor(private readonly d: AdminDeps) {}

  /** Members with their health, live pins and share of new pins; the pool's settings. */
  async status(id: string): Promise<PoolStatusView> {
    const pool = await this.#pool(this.d.store, id)
    const members = await membersOf(this.d.store, [id])
    const pins = await pinCounts(this.d.store, id, pool.pin_for_ms!)
    const health = await healthByServer(this.d.store)
    // Eligibility as this instance routes by it: health and states from its registry, which every
    // admin write here has reloaded before answering.
    const registry = this.d.registry()
    const info = registry.backend(id)
    const eligible = new Set(info?.kind === 'pool' ? registry.eligibleMembers(info).map((m) => m.id) : [])
    const total = members.filter((m) => eligible.has(m.id)).reduce((sum, m) => sum + m.weight, 0)
    const counts = this.d.counts ? await this.d.counts.byBackend(registry) : undefined
    return {
      id,
      mailHosts: pool.mailhosts,
      route: pool.route,
      ports: portsOf(pool),
      adminState: pool.admin_state,
      pinForMs: pool.pin_for_ms!,
      ...(pool.director_tag !== null && pool.director_address !== null ? { director: { tag: pool.director_tag, address: pool.director_address } } : {}),
      accounts: counts ? (counts.get(id) ?? 0) : null,
      pins: [...pins.values()].reduce((a, b) => a + b, 0),
      members: members.map((m) => ({
        ...memberView(m, portsOf(pool), health.get(m.id)),
        eligible: eligible.has(m.id),
        pins: pins.get(m.id) ?? 0,
        share: eligible.has(m.id) && total > 0 ? Math.round((m.weight / total) * 10_000) / 100 : 0,
      })),
    }
  }

  async addMember(actor: string, id: string, m: NewMember): Promise<PoolMemberView> {
    checkAddress(m.address)
    return this.#write(id, [{ kind: 'registry' }], async (tx, pool) => {
      await claimServerIds(tx, [m.id])
      const added = await insertMember(tx, id, m)
      await this.#audit(tx, actor, 'create', id, undefined, { member: recordedMember(added) })
      return memberView(added, portsOf(pool), (await healthByServer(tx)).get(added.id))
    })
  }

  /**
   * A weight or admin state. Into or out of maintenance, the member's pins are dropped in the same
   * transaction and the drop announced, so every instance forgets its copies on hearing it,
   * whenever it reads the registry: entering, because a member in maintenance serves nobody (like
   * one down); leaving, because a pin to it made meanwhile can only come from an instance that had
   * not yet heard of the maintenance, while the others pinned those users elsewhere. A toggle
   * faster than an instance's registry reload would otherwise leave that instance its old copies
   * for up to a refresh slice. Drain and weight leave pins alone: they only stop new ones.
   */
  async updateMember(actor: string, id: string, memberId: string, c: MemberChanges): Promise<PoolMemberView> {
    return this.#write(id, [{ kind: 'registry' }], async (tx, pool, announce) => {
      const before = await this.#member(tx, id, memberId)
      const { rows } = await tx.query<StoredMember>(
        `update pool_members set weight = $2, admin_state = $3, updated_at = now() where id = $1 returning ${STORED_MEMBER_COLUMNS}`,
        [memberId, c.weight ?? before.weight, c.adminState ?? before.admin_state],
      )
      const after = rows[0]!
      let dropped: number | undefined
      if ((before.admin_state === 'maintenance') !== (after.admin_state === 'maintenance')) {
        dropped = await dropPins(tx, { pool: id, member: memberId })
        announce({ kind: 'pins', pool: id, member: memberId })
      }
      await this.#audit(tx, actor, 'update', id, { member: recordedMember(before) }, { member: recordedMember(after), ...(dropped === undefined ? {} : { droppedPins: dropped }) })
      return memberView(after, portsOf(pool), (await healthByServer(tx)).get(after.id))
    })
  }

  /** Removes a member and drops its pins: its users' next lookups go to the next member by hash. */
  async removeMember(actor: string, id: string, memberId: string): Promise<void> {
    await this.#write(id, [{ kind: 'registry' }, { kind: 'pins', pool: id, member: memberId }], async (tx) => {
      const before = await this.#member(tx, id, memberId)
      const { rows } = await tx.query<{ n: number }>('select count(*)::int as n from pool_members where pool_id = $1', [id])
      if (rows[0]!.n <= 1) throw new AdminError(ErrorCodes.CONFLICT, `${memberId} is the last member of pool ${id}: add another first, or delete the pool`)
      await tx.query('delete from pool_members where id = $1', [memberId])
      await forgetHealth(tx, memberId)
      const dropped = await dropPins(tx, { pool: id, member: memberId })
      await this.#audit(tx, actor, 'delete', id, { member: recordedMember(before) }, { droppedPins: dropped })
    })
  }

  /** Drops the pins of the whole pool, of one member or of one user. */
  async flush(actor: string, id: string, f: FlushRequest): Promise<{ dropped: number }> {
    if (f.member !== undefined && f.user !== undefined) throw new AdminError(ErrorCodes.VALIDATION, 'give member or user, not both')
    const address = f.user === undefined ? undefined : await this.#user(id, f.user)
    const selector = { pool: id, ...(f.member === undefined ? {} : { member: f.member }), ...(address === undefined ? {} : { address }) }
    return this.#write(id, [{ kind: 'pins', ...selector }], async (tx) => {
      if (f.member !== undefined) await this.#member(tx, id, f.member)
      const dropped = await dropPins(tx, selector)
      await this.#audit(tx, actor, 'flush', id, undefined, { ...(f.member === undefined ? {} : { member: f.member }), ...(address === undefined ? {} : { user: address }), dropped })
      return { dropped }
    })
  }

  /**
   * Pins a user to a member explicitly, whatever the hash or an old pin says. With `kick`, the
   * user's live sessions on the old member are kicked afterwards through the doveadm HTTP API; a
   * failed kick is reported in the answer, the move stands.
   */
  async moveUser(actor: string, id: string, r: MoveUserRequest): Promise<MoveUserView> {
    const doveadm = this.d.config.doveadm
    if (r.kick && doveadm === undefined) {
      throw new AdminError(ErrorCodes.VALIDATION, 'kick: no doveadm section is configured (doveadm.port, doveadm.apiKeyFile): move without kick, or configure the doveadm HTTP API')
    }
    const address = await this.#user(id, r.user)
    const moved = await this.#write(id, [{ kind: 'pins', pool: id, address }], async (tx) => {
      const target = await this.#member(tx, id, r.member)
      if (target.admin_state === 'maintenance') throw new AdminError(ErrorCodes.CONFLICT, `member ${r.member} is in maintenance: its pins would be replaced at the next lookup`)
      const previous = (await setPin(tx, { address, pool: id, member: r.member })) ?? null
      const old = previous === null ? undefined : await this.#memberOrUndefined(tx, id, previous)
      await this.#audit(tx, actor, 'move-user', id, { user: address, member: previous }, { user: address, member: r.member, ...(r.kick ? { kick: true } : {}) })
      return { previous, old }
    })
    const answer: MoveUserView = { user: address, member: r.member, previous: moved.previous }
    if (!r.kick) return answer
    const outcome: KickOutcome =
      moved.old === undefined
        ? { kicked: false, reason: moved.previous === null ? 'no previous pin: no member to kick on' : `the previous member ${moved.previous} is no longer in the pool` }
        : moved.old.id === r.member
          ? { kicked: false, reason: `already pinned to ${r.member}: nothing to kick` }
          : await kick(doveadm!, moved.old.address, address, this.d.logger)
    return { ...answer, ...outcome }
  }

  async pins(id: string, q: PinListRequest): Promise<{ pins: Awaited<ReturnType<typeof listPins>>; next?: string }> {
    const pool = await this.#pool(this.d.store, id)
    if (q.member !== undefined) await this.#member(this.d.store, id, q.member)
    const rows = await listPins(this.d.store, {
      pool: id,
      pinForMs: pool.pin_for_ms!,
      limit: q.limit + 1,
      ...(q.member === undefined ? {} : { member: q.member }),
      ...(q.after === undefined ? {} : { after: q.after }),
    })
    const pins = rows.slice(0, q.limit)
    return rows.length > q.limit ? { pins, next: pins.at(-1)!.address } : { pins }
  }

  /**
   * One write on a pool in one transaction (the pool row locked, so member changes of one pool
   * are serialised), announced to every instance at its commit and applied here before answering:
   * `changes`, and those `run` announces as it finds them needed.
   */
  async #write<T>(id: string, changes: readonly Change[], run: (tx: Queryable, pool: Row, announce: (change: Change) => void) => Promise<T>): Promise<T> {
    const all = [...changes]
    const out = await this.d.store.transaction(async (tx) => {
      all.length = changes.length
      const pool = await this.#pool(tx, id, true)
      const result = await run(tx, pool, (change) => all.push(change))
      for (const change of all) await this.d.bus.publish(change, tx)
      return result
    })
    for (const change of all) await applied(this.d, change)
    return out
  }

  async #pool(db: Queryable, id: string, lock = false): Promise<Row> {
    const row = await rowOf<Row>(db, BACKENDS_TABLE, id, lock)
    if (row.kind !== 'pool') throw new AdminError(ErrorCodes.NOT_FOUND, `no pool ${id} (backend ${id} is a host)`)
    return row
  }

  async #member(db: Queryable, pool: string, id: string): Promise<StoredMember> {
    const m = await this.#memberOrUndefined(db, pool, id)
    if (m === undefined) throw new AdminError(ErrorCodes.NOT_FOUND, `no member ${id} in pool ${pool}`)
    return m
  }

  async #memberOrUndefined(db: Queryable, pool: string, id: string): Promise<StoredMember | undefined> {
    const { rows } = await db.query<StoredMember>(`select ${STORED_MEMBER_COLUMNS} from pool_members where id = $1 and pool_id = $2`, [id, pool])
    return rows[0]
  }

  /**
   * The canonical primary address pins are keyed by (what lookups route by), of an account the
   * directory places on this pool. Asked of the directory like every lookup, so it works with a
   * read-only directory too.
   */
  async #user(pool: string, raw: string): Promise<string> {
    const c = canonicalAddress(raw, this.d.config.addresses)
    if (!c.ok) throw new AdminError(ErrorCodes.VALIDATION, `user: not an address (${c.reason}): ${raw}`)
    const accounts = (await this.d.directory.findByAddress(c.address)).filter((e) => e.kind === 'account')
    if (accounts.length === 0) throw new AdminError(ErrorCodes.NOT_FOUND, `no account ${c.address}`)
    if (accounts.length > 1) throw new AdminError(ErrorCodes.CONFLICT, `${c.address} is owned by ${accounts.length} directory entries: fix the directory first`)
    const account = accounts[0]!
    let address = c.address
    if (account.canonical !== undefined) {
      const primary = canonicalAddress(account.canonical, this.d.config.addresses)
      if (primary.ok) address = primary.address
    }
    const backend = this.d.registry().backendForMailHost(account.mailHost)
    if (backend?.id !== pool) {
      throw new AdminError(ErrorCodes.VALIDATION, `user: ${address} is not on pool ${pool} (its mailHost ${account.mailHost} names ${backend ? `backend ${backend.id}` : 'no backend'})`)
    }
    return address
  }

  async #audit(tx: Queryable, actor: string, action: AuditAction, pool: string, before: object | undefined, after: object | undefined): Promise<void> {
    await recordAudit(tx, { actor, action, subjectType: 'pool', subject: pool, before, after })
  }
}

