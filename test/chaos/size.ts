// How big a chaos run is. `npm test` runs the small size: every fault happens, but with a few
// hundred messages and short outages, so the files stay well inside tap's per-file timeout on two
// cores. `npm run chaos` sets CHAOS_SIZE=full: the figures docs/reliability.md reports.

export interface ChaosSize {
  readonly name: 'small' | 'full'
  /** Generated accounts (split over mx1 and mx2) and aliases in slapd. */
  readonly accounts: number
  readonly aliases: number
  /** Messages sent through Postfix, each to one recipient. */
  readonly messages: number
  /**
   * How long the message (or login) stream runs; the faults are placed at fixed fractions of
   * it, so every outage has traffic before, during and after it.
   */
  readonly streamMs: number
  /** How long slapd (or PostgreSQL) stays dead each time: several cache TTLs. */
  readonly outageMs: number
  /**
   * Of those, messages Postfix puts on hold at arrival and releases during the second slapd
   * outage: mail already in the queue when the directory dies (see mail.test.ts).
   */
  readonly held: number
  /** Concurrent SMTP sessions of the sending side. */
  readonly smtpSessions: number
  /** Upper bound for the queue to drain after the stream ends. */
  readonly drainMs: number
  /** Login users per backend, and concurrent IMAP clients. */
  readonly loginUsersPerBackend: number
  readonly imapClients: number
  /**
   * Kill-and-restart rounds of admin-crash.test.ts per directory and peer set: the first two
   * hit their windows deterministically (a held audit lock, blocking copy hooks), the rest kill
   * at a random point of the load. ADMIN_CRASH_ROUNDS overrides it.
   */
  readonly adminCrashRounds: number
}

const SMALL: ChaosSize = {
  name: 'small',
  accounts: 80,
  aliases: 20,
  messages: 300,
  held: 20,
  streamMs: 30_000,
  outageMs: 4_000,
  smtpSessions: 3,
  drainMs: 60_000,
  loginUsersPerBackend: 6,
  imapClients: 2,
  adminCrashRounds: 3,
}

const FULL: ChaosSize = {
  name: 'full',
  accounts: 3000,
  aliases: 600,
  messages: 10_000,
  held: 300,
  streamMs: 240_000,
  outageMs: 20_000,
  smtpSessions: 6,
  drainMs: 600_000,
  loginUsersPerBackend: 40,
  imapClients: 4,
  adminCrashRounds: 30,
}

function pick(): ChaosSize {
  const name = process.env.CHAOS_SIZE ?? 'small'
  if (name === 'small') return SMALL
  if (name === 'full') return FULL
  throw new Error(`CHAOS_SIZE must be small or full, not ${name}`)
}

export const SIZE = pick()
