/**
 * IP addresses as 128-bit numbers, so one policy table and one block list cover IPv4 and IPv6.
 * IPv4 addresses are held IPv4-mapped (::ffff:a.b.c.d), which is also how a dual-stack socket
 * reports an IPv4 peer: "10.0.0.1" and "::ffff:10.0.0.1" are the same peer.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { formatGid } from '@smc-r/wire';
import { NetError, NetErrorCode } from './errors.js';

const V4_MAPPED = 0xffffn << 32n;

/** A parsed address: 128-bit value, and whether it was written as (or maps) IPv4. */
export interface IpAddr {
  readonly value: bigint;
  readonly v4: boolean;
}

function parseV4(text: string): bigint {
  let v = 0n;
  for (const part of text.split('.')) v = (v << 8n) | BigInt(Number(part));
  return v;
}

function parseV6(text: string): bigint {
  // A trailing dotted quad ("::ffff:1.2.3.4") becomes two groups.
  let s = text;
  const dot = s.lastIndexOf(':');
  if (s.includes('.')) {
    const v4 = parseV4(s.slice(dot + 1));
    s = `${s.slice(0, dot + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const hs = head === '' ? [] : head.split(':');
  const ts = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? hs : [...hs, ...new Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

/** Parses an IPv4 or IPv6 literal (zone ids are not accepted). Throws BAD_ADDRESS. */
export function parseIp(text: string): IpAddr {
  if (typeof text !== 'string') throw new NetError(NetErrorCode.BAD_ADDRESS, `not an IP address: ${String(text)}`);
  if (isIPv4(text)) return { value: V4_MAPPED | parseV4(text), v4: true };
  if (isIPv6(text) && !text.includes('%')) {
    const value = parseV6(text);
    return { value, v4: value >> 32n === 0xffffn };
  }
  throw new NetError(NetErrorCode.BAD_ADDRESS, `not an IP address: "${text}"`);
}

/** The canonical text of an address: dotted quad for IPv4 (mapped or not), else lower-case hex groups. */
export function formatIp(a: IpAddr | bigint): string {
  const v = typeof a === 'bigint' ? a : a.value;
  if (v >> 32n === 0xffffn) {
    const x = Number(v & 0xffffffffn);
    return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
  }
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(v >> 64n, 0);
  b.writeBigUInt64BE(v & 0xffffffffffffffffn, 8);
  return formatGid(b); // RFC 5952 text
}

/** A prefix: `bits` leading bits of `value` (IPv4 prefixes count from the mapped address's bit 96). */
export interface IpPrefix {
  readonly value: bigint;
  readonly bits: number;
}

/** Parses "a.b.c.d/n", "x::/n" or a bare address (a host prefix). Throws BAD_ADDRESS. */
export function parsePrefix(text: string): IpPrefix {
  if (typeof text !== 'string') throw new NetError(NetErrorCode.BAD_ADDRESS, `not an address prefix: ${String(text)}`);
  const slash = text.indexOf('/');
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  const max = addr.v4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len >= 0 && len <= max)) throw new NetError(NetErrorCode.BAD_ADDRESS, `bad prefix length in "${text}" (0..${max})`);
  }
  const bits = addr.v4 ? 96 + len : len;
  return { value: addr.value & maskOf(bits), bits };
}

function maskOf(bits: number): bigint {
  return bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(128 - bits);
}

export function prefixContains(p: IpPrefix, a: bigint): boolean {
  return (a & maskOf(p.bits)) === p.value;
}

export function formatPrefix(p: IpPrefix): string {
  const v4 = p.bits >= 96 && p.value >> 32n === 0xffffn;
  return `${formatIp(p.value)}/${v4 ? p.bits - 96 : p.bits}`;
}

/** Checks a TCP port number (0..65535). Throws BAD_ADDRESS. */
export function checkPort(port: number, what = 'port'): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new NetError(NetErrorCode.BAD_ADDRESS, `${what} ${String(port)} is not 0..65535`);
  return port;
}
