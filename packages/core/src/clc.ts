/**
 * CLC handshake decisions (spec 3.6): what the client offers (3.3.6), what the server picks (3.6.3), which
 * reason code every failure declines with (4), first contact versus link-group reuse (5.3), and the v2.1
 * echo rules (12 rows 3, 4, 8, 9, 14, 18). Pure functions over the CLC messages of @smc-r/wire: a driver
 * reads and writes the CLC socket, runs the timers (CLC_WAIT 6 s, CLC_WAIT_SHORT 1 s), creates QPs and
 * buffers, and asks these functions what to send and what a received message means.
 *
 *   client: clientPrecheck -> clientProposal -> send, wait for Accept -> [clientRouteQuery] -> clientOnAccept
 *           -> driver: create/reuse link, RMB, rtoken, QP to RTR or CONFIRM_RKEY -> clientConfirm -> send
 *   server: serverPrecheck -> wait for Proposal -> [serverRouteQuery] -> serverOnProposal
 *           -> driver: create/reuse link, RMB (CONFIRM_RKEY on reuse) -> serverAccept -> send
 *           -> wait for Confirm -> serverOnConfirm -> driver: QP to RTS, CONFIRM_LINK
 *
 * Every step either succeeds (its own `kind`) or ends in one of the {@link ClcFailure} kinds, which keep
 * the kernel's split (spec 4.1): a positive reason code means "send a Decline (unless the code is local
 * only), then fall back to TCP on the same connection"; a negative errno means "no fallback: connect()
 * fails, the server drops the connection".
 *
 * Rules are the Linux kernel's (L-af `__smc_connect`, `smc_connect_rdma`, `smc_listen_work`,
 * `smc_listen_find_device`; L-clc.c); each is marked with the spec section it comes from. We never offer
 * Alibaba vendor options (spec 12 rows 8, 9), so VENDORERR / CREDITSERR never arise here.
 */
import {
  type ClcAccept,
  type ClcConfirm,
  type ClcDecline,
  type ClcFirstContactExt,
  type ClcHeader,
  type ClcMessage,
  type ClcProposal,
  type ClcProposalV2Ext,
  ClcOsType,
  SMCR_RMBE_SIZES,
  SmcReason,
  SmcReasonError,
  WireError,
  WireErrorCode,
  compressBufSize,
  describeReason,
  isDeclineSendable,
  smcdIndicated,
  smcrIndicated,
  uncompressBufSize,
} from '@smc-r/wire';
import { EngineError, EngineErrorCode } from './errors.js';
import { type ClcConfig, ClcConfigError, ClcConfigLimit, checkClcConfig } from './clc-config.js';
import { type ClcIfAddress, ipv4FromGid, parseIp, prefixAreaMatches, proposalPrefixArea } from './clc-ip.js';
import { type LgrMatch, type LgrView, findClientLgr, findServerLgr, selectServerLink } from './lgr-match.js';

const R = SmcReason;

// ---------------------------------------------------------------------------------------------------
// inputs

/** The RoCE port usable for this connection (found by the driver through the TCP socket's netdev). */
export interface ClcRocePort {
  /** MAC of the port (Proposal byte 32, Accept/Confirm byte 32). */
  readonly mac: Buffer;
  /** Active MTU of the port, IB MTU enum 1..5 (spec 3.4.1). */
  readonly activeMtu: number;
  /**
   * GID for SMC-Rv1: a RoCE GID of the port on the TCP socket's netdev / VLAN (spec 3.3.6, 5.1).
   * Absent: no SMC-Rv1 with this port.
   */
  readonly gidV1?: Buffer;
  /**
   * RoCEv2 GID for SMC-Rv2: the IPv4-mapped GID (`::ffff:a.b.c.d`) whose netdev owns the TCP source
   * address (spec 3.3.4, 5.1). Absent: no SMC-Rv2 with this port.
   */
  readonly gidV2?: Buffer;
}

/** What the driver knows about the TCP connection (the CLC socket). */
export interface ClcTcpInfo {
  /** Local address of the TCP socket (`socket.localAddress`). */
  readonly localAddress: string;
  /** Addresses of the network device the TCP socket uses (for the prefix area and the prefix check). */
  readonly ifAddresses: readonly ClcIfAddress[];
  /** VLAN id of that device (0 = none), or null when it could not be determined (GETVLANERR). */
  readonly vlanId: number | null;
}

/** A route lookup the driver should run before an SMC-Rv2 decision (spec 3.6.2 step 6, 3.6.3 step 6). */
export interface ClcRouteQuery {
  /** Source: our TCP address (IPv4). */
  readonly saddr: string;
  /** Destination: the IPv4 address inside the peer's RoCEv2 GID. */
  readonly daddr: string;
}

/**
 * The answer to a {@link ClcRouteQuery}: no route, or a route that is direct or goes through a gateway,
 * with the MAC of the next hop (the peer's MAC when direct, the gateway's otherwise).
 */
export type ClcRoute =
  | { readonly found: false }
  | { readonly found: true; readonly viaGateway: boolean; readonly nexthopMac: Buffer };

/** Our side of the link a connection uses: a new link (first contact) or the reused {@link LinkView}. */
export interface ClcLocalLink {
  readonly qpn: number;
  readonly psn: number;
  readonly gid: Buffer;
  readonly mac: Buffer;
  /** Our port's active MTU (IB MTU enum). */
  readonly pathMtu: number;
  /** The peer's MTU stored on a reused link; for a new link the one from the peer's CLC message is used. */
  readonly peerMtu?: number;
}

/** Our RMB for the connection (spec 3.4.1). */
export interface ClcLocalRmb {
  readonly rkey: number;
  /** Address the peer RDMA-WRITEs to (DMA address, or VA for virtually contiguous buffers). */
  readonly vaddr: bigint;
  /** Size in bytes: 16 KiB << n (announced compressed, spec 8.1). */
  readonly size: number;
  /** Our connection token, never 0; the peer puts it into every CDC message (spec 5.3 "Alert token"). */
  readonly alertToken: number;
}

// ---------------------------------------------------------------------------------------------------
// outcomes

/** The step may go on. */
export interface ClcProceed {
  readonly kind: 'proceed';
}

/** Send `message` (a Decline carrying `reason`), then fall back to TCP on the same connection. */
export interface ClcDeclineOutcome {
  readonly kind: 'decline';
  /** This side's fallback reason, also the Decline's peer diagnosis. */
  readonly reason: number;
  /** Header version of the Decline (spec 3.5, 12 row 14). */
  readonly version: 1 | 2;
  /** The Decline's out-of-sync bit (set exactly with SYNCERR). */
  readonly outOfSync: boolean;
  readonly message: ClcDecline;
  /** Which check failed, for logs. */
  readonly detail: string;
}

/** Fall back to TCP without sending anything (local-only reasons: PEERNOSMC, OPTUNSUPP, ACTIVE). */
export interface ClcFallbackOutcome {
  readonly kind: 'fallback';
  readonly reason: number;
  readonly detail: string;
}

/**
 * The peer sent a Decline (spec 3.2 step 6): fall back to TCP, send nothing back. `reason` is PEERDECL
 * (this side's fallback reason), `peerDiagnosis` the peer's code. With `outOfSync` the driver marks the
 * link group this connection is attached to (if any) out of sync and terminates it.
 */
