/**
 * LLC (link layer control) messages: RDMA SENDs on an SMC-R link that confirm, add and delete links
 * and exchange rkeys (RFC 7609 section 4.8, Linux `net/smc/smc_llc.c`; spec section 6).
 *
 * Framing. In an SMC-Rv1 link group every LLC message is exactly 44 bytes and byte 1 is that length.
 * In an SMC-Rv2 link group the type byte carries LLC version 2 in its high nibble (0x21, 0x22, ...) and
 * bytes 1-2 are `length_v2`, a u16 the Linux kernel writes in *host* order; we read and write it
 * little-endian, as every x86 / ARM64 peer does (spec section 12 row 1). `length_v2` is 44..8192.
 *
 * Strictness. `decodeLlc(buf, off, end)` treats `[off, end)` as exactly one received SEND payload: the
 * declared length must equal `end - off` (BAD_LENGTH otherwise), and every count inside the message must
 * agree with that length. Fields the kernel treats as reserved are ignored on decode and written as
 * zero on encode. Everything else (including the raw flags byte and TEST_LINK's user data) is kept, so
 * `encodeLlc(decodeLlc(x))` reproduces a kernel-built message byte for byte; that matters because Linux
 * answers most requests by echoing them with the RESP bit set (spec 6.1).
 *
 * Entries beyond a message's own count (rtokens of CONFIRM_RKEY past `numRkeys`, the unused rkey slots
 * of DELETE_RKEY, ...) are treated as reserved: Linux zeroes them when it builds a message.
 */
import { WireError, WireErrorCode, need, room, checkUint } from './errors.js';
import { readU24, writeU24, copyBytes, writeBytes } from './bytes.js';

/** Size of every SMC-Rv1 LLC message, and the minimum of an SMC-Rv2 one (`SMC_LLC_MSG_LEN`). */
export const LLC_MSG_LEN = 44;
/** Largest `length_v2` the kernel can receive (`SMC_WR_BUF_V2_SIZE`). */
export const LLC_V2_MAX_LEN = 8192;

/**
 * Every LLC type byte Linux (and Alibaba's kernel) registers a receive handler for (spec 6.2).
 * `lgr` says which link-group version uses the form: 'v1' types are 44-byte messages with a length
 * byte, 'v2' types carry `length_v2`. ANNOUNCE_CREDITS is a v1-form message that Alibaba's kernel also
 * sends inside SMC-Rv2 link groups. 0x05 (REQUEST_ADD_LINK without version) and 0x23 / 0x28 / 0x2A are
 * not registered by any kernel and decode as UNKNOWN_TYPE.
 */
export const LlcType = {
  CONFIRM_LINK: { value: 0x01, name: 'SMC_LLC_CONFIRM_LINK', type: 'confirm_link', lgr: 'v1', text: 'confirm a new link' },
  ADD_LINK: { value: 0x02, name: 'SMC_LLC_ADD_LINK', type: 'add_link', lgr: 'v1', text: 'add a link to the link group' },
  ADD_LINK_CONT: { value: 0x03, name: 'SMC_LLC_ADD_LINK_CONT', type: 'add_link_cont', lgr: 'v1', text: 'rkeys for the new link' },
  DELETE_LINK: { value: 0x04, name: 'SMC_LLC_DELETE_LINK', type: 'delete_link', lgr: 'v1', text: 'delete a link or the link group' },
  CONFIRM_RKEY: { value: 0x06, name: 'SMC_LLC_CONFIRM_RKEY', type: 'confirm_rkey', lgr: 'v1', text: 'announce a new RMB rkey' },
  TEST_LINK: { value: 0x07, name: 'SMC_LLC_TEST_LINK', type: 'test_link', lgr: 'v1', text: 'keepalive' },
  CONFIRM_RKEY_CONT: { value: 0x08, name: 'SMC_LLC_CONFIRM_RKEY_CONT', type: 'confirm_rkey_cont', lgr: 'v1', text: 'more rkeys (RFC 7609; Linux never sends it)' },
  DELETE_RKEY: { value: 0x09, name: 'SMC_LLC_DELETE_RKEY', type: 'delete_rkey', lgr: 'v1', text: 'withdraw RMB rkeys' },
  ANNOUNCE_CREDITS: { value: 0x0a, name: 'SMC_LLC_ANNOUNCE_CREDITS', type: 'announce_credits', lgr: 'v1', text: 'return receive-queue credits (Alibaba)' },
  CONFIRM_LINK_V2: { value: 0x21, name: 'SMC_LLC_CONFIRM_LINK_V2', type: 'confirm_link', lgr: 'v2', text: 'confirm a new link' },
  ADD_LINK_V2: { value: 0x22, name: 'SMC_LLC_ADD_LINK_V2', type: 'add_link', lgr: 'v2', text: 'add a link to the link group' },
  DELETE_LINK_V2: { value: 0x24, name: 'SMC_LLC_DELETE_LINK_V2', type: 'delete_link', lgr: 'v2', text: 'delete a link or the link group' },
  REQ_ADD_LINK_V2: { value: 0x25, name: 'SMC_LLC_REQ_ADD_LINK_V2', type: 'request_add_link', lgr: 'v2', text: 'client asks for another link' },
  CONFIRM_RKEY_V2: { value: 0x26, name: 'SMC_LLC_CONFIRM_RKEY_V2', type: 'confirm_rkey', lgr: 'v2', text: 'announce a new RMB rkey' },
  TEST_LINK_V2: { value: 0x27, name: 'SMC_LLC_TEST_LINK_V2', type: 'test_link', lgr: 'v2', text: 'keepalive' },
  DELETE_RKEY_V2: { value: 0x29, name: 'SMC_LLC_DELETE_RKEY_V2', type: 'delete_rkey', lgr: 'v2', text: 'withdraw RMB rkeys' },
} as const;
export type LlcTypeInfo = (typeof LlcType)[keyof typeof LlcType];

