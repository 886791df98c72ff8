/**
 * Which peers get SMC: a table of rules by address prefix and port range, in the spirit of a BPF
 * negotiation policy (Alibaba's smc_negotiator) but kept in userspace, where the decision is made
 * before connect() and before a listener accepts. Pure: no I/O.
 *
 * Matching: the most specific rule wins, first by prefix length (longest prefix), then by the size
 * of the port range (a single port beats a range beats "any port"); among equals, the rule added
 * last wins, so a later, more deliberate rule overrides an earlier one. No matching rule: the default.
 */
import { checkPort, formatPrefix, parseIp, parsePrefix, prefixContains, type IpPrefix } from './address.js';
import { NetError, NetErrorCode } from './errors.js';

export interface PolicyRuleInit {
  /** "10.0.0.0/8", "fd00::/8", a bare address, or "*" / "any" for every address. */
  readonly prefix: string;
  /** One port, an inclusive [low, high] range, or undefined for every port. */
  readonly ports?: number | readonly [number, number];
  /** true: try SMC; false: plain TCP. */
  readonly smc: boolean;
}

export interface PolicyRule {
  readonly prefix: IpPrefix;
  readonly portLow: number;
  readonly portHigh: number;
  readonly smc: boolean;
  /** The rule as text, for listings and explanations: "10.0.0.0/8 port 445 off". */
  readonly text: string;
}

export interface PolicyDecision {
  readonly smc: boolean;
  /** The rule that decided, or undefined when the default did. */
  readonly rule: PolicyRule | undefined;
}

const ANY: IpPrefix = { value: 0n, bits: 0 };

/**
 * Parses one rule written as text: `<prefix>[:<port>|:<low>-<high>] on|off`, e.g. "10.0.0.0/8 off",
 * "192.168.1.7:5432 on", "[fd00::]/8:8000-8999 on", "* off". IPv6 prefixes with a port use brackets.
 */
export function parsePolicyRule(text: string): PolicyRuleInit {
  if (typeof text !== 'string') throw new NetError(NetErrorCode.BAD_POLICY, `a policy rule must be a string, got ${typeof text}`);
  const m = /^\s*(\S+)\s+(on|off|smc|tcp)\s*$/i.exec(text);
  if (!m) throw new NetError(NetErrorCode.BAD_POLICY, `policy rule "${text}": expected "<prefix>[:port[-port]] on|off"`);
  const target = m[1]!;
  const smc = /^(on|smc)$/i.test(m[2]!);
  let prefix = target;
  let portText: string | undefined;
  const br = /^\[([^\]]+)\](\/\d+)?(?::(.+))?$/.exec(target);
  if (br) {
    prefix = br[1]! + (br[2] ?? '');
    portText = br[3];
  } else if (target.split(':').length === 2) {
    // IPv4 or "*" with a port; a bare IPv6 address has more than one colon.
    [prefix, portText] = target.split(':') as [string, string];
  }
  let ports: PolicyRuleInit['ports'];
  if (portText !== undefined) {
    const r = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(portText);
    if (!r) throw new NetError(NetErrorCode.BAD_POLICY, `policy rule "${text}": bad port "${portText}"`);
    ports = r[2] === undefined ? Number(r[1]) : [Number(r[1]), Number(r[2])];
  }
  return ports === undefined ? { prefix, smc } : { prefix, ports, smc };
}

export class PolicyTable {
  readonly #rules: PolicyRule[] = [];
  /** What happens when no rule matches. */
  readonly defaultSmc: boolean;

  constructor(opts: { defaultSmc?: boolean; rules?: readonly (PolicyRuleInit | string)[] } = {}) {
    this.defaultSmc = opts.defaultSmc ?? true;
    for (const r of opts.rules ?? []) this.add(r);
  }

  /** Adds a rule (object or text form); returns it as parsed. */
  add(init: PolicyRuleInit | string): PolicyRule {
    const r = typeof init === 'string' ? parsePolicyRule(init) : init;
    if (r === null || typeof r !== 'object' || typeof r.smc !== 'boolean') {
      throw new NetError(NetErrorCode.BAD_POLICY, 'a policy rule needs { prefix, ports?, smc: boolean }');
    }
    const prefix = r.prefix === '*' || r.prefix === 'any' ? ANY : parsePrefix(r.prefix);
    let low = 0;
    let high = 65535;
    if (typeof r.ports === 'number') low = high = checkPort(r.ports);
    else if (Array.isArray(r.ports)) {
      low = checkPort(r.ports[0] as number, 'low port');
      high = checkPort(r.ports[1] as number, 'high port');
      if (low > high) throw new NetError(NetErrorCode.BAD_POLICY, `port range ${low}-${high} is empty`);
    } else if (r.ports !== undefined) {
      throw new NetError(NetErrorCode.BAD_POLICY, `ports must be a number or [low, high], got ${JSON.stringify(r.ports)}`);
    }
    const where = prefix.bits === 0 ? '*' : formatPrefix(prefix);
    const portText = low === 0 && high === 65535 ? '' : low === high ? ` port ${low}` : ` ports ${low}-${high}`;
    const rule: PolicyRule = { prefix, portLow: low, portHigh: high, smc: r.smc, text: `${where}${portText} ${r.smc ? 'on' : 'off'}` };
    this.#rules.push(rule);
    return rule;
  }

  /** Removes every rule. */
  clear(): void {
    this.#rules.length = 0;
  }

  get rules(): readonly PolicyRule[] {
    return this.#rules;
  }

  /** The decision for a peer (address literal and port). Throws BAD_ADDRESS for a bad address. */
  decide(address: string, port: number): PolicyDecision {
    const a = parseIp(address).value;
    checkPort(port);
    let best: PolicyRule | undefined;
    for (const r of this.#rules) {
      if (port < r.portLow || port > r.portHigh || !prefixContains(r.prefix, a)) continue;
      if (best === undefined || moreSpecific(r, best)) best = r;
    }
    return { smc: best?.smc ?? this.defaultSmc, rule: best };
  }
}

/** r beats best when it has a longer prefix, or an equal prefix and a range no wider (later wins ties). */
function moreSpecific(r: PolicyRule, best: PolicyRule): boolean {
  if (r.prefix.bits !== best.prefix.bits) return r.prefix.bits > best.prefix.bits;
  return r.portHigh - r.portLow <= best.portHigh - best.portLow;
}
