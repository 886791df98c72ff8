/**
 * CDC (connection data control) messages and cursor arithmetic (RFC 7609 section 4.9, Linux
 * `net/smc/smc_cdc.h`; spec sections 7.1, 7.2, 7.8).
 *
 * A CDC is a 44-byte RDMA SEND that tells the peer how far we have written into its RMBE (producer
 * cursor) and how far we have consumed our own (consumer cursor), plus flags. It is on the data path,
 * so `encodeCdc` and `decodeCdcInto` allocate nothing; `decodeCdc` returns a fresh object for callers
 * that keep the message.
 *
 * Strictness: `[off, end)` must be exactly the 44-byte SEND payload. Reserved bytes and reserved flag
 * bits are ignored on decode, as Linux does, and zeroed on encode; a conformance checker can find non-zero
 * ones with {@link cdcFirstNonZeroReserved}. Byte 26 is Alibaba's returned-credits count (spec 7.8);
 * it is decoded as `credits` always (0 from peers without credit flow control).
 */
import { WireError, WireErrorCode, need, room, checkUint } from './errors.js';

/** CDC type byte (`SMC_CDC_MSG_TYPE`). */
export const CDC_MSG_TYPE = 0xfe;
/** Every CDC is 44 bytes (`SMC_WR_TX_SIZE`). */
export const CDC_MSG_LEN = 44;

/** Bits of the producer-flags byte (24) and connection-state-flags byte (25) (spec 7.1). */
export const CdcFlag = {
  WRITE_BLOCKED: { value: 0x80, byte: 24, name: 'write_blocked', text: 'sender has data queued but our RMBE is full' },
  URG_DATA_PENDING: { value: 0x40, byte: 24, name: 'urg_data_pending', text: 'urgent data queued, not yet written' },
  URG_DATA_PRESENT: { value: 0x20, byte: 24, name: 'urg_data_present', text: 'the byte before the producer cursor is urgent' },
  CONS_CURS_UPD_REQ: { value: 0x10, byte: 24, name: 'cons_curs_upd_req', text: 'send a consumer cursor update now' },
  FAILOVER_VALIDATION: { value: 0x08, byte: 24, name: 'failover_validation', text: 'replay of the last CDC after link failover' },
  PEER_DONE_WRITING: { value: 0x80, byte: 25, name: 'peer_done_writing', text: 'sender shut down its write side' },
  PEER_CONN_CLOSED: { value: 0x40, byte: 25, name: 'peer_conn_closed', text: 'sender closed the connection' },
  PEER_CONN_ABORT: { value: 0x20, byte: 25, name: 'peer_conn_abort', text: 'abnormal close' },
} as const;

/** A cursor: `count` = byte offset in the RMBE ring, `wrap` = 16-bit count of ring wraps (spec 7.2). */
export interface CdcCursor {
  wrap: number;
  count: number;
}

/**
 * Mutable CDC fields, filled in place by {@link decodeCdcInto}. Create one with {@link newCdcFields}
 * and reuse it for every received CDC.
 */
export interface CdcFields {
  type: 'cdc';
  /** Per-connection send sequence number (u16). */
  seqno: number;
  /** The receiver's alert token (u32). */
  token: number;
  /** How far the sender has written into the receiver's RMBE. */
  prod: CdcCursor;
  /** How far the sender has consumed its own RMBE (the piggy-backed "ack"). */
  cons: CdcCursor;
  writeBlocked: boolean;
  urgDataPending: boolean;
  urgDataPresent: boolean;
  consCursUpdReq: boolean;
  failoverValidation: boolean;
  peerDoneWriting: boolean;
  peerConnClosed: boolean;
  peerConnAbort: boolean;
  /** Byte 26: RQ credits returned (Alibaba, u8); 0 without credit flow control. */
  credits: number;
}

/** A decoded CDC (read-only view of {@link CdcFields}). */
export interface CdcMessage {
  readonly type: 'cdc';
  readonly seqno: number;
  readonly token: number;
  readonly prod: Readonly<CdcCursor>;
  readonly cons: Readonly<CdcCursor>;
  readonly writeBlocked: boolean;
  readonly urgDataPending: boolean;
  readonly urgDataPresent: boolean;
  readonly consCursUpdReq: boolean;
  readonly failoverValidation: boolean;
  readonly peerDoneWriting: boolean;
  readonly peerConnClosed: boolean;
  readonly peerConnAbort: boolean;
  readonly credits: number;
}

/** A zeroed {@link CdcFields} to pass to {@link decodeCdcInto} or to fill for {@link encodeCdc}. */
export function newCdcFields(): CdcFields {
  return {
    type: 'cdc', seqno: 0, token: 0,
    prod: { wrap: 0, count: 0 }, cons: { wrap: 0, count: 0 },
    writeBlocked: false, urgDataPending: false, urgDataPresent: false, consCursUpdReq: false,
    failoverValidation: false, peerDoneWriting: false, peerConnClosed: false, peerConnAbort: false,
    credits: 0,
  };
}

