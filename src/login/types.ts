// Login routing contracts shared by the HTTP endpoints, the dict server and the router
// (docs/login.md).

export type LoginOutcome = 'ok' | 'mismatch' | 'unknown' | 'disabled' | 'tempfail'

export interface LoginRequest {
  /** The login name as the proxy sent it. */
  readonly user: string
  /** Absent for a lookup (no password involved: LMTP, doveadm). */
  readonly password?: string
  /** imap, pop3, lmtp, smtp, doveadm, ... */
  readonly service: string
  readonly remoteIp?: string
  readonly session?: string
}

export type LoginResult =
  | {
      readonly result: 'ok'
      /** The canonical address of the mailbox. */
      readonly canonical: string
      /** Backend address (IP) and the port for the service, if it has one. */
      readonly host: string
      readonly port?: number
      /** Dovecot passdb fields (proxy, host, port, nopassword, destuser). */
      readonly fields: Readonly<Record<string, string>>
      /** Seconds the brakes want this answer delayed (0: none). */
      readonly tarpitSeconds: number
    }
  | {
      readonly result: Exclude<LoginOutcome, 'ok'>
      readonly reason: string
      readonly tarpitSeconds: number
      /** True when the brakes refused the attempt without checking the password. */
      readonly refused?: boolean
    }

/** One dict protocol lookup's answer (protocols.md §7): O, N or F. */
export type DictAnswer =
  | { readonly kind: 'found'; readonly value: string }
  | { readonly kind: 'notfound' }
  | { readonly kind: 'fail'; readonly reason: string }

export interface DictService {
  /** `key` is the full key as sent (e.g. `shared/passdb/alice@example.org`), `user` the username field. */
  lookup(key: string, user: string): Promise<DictAnswer>
}
