/**
 * mem RC queue pair: the state machine, the preallocated send and receive rings, posting, and
 * the requester bookkeeping (completions, retries, flush). The transport itself (what a request
 * does at the responder) is in rc.ts.
 *
 * Send-queue slots: a slot is taken by postSend and given back when a completion for it, or for
 * a later WR of the same QP, is generated (IBA: an unsignaled WR is complete once a later
 * signaled WR completes). A QP that only posts unsignaled WRs therefore fills up and gets ENOMEM,
 * as on mlx5: post a signaled WR now and then. Receive slots are given back with their completion.
 */
import { Errno, VerbsError } from '../errors.js';
import type { AhAttr, IbMtu, Mr, Qp, QpAttr, QpCap, QpInitAttr, QpModify, QpNum, RecvWr, SendWr } from '../types.js';
import { Access, QpState, qpStateName, SendFlag, WcOpcode, WcStatus, WrOpcode } from '../types.js';
import { Arena } from './arena.js';
import { MemCq } from './cq.js';
import type { MemDevice } from './device.js';
import { MEM_DEVICE_LIMITS } from './device.js';
import type { MemFabric } from './fabric.js';
import type { MemPd } from './pd.js';
import { executeHead } from './rc.js';
import { ackTimeoutMs } from './timing.js';

/**
 * Legal modify_qp transitions of the interface (types.ts): RESET -> INIT -> RTR -> RTS, and any
 * state -> RESET or ERR. Everything else (including INIT->INIT and RTS->RTS, which the IBA also
 * allows, and SQD/SQE, which no QpModify can name) is EINVAL.
 */
export const QP_TRANSITIONS = [
  { from: QpState.RESET, to: [QpState.RESET, QpState.INIT, QpState.ERR] },
  { from: QpState.INIT, to: [QpState.RESET, QpState.RTR, QpState.ERR] },
  { from: QpState.RTR, to: [QpState.RESET, QpState.RTS, QpState.ERR] },
  { from: QpState.RTS, to: [QpState.RESET, QpState.ERR] },
  { from: QpState.ERR, to: [QpState.RESET, QpState.ERR] },
] as const;

function legal(from: number, to: number): boolean {
  for (const row of QP_TRANSITIONS) if (row.from === from) return (row.to as readonly number[]).includes(to);
  return false;
}

/** WcOpcode of a send completion, indexed by WrOpcode. */
const SEND_WC_OPCODE: readonly number[] = [WcOpcode.RDMA_WRITE, WcOpcode.RDMA_WRITE, WcOpcode.SEND, WcOpcode.SEND, WcOpcode.RDMA_READ];

const ALL_QP_ACCESS = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ;
const MAX_MESSAGE = 2 ** 31;

/** What a stalled requester waits for. */
const WAIT_NONE = 0;
const WAIT_ACK = 1;
const WAIT_RNR = 2;

/** @internal A send-queue slot: a snapshot of the posted WR. */
export class SendSlot {
  wrId = 0;
  opcode = 0;
  signaled = false;
  solicited = false;
  inline = false;
  numSge = 0;
  readonly mrs: (Mr | null)[];
  readonly offs: Float64Array;
  readonly lens: Float64Array;
  raddrHi = 0;
  raddrLo = 0;
  rkey = 0;
  immData = 0;
  /** Total bytes of the message. */
  length = 0;

  constructor(maxSge: number, readonly inlineAbs: number) {
    this.mrs = new Array<Mr | null>(maxSge).fill(null);
    this.offs = new Float64Array(maxSge);
    this.lens = new Float64Array(maxSge);
  }
}

/** @internal A receive-queue slot. */
export class RecvSlot {
  wrId = 0;
  numSge = 0;
  readonly mrs: (Mr | null)[];
  readonly offs: Float64Array;
  readonly lens: Float64Array;

  constructor(maxSge: number) {
    this.mrs = new Array<Mr | null>(maxSge).fill(null);
    this.offs = new Float64Array(maxSge);
    this.lens = new Float64Array(maxSge);
  }
}

