/**
 * An RC queue pair. Control path: ibv_create_qp / ibv_modify_qp / ibv_query_qp with attribute
 * structs built in Buffers at layout.ts offsets. Data path: postSend / postRecv write one
 * ibv_send_wr / ibv_recv_wr and its SGEs into preallocated native memory with DataView (the
 * next and sg_list pointers are written once, here) and call ops.post_send / ops.post_recv,
 * resolved once per context; nothing is allocated per call.
 */
import {
  Errno, QpState, VerbsError, qpStateName,
  type IbMtu, type QpAttr, type QpCap, type QpInitAttr, type QpModify, type QpNum, type Qp, type RecvWr, type SendWr, type Sge,
} from '@smc-r/verbs';
import type { MemPtr, QpPtr } from './handles.js';
import { IBV, OFF } from './layout.js';
import { errnoOf, lastErrno, nativeAlloc, nativeFree, readU32, type ContextOps, type VerbsLib } from './native.js';
import { IbvCq } from './cq.js';
import type { IbvPd } from './pd.js';

const TWO32 = 4294967296;

/** Transitions the verbs interface allows (types.ts): RESET -> INIT -> RTR -> RTS, any -> RESET / ERR. */
const LEGAL: Readonly<Record<number, readonly number[]>> = {
  [QpState.RESET]: [QpState.RESET, QpState.INIT, QpState.ERR],
  [QpState.INIT]: [QpState.RESET, QpState.RTR, QpState.ERR],
  [QpState.RTR]: [QpState.RESET, QpState.RTS, QpState.ERR],
  [QpState.RTS]: [QpState.RESET, QpState.ERR],
  [QpState.SQD]: [QpState.RESET, QpState.ERR],
  [QpState.SQE]: [QpState.RESET, QpState.ERR],
  [QpState.ERR]: [QpState.RESET, QpState.ERR],
};

export class IbvQp implements Qp {
  readonly pd: IbvPd;
  readonly qpNum: QpNum;
  readonly #lib: VerbsLib;
  readonly #ops: ContextOps;
  readonly #sendCq: IbvCq;
  readonly #recvCq: IbvCq;
  #ptr: QpPtr | null;
  readonly #cap: QpCap;
  #lastState: QpState = QpState.RESET;
  // Native scratch: [send_wr][recv_wr][bad_wr][send SGEs][recv SGEs]
  readonly #mem: MemPtr;
  readonly #v: DataView;
  readonly #sendWr: MemPtr;
  readonly #recvWr: MemPtr;
  readonly #bad: MemPtr;
  readonly #sendSgeOff: number;
  readonly #recvSgeOff: number;
  // Control-path scratch
  readonly #attr = Buffer.alloc(OFF.qp_attr_size);
  readonly #init = Buffer.alloc(OFF.qp_init_attr_size);