/** Flag bits of byte 3 (spec 6.2). The same value means different things in different types. */
export const LlcFlag = {
  /** Any type: this message is a response. */
  RESP: { value: 0x80, name: 'SMC_LLC_FLAG_RESP' },
  /** CONFIRM_LINK: "no RMBE eye-catchers"; Linux requires it in request and response. */
  NO_RMBE_EYEC: { value: 0x03, name: 'SMC_LLC_FLAG_NO_RMBE_EYEC' },
  /** ADD_LINK response: the new link is rejected (reason in the header, see {@link LlcAddLink}). */
  ADD_LINK_REJ: { value: 0x40, name: 'SMC_LLC_FLAG_ADD_LNK_REJ' },
  /** DELETE_LINK: terminate the whole link group. */
  DEL_LINK_ALL: { value: 0x40, name: 'SMC_LLC_FLAG_DEL_LINK_ALL' },
  /** DELETE_LINK: orderly termination (idle timeout, shutdown). */
  DEL_LINK_ORDERLY: { value: 0x20, name: 'SMC_LLC_FLAG_DEL_LINK_ORDERLY' },
  /** CONFIRM_RKEY / DELETE_RKEY: defined by RFC 7609, unused by Linux. */
  RKEY_DEL: { value: 0x40, name: 'SMC_LLC_FLAG_RKEY_DEL' },
  /** CONFIRM_RKEY / DELETE_RKEY response: negative (some rkeys could not be stored / deleted). */
  RKEY_NEG: { value: 0x20, name: 'SMC_LLC_FLAG_RKEY_NEG' },
  /** CONFIRM_RKEY response: the sender may retry. */
  RKEY_RETRY: { value: 0x10, name: 'SMC_LLC_FLAG_RKEY_RETRY' },
} as const;

/** ADD_LINK reject reason (byte 2 low nibble): no alternate path (`SMC_LLC_REJ_RSN_NO_ALT_PATH`). */
export const LLC_REJ_RSN_NO_ALT_PATH = 1;

/** DELETE_LINK reason codes (BE32 at byte 5; spec 6.3, `SMC_LLC_DEL_*`). */
export const LlcDeleteLinkReason = {
  LOST_PATH: { value: 0x00010000, name: 'SMC_LLC_DEL_LOST_PATH', text: 'link or port down' },
  OP_INIT_TERM: { value: 0x00020000, name: 'SMC_LLC_DEL_OP_INIT_TERM', text: 'operator initiated termination' },
  PROG_INIT_TERM: { value: 0x00030000, name: 'SMC_LLC_DEL_PROG_INIT_TERM', text: 'program initiated termination (e.g. idle link group)' },
  PROT_VIOL: { value: 0x00040000, name: 'SMC_LLC_DEL_PROT_VIOL', text: 'LLC protocol violation' },
  NO_ASYM_NEEDED: { value: 0x00050000, name: 'SMC_LLC_DEL_NO_ASYM_NEEDED', text: 'asymmetric link no longer needed' },
  NOLNK: { value: 0x00100000, name: 'SMC_LLC_DEL_NOLNK', text: 'unknown link id (response only)' },
  NOLGR: { value: 0x00200000, name: 'SMC_LLC_DEL_NOLGR', text: 'unknown link group (response only)' },
} as const;

// ------------------------------------------------------------------------------------------------
// Messages

/** Fields every LLC message has. */
interface LlcBase {
  /** LLC version 2 (type byte 0x2X, `length_v2`), i.e. sent in an SMC-Rv2 link group. */
  readonly v2: boolean;
  /** Raw flags byte (byte 3); authoritative when encoding. The booleans below must agree with it. */
  readonly flags: number;
  /** `flags & 0x80`. */
  readonly resp: boolean;
}

/** CONFIRM_LINK (0x01 / 0x21): first message on a new link, server request then client response. */
export interface LlcConfirmLink extends LlcBase {
  readonly type: 'confirm_link';
  /** `(flags & 0x03) !== 0`, the test Linux applies; must be set (flags 0x03 / 0x83). */
  readonly noRmbeEyec: boolean;
  /** 6 bytes. */
  readonly senderMac: Buffer;
  /** 16 bytes. */
  readonly senderGid: Buffer;
  readonly senderQpn: number;
  /** Link id chosen by the server. */
  readonly linkNum: number;
  /** 4 bytes: the sender's link user id. */
  readonly linkUid: Buffer;
  readonly maxLinks: number;
  /** SMC-Rv2.1 link groups only; else 0. */
  readonly maxConns: number;
}

