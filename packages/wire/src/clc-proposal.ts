/**
 * CLC Proposal (type 1, client -> server): RFC 7609 v1 layout, the Linux layout with the 40-byte
 * SMC-D / common area, and the version-2 Proposal with its SMCv2 and SMC-Dv2 extensions (spec 3.3).
 *
 * Layout record: `version` and `ipAreaOffset` say which layout a message uses, so that encoding a decoded
 * Proposal gives back the same bytes:
 * - version 1, `ipAreaOffset` 0: RFC 7609 layout, the IP prefix area right after byte 40, no `smcdArea`.
 * - version 1, `ipAreaOffset` 40: Linux layout, `smcdArea` at 40, the prefix area at 80.
 * - version 1, `ipAreaOffset` 1..39: RFC "area for future growth" of that size; its bytes are reserved
 *   (zero when encoding) and not exposed.
 * - version >= 2: `smcdArea` always at 40 (spec 3.3.2); the prefix area at 80 when typev1 != N; then the
 *   v2 extension and the SMC-Dv2 extension, packed in that order.
 * The two extension offsets (`v2_ext_offset`, `smcd_v2_ext_offset`) are not stored: they are derived from
 * the packed layout, and the decoder rejects a message whose offsets point elsewhere (spec 3.3.3/3.3.4).
 */
import { checkUint, room } from './errors.js';
import { copyBytes, writeBytes } from './bytes.js';
import {
  CLC_TRAILER_LENGTH,
  ClcLimit,
  type ClcHeaderFields,
  type ClcEyecatcher,
  type SmcType,
  SmcType as SmcTypeTable,
  badLength,
  badValue,
  checkHeaderFields,
  checkSmcType,
  checkTrailer,
  checkU64,
  readEid,
  smcTypeOf,
  smcdIndicated,
  writeEid,
  writeHeaderAndTrailer,
} from './clc-common.js';

const MT = 'CLC Proposal';

/** Size of the fixed part up to and including `iparea_offset` (header + peer ID + GID + MAC + offset). */
const FIXED_LEN = 40;
/** Size of the SMC-D / common area (`struct smc_clc_msg_smcd`). */
const SMCD_AREA_LEN = 40;
/** Size of the IP prefix area without IPv6 entries. */
const PREFIX_LEN = 8;
/** Size of one IPv6 prefix entry (16-byte prefix + 1-byte length, packed). */
const IPV6_ENTRY_LEN = 17;
/** Size of the fixed part of the SMCv2 extension. */
const V2_EXT_LEN = 40;
/** Size of the fixed part of the SMC-Dv2 extension (system EID + reserved). */
const SMCD_V2_EXT_LEN = 48;
/** Size of one SMC-Dv2 GID/CHID entry. */
const GID_CHID_LEN = 10;

/** One IPv6 prefix of the prefix area (spec 3.3.1). */
export interface ClcIpv6Prefix {
  /** 16-byte IPv6 prefix. */
  readonly prefix: Buffer;
  /** Prefix length in bits. */
  readonly prefixLen: number;
}

/** The IP prefix area (`struct smc_clc_msg_proposal_prefix` + IPv6 entries), spec 3.3.1. */
export interface ClcIpPrefixArea {
  /** IPv4 network address (4 bytes, network order); zero for IPv6. */
  readonly subnet: Buffer;
  /** IPv4 prefix length in bits; zero for IPv6. */
  readonly prefixLen: number;
  /** Up to 8 IPv6 prefixes. */
  readonly ipv6Prefixes: readonly ClcIpv6Prefix[];
}

/** The 40-byte SMC-D / common area at offset 40 (`struct smc_clc_msg_smcd`), spec 3.3.3. */
export interface ClcSmcdArea {
  /** ISM GID (SMC-Dv1 only; zero for SMC-R). */
  readonly ismGid: bigint;
  /** ISM CHID (SMC-Dv1 only). */
  readonly ismChid: number;
  /** 24-bit vendor OUI: 0 upstream, {@link ALIBABA_OUI} for Alibaba. */
  readonly vendorOui: number;
  /** 5 vendor option bytes. Alibaba: byte 0 reserved, byte 1 = flags ({@link AliVendorFlag}), 2..4 reserved. */
  readonly vendorOptions: Buffer;
}

