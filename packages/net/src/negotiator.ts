/**
 * The negotiator: decides per connection whether to try SMC, gets the SMC TCP option onto the wire
 * (spec 2: kind 254, ExID E2D4C3D9 in SYN and SYN-ACK) and reads whether the peer signalled it,
 * then tells the engine through HandshakeOptions. It also learns: a peer whose SMC option turned
 * out to be an echo (its answer to our Proposal was not CLC) or that let the handshake time out is
 * TCP-only for a while, and the next connection to it does not offer SMC at all.
 *
 * Modes:
 * - `bpf`: the sock_ops program of @smc-r/sockops writes the option for the peers we offer to and on
 *   our listeners' SYN-ACKs, and records what the peer sent. Needs root (CAP_BPF + CAP_NET_ADMIN and
 *   a writable cgroup v2). The default when that is available.
 * - `saved-syn`: server only, unprivileged: TCP_SAVE_SYN shows whether a client's SYN carried the
 *   option. The SYN-ACK cannot carry it, so only our own clients in `assume` mode go on to CLC.
 * - `assume`: both ends are known to be SMC-capable (unprivileged use between our own processes):
 *   the peer counts as having signalled; the echo defence still protects against a wrong guess.
 * - `off`: never SMC (reason 0x03010001, local policy).
 */
import type { Server, Socket } from 'node:net';
import type { HandshakeOptions, SmcOutcome } from '@smc-r/core';
import { EngineError, EngineErrorCode } from '@smc-r/core';
import { SmcReason } from '@smc-r/wire';
import { SmcOptionProgram, savedSynOffersSmc, saveSyn, sockopsAvailability } from '@smc-r/sockops';
import { formatIp, parseIp } from './address.js';
import { LearnedBlockList, type BlockListOptions } from './blocklist.js';
import { NetError, NetErrorCode } from './errors.js';
import { PolicyTable, type PolicyRuleInit } from './policy.js';

export const NEGOTIATION_MODES = ['bpf', 'saved-syn', 'assume', 'off'] as const;
export type NegotiationMode = (typeof NEGOTIATION_MODES)[number];

export interface NegotiatorOptions {
  /** 'auto' (default): bpf when this process may load it, else off (modeReason says why). */
  readonly mode?: NegotiationMode | 'auto';
  /** Which peers get SMC (outgoing connections). Default: every peer. */
  readonly policy?: PolicyTable | { readonly defaultSmc?: boolean; readonly rules?: readonly (PolicyRuleInit | string)[] };
  /** The learned block list, or its options. */
  readonly blockList?: LearnedBlockList | BlockListOptions;
  /** bpf mode: the cgroup name the program uses (default smcr-<pid>). */
  readonly cgroupName?: string;
}

/** The plan for one outgoing connection, made before connect(). */
export interface ConnectPlan {
  readonly address: string;
  readonly port: number;
  /** Whether the SYN offers SMC. */
  readonly offer: boolean;
  /** Set when SMC is not tried: the reason the engine records (0x03010001, local policy). */
  readonly presetFallback: number | undefined;
  /** Why, in words (policy rule, learned block, mode). */
  readonly why: string;
}

export interface NegotiatorStats {
  offered: number;
  skippedByPolicy: number;
  skippedBlocked: number;
  peerSignalled: number;
  peerSilent: number;
  learnedBlocks: number;
}

const ACTIVE = SmcReason.ACTIVE.code;

/**
 * One sock_ops program per process: it lives in a cgroup the process moves into, so a second
 * program would move the process again and strand the first one's sockets. Negotiators share it;
 * its offer and listen maps are refcounted per entry, so each negotiator's entries stay its own.
 */
const sharedProgram = {
  program: undefined as SmcOptionProgram | undefined,
  users: 0,
  acquire(cgroupName: string | undefined): SmcOptionProgram {
    if (this.program === undefined) {
      this.program = SmcOptionProgram.open(cgroupName !== undefined ? { cgroupName } : {});
    }
    this.users++;
    return this.program;
  },
  release(): void {
    if (--this.users > 0) return;
    this.program?.close();
    this.program = undefined;
    this.users = 0;
  },
};

