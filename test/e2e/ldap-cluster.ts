// The cluster most Postfix e2e tests run against: a real slapd with the demo directory, two
// smtp-sinks standing in for backends mx1 and mx2 (routed over SMTP), and mailhostd built from
// dist/ serving them. Everything is torn down with the test.

import type { Test } from 'tap'
import { startMailhostd, type Mailhostd } from '../harness/mailhostd.js'
import { startSlapd, type Slapd, slapdDirectory } from '../harness/slapd.js'
import { startSmtpSink, type Sink } from '../harness/smtp-sink.js'
import { demoClusterConfig } from './demo-table.js'

export interface LdapCluster {
  readonly slapd: Slapd
  readonly mx1: Sink
  readonly mx2: Sink
  readonly m: Mailhostd
}

export async function startLdapCluster(
  t: Test,
  opts: { ldap?: Record<string, unknown>; config?: Record<string, unknown> } = {},
): Promise<LdapCluster> {
  const slapd = await startSlapd()
  t.teardown(() => slapd.stop())
  const mx1 = await startSmtpSink()
  t.teardown(() => mx1.stop())
  const mx2 = await startSmtpSink()
  t.teardown(() => mx2.stop())
  const m = await startMailhostd({
    domains: demoClusterConfig().domains,
    backends: [
      { id: 'mx1', mailHosts: ['mx1.example.org'], address: '127.0.0.1', route: 'smtp', ports: { smtp: mx1.port } },
      { id: 'mx2', mailHosts: ['mx2.example.org'], address: '127.0.0.1', route: 'smtp', ports: { smtp: mx2.port } },
    ],
    directory: slapdDirectory(slapd, opts.ldap),
    ...opts.config,
  })
  t.teardown(() => m.stop())
  return { slapd, mx1, mx2, m }
}

/** The reply text Postfix builds around a policy action at RCPT: `<rcpt>: Recipient address rejected: text`. */
export const rejectedAtRcpt = (rcpt: string, action: string) =>
  `<${rcpt}>: Recipient address rejected: ${action.replace(/^\d{3} \d\.\d{1,3}\.\d{1,3} /, '')}`
