/**
 * The softroce RC queue pair: requester (send queue, PSNs, go-back-N, timers) and responder
 * (receive queue, placement, ACK/NAK generation, RDMA READ responses) of IBA chapter 9, in the
 * RoCEv2 wire format and with the choices rdma_rxe makes where peers can tell the difference.
 *
 * Requester (IBA 9.7.4 / 9.7.5, rxe_req.c + rxe_comp.c):
 * - A WR gets its PSNs when it is first transmitted: one per packet, and for an RDMA READ one per
 *   expected response packet (the request itself is a single packet). PSNs wrap at 2^24.
 * - Packets are segmented at the path MTU: FIRST and MIDDLE exactly MTU-sized, LAST/ONLY the rest.
 *   RETH on WRITE FIRST/ONLY (DMA length = whole message) and on READ requests; ImmDt on the last
 *   packet of *_WITH_IMM. AckReq on the last packet of every message, every `ackReqInterval`
 *   packets, and when the window fills. SE on the last packet of SENDs (and of WRITE_WITH_IMM with
 *   SendFlag.SOLICITED). MigReq 0, TVer 0, P_Key 0xFFFF, pad = (-len) & 3 (as rxe sends).
 * - At most `maxInflightPackets` PSNs are outstanding (a window); one WR is always allowed.
 * - ACK PSN p acknowledges every PSN up to p (coalesced ACKs). NAK PSN sequence error p
 *   acknowledges up to p - 1 and restarts transmission at p (go-back-N). NAK invalid request /
 *   remote access / remote operational error fail the WR holding p (REM_INV_REQ_ERR,
 *   REM_ACCESS_ERR, REM_OP_ERR) and move the QP to ERR. RNR NAK p: acknowledge up to p - 1, wait
 *   the RNR timer the NAK carries (IBA Table 45), resend from p; `rnrRetry` 7 = infinite.
 * - Local ACK timeout 4.096 us * 2^timeout without progress: resend everything unacknowledged
 *   (go-back-N from the oldest PSN), at most `retryCnt` times in a row, then RETRY_EXC_ERR.
 * - READ responses are placed as they arrive in order; a response after a gap, or an ACK beyond a
 *   READ whose responses are missing, re-issues the READ from the first missing response (RETH
 *   VA/length adjusted, PSN of that response), once per gap.
 *
 * Responder (IBA 9.7.5.1, rxe_resp.c):
 * - Expected PSN e. A request with PSN e is executed; PSN ahead of e -> one NAK PSN sequence error
 *   (carrying e) per gap, the packet dropped; PSN behind e -> duplicate: SEND/WRITE re-ACKed
 *   (ACK e - 1), READ re-executed from the request's RETH.
 * - ACKs are coalesced: an ACK (syndrome 0x1F, the current MSN) goes out at the end of the event
 *   loop turn when a request asked for one (AckReq), after `ackCoalesce` unacknowledged requests,
 *   or after `ackIdleMs` without either; it acknowledges everything executed so far (but never
 *   beyond a READ whose responses are still being sent).
 * - No receive posted for a SEND FIRST/ONLY or WRITE *_WITH_IMM -> RNR NAK with the QP's
 *   min_rnr_timer, nothing consumed.
 * - Class C errors (rxe: NAK, then the responder QP goes to ERR): wrong opcode sequence, packet
 *   longer than the path MTU or FIRST/MIDDLE not MTU-sized, RETH length inconsistent, an
 *   operation the QP's access flags do not allow -> NAK invalid request (0x61); wrong rkey, range
 *   outside the MR, MR without REMOTE_WRITE / REMOTE_READ -> NAK remote access error (0x62); receive buffer too small -> NAK invalid request
 *   and LOC_LEN_ERR for that receive (libibverbs semantics; rxe reports REM_INV_REQ_ERR there);
 *   receive SGE not writable (bad lkey, no LOCAL_WRITE, out of bounds) -> NAK remote operational
 *   error (0x63) and LOC_PROT_ERR for that receive. Nothing is written outside a registered region:
 *   every placement is bounds-checked before the copy.
 */
import { Errno, VerbsError } from '../errors.js';
import {
  Access, IbMtu, QpState, SendFlag, WcOpcode, WcStatus, WrOpcode,
  type AhAttr, type QpAttr, type QpCap, type QpInitAttr, type QpModify, type QpNum, type Qp, type RecvWr, type SendWr,
} from '../types.js';
import { encodeIbPacket, mtuEnumAtMost, RNR_TIMER_MS } from '@smc-r/wire';
import type { SrCq } from './cq.js';
import type { SoftRoceDevice } from './device.js';
import { SrCq as SrCqClass } from './cq.js';
import { SrMr as SrMrClass, type SrMr, type SrPd } from './memory.js';
import { OP, PSN_MASK, copyBytes, headerLength, ipv4FromGid, ipv4ToNumber, psnAdd, psnDiff, type RxPacket } from './packet.js';
import type { TimerRef } from './clock.js';

/** IBA maximum message size. */
const MAX_MSG = 2 ** 31;
const SYN_ACK = 0x1f;
const SYN_NAK_SEQ = 0x60;
const NAK_INVALID_REQUEST = 1;
const NAK_REMOTE_ACCESS = 2;
const NAK_REMOTE_OPERATIONAL = 3;
const TWO32 = 4294967296;

/** IB MTU enum -> bytes. */
export function mtuBytes(mtu: number): number {
  return 128 << mtu;
}

/** Local ACK timeout (IBA 9.7.6.1.3): 4.096 us * 2^timeout in ms; 0 = infinite. */
export function ackTimeoutMs(timeout: number): number {
  return timeout === 0 ? Infinity : (4.096 * 2 ** timeout) / 1000;
}

const RESP_NONE = 0;
const RESP_SEND = 1;
const RESP_WRITE = 2;

class SendSlot {
  wrId = 0;
  opcode = 0;
  flags = 0;
  signaled = false;
  isRead = false;
  numSge = 0;
  readonly mrs: (SrMr | undefined)[];
  /** Offsets inside each MR's buffer (block offset), and lengths. */
  readonly offs: number[];
  readonly lens: number[];
  /** Inline copy of the data (a view into the QP's inline area), when INLINE. */
  inline: Buffer | undefined;
  isInline = false;
  raddrHi = 0;
  raddrLo = 0;
  rkey = 0;
  imm = 0;
  length = 0;
  npkts = 1;
  /** Status the WR fails with when it reaches the head (local error found at post, remote NAK). */
  pendingError = 0;
  firstPsn = 0;
  /** READ: response packets received in order. */
  readRecv = 0;
  /** READ: the response PSN a re-request was last issued for (once per gap). */
  gapPsn = -1;
  /** READ: response index the last (re-)issued request started at. */
  reqStart = 0;

  constructor(maxSge: number) {
    this.mrs = new Array<SrMr | undefined>(maxSge).fill(undefined);
    this.offs = new Array<number>(maxSge).fill(0);
    this.lens = new Array<number>(maxSge).fill(0);
  }
}

class RecvSlot {
  wrId = 0;
  numSge = 0;
  readonly mrs: (SrMr | undefined)[];
  /** Offsets inside each MR (not the block), lengths. */
  readonly offs: number[];
  readonly lens: number[];
  length = 0;

  constructor(maxSge: number) {
    this.mrs = new Array<SrMr | undefined>(maxSge).fill(undefined);
    this.offs = new Array<number>(maxSge).fill(0);
    this.lens = new Array<number>(maxSge).fill(0);
  }
}

class ReadJob {
  /** PSN of the next response packet, its index, the packet count. */
  psn = 0;
  k = 0;
  npkts = 0;
  mr: SrMr | undefined = undefined;
  /** Offset of byte 0 of the READ inside mr.buf, and its length. */
  off = 0;
  length = 0;
}

function bad(verb: 'modify_qp' | 'post_send' | 'post_recv' | 'create_qp', msg: string, errno: number = Errno.EINVAL): VerbsError {
  return new VerbsError(verb, errno, msg);
}

function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