/** One rkey triple of ADD_LINK_CONT and of the SMC-Rv2 ADD_LINK extension. */
export interface LlcRkeyTriple {
  /** rkey of the RMB on the existing link (the receiver looks its rtoken up by it). */
  readonly rkey: number;
  /** rkey of the same RMB on the new link. */
  readonly rkeyNew: number;
  /** RMB address on the new link. */
  readonly vaddrNew: bigint;
}

/** The part of an SMC-Rv2 ADD_LINK after byte 44 (`smc_llc_msg_add_link_v2_ext`). */
export interface LlcAddLinkV2Ext {
  /** Byte 44 bit 7: peers are on the same subnet (no gateway). */
  readonly v2Direct: boolean;
  /** 16 bytes: the client GID the server chose for the new link. */
  readonly clientTargetGid: Buffer;
  /** `num_rkeys` (LE16 at 70) is `rkeys.length`; total length 72 + 16 n. */
  readonly rkeys: readonly LlcRkeyTriple[];
}

/**
 * ADD_LINK (0x02 / 0x22). Linux rejects by echoing the request's first 44 bytes with flags |= 0xC0;
 * in a v1 group it also sets reason 1 in byte 2, in a v2 group `length_v2` = 44 overwrites that reason.
 */
export interface LlcAddLink extends LlcBase {
  readonly type: 'add_link';
  /** `flags & 0x40`. */
  readonly reject: boolean;
  /**
   * Byte 2 low nibble. v1: the header's `add_link_rej_rsn`. v2: byte 2 is the high byte of
   * `length_v2`, so a reason can only appear in the "quirk" form of a 44-byte reject
   * (`22 2C 0r C0..`, spec 6.1) that some senders produce; it is accepted on decode and produced on
   * encode only when this is non-zero. Linux sends (and we recommend) reason 0 in v2.
   */
  readonly rejectReason: number;
  readonly senderMac: Buffer;
  readonly senderGid: Buffer;
  readonly senderQpn: number;
  readonly linkNum: number;
  /** Byte 32 low nibble: IB MTU enum (1 = 256 ... 5 = 4096); 0 makes Linux reject. */
  readonly qpMtu: number;
  readonly initialPsn: number;
  /** Byte 36: Alibaba initial RQ credits for the new link (spec 7.8); 0 elsewhere. */
  readonly initCredits: number;
  /** v2 only: the extension (message longer than 44 bytes), or undefined for the 44-byte form. */
  readonly ext: LlcAddLinkV2Ext | undefined;
}

/** ADD_LINK_CONT (0x03, v1 only): up to two rkey triples for the new link. */
export interface LlcAddLinkCont extends LlcBase {
  readonly type: 'add_link_cont';
  readonly v2: false;
  readonly linkNum: number;
  /** rkeys still to be transferred, including those in this message. */
  readonly numRkeys: number;
  /** The triples carried: exactly `min(numRkeys, 2)`. */
  readonly rkeys: readonly LlcRkeyTriple[];
}

/** DELETE_LINK (0x04 / 0x24). */
export interface LlcDeleteLink extends LlcBase {
  readonly type: 'delete_link';
  /** `flags & 0x40`: the whole link group. */
  readonly all: boolean;
  /** `flags & 0x20`. */
  readonly orderly: boolean;
  /** Link to delete (0 with ALL). */
  readonly linkNum: number;
  /** One of {@link LlcDeleteLinkReason} (0 in responses and from older kernels). */
  readonly reason: number;
}

/**
 * REQUEST_ADD_LINK (0x25, v2 only): a client offers its GIDs. Length is 28 + 16 k but never less
 * than 44: with 0 or 1 GIDs the message is 44 bytes (the kernel drops shorter ones, and its response is
 * the 44-byte form with `gid_cnt` 0 and RESP).
 */
export interface LlcRequestAddLink extends LlcBase {
  readonly type: 'request_add_link';
  readonly v2: true;
  /** 16-byte GIDs; `gid_cnt` (byte 24) is `gids.length`, at most 255. */
  readonly gids: readonly Buffer[];
}

/** An rtoken for another link, in CONFIRM_RKEY and CONFIRM_RKEY_CONT. */
export interface LlcRtoken {
  readonly linkId: number;
  readonly rkey: number;
  readonly vaddr: bigint;
}

/** CONFIRM_RKEY (0x06 / 0x26): a new RMB's rkey on the link it travels on, plus other links'. */
export interface LlcConfirmRkey extends LlcBase {
  readonly type: 'confirm_rkey';
  /** `flags & 0x20`. */
  readonly negative: boolean;
  /** `flags & 0x10`. */
  readonly retry: boolean;
  /** Byte 4: number of rtokens for other links that follow. */
  readonly numRkeys: number;
  /** rkey / address on the link the message is sent on. */
  readonly rkey: number;
  readonly vaddr: bigint;
  /** The rtokens carried: exactly `min(numRkeys, 2)`. */
  readonly others: readonly LlcRtoken[];
}

/** TEST_LINK (0x07 / 0x27): keepalive; the response echoes the request with RESP. */
export interface LlcTestLink extends LlcBase {
  readonly type: 'test_link';
  /** 16 bytes, echoed by the peer (Linux sends zeros). */
  readonly userData: Buffer;
}

/** CONFIRM_RKEY_CONT (0x08, v1 only; RFC 7609, never sent by Linux). */
export interface LlcConfirmRkeyCont extends LlcBase {
  readonly type: 'confirm_rkey_cont';
  readonly v2: false;
  /** `flags & 0x20`. */
  readonly negative: boolean;
  readonly numRkeys: number;
  /** The rtokens carried: exactly `min(numRkeys, 3)`. */
  readonly rtokens: readonly LlcRtoken[];
}

