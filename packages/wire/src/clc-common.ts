/**
 * CLC building blocks shared by the Proposal, Accept/Confirm and Decline codecs: the 8-byte header,
 * the 4-byte trailer, the SMC type / message type / OS type tables and the EID string rules.
 * (spec section 3.1; RFC 7609 section 4.3; Linux `net/smc/smc_clc.h`)
 */
import { WireError, WireErrorCode, checkUint } from './errors.js';
import { readPaddedAscii, writePaddedAscii } from './bytes.js';

/** Size of the common CLC header (eyecatcher, type, length, flags). Spec 3.1. */
export const CLC_HEADER_LENGTH = 8;
/** Size of the trailing eyecatcher every CLC message ends with. Spec 3.1. */
export const CLC_TRAILER_LENGTH = 4;
/** Smallest length any CLC message can announce: a header and a trailer. */
export const CLC_MIN_LENGTH = CLC_HEADER_LENGTH + CLC_TRAILER_LENGTH;

/**
 * The two eyecatchers ("SMCR" / "SMCD" in EBCDIC). Either may open and close any CLC message; the
 * receiver accepts both in header and trailer (spec 3.1). Linux sends "SMCR" except in SMC-D Accept/Confirm.
 */
export const ClcEyecatcher = {
  SMCR: { name: 'SMCR', value: 0xe2d4c3d9, text: '"SMCR" in EBCDIC (E2 D4 C3 D9)' },
  SMCD: { name: 'SMCD', value: 0xe2d4c3c4, text: '"SMCD" in EBCDIC (E2 D4 C3 C4)' },
} as const;
export type ClcEyecatcher = keyof typeof ClcEyecatcher;

/** CLC message types, header byte 4 (spec 3.1). */
export const ClcMsgType = {
  proposal: { value: 1, name: 'proposal', text: 'Proposal' },
  accept: { value: 2, name: 'accept', text: 'Accept' },
  confirm: { value: 3, name: 'confirm', text: 'Confirm' },
  decline: { value: 4, name: 'decline', text: 'Decline' },
} as const;
export type ClcMsgType = keyof typeof ClcMsgType;

/**
 * `SMC_TYPE_*`: the 2-bit path values of header byte 7 (typev1 = bits 1-0, typev2 = bits 3-2).
 * Spec 3.1: 0 = SMC-R, 1 = SMC-D, 2 = neither, 3 = both.
 */
export const SmcType = {
  R: { value: 0, name: 'R', text: 'SMC-R' },
  D: { value: 1, name: 'D', text: 'SMC-D' },
  N: { value: 2, name: 'N', text: 'none' },
  B: { value: 3, name: 'B', text: 'SMC-R and SMC-D' },
} as const;
export type SmcType = keyof typeof SmcType;

/** `SMC_CLC_OS_*` (4-bit OS type in the first-contact extension and the v2 Decline). Spec 3.1. */
export const ClcOsType = {
  ZOS: { value: 1, name: 'z/OS' },
  LINUX: { value: 2, name: 'Linux' },
  AIX: { value: 3, name: 'AIX' },
} as const;

/** `SMC_RELEASE_*`: the SMCv2 release nibble (Proposal v2 extension, first-contact extension). Spec 3.1. */
export const SmcRelease = {
  V2_0: { value: 0, name: 'v2.0' },
  V2_1: { value: 1, name: 'v2.1' },
} as const;

/**
 * Header byte 7, bit 3 (`SMC_FIRST_CONTACT_MASK`): "first contact" in Accept/Confirm, "out of sync" in
 * a Decline. It is the high bit of the typev2 field (spec 3.1).
 */
export const CLC_FIRST_CONTACT_MASK = 0x08;

/** Limits the Linux receiver enforces (spec 3.1, 3.3.3-3.3.5). */
export const ClcLimit = {
  /** `SMC_CLC_MAX_V6_PREFIX`. */
  MAX_IPV6_PREFIXES: 8,
  /** `SMC_CLC_MAX_UEID`. */
  MAX_UEIDS: 8,
  /** `SMCD_CLC_MAX_V2_GID_ENTRIES`. */
  MAX_ISM_GIDS: 8,
  /** `SMC_MAX_EID_LEN`. */
  EID_LEN: 32,
  /** `SMC_MAX_HOSTNAME_LEN`. */
  HOSTNAME_LEN: 32,
  /** Largest `iparea_offset` (the size of the SMC-D / common area). */
  MAX_IPAREA_OFFSET: 40,
  /** Largest `v2_ext_offset` the kernel follows (spec 3.3.3). */
  MAX_V2_EXT_OFFSET: 172,
  /** Largest `smcd_v2_ext_offset` the kernel follows (spec 3.3.4). */
  MAX_SMCD_V2_EXT_OFFSET: 288,
} as const;