export interface ClcPeerDeclinedOutcome {
  readonly kind: 'peer-declined';
  readonly reason: typeof SmcReason.PEERDECL.code;
  readonly peerDiagnosis: number;
  readonly outOfSync: boolean;
  readonly detail: string;
}

/**
 * No fallback is possible (the kernel's negative errno, spec 4.1): the client's connect() fails with
 * `code`, the server drops the connection. Garbage on the CLC stream, an unexpected message type, a CLC
 * timeout or EOF end here (spec 3.2, 3.6.3 step 2).
 */
export interface ClcErrorOutcome {
  readonly kind: 'error';
  readonly code: EngineErrorCode;
  readonly detail: string;
}

/** Every way a handshake step can end other than success. */
export type ClcFailure = ClcDeclineOutcome | ClcFallbackOutcome | ClcPeerDeclinedOutcome | ClcErrorOutcome;

/** The peer's link parameters from its Accept (client) or Confirm (server), spec 3.4.1. */
export interface ClcPeerLink {
  readonly peerId: Buffer;
  readonly gid: Buffer;
  readonly mac: Buffer;
  readonly qpn: number;
  readonly psn: number;
  /** The MTU enum the peer put into its message. */
  readonly mtu: number;
}

/** The peer's RMBE for this connection (spec 3.4.1). */
export interface ClcPeerRmb {
  readonly rkey: number;
  readonly vaddr: bigint;
  readonly rmbeIdx: number;
  /** Uncompressed RMBE size in bytes. */
  readonly rmbeSize: number;
  /** Where our RDMA WRITEs go: `vaddr + (rmbeIdx - 1) * rmbeSize` (spec 3.4.1 "RMBE address rule"). */
  readonly rmbeAddr: bigint;
  /** The peer's connection token: put it into every CDC message we send. */
  readonly alertToken: number;
}

// ---------------------------------------------------------------------------------------------------
// Decline

/**
 * A Decline as Linux builds it (`smc_clc_send_decline`, spec 3.5): eyecatcher SMCR, typev1 R, OS type
 * Linux in version 2 (0 in version 1), the 4 extra v2 diagnosis codes zero, out-of-sync bit by default
 * exactly for SYNCERR. `peerId` is our system ID (zero without a RoCE device). Throws ClcConfigError for
 * a code that never goes on the wire (PEERDECL, OPTUNSUPP, ACTIVE, unknown codes; spec 4.2).
 */
export function declineMessage(code: number, version: 1 | 2, peerId: Buffer, outOfSync: boolean = code === R.SYNCERR.code): ClcDecline {
  if (!isDeclineSendable(code)) throw new ClcConfigError(`${describeReason(code)} is never sent in a Decline (spec 4.2)`);
  if (version !== 1 && version !== 2) throw new ClcConfigError(`Decline version must be 1 or 2, got ${String(version)}`);
  if (!Buffer.isBuffer(peerId) || peerId.length !== 8) throw new ClcConfigError('Decline peer ID must be an 8-byte Buffer');
  const base = {
    type: 'decline' as const,
    eyecatcher: 'SMCR' as const,
    version,
    typev1: 'R' as const,
    outOfSync,
    peerId: Buffer.from(peerId),
    peerDiagnosis: code >>> 0,
    osType: version === 1 ? 0 : ClcOsType.LINUX.value,
    trailerOk: true,
  };
  return version === 1 ? base : { ...base, diagnosisV2: [0, 0, 0, 0] };
}

/** The decline outcome for `reason`, with the Decline message built from our system ID. */
export function declineOutcome(cfg: ClcConfig, reason: number, version: 1 | 2, detail: string): ClcDeclineOutcome {
  const message = declineMessage(reason, version, cfg.systemId);
  return { kind: 'decline', reason, version, outOfSync: message.outOfSync, message, detail: `${describeReason(reason)}: ${detail}` };
}

/** What a received Decline means (spec 3.2 step 6): fall back with PEERDECL, keep the peer's code. */
export function onDecline(msg: ClcDecline): ClcPeerDeclinedOutcome {
  return {
    kind: 'peer-declined',
    reason: R.PEERDECL.code,
    peerDiagnosis: msg.peerDiagnosis,
    outOfSync: msg.outOfSync,
    detail: `peer declined: ${describeReason(msg.peerDiagnosis)}${msg.outOfSync ? ' (out of sync)' : ''}`,
  };
}

function fallback(reason: number, detail: string): ClcFallbackOutcome {
  return { kind: 'fallback', reason, detail: `${describeReason(reason)}: ${detail}` };
}

function error(code: EngineErrorCode, detail: string): ClcErrorOutcome {
  return { kind: 'error', code, detail };
}

function unexpected(msg: ClcMessage, want: string): ClcErrorOutcome {
  // L-clc.c smc_clc_wait_msg: a type that is neither the expected one nor Decline is -EPROTO.
  return error(EngineErrorCode.PROTOCOL, `expected a CLC ${want} or Decline, got ${msg.type} (EPROTO, no fallback)`);
}

