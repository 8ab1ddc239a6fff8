// Schema version 5: shared-storage pools (docs/pools.md). A pool is a backends row of kind pool
// (no address of its own); its members have their own table, and the pins that keep each user on
// one member are shared by every instance through pool_pins.

import type { Migration } from '../migrate.js'

export const pools: Migration = {
  version: 5,
  name: 'pools, members and pins',
  statements: [
    `alter table backends add column kind text not null default 'host' constraint backends_kind check (kind in ('host', 'pool'))`,
    `alter table backends alter column address drop not null`,
    `alter table backends add constraint backends_host_address check ((kind = 'host') = (address is not null))`,
    `alter table backends add column pin_for_ms integer constraint backends_pin_for check (pin_for_ms > 0)`,
    `alter table backends add column director_tag text`,
    `alter table backends add column director_address text`,
    // Member ids share the backend id namespace; the admin API and the config loader keep them
    // apart from backend ids. A null port is the pool's.
    `create table pool_members (
       id text primary key
         constraint pool_members_id_format check (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
       pool_id text not null references backends (id) on delete cascade,
       address text not null
         constraint pool_members_address_ip
           check (masklen(address::inet) = case family(address::inet) when 4 then 32 else 128 end),
       lmtp_port integer constraint pool_members_lmtp_port check (lmtp_port between 1 and 65535),
       smtp_port integer constraint pool_members_smtp_port check (smtp_port between 1 and 65535),
       imap_port integer constraint pool_members_imap_port check (imap_port between 1 and 65535),
       pop3_port integer constraint pool_members_pop3_port check (pop3_port between 1 and 65535),
       weight integer not null default 1 constraint pool_members_weight check (weight >= 0),
       admin_state text not null default 'active'
         constraint pool_members_admin_state check (admin_state in ('active', 'drain', 'maintenance')),
       created_at timestamptz not null default now(),
       updated_at timestamptz not null default now()
     )`,
    `create index pool_members_pool on pool_members (pool_id)`,
    // One row per pinned user (canonical primary address). last_seen is the store's clock at the
    // last claim or refresh; a pin is live while last_seen is within the pool's pin_for_ms.
    // Not foreign keys: a pin of a removed member is simply not live, and is swept.
    `create table pool_pins (
       address text primary key,
       pool_id text not null,
       member_id text not null,
       explicit boolean not null default false,
       pinned_at timestamptz not null default now(),
       last_seen timestamptz not null default now()
     )`,
    `create index pool_pins_member on pool_pins (pool_id, member_id)`,
  ],
}
