/**
 * The receive side of one SMC-R connection (cf. smc_cdc.c receive path and smc_rx.c; spec 7.2, 7.4,
 * 7.5, 7.7). The peer RDMA-writes into our RMBE ring and announces the bytes with CDCs; we accept a
 * CDC only in sequence order, take its producer cursor as the end of valid data (cf. rcv_nxt), let
 * the application read from our consumer cursor (cf. copied_seq), and tell the peer how far we have
 * read with consumer-cursor updates (cf. advertising rcv_wnd) when the kernel's rule says so.
 *
 * Pure bookkeeping: the driver decodes CDCs (decodeCdcInto), owns the RMB registration and sends
 * the CDCs. onCdc, consumerUpdateDue and readUrgent allocate nothing; read() copies with
 * copyRange (tx.ts).
 *
 * Driver loop:
 *   r = rx.onCdc(fields)                  // r is reused: read it before the next call
 *   'old' / 'validated': nothing; 'out-of-sync' / 'bad-cursor': abort the connection
 *   r.newBytes > 0 || r.peerWriteBlocked: wake readers; r.urgentArrived: SIGURG-like event, and
 *     let the reader call read() even if nothing is readable (a lone urgent byte is skipped there)
 *   r.txWanted: push (SmcTx.nextTransfer loop); r.consCursUpdReq: check consumerUpdateDue()
 *   r.urgentSendDone: write() accepts data again ('drain')
 *   close flags (r.peerDoneWriting / peerConnClosed / peerConnAbort): hand to the close machine
 *   n = rx.read(buf, off, max) or rx.readUrgent(); then if (rx.consumerUpdateDue()): with a send
 *     slot, state.fillCdc(cdc) and post it; without one, ask again when a slot frees (it stays due)
 */
import { cursorAdd, cursorDiff, cursorNewer, seqnoOlder, type CdcFields } from '@smc-r/wire';
import { ConnState, UrgState, cursorCopy, cursorDiffLarge, cursorDistance, cursorWithinRing, type UrgStateValue } from './conn-state.js';
import { copyRange, type SmcTx } from './tx.js';

/**
 * What happened to a received CDC:
 * - `accepted`: applied (the other result fields say what changed);
 * - `old`: its seqno is before the last accepted one (duplicate / reordered), dropped (7.2);
 * - `validated`: a failover_validation replay whose seqno we have already seen (7.7): nothing to do;
 * - `out-of-sync`: a failover_validation replay of a CDC we never received (CDCs were lost), or any
 *   CDC after that: the connection must be aborted (`smc_cdc_msg_validate`);
 * - `bad-cursor`: a cursor that would mean data written over unread bytes or consumption of bytes we
 *   never wrote; not applied; a protocol violation (abort).
 */
export type CdcVerdict = 'accepted' | 'old' | 'validated' | 'out-of-sync' | 'bad-cursor';

/** Result of {@link SmcRx.onCdc}; one object per SmcRx, overwritten by each call. */
export interface CdcRxResult {
  verdict: CdcVerdict;
  /** Bytes that became readable (`diff_prod`, less a skipped urgent byte). */
  newBytes: number;
  /** Bytes of the peer's RMBE it reported consumed (`diff_cons`): free space for our writes. */
  freed: number;
  /**
   * The driver should push (call SmcTx.nextTransfer): space opened with data waiting, or the peer
   * asked for a consumer-cursor update or announced urgent data (kernel trigger of smc_tx_pending).
   */
  txWanted: boolean;
  /** An urgent byte arrived (7.5): SmcRx.urgentByte has it. */
  urgentArrived: boolean;
  /** urg_data_pending without data: urgent data announced, not yet here (state NOTYET). */
  urgentAnnounced: boolean;
  /** The peer's write_blocked flag: it waits for our consumer cursor (wake the reader). */
  peerWriteBlocked: boolean;
  /** The peer asked for an immediate consumer-cursor update (honour it: consumerUpdateDue()). */
  consCursUpdReq: boolean;
  /** The outstanding urgent send was consumed by the peer: write() accepts data again (7.5). */
  urgentSendDone: boolean;
  /** Connection-state flags of this CDC, for the close machine (spec 7.6, 9). */
  peerDoneWriting: boolean;
  peerConnClosed: boolean;
  peerConnAbort: boolean;
}

