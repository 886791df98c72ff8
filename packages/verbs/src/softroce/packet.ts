/**
 * Packet plumbing of the softroce transport: an allocation-free reader of the UDP payload of a
 * RoCEv2 datagram (BTH .. ICRC) into a reusable scratch object, the reusable encoder inputs for
 * `encodeIbPacket` of @smc-r/wire, and IPv4 text <-> number helpers that allocate nothing.
 *
 * The reader accepts exactly what `decodeIbPacket` (wire/roce.ts) accepts and yields the same
 * field values (a property test checks both on random and mutated packets); it exists because
 * decodeIbPacket returns fresh objects per packet, and the receive path must not allocate.
 */
import {
  AETH_LENGTH, BTH_LENGTH, BTH_TVER, ICRC_LENGTH, IMMDT_LENGTH, RETH_LENGTH,
  IbOpcode, ibExtHeaderLength, ibOpcodeInfo, type Bth, type IbPacketInput,
} from '@smc-r/wire';

/** RC opcode byte values used by the transport (IBA Table 38), from the wire table. */
export const OP = {
  SEND_FIRST: IbOpcode.SEND_FIRST.value,
  SEND_MIDDLE: IbOpcode.SEND_MIDDLE.value,
  SEND_LAST: IbOpcode.SEND_LAST.value,
  SEND_LAST_IMM: IbOpcode.SEND_LAST_IMM.value,
  SEND_ONLY: IbOpcode.SEND_ONLY.value,
  SEND_ONLY_IMM: IbOpcode.SEND_ONLY_IMM.value,
  WRITE_FIRST: IbOpcode.RDMA_WRITE_FIRST.value,
  WRITE_MIDDLE: IbOpcode.RDMA_WRITE_MIDDLE.value,
  WRITE_LAST: IbOpcode.RDMA_WRITE_LAST.value,
  WRITE_LAST_IMM: IbOpcode.RDMA_WRITE_LAST_IMM.value,
  WRITE_ONLY: IbOpcode.RDMA_WRITE_ONLY.value,
  WRITE_ONLY_IMM: IbOpcode.RDMA_WRITE_ONLY_IMM.value,
  READ_REQUEST: IbOpcode.RDMA_READ_REQUEST.value,
  READ_RESP_FIRST: IbOpcode.RDMA_READ_RESPONSE_FIRST.value,
  READ_RESP_MIDDLE: IbOpcode.RDMA_READ_RESPONSE_MIDDLE.value,
  READ_RESP_LAST: IbOpcode.RDMA_READ_RESPONSE_LAST.value,
  READ_RESP_ONLY: IbOpcode.RDMA_READ_RESPONSE_ONLY.value,
  ACK: IbOpcode.ACKNOWLEDGE.value,
} as const;

/** Why a datagram could not be read as an RC packet (all counted as `malformed` drops). */
export const ParseError = {
  OK: 0,
  TRUNCATED: 1,
  UNKNOWN_OPCODE: 2,
  BAD_TVER: 3,
  BAD_LENGTH: 4,
} as const;

const EXT_LEN = new Int16Array(256).fill(-1);
const HAS_RETH = new Uint8Array(256);
const HAS_AETH = new Uint8Array(256);
const HAS_IMM = new Uint8Array(256);
const HAS_PAYLOAD = new Uint8Array(256);
/** Extension headers we do not place (AtomicETH, AtomicAckETH, IETH): offset of what follows. */
const OTHER_EXT = new Uint8Array(256);
for (let op = 0; op < 256; op++) {
  const info = ibOpcodeInfo(op);
  if (info === undefined) continue;
  EXT_LEN[op] = ibExtHeaderLength(info);
  HAS_RETH[op] = info.reth ? 1 : 0;
  HAS_AETH[op] = info.aeth ? 1 : 0;
  HAS_IMM[op] = info.immDt ? 1 : 0;
  HAS_PAYLOAD[op] = info.payload ? 1 : 0;
  OTHER_EXT[op] = info.atomicEth || info.atomicAckEth || info.ieth ? 1 : 0;
}

