/**
 * Small byte helpers every codec uses: 24-bit integers, fixed-width blank-padded ASCII, and the
 * textual forms of GIDs and MACs. No allocation except where a string or copy is the result.
 */
import { WireError, WireErrorCode } from './errors.js';

/** Reads a big-endian 24-bit unsigned integer (QPNs, PSNs). */
export function readU24(buf: Uint8Array, off: number): number {
  return (buf[off]! << 16) | (buf[off + 1]! << 8) | buf[off + 2]!;
}

/** Writes a big-endian 24-bit unsigned integer; the caller has range-checked `v`. */
export function writeU24(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 16) & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = v & 0xff;
}

/** A copy of `len` bytes at `off` (decoders never alias the caller's buffer). */
export function copyBytes(buf: Uint8Array, off: number, len: number): Buffer {
  return Buffer.from(buf.subarray(off, off + len));
}

/**
 * Copies a fixed-size byte field (GID, MAC, peer ID) into place. Throws BAD_VALUE when the
 * caller's value has the wrong size: silently truncating an identifier would put a wrong one on the wire.
 */
export function writeBytes(buf: Uint8Array, off: number, src: Uint8Array, len: number, field: string, msgType: string): void {
  if (src.length !== len) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${field} must be ${len} bytes, got ${src.length}`, off, msgType);
  }
  buf.set(src, off);
}

/**
 * Reads a fixed-width ASCII field (EID, host name) and drops the trailing blank / NUL padding the
 * kernel uses. Bytes outside printable ASCII are kept as Latin-1 so nothing is lost silently.
 */
export function readPaddedAscii(buf: Uint8Array, off: number, len: number): string {
  let end = off + len;
  while (end > off && (buf[end - 1] === 0x20 || buf[end - 1] === 0x00)) end--;
  return Buffer.from(buf.buffer, buf.byteOffset + off, end - off).toString('latin1');
}

/** Writes `s` blank-padded to `len` bytes. Throws BAD_VALUE if it is longer or not 8-bit. */
export function writePaddedAscii(buf: Uint8Array, off: number, len: number, s: string, field: string, msgType: string): void {
  if (s.length > len) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${field} is ${s.length} characters, at most ${len} fit`, off, msgType);
  }
  for (let i = 0; i < len; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x20;
    if (c > 0xff) throw new WireError(WireErrorCode.BAD_VALUE, `${field} has a character outside Latin-1`, off + i, msgType);
    buf[off + i] = c;
  }
}

/** `aa:bb:cc:dd:ee:ff`. */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * A 16-byte GID as an IPv6 address in RFC 5952 form (`::ffff:10.0.0.1` for the IPv4-mapped GIDs of
 * RoCEv2, `fe80::1` for link-local ones), as `smcss -R` and tshark print them.
 */
export function formatGid(gid: Uint8Array): string {
  if (gid.length !== 16) return Buffer.from(gid).toString('hex');
  let mapped = true;
  for (let i = 0; i < 10; i++) if (gid[i] !== 0) mapped = false;
  if (mapped && gid[10] === 0xff && gid[11] === 0xff) {
    return `::ffff:${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
  }
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((gid[i]! << 8) | gid[i + 1]!);
  // Longest run (>= 2) of zero words becomes "::" (RFC 5952 section 4.2).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** The IPv4-mapped GID (`::ffff:a.b.c.d`) RoCEv2 uses for an IPv4 address. */
export function gidFromIpv4(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new WireError(WireErrorCode.BAD_VALUE, `not an IPv4 address: ${ip}`, 0, 'gid');
  }
  const gid = Buffer.alloc(16);
  gid[10] = 0xff;
  gid[11] = 0xff;
  gid.set(parts, 12);
  return gid;
}

/** Hex dump helper for messages and tools: `e2d4c3d9...`. */
export function toHex(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('hex');
}
