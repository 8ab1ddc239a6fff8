// Dovecot 2.3 dict proxy protocol codec (protocols.md §7; lib-dict/dict-client.h and
// dict/dict-commands.c at 2.3.19.1): TAB-separated, LF-terminated lines, every field
// tab-escaped, the command or reply letter glued to the first field.
//
// Limits and policy (cited by docs/login.md):
// - A line, its LF included, is at most `maxRequestBytes` bytes. The daemon passes its
//   `limits.maxRequestBytes` (default 16384): Dovecot's own dict server allows 64 KiB
//   (DICT_CLIENT_MAX_LINE_LENGTH), but an auth lookup line is a key plus a user name, a few
//   hundred bytes at most. It is `too-large` as soon as the bytes buffered for one line can no
//   longer fit, so a line of exactly `maxRequestBytes` is accepted and nothing beyond is held.
// - A CR right before the LF is dropped, as Dovecot's i_stream_next_line does; Dovecot itself
//   never sends one (it escapes CR), so this only helps people typing at the socket.
// - Fields are split on every TAB first and unescaped afterwards, exactly like
//   t_strsplit_tabescaped: an escape character can never hide a TAB.
// - `H<major>\t<minor>\t<value type>\t<user>\t<dict name>`: fewer than five fields, or a
//   version or value type that is not an unsigned 32-bit decimal, is `malformed` (the real
//   server drops such a client). Whether the major version is acceptable is the server's call.
// - `L<key>[\t<user>...]`: an `L` with nothing after it is `malformed` (the real server logs
//   "LOOKUP: broken input" and disconnects); `L\t<user>` is a lookup of the empty key. Key and
//   user are decoded as strict UTF-8 after unescaping and become null when invalid, so no check
//   downstream can be fooled by a lossy decoding; an absent user is null as well.
// - The other 2.3 commands (I, B, C, D, R, S, U, A, T: iteration and transactions, which auth
//   never uses) are `unsupported`, with their arguments ignored. Any other first byte, an empty
//   line included, is `malformed`: the real server answers neither, it disconnects.
// - After an error the decoder yields nothing more: a broken stream has no next line boundary
//   worth trusting, and the connection is closing anyway.

import type { DictAnswer } from '../login/types.js'
import type { DecodedItem, RequestDecoder, RequestError } from './decoder.js'
import { BufferedDecoder } from './buffered-decoder.js'

export type DictRequest =
  | { readonly kind: 'hello'; readonly major: number; readonly minor: number; readonly valueType: number; readonly dictName: string }
  | { readonly kind: 'lookup'; readonly key: string | null; readonly user: string | null }
  | { readonly kind: 'unsupported'; readonly command: string }

/** The protocol major version Dovecot 2.3 speaks (2.4 speaks 4 and is not compatible). */
export const DICT_PROTOCOL_MAJOR = 3

/** Commands of protocol 3 that mailhostd does not serve, and whether the client waits for a reply. */
const UNSUPPORTED: ReadonlyMap<string, 'reply' | 'none'> = new Map([
  ['I', 'reply'], // iterate: reply lines ended by an empty line, or F
  ['C', 'reply'], // commit: O/N/F<id>[\t<error>]
  ['D', 'reply'], // async commit (pre-2.3 clients): same reply as C
  ['B', 'none'], // begin transaction
  ['R', 'none'], // rollback
  ['S', 'none'], // set
  ['U', 'none'], // unset
  ['A', 'none'], // atomic increment
  ['T', 'none'], // timestamp
])

const LF = 0x0a
const CR = 0x0d
const TAB = 0x09
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const lossyUtf8 = new TextDecoder('utf-8', { ignoreBOM: true })

const ESCAPES: Readonly<Record<string, string>> = { '\0': '0', '\x01': '1', '\t': 't', '\r': 'r', '\n': 'n' }
const UNESCAPES: Readonly<Record<string, string>> = { '0': '\0', '1': '\x01', t: '\t', r: '\r', n: '\n' }

/**
 * Dovecot's str_append_tabescaped_n: NUL, \x01, TAB, CR and LF become \x01 followed by 0, 1,
 * t, r, n. The result never contains a byte that could end a field or a line.
 */
export function dictEscape(value: string): string {
  // eslint-disable-next-line no-control-regex -- these control characters are the protocol's escapes
  return value.replace(/[\0\x01\t\r\n]/g, (c) => `\x01${ESCAPES[c]!}`)
}

/**
 * Dovecot's str_tabunescape: \x01 plus 0, 1, t, r, n gives NUL, \x01, TAB, CR, LF; \x01 plus
 * any other character gives that character; a \x01 at the very end is dropped.
 */
export function dictUnescape(field: string): string {
  // eslint-disable-next-line no-control-regex -- \x01 is the protocol's escape character
  return field.replace(/\x01(.?)/gsu, (_, c: string) => UNESCAPES[c] ?? c)
}

/** Splits one line (without its LF) on TAB and unescapes each field, as t_strsplit_tabescaped does. */
export function splitDictLine(line: string): string[] {
  return line === '' ? [] : line.split('\t').map(dictUnescape)
}