/** Message lengths (spec 3.1, 3.3.5, 3.4, 3.5). */
export const ClcLength = {
  /** `SMCR_CLC_ACCEPT_CONFIRM_LEN`: SMC-R v1 Accept/Confirm, exact. */
  ACCEPT_CONFIRM_V1: 68,
  /** `SMCR_CLC_ACCEPT_CONFIRM_LEN_V2`: SMC-R v2 Accept/Confirm without extensions (the minimum). */
  ACCEPT_CONFIRM_V2: 108,
  /** SMC-R v2 Accept with the 52-byte first-contact extension. */
  ACCEPT_V2_FCE: 160,
  /** SMC-R v2 Confirm with first-contact extension and an empty GID list; add 16 per GID. */
  CONFIRM_V2_FCE: 164,
  /** `SMCD_CLC_ACCEPT_CONFIRM_LEN` (v1 SMC-D, exact). */
  SMCD_ACCEPT_CONFIRM_V1: 48,
  /** `SMCD_CLC_ACCEPT_CONFIRM_LEN_V2` (v2 SMC-D minimum). */
  SMCD_ACCEPT_CONFIRM_V2: 78,
  /** Decline, header version 1, exact. */
  DECLINE_V1: 28,
  /** Decline, header version >= 2, exact. */
  DECLINE_V2: 44,
  /** Size of the full (v2.1-layout) first-contact extension. */
  FCE: 52,
  /** Size of the base (release-0 SMC-D style) first-contact extension. */
  FCE_BASE: 36,
  /**
   * The largest valid Proposal: v2 header, typev1 != N with 8 IPv6 prefixes, typev2 = B with 8 UEIDs and
   * 8 ISM GIDs: 80 + (8 + 17*8) + (40 + 32*8) + (48 + 10*8) + 4 = 652. Used as the reader's default bound.
   */
  PROPOSAL_MAX: 652,
} as const;

/** Vendor OUI Alibaba (Anolis) puts into the Proposal's SMC-D / common area. Spec 3.3.3. */
export const ALIBABA_OUI = 0xfca64c;

/**
 * Bits of the Alibaba vendor option byte (Proposal byte 56, first-contact extension byte 40).
 * Spec 3.3.3 (`struct smc_clc_vendor_opt_ali`).
 */
export const AliVendorFlag = {
  VALID: { value: 0x80, name: 'valid', text: 'the Alibaba option word is meaningful' },
  CREDITS_EN: { value: 0x40, name: 'credits_en', text: 'RQ-credit flow control (spec 7.8)' },
  RWWI_EN: { value: 0x20, name: 'rwwi_en', text: 'RDMA WRITE WITH IMMEDIATE data path (spec 7.9)' },
} as const;

/** Fields every CLC message carries from its header and trailer, so that encoding reproduces them. */
export interface ClcHeaderFields {
  /** Leading eyecatcher. */
  readonly eyecatcher: ClcEyecatcher;
  /** Trailing eyecatcher, present only when it differs from `eyecatcher` (Linux never does that). */
  readonly trailer?: ClcEyecatcher;
  /** Header version nibble, 1..15. Every value >= 2 selects the v2 layout, as in the kernel. */
  readonly version: number;
}

/** What {@link peekClcHeader} reports about the 8 header bytes. */
export interface ClcHeader {
  readonly eyecatcher: ClcEyecatcher;
  /** Raw type byte (byte 4). */
  readonly typeCode: number;
  /** The message type, or undefined when `typeCode` names none. */
  readonly type: ClcMsgType | undefined;
  /** Total message length (BE16 at byte 5), header and trailer included. */
  readonly length: number;
  /** Version nibble (byte 7, bits 7-4). */
  readonly version: number;
  /** Raw flags byte (byte 7). */
  readonly flags: number;
  /** Byte 7 bits 1-0. */
  readonly typev1: SmcType;
  /** Byte 7 bits 3-2. */
  readonly typev2: SmcType;
  /** Byte 7 bit 3: first contact (Accept/Confirm) or out of sync (Decline). */
  readonly firstContact: boolean;
}