/** An Error for a failure outcome: SmcReasonError for fallbacks (with `decline` set right), EngineError otherwise. */
export function outcomeError(o: ClcFailure): SmcReasonError | EngineError {
  switch (o.kind) {
    case 'decline':
      return new SmcReasonError(o.reason, { decline: true, detail: o.detail });
    case 'fallback':
      return new SmcReasonError(o.reason, { decline: false, detail: o.detail });
    case 'peer-declined':
      return new SmcReasonError(o.reason, { peerDiagnosis: o.peerDiagnosis, decline: false });
    case 'error':
      return new EngineError(o.code, o.detail);
    default: {
      const never: never = o;
      throw new ClcConfigError(`unknown outcome ${String((never as { kind?: unknown }).kind)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// failures the driver runs into

/**
 * Failures in the driver's part of the handshake, and the code Linux declines each with (spec 3.6.2
 * steps 9-12, 3.6.3 steps 7-11, 4.2). Pass the name to {@link handshakeFailure}.
 */
export const HandshakeFailure = {
  LGR_ALLOC: { reason: R.MEM.code, text: 'creating the link group failed for lack of memory' },
  BUF_ALLOC: { reason: R.MEM.code, text: 'allocating the send buffer or the RMB failed' },
  QP_CREATE: { reason: R.INTERR.code, text: 'creating the queue pair failed' },
  NO_ACTIVE_LINK: { reason: R.NOACTLINK.code, text: 'the reused link group has no active link to assign the connection to' },
  RTOKEN: { reason: R.ERR_RTOK.code, text: "storing the peer's rkey and RMB address failed" },
  LINK_READY: { reason: R.ERR_RDYLNK.code, text: 'moving the QP to INIT/RTR or posting its receives failed' },
  BUF_REGISTER: { reason: R.ERR_REGBUF.code, text: 'registering the RMB / send buffer, or the CONFIRM_RKEY exchange, failed' },
  CONFIRM_LINK_SEND: { reason: R.TIMEOUT_CL.code, text: 'sending the LLC CONFIRM_LINK failed' },
  CONFIRM_LINK_TIMEOUT: { reason: R.TIMEOUT_CL.code, text: 'no LLC CONFIRM_LINK arrived, and no Decline within CLC_WAIT_SHORT' },
  RMBE_EYECATCHER: { reason: R.RMBE_EC.code, text: "the peer's CONFIRM_LINK asks for RMBE eyecatchers (no 0x03 flag)" },
  INTERNAL: { reason: R.INTERR.code, text: 'internal error' },
} as const;
export type HandshakeFailureName = keyof typeof HandshakeFailure;

/**
 * The decline outcome for a failure in the driver's part. `version` is the accepted decision's
 * `declineVersion` (client: the Accept's version; server: the Proposal's).
 */
export function handshakeFailure(cfg: ClcConfig, failure: HandshakeFailureName, version: 1 | 2): ClcDeclineOutcome {
  const f = HandshakeFailure[failure];
  return declineOutcome(cfg, f.reason, version, f.text);
}

/** Why a CLC wait ended without a message (L-clc.c smc_clc_wait_msg). */
export type ClcWaitFailure = 'timeout' | 'eof' | 'interrupted';

/**
 * A CLC wait that ended without a message: no fallback (spec 3.2 step 1; 3.6.2 step 4: the client's
 * connect fails with ETIMEDOUT; 3.6.3 steps 2, 9: the server drops the connection). The 1 s wait for a
 * Decline after an LLC timeout is different: use `handshakeFailure(cfg, 'CONFIRM_LINK_TIMEOUT', ...)`.
 */
export function clcWaitFailure(failure: ClcWaitFailure): ClcErrorOutcome {
  switch (failure) {
    case 'timeout':
      return error(EngineErrorCode.TIMEOUT, 'no CLC message within CLC_WAIT (EAGAIN / ETIMEDOUT, no fallback)');
    case 'eof':
      return error(EngineErrorCode.RESET, 'the peer closed the TCP connection during the CLC handshake (ECONNRESET, no fallback)');
    case 'interrupted':
      return error(EngineErrorCode.ABORTED, 'the CLC wait was aborted locally (EINTR, no fallback)');
  }
}

/**
 * A received message that does not decode (WireError from `decodeClc` / `ClcReader`). Only one case is a
 * fallback: an SMC-D Accept (decoded as UNSUPPORTED), which a client that never offers SMC-D declines with
 * MODEUNSUPP in the Accept's version (spec 3.6.2 step 5); pass its `peekClcHeader` result. Anything else
 * is garbage on the CLC stream: EPROTO, no fallback (spec 3.2, 3.6.3 step 2).
 */
export function clcReceiveFailure(cfg: ClcConfig, role: 'client' | 'server', err: unknown, header?: ClcHeader): ClcDeclineOutcome | ClcErrorOutcome {
  if (err instanceof WireError && err.code === WireErrorCode.UNSUPPORTED && role === 'client' && header?.type === 'accept') {
    return declineOutcome(cfg, R.MODEUNSUPP.code, header.version >= 2 ? 2 : 1, 'the Accept chose SMC-D, which we never offer');
  }
  const why = err instanceof Error ? err.message : String(err);
  return error(EngineErrorCode.PROTOCOL, `undecodable CLC message (EPROTO, no fallback): ${why}`);
}

// ---------------------------------------------------------------------------------------------------
// shared helpers

const ZERO_ID = Buffer.alloc(8);
const ZERO_GID = Buffer.alloc(16);
const ZERO_MAC = Buffer.alloc(6);

function checkPort(port: ClcRocePort): void {
  if (!Buffer.isBuffer(port.mac) || port.mac.length !== 6) throw new ClcConfigError('RoCE port: mac must be a 6-byte Buffer');
  if (!Number.isInteger(port.activeMtu) || port.activeMtu < 1 || port.activeMtu > 5) throw new ClcConfigError('RoCE port: activeMtu must be an IB MTU enum 1..5');
  if (port.gidV1 !== undefined && (!Buffer.isBuffer(port.gidV1) || port.gidV1.length !== 16)) throw new ClcConfigError('RoCE port: gidV1 must be a 16-byte Buffer');
  if (port.gidV2 !== undefined && ipv4FromGid(port.gidV2) === undefined) throw new ClcConfigError('RoCE port: gidV2 must be an IPv4-mapped 16-byte GID');
}

function checkTcp(tcp: ClcTcpInfo): void {
  if (tcp.vlanId !== null && (!Number.isInteger(tcp.vlanId) || tcp.vlanId < 0 || tcp.vlanId > 4095)) {
    throw new ClcConfigError(`TCP info: vlanId ${tcp.vlanId} is not 0..4095 or null`);
  }
}

function checkLocal(link: ClcLocalLink, rmb: ClcLocalRmb): void {
  if (!Buffer.isBuffer(link.gid) || link.gid.length !== 16) throw new ClcConfigError('link: gid must be a 16-byte Buffer');
  if (!Buffer.isBuffer(link.mac) || link.mac.length !== 6) throw new ClcConfigError('link: mac must be a 6-byte Buffer');
  if (!Number.isInteger(link.pathMtu) || link.pathMtu < 1 || link.pathMtu > 5) throw new ClcConfigError('link: pathMtu must be an IB MTU enum 1..5');
  if (!Number.isSafeInteger(rmb.size) || rmb.size < 16384 || uncompressBufSize(compressBufSize(rmb.size, SMCR_RMBE_SIZES)) !== rmb.size) {
    throw new ClcConfigError(`RMB size ${rmb.size} is not 16 KiB << n (n <= ${SMCR_RMBE_SIZES}); the CLC field cannot describe it`);
  }
  if (!Number.isInteger(rmb.alertToken) || rmb.alertToken < 1 || rmb.alertToken > 0xffffffff) throw new ClcConfigError('RMB: alertToken must be 1..2^32-1 (0 is reserved)');
}

function versionOf(v: number): 1 | 2 {
  return v >= 2 ? 2 : 1;
}

/** The RMBE our writes target (spec 3.4.1): `vaddr + (idx - 1) * size`, modulo 2^64. */
function peerRmbOf(m: ClcAccept | ClcConfirm): ClcPeerRmb {
  const rmbeSize = uncompressBufSize(m.rmbeSizeCode);
  const rmbeAddr = (m.rmbVaddr + BigInt(m.rmbeIdx - 1) * BigInt(rmbeSize)) & 0xffff_ffff_ffff_ffffn;
  return { rkey: m.rmbRkey, vaddr: m.rmbVaddr, rmbeIdx: m.rmbeIdx, rmbeSize, rmbeAddr, alertToken: m.rmbeAlertToken };
}

function peerLinkOf(m: ClcAccept | ClcConfirm): ClcPeerLink {
  return { peerId: m.peerId, gid: m.gid, mac: m.mac, qpn: m.qpn, psn: m.psn, mtu: m.qpMtu };
}

function isMtuEnum(v: number): boolean {
  return v >= 1 && v <= 5;
}

/**
 * Sanity checks of the peer's link values that the kernel leaves to later steps, mapped to the code those
 * steps produce: RMBE index 0 cannot address an RMBE (the rtoken step, ERR_RTOK); on a new link an MTU
 * outside the IB enum makes the QP's RTR transition fail (ERR_RDYLNK).
 */
function peerValuesFailure(m: ClcAccept | ClcConfirm, newLink: boolean): { reason: number; detail: string } | undefined {
  if (m.rmbeIdx === 0) return { reason: R.ERR_RTOK.code, detail: 'RMBE index 0 names no RMBE' };
  if (newLink && !isMtuEnum(m.qpMtu)) return { reason: R.ERR_RDYLNK.code, detail: `QP MTU enum ${m.qpMtu} is not 1..5` };
  return undefined;
}

function ipv4Text(address: string): string | undefined {
  const ip = parseIp(address);
  return ip.family === 4 ? ip.bytes.join('.') : undefined;
}

/** The first-contact extension we send (L-clc.c `smc_clc_fill_fce_v2x`): v2.1 fields only with release >= 1. */
function ourFce(cfg: ClcConfig, d: { usesGateway: boolean; release: number; maxConns: number; maxLinks: number }, featureMask: number): ClcFirstContactExt {
  const v21 = d.release >= 1;
  return {
    v2Direct: !d.usesGateway,
    osType: ClcOsType.LINUX.value,
    release: d.release,
    hostname: cfg.hostname,
    maxConns: v21 ? d.maxConns : 0,
    maxLinks: v21 ? d.maxLinks : 0,
    featureMask: v21 ? featureMask : 0,
    // Never Alibaba vendor options (spec 12 rows 8, 9).
    vendorOptions: 0,
  };
}

// ---------------------------------------------------------------------------------------------------
// client

/** What the client knows before the CLC handshake (spec 3.6.2 steps 1-2). */
export interface ClientPrecheckInput {
  /** The SYN-ACK carried the SMC option (spec 2.2). */
  readonly peerSignalledSmc: boolean;
  /** A fallback reason already set on the socket (OPTUNSUPP after TCP_FASTOPEN, ACTIVE by local policy). */
  readonly presetFallback?: number;
  /** The TCP socket is under an IPsec policy (not detectable from Node; for completeness). */
  readonly ipsec?: boolean;
}

/**
 * Spec 3.6.2 steps 1-2: an already fallen-back socket stays so (reason kept, nothing sent); a peer that
 * did not signal SMC gives PEERNOSMC (nothing sent); IPsec declines with IPSEC before any Proposal.
 */
export function clientPrecheck(cfg: ClcConfig, input: ClientPrecheckInput): ClcProceed | ClcFallbackOutcome | ClcDeclineOutcome {
  if (input.presetFallback !== undefined) return fallback(input.presetFallback, 'the socket fell back before connect');
  if (!input.peerSignalledSmc) return fallback(R.PEERNOSMC.code, 'the SYN-ACK carried no SMC option');
  // Before any Accept the client declines in version 1 (spec 12 row 14: no ISMv2 device).
  if (input.ipsec) return declineOutcome(cfg, R.IPSEC.code, 1, 'the TCP socket has an IPsec policy');
  return { kind: 'proceed' };
}

/** What the server-side precheck knows (spec 3.6.3 step 1). */
export interface ServerPrecheckInput {
  /** The client's SYN carried the SMC option. */
  readonly peerSignalledSmc: boolean;
  /** The listening socket had fallen back already (its children inherit the reason). */
  readonly presetFallback?: number;
}

/** Spec 3.6.3 step 1: inherited fallback, or PEERNOSMC for a client without the SMC option; nothing sent. */
export function serverPrecheck(input: ServerPrecheckInput): ClcProceed | ClcFallbackOutcome {
  if (input.presetFallback !== undefined) return fallback(input.presetFallback, 'the listening socket fell back');
  if (!input.peerSignalledSmc) return fallback(R.PEERNOSMC.code, 'the SYN carried no SMC option');
  return { kind: 'proceed' };
}

/** What the client offered; clientOnAccept needs it back. */
export interface ClientOffer {
  /** Header version of the Proposal: 2 as current Linux sends, 1 (RFC 7609 layout) for a v1-only config. */
  readonly proposalVersion: 1 | 2;
  /** Offered SMCv1 / SMCv2 modes (we only ever offer SMC-R). */
  readonly typev1: 'R' | 'N';
  readonly typev2: 'R' | 'N';
  readonly port: ClcRocePort;
  readonly vlanId: number;
  /** Our TCP address (IPv4 dotted quad when IPv4 or IPv4-mapped). */
  readonly localAddress: string;
}

/** The Proposal to send and what it offered. */
export interface ClientProposalOutcome {
  readonly kind: 'proposal';
  readonly proposal: ClcProposal;
  readonly offer: ClientOffer;
}

/**
 * Spec 3.3.6, 3.6.2 step 3, L-af `smc_find_proposal_devices`, L-clc.c `smc_clc_send_proposal`:
 * - the VLAN of the TCP device must be known (else GETVLANERR: it removes all of SMC-R);
 * - SMC-Rv1 needs a v1 GID on the port, and an IP prefix for the prefix area;
 * - SMC-Rv2 needs at least one UEID, an IPv4 connection and a RoCEv2 GID;
 * - nothing usable: Decline NOSMCDEV; SMC-Rv1 only and no prefix: Decline CNFERR; with v2 also offered a
 *   missing prefix just drops SMCv1 (typev1 N, peer ID / GID / MAC zero as Linux, spec 12 row 18).
 * Declines before any Accept are version 1 (spec 12 row 14). The Proposal has a version-2 header and the
 * 40-byte SMC-D area as current Linux sends it, no vendor options (spec 12 rows 8, 9), v2 extension with
 * our release, max_conns, max_links (1) and feature mask 0 (spec 12 rows 3, 4). A configuration with
 * SMC-Rv1 only sends the RFC 7609 layout with a version-1 header, which every kernel accepts.
 */
export function clientProposal(cfg: ClcConfig, port: ClcRocePort | undefined, tcp: ClcTcpInfo): ClientProposalOutcome | ClcDeclineOutcome {
  checkClcConfig(cfg);
  checkTcp(tcp);
  if (port !== undefined) checkPort(port);
  const local = parseIp(tcp.localAddress);
  if (tcp.vlanId === null) return declineOutcome(cfg, R.GETVLANERR.code, 1, 'the VLAN of the TCP device could not be determined');
  const v1 = cfg.versions.includes(1);
  const v2 = cfg.versions.includes(2);
  let r1 = v1 && port?.gidV1 !== undefined;
  const r2 = v2 && cfg.ueids.length > 0 && local.family === 4 && port?.gidV2 !== undefined;
  if (port === undefined) return declineOutcome(cfg, R.NOSMCDEV.code, 1, 'no RoCE port for the TCP device');
  if (!r1 && !r2) return declineOutcome(cfg, R.NOSMCDEV.code, 1, 'the RoCE port has no GID for an enabled version (SMC-Rv2 also needs a UEID and IPv4)');
  let ipPrefix = r1 ? proposalPrefixArea(tcp.localAddress, tcp.ifAddresses) : undefined;
  if (r1 && ipPrefix === undefined) {
    if (!r2) return declineOutcome(cfg, R.CNFERR.code, 1, `no device address contains ${tcp.localAddress}: no IP prefix for SMC-Rv1`);
    r1 = false;
  }
  const offer: ClientOffer = {
    proposalVersion: v2 ? 2 : 1,
    typev1: r1 ? 'R' : 'N',
    typev2: r2 ? 'R' : 'N',
    port,
    vlanId: tcp.vlanId,
    localAddress: local.family === 4 ? local.bytes.join('.') : tcp.localAddress,
  };
  if (!v2) {
    const proposal: ClcProposal = {
      type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'R', typev2: 'N',
      peerId: Buffer.from(cfg.systemId), gid: Buffer.from(port.gidV1!), mac: Buffer.from(port.mac),
      ipAreaOffset: 0, ipPrefix: ipPrefix!,
    };
    return { kind: 'proposal', proposal, offer };
  }
  if (!r1) ipPrefix = undefined;
  const v2Ext: ClcProposalV2Ext | undefined = r2
    ? { release: cfg.release, seid: false, roceGid: Buffer.from(port.gidV2!), maxConns: cfg.maxConns, maxLinks: cfg.maxLinks, featureMask: cfg.featureMask, ueids: [...cfg.ueids] }
    : undefined;
  const proposal: ClcProposal = {
    type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: offer.typev1, typev2: offer.typev2,
    peerId: r1 ? Buffer.from(cfg.systemId) : Buffer.from(ZERO_ID),
    gid: r1 ? Buffer.from(port.gidV1!) : Buffer.from(ZERO_GID),
    mac: r1 ? Buffer.from(port.mac) : Buffer.from(ZERO_MAC),
    ipAreaOffset: r1 ? 40 : 0,
    smcdArea: { ismGid: 0n, ismChid: 0, vendorOui: 0, vendorOptions: Buffer.alloc(5) },
    ...(ipPrefix !== undefined ? { ipPrefix } : {}),
    ...(v2Ext !== undefined ? { v2Ext } : {}),
  };
  return { kind: 'proposal', proposal, offer };
}

/**
 * The route lookup clientOnAccept needs (spec 3.6.2 step 6): only for a version-2 first-contact Accept
 * whose FCE does not say `v2_direct`. Undefined when none is needed, or when the server's GID holds no
 * IPv4 address (then no route can exist: pass no route and clientOnAccept declines NOROUTE).
 */
export function clientRouteQuery(offer: ClientOffer, accept: ClcAccept): ClcRouteQuery | undefined {
  if (accept.version < 2 || !accept.firstContact || accept.fce?.v2Direct === true) return undefined;
  const daddr = ipv4FromGid(accept.gid);
  return daddr === undefined ? undefined : { saddr: offer.localAddress, daddr };
}

/** What clientOnAccept needs besides the message. */
export interface ClientAcceptContext<G extends LgrView> {
  /** Our link groups (any iterable); only ours with role 'client' towards the Accept's peer ID can match. */
  readonly lgrs: Iterable<G>;
  /** The answer to {@link clientRouteQuery}, when it asked for one. */
  readonly route?: ClcRoute;
}

/** The Accept is good: the values the driver sets the connection (and, on first contact, the link) up with. */
export interface ClientAccepted<G extends LgrView = LgrView> {
  readonly kind: 'accepted';
  /** Version of the Accept and so of the connection and the Confirm. */
  readonly version: 1 | 2;
  /** Version of any later Decline for this connection: the Accept's (spec 3.5). */
  readonly declineVersion: 1 | 2;
  /** The server created a new link group: we create ours (the link to bring up) too. */
  readonly firstContact: boolean;
  /** On reuse: our link group and the link the server assigned. */
  readonly reuse: LgrMatch<G> | undefined;
  /** Negotiated EID ('' in version 1); echoed in the Confirm. */
  readonly eid: string;
  /**
   * v2 first contact: the negotiated release, max conns / links and feature mask (our mask AND the
   * server's); the Confirm echoes them. Otherwise release 0, 255 connections, our max links, mask 0.
   */
  readonly release: number;
  readonly maxConns: number;
  readonly maxLinks: number;
  readonly featureMask: number;
  /** v2: the server is reached through an IP gateway; `nexthopMac` is the destination MAC for the QP. */
  readonly usesGateway: boolean;
  readonly nexthopMac: Buffer;
  /** The server's host name from the FCE, if it sent one. */
  readonly peerHostname: string | undefined;
  readonly peer: ClcPeerLink;
  readonly peerRmb: ClcPeerRmb;
  /** Our GID and MAC for a new link (the v1 or v2 GID of the port, by version). */
  readonly localGid: Buffer;
  readonly localMac: Buffer;
  /** Path MTU for the QP: min(our active MTU, the server's). */
  readonly pathMtu: number;
  readonly vlanId: number;
}

/**
 * The client's reading of the server's answer (spec 3.6.2 steps 4-8):
 * - Decline: fall back with PEERDECL; another type: EPROTO, no fallback.
 * - MODEUNSUPP when the Accept's version / mode is one we did not offer (step 5).
 * - v2 first contact (step 6): `v2_direct` or a route through a gateway, else NOROUTE / NOINDIRECT; a
 *   release newer than ours is VERSMISMAT; v2.1 max_conns < 16 is MAXCONNERR, max_links outside 1..2
 *   MAXLINKERR; feature mask = server's AND ours.
 * - Link group (steps 7-8): first contact always creates a new one; otherwise the link group the Accept
 *   names must exist here (else SYNCERR with the out-of-sync bit) and hold the named link (else NOSRVLINK).
 * - ERR_RTOK for RMBE index 0, ERR_RDYLNK for an unusable MTU on a new link (see peerValuesFailure).
 */
export function clientOnAccept<G extends LgrView>(cfg: ClcConfig, offer: ClientOffer, msg: ClcMessage, ctx: ClientAcceptContext<G>): ClientAccepted<G> | ClcFailure {
  if (msg.type === 'decline') return onDecline(msg);
  if (msg.type !== 'accept') return unexpected(msg, 'Accept');
  const a = msg;
  const version = versionOf(a.version);
  const decline = (reason: number, detail: string): ClcDeclineOutcome => declineOutcome(cfg, reason, version, detail);

  // Step 5 (smc_connect_check_aclc): the mode must have been offered for the Accept's version.
  const offered = version === 2 ? offer.typev2 : offer.typev1;
  if (!smcrIndicated(offered)) {
    return decline(R.MODEUNSUPP.code, `SMC-R v${version} chosen, but the Proposal offered ${version === 2 ? 'typev2' : 'typev1'} ${offered}`);
  }

  // Step 6 (smc_connect_rdma_v2_prepare, smc_clc_clnt_v2x_features_validate).
  let release = 0;
  let maxConns: number = ClcConfigLimit.MAX_CONNS;
  let maxLinks = cfg.maxLinks;
  let featureMask = 0;
  let usesGateway = false;
  let nexthopMac = a.mac;
  if (version === 2 && a.firstContact) {
    // A first-contact Accept too short for an FCE reads as an FCE of zeros, as in the kernel.
    const fce = a.fce;
    if (fce?.v2Direct !== true) {
      const route = ctx.route;
      if (ipv4FromGid(a.gid) === undefined || route === undefined || !route.found) {
        return decline(R.NOROUTE.code, `no route to the server's RoCEv2 address ${ipv4FromGid(a.gid) ?? '(GID not IPv4-mapped)'}`);
      }
      if (!route.viaGateway) return decline(R.NOINDIRECT.code, 'the server says it is behind a gateway, but our route to it is direct');
      usesGateway = true;
      nexthopMac = route.nexthopMac;
    }
    const rel = fce?.release ?? 0;
    if (rel > cfg.release) return decline(R.VERSMISMAT.code, `the server chose release ${rel}, newer than ours (${cfg.release})`);
    release = rel;
    if (rel >= 1) {
      const mc = fce?.maxConns ?? 0;
      if (mc < ClcConfigLimit.MIN_CONNS) return decline(R.MAXCONNERR.code, `the server's max_conns ${mc} is below ${ClcConfigLimit.MIN_CONNS}`);
      const ml = fce?.maxLinks ?? 0;
      if (ml < ClcConfigLimit.MIN_LINKS || ml > ClcConfigLimit.MAX_LINKS) return decline(R.MAXLINKERR.code, `the server's max_links ${ml} is not 1..2`);
      maxConns = mc;
      maxLinks = ml;
      featureMask = (fce?.featureMask ?? 0) & cfg.featureMask;
    }
  }

  // Steps 7-8 (smc_conn_create, smc_connect_rdma): first contact or the link group the server reuses.
  let reuse: LgrMatch<G> | undefined;
  if (!a.firstContact) {
    const q = { peerId: a.peerId, peerQpn: a.qpn, peerGid: a.gid, peerMac: a.mac, version, vlanId: offer.vlanId };
    const lgr = findClientLgr(ctx.lgrs, q);
    if (lgr === undefined) return decline(R.SYNCERR.code, 'the server reuses a link group we do not have');
    const link = selectServerLink(lgr, q);
    if (link === undefined) return decline(R.NOSRVLINK.code, 'our link group has no link with the QPN / GID / MAC the Accept names');
    reuse = { lgr, link };
  }

  // Step 9-10: the rtoken and (first contact) the QP's RTR step need usable values.
  const bad = peerValuesFailure(a, a.firstContact);
  if (bad) return decline(bad.reason, bad.detail);

  const localMtu = reuse ? reuse.link.pathMtu : offer.port.activeMtu;
  const peerMtu = reuse ? reuse.link.peerMtu : a.qpMtu;
  return {
    kind: 'accepted',
    version,
    declineVersion: version,
    firstContact: a.firstContact,
    reuse,
    eid: version === 2 ? (a.eid ?? '') : '',
    release,
    maxConns,
    maxLinks,
    featureMask,
    usesGateway,
    nexthopMac,
    peerHostname: a.fce?.hostname,
    peer: peerLinkOf(a),
    peerRmb: peerRmbOf(a),
    localGid: version === 2 ? offer.port.gidV2! : offer.port.gidV1!,
    localMac: offer.port.mac,
    pathMtu: Math.min(localMtu, peerMtu),
    vlanId: offer.vlanId,
  };
}