function rd32(b: Uint8Array, o: number): number {
  return b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
}
function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Header checks shared by both decoders; throws, never writes. */
function checkCdc(buf: Uint8Array, off: number, end: number): void {
  need(end, off, 2, 'cdc');
  const t = buf[off]!;
  if (t !== CDC_MSG_TYPE) {
    throw new WireError(WireErrorCode.UNKNOWN_TYPE, `type byte 0x${t.toString(16).padStart(2, '0')} is not 0xfe`, off, 'cdc');
  }
  const len = buf[off + 1]!;
  if (len !== CDC_MSG_LEN) throw new WireError(WireErrorCode.BAD_LENGTH, `length byte is ${len}, must be 44`, off + 1, 'cdc');
  need(end, off, CDC_MSG_LEN, 'cdc');
  if (end - off !== CDC_MSG_LEN) {
    throw new WireError(WireErrorCode.BAD_LENGTH, `declares 44 bytes, the SEND carries ${end - off}`, off + 1, 'cdc');
  }
}

/**
 * Decodes a CDC into the caller's `out` without allocating; returns `out`. `out` is untouched when it
 * throws WireError: TRUNCATED (fewer than 44 bytes), UNKNOWN_TYPE (type byte not 0xFE), BAD_LENGTH
 * (length byte not 44, or more than 44 bytes in `[off, end)`).
 */
export function decodeCdcInto(buf: Uint8Array, off: number, end: number, out: CdcFields): CdcFields {
  checkCdc(buf, off, end);
  out.type = 'cdc';
  out.seqno = (buf[off + 2]! << 8) | buf[off + 3]!;
  out.token = rd32(buf, off + 4);
  out.prod.wrap = (buf[off + 10]! << 8) | buf[off + 11]!;
  out.prod.count = rd32(buf, off + 12);
  out.cons.wrap = (buf[off + 18]! << 8) | buf[off + 19]!;
  out.cons.count = rd32(buf, off + 20);
  const pf = buf[off + 24]!;
  out.writeBlocked = (pf & 0x80) !== 0;
  out.urgDataPending = (pf & 0x40) !== 0;
  out.urgDataPresent = (pf & 0x20) !== 0;
  out.consCursUpdReq = (pf & 0x10) !== 0;
  out.failoverValidation = (pf & 0x08) !== 0;
  const cf = buf[off + 25]!;
  out.peerDoneWriting = (cf & 0x80) !== 0;
  out.peerConnClosed = (cf & 0x40) !== 0;
  out.peerConnAbort = (cf & 0x20) !== 0;
  out.credits = buf[off + 26]!;
  return out;
}

/** Decodes a CDC into a fresh object (same errors as {@link decodeCdcInto}). */
export function decodeCdc(buf: Uint8Array, off = 0, end: number = buf.length): CdcMessage {
  return decodeCdcInto(buf, off, end, newCdcFields());
}

/**
 * Writes a 44-byte CDC at `off` and returns `off + 44`. Allocates nothing. Throws WireError
 * BUFFER_TOO_SMALL (checked first) or BAD_VALUE (seqno / wrap not u16, token / count not u32, credits
 * not u8). Reserved bytes and bits are zeroed.
 */
export function encodeCdc(msg: CdcMessage, buf: Uint8Array, off: number): number {
  room(buf, off, CDC_MSG_LEN, 'cdc');
  checkUint(msg.seqno, 0xffff, 'seqno', 'cdc', off + 2);
  checkUint(msg.token, 0xffffffff, 'token', 'cdc', off + 4);
  checkUint(msg.prod.wrap, 0xffff, 'prod.wrap', 'cdc', off + 10);
  checkUint(msg.prod.count, 0xffffffff, 'prod.count', 'cdc', off + 12);
  checkUint(msg.cons.wrap, 0xffff, 'cons.wrap', 'cdc', off + 18);
  checkUint(msg.cons.count, 0xffffffff, 'cons.count', 'cdc', off + 20);
  checkUint(msg.credits, 0xff, 'credits', 'cdc', off + 26);
  // Zero only the reserved bytes: a native fill() of 44 bytes costs more than the whole encode.
  buf[off + 8] = 0;
  buf[off + 9] = 0;
  buf[off + 16] = 0;
  buf[off + 17] = 0;
  for (let i = off + 27; i < off + CDC_MSG_LEN; i++) buf[i] = 0;
  buf[off] = CDC_MSG_TYPE;
  buf[off + 1] = CDC_MSG_LEN;
  wr16(buf, off + 2, msg.seqno);
  wr32(buf, off + 4, msg.token);
  wr16(buf, off + 10, msg.prod.wrap);
  wr32(buf, off + 12, msg.prod.count);
  wr16(buf, off + 18, msg.cons.wrap);
  wr32(buf, off + 20, msg.cons.count);
  buf[off + 24] =
    (msg.writeBlocked ? 0x80 : 0) | (msg.urgDataPending ? 0x40 : 0) | (msg.urgDataPresent ? 0x20 : 0) |
    (msg.consCursUpdReq ? 0x10 : 0) | (msg.failoverValidation ? 0x08 : 0);
  buf[off + 25] = (msg.peerDoneWriting ? 0x80 : 0) | (msg.peerConnClosed ? 0x40 : 0) | (msg.peerConnAbort ? 0x20 : 0);
  buf[off + 26] = msg.credits;
  return off + CDC_MSG_LEN;
}

