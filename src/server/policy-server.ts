// The policy delegation listener (check_policy_service): Postfix keeps each connection open for
// many requests, one at a time (up to smtpd_policy_service_max_idle = 300 s idle and max_ttl =
// 1000 s in all), so connections stay until the peer closes or our idle timeout fires.

import { describeError } from '../errors.js'
import type { Logger } from '../log.js'
import { INTERNAL_DEFER } from '../policy/replies.js'
import type { PolicyRequest, PolicyService } from '../policy/types.js'
import { PolicyDecoder, encodePolicyReply, policyErrorReply } from '../protocols/policy.js'
import type { Wire } from './connection.js'
import { Listener } from './listener.js'
import type { LineServer, ListenerOptions } from './options.js'

function policyWire(policy: PolicyService, log: Logger): Wire<PolicyRequest> {
  return {
    decoder: (maxRequestBytes) => new PolicyDecoder(maxRequestBytes),
    errorReply: policyErrorReply,
    async reply(request) {
      try {
        return encodePolicyReply(await policy.decide(request))
      } catch (err) {
        // The engine is meant never to reject; if it does, defer the mail (architecture.md §2)
        // rather than close, which would cost Postfix a retry and end in the same deferral.
        log.error(
          { state: request.get('protocol_state'), instance: request.get('instance'), err: describeError(err) },
          'policy decision failed',
        )
        return encodePolicyReply(INTERNAL_DEFER)
      }
    },
  }
}

export function createPolicyServer(options: ListenerOptions & { policy: PolicyService }): LineServer {
  const log = options.logger.child({ listener: 'policy' })
  return new Listener(policyWire(options.policy, log), options, log)
}