/**
 * Spec 3.6.2 step 8 once more, for the driver to call after anything it awaited between clientOnAccept
 * and clientConfirm (registering the RMB, CONFIRM_RKEY): on reuse, the link the server assigned must still
 * be in `lgrNow` (the current view of our link group), else NOSRVLINK. First contact always proceeds.
 */
export function clientRecheckLink(cfg: ClcConfig, acc: ClientAccepted, lgrNow: LgrView): ClcProceed | ClcDeclineOutcome {
  if (acc.reuse === undefined) return { kind: 'proceed' };
  const q = { peerId: acc.peer.peerId, peerQpn: acc.peer.qpn, peerGid: acc.peer.gid, peerMac: acc.peer.mac, version: acc.version, vlanId: acc.vlanId };
  if (selectServerLink(lgrNow, q) !== undefined) return { kind: 'proceed' };
  return declineOutcome(cfg, R.NOSRVLINK.code, acc.declineVersion, 'the link the server assigned is no longer in our link group');
}

/**
 * The client's Confirm (spec 3.4, 3.6.2 step 11; L-clc.c `smc_clc_send_confirm_accept`): our link and RMB,
 * QP MTU = min(ours, the server's), the Accept's version, first-contact bit and EID; on a version-2 first
 * contact the FCE echoing release / max_conns / max_links / feature mask exactly (spec 12 row 4) and the
 * GID list, which starts with the link's GID (default: just that one).
 */