/**
 * DELETE_RKEY (0x09 / 0x29). v1: 44 bytes, 8 rkey slots at 8..39. v2: `8 + 4 n` bytes when that is
 * more than 44, else 44 bytes with 9 slots (8..43). The v2 response is always 44 bytes: Linux keeps
 * `num_rkeys`, zeroes the rkeys and puts the number of invalid rkeys in byte 5.
 */
export interface LlcDeleteRkey extends LlcBase {
  readonly type: 'delete_rkey';
  /** `flags & 0x20`. */
  readonly negative: boolean;
  /** Byte 4. */
  readonly numRkeys: number;
  /** Byte 5. v1: `err_mask`, bit (7 - i) = rkey i not deleted. v2: `num_inval_rkeys` (a count). */
  readonly errMask: number;
  /** The rkeys carried: `min(numRkeys, 8)` (v1), `min(numRkeys, 9)` (44-byte v2), else `numRkeys`. */
  readonly rkeys: readonly number[];
}

/** ANNOUNCE_CREDITS (0x0A, Alibaba, v1 form in any link group): returned receive-queue credits. */
export interface LlcAnnounceCredits extends LlcBase {
  readonly type: 'announce_credits';
  readonly v2: false;
  readonly credits: number;
}

export type LlcMessage =
  | LlcConfirmLink
  | LlcAddLink
  | LlcAddLinkCont
  | LlcDeleteLink
  | LlcRequestAddLink
  | LlcConfirmRkey
  | LlcTestLink
  | LlcConfirmRkeyCont
  | LlcDeleteRkey
  | LlcAnnounceCredits;

// ------------------------------------------------------------------------------------------------
// Type lookup

const BY_BYTE: (LlcTypeInfo | undefined)[] = new Array<LlcTypeInfo | undefined>(256).fill(undefined);
for (const info of Object.values(LlcType)) BY_BYTE[info.value] = info;

/** Low nibble of the type byte for each message kind. */
const TYPE_NIBBLE: Readonly<Record<LlcMessage['type'], number>> = {
  confirm_link: 0x01,
  add_link: 0x02,
  add_link_cont: 0x03,
  delete_link: 0x04,
  request_add_link: 0x05,
  confirm_rkey: 0x06,
  test_link: 0x07,
  confirm_rkey_cont: 0x08,
  delete_rkey: 0x09,
  announce_credits: 0x0a,
};

/** The {@link LlcType} entry of a type byte, or undefined when no kernel registers it. */
export function llcTypeInfo(typeByte: number): LlcTypeInfo | undefined {
  return BY_BYTE[typeByte & 0xff];
}

/** The type byte `msg` is sent with (0x20 | kind in v2 link groups). */
export function llcTypeByte(msg: LlcMessage): number {
  return msg.v2 ? 0x20 | TYPE_NIBBLE[msg.type] : TYPE_NIBBLE[msg.type];
}

// ------------------------------------------------------------------------------------------------
// Small byte helpers (private: bytes.ts has no 32/64-bit ones for plain Uint8Array)

function rd32(b: Uint8Array, o: number): number {
  return b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
}
function rd64(b: Uint8Array, o: number): bigint {
  return (BigInt(rd32(b, o)) << 32n) | BigInt(rd32(b, o + 4));
}
function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
// A 64-bit store through a typed array converts the bigint without creating new bigints.
const scratch64 = new BigUint64Array(1);
const scratch8 = new Uint8Array(scratch64.buffer);
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function wr64(b: Uint8Array, o: number, v: bigint): void {
  scratch64[0] = v;
  if (HOST_LE) for (let i = 0; i < 8; i++) b[o + i] = scratch8[7 - i]!;
  else for (let i = 0; i < 8; i++) b[o + i] = scratch8[i]!;
}
const MAX_U64 = 0xffff_ffff_ffff_ffffn;
function checkU64(v: bigint, field: string, msgType: string, off: number): void {
  if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${field} = ${String(v)} is not a bigint in 0..2^64-1`, off, msgType);
  }
}
function checkBool(v: boolean, want: boolean, field: string, msgType: string, off: number): void {
  if (v !== want) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${field} = ${String(v)} disagrees with the flags byte`, off, msgType);
  }
}
function badLength(msg: string, off: number, msgType: string): WireError {
  return new WireError(WireErrorCode.BAD_LENGTH, msg, off, msgType);
}

// ------------------------------------------------------------------------------------------------
// Length

/** Encoded size of `msg` in bytes (44 except for the longer SMC-Rv2 forms). */
export function llcLength(msg: LlcMessage): number {
  if (!msg.v2) return LLC_MSG_LEN;
  switch (msg.type) {
    case 'add_link':
      return msg.ext === undefined ? LLC_MSG_LEN : 72 + 16 * msg.ext.rkeys.length;
    case 'request_add_link':
      return Math.max(LLC_MSG_LEN, 28 + 16 * msg.gids.length);
    case 'delete_rkey':
      return Math.max(LLC_MSG_LEN, 8 + 4 * msg.rkeys.length);
    default:
      return LLC_MSG_LEN;
  }
}