function newResult(): CdcRxResult {
  return {
    verdict: 'accepted', newBytes: 0, freed: 0, txWanted: false, urgentArrived: false, urgentAnnounced: false,
    peerWriteBlocked: false, consCursUpdReq: false, urgentSendDone: false,
    peerDoneWriting: false, peerConnClosed: false, peerConnAbort: false,
  };
}

export interface SmcRxOptions {
  /** SO_OOBINLINE: the urgent byte stays in the normal stream (reads stop at it). Default false. */
  readonly oobInline?: boolean;
}

export class SmcRx {
  readonly #st: ConnState;
  readonly #ring: Uint8Array;
  readonly #tx: SmcTx;
  readonly #inline: boolean;
  readonly #res: CdcRxResult = newResult();
  readonly #tmp = { wrap: 0, count: 0 };

  /**
   * `rmbe` is our RMBE (length `state.rmbeSize`): the memory the peer RDMA-writes into. `tx` is the
   * same connection's send side, which takes the consumer cursor of each accepted CDC.
   */
  constructor(state: ConnState, rmbe: Uint8Array, tx: SmcTx, opts: SmcRxOptions = {}) {
    if (rmbe.length !== state.rmbeSize) {
      throw new RangeError(`RMBE is ${rmbe.length} bytes, state says ${state.rmbeSize}`);
    }
    if (tx.state !== state) throw new RangeError('tx belongs to another connection state');
    this.#st = state;
    this.#ring = rmbe;
    this.#tx = tx;
    this.#inline = opts.oobInline ?? false;
  }

  get state(): ConnState {
    return this.#st;
  }

  /** Bytes read() can return now (`bytes_to_rcv`). */
  get readable(): number {
    return this.#st.bytesToRcv;
  }

  /** Urgent state (UrgState values: VALID, NOTYET, READ). */
  get urgentState(): UrgStateValue {
    return this.#st.urgState;
  }

  /** The last urgent byte received. */
  get urgentByte(): number {
    return this.#st.urgByte;
  }