function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

function inval(verb: 'create_qp' | 'modify_qp' | 'post_send' | 'post_recv' | 'query_qp', message: string): VerbsError {
  return new VerbsError(verb, Errno.EINVAL, message);
}

export class MemQp implements Qp {
  readonly qpNum: QpNum;
  /** @internal */ readonly device: MemDevice;
  /** @internal */ readonly fabric: MemFabric;
  /** @internal */ readonly sendCq: MemCq;
  /** @internal */ readonly recvCq: MemCq;
  private readonly capacity: QpCap;
  private readonly sqSigAll: boolean;

  private st: QpState = QpState.RESET;
  /** @internal */ destroyed = false;
  /** @internal MemFabric bookkeeping. */ queued = false;

  // Attributes (INIT, RTR, RTS).
  /** @internal */ accessFlags = 0;
  private pkeyIndex = 0;
  /** @internal */ pathMtu = 0;
  /** @internal Bytes of pathMtu. */ mtuBytes = 0;
  /** @internal */ destQpNum = 0;
  /** @internal Next PSN the responder expects. */ rqPsn = 0;
  /** @internal Next PSN the requester sends. */ sqPsn = 0;
  /** @internal */ sgidIndex = 0;
  /** @internal */ readonly dgid = Buffer.alloc(16);
  /** @internal The device behind dgid, resolved at RTR. */ peerDevice: MemDevice | null = null;
  /** @internal MemFabric.gidId of dgid and of the sgid, and the sgid's type, set at RTR. */ dgidId = 0;
  /** @internal */ sgidId = 0;
  /** @internal */ sgidType = '';
  /** @internal */ maxDestRdAtomic = 0;
  /** @internal */ minRnrTimer = 0;
  private timeout = 0;
  private retryCnt = 0;
  private rnrRetry = 0;
  private maxRdAtomic = 0;

  // Rings (indices grow monotonically; slot = index % capacity).
  /** @internal */ readonly sq: SendSlot[];
  /** @internal */ sqHead = 0;
  /** @internal */ sqNext = 0;
  /** @internal */ sqTail = 0;
  /** @internal */ readonly rq: RecvSlot[];
  /** @internal */ rqHead = 0;
  /** @internal */ rqTail = 0;
  private readonly inlineStart: number;
  private readonly inlineSize: number;

  // Requester retry state for the WR at sqNext (-1: not started).
  private retriesLeft = -1;
  /** @internal */ rnrLeft = -1;
  /** @internal */ waiting = false;
  private waitKind = WAIT_NONE;
  private timer: NodeJS.Timeout | null = null;
  private readonly onTimerBound: () => void;

  private constructor(readonly pd: MemPd, init: QpInitAttr, inlineStart: number, inlineSize: number) {
    this.device = pd.device;
    this.fabric = pd.fabric;
    this.sendCq = init.sendCq as MemCq;
    this.recvCq = init.recvCq as MemCq;
    const c = init.cap;
    this.capacity = { maxSendWr: c.maxSendWr, maxRecvWr: c.maxRecvWr, maxSendSge: c.maxSendSge, maxRecvSge: c.maxRecvSge, maxInlineData: c.maxInlineData };
    this.sqSigAll = init.sqSigAll === true;
    this.inlineStart = inlineStart;
    this.inlineSize = inlineSize;
    this.sq = new Array<SendSlot>(c.maxSendWr);
    for (let i = 0; i < c.maxSendWr; i++) this.sq[i] = new SendSlot(c.maxSendSge, inlineStart + i * c.maxInlineData);
    this.rq = new Array<RecvSlot>(c.maxRecvWr);
    for (let i = 0; i < c.maxRecvWr; i++) this.rq[i] = new RecvSlot(c.maxRecvSge);
    this.qpNum = this.device.allocQpn() as QpNum;
    this.device.qps.set(this.qpNum, this);
    this.sendCq.qps.add(this);
    this.recvCq.qps.add(this);
    this.onTimerBound = () => this.onTimer();
  }

