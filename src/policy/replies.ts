// Every action text the policy service answers, in one place: the engine uses them and the
// tests assert them. Postfix prefixes them with the address, e.g.
//   550 5.1.1 <nobody@example.org>: Recipient address rejected: mailbox unknown in this mail cluster

export const DUNNO = 'DUNNO'

/** Unknown recipient in a served domain. */
export const UNKNOWN_RECIPIENT = '550 5.1.1 mailbox unknown in this mail cluster'

/** Recipient whose every mailbox is disabled, when the rule set rejects them. */
export const DISABLED_RECIPIENT = '550 5.2.1 mailbox disabled'

/** Directory trouble: defer, never reject (architecture.md §2). */
export const DIRECTORY_DEFER = 'DEFER_IF_PERMIT 4.3.0 directory temporarily unavailable, try again later'

/** Authenticated sender using an address its login does not own. */
export const senderNotOwned = (sender: string, login: string) =>
  `553 5.7.1 sender address ${sender} is not owned by login ${login}`

/** A rate limit hit: more than `messages` in `window` for `key` (a SASL user or client address). */
export const rateLimited = (what: string, key: string, messages: number, window: string) =>
  `450 4.7.1 too many messages from ${what} ${key}: limit is ${messages} per ${window}`

/** policy_context names no configured rule set: a configuration error, so defer loudly. */
export const unknownContext = (context: string) => `DEFER_IF_PERMIT 4.3.5 no policy rule set named ${context}`

/** The engine failed unexpectedly: defer. */
export const INTERNAL_DEFER = 'DEFER_IF_PERMIT 4.3.0 policy service internal error'