export function clientConfirm(cfg: ClcConfig, acc: ClientAccepted, link: ClcLocalLink, rmb: ClcLocalRmb, gidList?: readonly Buffer[]): ClcConfirm {
  checkLocal(link, rmb);
  const base = {
    type: 'confirm' as const,
    eyecatcher: 'SMCR' as const,
    version: acc.version,
    firstContact: acc.firstContact,
    peerId: Buffer.from(cfg.systemId),
    gid: Buffer.from(link.gid),
    mac: Buffer.from(link.mac),
    qpn: link.qpn,
    rmbRkey: rmb.rkey,
    rmbeIdx: 1, // one RMBE per RMB, as Linux (spec 3.4.1)
    rmbeAlertToken: rmb.alertToken,
    rmbeSizeCode: compressBufSize(rmb.size, SMCR_RMBE_SIZES),
    qpMtu: Math.min(link.pathMtu, link.peerMtu ?? acc.peer.mtu),
    initCredits: 0,
    rmbVaddr: rmb.vaddr,
    psn: link.psn,
  };
  if (acc.version === 1) return base;
  if (!acc.firstContact) return { ...base, eid: acc.eid };
  return {
    ...base,
    eid: acc.eid,
    fce: ourFce(cfg, acc, acc.featureMask),
    gidList: (gidList ?? [link.gid]).map((g) => Buffer.from(g)),
  };
}

