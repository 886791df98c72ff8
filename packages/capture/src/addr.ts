/**
 * Text forms of MAC, IPv4 and IPv6 addresses for the builders and the dissector. IPv6 text follows
 * RFC 5952 (via @smc-r/wire's formatGid), so it compares equal to what tshark prints.
 */
import { formatGid, formatMac } from '@smc-r/wire';
import { CaptureError, CaptureErrorCode } from './errors.js';

function bad(what: string, s: string): CaptureError {
  return new CaptureError(CaptureErrorCode.BAD_VALUE, `not ${what}: ${JSON.stringify(s)}`, 0, 'address');
}

/** `aa:bb:cc:dd:ee:ff` (or `-` separated) or 6 bytes -> a 6-byte Buffer copy. */
export function parseMac(mac: string | Uint8Array): Buffer {
  if (typeof mac !== 'string') {
    if (mac.length !== 6) throw bad('a 6-byte MAC', `${mac.length} bytes`);
    return Buffer.from(mac);
  }
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw bad('a MAC address', mac);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** Dotted quad -> 4-byte Buffer. */
export function parseIpv4(s: string): Buffer {
  const parts = s.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw bad('an IPv4 address', s);
  return Buffer.from(parts.map(Number));
}

/** IPv6 text (with `::` and an optional trailing dotted quad) -> 16-byte Buffer. */
export function parseIpv6(s: string): Buffer {
  let text = s;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.indexOf('.', lastColon) > 0) {
    const v4 = parseIpv4(text.slice(lastColon + 1));
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    const prefix = text.slice(0, lastColon + 1);
    text = prefix.endsWith('::') ? prefix : prefix.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) throw bad('an IPv6 address', s);
  const words = (h: string): number[] => {
    if (h === '') return [];
    return h.split(':').map((w) => {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) throw bad('an IPv6 address', s);
      return parseInt(w, 16);
    });
  };
  const head = words(halves[0]!);
  const rest = halves.length === 2 ? words(halves[1]!) : [];
  const explicit = head.length + rest.length + tail.length;
  let all: number[];
  if (halves.length === 2) {
    if (explicit > 7) throw bad('an IPv6 address', s);
    all = [...head, ...new Array<number>(8 - explicit).fill(0), ...rest, ...tail];
  } else {
    if (explicit !== 8) throw bad('an IPv6 address', s);
    all = [...head, ...tail];
  }
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** IPv4 or IPv6 text -> 4- or 16-byte Buffer (IPv6 when the text contains a colon). */
export function parseIp(s: string): Buffer {
  return s.includes(':') ? parseIpv6(s) : parseIpv4(s);
}

/** 4 bytes at `off` -> `a.b.c.d`. */
export function formatIpv4(buf: Uint8Array, off = 0): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** 16 bytes at `off` -> RFC 5952 text. */
export function formatIpv6(buf: Uint8Array, off = 0): string {
  return formatGid(buf.subarray(off, off + 16));
}

export { formatMac };