  /** @internal ibv_create_qp argument checks, then construction. */
  static create(pd: MemPd, init: QpInitAttr): MemQp {
    if (init === null || typeof init !== 'object' || init.type !== 'RC') throw inval('create_qp', 'only RC QPs are supported');
    for (const cq of [init.sendCq, init.recvCq]) {
      if (!(cq instanceof MemCq) || cq.context !== pd.context) throw inval('create_qp', 'CQ does not belong to this context');
      if (cq.isClosed) throw inval('create_qp', 'CQ is destroyed');
    }
    const c = init.cap;
    const L = MEM_DEVICE_LIMITS;
    if (c === null || typeof c !== 'object') throw inval('create_qp', 'missing cap');
    if (!isUint(c.maxSendWr, L.maxQpWr) || c.maxSendWr < 1) throw inval('create_qp', `cap.maxSendWr ${c.maxSendWr} outside 1..${L.maxQpWr}`);
    if (!isUint(c.maxRecvWr, L.maxQpWr)) throw inval('create_qp', `cap.maxRecvWr ${c.maxRecvWr} outside 0..${L.maxQpWr}`);
    if (!isUint(c.maxSendSge, L.maxSge)) throw inval('create_qp', `cap.maxSendSge ${c.maxSendSge} outside 0..${L.maxSge}`);
    if (!isUint(c.maxRecvSge, L.maxRecvSge)) throw inval('create_qp', `cap.maxRecvSge ${c.maxRecvSge} outside 0..${L.maxRecvSge}`);
    if (!isUint(c.maxInlineData, L.maxInlineData)) throw inval('create_qp', `cap.maxInlineData ${c.maxInlineData} outside 0..${L.maxInlineData}`);
    if (pd.device.qps.size >= L.maxQp) throw new VerbsError('create_qp', Errno.ENOMEM, `device has ${L.maxQp} QPs (maxQp)`);
    const bytes = c.maxSendWr * c.maxInlineData;
    let start = 0;
    let size = 0;
    if (bytes > 0) {
      size = Arena.roundUp(bytes);
      start = pd.fabric.arena.alloc(size);
      if (start < 0) throw new VerbsError('create_qp', Errno.ENOMEM, 'arena full (inline data area)');
    }
    return new MemQp(pd, init, start, size);
  }

