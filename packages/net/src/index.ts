export { NetError, NetErrorCode } from './errors.js';
export { parseIp, formatIp, parsePrefix, formatPrefix, type IpAddr, type IpPrefix } from './address.js';
export { PolicyTable, parsePolicyRule, type PolicyRule, type PolicyRuleInit, type PolicyDecision } from './policy.js';
export { LearnedBlockList, type BlockEntry, type BlockListOptions } from './blocklist.js';
export {
  Negotiator, NEGOTIATION_MODES, type NegotiationMode, type NegotiatorOptions, type ConnectPlan, type NegotiatorStats,
} from './negotiator.js';
export { dial, answer, type DialOptions, type Dialled } from './dial.js';
