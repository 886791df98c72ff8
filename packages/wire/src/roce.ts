/**
 * RoCEv2 transport headers (InfiniBand Architecture Specification vol. 1, chapter 9 "Transport
 * layer", and Annex A17 "RoCEv2"): BTH, RETH, AETH, ImmDt, IETH, AtomicETH, AtomicAckETH and the
 * invariant CRC (ICRC). SMC-R runs its LLC and CDC messages as RC SENDs and moves data with RC
 * RDMA WRITEs, so only the Reliable Connected transport (opcode bits 7-5 = 000) is decoded here.
 *
 * A RoCEv2 packet is IPv4/IPv6 | UDP (destination port 4791) | BTH | extension headers |
 * payload | pad (0-3 bytes) | ICRC (4 bytes). `decodeIbPacket` takes the UDP payload (BTH to ICRC);
 * the ICRC functions take the whole IP packet because the ICRC covers the masked IP and UDP headers.
 *
 * Nothing here allocates on the encode or ICRC paths: headers are written into the caller's
 * buffer and the masked ICRC prefix is assembled in a preallocated scratch buffer.
 */
import { crc32 } from 'node:zlib';
import { WireError, WireErrorCode, checkUint, need, room } from './errors.js';
import { readU24, writeU24 } from './bytes.js';

/** UDP destination port of RoCEv2 (IANA "roce"). */
export const ROCEV2_UDP_PORT = 4791;

/** Header sizes in bytes (IBA 9.2 - 9.6). */
export const BTH_LENGTH = 12;
export const RETH_LENGTH = 16;
export const AETH_LENGTH = 4;
export const IMMDT_LENGTH = 4;
export const IETH_LENGTH = 4;
export const ATOMIC_ETH_LENGTH = 28;
export const ATOMIC_ACK_ETH_LENGTH = 8;
export const ICRC_LENGTH = 4;

/** BTH byte 1 and byte 8 flag bits (IBA 9.2). */
export const BTH_SE = 0x80;
export const BTH_MIGREQ = 0x40;
export const BTH_ACKREQ = 0x80;
/** The only transport header version defined; receivers drop any other (IBA 9.2.3, C9-6). */
export const BTH_TVER = 0;

/**
 * Which extension headers follow the BTH and whether a payload follows them, per RC opcode
 * (IBA Table 38 "OpCode field" and 9.2.1; header order is RETH, AtomicETH, AETH, AtomicAckETH,
 * ImmDt, IETH). `value` is the whole opcode byte (transport bits 000 = RC).
 */