  get state(): QpState {
    return this.st;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** For the CQ (SoftCqQp). */
  get gone(): boolean {
    return this.destroyed;
  }

  // ----------------------------------------------------------------------------------------
  // modify / query

  modify(attr: QpModify): void {
    if (this.destroyed) throw inval('modify_qp', 'QP is destroyed');
    if (attr === null || typeof attr !== 'object') throw inval('modify_qp', 'missing attributes');
    const from = this.st;
    const to = attr.state as number;
    if (!legal(from, to)) throw inval('modify_qp', `illegal transition ${qpStateName(from)} -> ${qpStateName(to)} on QP ${this.qpNum}`);
    switch (attr.state) {
      case QpState.RESET:
        this.reset();
        return;
      case QpState.INIT: {
        if (!isUint(attr.pkeyIndex, 0)) throw inval('modify_qp', `pkeyIndex ${attr.pkeyIndex}: the P_Key table has one entry`);
        if (attr.portNum !== 1) throw inval('modify_qp', `portNum ${attr.portNum}: the device has port 1 only`);
        if (!isUint(attr.accessFlags, 0xffff) || (attr.accessFlags & ~ALL_QP_ACCESS) !== 0) throw inval('modify_qp', `bad accessFlags ${attr.accessFlags}`);
        this.pkeyIndex = attr.pkeyIndex;
        this.accessFlags = attr.accessFlags;
        this.st = QpState.INIT;
        return;
      }
      case QpState.RTR: {
        if (!isUint(attr.pathMtu, this.device.port.activeMtu) || attr.pathMtu < 1) throw inval('modify_qp', `pathMtu ${attr.pathMtu} outside 1..${this.device.port.activeMtu} (port active MTU)`);
        if (!isUint(attr.destQpNum, 0xffffff)) throw inval('modify_qp', `destQpNum ${attr.destQpNum} is not a 24-bit QPN`);
        if (!isUint(attr.rqPsn, 0xffffff)) throw inval('modify_qp', `rqPsn ${attr.rqPsn} is not a 24-bit PSN`);
        if (!isUint(attr.maxDestRdAtomic, MEM_DEVICE_LIMITS.maxQpRdAtom)) throw inval('modify_qp', `maxDestRdAtomic ${attr.maxDestRdAtomic} outside 0..${MEM_DEVICE_LIMITS.maxQpRdAtom}`);
        if (!isUint(attr.minRnrTimer, 31)) throw inval('modify_qp', `minRnrTimer ${attr.minRnrTimer} outside 0..31`);
        this.checkAh(attr.ah);
        this.pathMtu = attr.pathMtu;
        this.mtuBytes = 128 << attr.pathMtu;
        this.destQpNum = attr.destQpNum;
        this.rqPsn = attr.rqPsn;
        this.maxDestRdAtomic = attr.maxDestRdAtomic;
        this.minRnrTimer = attr.minRnrTimer;
        this.sgidIndex = attr.ah.sgidIndex;
        this.dgid.set(attr.ah.dgid);
        this.peerDevice = this.fabric.deviceByGid(this.dgid);
        this.dgidId = this.fabric.gidId(this.dgid);
        const sgid = this.device.gids[attr.ah.sgidIndex]!;
        this.sgidId = this.fabric.gidId(sgid.gid);
        this.sgidType = sgid.type;
        this.st = QpState.RTR;
        return;
      }
      case QpState.RTS: {
        if (!isUint(attr.sqPsn, 0xffffff)) throw inval('modify_qp', `sqPsn ${attr.sqPsn} is not a 24-bit PSN`);
        if (!isUint(attr.timeout, 31)) throw inval('modify_qp', `timeout ${attr.timeout} outside 0..31`);
        if (!isUint(attr.retryCnt, 7)) throw inval('modify_qp', `retryCnt ${attr.retryCnt} outside 0..7`);
        if (!isUint(attr.rnrRetry, 7)) throw inval('modify_qp', `rnrRetry ${attr.rnrRetry} outside 0..7`);
        if (!isUint(attr.maxRdAtomic, MEM_DEVICE_LIMITS.maxQpRdAtom)) throw inval('modify_qp', `maxRdAtomic ${attr.maxRdAtomic} outside 0..${MEM_DEVICE_LIMITS.maxQpRdAtom}`);
        this.sqPsn = attr.sqPsn;
        this.timeout = attr.timeout;
        this.retryCnt = attr.retryCnt;
        this.rnrRetry = attr.rnrRetry;
        this.maxRdAtomic = attr.maxRdAtomic;
        this.st = QpState.RTS;
        if (this.sqTail > this.sqNext) this.fabric.enqueue(this);
        return;
      }
      case QpState.ERR:
        this.toError();
        return;
      default:
        throw inval('modify_qp', `illegal transition ${qpStateName(from)} -> ${qpStateName(to)} on QP ${this.qpNum}`);
    }
  }

  private checkAh(ah: AhAttr): void {
    if (ah === null || typeof ah !== 'object') throw inval('modify_qp', 'missing ah');
    if (!(ah.dgid instanceof Uint8Array) || ah.dgid.length !== 16) throw inval('modify_qp', 'ah.dgid must be 16 bytes');
    if (!isUint(ah.sgidIndex, this.device.port.gidTblLen - 1)) throw inval('modify_qp', `ah.sgidIndex ${ah.sgidIndex} outside the GID table (length ${this.device.port.gidTblLen})`);
    if (ah.portNum !== 1) throw inval('modify_qp', `ah.portNum ${ah.portNum}: the device has port 1 only`);
    if (!isUint(ah.hopLimit, 255)) throw inval('modify_qp', `ah.hopLimit ${ah.hopLimit} outside 0..255`);
  }

  query(): QpAttr {
    if (this.destroyed) throw inval('query_qp', 'QP is destroyed');
    return {
      state: this.st,
      qpNum: this.qpNum,
      destQpNum: this.destQpNum,
      pathMtu: this.pathMtu as IbMtu,
      sqPsn: this.sqPsn,
      rqPsn: this.rqPsn,
      timeout: this.timeout,
      retryCnt: this.retryCnt,
      rnrRetry: this.rnrRetry,
      minRnrTimer: this.minRnrTimer,
      accessFlags: this.accessFlags,
      cap: { ...this.capacity },
    };
  }

  // ----------------------------------------------------------------------------------------
  // posting

  postSend(wr: SendWr): void {
    if (this.destroyed) throw inval('post_send', 'QP is destroyed');
    const st = this.st;
    if (st !== QpState.RTS && st !== QpState.ERR) throw inval('post_send', `QP ${this.qpNum} is in ${qpStateName(st)}, not RTS`);
    const op = wr.opcode;
    if (op !== WrOpcode.RDMA_WRITE && op !== WrOpcode.RDMA_WRITE_WITH_IMM && op !== WrOpcode.SEND && op !== WrOpcode.SEND_WITH_IMM && op !== WrOpcode.RDMA_READ) {
      throw inval('post_send', `unknown opcode ${op}`);
    }
    const n = wr.numSge;
    const cap = this.capacity;
    if (!isUint(n, cap.maxSendSge)) throw inval('post_send', `numSge ${n} outside 0..${cap.maxSendSge}`);
    if (this.sqTail - this.sqHead >= cap.maxSendWr) throw new VerbsError('post_send', Errno.ENOMEM, `send queue full (${cap.maxSendWr} WRs outstanding)`);
    const flags = wr.flags;
    const inline = (flags & SendFlag.INLINE) !== 0;
    if (inline && op === WrOpcode.RDMA_READ) throw inval('post_send', 'INLINE is not allowed for RDMA_READ');
    const slot = this.sq[this.sqTail % cap.maxSendWr]!;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const s = wr.sgList[i];
      if (s === undefined || s === null) throw inval('post_send', `sgList[${i}] is missing`);
      const off = s.offset;
      const len = s.length;
      if (!isUint(off, MAX_MESSAGE * 2) || !isUint(len, MAX_MESSAGE)) throw inval('post_send', `sgList[${i}] has a bad offset/length`);
      slot.mrs[i] = s.mr;
      slot.offs[i] = off;
      slot.lens[i] = len;
      total += len;
    }
    if (total > MAX_MESSAGE) throw inval('post_send', `message of ${total} bytes exceeds 2^31`);
    if (inline) {
      if (total > cap.maxInlineData) throw inval('post_send', `inline message of ${total} bytes exceeds maxInlineData ${cap.maxInlineData}`);
      this.copyInline(slot, n);
    }
    slot.wrId = wr.wrId;
    slot.opcode = op;
    slot.signaled = this.sqSigAll || (flags & SendFlag.SIGNALED) !== 0;
    slot.solicited = (flags & SendFlag.SOLICITED) !== 0;
    slot.inline = inline;
    slot.numSge = n;
    slot.length = total;
    slot.raddrHi = wr.raddrHi >>> 0;
    slot.raddrLo = wr.raddrLo >>> 0;
    slot.rkey = wr.rkey >>> 0;
    slot.immData = wr.immData >>> 0;
    this.sqTail++;
    this.fabric.enqueue(this);
  }

