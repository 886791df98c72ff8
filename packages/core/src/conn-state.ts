/**
 * The per-connection bookkeeping of the SMC-R data path (spec 7.1-7.5, 7.7, 8), shared by the send
 * side (tx.ts, cf. smc_tx.c) and the receive side (rx.ts, cf. smc_rx.c / smc_cdc.c).
 *
 * It holds what the kernel keeps in `struct smc_connection`: the send-ring cursors (`tx_curs_prep`,
 * `tx_curs_sent`, `tx_curs_fin`), the control block of the CDCs we send (`local_tx_ctrl`: producer
 * cursor into the peer's RMBE, consumer cursor of our RMBE, flags, sequence number), the last
 * accepted CDC of the peer (`local_rx_ctrl`), the consumer cursor last sent (`rx_curs_confirmed`)
 * and the byte counters (`sndbuf_space`, `peer_rmbe_space`, `bytes_to_rcv`).
 *
 * Every CDC we send, whether it carries data (SmcTx.nextTransfer), only a consumer-cursor update
 * (SmcRx.consumerUpdateDue) or close flags (the close machine), is built by {@link ConnState.fillCdc}:
 * that is where the sequence number advances (first CDC carries 1, spec 7.1) and where the CDC
 * commits what it announces. Nothing here does I/O; nothing here allocates after construction.
 *
 * Fields are public for the tx/rx/close modules and for diagnostics (smc_diag shows these cursors);
 * only tx.ts, rx.ts and fillCdc change the cursors and counters. The close machine sets the
 * `local*` connection-state flags before it asks for a CDC.
 */
import { seqnoNext, type CdcCursor, type CdcFields } from '@smc-r/wire';

/**
 * `SOCK_MIN_SNDBUF / 2` on 64-bit Linux. Derivation (include/net/sock.h):
 * `SOCK_MIN_SNDBUF = 2 * TCP_SKB_MIN_TRUESIZE` and
 * `TCP_SKB_MIN_TRUESIZE = 2048 + SKB_DATA_ALIGN(sizeof(struct sk_buff))`. On x86-64 and arm64
 * `sizeof(struct sk_buff)` is 232 in the usual configurations, and SKB_DATA_ALIGN rounds it up to the
 * 64-byte cache line: 256. So TCP_SKB_MIN_TRUESIZE = 2304, SOCK_MIN_SNDBUF = 4608 (what `ss -m`
 * shows as `tb4608` for a socket at its minimum send buffer) and its half is 2304.
 */
export const SOCK_MIN_SNDBUF_HALF = 2304;

/** Smallest ring we accept (SMC_BUF_MIN_SIZE, 16 KiB: compressed size 0, spec 8.1). */
export const RING_SIZE_MIN = 16 * 1024;
/** Largest ring of the 4-bit compressed size field (n = 15: 512 MiB, spec 8.1). */
export const RING_SIZE_MAX = 512 * 1024 * 1024;

/**
 * The receiver's window-update threshold (`smc_rmb_wnd_update_limit`, L-core): a consumer-cursor
 * update goes out only when more than this many consumed bytes are unconfirmed (spec 7.4). RFC 7609
 * asks for "a minimum increase in the window size of 10% of the receive buffer space"; Linux uses
 * `max(rmbe_size / 10, SOCK_MIN_SNDBUF / 2)` (it was `min` until a 2022 fix), with C integer
 * division: 2304 for a 16 KiB RMBE (1638 < 2304), 3276 for 32 KiB, 6553 for 64 KiB.
 */
export function rmbeUpdateLimit(rmbeSize: number): number {
  return Math.max(Math.floor(rmbeSize / 10), SOCK_MIN_SNDBUF_HALF);
}

/** True for a ring size SMC-R can announce: `16 KiB << n`, n = 0..15 (spec 8.1). */
export function isRingSize(size: number): boolean {
  return Number.isInteger(size) && size >= RING_SIZE_MIN && size <= RING_SIZE_MAX && (size & (size - 1)) === 0;
}

