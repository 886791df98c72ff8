/**
 * The RC transport of the mem provider: what one work request does, requester to responder and
 * back, in one step (mem has no packets, hence no loss, no segmentation, no reordering). The
 * checks follow the order of a real responder (IBA 9.7.5, rxe_resp.c): route and PSN, opcode
 * allowed by the QP's access flags, receive WQE present (else RNR NAK), length, R_Key and bounds,
 * then execution. Every copy is between registered regions of the fabric arena, after every
 * check has passed, so no byte outside a registered region is ever written.
 *
 * Error mapping (requester completion / responder completion / QP states):
 * - local SGE invalid (lkey of another PD or deregistered, outside the MR, or an MR without
 *   LOCAL_WRITE receiving READ data): LOC_PROT_ERR, requester -> ERR; the responder never sees it.
 * - R_Key invalid, outside the MR, or MR lacking REMOTE_WRITE / REMOTE_READ: NAK "remote access
 *   error" -> REM_ACCESS_ERR at the requester; IBA class C responder error, so the responder QP
 *   goes to ERR as well (rxe do_class_ac_error). A WRITE_WITH_IMM's consumed receive completes
 *   with REM_ACCESS_ERR.
 * - responder QP without REMOTE_WRITE / REMOTE_READ in its access flags, a READ to a QP with
 *   maxDestRdAtomic 0, or a message longer than the responder's path MTU allows: NAK "invalid
 *   request" -> REM_INV_REQ_ERR, both QPs -> ERR (rxe: ERR_UNSUPPORTED_OPCODE, class C).
 * - receive too small: LOC_LEN_ERR on the responder's receive, NAK "invalid request" ->
 *   REM_INV_REQ_ERR at the requester, both -> ERR (IBA and mlx5; rxe reports REM_INV_REQ_ERR on
 *   the receive as well).
 * - receive SGE invalid: LOC_PROT_ERR on the receive, NAK "remote operational error" ->
 *   REM_OP_ERR at the requester, both -> ERR.
 * - no receive posted: RNR NAK; the requester waits the responder's minRnrTimer and retries,
 *   rnrRetry times (7: forever), then RNR_RETRY_EXC_ERR and ERR. The responder is unaffected.
 * - no answer (no QP behind (dgid, destQpNum), QP not in RTR/RTS, GIDs not matching the
 *   responder's path, PSN not the expected one): the request is dropped and counted; the
 *   requester waits its ACK timeout and retries retryCnt times, then RETRY_EXC_ERR and ERR. (A
 *   real responder answers a PSN behind the expected one as a duplicate, with an ACK and no
 *   execution; mem drops it so that a PSN mix-up fails loudly instead of losing data silently.)
 */
import { Access, QpState, WcOpcode, WcStatus, WrOpcode } from '../types.js';
import type { Mr } from '../types.js';
import { addrOffset } from './memory.js';
import type { MemMr } from './mr.js';
import type { MemQp, RecvSlot, SendSlot } from './qp.js';
import { rnrDelayMs } from './timing.js';

/** Executes the WR at the head of `qp`'s send queue (qp is in RTS and not waiting). */
export function executeHead(qp: MemQp, slot: SendSlot): void {
  const op = slot.opcode;
  // The requester reads (gathers) its local data before anything goes on the wire.
  if (op !== WrOpcode.RDMA_READ && !slot.inline && !localSgesOk(qp, slot.mrs, slot.offs, slot.lens, slot.numSge, false)) {
    qp.failSend(WcStatus.LOC_PROT_ERR);
    return;
  }
  const r = responderFor(qp);
  if (r === null) {
    qp.waitAck();
    return;
  }
  if (op !== WrOpcode.RDMA_READ && slot.length > r.mtuBytes && qp.mtuBytes > r.mtuBytes) {
    classC(qp, r, WcStatus.REM_INV_REQ_ERR);
    return;
  }
  switch (op) {
    case WrOpcode.SEND:
    case WrOpcode.SEND_WITH_IMM:
      send(qp, r, slot);
      return;
    case WrOpcode.RDMA_WRITE:
    case WrOpcode.RDMA_WRITE_WITH_IMM:
      write(qp, r, slot);
      return;
    default:
      read(qp, r, slot);
  }
}

/** The responder QP a request from `qp` reaches, or null when it is dropped (counted). */
function responderFor(qp: MemQp): MemQp | null {
  const dev = qp.peerDevice;
  if (dev === null) return null;
  const r = dev.qps.get(qp.destQpNum);
  if (r === undefined) {
    dev.counters.droppedNoQp++;
    return null;
  }
  const st = r.state;
  if (st !== QpState.RTR && st !== QpState.RTS) {
    dev.counters.droppedBadState++;
    return null;
  }
  // RoCE address check (as rxe's check_addr): source GID = the responder's dgid, destination
  // GID = its sgid, and both ends use the same GID type (RoCEv1 and v2 do not interoperate).
  if (r.dgidId !== qp.sgidId || qp.dgidId !== r.sgidId || r.sgidType !== qp.sgidType) {
    dev.counters.droppedBadAddress++;
    return null;
  }
  if (qp.sqPsn !== r.rqPsn) {
    dev.counters.outOfSeqRequest++;
    return null;
  }
  return r;
}

