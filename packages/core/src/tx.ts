/**
 * The send side of one SMC-R connection (cf. smc_tx.c; spec 7.3-7.5), in TCP terms: the application
 * writes into the local send ring (`prep`, cf. write_seq); a transfer RDMA-writes prepared bytes into
 * the free part of the peer's RMBE ring (`sent`, cf. snd_nxt; the peer's free space is our
 * `peer_rmbe_space`, cf. snd_wnd) and announces them with a CDC; the ring space is released when
 * that CDC's send completes (`fin`, cf. snd_una; spec 7.3 step 5).
 *
 * Pure bookkeeping: the driver owns the send ring memory registration, the QP and the timers. The
 * per-message calls (nextTransfer, onSendComplete, onPeerCdc, flushDecision) allocate nothing; the
 * transfer descriptor is the caller's reusable object from {@link newTxTransfer}.
 *
 * Driver loop:
 *   n = tx.write(buf, off, len, oob)      // n < len: backpressure; wait for tx.writable ('drain')
 *   switch (tx.flushDecision(more)) {     // TxFlush
 *     case NOW: while (slot free && tx.nextTransfer(t)) post t.writes[0..t.writeCount) then t.cdc
 *     case AUTOCORK: nothing; onSendComplete() returns true when it is time to push
 *     case CORK: arm the cork timer (Timers.TX_CORK_DELAY); push when it fires
 *   }
 *   on a CDC send completion: if (tx.onSendComplete(mark)) push; if (tx.writable) emit 'drain'
 */
import { cursorAdd, cursorDiff, cursorNewer, type CdcFields, newCdcFields } from '@smc-r/wire';
import { Limits } from './constants.js';
import { ConnState, cursorCopy, cursorWithinRing, markDistance, ringMark } from './conn-state.js';

/** One scatter/gather element: a contiguous range of the local send ring. */
export interface TxSge {
  /** Offset in the send ring (the driver adds the ring's address and lkey). */
  off: number;
  len: number;
}

/** One RDMA WRITE: a contiguous range of the peer's RMBE, filled from 1 or 2 ranges of the send ring. */
export interface TxWrite {
  /** Offset in the peer's RMBE; the driver adds `rmb_vaddr + (rmbe_idx - 1) * rmbe_size` (spec 7.3). */
  dstOff: number;
  len: number;
  /** 1 or 2: the send ring wrapped inside this write. */
  sgeCount: number;
  readonly sge: readonly [TxSge, TxSge];
}

/** A transfer filled by {@link SmcTx.nextTransfer}: up to 2 RDMA WRITEs, then the CDC (spec 7.3). */
export interface TxTransfer {
  /** Bytes moved by this transfer (sum of the writes). */
  len: number;
  /** 1 or 2: the peer's RMBE wrapped. */
  writeCount: number;
  readonly writes: readonly [TxWrite, TxWrite];
  /** The CDC to post after the writes (RC ordering makes the data land first, spec 7.3 step 4). */
  readonly cdc: CdcFields;
  /** Send mark for {@link SmcTx.onSendComplete} when the CDC's send completes. */
  mark: number;
}

/** A reusable transfer descriptor. Allocate one per connection (or per link) and reuse it. */
export function newTxTransfer(): TxTransfer {
  const w = (): TxWrite => ({ dstOff: 0, len: 0, sgeCount: 0, sge: [{ off: 0, len: 0 }, { off: 0, len: 0 }] });
  return { len: 0, writeCount: 0, writes: [w(), w()], cdc: newCdcFields(), mark: 0 };
}

/** What the driver does after a write (`smc_tx_should_cork`, spec 7.4 end). */
export const TxFlush = {
  /** Push now: call nextTransfer until it returns false. */
  NOW: { value: 0, name: 'now', text: 'transfer now' },
  /**
   * Autocorking: CDCs are in flight and little is prepared; the last completion
   * ({@link SmcTx.onSendComplete} returning true) pushes, coalescing small writes.
   */
  AUTOCORK: { value: 1, name: 'autocork', text: 'held back until the CDCs in flight complete' },
  /** MSG_MORE / corked socket with ring space left: push when the cork timer fires or on uncork. */
  CORK: { value: 2, name: 'cork', text: 'corked: push on the cork timer (Timers.TX_CORK_DELAY) or uncork' },
} as const;
export type TxFlushValue = (typeof TxFlush)[keyof typeof TxFlush]['value'];

export interface SmcTxOptions {
  /** net.smc.autocorking_size (default Limits.AUTOCORK_SIZE, 64 KiB); 0 disables autocorking. */
  readonly autocorkSize?: number;
}

/** Up to this many bytes a loop copies (allocation-free); longer copies are native. */
const LOOP_COPY_MAX = 32;

/**
 * Copies `n` bytes; allocation-free up to LOOP_COPY_MAX bytes, else TypedArray#set (a memcpy; one
 * short-lived view unless `src` is copied whole). Not Buffer#copy: on Node 20 it runs more JS and
 * makes a view of a partial source too.
 */