const SMC_TYPE_BY_VALUE: readonly SmcType[] = ['R', 'D', 'N', 'B'];
const MSG_TYPE_BY_VALUE: readonly (ClcMsgType | undefined)[] = [undefined, 'proposal', 'accept', 'confirm', 'decline'];
/** Eyecatcher bytes, for prefix matching on partial input. The two differ only in the last byte. */
const EYE_PREFIX = [0xe2, 0xd4, 0xc3] as const;

/** SmcType from its 2-bit value. */
export function smcTypeOf(bits: number): SmcType {
  return SMC_TYPE_BY_VALUE[bits & 3]!;
}

/** Message type name from the type byte, or undefined. */
export function clcMsgTypeOf(code: number): ClcMsgType | undefined {
  return MSG_TYPE_BY_VALUE[code];
}

/** True when the type offers SMC-R (R or B); the kernel's `smcr_indicated`. */
export function smcrIndicated(t: SmcType): boolean {
  return t === 'R' || t === 'B';
}

/** True when the type offers SMC-D (D or B); the kernel's `smcd_indicated`. */
export function smcdIndicated(t: SmcType): boolean {
  return t === 'D' || t === 'B';
}

/** Eyecatcher at `off` (4 bytes must be readable), or undefined if the bytes are neither. */
export function readEyecatcher(buf: Uint8Array, off: number): ClcEyecatcher | undefined {
  if (buf[off] !== 0xe2 || buf[off + 1] !== 0xd4 || buf[off + 2] !== 0xc3) return undefined;
  const last = buf[off + 3];
  if (last === 0xd9) return 'SMCR';
  if (last === 0xc4) return 'SMCD';
  return undefined;
}

/** Writes the 4 eyecatcher bytes. */
export function writeEyecatcher(buf: Buffer, off: number, eye: ClcEyecatcher): void {
  buf.writeUInt32BE(ClcEyecatcher[eye].value, off);
}

/**
 * Throws BAD_EYECATCHER unless the bytes in `[off, min(off + 4, end))` can begin an eyecatcher. With fewer
 * than 4 bytes it checks the prefix, so a peer that is not speaking CLC is detected from its first byte.
 */
function checkEyecatcherPrefix(buf: Uint8Array, off: number, end: number): void {
  const n = Math.min(4, end - off);
  for (let i = 0; i < n; i++) {
    const b = buf[off + i];
    const ok = i < 3 ? b === EYE_PREFIX[i] : b === 0xd9 || b === 0xc4;
    if (!ok) {
      throw new WireError(WireErrorCode.BAD_EYECATCHER, `not a CLC message: byte 0x${(b ?? 0).toString(16).padStart(2, '0')} is not part of "SMCR"/"SMCD"`, off + i, 'CLC');
    }
  }
}

/**
 * Looks at the CLC header at `off` without consuming or validating anything beyond the eyecatcher.
 * Returns undefined while fewer than 8 bytes are in `[off, end)`. Throws BAD_EYECATCHER as soon as the
 * available bytes cannot start "SMCR"/"SMCD" (even before 4 bytes are there): that is how a caller learns
 * that the peer is not speaking CLC.
 */
export function peekClcHeader(buf: Buffer, off = 0, end = buf.length): ClcHeader | undefined {
  checkEyecatcherPrefix(buf, off, end);
  if (end - off < CLC_HEADER_LENGTH) return undefined;
  const flags = buf[off + 7]!;
  const typeCode = buf[off + 4]!;
  return {
    eyecatcher: readEyecatcher(buf, off)!,
    typeCode,
    type: clcMsgTypeOf(typeCode),
    length: buf.readUInt16BE(off + 5),
    version: flags >>> 4,
    flags,
    typev1: smcTypeOf(flags),
    typev2: smcTypeOf(flags >>> 2),
    firstContact: (flags & CLC_FIRST_CONTACT_MASK) !== 0,
  };
}

/** Throws BAD_LENGTH naming the header's length field (`off + 5`). */
export function badLength(off: number, len: number, why: string, msgType: string): WireError {
  return new WireError(WireErrorCode.BAD_LENGTH, `length ${len}: ${why}`, off + 5, msgType);
}

/** BAD_VALUE error at `at`. */
export function badValue(at: number, why: string, msgType: string): WireError {
  return new WireError(WireErrorCode.BAD_VALUE, why, at, msgType);
}

