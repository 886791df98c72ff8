/**
 * CLC Decline (type 4, either direction), spec 3.5: exactly 28 bytes with header version 1, exactly 44
 * with version >= 2. Linux does not check a Decline's trailer (spec 3.2, 12 row 15), so a wrong trailer is
 * reported in `trailerOk` instead of being rejected; the encoder always writes a correct one.
 */
import { checkUint, room } from './errors.js';
import { copyBytes, writeBytes } from './bytes.js';
import {
  CLC_FIRST_CONTACT_MASK,
  CLC_TRAILER_LENGTH,
  ClcLength,
  type ClcEyecatcher,
  type ClcHeaderFields,
  SmcType,
  badLength,
  badValue,
  checkHeaderFields,
  readEyecatcher,
  smcTypeOf,
  writeHeaderAndTrailer,
} from './clc-common.js';

const MT = 'CLC Decline';
/** Number of additional BE32 diagnosis codes in a v2 Decline. */
const DIAG_V2_COUNT = 4;

/** A CLC Decline. */
export interface ClcDecline extends ClcHeaderFields {
  readonly type: 'decline';
  /** Header typev1: R or D (the kernel rejects N and B); Linux sends R. */
  readonly typev1: 'R' | 'D';
  /** Header bit 0x08: the sender's link group is out of sync (sent only with 0x04000000 SYNCERR). */
  readonly outOfSync: boolean;
  /** Sender's 8-byte system ID (zero if none). */
  readonly peerId: Buffer;
  /** BE32 reason code (spec 4). */
  readonly peerDiagnosis: number;
  /** Byte 20 bits 7-4: OS type (2 = Linux in v2 Declines, 0 in v1). */
  readonly osType: number;
  /** Version >= 2 only (required there): the 4 additional BE32 diagnosis codes at 24. */
  readonly diagnosisV2?: readonly number[];
  /**
   * Decode: whether the trailer was "SMCR" or "SMCD" (the kernel does not check it). Encode: ignored, a
   * correct trailer is always written.
   */
  readonly trailerOk: boolean;
}

/**
 * Decodes the Decline `[off, off + len)`; the caller (decodeClc) has checked eyecatcher, version, type and
 * that `len` bytes are available. Checks are those of the kernel's `smc_clc_msg_decl_valid` (spec 3.2).
 */
export function decodeDeclineBody(buf: Buffer, off: number, len: number, eyecatcher: ClcEyecatcher): ClcDecline {
  const flags = buf[off + 7]!;
  const version = flags >>> 4;
  const typev1 = smcTypeOf(flags);
  if (typev1 !== 'R' && typev1 !== 'D') throw badValue(off + 7, `typev1 must be R or D, got ${typev1}`, MT);
  const want = version === 1 ? ClcLength.DECLINE_V1 : ClcLength.DECLINE_V2;
  if (len !== want) throw badLength(off, len, `a version-${version} Decline is exactly ${want} bytes`, MT);
  const trl = readEyecatcher(buf, off + len - CLC_TRAILER_LENGTH);
  const msg: { -readonly [K in keyof ClcDecline]: ClcDecline[K] } = {
    type: 'decline',
    eyecatcher,
    version,
    typev1,
    outOfSync: (flags & CLC_FIRST_CONTACT_MASK) !== 0,
    peerId: copyBytes(buf, off + 8, 8),
    peerDiagnosis: buf.readUInt32BE(off + 16),
    osType: buf[off + 20]! >>> 4,
    trailerOk: trl !== undefined,
  };
  if (trl !== undefined && trl !== eyecatcher) msg.trailer = trl;
  if (version >= 2) {
    const d: number[] = [];
    for (let i = 0; i < DIAG_V2_COUNT; i++) d.push(buf.readUInt32BE(off + 24 + 4 * i));
    msg.diagnosisV2 = d;
  }
  return msg;
}

/** Encoded size of a Decline: 28 (version 1) or 44. */
export function declineLength(m: ClcDecline, off = 0): number {
  checkHeaderFields(m, off, MT);
  if (m.typev1 !== 'R' && m.typev1 !== 'D') throw badValue(off + 7, `typev1 must be R or D, got ${String(m.typev1)}`, MT);
  if (m.version === 1) {
    if (m.diagnosisV2 !== undefined) throw badValue(off + 24, 'diagnosisV2 must be absent in a version-1 Decline', MT);
    return ClcLength.DECLINE_V1;
  }
  if (m.diagnosisV2 === undefined || m.diagnosisV2.length !== DIAG_V2_COUNT) {
    throw badValue(off + 24, `a version-2 Decline needs exactly ${DIAG_V2_COUNT} diagnosisV2 codes`, MT);
  }
  return ClcLength.DECLINE_V2;
}

/** Encodes a Decline at `off`; returns the offset after it. */
export function encodeDecline(m: ClcDecline, buf: Buffer, off: number): number {
  const len = declineLength(m, off);
  room(buf, off, len, MT);
  buf.fill(0, off, off + len);
  writeHeaderAndTrailer(buf, off, m, 'decline', len, (m.outOfSync ? CLC_FIRST_CONTACT_MASK : 0) | SmcType[m.typev1].value);
  writeBytes(buf, off + 8, m.peerId, 8, 'peerId', MT);
  checkUint(m.peerDiagnosis, 0xffffffff, 'peerDiagnosis', MT, off + 16);
  buf.writeUInt32BE(m.peerDiagnosis, off + 16);
  checkUint(m.osType, 15, 'osType', MT, off + 20);
  buf[off + 20] = m.osType << 4;
  if (m.diagnosisV2 !== undefined) {
    for (let i = 0; i < DIAG_V2_COUNT; i++) {
      checkUint(m.diagnosisV2[i]!, 0xffffffff, `diagnosisV2[${i}]`, MT, off + 24 + 4 * i);
      buf.writeUInt32BE(m.diagnosisV2[i]!, off + 24 + 4 * i);
    }
  }
  return off + len;
}