// ---------------------------------------------------------------------------------------------------
// server

/** What serverOnProposal needs besides the message. */
export interface ServerProposalContext<G extends LgrView> {
  /** The RoCE port for the TCP socket's device, or undefined when there is none. */
  readonly port: ClcRocePort | undefined;
  readonly tcp: ClcTcpInfo;
  /** Our link groups (any iterable); only ours with role 'server' can match. */
  readonly lgrs: Iterable<G>;
  /** The answer to {@link serverRouteQuery}, when it asked for one. */
  readonly route?: ClcRoute;
  /** The TCP socket is under an IPsec policy (not detectable from Node; for completeness). */
  readonly ipsec?: boolean;
}

/** The server's choice: build the Accept from it once the link and RMB exist. */
export interface ServerAccepting<G extends LgrView = LgrView> {
  readonly kind: 'accepting';
  /** Version of the chosen mode, of the Accept and of the connection. */
  readonly version: 1 | 2;
  /** Version of any Decline for this connection: the Proposal's (spec 3.5, 12 row 14). */
  readonly declineVersion: 1 | 2;
  /** No reusable link group: create one (first contact bit in the Accept). */
  readonly firstContact: boolean;
  /** On reuse: the link group and the link the connection goes on (register the RMB, CONFIRM_RKEY first). */
  readonly reuse: LgrMatch<G> | undefined;
  /** Negotiated EID: the first client UEID that is also ours ('' for version 1). */
  readonly eid: string;
  /**
   * Release min(client's, ours); v2.1 max conns / links min(client's, ours); our feature mask (spec 3.6.3
   * step 5). Computed as the kernel does even when SMC-Rv1 is chosen (a v1 Accept carries none of them).
   */
  readonly release: number;
  readonly maxConns: number;
  readonly maxLinks: number;
  readonly featureMask: number;
  /** v2: the client is behind an IP gateway (FCE `v2_direct` = !usesGateway); next-hop MAC for the QP. */
  readonly usesGateway: boolean;
  readonly nexthopMac: Buffer;
  /** The client's identity and link address for this version (Proposal byte 8; v1 GID or RoCEv2 GID; MAC). */
  readonly peerId: Buffer;
  readonly peerGid: Buffer;
  readonly peerMac: Buffer;
  /** Our GID and MAC for a new link, and our port's active MTU (the Accept's QP MTU). */
  readonly localGid: Buffer;
  readonly localMac: Buffer;
  readonly pathMtu: number;
  readonly vlanId: number;
}

