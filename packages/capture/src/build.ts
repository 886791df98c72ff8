/**
 * Frame builders for tests, demos and the softroce tests: Ethernet (optionally VLAN-tagged) +
 * IPv4/IPv6 + TCP/UDP with correct header and transport checksums, and RoCEv2 frames (UDP 4791 +
 * an IB packet from @smc-r/wire) with their ICRC. They allocate one Buffer per frame; they are not
 * meant for hot paths.
 */
import { encodeIbPacket, fillIcrc, ibPacketLength, ROCEV2_UDP_PORT, type IbPacketInput } from '@smc-r/wire';
import { parseIp, parseMac } from './addr.js';
import { ipv4HeaderChecksum, transportChecksum } from './checksum.js';
import { CaptureError, CaptureErrorCode, checkRange } from './errors.js';
import { EtherType, IpProtocol } from './linktype.js';
import { TcpFlag } from './packet.js';

/** Default MACs: locally administered, so they never clash with real hardware. */
export const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
export const DEFAULT_DST_MAC = '02:00:00:00:00:02';

export interface EthernetFields {
  readonly srcMac?: string | Uint8Array;
  readonly dstMac?: string | Uint8Array;
  /** One 802.1Q tag (VLAN ID, or ID and priority). */
  readonly vlan?: number | { readonly vid: number; readonly pcp?: number };
}

export interface IpFields {
  /** Dotted IPv4 or IPv6 text; both must be the same family as the builder. */
  readonly src: string;
  readonly dst: string;
  /** IPv4 identification (default 0). */
  readonly ipId?: number;
  /** IPv4 TTL / IPv6 hop limit (default 64). */
  readonly ttl?: number;
  /** IPv4 TOS byte / IPv6 traffic class (default 0). */
  readonly tos?: number;
  /** IPv4 Don't Fragment (default true, as Linux sets it with path-MTU discovery). */
  readonly df?: boolean;
  /** IPv6 flow label (default 0). */
  readonly flowLabel?: number;
}

export interface TcpFields extends EthernetFields, IpFields {
  readonly sport: number;
  readonly dport: number;
  readonly seq?: number;
  readonly ack?: number;
  /** TcpFlag bits (default ACK). */
  readonly flags?: number;
  readonly window?: number;
  readonly urgentPointer?: number;
  /** Raw option bytes (e.g. from encodeSmcOption); padded with EOL (0) to a multiple of 4. */
  readonly options?: Uint8Array;
  readonly payload?: Uint8Array;
}

export interface UdpFields extends EthernetFields, IpFields {
  readonly sport: number;
  readonly dport: number;
  readonly payload?: Uint8Array;
  /** Compute the UDP checksum (default true); false writes 0 (allowed over IPv4 only). */
  readonly udpChecksum?: boolean;
}

/** A RoCEv2 frame: UDP fields (ports default to 49152 -> 4791) plus the IB packet to carry. */
export interface RoceFrameFields extends EthernetFields, IpFields {
  readonly sport?: number;
  readonly dport?: number;
  readonly udpChecksum?: boolean;
  readonly ib: IbPacketInput;
}

const ETH_HEADER = 14;
const VLAN_TAG = 4;
const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const TCP_HEADER = 20;
const UDP_HEADER = 8;

function bad(message: string, layer: string): CaptureError {
  return new CaptureError(CaptureErrorCode.BAD_VALUE, message, 0, layer);
}

/** Writes the Ethernet header (and tag) for `etherType`; returns the network-layer offset. */
function writeEthernet(buf: Buffer, f: EthernetFields, etherType: number): number {
  buf.set(parseMac(f.dstMac ?? DEFAULT_DST_MAC), 0);
  buf.set(parseMac(f.srcMac ?? DEFAULT_SRC_MAC), 6);
  let p = 12;
  if (f.vlan !== undefined) {
    const vid = typeof f.vlan === 'number' ? f.vlan : f.vlan.vid;
    const pcp = typeof f.vlan === 'number' ? 0 : f.vlan.pcp ?? 0;
    checkRange(vid, 0xfff, 'vlan id', 'ethernet');
    checkRange(pcp, 7, 'vlan pcp', 'ethernet');
    buf.writeUInt16BE(EtherType.VLAN.value, p);
    buf.writeUInt16BE((pcp << 13) | vid, p + 2);
    p += VLAN_TAG;
  }
  buf.writeUInt16BE(etherType, p);
  return p + 2;
}

function linkHeaderLength(f: EthernetFields): number {
  return ETH_HEADER + (f.vlan !== undefined ? VLAN_TAG : 0);
}