  /** INLINE: the data is copied into the slot now, so the caller may reuse its buffer at once. */
  private copyInline(slot: SendSlot, n: number): void {
    const arena = this.fabric.arena;
    let dst = slot.inlineAbs;
    for (let i = 0; i < n; i++) {
      const mr = slot.mrs[i];
      const len = slot.lens[i]!;
      if (len === 0) continue;
      const buf = mr?.block?.buffer;
      if (!(buf instanceof Uint8Array)) throw inval('post_send', `sgList[${i}].mr has no memory`);
      const start = mr!.offset + slot.offs[i]!;
      if (start + len > buf.length) throw inval('post_send', `sgList[${i}] lies outside its memory block`);
      if (buf.buffer === arena.ab) arena.u8.copyWithin(dst, buf.byteOffset + start, buf.byteOffset + start + len);
      else arena.u8.set(buf.subarray(start, start + len), dst);
      dst += len;
    }
  }

  postRecv(wr: RecvWr): void {
    if (this.destroyed) throw inval('post_recv', 'QP is destroyed');
    const st = this.st;
    if (st === QpState.RESET) throw inval('post_recv', `QP ${this.qpNum} is in RESET`);
    const n = wr.numSge;
    const cap = this.capacity;
    if (!isUint(n, cap.maxRecvSge)) throw inval('post_recv', `numSge ${n} outside 0..${cap.maxRecvSge}`);
    if (this.rqTail - this.rqHead >= cap.maxRecvWr) throw new VerbsError('post_recv', Errno.ENOMEM, `receive queue full (${cap.maxRecvWr} WRs outstanding)`);
    const slot = this.rq[this.rqTail % cap.maxRecvWr]!;
    for (let i = 0; i < n; i++) {
      const s = wr.sgList[i];
      if (s === undefined || s === null) throw inval('post_recv', `sgList[${i}] is missing`);
      const off = s.offset;
      const len = s.length;
      if (!isUint(off, MAX_MESSAGE * 2) || !isUint(len, MAX_MESSAGE)) throw inval('post_recv', `sgList[${i}] has a bad offset/length`);
      slot.mrs[i] = s.mr;
      slot.offs[i] = off;
      slot.lens[i] = len;
    }
    slot.wrId = wr.wrId;
    slot.numSge = n;
    this.rqTail++;
    if (st === QpState.ERR) this.fabric.enqueue(this);
  }