  constructor(lib: VerbsLib, pd: IbvPd, init: QpInitAttr) {
    if (init.type !== 'RC') throw new VerbsError('create_qp', Errno.EOPNOTSUPP, `QP type ${String(init.type)}: only RC`);
    if (!(init.sendCq instanceof IbvCq) || !(init.recvCq instanceof IbvCq) || init.sendCq.context !== pd.context || init.recvCq.context !== pd.context) {
      throw new VerbsError('create_qp', Errno.EINVAL, 'the CQs must belong to the same ibverbs context');
    }
    const c = init.cap;
    for (const [k, v] of Object.entries(c)) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new VerbsError('create_qp', Errno.EINVAL, `cap.${k} = ${String(v)}`);
    }
    const b = Buffer.alloc(OFF.qp_init_attr_size);
    b.writeBigUInt64LE(init.sendCq.ptr, OFF.qpi_send_cq);
    b.writeBigUInt64LE(init.recvCq.ptr, OFF.qpi_recv_cq);
    b.writeUInt32LE(c.maxSendWr, OFF.qpi_max_send_wr);
    b.writeUInt32LE(c.maxRecvWr, OFF.qpi_max_recv_wr);
    b.writeUInt32LE(c.maxSendSge, OFF.qpi_max_send_sge);
    b.writeUInt32LE(c.maxRecvSge, OFF.qpi_max_recv_sge);
    b.writeUInt32LE(c.maxInlineData, OFF.qpi_max_inline_data);
    b.writeUInt32LE(IBV.QPT_RC, OFF.qpi_qp_type);
    b.writeInt32LE(init.sqSigAll === true ? 1 : 0, OFF.qpi_sq_sig_all);
    const ptr = lib.create_qp(pd.ptr, b);
    if (ptr === null) throw new VerbsError('create_qp', lastErrno(), `ibv_create_qp(${JSON.stringify(c)}) failed`);
    this.#lib = lib;
    this.#ops = pd.context.ops;
    this.pd = pd;
    this.#ptr = ptr;
    this.qpNum = readU32(ptr, OFF.qp_qp_num) as QpNum;
    // The provider writes back the capabilities it granted (>= the request).
    this.#cap = {
      maxSendWr: b.readUInt32LE(OFF.qpi_max_send_wr),
      maxRecvWr: b.readUInt32LE(OFF.qpi_max_recv_wr),
      maxSendSge: Math.max(c.maxSendSge, b.readUInt32LE(OFF.qpi_max_send_sge)),
      maxRecvSge: Math.max(c.maxRecvSge, b.readUInt32LE(OFF.qpi_max_recv_sge)),
      maxInlineData: b.readUInt32LE(OFF.qpi_max_inline_data),
    };
    this.#sendCq = init.sendCq;
    this.#recvCq = init.recvCq;
    this.#sendCq.users++;
    this.#recvCq.users++;

    this.#sendSgeOff = OFF.send_wr_size + OFF.recv_wr_size + 8;
    this.#recvSgeOff = this.#sendSgeOff + Math.max(1, this.#cap.maxSendSge) * OFF.sge_size;
    const mem = nativeAlloc(this.#recvSgeOff + Math.max(1, this.#cap.maxRecvSge) * OFF.sge_size);
    this.#mem = mem.ptr;
    this.#v = mem.view;
    this.#sendWr = mem.ptr;
    this.#recvWr = (mem.ptr + BigInt(OFF.send_wr_size)) as MemPtr;
    this.#bad = (mem.ptr + BigInt(OFF.send_wr_size + OFF.recv_wr_size)) as MemPtr;
    // Fixed fields: a single WR (next = NULL) whose sg_list is the SGE array right here.
    const sendSges = mem.ptr + BigInt(this.#sendSgeOff);
    const recvSges = mem.ptr + BigInt(this.#recvSgeOff);
    mem.buffer.writeBigUInt64LE(0n, OFF.swr_next);
    mem.buffer.writeBigUInt64LE(sendSges, OFF.swr_sg_list);
    mem.buffer.writeBigUInt64LE(0n, OFF.send_wr_size + OFF.rwr_next);
    mem.buffer.writeBigUInt64LE(recvSges, OFF.send_wr_size + OFF.rwr_sg_list);
  }

  get state(): QpState {
    if (this.#ptr === null) return this.#lastState;
    return this.#queryState();
  }

  modify(attr: QpModify): void {
    const qp = this.#ptr;
    if (qp === null) throw new VerbsError('modify_qp', Errno.EINVAL, 'the QP is closed');
    const from = this.#queryState();
    const to = attr.state;
    if (!(LEGAL[from] ?? []).includes(to)) {
      throw new VerbsError('modify_qp', Errno.EINVAL, `${qpStateName(from)} -> ${qpStateName(to)} is not a legal transition`);
    }
    const a = this.#attr.fill(0);
    let mask = IBV.QP_STATE;
    a.writeUInt32LE(to, OFF.qpa_qp_state);
    const bad = (what: string): never => {
      throw new VerbsError('modify_qp', Errno.EINVAL, `${qpStateName(from)} -> ${qpStateName(to)}: ${what}`);
    };
    const u = (v: number, max: number, name: string): number => (Number.isInteger(v) && v >= 0 && v <= max ? v : bad(`${name} ${v} out of range 0..${max}`));
    switch (attr.state) {
      case QpState.INIT:
        a.writeUInt16LE(u(attr.pkeyIndex, 0xffff, 'pkeyIndex'), OFF.qpa_pkey_index);
        a.writeUInt8(u(attr.portNum, 0xff, 'portNum'), OFF.qpa_port_num);
        a.writeUInt32LE(u(attr.accessFlags, 0xffffffff, 'accessFlags'), OFF.qpa_qp_access_flags);
        mask |= IBV.QP_PKEY_INDEX | IBV.QP_PORT | IBV.QP_ACCESS_FLAGS;
        break;
      case QpState.RTR: {
        const ah = attr.ah;
        if (attr.pathMtu < 1 || attr.pathMtu > 5 || !Number.isInteger(attr.pathMtu)) bad(`pathMtu ${attr.pathMtu} (1..5)`);
        if (!Buffer.isBuffer(ah.dgid) || ah.dgid.length !== 16) bad(`dgid of ${ah.dgid.length} bytes (16)`);
        a.writeUInt32LE(attr.pathMtu, OFF.qpa_path_mtu);
        a.writeUInt32LE(u(attr.destQpNum, 0xffffff, 'destQpNum'), OFF.qpa_dest_qp_num);
        a.writeUInt32LE(u(attr.rqPsn, 0xffffff, 'rqPsn'), OFF.qpa_rq_psn);
        a.writeUInt8(u(attr.maxDestRdAtomic, 0xff, 'maxDestRdAtomic'), OFF.qpa_max_dest_rd_atomic);
        a.writeUInt8(u(attr.minRnrTimer, 31, 'minRnrTimer'), OFF.qpa_min_rnr_timer);
        // RoCE: always a GRH. The destination MAC is resolved by the kernel from the GID.
        ah.dgid.copy(a, OFF.qpa_dgid);
        a.writeUInt32LE(u(ah.flowLabel ?? 0, 0xfffff, 'flowLabel'), OFF.qpa_flow_label);
        a.writeUInt8(u(ah.sgidIndex, 0xff, 'sgidIndex'), OFF.qpa_sgid_index);
        a.writeUInt8(u(ah.hopLimit, 0xff, 'hopLimit'), OFF.qpa_hop_limit);
        a.writeUInt8(u(ah.trafficClass ?? 0, 0xff, 'trafficClass'), OFF.qpa_traffic_class);
        a.writeUInt8(1, OFF.qpa_is_global);
        a.writeUInt8(u(ah.portNum, 0xff, 'portNum'), OFF.qpa_ah_port_num);
        mask |= IBV.QP_AV | IBV.QP_PATH_MTU | IBV.QP_DEST_QPN | IBV.QP_RQ_PSN | IBV.QP_MAX_DEST_RD_ATOMIC | IBV.QP_MIN_RNR_TIMER;
        break;
      }
      case QpState.RTS:
        a.writeUInt32LE(u(attr.sqPsn, 0xffffff, 'sqPsn'), OFF.qpa_sq_psn);
        a.writeUInt8(u(attr.timeout, 31, 'timeout'), OFF.qpa_timeout);
        a.writeUInt8(u(attr.retryCnt, 7, 'retryCnt'), OFF.qpa_retry_cnt);
        a.writeUInt8(u(attr.rnrRetry, 7, 'rnrRetry'), OFF.qpa_rnr_retry);
        a.writeUInt8(u(attr.maxRdAtomic, 0xff, 'maxRdAtomic'), OFF.qpa_max_rd_atomic);
        mask |= IBV.QP_SQ_PSN | IBV.QP_TIMEOUT | IBV.QP_RETRY_CNT | IBV.QP_RNR_RETRY | IBV.QP_MAX_QP_RD_ATOMIC;
        break;
      case QpState.RESET:
      case QpState.ERR:
        break;
      default: {
        const never: never = attr;
        bad(`unknown target ${String((never as { state: unknown }).state)}`);
      }
    }
    const rc = this.#lib.modify_qp(qp, a, mask);
    if (rc !== 0) throw new VerbsError('modify_qp', errnoOf(rc), `${qpStateName(from)} -> ${qpStateName(to)} refused by the device`);
    this.#lastState = to;
  }

  query(): QpAttr {
    const qp = this.#ptr;
    if (qp === null) throw new VerbsError('query_qp', Errno.EINVAL, 'the QP is closed');
    const a = this.#attr.fill(0);
    const rc = this.#lib.query_qp(qp, a, 0x1fffff, this.#init);
    if (rc !== 0) throw new VerbsError('query_qp', errnoOf(rc), 'ibv_query_qp failed');
    this.#lastState = a.readUInt32LE(OFF.qpa_qp_state) as QpState;
    return {
      state: this.#lastState,
      qpNum: this.qpNum,
      destQpNum: a.readUInt32LE(OFF.qpa_dest_qp_num),
      pathMtu: a.readUInt32LE(OFF.qpa_path_mtu) as IbMtu,
      sqPsn: a.readUInt32LE(OFF.qpa_sq_psn),
      rqPsn: a.readUInt32LE(OFF.qpa_rq_psn),
      timeout: a.readUInt8(OFF.qpa_timeout),
      retryCnt: a.readUInt8(OFF.qpa_retry_cnt),
      rnrRetry: a.readUInt8(OFF.qpa_rnr_retry),
      minRnrTimer: a.readUInt8(OFF.qpa_min_rnr_timer),
      accessFlags: a.readUInt32LE(OFF.qpa_qp_access_flags),
      cap: {
        maxSendWr: a.readUInt32LE(OFF.qpa_max_send_wr),
        maxRecvWr: a.readUInt32LE(OFF.qpa_max_recv_wr),
        maxSendSge: a.readUInt32LE(OFF.qpa_max_send_sge),
        maxRecvSge: a.readUInt32LE(OFF.qpa_max_recv_sge),
        maxInlineData: a.readUInt32LE(OFF.qpa_max_inline_data),
      },
    };
  }

  postSend(wr: SendWr): void {
    const qp = this.#ptr;
    if (qp === null) throw new VerbsError('post_send', Errno.EINVAL, 'the QP is closed');
    const n = wr.numSge;
    if (n > this.#cap.maxSendSge || n < 0) throw new VerbsError('post_send', Errno.EINVAL, `numSge ${n} above maxSendSge ${this.#cap.maxSendSge}`);
    const v = this.#v;
    v.setUint32(OFF.swr_wr_id, wr.wrId >>> 0, true);
    v.setUint32(OFF.swr_wr_id + 4, Math.floor(wr.wrId / TWO32) >>> 0, true);
    v.setInt32(OFF.swr_num_sge, n, true);
    v.setUint32(OFF.swr_opcode, wr.opcode, true);
    v.setUint32(OFF.swr_send_flags, wr.flags, true);
    v.setUint32(OFF.swr_imm_data, wr.immData >>> 0, false); // __be32
    v.setUint32(OFF.swr_remote_addr, wr.raddrLo >>> 0, true);
    v.setUint32(OFF.swr_remote_addr + 4, wr.raddrHi >>> 0, true);
    v.setUint32(OFF.swr_rkey, wr.rkey >>> 0, true);
    writeSges(v, this.#sendSgeOff, wr.sgList, n);
    const rc = this.#ops.post_send(qp, this.#sendWr, this.#bad);
    if (rc !== 0) throw new VerbsError('post_send', errnoOf(rc), 'post_send failed');
  }

  postRecv(wr: RecvWr): void {
    const qp = this.#ptr;
    if (qp === null) throw new VerbsError('post_recv', Errno.EINVAL, 'the QP is closed');
    const n = wr.numSge;
    if (n > this.#cap.maxRecvSge || n < 0) throw new VerbsError('post_recv', Errno.EINVAL, `numSge ${n} above maxRecvSge ${this.#cap.maxRecvSge}`);
    const v = this.#v;
    const base = OFF.send_wr_size;
    v.setUint32(base + OFF.rwr_wr_id, wr.wrId >>> 0, true);
    v.setUint32(base + OFF.rwr_wr_id + 4, Math.floor(wr.wrId / TWO32) >>> 0, true);
    v.setInt32(base + OFF.rwr_num_sge, n, true);
    writeSges(v, this.#recvSgeOff, wr.sgList, n);
    const rc = this.#ops.post_recv(qp, this.#recvWr, this.#bad);
    if (rc !== 0) throw new VerbsError('post_recv', errnoOf(rc), 'post_recv failed');
  }

  close(): void {
    const qp = this.#ptr;
    if (qp === null) return;
    try {
      this.#lastState = this.#queryState();
    } catch {
      // keep the last known state
    }
    const rc = this.#lib.destroy_qp(qp);
    if (rc !== 0) throw new VerbsError('destroy_qp', errnoOf(rc), 'ibv_destroy_qp failed');
    this.#ptr = null;
    nativeFree(this.#mem);
    this.#sendCq.users--;
    this.#recvCq.users--;
    this.pd.forget(this);
  }

  #queryState(): QpState {
    const qp = this.#ptr!;
    const rc = this.#lib.query_qp(qp, this.#attr, IBV.QP_STATE, this.#init);
    if (rc !== 0) throw new VerbsError('query_qp', errnoOf(rc), 'ibv_query_qp failed');
    this.#lastState = this.#attr.readUInt32LE(OFF.qpa_qp_state) as QpState;
    return this.#lastState;
  }
}

/** SGEs: address = MR address + offset (64-bit as two halves, with carry), length, lkey. */
function writeSges(v: DataView, off: number, list: readonly Sge[], n: number): void {
  for (let i = 0; i < n; i++) {
    const s = list[i]!;
    const mr = s.mr;
    const lo = mr.addrLo + s.offset;
    const o = off + i * OFF.sge_size;
    v.setUint32(o + OFF.sge_addr, lo >>> 0, true);
    v.setUint32(o + OFF.sge_addr + 4, (mr.addrHi + Math.floor(lo / TWO32)) >>> 0, true);
    v.setUint32(o + OFF.sge_length, s.length >>> 0, true);
    v.setUint32(o + OFF.sge_lkey, mr.lkey >>> 0, true);
  }
}