/** The SMCv2 extension (`struct smc_clc_v2_extension`), spec 3.3.4. */
export interface ClcProposalV2Ext {
  /** SMCv2 release nibble (0 = v2.0, 1 = v2.1). */
  readonly release: number;
  /** System-EID flag (SMC-D, s390). */
  readonly seid: boolean;
  /** RoCEv2 GID the client will use for SMC-Rv2 (16 bytes, IPv4-mapped). */
  readonly roceGid: Buffer;
  /** v2.1: the client's max connections per link group. */
  readonly maxConns: number;
  /** v2.1: the client's max links per link group. */
  readonly maxLinks: number;
  /** v2.1 supplemental feature bits. */
  readonly featureMask: number;
  /** User EIDs (at most 8), without their blank padding. */
  readonly ueids: readonly string[];
}

/** One SMC-Dv2 GID/CHID entry. */
export interface ClcSmcdGidChid {
  readonly gid: bigint;
  readonly chid: number;
}

/**
 * The SMC-Dv2 extension (present when typev2 is D or B), spec 3.3.4. Parsed so the Proposal can be
 * inspected and re-encoded, but this stack is SMC-R only: `supported` is always false and the engine is
 * expected to decline SMC-D.
 */
export interface ClcSmcdV2Ext {
  /** Always false: SMC-D is not supported by this stack (the engine declines it). */
  readonly supported: false;
  /** System EID (empty when the sender sent zeros). */
  readonly systemEid: string;
  /** ISMv2 GID/CHID entries (at most 8). */
  readonly gidChids: readonly ClcSmcdGidChid[];
}

/** A CLC Proposal. Optional parts are present exactly when the layout (see module doc) has them. */
export interface ClcProposal extends ClcHeaderFields {
  readonly type: 'proposal';
  /** What the client offers for SMCv1 (header byte 7 bits 1-0). Never N in a version-1 Proposal. */
  readonly typev1: SmcType;
  /**
   * What the client offers for SMCv2 (byte 7 bits 3-2). Version-1 Proposals have no such field (the bits
   * are reserved): it is then always 'N' and written as zero bits.
   */
  readonly typev2: SmcType;
  /** Sender's 8-byte system ID (zero when SMC-Rv1 is not offered, spec 12 row 18). */
  readonly peerId: Buffer;
  /** 16-byte RoCE GID for SMC-Rv1 (zero when not offered). */
  readonly gid: Buffer;
  /** 6-byte RoCE MAC for SMC-Rv1 (zero when not offered). */
  readonly mac: Buffer;
  /** `iparea_offset`: 0..40; 40 whenever typev1 != N in a version >= 2 Proposal. */
  readonly ipAreaOffset: number;
  /** SMC-D / common area: version 1 with ipAreaOffset 40, and every version >= 2 Proposal. */
  readonly smcdArea?: ClcSmcdArea;
  /** IP prefix area: always in version 1; in version >= 2 only when typev1 != N. */
  readonly ipPrefix?: ClcIpPrefixArea;
  /** SMCv2 extension: version >= 2 with typev2 != N. */
  readonly v2Ext?: ClcProposalV2Ext;
  /** SMC-Dv2 extension: version >= 2 with typev2 D or B. */
  readonly smcdV2Ext?: ClcSmcdV2Ext;
}

/** Which layout a Proposal uses: 'rfc7609' (prefix area at 40) or 'linux' (SMC-D / common area at 40). */
export function proposalLayout(p: ClcProposal): 'rfc7609' | 'linux' {
  return p.version >= 2 || p.ipAreaOffset === ClcLimit.MAX_IPAREA_OFFSET ? 'linux' : 'rfc7609';
}

// ---------------------------------------------------------------------------------------------------
// decode