  // ----------------------------------------------------------------------------------------
  // requester engine (called by MemFabric and rc.ts)

  /** @internal Runs the send queue (RTS) or flushes (ERR). */
  progress(): void {
    if (this.destroyed) return;
    if (this.st === QpState.ERR) {
      this.flush();
      return;
    }
    while (this.st === QpState.RTS && !this.waiting && this.sqNext < this.sqTail) {
      if (this.retriesLeft < 0) {
        this.retriesLeft = this.retryCnt;
        this.rnrLeft = this.rnrRetry;
      }
      executeHead(this, this.sq[this.sqNext % this.capacity.maxSendWr]!);
    }
  }

  /** @internal Completes the WR at sqNext (a completion if signaled or failed) and moves on. */
  finishSend(status: number): void {
    const slot = this.sq[this.sqNext % this.capacity.maxSendWr]!;
    this.sqNext++;
    this.retriesLeft = -1;
    if (status !== WcStatus.SUCCESS || slot.signaled) {
      this.sqHead = this.sqNext;
      this.sendCq.push(this.qpNum, slot.wrId, status, SEND_WC_OPCODE[slot.opcode]!, slot.length, 0, false, false);
    }
    for (let i = 0; i < slot.numSge; i++) slot.mrs[i] = null;
  }

  /** @internal The head WR failed: error completion, QP to ERR (the rest is flushed). */
  failSend(status: number): void {
    this.finishSend(status);
    this.toError();
  }

  /** @internal Consumes the receive at rqHead with a completion. */
  completeRecv(status: number, opcode: number, byteLen: number, immData: number, withImm: boolean, solicited: boolean): void {
    const slot = this.rq[this.rqHead % this.capacity.maxRecvWr]!;
    this.rqHead++;
    this.recvCq.push(this.qpNum, slot.wrId, status, opcode, byteLen, immData, withImm, solicited);
    for (let i = 0; i < slot.numSge; i++) slot.mrs[i] = null;
  }

