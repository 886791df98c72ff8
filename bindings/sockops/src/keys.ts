/**
 * Keys and values of the program's maps, laid out from the BTF the build script exported
 * (src/generated/program.ts), never from offsets written here.
 *
 * Offer key (`struct smcr_peer_key`): the remote address as 16 bytes in network order, IPv4
 * v4-mapped (::ffff:a.b.c.d, which is also what an AF_INET6 socket connecting to IPv4 sees), then
 * the remote port in host byte order and two zero bytes. Listen key: the local port as a host-order
 * u32. Record (`struct smcr_sk_state`): peer_smc, sent_smc, role (u8 each), load_ret (s32).
 */
import { isIP } from 'node:net';
import { SockopsError, SockopsErrorCode } from './errors.js';
import type { BpfLayout } from './object.js';

/** Roles in the record (C `enum smcr_role`). */
export const ROLE_ACTIVE = 1;
export const ROLE_PASSIVE = 2;

function field(layout: BpfLayout, name: string, size: number): number {
  const f = layout.fields?.[name];
  if (f === undefined || f.size !== size) throw new Error(`generated layout has no ${size}-byte field ${name}: rebuild src/generated/program.ts`);
  return f.offset;
}

/** Parses a dotted-quad IPv4 address into 4 bytes at `out[off..]`. */
function parseIPv4(s: string, out: Uint8Array, off: number): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return false;
    const v = Number(p);
    if (v > 255) return false;
    out[off + i] = v;
  }
  return true;
}

/** Parses an IPv6 literal (with `::` and an optional dotted-quad tail) into 16 bytes. */
function parseIPv6(s: string, out: Uint8Array): boolean {
  let head = s;
  let tail = '';
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    if (s.indexOf('::', dbl + 1) >= 0) return false;
    head = s.slice(0, dbl);
    tail = s.slice(dbl + 2);
  }
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const h = groups(head);
  const t = groups(tail);
  const words: number[] = [];
  const push = (list: string[], allowV4Last: boolean): boolean => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i]!;
      if (allowV4Last && i === list.length - 1 && g.includes('.')) {
        const b = new Uint8Array(4);
        if (!parseIPv4(g, b, 0)) return false;
        words.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      words.push(parseInt(g, 16));
    }
    return true;
  };
  if (!push(h, dbl < 0)) return false;
  const headWords = words.length;
  if (!push(t, true)) return false;
  const tailWords = words.length - headWords;
  if (dbl < 0) {
    if (words.length !== 8) return false;
  } else {
    if (words.length > 7) return false;
    words.splice(headWords, 0, ...new Array<number>(8 - headWords - tailWords).fill(0));
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return true;
}

/**
 * The 16-byte form of a literal IPv4 or IPv6 address (IPv4 v4-mapped). Throws BAD_ADDRESS for
 * anything else (host names, zone ids, prefixes): the program matches exact addresses.
 */
export function addressBytes(address: string): Uint8Array {
  const out = new Uint8Array(16);
  const family = typeof address === 'string' ? isIP(address) : 0;
  if (family === 4 && parseIPv4(address, out, 12)) {
    out[10] = 0xff;
    out[11] = 0xff;
    return out;
  }
  if (family === 6 && !address.includes('%') && parseIPv6(address, out)) return out;
  throw new SockopsError(SockopsErrorCode.BAD_ADDRESS, `${JSON.stringify(address)} is not a literal IPv4 or IPv6 address (no host names, no zone ids): the program matches the connect() destination exactly`);
}

/** Throws BAD_PORT unless `port` is an integer in 1..65535. */
export function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new SockopsError(SockopsErrorCode.BAD_PORT, `port ${String(port)} is not an integer in 1..65535`);
  }
}

/** Writes a host-order unsigned integer of `size` bytes. */
function putHost(buf: Buffer, off: number, size: 2 | 4, v: number, littleEndian: boolean): void {
  if (size === 2) {
    if (littleEndian) buf.writeUInt16LE(v, off);
    else buf.writeUInt16BE(v, off);
  } else if (littleEndian) buf.writeUInt32LE(v, off);
  else buf.writeUInt32BE(v, off);
}

/** Encodes the offer-map key for (address, port) into `out` (zeroed first). */
export function encodeOfferKey(layout: BpfLayout, address: string, port: number, out: Buffer, littleEndian = true): void {
  checkPort(port);
  const addr = addressBytes(address);
  if (out.length < layout.size) throw new RangeError(`offer key buffer ${out.length} < ${layout.size}`);
  out.fill(0, 0, layout.size);
  out.set(addr, field(layout, 'addr', 16));
  putHost(out, field(layout, 'port', 2), 2, port, littleEndian);
}

/** Encodes the listen-map key (the local port, host-order u32). */
export function encodeListenKey(layout: BpfLayout, port: number, out: Buffer, littleEndian = true): void {
  checkPort(port);
  if (layout.size !== 4) throw new Error(`listen key is ${layout.size} bytes, expected 4: rebuild src/generated/program.ts`);
  putHost(out, 0, 4, port, littleEndian);
}

/** What the program recorded for one socket. */
export interface PeerState {
  /** The peer's SYN (passive) or SYN-ACK (active) carried the SMC option. */
  readonly peerSmc: boolean;
  /** Ours carried it (passive side: derived, see README). */
  readonly sentSmc: boolean;
  readonly role: 'active' | 'passive';
  /** bpf_load_hdr_opt's result: 6 found, -42 (ENOMSG) absent, -2 (ENOENT) no saved SYN (syncookie). */
  readonly loadRet: number;
}

/** Decodes a record; undefined for a role we do not know (a record still being created). */
export function decodeRecord(layout: BpfLayout, buf: Buffer, littleEndian = true): PeerState | undefined {
  const role = buf[field(layout, 'role', 1)];
  if (role !== ROLE_ACTIVE && role !== ROLE_PASSIVE) return undefined;
  const off = field(layout, 'load_ret', 4);
  return {
    peerSmc: buf[field(layout, 'peer_smc', 1)] !== 0,
    sentSmc: buf[field(layout, 'sent_smc', 1)] !== 0,
    role: role === ROLE_ACTIVE ? 'active' : 'passive',
    loadRet: littleEndian ? buf.readInt32LE(off) : buf.readInt32BE(off),
  };
}

/** `SMCR_STAT_SYN_WRITTEN` -> `synWritten`. */
export function statName(enumName: string): string {
  const base = enumName.replace(/^SMCR_STAT_/, '').toLowerCase();
  return base.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