/**
 * Decodes the Proposal `[off, off + len)`. The caller (decodeClc) has checked the header eyecatcher, the
 * version (>= 1), the type and that `len` bytes are available. Applies the kernel's exact length rules
 * (spec 3.3.1 for version 1, 3.3.5 for version >= 2) and then checks the trailer.
 */
export function decodeProposalBody(buf: Buffer, off: number, len: number, eyecatcher: ClcEyecatcher): ClcProposal {
  const flags = buf[off + 7]!;
  const version = flags >>> 4;
  const typev1 = smcTypeOf(flags);
  const bodyEnd = off + len - CLC_TRAILER_LENGTH;
  if (off + FIXED_LEN > bodyEnd) throw badLength(off, len, 'too short for the fixed part of a Proposal (40 bytes + trailer)', MT);
  const ipAreaOffset = buf.readUInt16BE(off + 38);
  if (ipAreaOffset > ClcLimit.MAX_IPAREA_OFFSET) {
    throw badValue(off + 38, `iparea_offset = ${ipAreaOffset} exceeds ${ClcLimit.MAX_IPAREA_OFFSET}`, MT);
  }
  const peerId = copyBytes(buf, off + 8, 8);
  const gid = copyBytes(buf, off + 16, 16);
  const mac = copyBytes(buf, off + 32, 6);

  if (version === 1) {
    if (typev1 === 'N') throw badValue(off + 7, 'a version-1 Proposal must offer SMC-R or SMC-D (typev1 is N)', MT);
    const pfx = off + FIXED_LEN + ipAreaOffset;
    if (pfx + PREFIX_LEN > bodyEnd) throw badLength(off, len, `too short for the prefix area at ${pfx - off}`, MT);
    const n = ipv6Count(buf, pfx);
    const expected = FIXED_LEN + ipAreaOffset + PREFIX_LEN + IPV6_ENTRY_LEN * n + CLC_TRAILER_LENGTH;
    if (len !== expected) throw badLength(off, len, `a version-1 Proposal with iparea_offset ${ipAreaOffset} and ${n} IPv6 prefixes is ${expected} bytes`, MT);
    const trailer = checkTrailer(buf, off, len, eyecatcher, MT);
    const msg: Mutable<ClcProposal> = { type: 'proposal', eyecatcher, version, typev1, typev2: 'N', peerId, gid, mac, ipAreaOffset };
    if (trailer !== undefined) msg.trailer = trailer;
    if (ipAreaOffset === SMCD_AREA_LEN) msg.smcdArea = readSmcdArea(buf, off + FIXED_LEN);
    msg.ipPrefix = readPrefixArea(buf, pfx, n);
    return msg;
  }

  // Version >= 2 (spec 3.3.2-3.3.5).
  const typev2 = smcTypeOf(flags >>> 2);
  if (off + FIXED_LEN + SMCD_AREA_LEN > bodyEnd) throw badLength(off, len, 'too short for a version-2 Proposal (84 bytes at least)', MT);
  if (typev1 !== 'N' && ipAreaOffset !== SMCD_AREA_LEN) {
    throw badValue(off + 38, `iparea_offset = ${ipAreaOffset}, but a version-2 Proposal offering SMCv1 has its prefix area after the 40-byte SMC-D area (40)`, MT);
  }
  // The kernel reads ipv6_prefixes_cnt at 40 + iparea_offset + 7 even when typev1 = N (spec 3.3.5).
  const quirk = off + FIXED_LEN + ipAreaOffset + 7;
  if (typev1 === 'N' && quirk < bodyEnd && buf[quirk]! > ClcLimit.MAX_IPV6_PREFIXES) {
    throw badValue(quirk, `byte ${quirk - off} (read by Linux as the IPv6 prefix count) is ${buf[quirk]}, Linux rejects > 8`, MT);
  }
  let pos = off + FIXED_LEN + SMCD_AREA_LEN;
  let n = 0;
  if (typev1 !== 'N') {
    if (pos + PREFIX_LEN > bodyEnd) throw badLength(off, len, 'too short for the prefix area at 80', MT);
    n = ipv6Count(buf, pos);
    if (pos + PREFIX_LEN + IPV6_ENTRY_LEN * n > bodyEnd) throw badLength(off, len, `too short for ${n} IPv6 prefixes`, MT);
  }
  const pfx = pos;
  if (typev1 !== 'N') pos += PREFIX_LEN + IPV6_ENTRY_LEN * n;
  let eidCnt = 0;
  let gidCnt = 0;
  const ext = pos;
  if (typev2 !== 'N') {
    const extOff = buf.readUInt16BE(off + 50);
    const want = ext - (off + 52);
    if (extOff === 0) throw badValue(off + 50, `v2_ext_offset is 0 although typev2 = ${typev2} offers SMCv2`, MT);
    if (extOff > ClcLimit.MAX_V2_EXT_OFFSET) throw badValue(off + 50, `v2_ext_offset = ${extOff} exceeds ${ClcLimit.MAX_V2_EXT_OFFSET}`, MT);
    if (extOff !== want) throw badValue(off + 50, `v2_ext_offset = ${extOff}, but the v2 extension follows the prefix area at offset ${want}`, MT);
    if (ext + V2_EXT_LEN > bodyEnd) throw badLength(off, len, `too short for the v2 extension at ${ext - off}`, MT);
    eidCnt = buf[ext]!;
    if (eidCnt > ClcLimit.MAX_UEIDS) throw badValue(ext, `eid_cnt = ${eidCnt} exceeds ${ClcLimit.MAX_UEIDS}`, MT);
    if (smcdIndicated(typev2)) {
      gidCnt = buf[ext + 1]!;
      if (gidCnt > ClcLimit.MAX_ISM_GIDS) throw badValue(ext + 1, `ism_gid_cnt = ${gidCnt} exceeds ${ClcLimit.MAX_ISM_GIDS}`, MT);
    }
  }
  const expected = proposalV2Length(typev1, typev2, n, eidCnt, gidCnt);
  if (len !== expected) {
    throw badLength(off, len, `a version-2 Proposal (typev1 ${typev1}, typev2 ${typev2}, ${n} IPv6 prefixes, ${eidCnt} UEIDs, ${gidCnt} ISM GIDs) is ${expected} bytes`, MT);
  }
  let smcdExt = 0;
  if (smcdIndicated(typev2)) {
    const smcdOff = buf.readUInt16BE(ext + 6);
    const want = V2_EXT_LEN - 8 + ClcLimit.EID_LEN * eidCnt;
    if (smcdOff !== want) {
      throw badValue(ext + 6, `smcd_v2_ext_offset = ${smcdOff}, but the SMC-Dv2 extension follows the UEIDs at offset ${want}`, MT);
    }
    smcdExt = ext + 8 + smcdOff;
  }
  const trailer = checkTrailer(buf, off, len, eyecatcher, MT);
  const msg: Mutable<ClcProposal> = { type: 'proposal', eyecatcher, version, typev1, typev2, peerId, gid, mac, ipAreaOffset };
  if (trailer !== undefined) msg.trailer = trailer;
  msg.smcdArea = readSmcdArea(buf, off + FIXED_LEN);
  if (typev1 !== 'N') msg.ipPrefix = readPrefixArea(buf, pfx, n);
  if (typev2 !== 'N') {
    const fl = buf[ext + 3]!;
    const ueids: string[] = [];
    for (let i = 0; i < eidCnt; i++) ueids.push(readEid(buf, ext + V2_EXT_LEN + ClcLimit.EID_LEN * i));
    msg.v2Ext = {
      release: fl >>> 4,
      seid: (fl & 0x01) !== 0,
      roceGid: copyBytes(buf, ext + 8, 16),
      maxConns: buf[ext + 24]!,
      maxLinks: buf[ext + 25]!,
      featureMask: buf.readUInt16BE(ext + 26),
      ueids,
    };
  }
  if (smcdIndicated(typev2)) {
    const gidChids: ClcSmcdGidChid[] = [];
    for (let i = 0; i < gidCnt; i++) {
      const e = smcdExt + SMCD_V2_EXT_LEN + GID_CHID_LEN * i;
      gidChids.push({ gid: buf.readBigUInt64BE(e), chid: buf.readUInt16BE(e + 8) });
    }
    msg.smcdV2Ext = { supported: false, systemEid: readEid(buf, smcdExt), gidChids };
  }
  return msg;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function ipv6Count(buf: Buffer, pfx: number): number {
  const n = buf[pfx + 7]!;
  if (n > ClcLimit.MAX_IPV6_PREFIXES) throw badValue(pfx + 7, `ipv6_prefixes_cnt = ${n} exceeds ${ClcLimit.MAX_IPV6_PREFIXES}`, MT);
  return n;
}

function readSmcdArea(buf: Buffer, at: number): ClcSmcdArea {
  return {
    ismGid: buf.readBigUInt64BE(at),
    ismChid: buf.readUInt16BE(at + 8),
    vendorOui: buf.readUIntBE(at + 12, 3),
    vendorOptions: copyBytes(buf, at + 15, 5),
  };
}

function readPrefixArea(buf: Buffer, at: number, n: number): ClcIpPrefixArea {
  const ipv6Prefixes: ClcIpv6Prefix[] = [];
  for (let i = 0; i < n; i++) {
    const e = at + PREFIX_LEN + IPV6_ENTRY_LEN * i;
    ipv6Prefixes.push({ prefix: copyBytes(buf, e, 16), prefixLen: buf[e + 16]! });
  }
  return { subnet: copyBytes(buf, at, 4), prefixLen: buf[at + 4]!, ipv6Prefixes };
}

/** The exact version-2 length formula of spec 3.3.5. */
function proposalV2Length(typev1: SmcType, typev2: SmcType, n: number, eidCnt: number, gidCnt: number): number {
  return FIXED_LEN + SMCD_AREA_LEN
    + (typev1 !== 'N' ? PREFIX_LEN + IPV6_ENTRY_LEN * n : 0)
    + (typev2 !== 'N' ? V2_EXT_LEN + ClcLimit.EID_LEN * eidCnt : 0)
    + (smcdIndicated(typev2) ? SMCD_V2_EXT_LEN + GID_CHID_LEN * gidCnt : 0)
    + CLC_TRAILER_LENGTH;
}

// ---------------------------------------------------------------------------------------------------
// encode

/** Checks which optional parts must be present; throws BAD_VALUE (at `off` + the field's offset) if not. */
function checkProposalShape(p: ClcProposal, off: number): void {
  checkHeaderFields(p, off, MT);
  checkSmcType(p.typev1, 'typev1', MT, off + 7);
  checkSmcType(p.typev2, 'typev2', MT, off + 7);
  checkUint(p.ipAreaOffset, ClcLimit.MAX_IPAREA_OFFSET, 'ipAreaOffset', MT, off + 38);
  const has = (v: unknown, want: boolean, field: string, at: number, why: string): void => {
    if ((v !== undefined) !== want) throw badValue(off + at, `${field} must be ${want ? 'present' : 'absent'} ${why}`, MT);
  };
  if (p.version === 1) {
    if (p.typev1 === 'N') throw badValue(off + 7, 'a version-1 Proposal must offer SMC-R or SMC-D (typev1 is N)', MT);
    if (p.typev2 !== 'N') throw badValue(off + 7, 'a version-1 Proposal cannot offer SMCv2 (typev2 must be N)', MT);
    has(p.smcdArea, p.ipAreaOffset === SMCD_AREA_LEN, 'smcdArea', 40, 'when ipAreaOffset is 40 in a version-1 Proposal (and only then)');
    has(p.ipPrefix, true, 'ipPrefix', 40, 'in a version-1 Proposal');
    has(p.v2Ext, false, 'v2Ext', 40, 'in a version-1 Proposal');
    has(p.smcdV2Ext, false, 'smcdV2Ext', 40, 'in a version-1 Proposal');
  } else {
    if (p.typev1 !== 'N' && p.ipAreaOffset !== SMCD_AREA_LEN) {
      throw badValue(off + 38, 'ipAreaOffset must be 40 in a version-2 Proposal offering SMCv1', MT);
    }
    has(p.smcdArea, true, 'smcdArea', 40, 'in a version-2 Proposal');
    has(p.ipPrefix, p.typev1 !== 'N', 'ipPrefix', 80, 'exactly when typev1 != N');
    has(p.v2Ext, p.typev2 !== 'N', 'v2Ext', 80, 'exactly when typev2 != N');
    has(p.smcdV2Ext, smcdIndicated(p.typev2), 'smcdV2Ext', 80, 'exactly when typev2 is D or B');
  }
  if (p.ipPrefix !== undefined && p.ipPrefix.ipv6Prefixes.length > ClcLimit.MAX_IPV6_PREFIXES) {
    throw badValue(off + 40, `${p.ipPrefix.ipv6Prefixes.length} IPv6 prefixes, at most ${ClcLimit.MAX_IPV6_PREFIXES}`, MT);
  }
  if (p.v2Ext !== undefined && p.v2Ext.ueids.length > ClcLimit.MAX_UEIDS) {
    throw badValue(off + 80, `${p.v2Ext.ueids.length} UEIDs, at most ${ClcLimit.MAX_UEIDS}`, MT);
  }
  if (p.smcdV2Ext !== undefined && p.smcdV2Ext.gidChids.length > ClcLimit.MAX_ISM_GIDS) {
    throw badValue(off + 80, `${p.smcdV2Ext.gidChids.length} ISM GID entries, at most ${ClcLimit.MAX_ISM_GIDS}`, MT);
  }
}

/** Encoded size of a Proposal; validates its shape (BAD_VALUE, BAD_VERSION). */
export function proposalLength(p: ClcProposal, off = 0): number {
  checkProposalShape(p, off);
  const n = p.ipPrefix?.ipv6Prefixes.length ?? 0;
  if (p.version === 1) return FIXED_LEN + p.ipAreaOffset + PREFIX_LEN + IPV6_ENTRY_LEN * n + CLC_TRAILER_LENGTH;
  return proposalV2Length(p.typev1, p.typev2, n, p.v2Ext?.ueids.length ?? 0, p.smcdV2Ext?.gidChids.length ?? 0);
}

/** Encodes a Proposal at `off`; returns the offset after it. */
export function encodeProposal(p: ClcProposal, buf: Buffer, off: number): number {
  const len = proposalLength(p, off);
  room(buf, off, len, MT);
  buf.fill(0, off, off + len);
  const v2 = p.version >= 2;
  writeHeaderAndTrailer(buf, off, p, 'proposal', len, (v2 ? SmcTypeTable[p.typev2].value << 2 : 0) | SmcTypeTable[p.typev1].value);
  writeBytes(buf, off + 8, p.peerId, 8, 'peerId', MT);
  writeBytes(buf, off + 16, p.gid, 16, 'gid', MT);
  writeBytes(buf, off + 32, p.mac, 6, 'mac', MT);
  buf.writeUInt16BE(p.ipAreaOffset, off + 38);
  if (!v2) {
    if (p.smcdArea !== undefined) writeSmcdArea(buf, off + FIXED_LEN, p.smcdArea, 0);
    writePrefixArea(buf, off + FIXED_LEN + p.ipAreaOffset, p.ipPrefix!);
    return off + len;
  }
  const extAt = off + FIXED_LEN + SMCD_AREA_LEN + (p.ipPrefix !== undefined ? PREFIX_LEN + IPV6_ENTRY_LEN * p.ipPrefix.ipv6Prefixes.length : 0);
  writeSmcdArea(buf, off + FIXED_LEN, p.smcdArea!, p.v2Ext !== undefined ? extAt - (off + 52) : 0);
  if (p.ipPrefix !== undefined) writePrefixArea(buf, off + FIXED_LEN + SMCD_AREA_LEN, p.ipPrefix);
  let pos = extAt;
  const x = p.v2Ext;
  if (x !== undefined) {
    const d = p.smcdV2Ext;
    buf[pos] = x.ueids.length;
    buf[pos + 1] = d !== undefined ? d.gidChids.length : 0;
    checkUint(x.release, 15, 'v2Ext.release', MT, pos + 3);
    buf[pos + 3] = (x.release << 4) | (x.seid ? 0x01 : 0);
    if (d !== undefined) buf.writeUInt16BE(V2_EXT_LEN - 8 + ClcLimit.EID_LEN * x.ueids.length, pos + 6);
    writeBytes(buf, pos + 8, x.roceGid, 16, 'v2Ext.roceGid', MT);
    checkUint(x.maxConns, 0xff, 'v2Ext.maxConns', MT, pos + 24);
    buf[pos + 24] = x.maxConns;
    checkUint(x.maxLinks, 0xff, 'v2Ext.maxLinks', MT, pos + 25);
    buf[pos + 25] = x.maxLinks;
    checkUint(x.featureMask, 0xffff, 'v2Ext.featureMask', MT, pos + 26);
    buf.writeUInt16BE(x.featureMask, pos + 26);
    pos += V2_EXT_LEN;
    for (let i = 0; i < x.ueids.length; i++) {
      writeEid(buf, pos, x.ueids[i]!, `v2Ext.ueids[${i}]`, MT);
      pos += ClcLimit.EID_LEN;
    }
    if (d !== undefined) {
      writeEid(buf, pos, d.systemEid, 'smcdV2Ext.systemEid', MT);
      pos += SMCD_V2_EXT_LEN;
      for (const e of d.gidChids) {
        checkU64(e.gid, 'smcdV2Ext gid', MT, pos);
        buf.writeBigUInt64BE(e.gid, pos);
        checkUint(e.chid, 0xffff, 'smcdV2Ext chid', MT, pos + 8);
        buf.writeUInt16BE(e.chid, pos + 8);
        pos += GID_CHID_LEN;
      }
    }
  }
  // Linux reads the IPv6 prefix count at 40 + iparea_offset + 7 even when typev1 = N (spec 3.3.5): do not
  // produce a Proposal it would reject.
  const quirk = off + FIXED_LEN + p.ipAreaOffset + 7;
  if (p.typev1 === 'N' && quirk < off + len - CLC_TRAILER_LENGTH && buf[quirk]! > ClcLimit.MAX_IPV6_PREFIXES) {
    throw badValue(quirk, `byte ${quirk - off} would be ${buf[quirk]}; Linux reads it as the IPv6 prefix count and rejects > 8`, MT);
  }
  return off + len;
}

function writeSmcdArea(buf: Buffer, at: number, a: ClcSmcdArea, v2ExtOffset: number): void {
  checkU64(a.ismGid, 'smcdArea.ismGid', MT, at);
  buf.writeBigUInt64BE(a.ismGid, at);
  checkUint(a.ismChid, 0xffff, 'smcdArea.ismChid', MT, at + 8);
  buf.writeUInt16BE(a.ismChid, at + 8);
  buf.writeUInt16BE(v2ExtOffset, at + 10);
  checkUint(a.vendorOui, 0xffffff, 'smcdArea.vendorOui', MT, at + 12);
  buf.writeUIntBE(a.vendorOui, at + 12, 3);
  writeBytes(buf, at + 15, a.vendorOptions, 5, 'smcdArea.vendorOptions', MT);
}

function writePrefixArea(buf: Buffer, at: number, a: ClcIpPrefixArea): void {
  writeBytes(buf, at, a.subnet, 4, 'ipPrefix.subnet', MT);
  checkUint(a.prefixLen, 0xff, 'ipPrefix.prefixLen', MT, at + 4);
  buf[at + 4] = a.prefixLen;
  buf[at + 7] = a.ipv6Prefixes.length;
  let e = at + PREFIX_LEN;
  for (const v6 of a.ipv6Prefixes) {
    writeBytes(buf, e, v6.prefix, 16, 'ipv6 prefix', MT);
    checkUint(v6.prefixLen, 0xff, 'ipv6 prefixLen', MT, e + 16);
    buf[e + 16] = v6.prefixLen;
    e += IPV6_ENTRY_LEN;
  }
}
