/**
 * The verbs interface: libibverbs semantics in TypeScript, implemented by every provider (mem,
 * softroce, the libibverbs binding) and used by the SMC-R engine, which never knows which one runs.
 *
 * Shape (style guide 9): Provider -> Context (an open device) -> Pd -> Mr / Qp, and Cq per context.
 * Every child keeps its parent; close() is idempotent and closes children first.
 *
 * Hot path rules: post_send / post_recv take caller-owned, reusable work-request objects (no
 * closure, no allocation per call); as with ibv_post_send, a provider copies what it needs before
 * returning, so the caller may change and re-post the same WR and SGE objects right away (the
 * memory the SGEs point to must of course stay untouched until the WR completes, except for
 * INLINE sends). poll() fills caller-owned completion objects. 64-bit remote
 * addresses travel as two 32-bit halves (`raddrHi`, `raddrLo`) because a BigInt per RDMA WRITE
 * would allocate, and kernel peers hand out addresses above 2^53 (virtually contiguous RMBs).
 */

// ------------------------------------------------------------------------------------------
// Enumerations (numeric values equal libibverbs' where it has them, so the FFI binding passes
// them through; as const tables per the style guide).

/** `enum ibv_wc_status`. */
export const WcStatus = {
  SUCCESS: 0,
  LOC_LEN_ERR: 1,
  LOC_QP_OP_ERR: 2,
  LOC_EEC_OP_ERR: 3,
  LOC_PROT_ERR: 4,
  WR_FLUSH_ERR: 5,
  MW_BIND_ERR: 6,
  BAD_RESP_ERR: 7,
  LOC_ACCESS_ERR: 8,
  REM_INV_REQ_ERR: 9,
  REM_ACCESS_ERR: 10,
  REM_OP_ERR: 11,
  RETRY_EXC_ERR: 12,
  RNR_RETRY_EXC_ERR: 13,
  LOC_RDD_VIOL_ERR: 14,
  REM_INV_RD_REQ_ERR: 15,
  REM_ABORT_ERR: 16,
  INV_EECN_ERR: 17,
  INV_EEC_STATE_ERR: 18,
  FATAL_ERR: 19,
  RESP_TIMEOUT_ERR: 20,
  GENERAL_ERR: 21,
} as const;
export type WcStatus = (typeof WcStatus)[keyof typeof WcStatus];

/** Name of a status value, e.g. `REM_ACCESS_ERR`, for messages and logs. */
export function wcStatusName(s: number): string {
  for (const [k, v] of Object.entries(WcStatus)) if (v === s) return k;
  return `WC_STATUS_${s}`;
}

/** `enum ibv_wc_opcode` (receive-side values start at 128). */
export const WcOpcode = {
  SEND: 0,
  RDMA_WRITE: 1,
  RDMA_READ: 2,
  COMP_SWAP: 3,
  FETCH_ADD: 4,
  BIND_MW: 5,
  RECV: 128,
  RECV_RDMA_WITH_IMM: 129,
} as const;
export type WcOpcode = (typeof WcOpcode)[keyof typeof WcOpcode];

/** `enum ibv_wr_opcode` (the subset SMC-R and its tests use). */
export const WrOpcode = {
  RDMA_WRITE: 0,
  RDMA_WRITE_WITH_IMM: 1,
  SEND: 2,
  SEND_WITH_IMM: 3,
  RDMA_READ: 4,
} as const;
export type WrOpcode = (typeof WrOpcode)[keyof typeof WrOpcode];

/** `enum ibv_send_flags`. */
export const SendFlag = {
  FENCE: 1,
  SIGNALED: 2,
  SOLICITED: 4,
  INLINE: 8,
} as const;

/** `enum ibv_access_flags` (the ones SMC-R uses). */
export const Access = {
  LOCAL_WRITE: 1,
  REMOTE_WRITE: 2,
  REMOTE_READ: 4,
} as const;

