// Builds the admin side of one instance from its parts: the services the /v1 routes call, the
// token check and the idempotency keys. The daemon owns the parts; close() stops what this
// side runs by itself (copy hooks, crash recovery).

import { toMs } from '../config/duration.js'
import type { AdminRoutesOptions } from '../http/admin/routes.js'
import { Accounts } from './accounts.js'
import { Backends } from './backends.js'
import type { AdminDeps } from './context.js'
import { Domains } from './domains.js'
import { IdempotencyKeys } from './idempotency.js'
import { Moves } from './moves.js'
import { Recovery } from './recovery.js'
import { TokenAuth } from './tokens.js'

export interface Admin extends AdminRoutesOptions {
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
    auth: new TokenAuth(deps.config.admin.tokens),
    accounts,
    domains: new Domains(deps),
    backends: new Backends(deps),
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
