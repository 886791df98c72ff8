/**
 * IP address rules of the CLC handshake: the client's IP prefix area (spec 3.3.1, 3.3.2; L-clc.c
 * `smc_clc_prfx_set`), the server's prefix check that yields DIFFPREFIX (spec 3.6.3 step 6;
 * `smc_clc_prfx_match`) and the IPv4 address inside an IPv4-mapped RoCEv2 GID (`smc_ib_gid_to_ipv4`).
 * Addresses come in as the strings Node reports (`socket.localAddress`, `os.networkInterfaces()`).
 */
import type { ClcIpPrefixArea, ClcIpv6Prefix } from '@smc-r/wire';
import { ClcConfigError } from './clc-config.js';

/** An address of the network device the TCP socket uses (`in_ifaddr` / `inet6_ifaddr`). */
export interface ClcIfAddress {
  /** IPv4 dotted quad or IPv6 text (a `%zone` suffix is ignored). */
  readonly address: string;
  /** Prefix length in bits (0..32 for IPv4, 0..128 for IPv6). */
  readonly prefixLen: number;
}

/** A parsed address: 4 bytes (IPv4) or 16 bytes (IPv6), network order. */
export interface ParsedIp {
  readonly family: 4 | 6;
  readonly bytes: Buffer;
}

const V4_PART = /^(?:0|[1-9]\d{0,2})$/;

/** Parses a dotted quad; undefined if it is not one. */
export function parseIpv4(text: string): Buffer | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!V4_PART.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** Parses IPv6 text (RFC 4291 section 2.2, with `::` and an embedded dotted quad); undefined if invalid. */
export function parseIpv6(text: string): Buffer | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const words: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        words.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        words.push(parseInt(p, 16));
      }
    }
    return words;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const n = head.length + tail.length;
  if (halves.length === 2 ? n > 7 : n !== 8) return undefined;
  const words = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, 2 * i));
  return out;
}

/**
 * Parses an address and folds IPv4-mapped IPv6 (`::ffff:a.b.c.d`) to IPv4, as the kernel does for the
 * prefix area ("mapped IPv4 address - peer is IPv4 only") and for SMC-Rv2. Throws ClcConfigError.
 */
export function parseIp(text: string): ParsedIp {
  const t = typeof text === 'string' ? text.replace(/%.*$/, '') : '';
  if (!t.includes(':')) {
    const v4 = parseIpv4(t);
    if (v4) return { family: 4, bytes: v4 };
  } else {
    const v6 = parseIpv6(t);
    if (v6) return isV4Mapped(v6) ? { family: 4, bytes: Buffer.from(v6.subarray(12)) } : { family: 6, bytes: v6 };
  }
  throw new ClcConfigError(`not an IP address: ${JSON.stringify(text)}`);
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/**
 * The IPv4 address of an IPv4-mapped GID (`::ffff:a.b.c.d`) as a dotted quad, or undefined for any other
 * GID (the kernel's `smc_ib_gid_to_ipv4` then yields INADDR_NONE and the route lookup fails).
 */
export function ipv4FromGid(gid: Uint8Array): string | undefined {
  if (gid.length !== 16 || !isV4Mapped(gid)) return undefined;
  return `${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
}

/** A copy of `addr` with every bit after the first `prefixLen` cleared. */
export function maskAddress(addr: Uint8Array, prefixLen: number): Buffer {
  const out = Buffer.from(addr);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLen - 8 * i));
    out[i] = out[i]! & (keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** Whether the first `prefixLen` bits of `a` and `b` agree. */
export function prefixEqual(a: Uint8Array, b: Uint8Array, prefixLen: number): boolean {
  return maskAddress(a, prefixLen).equals(maskAddress(b, prefixLen));
}

/** fe80::/10 (`IPV6_ADDR_LINKLOCAL`): never put into, nor matched against, a prefix area. */
function isLinkLocal6(b: Uint8Array): boolean {
  return b[0] === 0xfe && (b[1]! & 0xc0) === 0x80;
}

interface IfAddr {
  readonly family: 4 | 6;
  readonly bytes: Buffer;
  readonly prefixLen: number;
}

function parseIfAddresses(list: readonly ClcIfAddress[]): IfAddr[] {
  return list.map((a) => {
    const ip = parseIp(a.address);
    const max = ip.family === 4 ? 32 : 128;
    if (!Number.isInteger(a.prefixLen) || a.prefixLen < 0 || a.prefixLen > max) {
      throw new ClcConfigError(`prefix length ${a.prefixLen} of ${a.address} is not 0..${max}`);
    }
    return { family: ip.family, bytes: ip.bytes, prefixLen: a.prefixLen };
  });
}

/**
 * The client's IP prefix area (`smc_clc_prfx_set`, spec 3.3.2): for an IPv4 (or IPv4-mapped) socket the
 * device address whose subnet contains the local address, masked, with its prefix length; for IPv6 up to 8
 * prefixes of the device's non-link-local addresses (subnet 0, length 0). Undefined when there is none:
 * the client then drops SMCv1 from its offer, or declines with CNFERR if nothing else is left.
 */
export function proposalPrefixArea(localAddress: string, ifAddresses: readonly ClcIfAddress[]): ClcIpPrefixArea | undefined {
  const local = parseIp(localAddress);
  const addrs = parseIfAddresses(ifAddresses);
  if (local.family === 4) {
    for (const a of addrs) {
      if (a.family === 4 && prefixEqual(local.bytes, a.bytes, a.prefixLen)) {
        return { subnet: maskAddress(a.bytes, a.prefixLen), prefixLen: a.prefixLen, ipv6Prefixes: [] };
      }
    }
    return undefined;
  }
  const ipv6Prefixes: ClcIpv6Prefix[] = [];
  for (const a of addrs) {
    if (a.family !== 6 || isLinkLocal6(a.bytes)) continue;
    ipv6Prefixes.push({ prefix: maskAddress(a.bytes, a.prefixLen), prefixLen: a.prefixLen });
    if (ipv6Prefixes.length === 8) break; // SMC_CLC_MAX_V6_PREFIX
  }
  return ipv6Prefixes.length > 0 ? { subnet: Buffer.alloc(4), prefixLen: 0, ipv6Prefixes } : undefined;
}

/**
 * The server's prefix check (`smc_clc_prfx_match`, spec 3.6.3 step 6). Like the kernel it looks at the
 * Proposal, not at the server socket's family: without IPv6 prefixes, one of the device's IPv4 addresses
 * must have the same prefix length and contain the proposed subnet; with them, one non-link-local IPv6
 * address must have the length and prefix of one proposed entry. False means DIFFPREFIX.
 */
export function prefixAreaMatches(area: ClcIpPrefixArea, ifAddresses: readonly ClcIfAddress[]): boolean {
  const addrs = parseIfAddresses(ifAddresses);
  if (area.ipv6Prefixes.length === 0) {
    return addrs.some((a) => a.family === 4 && a.prefixLen === area.prefixLen && prefixEqual(area.subnet, a.bytes, a.prefixLen));
  }
  return addrs.some(
    (a) => a.family === 6 && !isLinkLocal6(a.bytes) && area.ipv6Prefixes.some((p) => p.prefixLen === a.prefixLen && prefixEqual(p.prefix, a.bytes, a.prefixLen)),
  );
}