interface Addrs {
  readonly src: Buffer;
  readonly dst: Buffer;
  readonly v6: boolean;
}

function addresses(f: IpFields, v6: boolean, layer: string): Addrs {
  const src = parseIp(f.src);
  const dst = parseIp(f.dst);
  const want = v6 ? 16 : 4;
  if (src.length !== want || dst.length !== want) throw bad(`${f.src} -> ${f.dst} are not both IPv${v6 ? 6 : 4} addresses`, layer);
  return { src, dst, v6 };
}

/** Writes an IP header at `off` for `l4Length` bytes of `protocol`; returns the transport offset. */
function writeIp(buf: Buffer, off: number, f: IpFields, a: Addrs, protocol: number, l4Length: number): number {
  const ttl = f.ttl ?? 64;
  const tos = f.tos ?? 0;
  checkRange(ttl, 255, 'ttl', 'ip');
  checkRange(tos, 255, 'tos', 'ip');
  if (a.v6) {
    const flow = f.flowLabel ?? 0;
    checkRange(flow, 0xfffff, 'flowLabel', 'ipv6');
    checkRange(l4Length, 0xffff, 'IPv6 payload length', 'ipv6');
    buf.writeUInt32BE(((6 << 28) | (tos << 20) | flow) >>> 0, off);
    buf.writeUInt16BE(l4Length, off + 4);
    buf[off + 6] = protocol;
    buf[off + 7] = ttl;
    buf.set(a.src, off + 8);
    buf.set(a.dst, off + 24);
    return off + IPV6_HEADER;
  }
  const id = f.ipId ?? 0;
  checkRange(id, 0xffff, 'ipId', 'ipv4');
  checkRange(IPV4_HEADER + l4Length, 0xffff, 'IPv4 total length', 'ipv4');
  buf[off] = 0x45;
  buf[off + 1] = tos;
  buf.writeUInt16BE(IPV4_HEADER + l4Length, off + 2);
  buf.writeUInt16BE(id, off + 4);
  buf.writeUInt16BE((f.df ?? true) ? 0x4000 : 0, off + 6);
  buf[off + 8] = ttl;
  buf[off + 9] = protocol;
  buf.writeUInt16BE(0, off + 10);
  buf.set(a.src, off + 12);
  buf.set(a.dst, off + 16);
  buf.writeUInt16BE(ipv4HeaderChecksum(buf, off), off + 10);
  return off + IPV4_HEADER;
}

function checkPorts(sport: number, dport: number, layer: string): void {
  checkRange(sport, 0xffff, 'sport', layer);
  checkRange(dport, 0xffff, 'dport', layer);
}

function buildTcp(f: TcpFields, v6: boolean): Buffer {
  const a = addresses(f, v6, 'tcp');
  checkPorts(f.sport, f.dport, 'tcp');
  const seq = f.seq ?? 0;
  const ack = f.ack ?? 0;
  const flags = f.flags ?? TcpFlag.ACK.value;
  const window = f.window ?? 65535;
  const urgent = f.urgentPointer ?? 0;
  checkRange(seq, 0xffffffff, 'seq', 'tcp');
  checkRange(ack, 0xffffffff, 'ack', 'tcp');
  checkRange(flags, 0xff, 'flags', 'tcp');
  checkRange(window, 0xffff, 'window', 'tcp');
  checkRange(urgent, 0xffff, 'urgentPointer', 'tcp');
  const opts = f.options ?? new Uint8Array(0);
  const optLen = (opts.length + 3) & ~3;
  if (optLen > 40) throw bad(`${opts.length} bytes of TCP options, at most 40 fit`, 'tcp');
  const payload = f.payload ?? new Uint8Array(0);
  const tcpLen = TCP_HEADER + optLen + payload.length;
  const ipOff = linkHeaderLength(f);
  const ipLen = v6 ? IPV6_HEADER : IPV4_HEADER;
  const buf = Buffer.alloc(ipOff + ipLen + tcpLen);
  writeEthernet(buf, f, v6 ? EtherType.IPV6.value : EtherType.IPV4.value);
  const t = writeIp(buf, ipOff, f, a, IpProtocol.TCP.value, tcpLen);
  buf.writeUInt16BE(f.sport, t);
  buf.writeUInt16BE(f.dport, t + 2);
  buf.writeUInt32BE(seq, t + 4);
  buf.writeUInt32BE(ack, t + 8);
  buf[t + 12] = ((TCP_HEADER + optLen) / 4) << 4;
  buf[t + 13] = flags;
  buf.writeUInt16BE(window, t + 14);
  buf.writeUInt16BE(urgent, t + 18);
  buf.set(opts, t + TCP_HEADER); // padding bytes stay 0 (EOL)
  buf.set(payload, t + TCP_HEADER + optLen);
  buf.writeUInt16BE(transportChecksum(buf, ipOff, IpProtocol.TCP.value, t, buf.length), t + 16);
  return buf;
}

