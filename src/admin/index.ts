// Builds the admin side of one instance from its parts: the services the /v1 routes call and the
// idempotency keys. The daemon owns the parts (and the token check, which a reload replaces);
// close() stops what this side runs by itself (copy hooks, crash recovery).

import { toMs } from '../config/duration.js'
import { Accounts } from './accounts.js'
import { Backends } from './backends.js'
import type { AdminDeps } from './context.js'
import { Domains } from './domains.js'
import { IdempotencyKeys } from './idempotency.js'
import { Moves } from './moves.js'
import { Pools } from './pools.js'
import { Recovery } from './recovery.js'

/** What the admin routes call. */
export interface AdminServices {
  readonly deps: AdminDeps
  readonly accounts: Accounts
  readonly domains: Domains
  readonly backends: Backends
  readonly pools: Pools
  readonly moves: Moves
  readonly idempotency: IdempotencyKeys
}

export interface Admin extends AdminServices {
  /**
   * Starts what runs by itself: first the recovery of what stopped requests left half-done, then
   * the copy hooks of pending moves.
   */
  start(): Promise<void>
  close(): Promise<void>
}

export function createAdmin(deps: AdminDeps): Admin {
  const moves = new Moves(deps)
  const accounts = new Accounts(deps)
  const idempotency = new IdempotencyKeys(deps.store, toMs(deps.config.admin.idempotencyTtl), deps.instance)
  const recovery = new Recovery(deps, accounts, moves, idempotency)
  return {
    deps,
    accounts,
    domains: new Domains(deps),
    backends: new Backends(deps),
    pools: new Pools(deps),
    moves,
    idempotency,
    start: async () => {
      await recovery.start()
      await moves.resume()
    },
    close: async () => {
      await recovery.close()
      await moves.close()
    },
  }
}
