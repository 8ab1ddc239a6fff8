// Schema version 4: what makes every admin write recoverable after a crash (docs/admin.md,
// "What a crash can leave"). Instances announce themselves, so work an instance left half-done
// (an Idempotency-Key it claimed, a directory write it announced, a copy hook it ran) can be told
// from work a live instance is still doing; intents record the LDAP writes that cannot share a
// transaction with the store.

import type { Migration } from '../migrate.js'

export const crashRecovery: Migration = {
  version: 4,
  name: 'instances, admin intents, owners of keys and hooks',
  statements: [
    // One row per running mailhostd process. session_pid/session_started name the PostgreSQL
    // session the instance holds open for as long as it lives (null on PGlite, where one process
    // owns the database); heartbeat_at bounds how long a hung process still counts as alive.
    `create table instances (
       id text primary key,
       host text not null,
       pid integer not null,
       started_at timestamptz not null default now(),
       heartbeat_at timestamptz not null default now(),
       session_pid integer,
       session_started timestamptz
     )`,
    // The one definition of "this instance is alive", used by every query that decides whether
    // work may be taken over: its heartbeat is recent and its store session still exists (a
    // process killed with SIGKILL loses its session at once, long before its lease runs out).
    `create function mailhostd_instance_alive(instance text, lease_ms double precision) returns boolean
       language sql stable as $$
         select exists (
           select 1 from instances i
            where i.id = instance
              and i.heartbeat_at > now() - lease_ms * interval '1 millisecond'
              and (i.session_pid is null
                   or exists (select 1 from pg_stat_activity s where s.pid = i.session_pid and s.backend_start = i.session_started)))
       $$`,
    // Who runs the request behind a claimed key, and a token that fences it: once the key was
    // taken over, the old request can no longer record its answer.
    `alter table idempotency_keys add column owner text`,
    `alter table idempotency_keys add column token text`,
    // Who runs a move's copy hook (state copying).
    `alter table moves add column runner text`,
    // Directory writes announced before they are made, where the directory is not the store
    // (LDAP): open until the write's outcome is recorded with its audit entry (done) or found not
    // to have happened (undone). An open intent whose owner is dead is resolved by reading the
    // directory. idem_* name the Idempotency-Key whose answer the write gives.
    `create table admin_intents (
       id bigint generated always as identity primary key,
       kind text not null constraint admin_intents_kind check (kind in ('account-create', 'account-update', 'account-delete', 'move-complete')),
       subject text not null,
       actor text not null,
       owner text not null,
       payload jsonb not null,
       idem_actor text,
       idem_key text,
       idem_token text,
       state text not null default 'open' constraint admin_intents_state check (state in ('open', 'done', 'undone')),
       created_at timestamptz not null default now(),
       resolved_at timestamptz
     )`,
    `create index admin_intents_open on admin_intents (id) where state = 'open'`,
    `create index admin_intents_resolved on admin_intents (resolved_at) where state <> 'open'`,
  ],
}
