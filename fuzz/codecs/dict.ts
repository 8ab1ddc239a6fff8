// Dovecot 2.3 dict protocol lines: TAB-separated, \x01-escaped fields, one command letter.

import { DictDecoder, dictEscape, type DictRequest } from '../../src/protocols/dict.js'
import type { DecodedItem } from '../../src/protocols/decoder.js'
import type { Rng } from '../rng.js'
import { addressLike, text } from '../text.js'
import { bytesOf, decodeStream, error, request, type CodecTarget } from './target.js'

const PROBE = Buffer.from('Lshared/passdb/alice@example.org\talice@example.org\n')
const UNSUPPORTED = [...'IBCDRSUAT']

function shapeError(r: DictRequest): string | undefined {
  switch (r.kind) {
    case 'hello':
      return [r.major, r.minor, r.valueType].every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff) ? undefined : 'hello numbers'
    case 'lookup':
      return [r.key, r.user].every((v) => v === null || typeof v === 'string') ? undefined : 'lookup fields'
    case 'unsupported':
      return UNSUPPORTED.includes(r.command) ? undefined : `command ${r.command}`
  }
}

function item(t: DecodedItem<DictRequest>) {
  if (t.type === 'error') return { item: error(t.error) }
  const bad = shapeError(t.request)
  return { item: request(t.request), ...(bad ? { badShape: bad } : {}) }
}

function validLine(rng: Rng): [string, DictRequest] {
  const roll = rng.below(10)
  if (roll === 0) {
    const [major, minor, name] = [rng.int(0, 5), rng.int(0, 3), text(rng, 10)]
    return [`H${major}\t${minor}\t0\t\t${dictEscape(name)}`, { kind: 'hello', major, minor, valueType: 0, dictName: name }]
  }
  if (roll === 1) {
    const command = rng.pick(UNSUPPORTED)
    return [`${command}1\t${dictEscape(text(rng, 10))}`, { kind: 'unsupported', command }]
  }
  const key = `shared/${rng.pick(['passdb', 'userdb', 'passdb/imap'])}/${addressLike(rng)}`
  const user = rng.chance(0.8) ? text(rng, 20) : null
  return [`L${dictEscape(key)}${user === null ? '' : `\t${dictEscape(user)}`}`, { kind: 'lookup', key, user }]
}

export const dictTarget: CodecTarget = {
  name: 'dict',
  delimiters: bytesOf('\n', '\t', '\x01', '\r', '\r\n', 'H', 'L', '\x01t'),
  streaming: true,
  valid(rng: Rng, max: number) {
    const [line, req] = validLine(rng)
    const wire = Buffer.from(`${line}${rng.chance(0.1) ? '\r' : ''}\n`)
    if (wire.length > max) return { bytes: Buffer.from('L\t\n'), expect: request({ kind: 'lookup', key: '', user: '' }) }
    return { bytes: wire, expect: request(req) }
  },
  hostile(rng: Rng, max: number) {
    return { bytes: Buffer.from(`Lshared/passdb/${'a'.repeat(max + rng.int(0, 64))}${rng.chance(0.5) ? '\n' : ''}`), error: error('too-large') }
  },
  pendingBound: (max) => max,
  decode: (chunks, max) => decodeStream(new DictDecoder(max), chunks, item, PROBE),
}
