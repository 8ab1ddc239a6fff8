// Schema version 2: what the admin API needs besides the directory itself: mailbox moves,
// idempotency keys for creates, and indexes for per-backend account counts and audit queries.

import type { Migration } from '../migrate.js'

export const admin: Migration = {
  version: 2,
  name: 'moves, idempotency keys, admin indexes',
  statements: [
    // Backend ids are kept as text, not foreign keys: a move's history outlives the backends.
    `create table moves (
       id bigint generated always as identity primary key,
       account text not null,
       account_id text not null,
       source_mailhost text not null,
       source_backend text,
       target_backend text not null,
       state text not null default 'pending'
         constraint moves_state check (state in ('pending', 'copying', 'copied', 'failed', 'completed', 'aborted')),
       detail text,
       actor text not null,
       created_at timestamptz not null default now(),
       updated_at timestamptz not null default now(),
       finished_at timestamptz
     )`,
    // One unfinished move per account: a second start is refused by the database, not by luck.
    `create unique index moves_one_active on moves (account) where state in ('pending', 'copying', 'copied', 'failed')`,
    `create index moves_state on moves (state, id)`,

    `create table idempotency_keys (
       actor text not null,
       key text not null,
       request_hash text not null,
       status integer,
       body jsonb,
       created_at timestamptz not null default now(),
       primary key (actor, key)
     )`,
    `create index idempotency_keys_created on idempotency_keys (created_at)`,

    `create index accounts_mailhost on accounts (lower(mailhost))`,
    `create index audit_log_at on audit_log (at, id)`,
  ],
}
