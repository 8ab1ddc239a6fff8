// What a mailHost value may be. A mailHost goes into a Postfix route (`smtp:[{mailHost}]:25` for
// one that names no backend) and into logs, so anything but a host name or an IP address would
// corrupt a route or a log line; the resolver answers a temporary failure for an entry that has
// one. The config file and the admin API accept a backend's mailHost names only by this same
// rule: a name the resolver refuses would leave every account placed on that backend failing
// temporarily for good.

/** A letter, digit or `_`, then letters, digits, `_ . : -` (IPv6 literals have colons); 254 at most. */
export const MAIL_HOST_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,253}$'

const MAIL_HOST = new RegExp(MAIL_HOST_PATTERN)

export const MAIL_HOST_RULE = 'a host name or IP address: letters, digits, _ . : - (starting with a letter, digit or _), at most 254 characters'

export function isMailHost(value: string): boolean {
  return MAIL_HOST.test(value)
}