function firstCommonUeid(x: ClcProposalV2Ext, cfg: ClcConfig): string | undefined {
  // L-clc.c smc_clc_match_eid: the first client UEID (in the client's order) that our table also holds.
  return x.ueids.find((u) => cfg.ueids.includes(u));
}

/**
 * The route lookup serverOnProposal needs (spec 3.6.3 step 6, SMC-Rv2): only when SMC-Rv2 can be chosen
 * (offered, enabled, a common UEID, IPv4) and the client's GID holds an IPv4 address.
 */
export function serverRouteQuery(cfg: ClcConfig, p: ClcProposal, tcp: ClcTcpInfo): ClcRouteQuery | undefined {
  const x = p.v2Ext;
  if (p.version < 2 || !smcrIndicated(p.typev2) || !cfg.versions.includes(2) || x === undefined) return undefined;
  if (firstCommonUeid(x, cfg) === undefined) return undefined;
  const saddr = ipv4Text(tcp.localAddress);
  const daddr = ipv4FromGid(x.roceGid);
  return saddr === undefined || daddr === undefined ? undefined : { saddr, daddr };
}

/**
 * The server's reading of a Proposal (spec 3.6.3 steps 2-6; L-af `smc_listen_work`, `smc_listen_v2_check`,
 * `smc_listen_find_device`; L-clc.c `smc_clc_srv_v2x_features_validate`). Declines are in the Proposal's
 * version. In order:
 * - Decline: PEERDECL; another type: EPROTO. IPsec: IPSEC.
 * - Nothing offered at all: PEERNOSMC (the one case a server sends it). SMC-R offered only in versions we
 *   have disabled: VERSMISMAT.
 * - v2 checks: v2 extension missing NOV2EXT, SMC-Dv2 NOISM2SUPP (no ISM), no UEIDs NOUEID; these decline
 *   only when nothing else is left. Release = min(client's, ours).
 * - v2.1 (release >= 1, SMC-Rv2 left): min(max_conns) < 16 MAXCONNERR, min(max_links) < 1 MAXLINKERR.
 * - Device selection, first failure wins: prefix (typev1 != N) else DIFFPREFIX; VLAN else GETVLANERR;
 *   SMC-D only NOSMCDDEV; SMC-Rv2 with a common UEID, a RoCEv2 GID and a route, else NOSMCRDEV (no common
 *   UEID records nothing); SMC-Rv1 with a v1 GID and a matching prefix, else NOSMCDEV.
 * - Link group: reuse per spec 5.3, else first contact.
 */
export function serverOnProposal<G extends LgrView>(cfg: ClcConfig, msg: ClcMessage, ctx: ServerProposalContext<G>): ServerAccepting<G> | ClcFailure {
  checkClcConfig(cfg);
  checkTcp(ctx.tcp);
  if (ctx.port !== undefined) checkPort(ctx.port);
  if (msg.type === 'decline') return onDecline(msg);
  if (msg.type !== 'proposal') return unexpected(msg, 'Proposal');
  const p = msg;
  const dv = versionOf(p.version);
  const decline = (reason: number, detail: string): ClcDeclineOutcome => declineOutcome(cfg, reason, dv, detail);
  if (ctx.ipsec) return decline(R.IPSEC.code, 'the TCP socket has an IPsec policy');

  // Step 4 (smc_listen_v2_check). v2 modes count only with a version-2 header.
  const hdr2 = p.version >= 2;
  let r1 = smcrIndicated(p.typev1);
  const d1 = smcdIndicated(p.typev1);
  let r2 = hdr2 && smcrIndicated(p.typev2);
  let d2 = hdr2 && smcdIndicated(p.typev2);
  if (!r1 && !d1 && !r2 && !d2) return decline(R.PEERNOSMC.code, 'the Proposal offers neither SMCv1 nor SMCv2');
  // Our configuration may disable a version (a v1-only or v2-only server).
  if (!cfg.versions.includes(1)) r1 = false;
  if (!cfg.versions.includes(2)) r2 = false;
  if (!r1 && !r2 && !d1 && !d2) {
    return decline(R.VERSMISMAT.code, `SMC-R offered in v${smcrIndicated(p.typev1) ? 1 : 2} only; we speak v${cfg.versions.join('+v')}`);
  }
  let rc: number = R.PEERNOSMC.code;
  let release = 0;
  const x = p.v2Ext;
  if (r2 || d2) {
    if (x === undefined) {
      r2 = d2 = false;
      rc = R.NOV2EXT.code;
    } else {
      if (d2) {
        d2 = false; // no ISMv2 device here
        rc = R.NOISM2SUPP.code;
      }
      if (r2 && x.ueids.length === 0) {
        r2 = false;
        rc = R.NOUEID.code;
      }
      release = Math.min(x.release, cfg.release);
    }
  }
  if (!r1 && !d1 && !r2 && !d2) return decline(rc, 'no SMCv1 offered and the SMCv2 offer is unusable');

  // Step 5 (smc_clc_srv_v2x_features_validate): only with SMC-Rv2 left and release >= 1.
  let maxConns: number = ClcConfigLimit.MAX_CONNS;
  let maxLinks = cfg.maxLinks;
  if (r2 && release >= 1 && x !== undefined) {
    maxConns = Math.min(x.maxConns, cfg.maxConns);
    if (maxConns < ClcConfigLimit.MIN_CONNS) return decline(R.MAXCONNERR.code, `min(client ${x.maxConns}, ours ${cfg.maxConns}) max_conns is below 16`);
    maxLinks = Math.min(x.maxLinks, cfg.maxLinks);
    if (maxLinks < ClcConfigLimit.MIN_LINKS) return decline(R.MAXLINKERR.code, `min(client ${x.maxLinks}, ours ${cfg.maxLinks}) max_links is below 1`);
  }

  // Step 6 (smc_listen_find_device): the first failure reason is kept (smc_find_ism_store_rc).
  let stored = 0;
  const store = (code: number): void => {
    if (stored === 0) stored = code;
  };
  let prfxRc = 0;
  if (p.typev1 !== 'N') {
    if (p.ipPrefix === undefined) return error(EngineErrorCode.PROTOCOL, 'Proposal offers SMCv1 without an IP prefix area (EPROTO)');
    if (!prefixAreaMatches(p.ipPrefix, ctx.tcp.ifAddresses)) {
      prfxRc = R.DIFFPREFIX.code;
      store(prfxRc);
    }
  }
  if (ctx.tcp.vlanId === null) return decline(stored || R.GETVLANERR.code, 'the VLAN of the TCP device could not be determined');
  const vlanId = ctx.tcp.vlanId;
  if (prfxRc === 0 && d1) store(R.NOSMCDDEV.code); // SMC-Dv1 offered: we have no ISM device
  if (!smcrIndicated(p.typev1) && !(hdr2 && smcrIndicated(p.typev2))) {
    return decline(stored || R.NOSMCDDEV.code, 'the Proposal offers SMC-D only; we have no ISM device');
  }
  const port = ctx.port;
  const common = { declineVersion: dv, release, maxConns, maxLinks, featureMask: cfg.featureMask, peerId: p.peerId, vlanId } as const;

  // SMC-Rv2 (smc_find_rdma_v2_device_serv).
  if (r2 && x !== undefined) {
    const eid = firstCommonUeid(x, cfg);
    if (eid !== undefined) {
      const route = ctx.route;
      const ipv4Socket = ipv4Text(ctx.tcp.localAddress) !== undefined;
      if (port?.gidV2 === undefined || !ipv4Socket || ipv4FromGid(x.roceGid) === undefined || route === undefined || !route.found) {
        store(R.NOSMCRDEV.code);
      } else {
        const reuse = findServerLgr(ctx.lgrs, { peerId: p.peerId, peerGid: x.roceGid, peerMac: p.mac, version: 2, vlanId });
        return {
          kind: 'accepting', version: 2, firstContact: reuse === undefined, reuse, eid, ...common,
          usesGateway: route.viaGateway, nexthopMac: route.viaGateway ? route.nexthopMac : p.mac,
          peerGid: x.roceGid, peerMac: p.mac, localGid: port.gidV2, localMac: port.mac, pathMtu: port.activeMtu,
        };
      }
    }
  }

  // SMC-Rv1 (smc_find_rdma_v1_device_serv), only if the prefix matched.
  if (prfxRc === 0) {
    if (r1 && port?.gidV1 !== undefined) {
      const reuse = findServerLgr(ctx.lgrs, { peerId: p.peerId, peerGid: p.gid, peerMac: p.mac, version: 1, vlanId });
      return {
        kind: 'accepting', version: 1, firstContact: reuse === undefined, reuse, eid: '', ...common,
        usesGateway: false, nexthopMac: p.mac,
        peerGid: p.gid, peerMac: p.mac, localGid: port.gidV1, localMac: port.mac, pathMtu: port.activeMtu,
      };
    }
    store(R.NOSMCDEV.code);
    return decline(stored, r1 ? 'no RoCE port with a GID for SMC-Rv1' : 'no usable SMC-R device for what the Proposal offers');
  }
  // Newer kernels decline the prefix mismatch itself here (older ones said NOSMCDEV).
  return decline(prfxRc, "the client's IP prefix is not on our device");
}