export function copyRange(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, n: number): void {
  if (n <= LOOP_COPY_MAX) {
    for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i]!;
  } else {
    dst.set(srcOff === 0 && n === src.length ? src : src.subarray(srcOff, srcOff + n), dstOff);
  }
}

export class SmcTx {
  readonly #st: ConnState;
  readonly #ring: Uint8Array;
  readonly #corkSize: number;
  /** Scratch cursor (no allocation per call). */
  readonly #tmp = { wrap: 0, count: 0 };

  /**
   * `sndbuf` is the send ring the driver registered (its length must be `state.sndbufSize`); the
   * SGE offsets of every transfer are relative to its start.
   */
  constructor(state: ConnState, sndbuf: Uint8Array, opts: SmcTxOptions = {}) {
    if (sndbuf.length !== state.sndbufSize) {
      throw new RangeError(`send ring is ${sndbuf.length} bytes, state says ${state.sndbufSize}`);
    }
    const ac = opts.autocorkSize ?? Limits.AUTOCORK_SIZE;
    if (!Number.isInteger(ac) || ac < 0) throw new RangeError(`autocorkSize ${ac} is not a non-negative integer`);
    this.#st = state;
    this.#ring = sndbuf;
    // smc_should_autocork: min(sndbuf / 2, net.smc.autocorking_size).
    this.#corkSize = Math.min(state.sndbufSize >> 1, ac);
  }

  get state(): ConnState {
    return this.#st;
  }

  /** Free bytes in the send ring (`sndbuf_space`). */
  get space(): number {
    return this.#st.sndbufSpace;
  }

  /** write() would accept bytes: ring space and no urgent send outstanding (`smc_tx_wait`, 7.5). */
  get writable(): boolean {
    return this.#st.sndbufSpace > 0 && !this.#st.urgTxPend;
  }