  /** @internal Moves the QP to ERR; its outstanding WRs are flushed on the next turn. */
  toError(): void {
    if (this.destroyed) return;
    if (this.st !== QpState.ERR) {
      this.st = QpState.ERR;
      this.cancelWait();
    }
    this.fabric.enqueue(this);
  }

  /** Every outstanding WR completes with WR_FLUSH_ERR, signaled or not, in post order. */
  private flush(): void {
    while (this.sqNext < this.sqTail) this.finishSend(WcStatus.WR_FLUSH_ERR);
    while (this.rqHead < this.rqTail) this.completeRecv(WcStatus.WR_FLUSH_ERR, WcOpcode.RECV, 0, 0, false, false);
  }

  /** @internal No response to the head WR: wait one local ACK timeout (clamped), then retry or fail. */
  waitAck(): void {
    this.device.counters.completerRetryErr++;
    const ms = Math.min(ackTimeoutMs(this.timeout), this.fabric.maxAckTimeoutMs);
    this.wait(this.timeout === 0 ? Infinity : ms, WAIT_ACK);
  }

  /** @internal RNR NAK: wait the responder's RNR timer (clamped), then retry. */
  waitRnr(ms: number): void {
    this.wait(Math.min(ms, this.fabric.maxRnrDelayMs), WAIT_RNR);
  }

  private wait(ms: number, kind: number): void {
    this.waiting = true;
    this.waitKind = kind;
    if (ms !== Infinity) this.timer = setTimeout(this.onTimerBound, ms);
  }

  private cancelWait(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.waiting = false;
    this.waitKind = WAIT_NONE;
  }

  private onTimer(): void {
    const kind = this.waitKind;
    this.timer = null;
    this.waiting = false;
    this.waitKind = WAIT_NONE;
    if (this.destroyed || this.st !== QpState.RTS) return;
    if (kind === WAIT_ACK) {
      if (this.retriesLeft === 0) {
        this.device.counters.retryExceededErr++;
        this.failSend(WcStatus.RETRY_EXC_ERR);
        return;
      }
      this.retriesLeft--;
    }
    this.fabric.enqueue(this);
  }

  // ----------------------------------------------------------------------------------------
  // reset / destroy

  private clearQueues(): void {
    for (const s of this.sq) s.mrs.fill(null);
    for (const s of this.rq) s.mrs.fill(null);
    this.sqHead = this.sqNext = this.sqTail = 0;
    this.rqHead = this.rqTail = 0;
    this.retriesLeft = -1;
    this.rnrLeft = -1;
  }

  /** RESET: queues emptied without completions, attributes back to their defaults. */
  private reset(): void {
    this.cancelWait();
    this.clearQueues();
    this.accessFlags = 0;
    this.pkeyIndex = 0;
    this.pathMtu = 0;
    this.mtuBytes = 0;
    this.destQpNum = 0;
    this.rqPsn = 0;
    this.sqPsn = 0;
    this.sgidIndex = 0;
    this.dgid.fill(0);
    this.peerDevice = null;
    this.dgidId = 0;
    this.sgidId = 0;
    this.sgidType = '';
    this.maxDestRdAtomic = 0;
    this.minRnrTimer = 0;
    this.timeout = 0;
    this.retryCnt = 0;
    this.rnrRetry = 0;
    this.maxRdAtomic = 0;
    this.st = QpState.RESET;
  }

  /**
   * Destroys the QP: outstanding WRs vanish without completions (completions already in a CQ
   * stay there, as on rxe), requests addressed to its number find nothing (the peer's requester
   * times out). Idempotent.
   */
  close(): void {
    if (this.destroyed) return;
    this.cancelWait();
    this.clearQueues();
    this.destroyed = true;
    this.device.qps.delete(this.qpNum);
    this.sendCq.qps.delete(this);
    this.recvCq.qps.delete(this);
    if (this.inlineSize > 0) this.fabric.arena.free(this.inlineStart, this.inlineSize);
    this.pd.forgetQp(this);
  }
}