/**
 * Checks the trailer of a message `[off, off + len)`. Returns the trailing eyecatcher when it differs from
 * the leading one, undefined when both match; throws BAD_TRAILER when it is no eyecatcher at all.
 */
export function checkTrailer(buf: Buffer, off: number, len: number, lead: ClcEyecatcher, msgType: string): ClcEyecatcher | undefined {
  const at = off + len - CLC_TRAILER_LENGTH;
  const trl = readEyecatcher(buf, at);
  if (trl === undefined) {
    throw new WireError(WireErrorCode.BAD_TRAILER, `trailer ${buf.subarray(at, at + 4).toString('hex')} is neither "SMCR" nor "SMCD"`, at, msgType);
  }
  return trl === lead ? undefined : trl;
}

/** Validates header fields of a message to be encoded (eyecatchers, version). */
export function checkHeaderFields(m: ClcHeaderFields, off: number, msgType: string): void {
  if (!(m.eyecatcher in ClcEyecatcher)) throw badValue(off, `eyecatcher must be "SMCR" or "SMCD", got ${String(m.eyecatcher)}`, msgType);
  if (m.trailer !== undefined && !(m.trailer in ClcEyecatcher)) {
    throw badValue(off, `trailer must be "SMCR" or "SMCD", got ${String(m.trailer)}`, msgType);
  }
  if (!Number.isInteger(m.version) || m.version < 1 || m.version > 15) {
    throw new WireError(WireErrorCode.BAD_VERSION, `version = ${m.version} is not in 1..15`, off + 7, msgType);
  }
}

/** Writes the header (type, length and flags byte given) and the trailer of a message of `len` bytes at `off`. */
export function writeHeaderAndTrailer(buf: Buffer, off: number, m: ClcHeaderFields, type: ClcMsgType, len: number, flagsLow: number): void {
  writeEyecatcher(buf, off, m.eyecatcher);
  buf[off + 4] = ClcMsgType[type].value;
  buf.writeUInt16BE(len, off + 5);
  buf[off + 7] = (m.version << 4) | (flagsLow & 0x0f);
  writeEyecatcher(buf, off + len - CLC_TRAILER_LENGTH, m.trailer ?? m.eyecatcher);
}

/** Validates an SmcType value given by a caller. */
export function checkSmcType(t: SmcType, field: string, msgType: string, at: number): void {
  if (!(t in SmcType)) throw badValue(at, `${field} must be one of R, D, N, B; got ${String(t)}`, msgType);
}

/** Reads a 32-byte EID (UEID, SEID, negotiated EID): padding blanks / NULs are dropped. */
export function readEid(buf: Buffer, off: number): string {
  return readPaddedAscii(buf, off, ClcLimit.EID_LEN);
}

/**
 * Writes a 32-byte EID. The empty string is written as 32 zero bytes (what Linux sends for "no EID",
 * e.g. in an Accept without a negotiated EID, spec 3.4.2); any other EID is blank-padded like the
 * kernel's EID table entries (spec 3.3.4).
 */
export function writeEid(buf: Buffer, off: number, eid: string, field: string, msgType: string): void {
  if (typeof eid !== 'string') throw badValue(off, `${field} must be a string`, msgType);
  if (eid === '') buf.fill(0, off, off + ClcLimit.EID_LEN);
  else writePaddedAscii(buf, off, ClcLimit.EID_LEN, eid, field, msgType);
}

/** Throws BAD_VALUE unless `v` is a bigint in 0 .. 2^64-1. */
export function checkU64(v: bigint, field: string, msgType: string, at: number): void {
  if (typeof v !== 'bigint' || v < 0n || v > 0xffff_ffff_ffff_ffffn) {
    throw badValue(at, `${field} = ${String(v)} is not a bigint in 0..2^64-1`, msgType);
  }
}

/** Alibaba vendor flags of a Proposal's SMC-D / common area: the option byte when the OUI is Alibaba's, else 0. */
export function aliFlagsFromVendor(vendorOui: number, vendorOptions: Uint8Array): number {
  return vendorOui === ALIBABA_OUI ? (vendorOptions[1] ?? 0) : 0;
}

/** The 5 vendor option bytes of a Proposal carrying Alibaba flags (byte 55 reserved, flags at 56). Spec 3.3.3. */
export function aliVendorOptions(flags: number): Buffer {
  checkUint(flags, 0xff, 'Alibaba vendor flags', 'CLC Proposal', 0);
  return Buffer.from([0, flags, 0, 0, 0]);
}
