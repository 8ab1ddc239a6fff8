// The throttled log of refused stored passwords (src/auth/scheme-refusals.ts) with a fake clock:
// the first refusal of each scheme and fault logs at once, the rest of the interval is counted
// and reported with the next line; the metric label set stays closed.

import t from 'tap'
import { refusalLabel, REFUSAL_LOG_INTERVAL_MS, SchemeRefusals } from '../../src/auth/scheme-refusals.js'
import { UnsupportedSchemeError } from '../../src/auth/scheme-support.js'
import { createLogger } from '../../src/log.js'

t.test('once per scheme and fault per interval, with the count of those left out', async (t) => {
  let now = 1_000_000
  let text = ''
  const counted: string[] = []
  const refusals = new SchemeRefusals({
    logger: createLogger('info', { write: (s: string) => void (text += s) }),
    onRefused: (scheme) => counted.push(scheme),
    now: () => now,
  })
  const lines = () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { scheme: string; problem: string; suppressed: number; msg: string })
  const des = new UnsupportedSchemeError('CRYPT', 'traditional DES crypt is not supported')
  for (let i = 0; i < 1000; i++) refusals.record(des)
  t.equal(lines().length, 1, '1000 logins, one line')
  t.match(lines()[0]!.msg, /fail temporarily until their passwords are rehashed/)
  refusals.record(new UnsupportedSchemeError('CRYPT', 'crypt method not supported for this scheme'))
  refusals.record(new UnsupportedSchemeError('MD4', 'scheme not supported'))
  t.equal(lines().length, 3, 'another fault or another scheme logs at once')
  now += REFUSAL_LOG_INTERVAL_MS - 1
  refusals.record(des)
  t.equal(lines().length, 3, 'not again within the interval')
  now += 1
  refusals.record(des)
  t.same(lines()[3], { ...lines()[3], scheme: 'CRYPT', suppressed: 1000 }, 'an interval later, with how many were left out')
  t.equal(counted.length, 1004, 'every one counted')
  t.equal(REFUSAL_LOG_INTERVAL_MS, 3_600_000, 'an hour')
})

t.test('metric labels: Dovecot scheme names as they are, anything else "other", no prefix "none"', async (t) => {
  t.equal(refusalLabel('PLAIN-MD4'), 'PLAIN-MD4')
  t.equal(refusalLabel('MD4'), 'other', 'not a name Dovecot knows')
  t.equal(refusalLabel('DES-CRYPT'), 'DES-CRYPT')
  t.equal(refusalLabel('SCRAM-SHA-256'), 'SCRAM-SHA-256')
  t.equal(refusalLabel('X-MY-SCHEME'), 'other')
  t.equal(refusalLabel(undefined), 'none')
})