/**
 * `smc_curs_diff_large` (L-cdc): bytes from `old` to `cur` where they may be more than one ring apart,
 * capped at `size`; the wrap counter may have gone from 0xffff to 0. Used for the sender's free space
 * in the consumer-update rule (spec 7.4), where a plain {@link cursorDiff} could under-count.
 */
export function cursorDiffLarge(size: number, old: Readonly<CdcCursor>, cur: Readonly<CdcCursor>): number {
  if (old.wrap < cur.wrap) {
    return Math.min(size - old.count + cur.count + (cur.wrap - old.wrap - 1) * size, size);
  }
  if (old.wrap > cur.wrap) {
    return Math.min(size - old.count + cur.count + (cur.wrap + 0xffff - old.wrap) * size, size);
  }
  return Math.max(0, cur.count - old.count);
}

/**
 * True when `ahead` is at most one ring ahead of `behind`, i.e. `0 <= ahead - behind <= size` in
 * 16-bit wrap arithmetic. The data path uses it to refuse cursors that would mean data written over
 * unread bytes (producer more than a ring ahead of our consumer cursor, or a consumer cursor ahead of
 * what we produced). The kernel trusts the peer here; we report a protocol error instead.
 */
export function cursorWithinRing(behind: Readonly<CdcCursor>, ahead: Readonly<CdcCursor>): boolean {
  const d = (ahead.wrap - behind.wrap) & 0xffff;
  if (d === 0) return ahead.count >= behind.count;
  if (d === 1) return ahead.count <= behind.count;
  return false;
}

/**
 * Signed distance from `from` to `to` (positive when `to` is ahead) in 16-bit serial arithmetic on
 * the wrap counter, valid while they are less than 32768 rings apart. It replaces the kernel's
 * `smc_curs_comp` for the urgent-byte position: that one compares wraps as plain numbers, so an
 * urgent byte just after the wrap counter went from 0xffff to 0 looks far behind the reader, is never
 * skipped, and the sender waits forever for its confirmation.
 */
export function cursorDistance(size: number, from: Readonly<CdcCursor>, to: Readonly<CdcCursor>): number {
  return (((to.wrap - from.wrap) << 16) >> 16) * size + (to.count - from.count);
}

/** Send marks are ring positions modulo 2^30, so that they stay small integers (no heap number). */
const MARK_MOD = 0x4000_0000;

/**
 * The "send mark" a CDC carries to its send completion (the kernel keeps the cursor in
 * `smc_cdc_tx_pend.cursor`): the position of cursor `c` in a ring of `size` bytes, modulo 2^30.
 * A small integer, so returning and storing it allocates nothing; two marks less than 2^30 bytes
 * apart (a ring is at most 2^29) give their distance exactly with {@link markDistance}.
 */
export function ringMark(c: Readonly<CdcCursor>, size: number): number {
  return (c.wrap & (MARK_MOD / size - 1)) * size + c.count;
}

/** Bytes from mark `from` to mark `to` (both from {@link ringMark} of the same ring). */
export function markDistance(from: number, to: number): number {
  return (to - from) & (MARK_MOD - 1);
}

/** Copies `src` into `dst` in place. */
export function cursorCopy(dst: CdcCursor, src: Readonly<CdcCursor>): void {
  dst.wrap = src.wrap;
  dst.count = src.count;
}

/** Urgent-data state of the receive side (`enum smc_urg_state`, L-smc.h; values are the kernel's). */
export const UrgState = {
  /** An urgent byte has arrived and is not yet consumed (`SMC_URG_VALID`). */
  VALID: { value: 1, name: 'valid', text: 'urgent byte arrived, not yet read' },
  /** The peer announced urgent data (urg_data_pending) that has not arrived (`SMC_URG_NOTYET`). */
  NOTYET: { value: 2, name: 'notyet', text: 'urgent data announced, not yet arrived' },
  /** No urgent byte outstanding (`SMC_URG_READ`, the initial state, smc_rx_init). */
  READ: { value: 3, name: 'read', text: 'no urgent byte outstanding' },
} as const;
export type UrgStateValue = (typeof UrgState)[keyof typeof UrgState]['value'];