/** One received packet, decoded in place. Reused for every datagram of a device. */
export class RxPacket {
  opcode = 0;
  se = false;
  migReq = false;
  padCnt = 0;
  pkey = 0;
  destQp = 0;
  ackReq = false;
  psn = 0;
  hasReth = false;
  /** RETH virtual address, 32-bit halves. */
  vaHi = 0;
  vaLo = 0;
  rkey = 0;
  dmaLen = 0;
  hasAeth = false;
  /** AETH syndrome without the reserved bit 7. */
  syndrome = 0;
  msn = 0;
  hasImm = false;
  imm = 0;
  /** Opcode carries headers the transport does not implement (atomics, invalidate). */
  unsupported = false;
  /** Payload without pad, absolute offsets in the datagram. */
  payloadOff = 0;
  payloadLen = 0;
  icrc = 0;
}

/**
 * Reads the UDP payload `buf[0, len)` into `out`. Returns ParseError.OK or the reason it is not
 * a well-formed RC packet: TRUNCATED (headers do not fit), UNKNOWN_OPCODE (not in the RC table),
 * BAD_TVER (TVer != 0, IBA C9-6), BAD_LENGTH (pad count, header-only opcode with bytes left, or
 * not a multiple of 4 bytes), with the same rules as `decodeIbPacket`.
 */
