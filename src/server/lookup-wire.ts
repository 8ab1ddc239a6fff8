// Adapts a lookup protocol (socketmap, tcp_table) to the generic Wire: the request names a map
// and a key, the LookupService decides, the codec encodes its Answer.

import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import type { RequestDecoder, RequestError } from '../protocols/decoder.js'
import { temp, type Answer, type LookupService } from '../resolve/answer.js'
import type { Wire } from './connection.js'

export interface LookupCodec<R> {
  /** The protocol label passed to LookupService.lookup (metrics, logs). */
  readonly protocol: string
  decoder(maxRequestBytes: number): RequestDecoder<R>
  target(request: R): { readonly map: string; readonly key: string | null }
  encode(answer: Answer): Buffer
  errorReply(error: RequestError): Buffer
}

export function lookupWire<R>(codec: LookupCodec<R>, lookup: LookupService, log: Logger): Wire<R> {
  return {
    decoder: (maxRequestBytes) => codec.decoder(maxRequestBytes),
    errorReply: (error) => codec.errorReply(error),
    replyNow(request) {
      if (lookup.lookupCached === undefined) return undefined
      const { map, key } = codec.target(request)
      let result
      try {
        result = lookup.lookupCached(map, key, codec.protocol)
      } catch (err) {
        log.error({ map, err: describeError(err) }, 'lookup failed')
        return codec.encode(temp('internal error'))
      }
      return result === undefined ? undefined : codec.encode(result.answer)
    },
    async reply(request) {
      const { map, key } = codec.target(request)
      try {
        return codec.encode((await lookup.lookup(map, key, codec.protocol)).answer)
      } catch (err) {
        // The service is meant never to reject; if it does, defer the mail rather than drop the connection.
        log.error({ map, err: describeError(err) }, 'lookup failed')
        return codec.encode(temp('internal error'))
      }
    },
  }
}
