/**
 * The SMC capability option of the TCP handshake (spec 2.1) and a strict parser for TCP option blocks,
 * so a captured SYN / SYN-ACK (eBPF, TCP_SAVED_SYN, pcap) can be checked for it. Pure: no sockets.
 *
 * SMC is advertised with an RFC 6994 experimental option: kind 254, length 6, ExID 0xE2D4C3D9 ("SMCR"
 * in EBCDIC). Linux precedes it with two NOPs so it takes 8 aligned bytes: `01 01 FE 06 E2 D4 C3 D9`.
 */
import { WireError, WireErrorCode, need, room } from './errors.js';

const MSG = 'tcp-options';

/** End of option list (RFC 9293). Everything after it is padding. */
export const TCPOPT_EOL = 0;
/** No-operation, one byte, used for alignment (RFC 9293). */
export const TCPOPT_NOP = 1;
/** RFC 6994 experimental option kind the SMC option uses (`TCPOPT_EXP`). */
export const TCPOPT_EXP = 254;
/** ExID of the SMC option (`TCPOPT_SMC_MAGIC`): "SMCR" in EBCDIC, big-endian. */
export const TCPOPT_SMC_MAGIC = 0xe2d4c3d9;
/** ExID of TCP Fast Open's experimental form (RFC 7413), the other kind-254 option Linux parses. */
export const TCPOPT_FASTOPEN_MAGIC = 0xf989;
/** Length byte of the SMC option (`TCPOLEN_EXP_SMC_BASE`). */
export const TCPOLEN_EXP_SMC_BASE = 6;
/** Space the SMC option takes with its two leading NOPs (`TCPOLEN_EXP_SMC_BASE_ALIGNED`). */
export const TCPOLEN_EXP_SMC_BASE_ALIGNED = 8;
/** Largest TCP option block: data offset 15 words minus the 20-byte fixed header. */
export const TCP_OPTIONS_MAX = 40;

/** Option kinds we name when printing; any other kind is still parsed (as raw data). */
export const TcpOptionKind = {
  EOL: { value: 0, name: 'EOL' },
  NOP: { value: 1, name: 'NOP' },
  MSS: { value: 2, name: 'MSS' },
  WSCALE: { value: 3, name: 'WSCALE' },
  SACK_PERM: { value: 4, name: 'SACK_PERM' },
  SACK: { value: 5, name: 'SACK' },
  TIMESTAMP: { value: 8, name: 'TIMESTAMP' },
  MD5SIG: { value: 19, name: 'MD5SIG' },
  AO: { value: 29, name: 'AO' },
  MPTCP: { value: 30, name: 'MPTCP' },
  FASTOPEN: { value: 34, name: 'FASTOPEN' },
  EXP: { value: 254, name: 'EXP' },
} as const;

/**
 * One option of a parsed block. `offset` is the absolute offset of its kind byte, `length` the bytes it
 * occupies (1 for EOL and NOP, else its length byte) and `data` a copy of the bytes after kind and length.
 */
export interface TcpOption {
  readonly kind: number;
  readonly offset: number;
  readonly length: number;
  readonly data: Buffer;
}

const EMPTY = Buffer.alloc(0);

/**
 * Parses the TCP option block `[off, end)`. NOP entries are returned; an EOL entry is returned and ends
 * the list (the bytes after it are padding and not examined). Every other kind must have a length byte
 * `>= 2` whose option fits in the block; unknown kinds are kept as raw data.
 *
 * Throws WireError: TRUNCATED (at the kind byte) when the block ends right after a kind byte, or when
 * `end` lies past the buffer; BAD_LENGTH (at the length byte) when a length is below 2 or runs past the
 * block; BAD_LENGTH (at `off`) when the block is longer than the 40 bytes TCP allows.
 */