  /**
   * Handles a received CDC addressed to this connection (`smc_cdc_rx_handler` and
   * `smc_cdc_msg_recv_action`). Returns the reused result object.
   *
   * - failover_validation (7.7): compare its seqno with the last accepted one; a seqno we have not
   *   seen means lost CDCs: `out-of-sync`, and every later CDC is refused too.
   * - seqno order (7.2): a CDC before the last accepted one (signed 16-bit) is dropped.
   * - cursors (7.2): each is adopted unless older than the one we have; the producer-cursor distance
   *   becomes readable bytes, the consumer-cursor distance free space in the peer's RMBE.
   * - urgent (7.5): urg_data_present with new data: the byte before the producer cursor is urgent
   *   (count 0: the last byte of the ring); without SO_OOBINLINE it leaves the normal stream.
   * - flags: write_blocked / cons_curs_upd_req / urg_data_pending of this CDC replace the previous
   *   ones; the connection-state flags are reported and kept (sticky) in the state.
   */
  onCdc(fields: Readonly<CdcFields>): CdcRxResult {
    const st = this.#st;
    const r = this.#res;
    r.newBytes = 0;
    r.freed = 0;
    r.txWanted = false;
    r.urgentArrived = false;
    r.urgentAnnounced = false;
    r.urgentSendDone = false;
    r.peerWriteBlocked = fields.writeBlocked;
    r.consCursUpdReq = fields.consCursUpdReq;
    r.peerDoneWriting = fields.peerDoneWriting;
    r.peerConnClosed = fields.peerConnClosed;
    r.peerConnAbort = fields.peerConnAbort;
    if (st.outOfSync) {
      r.verdict = 'out-of-sync';
      return r;
    }
    if (fields.failoverValidation) {
      // smc_cdc_msg_validate: (s16)(last accepted - received) < 0 means we never saw this seqno.
      if ((((st.rxSeq - fields.seqno) << 16) >> 16) < 0) {
        st.outOfSync = true;
        r.verdict = 'out-of-sync';
      } else {
        r.verdict = 'validated';
      }
      return r;
    }
    if (seqnoOlder(fields.seqno, st.rxSeq)) {
      r.verdict = 'old';
      return r;
    }
    const size = st.rmbeSize;
    // The producer cursor may not be more than one ring ahead of what we have read: that would be
    // data written over unread bytes (the peer may only write up to our confirmed cursor + size).
    const prodNewer = cursorNewer(st.peerProd, fields.prod);
    if (prodNewer && (fields.prod.count >= size || !cursorWithinRing(st.cons, fields.prod))) {
      r.verdict = 'bad-cursor';
      return r;
    }
    const urgTxPend = st.urgTxPend;
    const freed = this.#tx.onPeerCdc(fields);
    if (freed < 0) {
      r.verdict = 'bad-cursor';
      return r;
    }
    r.verdict = 'accepted';
    r.freed = freed;
    r.urgentSendDone = urgTxPend && !st.urgTxPend;

    st.rxSeq = fields.seqno;
    const old = this.#tmp;
    cursorCopy(old, st.peerProd);
    if (prodNewer) cursorCopy(st.peerProd, fields.prod);
    st.peerWriteBlocked = fields.writeBlocked;
    st.peerUrgDataPending = fields.urgDataPending;
    st.peerUrgDataPresent = fields.urgDataPresent;
    st.peerConsCursUpdReq = fields.consCursUpdReq;
    if (fields.peerDoneWriting) st.peerDoneWriting = true;
    if (fields.peerConnClosed) st.peerConnClosed = true;
    if (fields.peerConnAbort) st.peerConnAbort = true;

    let diffProd = cursorDiff(size, old, st.peerProd);
    if (diffProd > 0) {
      if (fields.urgDataPresent) {
        // smc_cdc_handle_urg_data_arrival: the urgent byte is the one before the producer cursor.
        cursorCopy(st.urgCurs, st.peerProd);
        st.urgState = UrgState.VALID.value;
        if (!this.#inline) diffProd--; // skipped by the reader, so not counted as readable
        const at = st.urgCurs.count !== 0 ? st.urgCurs.count - 1 : size - 1;
        st.urgByte = this.#ring[at]!;
        r.urgentArrived = true;
      }
      st.bytesToRcv += diffProd;
    } else if (fields.urgDataPending) {
      st.urgState = UrgState.NOTYET.value;
      r.urgentAnnounced = true;
    }
    r.newBytes = diffProd;
    // smc_cdc_msg_recv_action: trigger the sndbuf consumer.
    r.txWanted = (freed > 0 && this.#tx.prepared > 0) || fields.consCursUpdReq || fields.urgDataPending;
    return r;
  }

  /**
   * Copies up to `max` readable bytes into `dst[off..]` from our consumer cursor (split at the ring's
   * end) and advances the cursor (`smc_rx_recvmsg`, non-peek). Returns the count; 0 when nothing is
   * readable (EOF is the close machine's business). Urgent data (7.5): without SO_OOBINLINE the
   * urgent byte is skipped when the reader reaches it; with it, a read stops just before the urgent
   * byte and the next read returns it alone. Afterwards call {@link consumerUpdateDue}.
   */
  read(dst: Uint8Array, off: number, max: number): number {
    if (!(off >= 0 && max >= 0 && off + max <= dst.length)) {
      throw new RangeError(`read range [${off}, ${off + max}) is outside the ${dst.length}-byte destination`);
    }
    const st = this.#st;
    if (st.bytesToRcv === 0) {
      // smc_rx_recvmsg_data_available: a lone urgent byte is skipped (and confirmed) here.
      if (st.urgState === UrgState.VALID.value) this.#updateConsumer(0);
      return 0;
    }
    if (max === 0) return 0;
    let readable = st.bytesToRcv;
    // With SO_OOBINLINE, always stop at the urgent byte.
    if (st.urgState === UrgState.VALID.value && this.#inline && readable > 1) readable--;
    const n = max < readable ? max : readable;
    const size = st.rmbeSize;
    const pos = st.cons.count;
    const first = Math.min(n, size - pos);
    copyRange(this.#ring, pos, dst, off, first);
    if (first < n) copyRange(this.#ring, 0, dst, off + first, n - first);
    st.bytesToRcv -= n;
    this.#updateConsumer(n);
    return n;
  }

  /**
   * recv(MSG_OOB) (`smc_rx_recv_urg`, 7.5): the urgent byte (0..255), or -1 when there is none to
   * give (EINVAL in Linux: SO_OOBINLINE set, or no urgent byte pending). Unless `peek`, the byte is
   * consumed and it is skipped in the normal stream when the reader reaches it. Afterwards call
   * {@link consumerUpdateDue}: skipping the byte forces an update (Linux sends it from here too).
   */
  readUrgent(peek = false): number {
    const st = this.#st;
    if (this.#inline || st.urgState !== UrgState.VALID.value) return -1;
    if (!peek) st.urgState = UrgState.READ.value;
    // Linux marks the skip as pending only when the reader is more than one byte before the urgent
    // byte (diff > 1). With the reader exactly before it (diff == 1, a lone urgent byte not yet
    // skipped) nothing would ever skip it and the sender would wait forever for its confirmation;
    // we mark it pending whenever the reader has not passed it (signed distance >= 1).
    if (cursorDistance(st.rmbeSize, st.cons, st.urgCurs) >= 1) st.urgSkipPend = true;
    if (!peek) this.#updateConsumer(0);
    return st.urgByte;
  }

  /**
   * `smc_rx_update_consumer`: advance the consumer cursor by `len`, then handle the urgent byte: in
   * the normal (non-inline) mode skip it when the cursor reaches it, in inline mode note that it has
   * been read; either forces the next consumer update (spec 7.4).
   */
  #updateConsumer(len: number): void {
    const st = this.#st;
    const size = st.rmbeSize;
    cursorAdd(st.cons, len, size);
    if (st.urgState === UrgState.VALID.value || st.urgSkipPend) {
      // smc_curs_comp(cons, urg_curs), but wrap-safe (see cursorDistance).
      const diff = cursorDistance(size, st.cons, st.urgCurs);
      if (this.#inline) {
        if (diff === 0) {
          st.forceUpdate = true;
          st.urgState = UrgState.READ.value;
        }
      } else if (diff === 1) {
        st.forceUpdate = true;
        cursorAdd(st.cons, 1, size);
        st.urgSkipPend = false;
      } else if (diff < -1) {
        st.urgState = UrgState.READ.value;
      }
    }
  }

  /**
   * Whether a consumer-cursor update CDC is due (`smc_tx_consumer_update`, spec 7.4), exactly the
   * kernel rule:
   *   cons_curs_upd_req from the peer
   *   || forced (the reader reached or skipped the urgent byte)
   *   || (to_confirm > rmbe_update_limit
   *       && (sender_free <= rmbe_size / 2 || the peer's write_blocked))
   * with to_confirm = bytes read since the consumer cursor we last sent, sender_free = rmbe_size -
   * (peer producer cursor - that confirmed cursor), rmbe_update_limit = max(rmbe_size / 10, 2304)
   * (see rmbeUpdateLimit). Never after the peer aborted. Like the kernel, the peer's write_blocked is
   * forgotten once everything is read.
   *
   * A true answer is remembered until a CDC goes out (any CDC carries the consumer cursor), so a
   * driver without a free send slot can ask again later. To send the update: `state.fillCdc(out)`
   * (it carries the current cursors and flags) and post it.
   */
  consumerUpdateDue(): boolean {
    const st = this.#st;
    if (st.peerConnAbort) return false;
    if (st.updateOwed) return true;
    const size = st.rmbeSize;
    const limit = st.rmbeUpdateLimit;
    const toConfirm = cursorDiff(size, st.confirmed, st.cons);
    let senderFree = size;
    if (toConfirm > limit) senderFree = size - cursorDiffLarge(size, st.confirmed, st.peerProd);
    const due = st.peerConsCursUpdReq || st.forceUpdate ||
      (toConfirm > limit && (senderFree <= size / 2 || st.peerWriteBlocked));
    if (st.peerWriteBlocked && st.bytesToRcv === 0) st.peerWriteBlocked = false;
    if (due) st.updateOwed = true;
    return due;
  }
}