function wcOpcodeOf(op: number): number {
  switch (op) {
    case WrOpcode.RDMA_WRITE:
    case WrOpcode.RDMA_WRITE_WITH_IMM:
      return WcOpcode.RDMA_WRITE;
    case WrOpcode.RDMA_READ:
      return WcOpcode.RDMA_READ;
    default:
      return WcOpcode.SEND;
  }
}

export class SrQp implements Qp {
  readonly qpNum: QpNum;
  readonly device: SoftRoceDevice;
  readonly sendCq: SrCq;
  readonly recvCq: SrCq;
  readonly sqSigAll: boolean;
  readonly cap: QpCap;
  destroyed = false;
  /** For the CQ (SoftCqQp). */
  get gone(): boolean {
    return this.destroyed;
  }
  /** @internal device flush bookkeeping. */
  dirty = false;
  private st: QpState = QpState.RESET;

  // Attributes
  private accessFlags = 0;
  private pathMtu: IbMtu = IbMtu.MTU_1024;
  /** Effective path MTU in bytes: min(pathMtu, the device's MTU cap). */
  mtu = 1024;
  destQpn = 0;
  private rqPsn = 0;
  private minRnrTimer = 0;
  private maxDestRdAtomic = 0;
  /** Peer address (from the RTR address vector) and UDP port. */
  peerIp = '';
  peerIpNum = 0;
  peerPort = 0;
  private sqPsn = 0;
  private timeout = 0;
  private retryCnt = 0;
  private rnrRetry = 0;
  private maxRdAtomic = 0;
  private rtoMs = Infinity;

  // Send queue: monotonically increasing counters, slot = counter % size.
  private readonly sq: SendSlot[];
  private readonly inlineArea: Buffer;
  private sqHead = 0;
  /** WRs in [sqHead, sqStarted) have PSNs. */
  private sqStarted = 0;
  private sqTail = 0;
  /** Transmit cursor: WR counter and packet index inside it. */
  private sqTx = 0;
  private txPkt = 0;
  private nextNewPsn = 0;
  /** Oldest unacknowledged PSN, and the PSN after the highest ever sent. */
  private una = 0;
  private txHighPsn = 0;
  private sinceAckReq = 0;
  private readsOutstanding = 0;
  private retryLeft = 0;
  private rnrLeft = 0;
  private lastProgress = 0;
  private retxTimer: TimerRef | undefined;
  private rnrTimer: TimerRef | undefined;
  private rnrWaiting = false;
  private rnrPsn = 0;

  // Receive queue and responder
  private readonly rq: RecvSlot[];
  private rqHead = 0;
  private rqTail = 0;
  private ePsn = 0;
  private msn = 0;
  private respOp = RESP_NONE;
  /** Bytes placed into the receive at the head during a multi-packet SEND. */
  private recvOff = 0;
  private wMr: SrMr | undefined;
  private wOff = 0;
  private wRemaining = 0;
  private wTotal = 0;
  private nakSent = false;
  private nakSeqPending = false;
  private ackPending = false;
  private unacked = 0;
  private ackTimer: TimerRef | undefined;
  private readonly readJobs: ReadJob[] = [];
  private readHead = 0;
  private readCount = 0;

  private readonly onRetxBound = (): void => this.onRetxTimer();
  private readonly onRnrBound = (): void => this.onRnrTimer();
  private readonly onAckIdleBound = (): void => this.onAckIdle();

  constructor(readonly pd: SrPd, init: QpInitAttr) {
    const ctx = pd.context;
    const dev = ctx.dev;
    this.device = dev;
    if (init === null || typeof init !== 'object' || init.type !== 'RC') throw bad('create_qp', 'only RC QPs are supported');
    if (!(init.sendCq instanceof SrCqClass) || !(init.recvCq instanceof SrCqClass) || init.sendCq.context !== ctx || init.recvCq.context !== ctx || init.sendCq.closed || init.recvCq.closed) {
      throw bad('create_qp', 'send and receive CQs must be live CQs of this context');
    }
    const c = init.cap;
    const a = dev.attr;
    if (c === undefined || !isUint(c.maxSendWr, a.maxQpWr) || !isUint(c.maxRecvWr, a.maxQpWr) || !isUint(c.maxSendSge, a.maxSge) ||
      !isUint(c.maxRecvSge, a.maxRecvSge) || !isUint(c.maxInlineData, a.maxInlineData)) {
      throw bad('create_qp', `capabilities out of range (maxQpWr ${a.maxQpWr}, maxSge ${a.maxSge}, maxInlineData ${a.maxInlineData})`);
    }
    if (ctx.qpCount >= a.maxQp) throw bad('create_qp', 'too many QPs', Errno.ENOMEM);
    this.cap = { maxSendWr: c.maxSendWr, maxRecvWr: c.maxRecvWr, maxSendSge: c.maxSendSge, maxRecvSge: c.maxRecvSge, maxInlineData: c.maxInlineData };
    this.sendCq = init.sendCq;
    this.recvCq = init.recvCq;
    this.sqSigAll = init.sqSigAll === true;
    const sqSize = Math.max(1, c.maxSendWr);
    this.sq = new Array<SendSlot>(sqSize);
    this.inlineArea = Buffer.alloc(sqSize * c.maxInlineData);
    for (let i = 0; i < sqSize; i++) {
      const s = new SendSlot(Math.max(1, c.maxSendSge));
      if (c.maxInlineData > 0) s.inline = this.inlineArea.subarray(i * c.maxInlineData, (i + 1) * c.maxInlineData);
      this.sq[i] = s;
    }
    const rqSize = Math.max(1, c.maxRecvWr);
    this.rq = new Array<RecvSlot>(rqSize);
    for (let i = 0; i < rqSize; i++) this.rq[i] = new RecvSlot(Math.max(1, c.maxRecvSge));
    this.qpNum = dev.addQp(this) as QpNum;
    this.sendCq.qps.add(this);
    this.recvCq.qps.add(this);
    ctx.qpCount++;
  }

  get state(): QpState {
    return this.st;
  }

  // -------------------------------------------------------------------------------------------
  // Verbs