function sgeOk(qp: MemQp, mr: Mr | null, off: number, len: number, needLocalWrite: boolean): boolean {
  if (mr === null || mr.pd !== qp.pd || (mr as MemMr).registered !== true) return false;
  if (off + len > mr.length) return false;
  return !needLocalWrite || (mr.access & Access.LOCAL_WRITE) !== 0;
}

function localSgesOk(qp: MemQp, mrs: (Mr | null)[], offs: Float64Array, lens: Float64Array, n: number, needLocalWrite: boolean): boolean {
  for (let i = 0; i < n; i++) {
    const len = lens[i]!;
    if (len !== 0 && !sgeOk(qp, mrs[i]!, offs[i]!, len, needLocalWrite)) return false;
  }
  return true;
}

/** Arena offset of the remote target, or -1 on an R_Key / bounds / access violation. */
function remoteAbs(r: MemQp, slot: SendSlot, access: number): number {
  const mr = r.device.lookupRkey(slot.rkey);
  if (mr === undefined || !mr.registered || mr.pd !== r.pd || (mr.access & access) === 0) return -1;
  const off = addrOffset(slot.raddrHi, slot.raddrLo, mr.addrHi, mr.addrLo);
  if (off < 0 || off + slot.length > mr.length) return -1;
  return mr.abs + off;
}

/** IBA class C responder error: the responder QP goes to ERR, the requester fails with `status`. */
function classC(qp: MemQp, r: MemQp, status: number): void {
  r.toError();
  qp.failSend(status);
}

function rnr(qp: MemQp, r: MemQp): void {
  r.device.counters.sendRnrErr++;
  qp.device.counters.rcvdRnrErr++;
  if (qp.rnrLeft === 0) {
    qp.device.counters.retryRnrExceededErr++;
    qp.failSend(WcStatus.RNR_RETRY_EXC_ERR);
    return;
  }
  if (qp.rnrLeft !== 7) qp.rnrLeft--;
  qp.waitRnr(rnrDelayMs(r.minRnrTimer));
}

/** Both ends advance their PSN by the packets the message took. */
function advancePsn(qp: MemQp, r: MemQp, length: number): void {
  const mtu = qp.mtuBytes;
  const pkts = length <= mtu ? 1 : Math.ceil(length / mtu);
  qp.sqPsn = (qp.sqPsn + pkts) & 0xffffff;
  r.rqPsn = (r.rqPsn + pkts) & 0xffffff;
  qp.device.counters.rdmaSends++;
  r.device.counters.rdmaRecvs++;
}

function write(qp: MemQp, r: MemQp, slot: SendSlot): void {
  if ((r.accessFlags & Access.REMOTE_WRITE) === 0) {
    classC(qp, r, WcStatus.REM_INV_REQ_ERR);
    return;
  }
  const withImm = slot.opcode === WrOpcode.RDMA_WRITE_WITH_IMM;
  if (withImm && r.rqHead === r.rqTail) {
    rnr(qp, r);
    return;
  }
  const len = slot.length;
  if (len > 0) {
    // A zero-length RDMA WRITE carries no R_Key check (IBA 9.7.4.1.5).
    const dst = remoteAbs(r, slot, Access.REMOTE_WRITE);
    if (dst < 0) {
      if (withImm) r.completeRecv(WcStatus.REM_ACCESS_ERR, WcOpcode.RECV_RDMA_WITH_IMM, 0, 0, false, false);
      classC(qp, r, WcStatus.REM_ACCESS_ERR);
      return;
    }
    gatherTo(qp, slot, dst);
  }
  advancePsn(qp, r, len);
  if (withImm) r.completeRecv(WcStatus.SUCCESS, WcOpcode.RECV_RDMA_WITH_IMM, len, slot.immData, true, slot.solicited);
  qp.finishSend(WcStatus.SUCCESS);
}