/** Strict decoding of one raw field: null when the bytes are not valid UTF-8. */
function strictField(bytes: Buffer): string | null {
  try {
    return dictUnescape(strictUtf8.decode(bytes))
  } catch {
    return null
  }
}

/** The raw (still escaped) TAB-separated fields of a line. */
function rawFields(line: Buffer): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (let tab = line.indexOf(TAB); tab >= 0; tab = line.indexOf(TAB, start)) {
    out.push(line.subarray(start, tab))
    start = tab + 1
  }
  out.push(line.subarray(start))
  return out
}

/** str_to_uint: decimal digits only, no sign, at most 2^32 - 1. */
function parseUint(field: string | undefined): number | undefined {
  if (field === undefined || !/^[0-9]{1,10}$/.test(field)) return undefined
  const n = Number(field)
  return n <= 0xffff_ffff ? n : undefined
}

/** One complete line (LF and CR already removed) as a request, or undefined when malformed. */
export function parseDictLine(line: Buffer): DictRequest | undefined {
  if (line.length === 0) return undefined
  const command = String.fromCharCode(line[0]!)
  if (command === 'H') {
    const fields = splitDictLine(lossyUtf8.decode(line))
    if (fields.length < 5) return undefined
    const major = parseUint(fields[0]!.slice(1))
    const minor = parseUint(fields[1])
    const valueType = parseUint(fields[2])
    if (major === undefined || minor === undefined || valueType === undefined) return undefined
    return { kind: 'hello', major, minor, valueType, dictName: fields[4]! }
  }
  if (command === 'L') {
    if (line.length === 1) return undefined
    const [key, user] = rawFields(line.subarray(1))
    return { kind: 'lookup', key: strictField(key!), user: user === undefined ? null : strictField(user) }
  }
  return UNSUPPORTED.has(command) ? { kind: 'unsupported', command } : undefined
}

/** Incremental request decoder: feed arbitrary chunks, pull requests. Never throws. */
export class DictDecoder extends BufferedDecoder implements RequestDecoder<DictRequest> {
  /** How far buf has been searched for LF, so a line trickling in is searched once, not per chunk. */
  #scanned = 0

  constructor(maxRequestBytes: number) {
    super(maxRequestBytes)
  }

  /** The next request, an error (once, then nothing more), or undefined when more bytes are needed. */
  next(): DecodedItem<DictRequest> | undefined {
    if (this.failed) return undefined
    const buf = this.buf
    const nl = buf.indexOf(LF, this.#scanned)
    if (nl < 0) {
      this.#scanned = buf.length
      // Without its LF a line of max bytes can no longer fit: reject it now rather than wait.
      return buf.length >= this.max ? this.fail<RequestError>('too-large') : undefined
    }
    // The line spans nl + 1 bytes with its LF; checked before parsing, so the same input gives
    // the same error however it was chunked.
    if (nl >= this.max) return this.fail<RequestError>('too-large')
    const end = nl > 0 && buf[nl - 1] === CR ? nl - 1 : nl
    const request = parseDictLine(buf.subarray(0, end))
    if (request === undefined) return this.fail<RequestError>('malformed')
    this.consume(nl + 1)
    this.#scanned = 0
    return { type: 'request', request }
  }
}

const NOT_FOUND = Buffer.from('N\n', 'latin1')
const NO_REPLY = Buffer.alloc(0)

/** `O<value>`, `N` or `F<reason>`, one line, value and reason tab-escaped. */
export function encodeDictReply(answer: DictAnswer): Buffer {
  switch (answer.kind) {
    case 'found':
      return Buffer.from(`O${dictEscape(answer.value)}\n`, 'utf8')
    case 'notfound':
      return NOT_FOUND
    case 'fail':
      return Buffer.from(`F${dictEscape(answer.reason)}\n`, 'utf8')
  }
}

/**
 * The answer to a command mailhostd does not serve, keeping the client's reply queue in step:
 * - I (iterate) gets `F<reason>`, which the client reports as the iteration's error.
 * - C and D (commit) get `F\t<reason>`: the client reads the first field as the (obsolete)
 *   transaction id and the second as the error, so the transaction fails with our reason.
 * - B, R, S, U, A and T expect no reply at all (the client sends and forgets them), so they get
 *   none: any line sent would be taken as the reply to the client's next command. Ignoring them
 *   is safe because the transaction they build can only end in a C, which fails, or an R.
 */
export function encodeUnsupportedReply(command: string, reason: string): Buffer {
  const expects = UNSUPPORTED.get(command)
  if (expects !== 'reply') return NO_REPLY
  const sep = command === 'I' ? '' : '\t'
  return Buffer.from(`F${sep}${dictEscape(reason)}\n`, 'utf8')
}

/** Nothing: on a bad line the server closes; any bytes could be matched to the wrong command. */
export function dictErrorReply(_error: RequestError): Buffer {
  return NO_REPLY
}