export class Negotiator {
  readonly mode: NegotiationMode;
  /** Why this mode (e.g. "auto: bpf unavailable: not root"). */
  readonly modeReason: string;
  readonly policy: PolicyTable;
  readonly blockList: LearnedBlockList;
  readonly stats: NegotiatorStats = { offered: 0, skippedByPolicy: 0, skippedBlocked: 0, peerSignalled: 0, peerSilent: 0, learnedBlocks: 0 };
  readonly #program: SmcOptionProgram | undefined;
  /** Servers we offer SMC on, with their port. */
  readonly #served = new Map<Server, number>();
  /** Plans whose offer is still in the program's map (withdrawn exactly once). */
  readonly #offered = new WeakSet<ConnectPlan>();
  #closed = false;

  private constructor(mode: NegotiationMode, why: string, policy: PolicyTable, blockList: LearnedBlockList, program: SmcOptionProgram | undefined) {
    this.mode = mode;
    this.modeReason = why;
    this.policy = policy;
    this.blockList = blockList;
    this.#program = program;
  }

  /**
   * Opens a negotiator. `bpf` loads and attaches the sock_ops program (throws SockopsError naming
   * what is missing when it cannot); `auto` falls back to `off` instead and says why in modeReason.
   */
  static open(opts: NegotiatorOptions = {}): Negotiator {
    const asked = opts.mode ?? 'auto';
    if (asked !== 'auto' && !(NEGOTIATION_MODES as readonly string[]).includes(asked)) {
      throw new NetError(NetErrorCode.BAD_OPTION, `negotiation mode "${String(asked)}" is not one of auto, ${NEGOTIATION_MODES.join(', ')}`);
    }
    const policy = opts.policy instanceof PolicyTable ? opts.policy : new PolicyTable(opts.policy ?? {});
    const blockList = opts.blockList instanceof LearnedBlockList ? opts.blockList : new LearnedBlockList(opts.blockList ?? {});
    let mode: NegotiationMode;
    let why: string;
    if (asked === 'auto') {
      const av = sockopsAvailability();
      if (av.ok) {
        mode = 'bpf';
        why = 'auto: the sock_ops program can be loaded';
      } else {
        mode = 'off';
        why = `auto: bpf unavailable (${av.missing}); use mode 'assume' between known SMC peers`;
      }
    } else {
      mode = asked;
      why = 'chosen';
    }
    const program = mode === 'bpf' ? sharedProgram.acquire(opts.cgroupName) : undefined;
    return new Negotiator(mode, why, policy, blockList, program);
  }

  #check(): void {
    if (this.#closed) throw new NetError(NetErrorCode.CLOSED, 'the negotiator is closed');
  }

  // ---------------------------------------------------------------------------------------- client

  /**
   * Decides for an outgoing connection to (address, port) before connect(): policy, then the learned
   * block list. In bpf mode an offered plan puts the option on this process's SYNs to that peer until
   * {@link afterConnect} (or {@link abandon}) withdraws it.
   */
  planConnect(address: string, port: number): ConnectPlan {
    this.#check();
    const a = formatIp(parseIp(address));
    if (this.mode === 'saved-syn') {
      throw new NetError(NetErrorCode.MODE, "mode 'saved-syn' only detects SMC on a server; a client needs 'bpf' or 'assume'");
    }
    if (this.mode === 'off') return { address: a, port, offer: false, presetFallback: ACTIVE, why: `negotiator mode off (${this.modeReason})` };
    const d = this.policy.decide(a, port);
    if (!d.smc) {
      this.stats.skippedByPolicy++;
      return { address: a, port, offer: false, presetFallback: ACTIVE, why: `policy: ${d.rule?.text ?? 'default off'}` };
    }
    const b = this.blockList.blocked(a, port);
    if (b !== undefined) {
      this.stats.skippedBlocked++;
      return { address: a, port, offer: false, presetFallback: ACTIVE, why: `learned TCP-only until ${new Date(b.until).toISOString()}: ${b.why}` };
    }
    this.#program?.offerTo(a, port);
    this.stats.offered++;
    const plan: ConnectPlan = { address: a, port, offer: true, presetFallback: undefined, why: d.rule ? `policy: ${d.rule.text}` : 'policy default' };
    this.#offered.add(plan);
    return plan;
  }