/** `enum ibv_qp_state`. */
export const QpState = {
  RESET: 0,
  INIT: 1,
  RTR: 2,
  RTS: 3,
  SQD: 4,
  SQE: 5,
  ERR: 6,
} as const;
export type QpState = (typeof QpState)[keyof typeof QpState];

export function qpStateName(s: number): string {
  for (const [k, v] of Object.entries(QpState)) if (v === s) return k;
  return `QP_STATE_${s}`;
}

/** `enum ibv_mtu`: 1 = 256 ... 5 = 4096 (the same values CLC carries, spec 3.4.1). */
export const IbMtu = { MTU_256: 1, MTU_512: 2, MTU_1024: 3, MTU_2048: 4, MTU_4096: 5 } as const;
export type IbMtu = (typeof IbMtu)[keyof typeof IbMtu];

// ------------------------------------------------------------------------------------------
// Branded handles: numbers that must not be mixed up.

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };
export type Lkey = Brand<number, 'lkey'>;
export type Rkey = Brand<number, 'rkey'>;
export type QpNum = Brand<number, 'qpn'>;

// ------------------------------------------------------------------------------------------
// Devices, ports, GIDs

export type Transport = 'RoCE' | 'iWARP';

export interface DeviceAttr {
  readonly name: string;
  /** Provider name: 'mem', 'softroce', 'ibverbs'. */
  readonly provider: string;
  readonly transport: Transport;
  readonly vendorId: number;
  readonly vendorPartId: number;
  readonly nodeGuid: bigint;
  readonly physPortCnt: number;
  readonly maxQp: number;
  readonly maxQpWr: number;
  readonly maxSge: number;
  readonly maxRecvSge: number;
  readonly maxCq: number;
  readonly maxCqe: number;
  readonly maxMr: number;
  readonly maxMrSize: number;
  readonly maxInlineData: number;
}

export interface PortAttr {
  readonly portNum: number;
  readonly state: 'ACTIVE' | 'DOWN';
  /** Active MTU as the IB enum (1..5). */
  readonly activeMtu: IbMtu;
  readonly maxMtu: IbMtu;
  readonly gidTblLen: number;
  readonly linkLayer: 'Ethernet' | 'InfiniBand';
}

export interface GidEntry {
  readonly index: number;
  /** 16 bytes. */
  readonly gid: Buffer;
  readonly type: 'RoCEv1' | 'RoCEv2' | 'IB';
  /** The IPv4 address for an IPv4-mapped RoCEv2 GID. */
  readonly ipv4?: string;
  readonly netdev?: string;
}

/** What a provider lists before opening. */
export interface DeviceInfo {
  readonly name: string;
  readonly provider: string;
  readonly transport: Transport;
}

// ------------------------------------------------------------------------------------------
// Memory

/**
 * Memory that can be registered: page-aligned native memory for the libibverbs binding, an
 * ordinary Buffer for the software providers. `addr` is the address RDMA peers use for byte 0
 * (the native pointer, or a synthetic address the provider chose), split into 32-bit halves.
 */
export interface MemoryBlock {
  readonly buffer: Buffer;
  readonly addrHi: number;
  readonly addrLo: number;
  readonly length: number;
  /** Frees native memory (no-op for software providers). Idempotent; the MRs on it must be closed first. */
  free(): void;
}

export interface Mr {
  readonly pd: Pd;
  readonly block: MemoryBlock;
  /** Offset of the region inside the block, and its length. */
  readonly offset: number;
  readonly length: number;
  readonly lkey: Lkey;
  readonly rkey: Rkey;
  /** Address of the region's first byte (block address + offset), 32-bit halves. */
  readonly addrHi: number;
  readonly addrLo: number;
  readonly access: number;
  /** Deregisters. Idempotent. */
  close(): void;
}

// ------------------------------------------------------------------------------------------
// Work requests and completions (caller-owned, reusable)

/** One scatter/gather element: `length` bytes at `offset` inside `mr`. */
export interface Sge {
  mr: Mr;
  offset: number;
  length: number;
}