export const IbOpcode = {
  SEND_FIRST: { value: 0x00, name: 'SEND_FIRST', text: 'RC SEND First', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  SEND_MIDDLE: { value: 0x01, name: 'SEND_MIDDLE', text: 'RC SEND Middle', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  SEND_LAST: { value: 0x02, name: 'SEND_LAST', text: 'RC SEND Last', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  SEND_LAST_IMM: { value: 0x03, name: 'SEND_LAST_IMM', text: 'RC SEND Last with Immediate', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: true, ieth: false, payload: true },
  SEND_ONLY: { value: 0x04, name: 'SEND_ONLY', text: 'RC SEND Only', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  SEND_ONLY_IMM: { value: 0x05, name: 'SEND_ONLY_IMM', text: 'RC SEND Only with Immediate', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: true, ieth: false, payload: true },
  RDMA_WRITE_FIRST: { value: 0x06, name: 'RDMA_WRITE_FIRST', text: 'RC RDMA WRITE First', reth: true, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  RDMA_WRITE_MIDDLE: { value: 0x07, name: 'RDMA_WRITE_MIDDLE', text: 'RC RDMA WRITE Middle', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  RDMA_WRITE_LAST: { value: 0x08, name: 'RDMA_WRITE_LAST', text: 'RC RDMA WRITE Last', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  RDMA_WRITE_LAST_IMM: { value: 0x09, name: 'RDMA_WRITE_LAST_IMM', text: 'RC RDMA WRITE Last with Immediate', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: true, ieth: false, payload: true },
  RDMA_WRITE_ONLY: { value: 0x0a, name: 'RDMA_WRITE_ONLY', text: 'RC RDMA WRITE Only', reth: true, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  RDMA_WRITE_ONLY_IMM: { value: 0x0b, name: 'RDMA_WRITE_ONLY_IMM', text: 'RC RDMA WRITE Only with Immediate', reth: true, atomicEth: false, aeth: false, atomicAckEth: false, immDt: true, ieth: false, payload: true },
  RDMA_READ_REQUEST: { value: 0x0c, name: 'RDMA_READ_REQUEST', text: 'RC RDMA READ Request', reth: true, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: false },
  RDMA_READ_RESPONSE_FIRST: { value: 0x0d, name: 'RDMA_READ_RESPONSE_FIRST', text: 'RC RDMA READ Response First', reth: false, atomicEth: false, aeth: true, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  RDMA_READ_RESPONSE_MIDDLE: { value: 0x0e, name: 'RDMA_READ_RESPONSE_MIDDLE', text: 'RC RDMA READ Response Middle', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  RDMA_READ_RESPONSE_LAST: { value: 0x0f, name: 'RDMA_READ_RESPONSE_LAST', text: 'RC RDMA READ Response Last', reth: false, atomicEth: false, aeth: true, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  RDMA_READ_RESPONSE_ONLY: { value: 0x10, name: 'RDMA_READ_RESPONSE_ONLY', text: 'RC RDMA READ Response Only', reth: false, atomicEth: false, aeth: true, atomicAckEth: false, immDt: false, ieth: false, payload: true },
  ACKNOWLEDGE: { value: 0x11, name: 'ACKNOWLEDGE', text: 'RC Acknowledge', reth: false, atomicEth: false, aeth: true, atomicAckEth: false, immDt: false, ieth: false, payload: false },
  ATOMIC_ACKNOWLEDGE: { value: 0x12, name: 'ATOMIC_ACKNOWLEDGE', text: 'RC ATOMIC Acknowledge', reth: false, atomicEth: false, aeth: true, atomicAckEth: true, immDt: false, ieth: false, payload: false },
  COMPARE_SWAP: { value: 0x13, name: 'COMPARE_SWAP', text: 'RC CmpSwap', reth: false, atomicEth: true, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: false },
  FETCH_ADD: { value: 0x14, name: 'FETCH_ADD', text: 'RC FetchAdd', reth: false, atomicEth: true, aeth: false, atomicAckEth: false, immDt: false, ieth: false, payload: false },
  SEND_LAST_INV: { value: 0x16, name: 'SEND_LAST_INV', text: 'RC SEND Last with Invalidate', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: true, payload: true },
  SEND_ONLY_INV: { value: 0x17, name: 'SEND_ONLY_INV', text: 'RC SEND Only with Invalidate', reth: false, atomicEth: false, aeth: false, atomicAckEth: false, immDt: false, ieth: true, payload: true },
} as const;
export type IbOpcodeName = keyof typeof IbOpcode;
export type IbOpcodeInfo = (typeof IbOpcode)[IbOpcodeName];

const OPCODE_BY_VALUE: (IbOpcodeInfo | undefined)[] = new Array<IbOpcodeInfo | undefined>(256).fill(undefined);
for (const info of Object.values(IbOpcode)) OPCODE_BY_VALUE[info.value] = info;

/** The table row of an RC opcode byte, or undefined for UC/RD/UD/CNP/reserved opcodes. */
export function ibOpcodeInfo(opcode: number): IbOpcodeInfo | undefined {
  return OPCODE_BY_VALUE[opcode & 0xff];
}

/** Bytes of the extension headers an opcode carries (between the BTH and the payload). */
export function ibExtHeaderLength(info: IbOpcodeInfo): number {
  return (info.reth ? RETH_LENGTH : 0) + (info.atomicEth ? ATOMIC_ETH_LENGTH : 0) + (info.aeth ? AETH_LENGTH : 0) +
    (info.atomicAckEth ? ATOMIC_ACK_ETH_LENGTH : 0) + (info.immDt ? IMMDT_LENGTH : 0) + (info.ieth ? IETH_LENGTH : 0);
}

/** PadCnt for a payload of `len` bytes: packets are a multiple of 4 bytes long (IBA 9.2.4). */
export function ibPadCount(len: number): number {
  return -len & 3;
}

// ---------------------------------------------------------------------------------------------
// AETH syndrome (IBA 9.7.5.2.8, Tables 42-45)

/**
 * The syndrome byte of the AETH: bit 7 reserved, bits 6-5 the kind (00 ACK, 01 RNR NAK, 11 NAK),
 * bits 4-0 the credit count (ACK), the RNR timer (RNR NAK) or the NAK code (NAK). The full
 * syndrome bytes of the NAKs are listed because that is what traces show (rxe-interop.md 2.1:
 * 0x60 for a PSN gap, 0x61 for a WRITE above the path MTU, 0x62 for a bad rkey).
 */
export const AethSyndrome = {
  /** ACK whose credit field says "invalid": end-to-end credits not used (what rxe and SMC send). */
  ACK_NO_CREDIT: { value: 0x1f, name: 'ACK_NO_CREDIT', text: 'ACK, credit count invalid' },
  NAK_PSN_SEQUENCE_ERROR: { value: 0x60, name: 'NAK_PSN_SEQUENCE_ERROR', text: 'NAK: PSN sequence error' },
  NAK_INVALID_REQUEST: { value: 0x61, name: 'NAK_INVALID_REQUEST', text: 'NAK: invalid request' },
  NAK_REMOTE_ACCESS_ERROR: { value: 0x62, name: 'NAK_REMOTE_ACCESS_ERROR', text: 'NAK: remote access error' },
  NAK_REMOTE_OPERATIONAL_ERROR: { value: 0x63, name: 'NAK_REMOTE_OPERATIONAL_ERROR', text: 'NAK: remote operational error' },
  NAK_INVALID_RD_REQUEST: { value: 0x64, name: 'NAK_INVALID_RD_REQUEST', text: 'NAK: invalid RD request' },
} as const;

/** Bits 6-5 of the syndrome. */
export const AethKind = {
  ACK: { value: 0, name: 'ACK' },
  RNR_NAK: { value: 1, name: 'RNR_NAK' },
  RESERVED: { value: 2, name: 'RESERVED' },
  NAK: { value: 3, name: 'NAK' },
} as const;
export type AethKindName = keyof typeof AethKind;

/** Number of credits each 5-bit credit code stands for (IBA Table 44); code 31 = "invalid" (-1 here). */
export const AETH_CREDITS: readonly number[] = [
  0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192,
  256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, -1,
];

/** Minimum RNR NAK timer in milliseconds for each 5-bit timer code (IBA Table 45). */
export const RNR_TIMER_MS: readonly number[] = [
  655.36, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48, 0.64, 0.96, 1.28, 1.92,
  2.56, 3.84, 5.12, 7.68, 10.24, 15.36, 20.48, 30.72, 40.96, 61.44, 81.92, 122.88, 163.84, 245.76, 327.68, 491.52,
];

/** A syndrome byte split into kind and 5-bit value. */
export interface AethSyndromeInfo {
  readonly kind: AethKindName;
  /** Credit code (ACK), timer code (RNR NAK) or NAK code (NAK). */
  readonly value: number;
  /** Human-readable form, e.g. `ACK credit=invalid`, `NAK: PSN sequence error`. */
  readonly text: string;
}

const NAK_TEXT = ['PSN sequence error', 'invalid request', 'remote access error', 'remote operational error', 'invalid RD request'];

/** Splits an AETH syndrome byte (bit 7 is reserved and ignored). */
export function describeAethSyndrome(syndrome: number): AethSyndromeInfo {
  const kindValue = (syndrome >> 5) & 3;
  const value = syndrome & 0x1f;
  switch (kindValue) {
    case 0:
      return { kind: 'ACK', value, text: value === 31 ? 'ACK credit=invalid' : `ACK credit=${AETH_CREDITS[value]}` };
    case 1:
      return { kind: 'RNR_NAK', value, text: `RNR NAK timer=${RNR_TIMER_MS[value]}ms` };
    case 3:
      return { kind: 'NAK', value, text: `NAK: ${NAK_TEXT[value] ?? `reserved code ${value}`}` };
    default:
      return { kind: 'RESERVED', value, text: `reserved syndrome 0x${syndrome.toString(16).padStart(2, '0')}` };
  }
}

/** Builds a syndrome byte: kind ACK/RNR_NAK/NAK plus the 5-bit credit code, timer code or NAK code. */
export function aethSyndrome(kind: 'ACK' | 'RNR_NAK' | 'NAK', value: number): number {
  checkUint(value, 31, 'syndrome value', 'AETH', 0);
  return (AethKind[kind].value << 5) | value;
}

// ---------------------------------------------------------------------------------------------
// Header types

/** Base Transport Header (IBA 9.2), 12 bytes. Reserved bits (byte 4, byte 8 bits 6-0) are not kept. */
export interface Bth {
  /** Whole opcode byte (bits 7-5 transport, 4-0 operation). */
  readonly opcode: number;
  /** Solicited Event. */
  readonly se: boolean;
  /** MigReq: path migration state. */
  readonly migReq: boolean;
  /** Pad bytes between payload and ICRC, 0-3. */
  readonly padCnt: number;
  /** Transport header version, 4 bits (must be 0). */
  readonly tver: number;
  /** Partition key (0xFFFF is the default full-member key). */
  readonly pkey: number;
  /** Destination QP number, 24 bits. */
  readonly destQp: number;
  /** AckReq: the responder should acknowledge this packet. */
  readonly ackReq: boolean;
  /** Packet sequence number, 24 bits. */
  readonly psn: number;
}

/** RDMA Extended Transport Header (IBA 9.3.3), 16 bytes. */
export interface Reth {
  /** Remote virtual address, 64 bits. */
  readonly va: bigint;
  readonly rkey: number;
  /** Length of the whole RDMA operation (all packets of a multi-packet WRITE/READ). */
  readonly dmaLength: number;
}

/** ACK Extended Transport Header (IBA 9.3.5), 4 bytes. See {@link describeAethSyndrome}. */
export interface Aeth {
  readonly syndrome: number;
  /** Message sequence number, 24 bits. */
  readonly msn: number;
}

/** Atomic Extended Transport Header (IBA 9.3.4), 28 bytes. */
export interface AtomicEth {
  readonly va: bigint;
  readonly rkey: number;
  readonly swapAdd: bigint;
  readonly compare: bigint;
}

/** Atomic Acknowledge Extended Transport Header (IBA 9.3.6), 8 bytes. */
export interface AtomicAckEth {
  readonly origRemoteData: bigint;
}

/** A byte range of the decoded buffer (absolute offsets; nothing copied). */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/** A decoded RC packet (UDP payload of a RoCEv2 datagram). */
export interface IbPacket {
  /** The opcode's name in {@link IbOpcode}. */
  readonly type: IbOpcodeName;
  readonly bth: Bth;
  readonly reth?: Reth;
  readonly atomicEth?: AtomicEth;
  readonly aeth?: Aeth;
  readonly atomicAckEth?: AtomicAckEth;
  /** Immediate data, 32 bits as it stands on the wire (big-endian). */
  readonly immDt?: number;
  /** Invalidate Extended Transport Header: the rkey to invalidate. */
  readonly ieth?: number;
  /** The payload without the pad bytes. */
  readonly payload: ByteRange;
  /** The ICRC as the CRC-32 value (the wire bytes read little-endian). */
  readonly icrc: number;
}

/**
 * What {@link encodeIbPacket} writes. The payload is `payload[payloadOffset, payloadOffset +
 * payloadLength)` (defaults: the whole array), so a caller can pass a region of a registered
 * memory buffer without creating a view. The object may be reused between calls.
 */
export interface IbPacketInput {
  readonly bth: Bth;
  readonly reth?: Reth | undefined;
  readonly atomicEth?: AtomicEth | undefined;
  readonly aeth?: Aeth | undefined;
  readonly atomicAckEth?: AtomicAckEth | undefined;
  readonly immDt?: number | undefined;
  readonly ieth?: number | undefined;
  readonly payload?: Uint8Array | undefined;
  readonly payloadOffset?: number | undefined;
  readonly payloadLength?: number | undefined;
  /** Written into the ICRC slot as is (default 0); use {@link fillIcrc} once the IP/UDP headers exist. */
  readonly icrc?: number | undefined;
}

const U24 = 0xffffff;
const U32 = 0xffffffff;
const U64 = 0xffffffffffffffffn;

function checkU64(v: bigint, field: string, msgType: string, off: number): void {
  if (typeof v !== 'bigint' || v < 0n || v > U64) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${field} = ${String(v)} is not a 64-bit unsigned bigint`, off, msgType);
  }
}

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

// ---------------------------------------------------------------------------------------------
// BTH

/** Writes a BTH at `off` (reserved bits zero); returns `off + 12`. */
export function encodeBth(m: Bth, buf: Uint8Array, off: number): number {
  room(buf, off, BTH_LENGTH, 'BTH');
  checkUint(m.opcode, 0xff, 'opcode', 'BTH', off);
  checkUint(m.padCnt, 3, 'padCnt', 'BTH', off + 1);
  checkUint(m.tver, 15, 'tver', 'BTH', off + 1);
  checkUint(m.pkey, 0xffff, 'pkey', 'BTH', off + 2);
  checkUint(m.destQp, U24, 'destQp', 'BTH', off + 5);
  checkUint(m.psn, U24, 'psn', 'BTH', off + 9);
  buf[off] = m.opcode;
  buf[off + 1] = (m.se ? BTH_SE : 0) | (m.migReq ? BTH_MIGREQ : 0) | (m.padCnt << 4) | m.tver;
  buf[off + 2] = m.pkey >>> 8;
  buf[off + 3] = m.pkey & 0xff;
  buf[off + 4] = 0; // resv8a (FECN/BECN in later IBA releases; masked out of the ICRC anyway)
  writeU24(buf, off + 5, m.destQp);
  buf[off + 8] = m.ackReq ? BTH_ACKREQ : 0; // AckReq + resv7
  writeU24(buf, off + 9, m.psn);
  return off + BTH_LENGTH;
}

/** Reads a BTH at `off`. Reserved bits are ignored, as IBA asks of receivers. */
export function decodeBth(buf: Uint8Array, off = 0, end = buf.length): Bth {
  need(end, off, BTH_LENGTH, 'BTH');
  const b1 = buf[off + 1]!;
  return {
    opcode: buf[off]!,
    se: (b1 & BTH_SE) !== 0,
    migReq: (b1 & BTH_MIGREQ) !== 0,
    padCnt: (b1 >> 4) & 3,
    tver: b1 & 0x0f,
    pkey: (buf[off + 2]! << 8) | buf[off + 3]!,
    destQp: readU24(buf, off + 5),
    ackReq: (buf[off + 8]! & BTH_ACKREQ) !== 0,
    psn: readU24(buf, off + 9),
  };
}

// ---------------------------------------------------------------------------------------------
// Extension headers

/** Writes a RETH; returns `off + 16`. */
export function encodeReth(m: Reth, buf: Uint8Array, off: number): number {
  room(buf, off, RETH_LENGTH, 'RETH');
  checkU64(m.va, 'va', 'RETH', off);
  checkUint(m.rkey, U32, 'rkey', 'RETH', off + 8);
  checkUint(m.dmaLength, U32, 'dmaLength', 'RETH', off + 12);
  const b = asBuffer(buf);
  b.writeBigUInt64BE(m.va, off);
  b.writeUInt32BE(m.rkey, off + 8);
  b.writeUInt32BE(m.dmaLength, off + 12);
  return off + RETH_LENGTH;
}

export function decodeReth(buf: Uint8Array, off = 0, end = buf.length): Reth {
  need(end, off, RETH_LENGTH, 'RETH');
  const b = asBuffer(buf);
  return { va: b.readBigUInt64BE(off), rkey: b.readUInt32BE(off + 8), dmaLength: b.readUInt32BE(off + 12) };
}

/** Writes an AETH; returns `off + 4`. */
export function encodeAeth(m: Aeth, buf: Uint8Array, off: number): number {
  room(buf, off, AETH_LENGTH, 'AETH');
  checkUint(m.syndrome, 0x7f, 'syndrome', 'AETH', off); // bit 7 is reserved
  checkUint(m.msn, U24, 'msn', 'AETH', off + 1);
  buf[off] = m.syndrome;
  writeU24(buf, off + 1, m.msn);
  return off + AETH_LENGTH;
}

export function decodeAeth(buf: Uint8Array, off = 0, end = buf.length): Aeth {
  need(end, off, AETH_LENGTH, 'AETH');
  return { syndrome: buf[off]! & 0x7f, msn: readU24(buf, off + 1) };
}

/** Writes a 32-bit big-endian word (ImmDt, IETH); returns `off + 4`. */
function encodeU32Header(v: number, buf: Uint8Array, off: number, msgType: string): number {
  room(buf, off, 4, msgType);
  checkUint(v, U32, 'value', msgType, off);
  asBuffer(buf).writeUInt32BE(v, off);
  return off + 4;
}

/** Writes an ImmDt header (IBA 9.3.7); returns `off + 4`. */
export function encodeImmDt(v: number, buf: Uint8Array, off: number): number {
  return encodeU32Header(v, buf, off, 'ImmDt');
}

export function decodeImmDt(buf: Uint8Array, off = 0, end = buf.length): number {
  need(end, off, IMMDT_LENGTH, 'ImmDt');
  return asBuffer(buf).readUInt32BE(off);
}

/** Writes an AtomicETH; returns `off + 28`. */
export function encodeAtomicEth(m: AtomicEth, buf: Uint8Array, off: number): number {
  room(buf, off, ATOMIC_ETH_LENGTH, 'AtomicETH');
  checkU64(m.va, 'va', 'AtomicETH', off);
  checkUint(m.rkey, U32, 'rkey', 'AtomicETH', off + 8);
  checkU64(m.swapAdd, 'swapAdd', 'AtomicETH', off + 12);
  checkU64(m.compare, 'compare', 'AtomicETH', off + 20);
  const b = asBuffer(buf);
  b.writeBigUInt64BE(m.va, off);
  b.writeUInt32BE(m.rkey, off + 8);
  b.writeBigUInt64BE(m.swapAdd, off + 12);
  b.writeBigUInt64BE(m.compare, off + 20);
  return off + ATOMIC_ETH_LENGTH;
}

export function decodeAtomicEth(buf: Uint8Array, off = 0, end = buf.length): AtomicEth {
  need(end, off, ATOMIC_ETH_LENGTH, 'AtomicETH');
  const b = asBuffer(buf);
  return { va: b.readBigUInt64BE(off), rkey: b.readUInt32BE(off + 8), swapAdd: b.readBigUInt64BE(off + 12), compare: b.readBigUInt64BE(off + 20) };
}

// ---------------------------------------------------------------------------------------------
// Whole packet (BTH .. ICRC)

/** Encoded size of a packet: headers, payload, pad and ICRC. Throws UNKNOWN_TYPE for non-RC opcodes. */
export function ibPacketLength(m: IbPacketInput): number {
  const info = opcodeOrThrow(m.bth.opcode, 0, 'IB packet');
  const len = payloadLengthOf(m);
  return BTH_LENGTH + ibExtHeaderLength(info) + len + ibPadCount(len) + ICRC_LENGTH;
}

function opcodeOrThrow(opcode: number, off: number, msgType: string): IbOpcodeInfo {
  const info = ibOpcodeInfo(opcode);
  if (info === undefined || (opcode & 0xff) !== opcode) {
    throw new WireError(WireErrorCode.UNKNOWN_TYPE, `opcode 0x${opcode.toString(16)} is not an RC opcode we know`, off, msgType);
  }
  return info;
}

function payloadLengthOf(m: IbPacketInput): number {
  if (m.payload === undefined) return 0;
  return m.payloadLength ?? m.payload.length - (m.payloadOffset ?? 0);
}

function checkExt(present: boolean, wanted: boolean, name: string, info: IbOpcodeInfo, off: number): void {
  if (present !== wanted) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${info.name} ${wanted ? 'needs' : 'has no'} ${name}`, off, 'IB packet');
  }
}

/**
 * Writes BTH, the extension headers the opcode calls for, the payload, zero pad bytes and the ICRC
 * slot (`m.icrc`, default 0) at `off`; returns the end offset. `bth.padCnt` must equal
 * {@link ibPadCount} of the payload length, and exactly the extension headers of
 * {@link IbOpcode} must be given (BAD_VALUE otherwise). Allocates nothing.
 */
export function encodeIbPacket(m: IbPacketInput, buf: Uint8Array, off: number): number {
  const info = opcodeOrThrow(m.bth.opcode, off, 'IB packet');
  checkExt(m.reth !== undefined, info.reth, 'a RETH', info, off);
  checkExt(m.atomicEth !== undefined, info.atomicEth, 'an AtomicETH', info, off);
  checkExt(m.aeth !== undefined, info.aeth, 'an AETH', info, off);
  checkExt(m.atomicAckEth !== undefined, info.atomicAckEth, 'an AtomicAckETH', info, off);
  checkExt(m.immDt !== undefined, info.immDt, 'an ImmDt', info, off);
  checkExt(m.ieth !== undefined, info.ieth, 'an IETH', info, off);
  const payOff = m.payloadOffset ?? 0;
  const payLen = payloadLengthOf(m);
  if (m.payload !== undefined) {
    checkUint(payOff, m.payload.length, 'payloadOffset', 'IB packet', off);
    checkUint(payLen, m.payload.length - payOff, 'payloadLength', 'IB packet', off);
  }
  if (!info.payload && payLen !== 0) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${info.name} carries no payload, got ${payLen} bytes`, off, 'IB packet');
  }
  const pad = ibPadCount(payLen);
  if (m.bth.padCnt !== pad) {
    throw new WireError(WireErrorCode.BAD_VALUE, `padCnt ${m.bth.padCnt} does not match a ${payLen}-byte payload (needs ${pad})`, off + 1, 'IB packet');
  }
  if (m.icrc !== undefined) checkUint(m.icrc, U32, 'icrc', 'IB packet', off);
  const total = BTH_LENGTH + ibExtHeaderLength(info) + payLen + pad + ICRC_LENGTH;
  room(buf, off, total, 'IB packet');
  let p = encodeBth(m.bth, buf, off);
  if (m.reth !== undefined) p = encodeReth(m.reth, buf, p);
  if (m.atomicEth !== undefined) p = encodeAtomicEth(m.atomicEth, buf, p);
  if (m.aeth !== undefined) p = encodeAeth(m.aeth, buf, p);
  if (m.atomicAckEth !== undefined) {
    checkU64(m.atomicAckEth.origRemoteData, 'origRemoteData', 'AtomicAckETH', p);
    asBuffer(buf).writeBigUInt64BE(m.atomicAckEth.origRemoteData, p);
    p += ATOMIC_ACK_ETH_LENGTH;
  }
  if (m.immDt !== undefined) p = encodeImmDt(m.immDt, buf, p);
  if (m.ieth !== undefined) p = encodeU32Header(m.ieth, buf, p, 'IETH');
  if (m.payload !== undefined && payLen > 0) {
    if (Buffer.isBuffer(m.payload)) m.payload.copy(buf, p, payOff, payOff + payLen);
    else buf.set(payOff === 0 && payLen === m.payload.length ? m.payload : m.payload.subarray(payOff, payOff + payLen), p);
    p += payLen;
  }
  for (let i = 0; i < pad; i++) buf[p++] = 0;
  asBuffer(buf).writeUInt32LE(m.icrc ?? 0, p);
  return p + ICRC_LENGTH;
}

/**
 * Decodes the UDP payload of a RoCEv2 datagram, `[off, end)` = BTH .. ICRC. Throws UNKNOWN_TYPE
 * for opcodes outside the RC table, BAD_VERSION for TVer != 0, TRUNCATED when the headers do not
 * fit, BAD_LENGTH when the pad count does not fit the bytes, the packet is not a multiple of 4
 * bytes, or an opcode without payload has bytes left. The ICRC is returned, not checked: see
 * {@link verifyIcrc}, which needs the IP header too.
 */
export function decodeIbPacket(buf: Uint8Array, off = 0, end = buf.length): IbPacket {
  const bth = decodeBth(buf, off, end);
  const info = opcodeOrThrow(bth.opcode, off, 'IB packet');
  if (bth.tver !== BTH_TVER) {
    throw new WireError(WireErrorCode.BAD_VERSION, `BTH TVer ${bth.tver}, only 0 is defined`, off + 1, 'IB packet');
  }
  let p = off + BTH_LENGTH;
  const hdrEnd = end - ICRC_LENGTH;
  need(hdrEnd, p, ibExtHeaderLength(info), info.name);
  let reth: Reth | undefined;
  let atomicEth: AtomicEth | undefined;
  let aeth: Aeth | undefined;
  let atomicAckEth: AtomicAckEth | undefined;
  let immDt: number | undefined;
  let ieth: number | undefined;
  if (info.reth) { reth = decodeReth(buf, p, hdrEnd); p += RETH_LENGTH; }
  if (info.atomicEth) { atomicEth = decodeAtomicEth(buf, p, hdrEnd); p += ATOMIC_ETH_LENGTH; }
  if (info.aeth) { aeth = decodeAeth(buf, p, hdrEnd); p += AETH_LENGTH; }
  if (info.atomicAckEth) {
    need(hdrEnd, p, ATOMIC_ACK_ETH_LENGTH, 'AtomicAckETH');
    atomicAckEth = { origRemoteData: asBuffer(buf).readBigUInt64BE(p) };
    p += ATOMIC_ACK_ETH_LENGTH;
  }
  if (info.immDt) { immDt = decodeImmDt(buf, p, hdrEnd); p += IMMDT_LENGTH; }
  if (info.ieth) { need(hdrEnd, p, IETH_LENGTH, 'IETH'); ieth = asBuffer(buf).readUInt32BE(p); p += IETH_LENGTH; }
  need(end, p, ICRC_LENGTH, info.name);
  const rest = hdrEnd - p; // payload + pad
  if (!info.payload && rest !== 0) {
    throw new WireError(WireErrorCode.BAD_LENGTH, `${info.name} has ${rest} bytes after its headers, expected none`, p, info.name);
  }
  if (bth.padCnt > rest) {
    throw new WireError(WireErrorCode.BAD_LENGTH, `pad count ${bth.padCnt} exceeds the ${rest} bytes before the ICRC`, off + 1, info.name);
  }
  if (((end - off) & 3) !== 0) {
    throw new WireError(WireErrorCode.BAD_LENGTH, `packet is ${end - off} bytes, not a multiple of 4`, off, info.name);
  }
  const icrc = asBuffer(buf).readUInt32LE(hdrEnd);
  const pkt: { -readonly [K in keyof IbPacket]: IbPacket[K] } = {
    type: info.name,
    bth,
    payload: { offset: p, length: rest - bth.padCnt },
    icrc,
  };
  if (reth !== undefined) pkt.reth = reth;
  if (atomicEth !== undefined) pkt.atomicEth = atomicEth;
  if (aeth !== undefined) pkt.aeth = aeth;
  if (atomicAckEth !== undefined) pkt.atomicAckEth = atomicAckEth;
  if (immDt !== undefined) pkt.immDt = immDt;
  if (ieth !== undefined) pkt.ieth = ieth;
  return pkt;
}

// ---------------------------------------------------------------------------------------------
// ICRC (IBA Annex A17.3.3 for RoCEv2; same as rdma_rxe's rxe_icrc.c, scapy's BTH.compute_icrc)

/*
 * CRC-32 (the Ethernet/zlib polynomial) over: 8 bytes 0xFF (stand-in for the LRH), the IP header
 * with the fields routers may change set to all ones (IPv4: TOS, TTL, header checksum; IPv6:
 * traffic class, flow label, hop limit), the UDP header with its checksum all ones, the BTH with
 * resv8a all ones, then everything up to the ICRC. The IPv4 ID and flags/fragment offset are NOT
 * masked (rxe-interop.md 2.1). The CRC value is stored little-endian.
 *
 * The masked prefix goes into one preallocated scratch buffer with a ready view per possible
 * length, so no call allocates; the rest is hashed in place. Short tails (CDC/LLC SENDs, ACKs) are
 * hashed with a table in JS, long ones with zlib's native crc32 over a view of the caller's bytes.
 */
const SCRATCH = Buffer.alloc(8 + 60 + 8 + BTH_LENGTH);
SCRATCH.fill(0xff, 0, 8);
/** View of the first `8 + ipHeaderLength + 8 + 12` scratch bytes, by IP header length / 4. */
const PREFIX_VIEWS: Buffer[] = [];
for (let words = 0; words <= 15; words++) PREFIX_VIEWS.push(SCRATCH.subarray(0, 8 + words * 4 + 8 + BTH_LENGTH));

const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[n] = c;
}
/** Below this many bytes the JS loop beats a view + native call. */
const JS_CRC_MAX = 128;

/** Continues a zlib-style CRC-32 (`crc` = previous result) over `buf[from, to)` without allocating. */
function crcRange(crc: number, buf: Uint8Array, from: number, to: number): number {
  if (to <= from) return crc;
  if (to - from > JS_CRC_MAX) return crc32(from === 0 && to === buf.length ? buf : buf.subarray(from, to), crc);
  let c = ~crc;
  for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const IPV6_HEADER_LENGTH = 40;
const UDP_HEADER_LENGTH = 8;

/** Locates the IP header length of `[off, end)` and checks that UDP + BTH + ICRC fit. */
function icrcLayout(pkt: Uint8Array, off: number, end: number): number {
  need(end, off, 1, 'ICRC');
  const version = pkt[off]! >> 4;
  let ipLen: number;
  if (version === 4) {
    need(end, off, 20, 'ICRC');
    ipLen = (pkt[off]! & 0x0f) * 4;
    if (ipLen < 20) throw new WireError(WireErrorCode.BAD_LENGTH, `IPv4 header length ${ipLen} < 20`, off, 'ICRC');
    if (pkt[off + 9] !== 17) throw new WireError(WireErrorCode.UNSUPPORTED, `IPv4 protocol ${pkt[off + 9]} is not UDP`, off + 9, 'ICRC');
  } else if (version === 6) {
    need(end, off, IPV6_HEADER_LENGTH, 'ICRC');
    ipLen = IPV6_HEADER_LENGTH;
    if (pkt[off + 6] !== 17) {
      throw new WireError(WireErrorCode.UNSUPPORTED, `IPv6 next header ${pkt[off + 6]} is not UDP (extension headers are not supported)`, off + 6, 'ICRC');
    }
  } else {
    throw new WireError(WireErrorCode.BAD_VERSION, `IP version ${version}`, off, 'ICRC');
  }
  need(end, off, ipLen + UDP_HEADER_LENGTH + BTH_LENGTH + ICRC_LENGTH, 'ICRC');
  return ipLen;
}

/**
 * The ICRC of the RoCEv2 packet `[off, end)`: a whole IPv4 or IPv6 packet carrying UDP, whose last
 * 4 bytes are the ICRC slot (their content is ignored). Throws TRUNCATED, BAD_VERSION (not IP),
 * BAD_LENGTH (bad IHL) or UNSUPPORTED (not UDP, IPv6 extension headers). Allocates nothing.
 */
export function computeIcrc(pkt: Uint8Array, off: number, end: number): number {
  const ipLen = icrcLayout(pkt, off, end);
  const hdrLen = ipLen + UDP_HEADER_LENGTH + BTH_LENGTH;
  const s = SCRATCH;
  for (let i = 0; i < hdrLen; i++) s[8 + i] = pkt[off + i]!;
  if (ipLen === IPV6_HEADER_LENGTH && (pkt[off]! >> 4) === 6) {
    s[8] = s[8]! | 0x0f; // traffic class (low nibble of byte 0) ...
    s[9] = 0xff; // ... and the rest of it plus the flow label
    s[10] = 0xff;
    s[11] = 0xff;
    s[8 + 7] = 0xff; // hop limit
  } else {
    s[8 + 1] = 0xff; // TOS
    s[8 + 8] = 0xff; // TTL
    s[8 + 10] = 0xff; // header checksum
    s[8 + 11] = 0xff;
  }
  const udp = 8 + ipLen;
  s[udp + 6] = 0xff; // UDP checksum
  s[udp + 7] = 0xff;
  s[udp + UDP_HEADER_LENGTH + 4] = 0xff; // BTH resv8a
  const crc = crc32(PREFIX_VIEWS[ipLen / 4]!, 0);
  return crcRange(crc, pkt, off + hdrLen, end - ICRC_LENGTH);
}

/** True when the last 4 bytes of `[off, end)` hold the right ICRC (see {@link computeIcrc}). */
export function verifyIcrc(pkt: Uint8Array, off: number, end: number): boolean {
  const icrc = computeIcrc(pkt, off, end);
  return asBuffer(pkt).readUInt32LE(end - ICRC_LENGTH) === icrc;
}

/** Computes the ICRC of `[off, end)` and writes it into the last 4 bytes; returns it. */
export function fillIcrc(pkt: Uint8Array, off: number, end: number): number {
  const icrc = computeIcrc(pkt, off, end);
  asBuffer(pkt).writeUInt32LE(icrc, end - ICRC_LENGTH);
  return icrc;
}

/**
 * The ICRC of a RoCEv2 packet sent or received through a UDP socket over IPv4, where only the UDP
 * payload `[off, end)` (BTH .. ICRC slot) is at hand: the IPv4 and UDP headers are rebuilt from
 * the arguments the way Linux builds them for an unconnected DF socket (version 4, IHL 5, total
 * length from the payload, `ipId` (0 for such a socket, rxe-interop.md 2.1), `flagsFragment`
 * (0x4000 = DF), protocol UDP). `src` and `dst` are IPv4 addresses as 32-bit numbers. Allocates nothing.
 */
export function computeIcrcUdp4(
  ib: Uint8Array, off: number, end: number,
  src: number, dst: number, sport: number, dport: number,
  ipId = 0, flagsFragment = 0x4000,
): number {
  need(end, off, BTH_LENGTH + ICRC_LENGTH, 'ICRC');
  checkUint(src, U32, 'src', 'ICRC', 0);
  checkUint(dst, U32, 'dst', 'ICRC', 0);
  checkUint(sport, 0xffff, 'sport', 'ICRC', 0);
  checkUint(dport, 0xffff, 'dport', 'ICRC', 0);
  checkUint(ipId, 0xffff, 'ipId', 'ICRC', 0);
  checkUint(flagsFragment, 0xffff, 'flagsFragment', 'ICRC', 0);
  const udpLen = UDP_HEADER_LENGTH + (end - off);
  const totalLen = 20 + udpLen;
  checkUint(totalLen, 0xffff, 'IP total length', 'ICRC', off);
  const s = SCRATCH;
  s[8] = 0x45;
  s[9] = 0xff; // TOS
  s.writeUInt16BE(totalLen, 10);
  s.writeUInt16BE(ipId, 12);
  s.writeUInt16BE(flagsFragment, 14);
  s[16] = 0xff; // TTL
  s[17] = 17;
  s[18] = 0xff; // checksum
  s[19] = 0xff;
  s.writeUInt32BE(src, 20);
  s.writeUInt32BE(dst, 24);
  s.writeUInt16BE(sport, 28);
  s.writeUInt16BE(dport, 30);
  s.writeUInt16BE(udpLen, 32);
  s[34] = 0xff;
  s[35] = 0xff;
  for (let i = 0; i < BTH_LENGTH; i++) s[36 + i] = ib[off + i]!;
  s[36 + 4] = 0xff; // resv8a
  const crc = crc32(PREFIX_VIEWS[5]!, 0);
  return crcRange(crc, ib, off + BTH_LENGTH, end - ICRC_LENGTH);
}

/**
 * Like {@link computeIcrcUdp4} for IPv6 (no extension headers): `src` and `dst` are the 16-byte
 * addresses; traffic class, flow label and hop limit are masked so they need not be known.
 */
export function computeIcrcUdp6(
  ib: Uint8Array, off: number, end: number,
  src: Uint8Array, dst: Uint8Array, sport: number, dport: number,
): number {
  need(end, off, BTH_LENGTH + ICRC_LENGTH, 'ICRC');
  if (src.length !== 16 || dst.length !== 16) {
    throw new WireError(WireErrorCode.BAD_VALUE, 'IPv6 addresses must be 16 bytes', 0, 'ICRC');
  }
  checkUint(sport, 0xffff, 'sport', 'ICRC', 0);
  checkUint(dport, 0xffff, 'dport', 'ICRC', 0);
  const udpLen = UDP_HEADER_LENGTH + (end - off);
  checkUint(udpLen, 0xffff, 'IPv6 payload length', 'ICRC', off);
  const s = SCRATCH;
  s[8] = 0x6f;
  s[9] = 0xff;
  s[10] = 0xff;
  s[11] = 0xff;
  s.writeUInt16BE(udpLen, 12);
  s[14] = 17;
  s[15] = 0xff; // hop limit
  s.set(src, 16);
  s.set(dst, 32);
  s.writeUInt16BE(sport, 48);
  s.writeUInt16BE(dport, 50);
  s.writeUInt16BE(udpLen, 52);
  s[54] = 0xff;
  s[55] = 0xff;
  for (let i = 0; i < BTH_LENGTH; i++) s[56 + i] = ib[off + i]!;
  s[56 + 4] = 0xff;
  const crc = crc32(PREFIX_VIEWS[10]!, 0);
  return crcRange(crc, ib, off + BTH_LENGTH, end - ICRC_LENGTH);
}