/**
 * The server's Accept (spec 3.4, 3.6.3 step 8): our link and RMB, QP MTU = our port's, first-contact bit,
 * version of the chosen mode; version 2 with the negotiated EID and, on first contact, the FCE (OS Linux,
 * release, host name, max_conns, max_links, our feature mask, `v2_direct`, no vendor options).
 */
export function serverAccept(cfg: ClcConfig, acc: ServerAccepting, link: ClcLocalLink, rmb: ClcLocalRmb): ClcAccept {
  checkLocal(link, rmb);
  const base = {
    type: 'accept' as const,
    eyecatcher: 'SMCR' as const,
    version: acc.version,
    firstContact: acc.firstContact,
    peerId: Buffer.from(cfg.systemId),
    gid: Buffer.from(link.gid),
    mac: Buffer.from(link.mac),
    qpn: link.qpn,
    rmbRkey: rmb.rkey,
    rmbeIdx: 1,
    rmbeAlertToken: rmb.alertToken,
    rmbeSizeCode: compressBufSize(rmb.size, SMCR_RMBE_SIZES),
    qpMtu: link.pathMtu,
    initCredits: 0,
    rmbVaddr: rmb.vaddr,
    psn: link.psn,
  };
  if (acc.version === 1) return base;
  if (!acc.firstContact) return { ...base, eid: acc.eid };
  return { ...base, eid: acc.eid, fce: ourFce(cfg, acc, acc.featureMask) };
}

/** The Confirm is good: the client's link and RMB values for the driver. */
export interface ServerConfirmed {
  readonly kind: 'confirmed';
  readonly peer: ClcPeerLink;
  readonly peerRmb: ClcPeerRmb;
  /** v2 first contact: the client's GID list (first = its GID on this link); [] otherwise. */
  readonly gidList: readonly Buffer[];
  /** v2.1 first contact: the client's feature mask (spec 3.6.3 step 10); else the Accept's. */
  readonly featureMask: number;
  /** Path MTU for the QP: min(our active MTU, the client's). */
  readonly pathMtu: number;
  /** The client's host name from its FCE, if sent. */
  readonly peerHostname: string | undefined;
}

/**
 * The server's check of the Confirm (spec 3.6.3 steps 9-10; L-clc.c `smc_clc_v2x_features_confirm_check`):
 * Decline: PEERDECL; another type: EPROTO. For a version-2 first-contact Confirm the FCE must echo the
 * negotiated release (RELEASEERR) and, with release >= 1, max_conns (MAXCONNERR) and max_links (MAXLINKERR);
 * the feature mask is taken from it. VENDORERR cannot arise: we never negotiate vendor options. Then the
 * rtoken / QP sanity checks of the next steps (ERR_RTOK, ERR_RDYLNK).
 */
export function serverOnConfirm(cfg: ClcConfig, acc: ServerAccepting, msg: ClcMessage): ServerConfirmed | ClcFailure {
  if (msg.type === 'decline') return onDecline(msg);
  if (msg.type !== 'confirm') return unexpected(msg, 'Confirm');
  const c = msg;
  const decline = (reason: number, detail: string): ClcDeclineOutcome => declineOutcome(cfg, reason, acc.declineVersion, detail);
  let featureMask = acc.featureMask;
  if (c.version >= 2 && c.firstContact) {
    const fce = c.fce;
    const rel = fce?.release ?? 0;
    if (rel !== acc.release) return decline(R.RELEASEERR.code, `the Confirm says release ${rel}, we negotiated ${acc.release}`);
    if (rel >= 1) {
      const mc = fce?.maxConns ?? 0;
      if (mc !== acc.maxConns) return decline(R.MAXCONNERR.code, `the Confirm echoes max_conns ${mc}, we sent ${acc.maxConns}`);
      const ml = fce?.maxLinks ?? 0;
      if (ml !== acc.maxLinks) return decline(R.MAXLINKERR.code, `the Confirm echoes max_links ${ml}, we sent ${acc.maxLinks}`);
      featureMask = fce?.featureMask ?? 0;
    }
  }
  const bad = peerValuesFailure(c, acc.firstContact);
  if (bad) return decline(bad.reason, bad.detail);
  const localMtu = acc.reuse ? acc.reuse.link.pathMtu : acc.pathMtu;
  return {
    kind: 'confirmed',
    peer: peerLinkOf(c),
    peerRmb: peerRmbOf(c),
    gidList: c.gidList ?? [],
    featureMask,
    pathMtu: Math.min(localMtu, c.qpMtu),
    peerHostname: c.fce?.hostname,
  };
}