// ------------------------------------------------------------------------------------------------
// Decode

/**
 * Decodes one LLC message; `[off, end)` must be exactly the received SEND payload.
 * Throws WireError: TRUNCATED (fewer bytes than the header or the declared length), UNKNOWN_TYPE (type
 * byte not in {@link LlcType}), BAD_LENGTH (v1 length byte not 44; v2 `length_v2` outside 44..8192;
 * declared length not equal to `end - off`; counts inside the message that disagree with the length).
 */
export function decodeLlc(buf: Uint8Array, off = 0, end: number = buf.length): LlcMessage {
  need(end, off, 1, 'llc');
  const t = buf[off]!;
  const info = BY_BYTE[t];
  if (info === undefined) {
    throw new WireError(WireErrorCode.UNKNOWN_TYPE, `type byte 0x${t.toString(16).padStart(2, '0')} is no LLC message`, off, 'llc');
  }
  const mt = info.name;
  need(end, off, 4, mt);
  const v2 = info.lgr === 'v2';
  const flags = buf[off + 3]!;
  let len: number;
  let quirkReason = 0;
  if (!v2) {
    len = buf[off + 1]!;
    if (len !== LLC_MSG_LEN) throw badLength(`length byte is ${len}, must be 44`, off + 1, mt);
  } else {
    len = buf[off + 1]! | (buf[off + 2]! << 8);
    // Spec 6.1 quirk: a 44-byte v2 ADD_LINK reject whose reason nibble sits in length_v2's high byte.
    const hi = buf[off + 2]!;
    if (t === LlcType.ADD_LINK_V2.value && end - off === LLC_MSG_LEN && buf[off + 1] === LLC_MSG_LEN &&
        hi >= 1 && hi <= 0x0f && (flags & LlcFlag.ADD_LINK_REJ.value) !== 0) {
      len = LLC_MSG_LEN;
      quirkReason = hi;
    }
    if (len < LLC_MSG_LEN || len > LLC_V2_MAX_LEN) throw badLength(`length_v2 is ${len}, must be 44..8192`, off + 1, mt);
  }
  need(end, off, len, mt);
  if (end - off !== len) throw badLength(`declares ${len} bytes, the SEND carries ${end - off}`, off + 1, mt);
  if (v2 && len !== LLC_MSG_LEN && info.type !== 'add_link' && info.type !== 'request_add_link' && info.type !== 'delete_rkey') {
    throw badLength(`length_v2 is ${len}, ${info.type} is always 44 bytes`, off + 1, mt);
  }
  const resp = (flags & LlcFlag.RESP.value) !== 0;
  const o = off;

  switch (info.type) {
    case 'confirm_link':
      return {
        type: 'confirm_link', v2, flags, resp,
        noRmbeEyec: (flags & LlcFlag.NO_RMBE_EYEC.value) !== 0,
        senderMac: copyBytes(buf, o + 4, 6),
        senderGid: copyBytes(buf, o + 10, 16),
        senderQpn: readU24(buf, o + 26),
        linkNum: buf[o + 29]!,
        linkUid: copyBytes(buf, o + 30, 4),
        maxLinks: buf[o + 34]!,
        maxConns: buf[o + 35]!,
      };
    case 'add_link': {
      let ext: LlcAddLinkV2Ext | undefined;
      if (len > LLC_MSG_LEN) {
        if (len < 72) throw badLength(`ADD_LINK v2 extension needs 72 bytes, length_v2 is ${len}`, o + 1, mt);
        const n = buf[o + 70]! | (buf[o + 71]! << 8);
        if (len !== 72 + 16 * n) throw badLength(`length_v2 ${len} disagrees with num_rkeys ${n} (72 + 16 n)`, o + 1, mt);
        const rkeys: LlcRkeyTriple[] = [];
        for (let i = 0, p = o + 72; i < n; i++, p += 16) rkeys.push(readTriple(buf, p));
        ext = { v2Direct: (buf[o + 44]! & 0x80) !== 0, clientTargetGid: copyBytes(buf, o + 46, 16), rkeys };
      }
      return {
        type: 'add_link', v2, flags, resp,
        reject: (flags & LlcFlag.ADD_LINK_REJ.value) !== 0,
        rejectReason: v2 ? quirkReason : buf[o + 2]! & 0x0f,
        senderMac: copyBytes(buf, o + 4, 6),
        senderGid: copyBytes(buf, o + 12, 16),
        senderQpn: readU24(buf, o + 28),
        linkNum: buf[o + 31]!,
        qpMtu: buf[o + 32]! & 0x0f,
        initialPsn: readU24(buf, o + 33),
        initCredits: buf[o + 36]!,
        ext,
      };
    }
    case 'add_link_cont': {
      const numRkeys = buf[o + 5]!;
      const rkeys: LlcRkeyTriple[] = [];
      for (let i = 0; i < Math.min(numRkeys, 2); i++) rkeys.push(readTriple(buf, o + 8 + 16 * i));
      return { type: 'add_link_cont', v2: false, flags, resp, linkNum: buf[o + 4]!, numRkeys, rkeys };
    }
    case 'delete_link':
      return {
        type: 'delete_link', v2, flags, resp,
        all: (flags & LlcFlag.DEL_LINK_ALL.value) !== 0,
        orderly: (flags & LlcFlag.DEL_LINK_ORDERLY.value) !== 0,
        linkNum: buf[o + 4]!,
        reason: rd32(buf, o + 5),
      };
    case 'request_add_link': {
      const k = buf[o + 24]!;
      const want = Math.max(LLC_MSG_LEN, 28 + 16 * k);
      if (len !== want) throw badLength(`length_v2 ${len} disagrees with gid_cnt ${k} (max(44, 28 + 16 k))`, o + 1, mt);
      const gids: Buffer[] = [];
      for (let i = 0; i < k; i++) gids.push(copyBytes(buf, o + 28 + 16 * i, 16));
      return { type: 'request_add_link', v2: true, flags, resp, gids };
    }
    case 'confirm_rkey': {
      const numRkeys = buf[o + 4]!;
      const others: LlcRtoken[] = [];
      for (let i = 0; i < Math.min(numRkeys, 2); i++) others.push(readRtoken(buf, o + 17 + 13 * i));
      return {
        type: 'confirm_rkey', v2, flags, resp,
        negative: (flags & LlcFlag.RKEY_NEG.value) !== 0,
        retry: (flags & LlcFlag.RKEY_RETRY.value) !== 0,
        numRkeys,
        rkey: rd32(buf, o + 5),
        vaddr: rd64(buf, o + 9),
        others,
      };
    }
    case 'test_link':
      return { type: 'test_link', v2, flags, resp, userData: copyBytes(buf, o + 4, 16) };
    case 'confirm_rkey_cont': {
      const numRkeys = buf[o + 4]!;
      const rtokens: LlcRtoken[] = [];
      for (let i = 0; i < Math.min(numRkeys, 3); i++) rtokens.push(readRtoken(buf, o + 5 + 13 * i));
      return {
        type: 'confirm_rkey_cont', v2: false, flags, resp,
        negative: (flags & LlcFlag.RKEY_NEG.value) !== 0,
        numRkeys, rtokens,
      };
    }
    case 'delete_rkey': {
      const numRkeys = buf[o + 4]!;
      // v1 and the 44-byte v2 form carry min(n, 8 or 9 slots); a longer v2 form carries exactly n.
      if (len !== LLC_MSG_LEN && len !== 8 + 4 * numRkeys) {
        throw badLength(`length_v2 ${len} disagrees with num_rkeys ${numRkeys} (44 or 8 + 4 n)`, o + 1, mt);
      }
      const present = len > LLC_MSG_LEN ? numRkeys : Math.min(numRkeys, v2 ? 9 : 8);
      const rkeys: number[] = [];
      for (let i = 0; i < present; i++) rkeys.push(rd32(buf, o + 8 + 4 * i));
      return {
        type: 'delete_rkey', v2, flags, resp,
        negative: (flags & LlcFlag.RKEY_NEG.value) !== 0,
        numRkeys, errMask: buf[o + 5]!, rkeys,
      };
    }
    case 'announce_credits':
      return { type: 'announce_credits', v2: false, flags, resp, credits: buf[o + 4]! };
  }
}