  modify(attr: QpModify): void {
    if (this.destroyed) throw bad('modify_qp', `QP ${this.qpNum} is destroyed`);
    const from = this.st;
    const to = attr?.state;
    const illegal = (): VerbsError => bad('modify_qp', `illegal QP transition ${qpName(from)} -> ${qpName(to)}`);
    switch (to) {
      case QpState.RESET:
        this.reset();
        return;
      case QpState.ERR:
        this.toError();
        return;
      case QpState.INIT: {
        if (from !== QpState.RESET) throw illegal();
        const a = attr as Extract<QpModify, { state: typeof QpState.INIT }>;
        if (a.pkeyIndex !== 0) throw bad('modify_qp', `pkeyIndex ${String(a.pkeyIndex)}: the P_Key table has one entry (0xFFFF at index 0)`);
        if (a.portNum !== 1) throw bad('modify_qp', `portNum ${String(a.portNum)}: softroce devices have port 1 only`);
        if (!isUint(a.accessFlags, 0xff) || (a.accessFlags & ~(Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ)) !== 0) {
          throw bad('modify_qp', `unsupported access flags ${String(a.accessFlags)}`);
        }
        this.accessFlags = a.accessFlags;
        this.st = QpState.INIT;
        return;
      }
      case QpState.RTR: {
        if (from !== QpState.INIT) throw illegal();
        const a = attr as Extract<QpModify, { state: typeof QpState.RTR }>;
        if (!isUint(a.pathMtu, 5) || a.pathMtu < 1) throw bad('modify_qp', `pathMtu ${String(a.pathMtu)} is not an IB MTU (1..5)`);
        if (!isUint(a.destQpNum, 0xffffff)) throw bad('modify_qp', `destQpNum ${String(a.destQpNum)} is not a 24-bit QPN`);
        if (!isUint(a.rqPsn, PSN_MASK)) throw bad('modify_qp', `rqPsn ${String(a.rqPsn)} is not a 24-bit PSN`);
        if (!isUint(a.minRnrTimer, 31)) throw bad('modify_qp', `minRnrTimer ${String(a.minRnrTimer)} is not 0..31`);
        if (!isUint(a.maxDestRdAtomic, this.device.maxQpRdAtom)) throw bad('modify_qp', `maxDestRdAtomic ${String(a.maxDestRdAtomic)} out of range`);
        const ip = this.checkAh(a.ah);
        this.pathMtu = a.pathMtu;
        this.mtu = Math.min(mtuBytes(a.pathMtu), this.device.mtuBytes);
        this.destQpn = a.destQpNum;
        this.rqPsn = a.rqPsn;
        this.minRnrTimer = a.minRnrTimer;
        this.maxDestRdAtomic = a.maxDestRdAtomic;
        this.peerIp = ip;
        this.peerIpNum = ipv4ToNumber(ip);
        this.peerPort = this.device.remotePortFor(ip);
        this.ePsn = a.rqPsn;
        this.msn = 0;
        this.respOp = RESP_NONE;
        this.st = QpState.RTR;
        return;
      }
      case QpState.RTS: {
        if (from !== QpState.RTR) throw illegal();
        const a = attr as Extract<QpModify, { state: typeof QpState.RTS }>;
        if (!isUint(a.sqPsn, PSN_MASK)) throw bad('modify_qp', `sqPsn ${String(a.sqPsn)} is not a 24-bit PSN`);
        if (!isUint(a.timeout, 31)) throw bad('modify_qp', `timeout ${String(a.timeout)} is not 0..31`);
        if (!isUint(a.retryCnt, 7)) throw bad('modify_qp', `retryCnt ${String(a.retryCnt)} is not 0..7`);
        if (!isUint(a.rnrRetry, 7)) throw bad('modify_qp', `rnrRetry ${String(a.rnrRetry)} is not 0..7`);
        if (!isUint(a.maxRdAtomic, this.device.maxQpRdAtom)) throw bad('modify_qp', `maxRdAtomic ${String(a.maxRdAtomic)} out of range`);
        this.sqPsn = a.sqPsn;
        this.timeout = a.timeout;
        this.retryCnt = a.retryCnt;
        this.rnrRetry = a.rnrRetry;
        this.maxRdAtomic = a.maxRdAtomic;
        this.rtoMs = this.device.clampAckTimeout(ackTimeoutMs(a.timeout));
        this.nextNewPsn = a.sqPsn;
        this.una = a.sqPsn;
        this.txHighPsn = a.sqPsn;
        this.retryLeft = a.retryCnt;
        this.rnrLeft = a.rnrRetry;
        this.st = QpState.RTS;
        this.device.markDirty(this);
        return;
      }
      default:
        throw illegal();
    }
  }

  private checkAh(ah: AhAttr | undefined): string {
    if (ah === undefined || ah === null || typeof ah !== 'object') throw bad('modify_qp', 'RTR needs an address vector (ah)');
    if (!((ah.dgid as unknown) instanceof Uint8Array)) throw bad('modify_qp', 'ah.dgid must be 16 bytes');
    const ip = ipv4FromGid(ah.dgid);
    if (ip === undefined) throw bad('modify_qp', 'ah.dgid must be an IPv4-mapped GID (::ffff:a.b.c.d); softroce runs RoCEv2 over IPv4 only');
    if (ah.portNum !== 1) throw bad('modify_qp', `ah.portNum ${String(ah.portNum)}: softroce devices have port 1 only`);
    const g = this.device.gids[ah.sgidIndex];
    if (g === undefined || g.type !== 'RoCEv2' || g.ipv4 === undefined) {
      throw bad('modify_qp', `ah.sgidIndex ${String(ah.sgidIndex)} is not the RoCEv2 IPv4 GID of this device (index ${this.device.rocev2GidIndex})`);
    }
    return ip;
  }

  query(): QpAttr {
    return {
      state: this.st,
      qpNum: this.qpNum,
      destQpNum: this.destQpn,
      pathMtu: mtuEnumAtMost(this.mtu),
      sqPsn: this.sqPsn,
      rqPsn: this.rqPsn,
      timeout: this.timeout,
      retryCnt: this.retryCnt,
      rnrRetry: this.rnrRetry,
      minRnrTimer: this.minRnrTimer,
      accessFlags: this.accessFlags,
      cap: { ...this.cap },
    };
  }

