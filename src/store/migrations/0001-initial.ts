// Schema version 1: the cluster registry (backends, domains), the SQL directory (accounts,
// alternate addresses, aliases) and the audit log. Runs unchanged on PostgreSQL and PGlite.
// Enumerations are CHECK constraints rather than enum types so a later migration can widen one
// with a plain ALTER inside a transaction.

import type { Migration } from '../migrate.js'

export const initial: Migration = {
  version: 1,
  name: 'initial schema',
  statements: [
    `create table backends (
       id text primary key
         constraint backends_id_format check (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
       mailhosts text[] not null default '{}',
       address text not null
         -- The cast rejects anything that is not an address; the mask length rejects networks.
         constraint backends_address_ip
           check (masklen(address::inet) = case family(address::inet) when 4 then 32 else 128 end),
       route text not null default 'lmtp'
         constraint backends_route check (route in ('lmtp', 'smtp')),
       lmtp_port integer not null default 24 constraint backends_lmtp_port check (lmtp_port between 1 and 65535),
       smtp_port integer not null default 25 constraint backends_smtp_port check (smtp_port between 1 and 65535),
       imap_port integer not null default 143 constraint backends_imap_port check (imap_port between 1 and 65535),
       pop3_port integer not null default 110 constraint backends_pop3_port check (pop3_port between 1 and 65535),
       weight integer not null default 1 constraint backends_weight check (weight >= 0),
       capacity integer constraint backends_capacity check (capacity >= 0),
       admin_state text not null default 'active'
         constraint backends_admin_state check (admin_state in ('active', 'drain', 'maintenance')),
       created_at timestamptz not null default now(),
       updated_at timestamptz not null default now()
     )`,

    `create table domains (
       name text primary key
         constraint domains_name_canonical check (name = lower(name) and name ~ '^[a-z0-9_-]+(\\.[a-z0-9_-]+)+$'),
       alias_for text references domains (name),
       catch_all text[]
         constraint domains_catch_all_not_empty check (cardinality(catch_all) > 0),
       backend_affinity text references backends (id) on delete set null,
       created_at timestamptz not null default now(),
       updated_at timestamptz not null default now(),
       -- An alias domain resolves through its target, catch-all included.
       constraint domains_alias_no_catch_all check (alias_for is null or catch_all is null),
       constraint domains_alias_not_self check (alias_for <> name)
     )`,

    `create table accounts (
       id bigint generated always as identity primary key,
       address text not null unique
         constraint accounts_address_format check (position('@' in address) > 1),
       mailhost text not null constraint accounts_mailhost_not_empty check (mailhost <> ''),
       status text not null default 'active'
         constraint accounts_status check (status in ('active', 'disabled')),
       password_hash text,
       send_as text[] not null default '{}',
       created_at timestamptz not null default now(),
       updated_at timestamptz not null default now()
     )`,

    // No constraint across accounts and account_addresses: two owners of one address are a data
    // error the resolver must see and report, not one the schema silently hides.
    `create table account_addresses (
       address text primary key
         constraint account_addresses_format check (position('@' in address) > 1),
       account_id bigint not null references accounts (id) on delete cascade,
       created_at timestamptz not null default now()
     )`,
    `create index account_addresses_account on account_addresses (account_id)`,

    `create table aliases (
       address text not null constraint aliases_address_format check (position('@' in address) > 1),
       target text not null constraint aliases_target_not_empty check (target <> ''),
       created_at timestamptz not null default now(),
       primary key (address, target)
     )`,

    `create table audit_log (
       id bigint generated always as identity primary key,
       at timestamptz not null default now(),
       actor text not null,
       action text not null,
       subject_type text not null,
       subject text not null,
       before jsonb,
       after jsonb
     )`,
    `create index audit_log_subject on audit_log (subject_type, subject, at)`,
  ],
}
