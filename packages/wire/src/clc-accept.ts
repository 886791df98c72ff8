/**
 * CLC Accept (type 2, server -> client) and Confirm (type 3, client -> server) for SMC-R, v1 and v2
 * (spec 3.4.1-3.4.3). Both share one layout. SMC-D Accept/Confirm (spec 3.4.4) are length-checked like
 * the kernel does and then refused with UNSUPPORTED: this stack is SMC-R only, and a client that never
 * offers SMC-D must decline such an Accept anyway (0x03040000 MODEUNSUPP).
 *
 * Version-2 lengths: the kernel accepts any length >= 108 and reads the first-contact extension (FCE) and
 * the Confirm's GID list from its own zeroed buffer without checking the length. We parse what is present:
 * with the first-contact bit, the bytes after 104 hold the 52-byte FCE (or, if fewer than 52 but at least
 * 36 are there, the 36-byte release-0 base FCE); a Confirm with a full FCE and at least 4 more bytes holds
 * the GID list, whose count must fit the length. A first-contact message too short for a base FCE
 * (108..139 bytes) decodes with `fce` absent: the engine must treat that like the kernel does, as an FCE
 * of zeros (release 0, no v2.1 values). Any bytes left over are kept in `extra` so encoding reproduces them.
 */
import { WireError, WireErrorCode, checkUint, room } from './errors.js';
import { copyBytes, readPaddedAscii, readU24, writeBytes, writePaddedAscii, writeU24 } from './bytes.js';
import {
  CLC_FIRST_CONTACT_MASK,
  CLC_TRAILER_LENGTH,
  ClcLength,
  ClcLimit,
  type ClcEyecatcher,
  type ClcHeaderFields,
  badLength,
  badValue,
  checkHeaderFields,
  checkTrailer,
  checkU64,
  readEid,
  smcTypeOf,
  writeEid,
  writeHeaderAndTrailer,
} from './clc-common.js';

/** Offset of the v2 EID, of the FCE, and of the Confirm GID list. */
const EID_AT = 64;
const FCE_AT = 104;
const GID_LIST_AT = FCE_AT + ClcLength.FCE;
const GID_LIST_HDR = 4;
const GID_LEN = 16;

/**
 * First-contact extension (`smc_clc_first_contact_ext_v2x`), spec 3.4.3. The last four fields exist only
 * in the 52-byte form; they are all present or all absent (36-byte base form).
 */
export interface ClcFirstContactExt {
  /** Byte 0 bit 7: peer is on a directly connected subnet (no IP gateway). */
  readonly v2Direct: boolean;
  /** Byte 1 bits 7-4 (`ClcOsType`). */
  readonly osType: number;
  /** Byte 1 bits 3-0 (`SmcRelease`). */
  readonly release: number;
  /** Sender's host name without the blank padding. */
  readonly hostname: string;
  /** v2.1: max connections per link group. */
  readonly maxConns?: number;
  /** v2.1: max links per link group. */
  readonly maxLinks?: number;
  /** v2.1 feature mask (BE16). */
  readonly featureMask?: number;
  /** Vendor option word (BE32). Alibaba: the top byte holds {@link AliVendorFlag} bits (FCE byte 40). */
  readonly vendorOptions?: number;
}

/** Fields common to SMC-R Accept and Confirm. */
export interface ClcAcceptConfirmFields extends ClcHeaderFields {
  /** Header bit 0x08: the sender created a new link group. */
  readonly firstContact: boolean;
  /** Sender's 8-byte system ID. */
  readonly peerId: Buffer;
  /** Sender's 16-byte GID for the link (the RoCEv2 GID in v2). */
  readonly gid: Buffer;
  /** Sender's 6-byte RoCE MAC. */
  readonly mac: Buffer;
  /** Sender's RC QP number (24 bits). */
  readonly qpn: number;
  /** rkey of the sender's RMB (32 bits). */
  readonly rmbRkey: number;
  /** Index of this connection's RMBE in the RMB (Linux sends 1). */
  readonly rmbeIdx: number;
  /** Sender's connection token (32 bits). */
  readonly rmbeAlertToken: number;
  /** Byte 50 bits 7-4: compressed RMBE size code, raw (decode it with bufsize.ts). */
  readonly rmbeSizeCode: number;
  /** Byte 50 bits 3-0: IB MTU enum (1 = 256 .. 5 = 4096). */
  readonly qpMtu: number;
  /** Byte 51: Alibaba `init_credits` (spec 7.8); 0 upstream. */
  readonly initCredits: number;
  /** RMB virtual address for RDMA WRITE (64 bits). */
  readonly rmbVaddr: bigint;
  /** Sender's initial send PSN (24 bits). */
  readonly psn: number;
  /** v2 only (required there): negotiated EID; '' when the sender sent zeros. */
  readonly eid?: string;
  /** v2 with first contact: the first-contact extension, when present. */
  readonly fce?: ClcFirstContactExt;
  /** v2 Confirm with a full FCE: the GID list (16-byte GIDs). */
  readonly gidList?: readonly Buffer[];
  /** v2: bytes before the trailer that no known part covers (never sent by Linux); omitted when none. */
  readonly extra?: Buffer;
}