export interface SendWr {
  wrId: number;
  opcode: WrOpcode;
  /** SendFlag bits. */
  flags: number;
  /** Elements used: `sgList[0 .. numSge)`. */
  sgList: Sge[];
  numSge: number;
  /** RDMA_WRITE / RDMA_READ target. */
  raddrHi: number;
  raddrLo: number;
  rkey: number;
  /** *_WITH_IMM: 32-bit immediate, as it stands on the wire (big-endian value). */
  immData: number;
}

export interface RecvWr {
  wrId: number;
  sgList: Sge[];
  numSge: number;
}

/** Filled by Cq.poll(). `byteLen` is meaningful for receives. */
export interface WorkCompletion {
  wrId: number;
  status: number;
  opcode: number;
  byteLen: number;
  /** Valid when `withImm`. */
  immData: number;
  withImm: boolean;
  qpNum: number;
  /** Vendor error, 0 on software providers. */
  vendorErr: number;
}

export function newSendWr(numSge = 2): SendWr {
  return { wrId: 0, opcode: WrOpcode.SEND, flags: 0, sgList: new Array<Sge>(numSge), numSge: 0, raddrHi: 0, raddrLo: 0, rkey: 0, immData: 0 };
}

export function newRecvWr(numSge = 1): RecvWr {
  return { wrId: 0, sgList: new Array<Sge>(numSge), numSge: 0 };
}

export function newWorkCompletion(): WorkCompletion {
  return { wrId: 0, status: 0, opcode: 0, byteLen: 0, immData: 0, withImm: false, qpNum: 0, vendorErr: 0 };
}

// ------------------------------------------------------------------------------------------
// Objects

export interface Provider {
  readonly name: string;
  /** Devices this provider can open here (empty, never throwing, when there are none). */
  listDevices(): Promise<readonly DeviceInfo[]>;
  open(deviceName: string): Promise<Context>;
}

export interface Context {
  readonly provider: string;
  readonly device: DeviceInfo;
  queryDevice(): DeviceAttr;
  queryPort(portNum: number): PortAttr;
  queryGid(portNum: number, index: number): GidEntry;
  gidTable(portNum: number): readonly GidEntry[];
  /** Allocates registrable memory (page-aligned on native providers). */
  allocMemory(length: number): MemoryBlock;
  allocPd(): Pd;
  createCq(cqe: number): Cq;
  /** Closes every child (QPs, CQs, MRs, PDs), then the device. Idempotent. */
  close(): Promise<void>;
}

export interface Pd {
  readonly context: Context;
  /** Registers `[offset, offset+length)` of `block` with `access` (Access bits). */
  registerMr(block: MemoryBlock, offset: number, length: number, access: number): Mr;
  createQp(init: QpInitAttr): Qp;
  close(): void;
}

/**
 * Completion queue. Notification follows ibv_req_notify_cq + completion channel: `arm()` asks
 * for one callback when the next completion arrives; the handler then polls until empty and
 * re-arms (and polls once more, to close the race). Handlers run from the event loop, never
 * synchronously inside post_send/post_recv.
 */
export interface Cq {
  readonly context: Context;
  readonly cqe: number;
  /** Fills `out[0 .. n)` with up to `max` completions; returns n. Allocation-free. */
  poll(out: WorkCompletion[], max: number): number;
  arm(solicitedOnly?: boolean): void;
  setHandler(handler: (() => void) | null): void;
  /** Completions lost because the CQ was full (a real CQ overrun moves the QPs to ERR). */
  readonly overruns: number;
  close(): void;
}

export interface QpCap {
  maxSendWr: number;
  maxRecvWr: number;
  maxSendSge: number;
  maxRecvSge: number;
  maxInlineData: number;
}

export interface QpInitAttr {
  readonly type: 'RC';
  readonly sendCq: Cq;
  readonly recvCq: Cq;
  readonly cap: QpCap;
  /** When false, every send WR completes (as if SIGNALED). Default false, like sq_sig_all = 0. */
  readonly sqSigAll?: boolean;
}