export interface ConnStateOptions {
  /** Our send buffer (ring) size in bytes: `16 KiB << n` (spec 8.2: compress(sk_sndbuf / 2)). */
  readonly sndbufSize: number;
  /** Our RMBE size in bytes (what we announced in CLC; spec 8.1). */
  readonly rmbeSize: number;
  /** The peer's RMBE size, from its CLC Accept/Confirm. */
  readonly peerRmbeSize: number;
  /** The peer's alert token (CLC): every CDC we send carries it (spec 7.1). */
  readonly peerToken: number;
}

function newCursor(): CdcCursor {
  return { wrap: 0, count: 0 };
}

export class ConnState {
  readonly sndbufSize: number;
  readonly rmbeSize: number;
  readonly peerRmbeSize: number;
  readonly peerToken: number;
  /** {@link rmbeUpdateLimit} of our RMBE (`conn->rmbe_update_limit`). */
  readonly rmbeUpdateLimit: number;

  // ---- send ring (cf. TCP: prep = write_seq, sent = snd_nxt, fin = snd_una) ----------------------
  /** How far the application has written into the send ring (`tx_curs_prep`). */
  readonly prep: CdcCursor = newCursor();
  /** How far the ring has been RDMA-written to the peer (`tx_curs_sent`). */
  readonly sent: CdcCursor = newCursor();
  /** How far the CDC send completions have released the ring (`tx_curs_fin`). */
  readonly fin: CdcCursor = newCursor();
  /** Free bytes in the send ring (`sndbuf_space`): sndbufSize - (prep - fin). */
  sndbufSpace: number;
  /** Our CDCs posted and not completed (`cdc_pend_tx_wr`); autocorking waits on it. */
  cdcInFlight = 0;

  // ---- local_tx_ctrl: what our next CDC says -------------------------------------------------------
  /** Last sequence number sent (`tx_cdc_seq`); the first CDC carries 1 (spec 7.1). */
  txSeq = 0;
  /** Our producer cursor in the peer's RMBE (`local_tx_ctrl.prod`). */
  readonly prod: CdcCursor = newCursor();
  /** Our consumer cursor in our own RMBE (`local_tx_ctrl.cons`), advanced by reads. */
  readonly cons: CdcCursor = newCursor();
  /** Free bytes in the peer's RMBE as we know it (`peer_rmbe_space`, "cf. snd_wnd"). */
  peerRmbeSpace: number;
  /** Producer flags of our next CDC (spec 7.1 byte 24). */
  writeBlocked = false;
  urgDataPending = false;
  urgDataPresent = false;
  /** One urgent send is outstanding until the peer has consumed everything (`urg_tx_pend`, 7.5). */
  urgTxPend = false;
  /** Connection-state flags of our CDCs (spec 7.1 byte 25): set by the close machine (spec 7.6). */
  localDoneWriting = false;
  localConnClosed = false;
  localConnAbort = false;

  // ---- receive side ------------------------------------------------------------------------------
  /** The consumer cursor carried by our last CDC (`rx_curs_confirmed`). */
  readonly confirmed: CdcCursor = newCursor();
  /** Bytes in our RMBE not yet read (`bytes_to_rcv`; excludes a skipped urgent byte). */
  bytesToRcv = 0;
  /** A consumer update was decided and not yet sent (kept until a CDC goes out). */
  updateOwed = false;
  /** The next consumer-update decision is forced (the reader reached the urgent byte, spec 7.4). */
  forceUpdate = false;

  // ---- local_rx_ctrl: the peer's last accepted CDC -------------------------------------------------
  /** Sequence number of the peer's last accepted CDC (`local_rx_ctrl.seqno`). */
  rxSeq = 0;
  /** How far the peer has written into our RMBE (`local_rx_ctrl.prod`). */
  readonly peerProd: CdcCursor = newCursor();
  /** How far the peer has consumed its RMBE (`local_rx_ctrl.cons`). */
  readonly peerCons: CdcCursor = newCursor();
  /** The peer's producer flags from its last accepted CDC (overwritten by each, as in the kernel). */
  peerWriteBlocked = false;
  peerUrgDataPending = false;
  peerUrgDataPresent = false;
  peerConsCursUpdReq = false;
  /** The peer's connection-state flags, sticky once received (a Linux peer never clears them). */
  peerDoneWriting = false;
  peerConnClosed = false;
  peerConnAbort = false;
  /** A failover-validation CDC disagreed (7.7): no further CDC is accepted (`conn->out_of_sync`). */
  outOfSync = false;