function send(qp: MemQp, r: MemQp, slot: SendSlot): void {
  if (r.rqHead === r.rqTail) {
    rnr(qp, r);
    return;
  }
  const recv = r.rq[r.rqHead % r.rq.length]!;
  const len = slot.length;
  // Validate the part of the receive the message needs, before writing anything.
  let need = len;
  for (let i = 0; i < recv.numSge && need > 0; i++) {
    const l = recv.lens[i]!;
    if (l === 0) continue;
    const used = l < need ? l : need;
    if (!sgeOk(r, recv.mrs[i]!, recv.offs[i]!, used, true)) {
      r.completeRecv(WcStatus.LOC_PROT_ERR, WcOpcode.RECV, 0, 0, false, false);
      classC(qp, r, WcStatus.REM_OP_ERR);
      return;
    }
    need -= used;
  }
  if (need > 0) {
    r.completeRecv(WcStatus.LOC_LEN_ERR, WcOpcode.RECV, 0, 0, false, false);
    classC(qp, r, WcStatus.REM_INV_REQ_ERR);
    return;
  }
  if (len > 0) scatterTo(qp, slot, recv);
  advancePsn(qp, r, len);
  const withImm = slot.opcode === WrOpcode.SEND_WITH_IMM;
  r.completeRecv(WcStatus.SUCCESS, WcOpcode.RECV, len, withImm ? slot.immData : 0, withImm, slot.solicited);
  qp.finishSend(WcStatus.SUCCESS);
}

function read(qp: MemQp, r: MemQp, slot: SendSlot): void {
  if ((r.accessFlags & Access.REMOTE_READ) === 0 || r.maxDestRdAtomic === 0) {
    classC(qp, r, WcStatus.REM_INV_REQ_ERR);
    return;
  }
  const len = slot.length;
  let src = 0;
  if (len > 0) {
    src = remoteAbs(r, slot, Access.REMOTE_READ);
    if (src < 0) {
      classC(qp, r, WcStatus.REM_ACCESS_ERR);
      return;
    }
  }
  advancePsn(qp, r, len);
  // The response data lands in the requester's SGEs, which need LOCAL_WRITE.
  if (!localSgesOk(qp, slot.mrs, slot.offs, slot.lens, slot.numSge, true)) {
    qp.failSend(WcStatus.LOC_PROT_ERR);
    return;
  }
  if (len > 0) contigToSges(qp.fabric.arena.u8, src, slot.mrs, slot.offs, slot.lens, slot.numSge);
  qp.finishSend(WcStatus.SUCCESS);
}

/** RDMA WRITE data: the WR's SGEs (or its inline copy) to `dst`, contiguous. */
function gatherTo(qp: MemQp, slot: SendSlot, dst: number): void {
  const u8 = qp.fabric.arena.u8;
  if (slot.inline) {
    u8.copyWithin(dst, slot.inlineAbs, slot.inlineAbs + slot.length);
    return;
  }
  for (let i = 0; i < slot.numSge; i++) {
    const len = slot.lens[i]!;
    if (len === 0) continue;
    const src = (slot.mrs[i] as MemMr).abs + slot.offs[i]!;
    u8.copyWithin(dst, src, src + len);
    dst += len;
  }
}

/** Contiguous `src` into the SGE list (READ responses, inline SEND data). */
function contigToSges(u8: Uint8Array, src: number, mrs: (Mr | null)[], offs: Float64Array, lens: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const len = lens[i]!;
    if (len === 0) continue;
    const dst = (mrs[i] as MemMr).abs + offs[i]!;
    u8.copyWithin(dst, src, src + len);
    src += len;
  }
}

/** SEND data: the WR's SGEs (or inline copy) scattered into the receive's SGEs. */
function scatterTo(qp: MemQp, slot: SendSlot, recv: RecvSlot): void {
  const u8 = qp.fabric.arena.u8;
  let total = slot.length;
  if (slot.inline) {
    scatterRun(u8, slot.inlineAbs, total, recv, 0, 0);
    return;
  }
  let di = 0;
  let dOff = 0;
  for (let i = 0; i < slot.numSge && total > 0; i++) {
    const len = slot.lens[i]!;
    if (len === 0) continue;
    const src = (slot.mrs[i] as MemMr).abs + slot.offs[i]!;
    const pos = scatterRun(u8, src, len, recv, di, dOff);
    // scatterRun packs (sge index, offset in it) into one number: index * 2^32 + offset.
    di = Math.floor(pos / 4294967296);
    dOff = pos - di * 4294967296;
    total -= len;
  }
}

/**
 * Copies `len` bytes from `src` into the receive's SGEs starting at SGE `di`, byte `dOff`.
 * Returns where it stopped as di * 2^32 + dOff (no object, no closure).
 */
function scatterRun(u8: Uint8Array, src: number, len: number, recv: RecvSlot, di: number, dOff: number): number {
  while (len > 0) {
    const room = recv.lens[di]! - dOff;
    if (room <= 0) {
      di++;
      dOff = 0;
      continue;
    }
    const n = room < len ? room : len;
    const dst = (recv.mrs[di] as MemMr).abs + recv.offs[di]! + dOff;
    u8.copyWithin(dst, src, src + n);
    src += n;
    len -= n;
    dOff += n;
  }
  return di * 4294967296 + dOff;
}