/** Address vector toward the peer (RoCE: GRH with GIDs; RoCEv2 = UDP/IP with IPv4-mapped GIDs). */
export interface AhAttr {
  readonly dgid: Buffer;
  readonly sgidIndex: number;
  readonly hopLimit: number;
  readonly portNum: number;
  /** Next-hop MAC (RoCE); software providers ignore it. */
  readonly dmac?: Buffer;
  readonly trafficClass?: number;
  readonly flowLabel?: number;
}

export type QpModify =
  | { readonly state: typeof QpState.RESET }
  | { readonly state: typeof QpState.INIT; readonly pkeyIndex: number; readonly portNum: number; readonly accessFlags: number }
  | {
      readonly state: typeof QpState.RTR;
      readonly pathMtu: IbMtu;
      readonly destQpNum: number;
      readonly rqPsn: number;
      readonly ah: AhAttr;
      readonly maxDestRdAtomic: number;
      /** IB encoding, 0..31 (IBA table: 5 = 0.06 ms, the value SMC sets). */
      readonly minRnrTimer: number;
    }
  | {
      readonly state: typeof QpState.RTS;
      readonly sqPsn: number;
      /** Local ACK timeout exponent: 4.096 us * 2^timeout (0 = infinite). SMC: 15. */
      readonly timeout: number;
      /** 0..7. SMC: 7. */
      readonly retryCnt: number;
      /** 0..7, 7 = infinite. SMC: 7. */
      readonly rnrRetry: number;
      readonly maxRdAtomic: number;
    }
  | { readonly state: typeof QpState.ERR };

export interface QpAttr {
  readonly state: QpState;
  readonly qpNum: QpNum;
  readonly destQpNum: number;
  readonly pathMtu: IbMtu;
  readonly sqPsn: number;
  readonly rqPsn: number;
  readonly timeout: number;
  readonly retryCnt: number;
  readonly rnrRetry: number;
  readonly minRnrTimer: number;
  readonly accessFlags: number;
  readonly cap: QpCap;
}

export interface Qp {
  readonly pd: Pd;
  readonly qpNum: QpNum;
  readonly state: QpState;
  /** ibv_modify_qp. An illegal transition or missing attribute throws VerbsError('modify_qp', EINVAL). */
  modify(attr: QpModify): void;
  query(): QpAttr;
  /**
   * ibv_post_send. Throws VerbsError (ENOMEM when the send queue is full, EINVAL for a bad WR or a
   * QP not in RTS). In ERR the WR is accepted and completes with WR_FLUSH_ERR, as on hardware.
   */
  postSend(wr: SendWr): void;
  /** ibv_post_recv; allowed from INIT on. */
  postRecv(wr: RecvWr): void;
  /** Destroys the QP (outstanding WRs are flushed, not completed). Idempotent. */
  close(): void;
}

// ------------------------------------------------------------------------------------------
// Connection managers (iWARP)

/**
 * Brings a QP to RTS on transports where modify_qp cannot (iWARP: the QP rides on a TCP + MPA
 * connection that a connection manager sets up). The QP is created and brought to INIT as usual;
 * the manager joins two such QPs by their numbers. Provided by a binding (ibverbs: librdmacm); the
 * engine uses it instead of modify_qp RTR/RTS when the device's transport is iWARP. The active side
 * must send the first message on the QP (iWARP's rule).
 */
export interface QpConnector {
  /** Active side: connect our QP (in INIT) to the peer's manager at `address`; resolves once established (QP in RTS). */
  connect(o: { readonly address: string; readonly sourceAddress?: string; readonly qpNum: number; readonly privateData: Uint8Array; readonly timeoutMs: number }): Promise<QpConnection>;
  /**
   * Passive side: waits for the connect request whose private data `match` accepts, accepts it with
   * our QP (in INIT); resolves once established. Requests nobody expects are rejected.
   */
  expect(o: { readonly match: (privateData: Buffer) => boolean; readonly qpNum: number; readonly timeoutMs: number }): Promise<QpConnection>;
}

export interface QpConnection {
  /** Tears the connection down (the QP goes to ERR and flushes). Idempotent. */
  disconnect(): void;
}
