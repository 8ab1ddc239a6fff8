// Schema version 3: backend health as the active checks record it, one row per backend and
// probed service, so every instance, the admin API and the status page show the same states.

import type { Migration } from '../migrate.js'

export const health: Migration = {
  version: 3,
  name: 'backend health',
  statements: [
    `create table backend_health (
       backend_id text not null,
       service text not null constraint backend_health_service check (service in ('delivery', 'imap', 'pop3')),
       state text not null constraint backend_health_state check (state in ('up', 'down')),
       since timestamptz not null default now(),
       detail text,
       instance text not null,
       updated_at timestamptz not null default now(),
       primary key (backend_id, service)
     )`,
  ],
}