export function parseIbPacket(buf: Buffer, len: number, out: RxPacket): number {
  if (len < BTH_LENGTH) return ParseError.TRUNCATED;
  const op = buf[0]!;
  const ext = EXT_LEN[op]!;
  if (ext < 0) return ParseError.UNKNOWN_OPCODE;
  const b1 = buf[1]!;
  if ((b1 & 0x0f) !== BTH_TVER) return ParseError.BAD_TVER;
  const hdrEnd = len - ICRC_LENGTH;
  if (hdrEnd < BTH_LENGTH + ext) return ParseError.TRUNCATED;
  out.opcode = op;
  out.se = (b1 & 0x80) !== 0;
  out.migReq = (b1 & 0x40) !== 0;
  out.padCnt = (b1 >> 4) & 3;
  out.pkey = (buf[2]! << 8) | buf[3]!;
  out.destQp = (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!;
  out.ackReq = (buf[8]! & 0x80) !== 0;
  out.psn = (buf[9]! << 16) | (buf[10]! << 8) | buf[11]!;
  let p = BTH_LENGTH;
  out.hasReth = HAS_RETH[op] === 1;
  if (out.hasReth) {
    out.vaHi = buf.readUInt32BE(p);
    out.vaLo = buf.readUInt32BE(p + 4);
    out.rkey = buf.readUInt32BE(p + 8);
    out.dmaLen = buf.readUInt32BE(p + 12);
    p += RETH_LENGTH;
  }
  out.unsupported = OTHER_EXT[op] === 1;
  out.hasAeth = HAS_AETH[op] === 1;
  out.hasImm = HAS_IMM[op] === 1;
  if (out.unsupported) {
    p = BTH_LENGTH + ext;
  } else {
    if (out.hasAeth) {
      out.syndrome = buf[p]! & 0x7f;
      out.msn = (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!;
      p += AETH_LENGTH;
    }
    if (out.hasImm) {
      out.imm = buf.readUInt32BE(p);
      p += IMMDT_LENGTH;
    }
  }
  const rest = hdrEnd - p;
  if (HAS_PAYLOAD[op] === 0 && rest !== 0) return ParseError.BAD_LENGTH;
  if (out.padCnt > rest) return ParseError.BAD_LENGTH;
  if ((len & 3) !== 0) return ParseError.BAD_LENGTH;
  out.payloadOff = p;
  out.payloadLen = rest - out.padCnt;
  out.icrc = buf.readUInt32LE(hdrEnd);
  return ParseError.OK;
}

// ---------------------------------------------------------------------------------------------
// Encoder inputs: one mutable object per header combination, all sharing one BTH object, so that
// `encodeIbPacket` sees exactly the extension headers the opcode calls for and nothing is
// allocated per packet. The RETH VA is written by the caller over the placeholder 0n after
// encoding (a BigInt per packet would allocate).

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class TxTemplates {
  readonly bth: Mutable<Bth> = { opcode: 0, se: false, migReq: false, padCnt: 0, tver: 0, pkey: 0xffff, destQp: 0, ackReq: false, psn: 0 };
  readonly reth = { va: 0n, rkey: 0, dmaLength: 0 };
  readonly aeth = { syndrome: 0, msn: 0 };
  readonly plain: Mutable<IbPacketInput> = { bth: this.bth, payload: undefined, payloadOffset: 0, payloadLength: 0 };
  readonly imm: Mutable<IbPacketInput> = { bth: this.bth, immDt: 0, payload: undefined, payloadOffset: 0, payloadLength: 0 };
  readonly withReth: Mutable<IbPacketInput> = { bth: this.bth, reth: this.reth, payload: undefined, payloadOffset: 0, payloadLength: 0 };
  readonly rethImm: Mutable<IbPacketInput> = { bth: this.bth, reth: this.reth, immDt: 0, payload: undefined, payloadOffset: 0, payloadLength: 0 };
  readonly withAeth: Mutable<IbPacketInput> = { bth: this.bth, aeth: this.aeth, payload: undefined, payloadOffset: 0, payloadLength: 0 };

  /** The template for an opcode. */
  forOpcode(op: number): Mutable<IbPacketInput> {
    const reth = HAS_RETH[op] === 1;
    const imm = HAS_IMM[op] === 1;
    if (HAS_AETH[op] === 1) return this.withAeth;
    if (reth) return imm ? this.rethImm : this.withReth;
    return imm ? this.imm : this.plain;
  }
}

/** Header bytes (BTH + extension headers) of an opcode. */
export function headerLength(op: number): number {
  return BTH_LENGTH + EXT_LEN[op]!;
}

// ---------------------------------------------------------------------------------------------
// Byte copies

/**
 * Copies `src[srcOff, srcOff + len)` to `dst[dstOff..]`. Small copies (CDC and LLC messages are 44
 * bytes) run as a JS loop: Buffer.prototype.copy of a sub-range creates a Uint8Array view per call
 * on Node 20, which the loop avoids; large copies use the native memmove.
 */
export function copyBytes(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, len: number): void {
  if (len <= 64) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]!;
    return;
  }
  (src as Buffer).copy(dst, dstOff, srcOff, srcOff + len);
}

// ---------------------------------------------------------------------------------------------
// IPv4 helpers

/** Parses dotted-quad IPv4 text to an unsigned 32-bit number without allocating; -1 if invalid. */
export function ipv4ToNumber(s: string): number {
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      v = v * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return v * 256 + part;
}

export function numberToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The IPv4 address of an IPv4-mapped GID (::ffff:a.b.c.d), or undefined. */
export function ipv4FromGid(gid: Uint8Array): string | undefined {
  if (gid.length !== 16) return undefined;
  for (let i = 0; i < 10; i++) if (gid[i] !== 0) return undefined;
  if (gid[10] !== 0xff || gid[11] !== 0xff) return undefined;
  return `${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
}

/** 24-bit PSN arithmetic. */
export const PSN_MASK = 0xffffff;
export function psnAdd(psn: number, n: number): number {
  return (psn + n) & PSN_MASK;
}
/** Signed distance a - b in the 24-bit PSN space, in [-2^23, 2^23). */
export function psnDiff(a: number, b: number): number {
  return ((a - b) << 8) >> 8;
}