/** Writes a UDP header + payload at `t` (the IP header is already there) and its checksum. */
function finishUdp(buf: Buffer, ipOff: number, t: number, sport: number, dport: number, checksum: boolean, v6: boolean): void {
  buf.writeUInt16BE(sport, t);
  buf.writeUInt16BE(dport, t + 2);
  buf.writeUInt16BE(buf.length - t, t + 4);
  buf.writeUInt16BE(0, t + 6);
  if (!checksum) {
    if (v6) throw bad('UDP over IPv6 must carry a checksum (RFC 8200 8.1)', 'udp');
    return;
  }
  const c = transportChecksum(buf, ipOff, IpProtocol.UDP.value, t, buf.length);
  buf.writeUInt16BE(c === 0 ? 0xffff : c, t + 6); // RFC 768: a computed 0 is sent as all ones
}

function buildUdp(f: UdpFields, v6: boolean): Buffer {
  const a = addresses(f, v6, 'udp');
  checkPorts(f.sport, f.dport, 'udp');
  const payload = f.payload ?? new Uint8Array(0);
  const udpLen = UDP_HEADER + payload.length;
  checkRange(udpLen, 0xffff, 'UDP length', 'udp');
  const ipOff = linkHeaderLength(f);
  const buf = Buffer.alloc(ipOff + (v6 ? IPV6_HEADER : IPV4_HEADER) + udpLen);
  writeEthernet(buf, f, v6 ? EtherType.IPV6.value : EtherType.IPV4.value);
  const t = writeIp(buf, ipOff, f, a, IpProtocol.UDP.value, udpLen);
  buf.set(payload, t + UDP_HEADER);
  finishUdp(buf, ipOff, t, f.sport, f.dport, f.udpChecksum ?? true, v6);
  return buf;
}

/** Ethernet + IPv4 + TCP with correct IPv4 header and TCP checksums. */
export function buildEthernetIpv4Tcp(f: TcpFields): Buffer {
  return buildTcp(f, false);
}

/** Ethernet + IPv6 + TCP with a correct TCP checksum. */
export function buildEthernetIpv6Tcp(f: TcpFields): Buffer {
  return buildTcp(f, true);
}

/** Ethernet + IPv4 + UDP with correct checksums (UDP checksum optional). */
export function buildEthernetIpv4Udp(f: UdpFields): Buffer {
  return buildUdp(f, false);
}

/** Ethernet + IPv6 + UDP with correct checksums. */
export function buildEthernetIpv6Udp(f: UdpFields): Buffer {
  return buildUdp(f, true);
}

/**
 * Ethernet + IPv4 or IPv6 (by the address text) + UDP (to 4791 unless `dport` says otherwise) +
 * the IB packet, with the ICRC filled in over the final IP header (the IPv4 ID and DF bit are
 * inside the ICRC, TTL/TOS are masked) and then the UDP checksum. The IB packet's own errors
 * surface as WireError.
 */
export function buildRoceV2Frame(f: RoceFrameFields): Buffer {
  const v6 = f.src.includes(':');
  const a = addresses(f, v6, 'roce');
  const sport = f.sport ?? 49152;
  const dport = f.dport ?? ROCEV2_UDP_PORT;
  checkPorts(sport, dport, 'roce');
  const ibLen = ibPacketLength(f.ib);
  const udpLen = UDP_HEADER + ibLen;
  checkRange(udpLen, 0xffff, 'UDP length', 'roce');
  const ipOff = linkHeaderLength(f);
  const buf = Buffer.alloc(ipOff + (v6 ? IPV6_HEADER : IPV4_HEADER) + udpLen);
  writeEthernet(buf, f, v6 ? EtherType.IPV6.value : EtherType.IPV4.value);
  const t = writeIp(buf, ipOff, f, a, IpProtocol.UDP.value, udpLen);
  // Ports and length are inside the ICRC, so they go in first; the UDP checksum (masked) comes last.
  buf.writeUInt16BE(sport, t);
  buf.writeUInt16BE(dport, t + 2);
  buf.writeUInt16BE(udpLen, t + 4);
  encodeIbPacket(f.ib, buf, t + UDP_HEADER);
  fillIcrc(buf, ipOff, buf.length);
  finishUdp(buf, ipOff, t, sport, dport, f.udpChecksum ?? true, v6);
  return buf;
}