function readTriple(buf: Uint8Array, p: number): LlcRkeyTriple {
  return { rkey: rd32(buf, p), rkeyNew: rd32(buf, p + 4), vaddrNew: rd64(buf, p + 8) };
}
function readRtoken(buf: Uint8Array, p: number): LlcRtoken {
  return { linkId: buf[p]!, rkey: rd32(buf, p + 1), vaddr: rd64(buf, p + 5) };
}

// ------------------------------------------------------------------------------------------------
// Encode

/**
 * Writes `msg` at `off` and returns the offset after it. Allocates nothing. Reserved bytes are zeroed.
 * Throws WireError BUFFER_TOO_SMALL (checked first), or BAD_VALUE when a field is out of range, a
 * byte field has the wrong size, a count disagrees with its list, a boolean disagrees with `flags`, or
 * the (type, v2) pair has no wire form. On a throw the bytes in the output range are unspecified.
 */
export function encodeLlc(msg: LlcMessage, buf: Uint8Array, off: number): number {
  const t = llcTypeByte(msg);
  const info = BY_BYTE[t];
  const mt = info !== undefined ? info.name : `llc ${msg.type}`;
  const len = llcLength(msg);
  room(buf, off, len, mt);
  if (info === undefined) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${msg.type} has no ${msg.v2 ? 'v2' : 'v1'} form`, off, mt);
  }
  if (len > LLC_V2_MAX_LEN) throw new WireError(WireErrorCode.BAD_VALUE, `message would be ${len} bytes, at most 8192`, off, mt);
  checkUint(msg.flags, 0xff, 'flags', mt, off + 3);
  checkBool(msg.resp, (msg.flags & LlcFlag.RESP.value) !== 0, 'resp', mt, off + 3);
  buf.fill(0, off, off + len);
  buf[off] = t;
  buf[off + 1] = len & 0xff;
  if (msg.v2) buf[off + 2] = len >>> 8;
  buf[off + 3] = msg.flags;
  const o = off;

  switch (msg.type) {
    case 'confirm_link':
      checkBool(msg.noRmbeEyec, (msg.flags & LlcFlag.NO_RMBE_EYEC.value) !== 0, 'noRmbeEyec', mt, o + 3);
      writeBytes(buf, o + 4, msg.senderMac, 6, 'senderMac', mt);
      writeBytes(buf, o + 10, msg.senderGid, 16, 'senderGid', mt);
      checkUint(msg.senderQpn, 0xffffff, 'senderQpn', mt, o + 26);
      writeU24(buf, o + 26, msg.senderQpn);
      checkUint(msg.linkNum, 0xff, 'linkNum', mt, o + 29);
      buf[o + 29] = msg.linkNum;
      writeBytes(buf, o + 30, msg.linkUid, 4, 'linkUid', mt);
      checkUint(msg.maxLinks, 0xff, 'maxLinks', mt, o + 34);
      buf[o + 34] = msg.maxLinks;
      checkUint(msg.maxConns, 0xff, 'maxConns', mt, o + 35);
      buf[o + 35] = msg.maxConns;
      break;
    case 'add_link': {
      checkBool(msg.reject, (msg.flags & LlcFlag.ADD_LINK_REJ.value) !== 0, 'reject', mt, o + 3);
      checkUint(msg.rejectReason, 0x0f, 'rejectReason', mt, o + 2);
      if (msg.v2 && msg.rejectReason !== 0) {
        // Quirk form (spec 6.1): only meaningful for a 44-byte reject.
        if (msg.ext !== undefined || !msg.reject) {
          throw new WireError(WireErrorCode.BAD_VALUE, 'a v2 rejectReason needs the 44-byte reject form (ext undefined, REJ set)', o + 2, mt);
        }
        buf[o + 2] = msg.rejectReason;
      } else if (!msg.v2) {
        buf[o + 2] = msg.rejectReason;
      }
      writeBytes(buf, o + 4, msg.senderMac, 6, 'senderMac', mt);
      writeBytes(buf, o + 12, msg.senderGid, 16, 'senderGid', mt);
      checkUint(msg.senderQpn, 0xffffff, 'senderQpn', mt, o + 28);
      writeU24(buf, o + 28, msg.senderQpn);
      checkUint(msg.linkNum, 0xff, 'linkNum', mt, o + 31);
      buf[o + 31] = msg.linkNum;
      checkUint(msg.qpMtu, 0x0f, 'qpMtu', mt, o + 32);
      buf[o + 32] = msg.qpMtu;
      checkUint(msg.initialPsn, 0xffffff, 'initialPsn', mt, o + 33);
      writeU24(buf, o + 33, msg.initialPsn);
      checkUint(msg.initCredits, 0xff, 'initCredits', mt, o + 36);
      buf[o + 36] = msg.initCredits;
      const ext = msg.ext;
      if (ext !== undefined) {
        if (!msg.v2) throw new WireError(WireErrorCode.BAD_VALUE, 'the ADD_LINK extension exists only in v2', o + 44, mt);
        buf[o + 44] = ext.v2Direct ? 0x80 : 0;
        writeBytes(buf, o + 46, ext.clientTargetGid, 16, 'clientTargetGid', mt);
        const n = ext.rkeys.length;
        buf[o + 70] = n & 0xff;
        buf[o + 71] = n >>> 8;
        for (let i = 0; i < n; i++) writeTriple(buf, o + 72 + 16 * i, ext.rkeys[i]!, mt);
      }
      break;
    }
    case 'add_link_cont': {
      checkUint(msg.linkNum, 0xff, 'linkNum', mt, o + 4);
      buf[o + 4] = msg.linkNum;
      checkUint(msg.numRkeys, 0xff, 'numRkeys', mt, o + 5);
      buf[o + 5] = msg.numRkeys;
      checkCount(msg.rkeys.length, Math.min(msg.numRkeys, 2), 'rkeys', mt, o + 5);
      for (let i = 0; i < msg.rkeys.length; i++) writeTriple(buf, o + 8 + 16 * i, msg.rkeys[i]!, mt);
      break;
    }
    case 'delete_link':
      checkBool(msg.all, (msg.flags & LlcFlag.DEL_LINK_ALL.value) !== 0, 'all', mt, o + 3);
      checkBool(msg.orderly, (msg.flags & LlcFlag.DEL_LINK_ORDERLY.value) !== 0, 'orderly', mt, o + 3);
      checkUint(msg.linkNum, 0xff, 'linkNum', mt, o + 4);
      buf[o + 4] = msg.linkNum;
      checkUint(msg.reason, 0xffffffff, 'reason', mt, o + 5);
      wr32(buf, o + 5, msg.reason);
      break;
    case 'request_add_link': {
      const k = msg.gids.length;
      checkUint(k, 0xff, 'gids.length', mt, o + 24);
      buf[o + 24] = k;
      for (let i = 0; i < k; i++) writeBytes(buf, o + 28 + 16 * i, msg.gids[i]!, 16, 'gid', mt);
      break;
    }
    case 'confirm_rkey': {
      checkBool(msg.negative, (msg.flags & LlcFlag.RKEY_NEG.value) !== 0, 'negative', mt, o + 3);
      checkBool(msg.retry, (msg.flags & LlcFlag.RKEY_RETRY.value) !== 0, 'retry', mt, o + 3);
      checkUint(msg.numRkeys, 0xff, 'numRkeys', mt, o + 4);
      buf[o + 4] = msg.numRkeys;
      checkUint(msg.rkey, 0xffffffff, 'rkey', mt, o + 5);
      wr32(buf, o + 5, msg.rkey);
      checkU64(msg.vaddr, 'vaddr', mt, o + 9);
      wr64(buf, o + 9, msg.vaddr);
      checkCount(msg.others.length, Math.min(msg.numRkeys, 2), 'others', mt, o + 4);
      for (let i = 0; i < msg.others.length; i++) writeRtoken(buf, o + 17 + 13 * i, msg.others[i]!, mt);
      break;
    }
    case 'test_link':
      writeBytes(buf, o + 4, msg.userData, 16, 'userData', mt);
      break;
    case 'confirm_rkey_cont': {
      checkBool(msg.negative, (msg.flags & LlcFlag.RKEY_NEG.value) !== 0, 'negative', mt, o + 3);
      checkUint(msg.numRkeys, 0xff, 'numRkeys', mt, o + 4);
      buf[o + 4] = msg.numRkeys;
      checkCount(msg.rtokens.length, Math.min(msg.numRkeys, 3), 'rtokens', mt, o + 4);
      for (let i = 0; i < msg.rtokens.length; i++) writeRtoken(buf, o + 5 + 13 * i, msg.rtokens[i]!, mt);
      break;
    }
    case 'delete_rkey': {
      checkBool(msg.negative, (msg.flags & LlcFlag.RKEY_NEG.value) !== 0, 'negative', mt, o + 3);
      checkUint(msg.numRkeys, 0xff, 'numRkeys', mt, o + 4);
      buf[o + 4] = msg.numRkeys;
      checkUint(msg.errMask, 0xff, 'errMask', mt, o + 5);
      buf[o + 5] = msg.errMask;
      const want = len > LLC_MSG_LEN ? msg.numRkeys : Math.min(msg.numRkeys, msg.v2 ? 9 : 8);
      checkCount(msg.rkeys.length, want, 'rkeys', mt, o + 4);
      for (let i = 0; i < msg.rkeys.length; i++) {
        checkUint(msg.rkeys[i]!, 0xffffffff, 'rkey', mt, o + 8 + 4 * i);
        wr32(buf, o + 8 + 4 * i, msg.rkeys[i]!);
      }
      break;
    }
    case 'announce_credits':
      checkUint(msg.credits, 0xff, 'credits', mt, o + 4);
      buf[o + 4] = msg.credits;
      break;
  }
  return off + len;
}

function checkCount(have: number, want: number, field: string, msgType: string, off: number): void {
  if (have !== want) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${field} has ${have} entries, the count field implies ${want}`, off, msgType);
  }
}
function writeTriple(buf: Uint8Array, p: number, r: LlcRkeyTriple, mt: string): void {
  checkUint(r.rkey, 0xffffffff, 'rkey', mt, p);
  wr32(buf, p, r.rkey);
  checkUint(r.rkeyNew, 0xffffffff, 'rkeyNew', mt, p + 4);
  wr32(buf, p + 4, r.rkeyNew);
  checkU64(r.vaddrNew, 'vaddrNew', mt, p + 8);
  wr64(buf, p + 8, r.vaddrNew);
}
function writeRtoken(buf: Uint8Array, p: number, r: LlcRtoken, mt: string): void {
  checkUint(r.linkId, 0xff, 'linkId', mt, p);
  buf[p] = r.linkId;
  checkUint(r.rkey, 0xffffffff, 'rkey', mt, p + 1);
  wr32(buf, p + 1, r.rkey);
  checkU64(r.vaddr, 'vaddr', mt, p + 5);
  wr64(buf, p + 5, r.vaddr);
}

