/**
 * CLC (Connection Layer Control) messages: the Proposal / Accept / Confirm / Decline handshake that runs
 * on the TCP connection before SMC-R takes over (spec section 3; RFC 7609 section 4.3; Linux
 * `net/smc/smc_clc.c`). The decoder applies exactly the validation the Linux receiver applies (spec 3.2),
 * so a message we accept is one Linux accepts and vice versa, except where a module doc says otherwise.
 *
 * The codecs live in `clc-common.ts` (header, trailer, tables), `clc-proposal.ts`, `clc-accept.ts` and
 * `clc-decline.ts`; this module dispatches on the type byte and re-exports their public surface.
 */
import { WireError, WireErrorCode, need } from './errors.js';
import { CLC_HEADER_LENGTH, CLC_MIN_LENGTH, badLength, clcMsgTypeOf, readEyecatcher } from './clc-common.js';
import { type ClcProposal, decodeProposalBody, encodeProposal, proposalLength } from './clc-proposal.js';
import { type ClcAccept, type ClcConfirm, acceptConfirmLength, decodeAcceptConfirmBody, encodeAcceptConfirm } from './clc-accept.js';
import { type ClcDecline, declineLength, decodeDeclineBody, encodeDecline } from './clc-decline.js';

export {
  CLC_HEADER_LENGTH,
  CLC_TRAILER_LENGTH,
  CLC_MIN_LENGTH,
  CLC_FIRST_CONTACT_MASK,
  ClcEyecatcher,
  ClcMsgType,
  SmcType,
  ClcOsType,
  SmcRelease,
  ClcLimit,
  ClcLength,
  ALIBABA_OUI,
  AliVendorFlag,
  type ClcHeaderFields,
  type ClcHeader,
  peekClcHeader,
  smcrIndicated,
  smcdIndicated,
  aliFlagsFromVendor,
  aliVendorOptions,
} from './clc-common.js';
export {
  type ClcProposal,
  type ClcIpPrefixArea,
  type ClcIpv6Prefix,
  type ClcSmcdArea,
  type ClcProposalV2Ext,
  type ClcSmcdV2Ext,
  type ClcSmcdGidChid,
  proposalLayout,
} from './clc-proposal.js';
export { type ClcAccept, type ClcConfirm, type ClcAcceptConfirmFields, type ClcFirstContactExt, aliFlagsFromFce } from './clc-accept.js';
export { type ClcDecline } from './clc-decline.js';

/** Any CLC message, discriminated by `type`. */
export type ClcMessage = ClcProposal | ClcAccept | ClcConfirm | ClcDecline;

/**
 * Decodes ONE CLC message starting at `off`; its length comes from the header. Throws WireError:
 * TRUNCATED (fewer than 8 bytes, or fewer than the header's length in `[off, end)`), BAD_EYECATCHER,
 * BAD_VERSION (version 0), UNKNOWN_TYPE, BAD_LENGTH / BAD_VALUE (the kernel's rules, spec 3.2-3.5),
 * BAD_TRAILER (Proposal / Accept / Confirm; a Decline reports it in `trailerOk`), UNSUPPORTED (SMC-D
 * Accept/Confirm). Offsets in errors are absolute offsets in `buf`.
 */
export function decodeClc(buf: Buffer, off = 0, end = buf.length): ClcMessage {
  need(end, off, CLC_HEADER_LENGTH, 'CLC');
  const eyecatcher = readEyecatcher(buf, off);
  if (eyecatcher === undefined) {
    throw new WireError(WireErrorCode.BAD_EYECATCHER, `not a CLC message: ${buf.subarray(off, off + 4).toString('hex')} is neither "SMCR" nor "SMCD"`, off, 'CLC');
  }
  const version = buf[off + 7]! >>> 4;
  if (version < 1) throw new WireError(WireErrorCode.BAD_VERSION, 'version 0 (Linux requires >= 1)', off + 7, 'CLC');
  const type = clcMsgTypeOf(buf[off + 4]!);
  if (type === undefined) throw new WireError(WireErrorCode.UNKNOWN_TYPE, `type ${buf[off + 4]} is not 1..4`, off + 4, 'CLC');
  const len = buf.readUInt16BE(off + 5);
  if (len < CLC_MIN_LENGTH) throw badLength(off, len, `shorter than header + trailer (${CLC_MIN_LENGTH})`, 'CLC');
  need(end, off, len, 'CLC');
  switch (type) {
    case 'proposal':
      return decodeProposalBody(buf, off, len, eyecatcher);
    case 'accept':
    case 'confirm':
      return decodeAcceptConfirmBody(buf, off, len, eyecatcher, type);
    case 'decline':
      return decodeDeclineBody(buf, off, len, eyecatcher);
  }
}

/** Encoded size of `msg`; throws BAD_VALUE / BAD_VERSION for a message that cannot be encoded. */
export function clcLength(msg: ClcMessage): number {
  switch (msg.type) {
    case 'proposal':
      return proposalLength(msg);
    case 'accept':
    case 'confirm':
      return acceptConfirmLength(msg);
    case 'decline':
      return declineLength(msg);
    default:
      throw unknownType(msg);
  }
}

/**
 * Encodes `msg` at `off` in `buf` and returns the offset after it. Reserved bytes are zeroed; every field
 * is range-checked (BAD_VALUE); room is checked before anything is written (BUFFER_TOO_SMALL).
 */
export function encodeClc(msg: ClcMessage, buf: Buffer, off: number): number {
  switch (msg.type) {
    case 'proposal':
      return encodeProposal(msg, buf, off);
    case 'accept':
    case 'confirm':
      return encodeAcceptConfirm(msg, buf, off);
    case 'decline':
      return encodeDecline(msg, buf, off);
    default:
      throw unknownType(msg);
  }
}

/** Encodes `msg` into a new Buffer of exactly its length. */
export function clcToBuffer(msg: ClcMessage): Buffer {
  const buf = Buffer.alloc(clcLength(msg));
  encodeClc(msg, buf, 0);
  return buf;
}

function unknownType(msg: never): WireError {
  return new WireError(WireErrorCode.UNKNOWN_TYPE, `unknown CLC message type ${String((msg as { type?: unknown }).type)}`, 0, 'CLC');
}