  /** Bytes written by the application and not yet RDMA-written (`smc_tx_prepared_sends`). */
  get prepared(): number {
    return cursorDiff(this.#st.sndbufSize, this.#st.sent, this.#st.prep);
  }

  /** CDCs posted and not completed (`cdc_pend_tx_wr`). */
  get inFlight(): number {
    return this.#st.cdcInFlight;
  }

  /** Free bytes in the peer's RMBE as we know them (`peer_rmbe_space`). */
  get peerSpace(): number {
    return this.#st.peerRmbeSpace;
  }

  /**
   * Copies as much of `src[off, off + len)` as fits into the send ring (split at the ring's end) and
   * returns the count (`smc_tx_sendmsg`, spec 7.3 step 1). 0 means backpressure: the ring is full, or
   * an urgent send is outstanding (spec 7.5: one at a time, until the peer has consumed everything);
   * wait for {@link writable}. Never more than the ring's free space is accepted.
   *
   * `oob` (send(MSG_OOB), spec 7.5): the last byte of this send is the urgent byte. urg_data_pending
   * goes into the next CDCs at once; once the whole send is in the ring (a short return means call
   * again with the rest and `oob`), further writes wait until the peer has consumed it all.
   */
  write(src: Uint8Array, off: number, len: number, oob = false): number {
    if (!(off >= 0 && len >= 0 && off + len <= src.length)) {
      throw new RangeError(`write range [${off}, ${off + len}) is outside the ${src.length}-byte source`);
    }
    const st = this.#st;
    if (len === 0) return 0;
    if (oob) st.urgDataPending = true;
    if (st.sndbufSpace === 0 || st.urgTxPend) return 0;
    const size = st.sndbufSize;
    const n = Math.min(len, st.sndbufSpace);
    const pos = st.prep.count;
    const first = Math.min(n, size - pos);
    copyRange(src, off, this.#ring, pos, first);
    if (first < n) copyRange(src, off + first, this.#ring, 0, n - first);
    cursorAdd(st.prep, n, size);
    st.sndbufSpace -= n;
    if (oob && n === len) st.urgTxPend = true;
    return n;
  }

  /**
   * After a write: push now, or hold the data back (`smc_tx_should_cork`, spec 7.4 end).
   * Autocorking holds small writes while earlier CDCs are in flight, as long as at most
   * min(sndbuf / 2, autocorkSize) bytes are prepared; `more` (MSG_MORE or a corked socket) holds them
   * while the ring has space. Both are local policies, not wire rules.
   */
  flushDecision(more = false): TxFlushValue {
    const st = this.#st;
    if (st.cdcInFlight !== 0 && this.prepared <= this.#corkSize) return TxFlush.AUTOCORK.value;
    if (more && st.sndbufSpace > 0) return TxFlush.CORK.value;
    return TxFlush.NOW.value;
  }

  /**
   * Fills `out` with the next transfer when there are prepared bytes and the peer's RMBE has space
   * (`smc_tx_rdma_writes` + `smc_cdc_msg_send`, spec 7.3); returns false (and changes nothing) when
   * there is nothing to do. The transfer is committed when this returns true: call it only with a
   * CDC send slot and two write WRs available, then post the writes and the CDC in that order.
   *
   * len = min(prepared, peer free space); write_blocked = prepared >= peer free space (7.3 step 2).
   * The writes never reach past the peer's consumer cursor: the destination is inside the
   * `peer_rmbe_space` bytes after our producer cursor, which the peer has confirmed as consumed.
   */
  nextTransfer(out: TxTransfer): boolean {
    const st = this.#st;
    if (st.peerConnAbort) return false;
    const sndSize = st.sndbufSize;
    const peerSize = st.peerRmbeSize;
    const toSend = cursorDiff(sndSize, st.sent, st.prep);
    if (toSend <= 0) return false;
    const space = st.peerRmbeSpace;
    if (space <= 0) return false;
    // "If usable snd_wnd closes ask peer to advertise once it opens again."
    st.writeBlocked = toSend >= space;
    const len = toSend < space ? toSend : space;

    // Up to 2 writes (the peer's RMBE wraps), each from up to 2 ranges (the send ring wraps).
    let dstOff = st.prod.count;
    let srcOff = st.sent.count;
    let left = len;
    let w = 0;
    while (left > 0) {
      const wr = out.writes[w]!;
      const d = Math.min(left, peerSize - dstOff);
      wr.dstOff = dstOff;
      wr.len = d;
      const s1 = Math.min(d, sndSize - srcOff);
      wr.sge[0].off = srcOff;
      wr.sge[0].len = s1;
      if (s1 < d) {
        wr.sge[1].off = 0;
        wr.sge[1].len = d - s1;
        wr.sgeCount = 2;
        srcOff = d - s1;
      } else {
        wr.sgeCount = 1;
        srcOff += s1;
        if (srcOff === sndSize) srcOff = 0;
      }
      dstOff += d;
      if (dstOff === peerSize) dstOff = 0;
      left -= d;
      w++;
    }
    out.writeCount = w;
    out.len = len;

    // The CDC whose producer cursor ends right after the urgent send carries urg_data_present (7.5).
    if (st.urgTxPend && len === toSend) st.urgDataPresent = true;
    cursorAdd(st.prod, len, peerSize);
    st.peerRmbeSpace -= len;
    cursorAdd(st.sent, len, sndSize);
    out.mark = st.fillCdc(out.cdc);
    return true;
  }

  /**
   * A CDC's send completed (`smc_cdc_tx_handler`): with `ok`, the send ring up to the mark that
   * CDC carried is released (spec 7.3 step 5). Returns true when the driver should push now: this
   * was the last CDC in flight and prepared bytes wait for it (autocorking, spec 7.4) with peer space.
   * Check {@link writable} afterwards for 'drain'.
   */
  onSendComplete(mark: number, ok = true): boolean {
    const st = this.#st;
    if (ok) {
      const size = st.sndbufSize;
      const n = markDistance(ringMark(st.fin, size), mark);
      // A mark behind fin (a completion out of order) releases nothing, as the kernel's clamped diff.
      if (n <= cursorDiff(size, st.fin, st.sent)) {
        st.sndbufSpace += n;
        cursorAdd(st.fin, n, size);
      }
    }
    if (st.cdcInFlight > 0) st.cdcInFlight--;
    return st.cdcInFlight === 0 && st.peerRmbeSpace > 0 && this.prepared > 0;
  }

  /**
   * The send-side part of an accepted peer CDC (called by SmcRx.onCdc after the sequence check; spec
   * 7.2, `smc_cdc_msg_recv_action`): adopt its consumer cursor unless it is older than the one we
   * have, and add the newly consumed bytes to the peer's free space. Returns those bytes (`diff_cons`),
   * or -1, changing nothing, when the cursor claims the peer consumed bytes we never wrote.
   * Clears the outstanding urgent send once it is transferred and the peer has consumed everything (7.5).
   */
  onPeerCdc(fields: Readonly<CdcFields>): number {
    const st = this.#st;
    if (!cursorNewer(st.peerCons, fields.cons)) return 0;
    if (fields.cons.count >= st.peerRmbeSize || !cursorWithinRing(fields.cons, st.prod)) return -1;
    const old = this.#tmp;
    cursorCopy(old, st.peerCons);
    cursorCopy(st.peerCons, fields.cons);
    const diff = cursorDiff(st.peerRmbeSize, old, st.peerCons);
    st.peerRmbeSpace += diff;
    // Linux clears urg_tx_pend when the peer's RMBE is empty again. We also require that nothing is
    // left to transfer: otherwise a CDC arriving between the urgent write and its transfer (autocork,
    // no send slot) would end the urgent send before its data, and urg_data_present, went out.
    if (diff > 0 && st.urgTxPend && st.peerRmbeSpace === st.peerRmbeSize && this.prepared === 0) st.urgTxPend = false;
    return diff;
  }
}