// ------------------------------------------------------------------------------------------------
// Echo helper

/**
 * A copy of `msg` with a new flags byte and the booleans derived from it updated, e.g.
 * `withLlcFlags(req, req.flags | LlcFlag.RESP.value)` for the echo Linux sends as a response (spec 6.1).
 * Not for the hot path (it allocates the copy).
 */
export function withLlcFlags<M extends LlcMessage>(msg: M, flags: number): M {
  const resp = (flags & LlcFlag.RESP.value) !== 0;
  const m: LlcMessage = msg;
  switch (m.type) {
    case 'confirm_link':
      return { ...m, flags, resp, noRmbeEyec: (flags & LlcFlag.NO_RMBE_EYEC.value) !== 0 } as LlcMessage as M;
    case 'add_link':
      return { ...m, flags, resp, reject: (flags & LlcFlag.ADD_LINK_REJ.value) !== 0 } as LlcMessage as M;
    case 'delete_link':
      return {
        ...m, flags, resp,
        all: (flags & LlcFlag.DEL_LINK_ALL.value) !== 0,
        orderly: (flags & LlcFlag.DEL_LINK_ORDERLY.value) !== 0,
      } as LlcMessage as M;
    case 'confirm_rkey':
      return {
        ...m, flags, resp,
        negative: (flags & LlcFlag.RKEY_NEG.value) !== 0,
        retry: (flags & LlcFlag.RKEY_RETRY.value) !== 0,
      } as LlcMessage as M;
    case 'confirm_rkey_cont':
    case 'delete_rkey':
      return { ...m, flags, resp, negative: (flags & LlcFlag.RKEY_NEG.value) !== 0 } as LlcMessage as M;
    case 'add_link_cont':
    case 'request_add_link':
    case 'test_link':
    case 'announce_credits':
      return { ...m, flags, resp } as LlcMessage as M;
  }
}