  // ---- urgent receive (spec 7.5) -----------------------------------------------------------------
  urgState: UrgStateValue = UrgState.READ.value;
  /** Producer cursor of the CDC that brought the urgent byte: the byte is just before it. */
  readonly urgCurs: CdcCursor = newCursor();
  /** The urgent byte (`urg_rx_byte`). */
  urgByte = 0;
  /** recv(MSG_OOB) took the byte before the reader reached it: skip it when reached. */
  urgSkipPend = false;

  constructor(opts: ConnStateOptions) {
    for (const k of ['sndbufSize', 'rmbeSize', 'peerRmbeSize'] as const) {
      if (!isRingSize(opts[k])) throw new RangeError(`${k} ${opts[k]} is not 16 KiB << n (n = 0..15)`);
    }
    if (!Number.isInteger(opts.peerToken) || opts.peerToken < 0 || opts.peerToken > 0xffffffff) {
      throw new RangeError(`peerToken ${opts.peerToken} is not a u32`);
    }
    this.sndbufSize = opts.sndbufSize;
    this.rmbeSize = opts.rmbeSize;
    this.peerRmbeSize = opts.peerRmbeSize;
    this.peerToken = opts.peerToken;
    this.rmbeUpdateLimit = rmbeUpdateLimit(opts.rmbeSize);
    this.sndbufSpace = opts.sndbufSize;
    this.peerRmbeSpace = opts.peerRmbeSize;
  }

  /** True once the peer sent peer_conn_closed or peer_conn_abort (`smc_cdc_rxed_any_close`). */
  get rxedAnyClose(): boolean {
    return this.peerConnClosed || this.peerConnAbort;
  }

  /**
   * Fills `out` with the CDC to send now and commits it (`smc_cdc_msg_send`, spec 7.1-7.4): the
   * sequence number advances (mod 65536; the first CDC carries 1), the consumer cursor it carries
   * becomes the confirmed one (`rx_curs_confirmed`), a pending consumer-update request or decision
   * is satisfied, and after a CDC with urg_data_present both urgent flags are cleared (7.5).
   * Returns the send mark to hand to `SmcTx.onSendComplete` when this CDC's send completes.
   *
   * Call it only with a send slot in hand: what it commits is on the wire once posted. Allocates
   * nothing; `out` is the caller's reusable object (e.g. from `newCdcFields()`).
   */
  fillCdc(out: CdcFields): number {
    this.txSeq = seqnoNext(this.txSeq);
    out.type = 'cdc';
    out.seqno = this.txSeq;
    out.token = this.peerToken;
    out.prod.wrap = this.prod.wrap;
    out.prod.count = this.prod.count;
    out.cons.wrap = this.cons.wrap;
    out.cons.count = this.cons.count;
    out.writeBlocked = this.writeBlocked;
    out.urgDataPending = this.urgDataPending;
    out.urgDataPresent = this.urgDataPresent;
    // Linux never requests a consumer-cursor update (spec 7.1); neither do we.
    out.consCursUpdReq = false;
    out.failoverValidation = false;
    out.peerDoneWriting = this.localDoneWriting;
    out.peerConnClosed = this.localConnClosed;
    out.peerConnAbort = this.localConnAbort;
    out.credits = 0;
    // Every CDC carries our consumer cursor: it confirms it (spec 7.4, smc_cdc_msg_send).
    cursorCopy(this.confirmed, this.cons);
    this.peerConsCursUpdReq = false;
    this.updateOwed = false;
    this.forceUpdate = false;
    // The CDC with urg_data_present ends the urgent announcement (spec 7.5, smcr_tx_sndbuf_nonempty).
    if (this.urgDataPresent) {
      this.urgDataPending = false;
      this.urgDataPresent = false;
    }
    this.cdcInFlight++;
    return ringMark(this.sent, this.sndbufSize);
  }
}