  postSend(wr: SendWr): void {
    if (this.destroyed) throw bad('post_send', `QP ${this.qpNum} is destroyed`);
    const st = this.st;
    if (st !== QpState.RTS && st !== QpState.ERR) throw bad('post_send', `QP ${this.qpNum} is in ${qpName(st)}, post_send needs RTS`);
    const op = wr.opcode;
    if (op !== WrOpcode.SEND && op !== WrOpcode.SEND_WITH_IMM && op !== WrOpcode.RDMA_WRITE && op !== WrOpcode.RDMA_WRITE_WITH_IMM && op !== WrOpcode.RDMA_READ) {
      throw bad('post_send', `unsupported opcode ${String(op)}`);
    }
    const n = wr.numSge;
    if (!Number.isInteger(n) || n < 0 || n > this.cap.maxSendSge || n > wr.sgList.length) throw bad('post_send', `numSge ${String(n)} exceeds maxSendSge ${this.cap.maxSendSge}`);
    if (this.sqTail - this.sqHead >= this.cap.maxSendWr) throw bad('post_send', 'send queue is full', Errno.ENOMEM);
    const flags = wr.flags | 0;
    const isInline = (flags & SendFlag.INLINE) !== 0;
    const slot = this.sq[this.sqTail % this.sq.length]!;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const len = wr.sgList[i]!.length;
      if (!Number.isInteger(len) || len < 0) throw bad('post_send', `sgList[${i}].length ${String(len)} is not a byte count`);
      total += len;
    }
    if (isInline) {
      if (op === WrOpcode.RDMA_READ) throw bad('post_send', 'INLINE is not allowed with RDMA_READ');
      if (total > this.cap.maxInlineData) throw bad('post_send', `inline data of ${total} bytes exceeds maxInlineData ${this.cap.maxInlineData}`);
    }
    let pendingError = 0;
    if (isInline) {
      // Inline data is copied now; the caller may reuse its buffers at once. No lkey check (libibverbs).
      let p = 0;
      for (let i = 0; i < n; i++) {
        const sge = wr.sgList[i]!;
        const mr: unknown = sge.mr;
        const len = sge.length;
        if (len === 0) continue;
        if (!(mr instanceof SrMrClass) || !Number.isInteger(sge.offset) || sge.offset < 0 || sge.offset + len > mr.length) {
          throw bad('post_send', `sgList[${i}] is outside its memory region`);
        }
        const src = mr.offset + sge.offset;
        copyBytes(mr.buf, src, slot.inline!, p, len);
        p += len;
      }
      slot.isInline = true;
      slot.numSge = 0;
    } else {
      slot.isInline = false;
      slot.numSge = n;
      const needWrite = op === WrOpcode.RDMA_READ;
      for (let i = 0; i < n; i++) {
        const sge = wr.sgList[i]!;
        const mr = sge.mr as SrMr | undefined;
        slot.mrs[i] = mr;
        slot.lens[i] = sge.length;
        if (!this.localSgeOk(mr, sge.offset, sge.length, needWrite)) {
          pendingError = WcStatus.LOC_PROT_ERR;
          slot.offs[i] = 0;
        } else {
          slot.offs[i] = mr!.offset + sge.offset;
        }
      }
    }
    if (total > MAX_MSG) pendingError = WcStatus.LOC_LEN_ERR;
    slot.wrId = wr.wrId;
    slot.opcode = op;
    slot.flags = flags;
    slot.signaled = this.sqSigAll || (flags & SendFlag.SIGNALED) !== 0;
    slot.isRead = op === WrOpcode.RDMA_READ;
    slot.raddrHi = wr.raddrHi >>> 0;
    slot.raddrLo = wr.raddrLo >>> 0;
    slot.rkey = wr.rkey >>> 0;
    slot.imm = wr.immData >>> 0;
    slot.length = total;
    slot.pendingError = pendingError;
    slot.readRecv = 0;
    slot.gapPsn = -1;
    slot.npkts = total === 0 ? 1 : Math.ceil(total / this.mtu);
    if (st === QpState.ERR) {
      // Accepted and flushed at once, as hardware does in the error state.
      this.sendCq.push(this.qpNum, wr.wrId, WcStatus.WR_FLUSH_ERR, wcOpcodeOf(op), total, 0, false, false);
      return;
    }
    this.sqTail++;
    this.device.markDirty(this);
  }

  private localSgeOk(mr: SrMr | undefined, offset: number, length: number, needWrite: boolean): boolean {
    if (!(mr instanceof SrMrClass)) return false;
    if (mr.closed || mr.pd !== this.pd) return false;
    if (!Number.isInteger(offset) || offset < 0 || offset + length > mr.length) return false;
    if (needWrite && (mr.access & Access.LOCAL_WRITE) === 0 && length > 0) return false;
    return true;
  }

  postRecv(wr: RecvWr): void {
    if (this.destroyed) throw bad('post_recv', `QP ${this.qpNum} is destroyed`);
    const st = this.st;
    if (st === QpState.RESET) throw bad('post_recv', `QP ${this.qpNum} is in RESET, post_recv needs INIT or later`);
    const n = wr.numSge;
    if (!Number.isInteger(n) || n < 0 || n > this.cap.maxRecvSge || n > wr.sgList.length) throw bad('post_recv', `numSge ${String(n)} exceeds maxRecvSge ${this.cap.maxRecvSge}`);
    if (this.rqTail - this.rqHead >= this.cap.maxRecvWr) throw bad('post_recv', 'receive queue is full', Errno.ENOMEM);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const len = wr.sgList[i]!.length;
      if (!Number.isInteger(len) || len < 0) throw bad('post_recv', `sgList[${i}].length ${String(len)} is not a byte count`);
      total += len;
    }
    if (st === QpState.ERR) {
      this.recvCq.push(this.qpNum, wr.wrId, WcStatus.WR_FLUSH_ERR, WcOpcode.RECV, 0, 0, false, false);
      return;
    }
    const slot = this.rq[this.rqTail % this.rq.length]!;
    slot.wrId = wr.wrId;
    slot.numSge = n;
    slot.length = total;
    for (let i = 0; i < n; i++) {
      const sge = wr.sgList[i]!;
      slot.mrs[i] = sge.mr as SrMr;
      slot.offs[i] = sge.offset;
      slot.lens[i] = sge.length;
    }
    this.rqTail++;
  }

  /** Destroys the QP: outstanding WRs are dropped without completions (ibv_destroy_qp). Idempotent. */
  close(): void {
    if (this.destroyed) return;
    this.stopTimers();
    this.destroyed = true;
    this.st = QpState.RESET;
    this.sqHead = this.sqStarted = this.sqTail = this.sqTx = 0;
    this.rqHead = this.rqTail = 0;
    this.readHead = this.readCount = 0;
    this.device.removeQp(this);
    this.pd.qps.delete(this);
    this.sendCq.qps.delete(this);
    this.recvCq.qps.delete(this);
    this.pd.context.qpCount--;
  }

  // -------------------------------------------------------------------------------------------
  // State changes

  private reset(): void {
    this.stopTimers();
    this.st = QpState.RESET;
    this.sqHead = this.sqStarted = this.sqTail = this.sqTx = 0;
    this.txPkt = 0;
    this.rqHead = this.rqTail = 0;
    this.readHead = this.readCount = 0;
    this.readsOutstanding = 0;
    this.rnrWaiting = false;
    this.respOp = RESP_NONE;
    this.nakSent = this.nakSeqPending = this.ackPending = false;
    this.unacked = 0;
    this.accessFlags = 0;
    this.peerIp = '';
  }

  /** Moves the QP to ERR and flushes every outstanding WR with WR_FLUSH_ERR. Idempotent. */
  toError(): void {
    if (this.st === QpState.ERR || this.destroyed) return;
    this.st = QpState.ERR;
    this.stopTimers();
    this.rnrWaiting = false;
    this.readHead = this.readCount = 0;
    this.nakSeqPending = this.ackPending = false;
    while (this.sqHead < this.sqTail) {
      const w = this.sq[this.sqHead % this.sq.length]!;
      this.sqHead++;
      this.sendCq.push(this.qpNum, w.wrId, WcStatus.WR_FLUSH_ERR, wcOpcodeOf(w.opcode), w.length, 0, false, false);
    }
    this.sqStarted = this.sqTx = this.sqTail;
    this.txPkt = 0;
    this.readsOutstanding = 0;
    while (this.rqHead < this.rqTail) {
      const r = this.rq[this.rqHead % this.rq.length]!;
      this.rqHead++;
      this.recvCq.push(this.qpNum, r.wrId, WcStatus.WR_FLUSH_ERR, WcOpcode.RECV, 0, 0, false, false);
    }
  }

  private stopTimers(): void {
    const clock = this.device.clock;
    if (this.retxTimer !== undefined) clock.clearTimer(this.retxTimer);
    if (this.rnrTimer !== undefined) clock.clearTimer(this.rnrTimer);
    if (this.ackTimer !== undefined) clock.clearTimer(this.ackTimer);
    this.retxTimer = this.rnrTimer = this.ackTimer = undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Device entry points

  /** @internal A packet addressed to this QP (ICRC, P_Key and parse already checked). */
  receive(rx: RxPacket, buf: Buffer, srcIp: string): void {
    const st = this.st;
    const op = rx.opcode;
    const isResponse = op >= OP.READ_RESP_FIRST && op <= 0x12;
    if (isResponse ? st !== QpState.RTS : st !== QpState.RTR && st !== QpState.RTS) {
      this.device.stats.dropQpState++;
      return;
    }
    if (srcIp !== this.peerIp) {
      this.device.stats.dropWrongSource++;
      return;
    }
    if (isResponse) this.onResponse(rx, buf);
    else this.onRequest(rx, buf);
  }

  /** @internal End of the event-loop turn: send what is pending (ACKs, read responses, requests). */
  flush(): void {
    const st = this.st;
    if (st !== QpState.RTR && st !== QpState.RTS) return;
    this.flushResponder();
    if (this.st === QpState.RTS) this.transmit();
  }

  // -------------------------------------------------------------------------------------------
  // Requester: transmission

  private slot(i: number): SendSlot {
    return this.sq[i % this.sq.length]!;
  }

  private transmit(): void {
    if (this.rnrWaiting) return;
    const opts = this.device.opts;
    const max = opts.maxInflightPackets;
    const maxReads = this.maxRdAtomic > 0 ? this.maxRdAtomic : 1;
    for (;;) {
      let w: SendSlot;
      if (this.sqTx < this.sqStarted) {
        w = this.slot(this.sqTx);
        if (w.pendingError !== 0) break;
      } else {
        if (this.sqStarted >= this.sqTail) break;
        w = this.slot(this.sqStarted);
        if (w.pendingError !== 0) {
          this.checkHead();
          break;
        }
        if (w.isRead && this.readsOutstanding >= maxReads) break;
        if ((w.flags & SendFlag.FENCE) !== 0 && this.readsOutstanding > 0) break;
        const inflight0 = psnDiff(this.nextNewPsn, this.una);
        if (inflight0 > 0 && inflight0 + (w.isRead ? w.npkts : 1) > max) break;
        w.firstPsn = this.nextNewPsn;
        this.nextNewPsn = psnAdd(this.nextNewPsn, w.npkts);
        w.readRecv = 0;
        w.gapPsn = -1;
        w.reqStart = 0;
        if (w.isRead) this.readsOutstanding++;
        this.sqTx = this.sqStarted;
        this.sqStarted++;
        this.txPkt = 0;
      }
      const k = this.txPkt;
      const psn = psnAdd(w.firstPsn, k);
      const cost = w.isRead ? w.npkts - k : 1;
      const inflight = psnDiff(psn, this.una);
      if (inflight > 0 && inflight + cost > max) break;
      if (psnDiff(this.txHighPsn, this.una) <= 0) this.lastProgress = this.device.clock.now();
      const last = w.isRead || k === w.npkts - 1;
      let ackReq = last || inflight + cost >= max;
      if (!ackReq && ++this.sinceAckReq >= opts.ackReqInterval) ackReq = true;
      if (ackReq) this.sinceAckReq = 0;
      if (psnDiff(psn, this.txHighPsn) < 0) this.device.stats.retransmissions++;
      const end = psnAdd(psn, cost);
      if (psnDiff(end, this.txHighPsn) > 0) this.txHighPsn = end;
      this.sendRequest(w, k, psn, ackReq);
      if (w.isRead || k + 1 === w.npkts) {
        this.sqTx++;
        this.txPkt = 0;
      } else {
        this.txPkt = k + 1;
      }
      if (this.st !== QpState.RTS) return;
    }
    if (this.sqHead < this.sqStarted) this.armRetx(this.rtoMs);
  }

  private sendRequest(w: SendSlot, k: number, psn: number, ackReq: boolean): void {
    const dev = this.device;
    const t = dev.tpl;
    const buf = dev.txBuf;
    const mtu = this.mtu;
    const last = k === w.npkts - 1;
    const first = k === 0;
    let op: number;
    let se = false;
    let payLen = 0;
    const start = k * mtu;
    switch (w.opcode) {
      case WrOpcode.SEND:
        op = first ? (last ? OP.SEND_ONLY : OP.SEND_FIRST) : last ? OP.SEND_LAST : OP.SEND_MIDDLE;
        se = last && (dev.opts.solicitAllSends || (w.flags & SendFlag.SOLICITED) !== 0);
        break;
      case WrOpcode.SEND_WITH_IMM:
        op = first ? (last ? OP.SEND_ONLY_IMM : OP.SEND_FIRST) : last ? OP.SEND_LAST_IMM : OP.SEND_MIDDLE;
        se = last && (dev.opts.solicitAllSends || (w.flags & SendFlag.SOLICITED) !== 0);
        break;
      case WrOpcode.RDMA_WRITE:
        op = first ? (last ? OP.WRITE_ONLY : OP.WRITE_FIRST) : last ? OP.WRITE_LAST : OP.WRITE_MIDDLE;
        break;
      case WrOpcode.RDMA_WRITE_WITH_IMM:
        op = first ? (last ? OP.WRITE_ONLY_IMM : OP.WRITE_FIRST) : last ? OP.WRITE_LAST_IMM : OP.WRITE_MIDDLE;
        se = last && (w.flags & SendFlag.SOLICITED) !== 0;
        break;
      default:
        op = OP.READ_REQUEST;
        break;
    }
    if (op !== OP.READ_REQUEST) payLen = last ? w.length - start : mtu;
    else w.reqStart = k;
    const tpl = t.forOpcode(op);
    const bth = t.bth;
    bth.opcode = op;
    bth.se = se;
    bth.padCnt = -payLen & 3;
    bth.destQp = this.destQpn;
    bth.ackReq = ackReq;
    bth.psn = psn;
    const hasReth = tpl.reth !== undefined;
    if (hasReth) {
      t.reth.rkey = w.rkey;
      t.reth.dmaLength = op === OP.READ_REQUEST ? w.length - start : w.length;
    }
    if (tpl.immDt !== undefined) tpl.immDt = w.imm;
    if (payLen === 0) {
      tpl.payload = undefined;
      tpl.payloadOffset = 0;
      tpl.payloadLength = 0;
    } else if (w.isInline) {
      tpl.payload = w.inline;
      tpl.payloadOffset = start;
      tpl.payloadLength = payLen;
    } else if (w.numSge === 1) {
      tpl.payload = w.mrs[0]!.buf;
      tpl.payloadOffset = w.offs[0]! + start;
      tpl.payloadLength = payLen;
    } else {
      const at = headerLength(op);
      this.gather(w, start, payLen, buf, at);
      tpl.payload = buf;
      tpl.payloadOffset = at;
      tpl.payloadLength = payLen;
    }
    const len = encodeIbPacket(tpl, buf, 0);
    if (hasReth) {
      // RETH VA (bytes 12..19): the WR's remote address, plus the bytes already read for a re-issued READ.
      const lo = w.raddrLo + (op === OP.READ_REQUEST ? start : 0);
      buf.writeUInt32BE((w.raddrHi + Math.floor(lo / TWO32)) >>> 0, 12);
      buf.writeUInt32BE(lo >>> 0, 16);
    }
    dev.transmit(this, len);
  }

  /** Copies `len` bytes of the WR's gather list starting at message offset `from` into `dst[at..]`. */
  private gather(w: SendSlot, from: number, len: number, dst: Buffer, at: number): void {
    let skip = from;
    let left = len;
    for (let i = 0; i < w.numSge && left > 0; i++) {
      const l = w.lens[i]!;
      if (skip >= l) {
        skip -= l;
        continue;
      }
      const n = Math.min(l - skip, left);
      const src = w.offs[i]! + skip;
      copyBytes(w.mrs[i]!.buf, src, dst, at, n);
      at += n;
      left -= n;
      skip = 0;
    }
  }

  private armRetx(ms: number): void {
    if (this.retxTimer !== undefined || ms === Infinity) return;
    this.retxTimer = this.device.clock.setTimer(this.onRetxBound, ms);
  }

  private onRetxTimer(): void {
    this.retxTimer = undefined;
    if (this.st !== QpState.RTS || this.rnrWaiting || this.sqHead >= this.sqStarted) return;
    const idle = this.device.clock.now() - this.lastProgress;
    if (idle < this.rtoMs - 0.001) {
      this.armRetx(this.rtoMs - idle);
      return;
    }
    this.device.stats.timeouts++;
    if (!(this.retryCnt === 7 && this.device.opts.infiniteRetry7)) {
      if (this.retryLeft === 0) {
        this.failWr(this.sqHead, WcStatus.RETRY_EXC_ERR);
        return;
      }
      this.retryLeft--;
    }
    this.rewind(this.una);
    this.lastProgress = this.device.clock.now();
    this.device.markDirty(this);
  }

  private onRnrTimer(): void {
    this.rnrTimer = undefined;
    if (this.st !== QpState.RTS || !this.rnrWaiting) return;
    this.rnrWaiting = false;
    if (psnDiff(this.rnrPsn, this.una) >= 0) this.rewind(this.rnrPsn);
    else this.rewind(this.una);
    this.lastProgress = this.device.clock.now();
    this.device.markDirty(this);
  }

  /** Moves the transmit cursor to `psn` (go-back-N). */
  private rewind(psn: number): void {
    for (let i = this.sqHead; i < this.sqStarted; i++) {
      const w = this.slot(i);
      const d = psnDiff(psn, w.firstPsn);
      if (d >= 0 && d < w.npkts) {
        this.sqTx = i;
        this.txPkt = w.isRead && d < w.readRecv ? w.readRecv : d;
        return;
      }
    }
    this.sqTx = this.sqStarted;
    this.txPkt = 0;
  }

  private cursorPsn(): number {
    return this.sqTx < this.sqStarted ? psnAdd(this.slot(this.sqTx).firstPsn, this.txPkt) : this.nextNewPsn;
  }

  // -------------------------------------------------------------------------------------------
  // Requester: responses

  private onResponse(rx: RxPacket, buf: Buffer): void {
    const op = rx.opcode;
    const stats = this.device.stats;
    if (op === OP.ACK) {
      const kind = (rx.syndrome >> 5) & 3;
      const p = rx.psn;
      const du = psnDiff(p, this.una);
      const dh = psnDiff(p, this.txHighPsn);
      if (kind === 0) {
        stats.acksReceived++;
        if (du < -1 || dh >= 0) {
          stats.dropPsnOutOfWindow++;
          return;
        }
        this.ackUpTo(p);
        return;
      }
      if (kind === 2) {
        stats.dropMalformed++;
        return;
      }
      if (kind === 1) stats.rnrNaksReceived++;
      else stats.naksReceived++;
      if (du < 0 || dh >= 0) {
        stats.dropPsnOutOfWindow++;
        return;
      }
      this.ackUpTo(psnAdd(p, PSN_MASK));
      if (this.st !== QpState.RTS) return;
      if (kind === 1) {
        this.onRnrNak(p, rx.syndrome & 0x1f);
        return;
      }
      const code = rx.syndrome & 0x1f;
      if (code === 0) {
        // PSN sequence error: the responder expects p; everything before is acknowledged.
        if (this.rnrWaiting) return;
        this.rewind(p);
        this.device.markDirty(this);
        return;
      }
      const status = code === NAK_INVALID_REQUEST ? WcStatus.REM_INV_REQ_ERR
        : code === NAK_REMOTE_ACCESS ? WcStatus.REM_ACCESS_ERR
          : code === NAK_REMOTE_OPERATIONAL ? WcStatus.REM_OP_ERR
            : code === 4 ? WcStatus.REM_INV_RD_REQ_ERR : -1;
      if (status < 0) {
        stats.dropMalformed++;
        return;
      }
      this.failAtPsn(p, status);
      return;
    }
    if (op >= OP.READ_RESP_FIRST && op <= OP.READ_RESP_ONLY) {
      this.onReadResponse(rx, buf);
      return;
    }
    stats.dropMalformed++; // ATOMIC ACKNOWLEDGE: we never ask for one
  }

  private onRnrNak(p: number, timerCode: number): void {
    if (this.rnrRetry !== 7) {
      if (this.rnrLeft === 0) {
        this.failAtPsn(p, WcStatus.RNR_RETRY_EXC_ERR);
        return;
      }
      this.rnrLeft--;
    }
    this.rnrWaiting = true;
    this.rnrPsn = p;
    this.rewind(p);
    if (this.rnrTimer !== undefined) this.device.clock.clearTimer(this.rnrTimer);
    this.rnrTimer = this.device.clock.setTimer(this.onRnrBound, this.device.clampRnrDelay(RNR_TIMER_MS[timerCode] ?? 655.36));
  }

  /** Acknowledges every PSN up to and including `p`. */
  private ackUpTo(p: number): void {
    let target = psnAdd(p, 1);
    if (psnDiff(target, this.una) <= 0) return;
    while (this.sqHead < this.sqStarted) {
      const w = this.slot(this.sqHead);
      if (w.isRead) {
        const readUna = psnAdd(w.firstPsn, w.readRecv);
        if (psnDiff(target, readUna) > 0) {
          // The responder is past this READ, but responses are missing: ask again (once per gap).
          target = readUna;
          if (w.gapPsn !== readUna) {
            w.gapPsn = readUna;
            this.rewind(readUna);
            this.device.markDirty(this);
          }
        }
        break;
      }
      const end = psnAdd(w.firstPsn, w.npkts);
      if (psnDiff(target, end) >= 0) {
        this.completeWr(w, WcStatus.SUCCESS);
        this.sqHead++;
        continue;
      }
      break;
    }
    if (psnDiff(target, this.una) > 0) {
      this.una = target;
      this.progress();
    }
    if (this.sqTx < this.sqHead || psnDiff(this.cursorPsn(), this.una) < 0) this.rewind(this.una);
    this.checkHead();
    this.device.markDirty(this);
  }

  private progress(): void {
    this.lastProgress = this.device.clock.now();
    this.retryLeft = this.retryCnt;
    this.rnrLeft = this.rnrRetry;
  }

  private onReadResponse(rx: RxPacket, buf: Buffer): void {
    const stats = this.device.stats;
    const p = rx.psn;
    const du = psnDiff(p, this.una);
    if (du < 0) {
      stats.duplicates++;
      return;
    }
    if (psnDiff(p, this.txHighPsn) >= 0) {
      stats.dropPsnOutOfWindow++;
      return;
    }
    // A response implicitly acknowledges the requests before it.
    this.ackUpTo(psnAdd(p, PSN_MASK));
    if (this.st !== QpState.RTS) return;
    if (this.sqHead >= this.sqStarted) {
      stats.dropPsnOutOfWindow++;
      return;
    }
    const w = this.slot(this.sqHead);
    const k = psnDiff(p, w.firstPsn);
    if (!w.isRead || k < 0 || k >= w.npkts) {
      stats.dropPsnOutOfWindow++;
      return;
    }
    if (k !== w.readRecv) {
      // After a gap (already handled by ackUpTo, which re-issued the READ) or a duplicate.
      if (k < w.readRecv) stats.duplicates++;
      else stats.dropOutOfSequence++;
      return;
    }
    const npk = w.npkts;
    const lastPkt = k === npk - 1;
    const op = rx.opcode;
    // Opcode as numbered in the whole READ, or in the re-issued part of it (the responder treats a
    // re-issued READ as a new one: FIRST .. LAST or ONLY).
    const want = npk === 1 ? OP.READ_RESP_ONLY : k === 0 ? OP.READ_RESP_FIRST : lastPkt ? OP.READ_RESP_LAST : OP.READ_RESP_MIDDLE;
    const subN = npk - w.reqStart;
    const subK = k - w.reqStart;
    const wantSub = subK < 0 ? -1 : subN === 1 ? OP.READ_RESP_ONLY : subK === 0 ? OP.READ_RESP_FIRST : lastPkt ? OP.READ_RESP_LAST : OP.READ_RESP_MIDDLE;
    const mtu = this.mtu;
    const expLen = lastPkt ? w.length - k * mtu : mtu;
    if ((op !== want && op !== wantSub) || rx.payloadLen !== expLen || (rx.hasAeth && (rx.syndrome >> 5) !== 0)) {
      stats.dropMalformed++;
      return;
    }
    if (expLen > 0) this.scatterRead(w, k * mtu, buf, rx.payloadOff, expLen);
    w.readRecv = k + 1;
    this.una = psnAdd(p, 1);
    this.progress();
    if (w.readRecv === npk) {
      this.completeWr(w, WcStatus.SUCCESS);
      this.sqHead++;
      if (this.sqTx < this.sqHead) this.rewind(this.una);
      this.checkHead();
    }
    this.device.markDirty(this);
  }

  /** Places READ response bytes at message offset `at` into the WR's (already validated) scatter list. */
  private scatterRead(w: SendSlot, at: number, src: Buffer, srcOff: number, len: number): void {
    let skip = at;
    let left = len;
    for (let i = 0; i < w.numSge && left > 0; i++) {
      const l = w.lens[i]!;
      if (skip >= l) {
        skip -= l;
        continue;
      }
      const n = Math.min(l - skip, left);
      copyBytes(src, srcOff, w.mrs[i]!.buf, w.offs[i]! + skip, n);
      srcOff += n;
      left -= n;
      skip = 0;
    }
  }

  private completeWr(w: SendSlot, status: number): void {
    if (w.isRead && this.readsOutstanding > 0) this.readsOutstanding--;
    if (status !== WcStatus.SUCCESS || w.signaled) {
      this.sendCq.push(this.qpNum, w.wrId, status, wcOpcodeOf(w.opcode), w.length, 0, false, false);
    }
  }

  /** The WR holding PSN `p` failed remotely: it completes with `status` when it reaches the head. */
  private failAtPsn(p: number, status: number): void {
    for (let i = this.sqHead; i < this.sqStarted; i++) {
      const w = this.slot(i);
      const d = psnDiff(p, w.firstPsn);
      if (d >= 0 && d < w.npkts) {
        w.pendingError = status;
        if (this.sqTx > i || (this.sqTx === i && this.txPkt > 0)) {
          this.sqTx = i;
          this.txPkt = 0;
        }
        this.checkHead();
        return;
      }
    }
    // Not ours (cannot happen after the window check): fail the head.
    this.failWr(this.sqHead, status);
  }

  /** Completes WR `i` (the head) with an error status, then moves the QP to ERR. */
  private failWr(i: number, status: number): void {
    if (i < this.sqTail) {
      const w = this.slot(i);
      this.completeWr(w, status);
      this.sqHead = i + 1;
      if (this.sqStarted < this.sqHead) this.sqStarted = this.sqHead;
    }
    this.toError();
  }

  /** A WR at the head that must fail (local error found at post, remote NAK) fails now. */
  private checkHead(): void {
    if (this.st !== QpState.RTS || this.sqHead >= this.sqTail) return;
    const w = this.slot(this.sqHead);
    if (w.pendingError !== 0) this.failWr(this.sqHead, w.pendingError);
  }

  // -------------------------------------------------------------------------------------------
  // Responder

  private onRequest(rx: RxPacket, buf: Buffer): void {
    const stats = this.device.stats;
    const d = psnDiff(rx.psn, this.ePsn);
    if (d > 0) {
      stats.dropOutOfSequence++;
      if (!this.nakSent) {
        this.nakSent = true;
        this.nakSeqPending = true;
        this.device.markDirty(this);
      }
      return;
    }
    if (d < 0) {
      stats.duplicates++;
      this.onDuplicate(rx);
      return;
    }
    this.nakSent = false;
    this.execute(rx, buf);
  }

  private execute(rx: RxPacket, buf: Buffer): void {
    const op = rx.opcode;
    if (rx.unsupported || op > OP.READ_REQUEST) {
      this.classC(rx.psn, NAK_INVALID_REQUEST, 0);
      return;
    }
    const isSend = op <= OP.SEND_ONLY_IMM;
    const isWrite = op >= OP.WRITE_FIRST && op <= OP.WRITE_ONLY_IMM;
    const isRead = op === OP.READ_REQUEST;
    let first: boolean;
    let last: boolean;
    switch (op) {
      case OP.SEND_FIRST: case OP.WRITE_FIRST: first = true; last = false; break;
      case OP.SEND_MIDDLE: case OP.WRITE_MIDDLE: first = false; last = false; break;
      case OP.SEND_LAST: case OP.SEND_LAST_IMM: case OP.WRITE_LAST: case OP.WRITE_LAST_IMM: first = false; last = true; break;
      default: first = true; last = true; break;
    }
    // Opcode sequence (IBA 9.7.5.1.2; rxe check_op_seq): a message in progress must continue.
    if (this.respOp === RESP_SEND ? !(isSend && !first) : this.respOp === RESP_WRITE ? !(isWrite && !first) : !first) {
      this.classC(rx.psn, NAK_INVALID_REQUEST, 0);
      return;
    }
    // QP access flags (rxe check_op_valid: an operation the QP does not allow is an invalid request).
    if ((isWrite && (this.accessFlags & Access.REMOTE_WRITE) === 0) || (isRead && (this.accessFlags & Access.REMOTE_READ) === 0)) {
      this.classC(rx.psn, NAK_INVALID_REQUEST, 0);
      return;
    }
    const pl = rx.payloadLen;
    const mtu = this.mtu;
    if (pl > mtu || (!last && pl !== mtu) || (last && !first && pl === 0)) {
      this.classC(rx.psn, NAK_INVALID_REQUEST, 0);
      return;
    }
    if (isSend) this.execSend(rx, buf, first, last);
    else if (isWrite) this.execWrite(rx, buf, first, last);
    else this.execRead(rx);
  }

  private execSend(rx: RxPacket, buf: Buffer, first: boolean, last: boolean): void {
    if (first) {
      if (this.rqHead >= this.rqTail) {
        this.rnrNak(rx.psn);
        return;
      }
      this.recvOff = 0;
    }
    const r = this.rq[this.rqHead % this.rq.length]!;
    const pl = rx.payloadLen;
    if (pl > 0) {
      const err = this.scatterRecv(r, this.recvOff, buf, rx.payloadOff, pl);
      if (err !== 0) {
        this.classC(rx.psn, err === WcStatus.LOC_LEN_ERR ? NAK_INVALID_REQUEST : NAK_REMOTE_OPERATIONAL, err);
        return;
      }
      this.recvOff += pl;
    }
    this.respOp = last ? RESP_NONE : RESP_SEND;
    this.accept(rx);
    if (last) {
      this.msn = (this.msn + 1) & PSN_MASK;
      this.rqHead++;
      this.recvCq.push(this.qpNum, r.wrId, WcStatus.SUCCESS, WcOpcode.RECV, this.recvOff, rx.hasImm ? rx.imm : 0, rx.hasImm, rx.se);
    }
  }

  private execWrite(rx: RxPacket, buf: Buffer, first: boolean, last: boolean): void {
    if (first) {
      const len = rx.dmaLen;
      if (len > MAX_MSG) {
        this.classC(rx.psn, NAK_INVALID_REQUEST, 0);
        return;
      }
      if (len > 0) {
        const table = this.pd.context.mrTable;
        const mr = table.resolve(this.pd, rx.rkey, rx.vaHi, rx.vaLo, len, Access.REMOTE_WRITE);
        if (mr === undefined) {
          this.classC(rx.psn, NAK_REMOTE_ACCESS, 0);
          return;
        }
        this.wMr = mr;
        this.wOff = table.offset;
      } else {
        this.wMr = undefined;
        this.wOff = 0;
      }
      this.wRemaining = len;
      this.wTotal = len;
    }
    const pl = rx.payloadLen;
    // rxe check_rkey: while more than an MTU remains, packets are exactly MTU-sized and not last;
    // the last one carries exactly what remains.
    if (this.wRemaining > this.mtu ? last || pl !== this.mtu : !last || pl !== this.wRemaining) {
      this.classC(rx.psn, NAK_INVALID_REQUEST, 0);
      return;
    }
    const withImm = rx.hasImm;
    if (withImm && this.rqHead >= this.rqTail) {
      this.rnrNak(rx.psn);
      return;
    }
    if (pl > 0) {
      const mr = this.wMr!;
      copyBytes(buf, rx.payloadOff, mr.buf, this.wOff, pl);
      this.wOff += pl;
      this.wRemaining -= pl;
    }
    this.respOp = last ? RESP_NONE : RESP_WRITE;
    this.accept(rx);
    if (last) {
      this.msn = (this.msn + 1) & PSN_MASK;
      if (withImm) {
        const r = this.rq[this.rqHead % this.rq.length]!;
        this.rqHead++;
        this.recvCq.push(this.qpNum, r.wrId, WcStatus.SUCCESS, WcOpcode.RECV_RDMA_WITH_IMM, this.wTotal, rx.imm, true, rx.se);
      }
    }
  }

  private execRead(rx: RxPacket): void {
    const job = this.readJob(rx);
    if (job === undefined) return;
    // IBA C9-148 (rxe): the MSN counts the READ when it is accepted.
    this.msn = (this.msn + 1) & PSN_MASK;
    this.ePsn = psnAdd(rx.psn, job.npkts);
    this.device.markDirty(this);
  }

  /** Validates a READ request and queues its responses; undefined after a class C error. */
  private readJob(rx: RxPacket, duplicate = false): ReadJob | undefined {
    const len = rx.dmaLen;
    let mr: SrMr | undefined;
    let off = 0;
    if (len > MAX_MSG) {
      if (!duplicate) this.classC(rx.psn, NAK_INVALID_REQUEST, 0);
      return undefined;
    }
    if (len > 0) {
      const table = this.pd.context.mrTable;
      mr = table.resolve(this.pd, rx.rkey, rx.vaHi, rx.vaLo, len, Access.REMOTE_READ);
      if (mr === undefined) {
        if (!duplicate) this.classC(rx.psn, NAK_REMOTE_ACCESS, 0);
        return undefined;
      }
      off = table.offset;
    }
    if (this.readCount === this.readJobs.length) this.growReadJobs();
    const job = this.readJobs[(this.readHead + this.readCount) % this.readJobs.length]!;
    this.readCount++;
    job.psn = rx.psn;
    job.k = 0;
    job.npkts = len === 0 ? 1 : Math.ceil(len / this.mtu);
    job.mr = mr;
    job.off = off;
    job.length = len;
    return job;
  }

  private growReadJobs(): void {
    // Rare: more READs queued than ever before on this QP (bounded by the requester's window).
    const old = this.readJobs.splice(0, this.readJobs.length);
    const ordered: ReadJob[] = [];
    for (let i = 0; i < this.readCount; i++) ordered.push(old[(this.readHead + i) % old.length]!);
    const size = Math.max(4, old.length * 2);
    for (let i = 0; i < size; i++) this.readJobs.push(ordered[i] ?? new ReadJob());
    this.readHead = 0;
  }

  private onDuplicate(rx: RxPacket): void {
    if (rx.opcode === OP.READ_REQUEST && !rx.unsupported) {
      // Re-execute (IBA 9.7.5.1.1; rxe replays the READ): drop queued responses from this PSN on.
      let keep = 0;
      while (keep < this.readCount) {
        const j = this.readJobs[(this.readHead + keep) % this.readJobs.length]!;
        if (psnDiff(psnAdd(j.psn, j.npkts), rx.psn) > 0) break;
        keep++;
      }
      this.readCount = keep;
      if ((this.accessFlags & Access.REMOTE_READ) === 0) return;
      if (this.readJob(rx, true) !== undefined) this.device.markDirty(this);
      return;
    }
    // SEND / WRITE: acknowledge again (C9-105), coalesced.
    this.ackPending = true;
    this.device.markDirty(this);
  }

  /** Bookkeeping after executing a request packet with the expected PSN. */
  private accept(rx: RxPacket): void {
    this.ePsn = psnAdd(this.ePsn, 1);
    this.unacked++;
    if (rx.ackReq || this.unacked >= this.device.opts.ackCoalesce) {
      if (!this.ackPending) {
        this.ackPending = true;
        this.device.markDirty(this);
      }
    } else if (this.ackTimer === undefined) {
      this.ackTimer = this.device.clock.setTimer(this.onAckIdleBound, this.device.opts.ackIdleMs);
    }
  }

  private onAckIdle(): void {
    this.ackTimer = undefined;
    if (this.unacked > 0 && (this.st === QpState.RTR || this.st === QpState.RTS)) {
      this.ackPending = true;
      this.device.markDirty(this);
    }
  }

  private rnrNak(psn: number): void {
    this.device.stats.rnrNaksSent++;
    this.nakSent = true; // no PSN-sequence NAKs for the packets that follow the refused one
    this.ackPending = false;
    this.unacked = 0;
    this.sendAck(0x20 | this.minRnrTimer, psn);
  }

  /**
   * Class C error (rxe do_class_ac_error): NAK with `code`, complete the receive in progress with
   * `recvStatus` (when non-zero), and move the QP to ERR.
   */
  private classC(psn: number, code: number, recvStatus: number): void {
    this.device.stats.naksSent++;
    this.sendAck(SYN_NAK_SEQ | code, psn);
    if (recvStatus !== 0 && this.rqHead < this.rqTail) {
      const r = this.rq[this.rqHead % this.rq.length]!;
      this.rqHead++;
      this.recvCq.push(this.qpNum, r.wrId, recvStatus, WcOpcode.RECV, this.recvOff, 0, false, false);
    }
    this.toError();
  }

  /**
   * Scatters `len` bytes into receive `r` at message offset `at`. Returns 0, LOC_LEN_ERR (the
   * receive is too small) or LOC_PROT_ERR (an SGE is not a writable part of a live MR of this PD).
   * Nothing is copied unless the whole range fits.
   */
  private scatterRecv(r: RecvSlot, at: number, src: Buffer, srcOff: number, len: number): number {
    if (at + len > r.length) return WcStatus.LOC_LEN_ERR;
    let skip = at;
    let left = len;
    // Validate first, then copy.
    for (let pass = 0; pass < 2; pass++) {
      skip = at;
      left = len;
      let so = srcOff;
      for (let i = 0; i < r.numSge && left > 0; i++) {
        const l = r.lens[i]!;
        if (skip >= l) {
          skip -= l;
          continue;
        }
        const n = Math.min(l - skip, left);
        const mr = r.mrs[i];
        if (pass === 0) {
          if (!this.localSgeOk(mr, r.offs[i]!, l, true)) return WcStatus.LOC_PROT_ERR;
        } else {
          const dst = mr!.offset + r.offs[i]! + skip;
          copyBytes(src, so, mr!.buf, dst, n);
        }
        so += n;
        left -= n;
        skip = 0;
      }
    }
    return 0;
  }

  private flushResponder(): void {
    const opts = this.device.opts;
    let budget = opts.readBurst;
    while (this.readCount > 0 && budget > 0) {
      const j = this.readJobs[this.readHead]!;
      this.sendReadResponse(j);
      budget--;
      j.k++;
      if (j.k === j.npkts) {
        j.mr = undefined;
        this.readHead = (this.readHead + 1) % this.readJobs.length;
        this.readCount--;
        if (psnDiff(this.ePsn, psnAdd(j.psn, j.npkts)) > 0) {
          // Requests after the READ can be acknowledged now.
          this.ackPending = true;
        } else if (this.readCount === 0) {
          // The last response acknowledges everything before it.
          this.ackPending = false;
          this.unacked = 0;
        }
      }
      if (this.st !== QpState.RTR && this.st !== QpState.RTS) return;
    }
    if (this.readCount > 0) {
      this.device.markDirty(this);
      return; // hold ACKs and NAKs until the responses are out
    }
    if (this.nakSeqPending) {
      this.nakSeqPending = false;
      this.ackPending = false;
      this.unacked = 0;
      this.device.stats.naksSent++;
      this.sendAck(SYN_NAK_SEQ, this.ePsn);
    } else if (this.ackPending) {
      this.ackPending = false;
      this.unacked = 0;
      this.device.stats.acksSent++;
      this.sendAck(SYN_ACK, psnAdd(this.ePsn, PSN_MASK));
    }
  }

  private sendAck(syndrome: number, psn: number): void {
    const dev = this.device;
    const t = dev.tpl;
    const tpl = t.withAeth;
    const bth = t.bth;
    bth.opcode = OP.ACK;
    bth.se = false;
    bth.padCnt = 0;
    bth.destQp = this.destQpn;
    bth.ackReq = false;
    bth.psn = psn;
    t.aeth.syndrome = syndrome;
    t.aeth.msn = this.msn;
    tpl.payload = undefined;
    tpl.payloadOffset = 0;
    tpl.payloadLength = 0;
    const len = encodeIbPacket(tpl, dev.txBuf, 0);
    dev.transmit(this, len);
  }

  private sendReadResponse(j: ReadJob): void {
    const dev = this.device;
    const t = dev.tpl;
    const k = j.k;
    const npk = j.npkts;
    const mtu = this.mtu;
    const lastPkt = k === npk - 1;
    const op = npk === 1 ? OP.READ_RESP_ONLY : k === 0 ? OP.READ_RESP_FIRST : lastPkt ? OP.READ_RESP_LAST : OP.READ_RESP_MIDDLE;
    const payLen = lastPkt ? j.length - k * mtu : mtu;
    const tpl = t.forOpcode(op);
    const bth = t.bth;
    bth.opcode = op;
    bth.se = false;
    bth.padCnt = -payLen & 3;
    bth.destQp = this.destQpn;
    bth.ackReq = false;
    bth.psn = psnAdd(j.psn, k);
    if (tpl.aeth !== undefined) {
      t.aeth.syndrome = SYN_ACK;
      t.aeth.msn = this.msn;
    }
    if (payLen > 0) {
      tpl.payload = j.mr!.buf;
      tpl.payloadOffset = j.off + k * mtu;
      tpl.payloadLength = payLen;
    } else {
      tpl.payload = undefined;
      tpl.payloadOffset = 0;
      tpl.payloadLength = 0;
    }
    const len = encodeIbPacket(tpl, dev.txBuf, 0);
    dev.stats.readResponsesSent++;
    dev.transmit(this, len);
  }
}

function qpName(s: unknown): string {
  for (const [k, v] of Object.entries(QpState)) if (v === s) return k;
  return String(s);
}