/**
 * For conformance checks: the absolute offset of the first byte of the CDC at `off` that has a
 * non-zero reserved part (cursor reserved halves at 8-9 and 16-17, flag bits 24 & 0x07 and 25 & 0x1F,
 * bytes 27-43), or -1 when all are zero. `creditsNegotiated = false` also counts byte 26 as reserved.
 * Call it only on bytes {@link decodeCdc} accepted.
 */
export function cdcFirstNonZeroReserved(buf: Uint8Array, off = 0, creditsNegotiated = true): number {
  if (buf[off + 8] !== 0) return off + 8;
  if (buf[off + 9] !== 0) return off + 9;
  if (buf[off + 16] !== 0) return off + 16;
  if (buf[off + 17] !== 0) return off + 17;
  if ((buf[off + 24]! & 0x07) !== 0) return off + 24;
  if ((buf[off + 25]! & 0x1f) !== 0) return off + 25;
  if (!creditsNegotiated && buf[off + 26] !== 0) return off + 26;
  for (let i = 27; i < CDC_MSG_LEN; i++) if (buf[off + i] !== 0) return off + i;
  return -1;
}

// ------------------------------------------------------------------------------------------------
// Cursor arithmetic (spec 7.2, `smc_curs_add`, `smc_curs_diff`, `smc_curs_comp`, `smc_cdc_cursor_to_host`)

/**
 * Advances `c` in place by `n` bytes in a ring of `size` bytes (`smc_curs_add`): the count wraps to
 * the start and `wrap` increments (mod 65536). Expects `0 <= c.count < size` and `0 <= n <= size`.
 */
export function cursorAdd(c: CdcCursor, n: number, size: number): void {
  let count = c.count + n;
  let wrap = c.wrap;
  while (count >= size) {
    count -= size;
    wrap = (wrap + 1) & 0xffff;
  }
  c.count = count;
  c.wrap = wrap;
}

/**
 * Bytes from `old` to `cur` in a ring of `size` (`smc_curs_diff`), assuming `old` is not ahead of `cur`
 * by more than one wrap: same wrap → `cur.count - old.count`, different wrap → `size - old.count +
 * cur.count`; never negative. Bytes readable = cursorDiff(size, consumed, received producer cursor).
 */
export function cursorDiff(size: number, old: Readonly<CdcCursor>, cur: Readonly<CdcCursor>): number {
  const d = old.wrap !== cur.wrap ? size - old.count + cur.count : cur.count - old.count;
  return d > 0 ? d : 0;
}

/**
 * Signed distance from `old` to `cur` (`smc_curs_comp`): negative when `old` is ahead of `cur`
 * (compared by wrap, then count, without 16-bit wraparound handling, like the kernel).
 */
export function cursorComp(size: number, old: Readonly<CdcCursor>, cur: Readonly<CdcCursor>): number {
  if (old.wrap > cur.wrap || (old.wrap === cur.wrap && old.count > cur.count)) return -cursorDiff(size, cur, old);
  return cursorDiff(size, old, cur);
}

/**
 * The receive rule for cursors in a CDC (`smc_cdc_cursor_to_host`): true when the receiver adopts
 * `received` in place of `current`, i.e. `received` is not older. It is older when its wrap is smaller
 * (except wrap 0, taken as the 16-bit wraparound after 65535) or, with equal wraps, its count is
 * smaller. An equal cursor is adopted (a no-op).
 */
export function cursorNewer(current: Readonly<CdcCursor>, received: Readonly<CdcCursor>): boolean {
  if (current.wrap > received.wrap && received.wrap !== 0) return false;
  if (current.wrap === received.wrap && current.count > received.count) return false;
  return true;
}

/**
 * Duplicate / reordering test for CDC sequence numbers (spec 7.2, 7.7): true when `seqno` is before
 * `last` in 16-bit serial arithmetic, `(s16)(seqno - last) < 0`. Such a CDC is dropped unless it has
 * failover_validation set.
 */
export function seqnoOlder(seqno: number, last: number): boolean {
  return (((seqno - last) << 16) >> 16) < 0;
}

/** The next sequence number after `seqno` (mod 65536). */
export function seqnoNext(seqno: number): number {
  return (seqno + 1) & 0xffff;
}
