// Keys of the PostgreSQL advisory locks mailhostd takes, in one place so no two uses collide.
// Transaction-scoped (pg_advisory_xact_lock) only: a pooled connection must never keep a lock
// after the transaction that took it.

export const ADVISORY_LOCKS = {
  /** Serialises schema migrations across instances starting together on one database. */
  migrate: 727_361_001,
  /** Serialises seeding the registry from configuration. */
  seed: 727_361_002,
  /** Serialises admin writes that take a server id (backend or pool member ids share one namespace). */
  serverIds: 727_361_003,
} as const