export function parseTcpOptions(buf: Uint8Array, off = 0, end = buf.length): TcpOption[] {
  if (off < 0 || end > buf.length || off > end) {
    throw new WireError(WireErrorCode.TRUNCATED, `block [${off}, ${end}) is not inside the ${buf.length}-byte buffer`, Math.min(Math.max(off, 0), buf.length), MSG);
  }
  if (end - off > TCP_OPTIONS_MAX) {
    throw new WireError(WireErrorCode.BAD_LENGTH, `option block is ${end - off} bytes, TCP allows at most ${TCP_OPTIONS_MAX}`, off, MSG);
  }
  const out: TcpOption[] = [];
  let p = off;
  while (p < end) {
    const kind = buf[p]!;
    if (kind === TCPOPT_EOL || kind === TCPOPT_NOP) {
      out.push({ kind, offset: p, length: 1, data: EMPTY });
      p += 1;
      if (kind === TCPOPT_EOL) break;
      continue;
    }
    need(end, p, 2, MSG);
    const len = buf[p + 1]!;
    if (len < 2) {
      throw new WireError(WireErrorCode.BAD_LENGTH, `option kind ${kind} has length ${len}, at least 2 required`, p + 1, MSG);
    }
    if (p + len > end) {
      throw new WireError(WireErrorCode.BAD_LENGTH, `option kind ${kind} has length ${len}, only ${end - p} bytes left in the block`, p + 1, MSG);
    }
    out.push({ kind, offset: p, length: len, data: Buffer.from(buf.subarray(p + 2, p + len)) });
    p += len;
  }
  return out;
}

/**
 * Whether one option is the SMC option, by the kernel's receive rule (spec 2.1): kind 254, even length
 * of at least 6, data starting with `E2 D4 C3 D9`. Another ExID (Fast Open's 0xF989, ...) is not SMC.
 * The kernel honours it only in segments with SYN set; checking the flags is the caller's job.
 */
export function isSmcOption(opt: TcpOption): boolean {
  const d = opt.data;
  return (
    opt.kind === TCPOPT_EXP &&
    opt.length >= TCPOLEN_EXP_SMC_BASE &&
    (opt.length & 1) === 0 &&
    d.length >= 4 &&
    d[0] === 0xe2 && d[1] === 0xd4 && d[2] === 0xc3 && d[3] === 0xd9
  );
}

/** The first SMC option in a parsed block, or undefined. */
export function findSmcOption(options: readonly TcpOption[]): TcpOption | undefined {
  for (const o of options) if (isSmcOption(o)) return o;
  return undefined;
}

/** Whether a parsed block (of a SYN or SYN-ACK) advertises SMC. */
export function hasSmcOption(options: readonly TcpOption[]): boolean {
  return findSmcOption(options) !== undefined;
}

/** Bytes {@link encodeSmcOption} writes: 8 with the leading NOPs, 6 without. */
export function smcOptionLength(withNops = true): number {
  return withNops ? TCPOLEN_EXP_SMC_BASE_ALIGNED : TCPOLEN_EXP_SMC_BASE;
}

/**
 * Writes the SMC option at `off`: `01 01 FE 06 E2 D4 C3 D9` as Linux sends it, or the bare 6-byte option
 * when `withNops` is false. Returns the new offset. Throws BUFFER_TOO_SMALL if it does not fit.
 */
export function encodeSmcOption(buf: Uint8Array, off: number, withNops = true): number {
  const n = withNops ? TCPOLEN_EXP_SMC_BASE_ALIGNED : TCPOLEN_EXP_SMC_BASE;
  room(buf, off, n, MSG);
  let p = off;
  if (withNops) {
    buf[p++] = TCPOPT_NOP;
    buf[p++] = TCPOPT_NOP;
  }
  buf[p++] = TCPOPT_EXP;
  buf[p++] = TCPOLEN_EXP_SMC_BASE;
  buf[p++] = (TCPOPT_SMC_MAGIC >>> 24) & 0xff;
  buf[p++] = (TCPOPT_SMC_MAGIC >>> 16) & 0xff;
  buf[p++] = (TCPOPT_SMC_MAGIC >>> 8) & 0xff;
  buf[p++] = TCPOPT_SMC_MAGIC & 0xff;
  return p;
}