  /** Withdraws a plan's offer (the connection failed, or its SYN is out). Idempotent. */
  abandon(plan: ConnectPlan): void {
    if (!this.#offered.delete(plan) || this.#closed) return;
    this.#program?.withdrawOffer(plan.address, plan.port);
  }

  /** After the TCP handshake: what the engine needs (the SYN-ACK's verdict, the echo defence). */
  afterConnect(socket: Socket, plan: ConnectPlan): HandshakeOptions {
    this.#check();
    this.abandon(plan); // the SYN is out: the offer has done its job
    if (!plan.offer) return { peerSignalledSmc: false, presetFallback: plan.presetFallback ?? ACTIVE };
    const signalled = this.mode === 'assume' ? true : this.#program!.peerState(socket)?.peerSmc === true;
    if (signalled) this.stats.peerSignalled++;
    else this.stats.peerSilent++;
    return { peerSignalledSmc: signalled, echoDefence: true };
  }

  /**
   * Learns from a client handshake: an echo, a CLC timeout, or a peer that hung up on our Proposal
   * (a non-SMC server that got garbage) marks the peer TCP-only. Returns the entry when it learned.
   */
  learn(plan: ConnectPlan, result: SmcOutcome | unknown): boolean {
    if (!plan.offer || this.#closed) return false;
    let why: string | undefined;
    if (result !== null && typeof result === 'object' && 'mode' in result) {
      const o = result as SmcOutcome;
      if (o.mode === 'tcp' && o.suspectedEcho === true) why = o.detail;
    } else if (result instanceof EngineError && (result.code === EngineErrorCode.TIMEOUT || result.code === EngineErrorCode.RESET)) {
      why = result.code === EngineErrorCode.TIMEOUT ? 'no CLC answer to our Proposal (timeout)' : 'the peer closed the connection on our Proposal';
    }
    if (why === undefined) return false;
    if (this.blockList.learn(plan.address, plan.port, why) !== undefined) this.stats.learnedBlocks++;
    return true;
  }

  // ---------------------------------------------------------------------------------------- server

  /**
   * Makes a listening server offer SMC: in bpf mode its SYN-ACKs carry the option when the SYN did;
   * in saved-syn mode the kernel keeps each SYN for {@link forAccepted}. Call after 'listening'.
   */
  serve(server: Server): void {
    this.#check();
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new NetError(NetErrorCode.BAD_OPTION, 'serve() needs a TCP server that is listening');
    if (this.mode === 'bpf') this.#program!.listenOn(addr.port);
    else if (this.mode === 'saved-syn') saveSyn(server);
    this.#served.set(server, addr.port);
  }

  /** Stops offering SMC on a server (before or after it closed). */
  unserve(server: Server): void {
    const port = this.#served.get(server);
    if (port === undefined) return;
    this.#served.delete(server);
    if (this.mode === 'bpf' && !this.#closed) this.#program!.stopListening(port);
  }

  /** For an accepted socket: whether the client signalled SMC in its SYN. */
  forAccepted(socket: Socket): HandshakeOptions {
    this.#check();
    let signalled: boolean;
    switch (this.mode) {
      case 'off':
        return { peerSignalledSmc: false, presetFallback: ACTIVE };
      case 'assume':
        signalled = true;
        break;
      case 'saved-syn':
        signalled = savedSynOffersSmc(socket) === true;
        break;
      case 'bpf':
        signalled = this.#program!.peerState(socket)?.peerSmc === true;
        break;
    }
    if (signalled) this.stats.peerSignalled++;
    else this.stats.peerSilent++;
    // saved-syn: our SYN-ACK had no option, so a kernel client goes on as TCP; the engine must take
    // its first bytes as TCP data rather than as a broken Proposal.
    return this.mode === 'saved-syn' ? { peerSignalledSmc: signalled, echoDefence: true } : { peerSignalledSmc: signalled };
  }

  /** The sock_ops program's counters (bpf mode), for `smcr` tools. */
  programStats(): Readonly<Record<string, number>> | undefined {
    return this.#program?.stats();
  }

  /** Detaches and removes everything the negotiator created. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const port of this.#served.values()) if (this.mode === 'bpf') this.#program!.stopListening(port);
    this.#served.clear();
    if (this.#program !== undefined) sharedProgram.release();
  }
}