/** CLC Accept (SMC-R). */
export interface ClcAccept extends ClcAcceptConfirmFields {
  readonly type: 'accept';
}

/** CLC Confirm (SMC-R). */
export interface ClcConfirm extends ClcAcceptConfirmFields {
  readonly type: 'confirm';
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function msgTypeName(type: 'accept' | 'confirm'): string {
  return type === 'accept' ? 'CLC Accept' : 'CLC Confirm';
}

/**
 * Decodes the Accept/Confirm `[off, off + len)`; the caller (decodeClc) has checked eyecatcher, version,
 * type and that `len` bytes are available. Checks are those of the kernel's `smc_clc_msg_acc_conf_valid`
 * (spec 3.2): typev1 R or D; v1 exactly 68 (R) / 48 (D); v2 at least 108 (R) / 78 (D); then the trailer.
 */
export function decodeAcceptConfirmBody(buf: Buffer, off: number, len: number, eyecatcher: ClcEyecatcher, type: 'accept' | 'confirm'): ClcAccept | ClcConfirm {
  const MT = msgTypeName(type);
  const flags = buf[off + 7]!;
  const version = flags >>> 4;
  const typev1 = smcTypeOf(flags);
  if (typev1 !== 'R' && typev1 !== 'D') throw badValue(off + 7, `typev1 must be R or D, got ${typev1}`, MT);
  if (version === 1) {
    const want = typev1 === 'R' ? ClcLength.ACCEPT_CONFIRM_V1 : ClcLength.SMCD_ACCEPT_CONFIRM_V1;
    if (len !== want) throw badLength(off, len, `a version-1 SMC-${typev1} ${type} is exactly ${want} bytes`, MT);
  } else {
    const min = typev1 === 'R' ? ClcLength.ACCEPT_CONFIRM_V2 : ClcLength.SMCD_ACCEPT_CONFIRM_V2;
    if (len < min) throw badLength(off, len, `a version-2 SMC-${typev1} ${type} is at least ${min} bytes`, MT);
  }
  const trailer = checkTrailer(buf, off, len, eyecatcher, MT);
  if (typev1 === 'D') {
    throw new WireError(WireErrorCode.UNSUPPORTED, `SMC-D ${type} (typev1 D) is not supported: this stack speaks SMC-R only`, off + 7, MT);
  }
  const sizeMtu = buf[off + 50]!;
  const msg: Mutable<ClcAcceptConfirmFields> & { type: 'accept' | 'confirm' } = {
    type,
    eyecatcher,
    version,
    firstContact: (flags & CLC_FIRST_CONTACT_MASK) !== 0,
    peerId: copyBytes(buf, off + 8, 8),
    gid: copyBytes(buf, off + 16, 16),
    mac: copyBytes(buf, off + 32, 6),
    qpn: readU24(buf, off + 38),
    rmbRkey: buf.readUInt32BE(off + 41),
    rmbeIdx: buf[off + 45]!,
    rmbeAlertToken: buf.readUInt32BE(off + 46),
    rmbeSizeCode: sizeMtu >>> 4,
    qpMtu: sizeMtu & 0x0f,
    initCredits: buf[off + 51]!,
    rmbVaddr: buf.readBigUInt64BE(off + 52),
    psn: readU24(buf, off + 61),
  };
  if (trailer !== undefined) msg.trailer = trailer;
  if (version === 1) return msg as ClcAccept | ClcConfirm;

  msg.eid = readEid(buf, off + EID_AT);
  const bodyEnd = off + len - CLC_TRAILER_LENGTH;
  let pos = off + FCE_AT;
  if (msg.firstContact && bodyEnd - pos >= ClcLength.FCE_BASE) {
    const full = bodyEnd - pos >= ClcLength.FCE;
    const b1 = buf[pos + 1]!;
    const fce: Mutable<ClcFirstContactExt> = {
      v2Direct: (buf[pos]! & 0x80) !== 0,
      osType: b1 >>> 4,
      release: b1 & 0x0f,
      hostname: readPaddedAscii(buf, pos + 4, ClcLimit.HOSTNAME_LEN),
    };
    if (full) {
      fce.maxConns = buf[pos + 36]!;
      fce.maxLinks = buf[pos + 37]!;
      fce.featureMask = buf.readUInt16BE(pos + 38);
      fce.vendorOptions = buf.readUInt32BE(pos + 40);
    }
    msg.fce = fce;
    pos += full ? ClcLength.FCE : ClcLength.FCE_BASE;
    if (full && type === 'confirm' && bodyEnd - pos >= GID_LIST_HDR) {
      const k = buf[pos]!;
      if (pos + GID_LIST_HDR + GID_LEN * k > bodyEnd) {
        throw badLength(off, len, `too short for the ${k} GIDs the GID list at ${pos - off} announces`, MT);
      }
      const gids: Buffer[] = [];
      for (let i = 0; i < k; i++) gids.push(copyBytes(buf, pos + GID_LIST_HDR + GID_LEN * i, GID_LEN));
      msg.gidList = gids;
      pos += GID_LIST_HDR + GID_LEN * k;
    }
  }
  if (pos < bodyEnd) msg.extra = copyBytes(buf, pos, bodyEnd - pos);
  return msg as ClcAccept | ClcConfirm;
}

/** Validates the optional parts (see module doc) and returns the encoded size. */
export function acceptConfirmLength(m: ClcAccept | ClcConfirm, off = 0): number {
  const MT = msgTypeName(m.type);
  checkHeaderFields(m, off, MT);
  const absent = (v: unknown, field: string, why: string): void => {
    if (v !== undefined) throw badValue(off + EID_AT, `${field} must be absent ${why}`, MT);
  };
  if (m.version === 1) {
    absent(m.eid, 'eid', 'in a version-1 message');
    absent(m.fce, 'fce', 'in a version-1 message');
    absent(m.gidList, 'gidList', 'in a version-1 message');
    absent(m.extra, 'extra', 'in a version-1 message');
    return ClcLength.ACCEPT_CONFIRM_V1;
  }
  if (m.eid === undefined) throw badValue(off + EID_AT, "a version-2 message needs eid ('' for none)", MT);
  let len = ClcLength.ACCEPT_CONFIRM_V2;
  const extra = m.extra?.length ?? 0;
  const fce = m.fce;
  if (!m.firstContact) absent(fce, 'fce', 'without first contact');
  if (m.gidList !== undefined) {
    if (m.type !== 'confirm') throw badValue(off + GID_LIST_AT, 'gidList exists only in a Confirm', MT);
    if (fce === undefined || fce.maxConns === undefined) throw badValue(off + GID_LIST_AT, 'gidList needs a full (52-byte) fce before it', MT);
    checkUint(m.gidList.length, 0xff, 'gidList count', MT, off + GID_LIST_AT);
  }
  if (fce === undefined) {
    // A first-contact message without FCE: fewer than 36 extra bytes, else they would decode as one.
    if (m.firstContact && extra >= ClcLength.FCE_BASE) throw badValue(off + FCE_AT, 'extra would be decoded as an fce: give the fce instead', MT);
  } else {
    const v21 = [fce.maxConns, fce.maxLinks, fce.featureMask, fce.vendorOptions].filter((v) => v !== undefined).length;
    if (v21 !== 0 && v21 !== 4) throw badValue(off + FCE_AT + 36, 'fce.maxConns, maxLinks, featureMask and vendorOptions are all present (52-byte FCE) or all absent (36-byte FCE)', MT);
    if (v21 === 0) {
      if (extra >= ClcLength.FCE - ClcLength.FCE_BASE) throw badValue(off + FCE_AT + 36, 'extra would be decoded as the rest of a 52-byte fce', MT);
      len += ClcLength.FCE_BASE;
    } else {
      len += ClcLength.FCE;
      if (m.type === 'confirm' && m.gidList === undefined && extra >= GID_LIST_HDR) {
        throw badValue(off + GID_LIST_AT, 'extra would be decoded as a GID list: give gidList instead', MT);
      }
    }
  }
  if (m.gidList !== undefined) len += GID_LIST_HDR + GID_LEN * m.gidList.length;
  len += extra;
  if (len > 0xffff) throw badValue(off + 5, `message would be ${len} bytes, more than a BE16 length allows`, MT);
  return len;
}

/** Encodes an SMC-R Accept or Confirm at `off`; returns the offset after it. */
export function encodeAcceptConfirm(m: ClcAccept | ClcConfirm, buf: Buffer, off: number): number {
  const MT = msgTypeName(m.type);
  const len = acceptConfirmLength(m, off);
  room(buf, off, len, MT);
  buf.fill(0, off, off + len);
  writeHeaderAndTrailer(buf, off, m, m.type, len, (m.firstContact ? CLC_FIRST_CONTACT_MASK : 0) | 0 /* typev1 R */);
  writeBytes(buf, off + 8, m.peerId, 8, 'peerId', MT);
  writeBytes(buf, off + 16, m.gid, 16, 'gid', MT);
  writeBytes(buf, off + 32, m.mac, 6, 'mac', MT);
  checkUint(m.qpn, 0xffffff, 'qpn', MT, off + 38);
  writeU24(buf, off + 38, m.qpn);
  checkUint(m.rmbRkey, 0xffffffff, 'rmbRkey', MT, off + 41);
  buf.writeUInt32BE(m.rmbRkey, off + 41);
  checkUint(m.rmbeIdx, 0xff, 'rmbeIdx', MT, off + 45);
  buf[off + 45] = m.rmbeIdx;
  checkUint(m.rmbeAlertToken, 0xffffffff, 'rmbeAlertToken', MT, off + 46);
  buf.writeUInt32BE(m.rmbeAlertToken, off + 46);
  checkUint(m.rmbeSizeCode, 15, 'rmbeSizeCode', MT, off + 50);
  checkUint(m.qpMtu, 15, 'qpMtu', MT, off + 50);
  buf[off + 50] = (m.rmbeSizeCode << 4) | m.qpMtu;
  checkUint(m.initCredits, 0xff, 'initCredits', MT, off + 51);
  buf[off + 51] = m.initCredits;
  checkU64(m.rmbVaddr, 'rmbVaddr', MT, off + 52);
  buf.writeBigUInt64BE(m.rmbVaddr, off + 52);
  checkUint(m.psn, 0xffffff, 'psn', MT, off + 61);
  writeU24(buf, off + 61, m.psn);
  if (m.version === 1) return off + len;

  writeEid(buf, off + EID_AT, m.eid!, 'eid', MT);
  let pos = off + FCE_AT;
  const fce = m.fce;
  if (fce !== undefined) {
    buf[pos] = fce.v2Direct ? 0x80 : 0;
    checkUint(fce.osType, 15, 'fce.osType', MT, pos + 1);
    checkUint(fce.release, 15, 'fce.release', MT, pos + 1);
    buf[pos + 1] = (fce.osType << 4) | fce.release;
    writePaddedAscii(buf, pos + 4, ClcLimit.HOSTNAME_LEN, fce.hostname, 'fce.hostname', MT);
    if (fce.maxConns !== undefined) {
      checkUint(fce.maxConns, 0xff, 'fce.maxConns', MT, pos + 36);
      buf[pos + 36] = fce.maxConns;
      checkUint(fce.maxLinks!, 0xff, 'fce.maxLinks', MT, pos + 37);
      buf[pos + 37] = fce.maxLinks!;
      checkUint(fce.featureMask!, 0xffff, 'fce.featureMask', MT, pos + 38);
      buf.writeUInt16BE(fce.featureMask!, pos + 38);
      checkUint(fce.vendorOptions!, 0xffffffff, 'fce.vendorOptions', MT, pos + 40);
      buf.writeUInt32BE(fce.vendorOptions!, pos + 40);
      pos += ClcLength.FCE;
    } else {
      pos += ClcLength.FCE_BASE;
    }
  }
  if (m.gidList !== undefined) {
    buf[pos] = m.gidList.length;
    pos += GID_LIST_HDR;
    for (let i = 0; i < m.gidList.length; i++) {
      writeBytes(buf, pos, m.gidList[i]!, GID_LEN, `gidList[${i}]`, MT);
      pos += GID_LEN;
    }
  }
  if (m.extra !== undefined) buf.set(m.extra, pos);
  return off + len;
}

/** Alibaba vendor flags carried in an FCE (the top byte of the vendor option word), 0 when absent. */
export function aliFlagsFromFce(fce: ClcFirstContactExt | undefined): number {
  return fce?.vendorOptions !== undefined ? fce.vendorOptions >>> 24 : 0;
}
