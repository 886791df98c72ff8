/**
 * Dissects one captured frame into its link, IP and TCP/UDP layers: plain objects with absolute
 * offsets into the frame, so payloads are located, never copied. Headers that do not fit the
 * captured bytes throw CaptureError TRUNCATED; impossible values throw MALFORMED. A frame cut by
 * the snap length is dissected as far as it goes and flagged `truncated` (its checksums are then
 * `unverified`). IP fragments are flagged, not reassembled, and their transport layer is not parsed.
 */
import { WireError, formatMac, parseTcpOptions, type TcpOption } from '@smc-r/wire';
import { formatIpv4, formatIpv6 } from './addr.js';
import { ipv4HeaderChecksum, transportChecksum } from './checksum.js';
import { CaptureError, CaptureErrorCode, needBytes } from './errors.js';
import { EtherType, IpProtocol, LinkType } from './linktype.js';
import type { ByteRange } from './types.js';

export interface EthernetLink {
  readonly type: 'ethernet';
  readonly dst: string;
  readonly src: string;
}
/** Linux cooked capture v1 (LINKTYPE_LINUX_SLL). */
export interface SllLink {
  readonly type: 'sll';
  /** 0 to us, 1 broadcast, 2 multicast, 3 to someone else, 4 sent by us. */
  readonly packetType: number;
  /** ARPHRD_* of the interface (1 = Ethernet, 772 = loopback). */
  readonly arphrd: number;
  /** Link-layer source address as colon hex (as many bytes as the header says, at most 8). */
  readonly address: string;
  readonly protocol: number;
}
/** Linux cooked capture v2 (LINKTYPE_LINUX_SLL2). */
export interface Sll2Link {
  readonly type: 'sll2';
  readonly protocol: number;
  readonly ifindex: number;
  readonly arphrd: number;
  readonly packetType: number;
  readonly address: string;
}
/** BSD (LINKTYPE_NULL) or OpenBSD (LINKTYPE_LOOP) loopback. */
export interface LoopbackLink {
  readonly type: 'loopback';
  /** Address family: 2 = IPv4; 10, 24, 28 or 30 = IPv6 depending on the OS. */
  readonly family: number;
}
/** Raw IP: no link-layer header. */
export interface RawLink {
  readonly type: 'raw';
}
export type LinkLayer = EthernetLink | SllLink | Sll2Link | LoopbackLink | RawLink;

/** An 802.1Q / 802.1ad tag. */
export interface VlanTag {
  readonly offset: number;
  readonly tpid: number;
  readonly pcp: number;
  readonly dei: boolean;
  readonly vid: number;
}

export interface Ipv4Header {
  readonly version: 4;
  readonly offset: number;
  readonly headerLength: number;
  readonly dscp: number;
  readonly ecn: number;
  /** As in the header (0 = TSO capture: the captured length is used instead). */
  readonly totalLength: number;
  readonly id: number;
  readonly df: boolean;
  readonly mf: boolean;
  /** Fragment offset in bytes. */
  readonly fragmentOffset: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly checksum: number;
  /** The header checksum verifies. */
  readonly checksumOk: boolean;
  readonly src: string;
  readonly dst: string;
  /** IPv4 options (length 0 when IHL is 5). */
  readonly options: ByteRange;
  /** MF set or a nonzero fragment offset: the transport layer is not parsed. */
  readonly fragment: boolean;
  /** The IP payload as captured. */
  readonly payload: ByteRange;
  /** Offset just past the IP packet by its length field (may lie beyond the captured bytes). */
  readonly end: number;
  /** Fewer bytes were captured than the IP header announces. */
  readonly truncated: boolean;
}

export interface Ipv6Extension {
  /** Its protocol number (0 hop-by-hop, 43 routing, 44 fragment, 51 AH, 60 destination options). */
  readonly type: number;
  readonly offset: number;
  readonly length: number;
}

export interface Ipv6Header {
  readonly version: 6;
  readonly offset: number;
  readonly trafficClass: number;
  readonly flowLabel: number;
  /** As in the header (0 = jumbogram or TSO capture: the captured length is used). */
  readonly payloadLength: number;
  readonly nextHeader: number;
  readonly hopLimit: number;
  readonly src: string;
  readonly dst: string;
  readonly extensions: readonly Ipv6Extension[];
  /** The upper-layer protocol after the extension headers we could skip. */
  readonly protocol: number;
  /** A Fragment header with MF or a nonzero offset was present. */
  readonly fragment: boolean;
  readonly payload: ByteRange;
  readonly end: number;
  readonly truncated: boolean;
}
export type IpHeader = Ipv4Header | Ipv6Header;

/**
 * `good`/`bad`: verified; `none`: IPv4 UDP checksum 0 (not computed by the sender);
 * `unverified`: the segment was not captured whole (snap length, TSO).
 */
export type ChecksumStatus = 'good' | 'bad' | 'none' | 'unverified';

export interface TcpHeader {
  readonly offset: number;
  readonly sport: number;
  readonly dport: number;
  readonly seq: number;
  readonly ack: number;
  /** Data offset in bytes (20-60). */
  readonly headerLength: number;
  /** The 8 flag bits of byte 13 (see TcpFlag). */
  readonly flags: number;
  readonly window: number;
  readonly checksum: number;
  readonly urgentPointer: number;
  /** Parsed with @smc-r/wire's parseTcpOptions; empty when `optionsError` is set. */
  readonly options: readonly TcpOption[];
  /** Why the option block did not parse (a frame with bad options is still dissected). */
  readonly optionsError?: WireError;
  /** The payload as captured. */
  readonly payload: ByteRange;
  /** Payload bytes the segment carries on the wire (more than `payload.length` if truncated). */
  readonly segmentLength: number;
  readonly checksumStatus: ChecksumStatus;
}

export interface UdpHeader {
  readonly offset: number;
  readonly sport: number;
  readonly dport: number;
  /** UDP length field (header + payload). */
  readonly length: number;
  readonly checksum: number;
  readonly payload: ByteRange;
  readonly checksumStatus: ChecksumStatus;
}

/** A dissected frame. */
export interface Packet {
  /** The frame itself (the caller's buffer; payload ranges index into it). */
  readonly data: Buffer;
  readonly linkType: number;
  readonly link: LinkLayer;
  readonly vlans: readonly VlanTag[];
  /** EtherType (or SLL protocol) of the network layer; undefined for raw IP and loopback. */
  readonly etherType?: number;
  readonly ip?: IpHeader;
  readonly tcp?: TcpHeader;
  readonly udp?: UdpHeader;
}

/** TCP header flag bits (RFC 9293 3.1, RFC 3168). */
export const TcpFlag = {
  FIN: { value: 0x01, name: 'FIN' },
  SYN: { value: 0x02, name: 'SYN' },
  RST: { value: 0x04, name: 'RST' },
  PSH: { value: 0x08, name: 'PSH' },
  ACK: { value: 0x10, name: 'ACK' },
  URG: { value: 0x20, name: 'URG' },
  ECE: { value: 0x40, name: 'ECE' },
  CWR: { value: 0x80, name: 'CWR' },
} as const;

/** `SYN,ACK` style text of a flags byte (empty string for none). */
export function formatTcpFlags(flags: number): string {
  return Object.values(TcpFlag).filter((f) => flags & f.value).map((f) => f.name).join(',');
}

const VLAN_TPIDS = new Set<number>([EtherType.VLAN.value, EtherType.QINQ.value, EtherType.QINQ_OLD.value]);

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
function malformed(message: string, offset: number, layer: string): CaptureError {
  return new CaptureError(CaptureErrorCode.MALFORMED, message, offset, layer);
}
function hexAddress(b: Uint8Array, off: number, len: number): string {
  return formatMac(b.subarray(off, off + Math.min(len, 8)));
}

/**
 * Dissects `frame` captured with link type `linkType` (LinkType values). Throws CaptureError
 * UNSUPPORTED_LINK_TYPE, TRUNCATED or MALFORMED; never anything else.
 */
export function dissect(frame: Uint8Array, linkType: number): Packet {
  const data = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  const end = data.length;
  const vlans: VlanTag[] = [];
  let link: LinkLayer;
  let etherType: number | undefined;
  let l3 = 0;
  /** IP version to expect when there is no EtherType (raw IP, loopback); 0 = read the nibble. */
  let ipVersion: 0 | 4 | 6 | -1 = -1;

  /** Follows VLAN tags from EtherType `type`, whose next header starts at `p`. */
  const followTags = (type: number, p: number): void => {
    let t = type;
    while (VLAN_TPIDS.has(t)) {
      needBytes(end, p, 4, 'vlan');
      const tci = u16(data, p);
      vlans.push({ offset: p - 2, tpid: t, pcp: tci >> 13, dei: (tci & 0x1000) !== 0, vid: tci & 0x0fff });
      t = u16(data, p + 2);
      p += 4;
    }
    etherType = t;
    l3 = p;
    ipVersion = t === EtherType.IPV4.value ? 4 : t === EtherType.IPV6.value ? 6 : -1;
  };

  switch (linkType) {
    case LinkType.ETHERNET.value:
      needBytes(end, 0, 14, 'ethernet');
      link = { type: 'ethernet', dst: formatMac(data.subarray(0, 6)), src: formatMac(data.subarray(6, 12)) };
      followTags(u16(data, 12), 14);
      break;
    case LinkType.LINUX_SLL.value: {
      needBytes(end, 0, 16, 'sll');
      link = { type: 'sll', packetType: u16(data, 0), arphrd: u16(data, 2), address: hexAddress(data, 6, u16(data, 4)), protocol: u16(data, 14) };
      followTags(u16(data, 14), 16);
      break;
    }
    case LinkType.LINUX_SLL2.value: {
      needBytes(end, 0, 20, 'sll2');
      link = { type: 'sll2', protocol: u16(data, 0), ifindex: u32(data, 4), arphrd: u16(data, 8), packetType: data[10]!, address: hexAddress(data, 12, data[11]!) };
      followTags(u16(data, 0), 20);
      break;
    }
    case LinkType.NULL.value:
    case LinkType.LOOP.value: {
      needBytes(end, 0, 4, 'loopback');
      let family = linkType === LinkType.LOOP.value ? u32(data, 0) : data.readUInt32LE(0);
      if (linkType === LinkType.NULL.value && family > 0xffff) family = u32(data, 0); // written big-endian
      link = { type: 'loopback', family };
      l3 = 4;
      ipVersion = family === 2 ? 4 : family === 10 || family === 24 || family === 28 || family === 30 ? 6 : -1;
      break;
    }
    case LinkType.RAW.value:
      link = { type: 'raw' };
      ipVersion = 0;
      break;
    case LinkType.IPV4.value:
      link = { type: 'raw' };
      ipVersion = 4;
      break;
    case LinkType.IPV6.value:
      link = { type: 'raw' };
      ipVersion = 6;
      break;
    default:
      throw new CaptureError(CaptureErrorCode.UNSUPPORTED_LINK_TYPE, `link type ${linkType} is not dissected`, 0, 'link');
  }

  const base = { data, linkType, link, vlans, ...(etherType !== undefined ? { etherType } : {}) };
  if (ipVersion === -1) return base;
  if (ipVersion === 0) {
    needBytes(end, l3, 1, 'ip');
    const v = data[l3]! >> 4;
    if (v !== 4 && v !== 6) throw malformed(`IP version ${v}`, l3, 'ip');
    ipVersion = v;
  }
  const ip = ipVersion === 4 ? dissectIpv4(data, l3) : dissectIpv6(data, l3);
  if (ip.fragment) return { ...base, ip };
  const ipTotalMissing = ip.version === 4 ? ip.totalLength === 0 : ip.payloadLength === 0;
  if (ip.protocol === IpProtocol.TCP.value) return { ...base, ip, tcp: dissectTcp(data, ip, ipTotalMissing) };
  if (ip.protocol === IpProtocol.UDP.value) return { ...base, ip, udp: dissectUdp(data, ip, ipTotalMissing) };
  return { ...base, ip };
}

function dissectIpv4(b: Buffer, off: number): Ipv4Header {
  needBytes(b.length, off, 20, 'ipv4');
  const version = b[off]! >> 4;
  if (version !== 4) throw malformed(`version ${version} in an IPv4 header`, off, 'ipv4');
  const headerLength = (b[off]! & 0x0f) * 4;
  if (headerLength < 20) throw malformed(`header length ${headerLength} < 20`, off, 'ipv4');
  needBytes(b.length, off, headerLength, 'ipv4');
  const totalLength = u16(b, off + 2);
  const length = totalLength === 0 ? b.length - off : totalLength;
  if (length < headerLength) throw malformed(`total length ${totalLength} < header length ${headerLength}`, off + 2, 'ipv4');
  const ipEnd = off + length;
  const capEnd = Math.min(ipEnd, b.length);
  const frag = u16(b, off + 6);
  const mf = (frag & 0x2000) !== 0;
  const fragmentOffset = (frag & 0x1fff) * 8;
  const checksum = u16(b, off + 10);
  return {
    version: 4,
    offset: off,
    headerLength,
    dscp: b[off + 1]! >> 2,
    ecn: b[off + 1]! & 3,
    totalLength,
    id: u16(b, off + 4),
    df: (frag & 0x4000) !== 0,
    mf,
    fragmentOffset,
    ttl: b[off + 8]!,
    protocol: b[off + 9]!,
    checksum,
    checksumOk: ipv4HeaderChecksum(b, off) === checksum,
    src: formatIpv4(b, off + 12),
    dst: formatIpv4(b, off + 16),
    options: { offset: off + 20, length: headerLength - 20 },
    fragment: mf || fragmentOffset !== 0,
    payload: { offset: off + headerLength, length: capEnd - off - headerLength },
    end: ipEnd,
    truncated: ipEnd > b.length,
  };
}

function dissectIpv6(b: Buffer, off: number): Ipv6Header {
  needBytes(b.length, off, 40, 'ipv6');
  const version = b[off]! >> 4;
  if (version !== 6) throw malformed(`version ${version} in an IPv6 header`, off, 'ipv6');
  const payloadLength = u16(b, off + 4);
  const ipEnd = payloadLength === 0 ? b.length : off + 40 + payloadLength;
  const capEnd = Math.min(ipEnd, b.length);
  const nextHeader = b[off + 6]!;
  const extensions: Ipv6Extension[] = [];
  let nh = nextHeader;
  let p = off + 40;
  let fragment = false;
  for (;;) {
    let len: number;
    if (nh === IpProtocol.HOPOPT.value || nh === IpProtocol.IPV6_ROUTE.value || nh === IpProtocol.IPV6_OPTS.value) {
      if (p + 2 > ipEnd) throw malformed('extension header runs past the packet', p, 'ipv6');
      needBytes(capEnd, p, 2, 'ipv6');
      len = (b[p + 1]! + 1) * 8;
    } else if (nh === IpProtocol.AH.value) {
      if (p + 2 > ipEnd) throw malformed('extension header runs past the packet', p, 'ipv6');
      needBytes(capEnd, p, 2, 'ipv6');
      len = (b[p + 1]! + 2) * 4;
    } else if (nh === IpProtocol.IPV6_FRAG.value) {
      len = 8;
    } else {
      break;
    }
    if (p + len > ipEnd) throw malformed(`extension header ${nh} of ${len} bytes runs past the packet`, p, 'ipv6');
    needBytes(capEnd, p, len, 'ipv6');
    if (nh === IpProtocol.IPV6_FRAG.value) {
      const fo = u16(b, p + 2);
      if ((fo & 0xfff8) !== 0 || (fo & 1) !== 0) fragment = true;
    }
    extensions.push({ type: nh, offset: p, length: len });
    nh = b[p]!;
    p += len;
  }
  return {
    version: 6,
    offset: off,
    trafficClass: (u16(b, off) >> 4) & 0xff,
    flowLabel: u32(b, off) & 0xfffff,
    payloadLength,
    nextHeader,
    hopLimit: b[off + 7]!,
    src: formatIpv6(b, off + 8),
    dst: formatIpv6(b, off + 24),
    extensions,
    protocol: nh,
    fragment,
    payload: { offset: p, length: capEnd - p },
    end: ipEnd,
    truncated: ipEnd > b.length,
  };
}

function dissectTcp(b: Buffer, ip: IpHeader, tso: boolean): TcpHeader {
  const off = ip.payload.offset;
  const capEnd = Math.min(ip.end, b.length);
  if (ip.end - off < 20) throw malformed(`${ip.end - off} bytes cannot hold a TCP header`, off, 'tcp');
  needBytes(capEnd, off, 20, 'tcp');
  const headerLength = (b[off + 12]! >> 4) * 4;
  if (headerLength < 20) throw malformed(`data offset ${headerLength} < 20`, off + 12, 'tcp');
  if (headerLength > ip.end - off) throw malformed(`data offset ${headerLength} exceeds the ${ip.end - off}-byte segment`, off + 12, 'tcp');
  needBytes(capEnd, off, headerLength, 'tcp');
  let options: readonly TcpOption[] = [];
  let optionsError: WireError | undefined;
  try {
    options = parseTcpOptions(b, off + 20, off + headerLength);
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    optionsError = e;
  }
  const dataOff = off + headerLength;
  const status: ChecksumStatus = ip.truncated || tso ? 'unverified' : transportChecksum(b, ip.offset, IpProtocol.TCP.value, off, ip.end) === 0 ? 'good' : 'bad';
  return {
    offset: off,
    sport: u16(b, off),
    dport: u16(b, off + 2),
    seq: u32(b, off + 4),
    ack: u32(b, off + 8),
    headerLength,
    flags: b[off + 13]!,
    window: u16(b, off + 14),
    checksum: u16(b, off + 16),
    urgentPointer: u16(b, off + 18),
    options,
    ...(optionsError ? { optionsError } : {}),
    payload: { offset: dataOff, length: capEnd - dataOff },
    segmentLength: ip.end - dataOff,
    checksumStatus: status,
  };
}

function dissectUdp(b: Buffer, ip: IpHeader, tso: boolean): UdpHeader {
  const off = ip.payload.offset;
  if (ip.end - off < 8) throw malformed(`${ip.end - off} bytes cannot hold a UDP header`, off, 'udp');
  needBytes(b.length, off, 8, 'udp');
  const length = u16(b, off + 4);
  if (length < 8) throw malformed(`UDP length ${length} < 8`, off + 4, 'udp');
  if (length > ip.end - off) throw malformed(`UDP length ${length} exceeds the ${ip.end - off}-byte IP payload`, off + 4, 'udp');
  const udpEnd = off + length;
  const capEnd = Math.min(udpEnd, b.length);
  const checksum = u16(b, off + 6);
  let status: ChecksumStatus;
  if (checksum === 0 && ip.version === 4) status = 'none';
  else if (udpEnd > b.length || tso) status = 'unverified';
  else status = transportChecksum(b, ip.offset, IpProtocol.UDP.value, off, udpEnd) === 0 ? 'good' : 'bad';
  return {
    offset: off,
    sport: u16(b, off),
    dport: u16(b, off + 2),
    length,
    checksum,
    payload: { offset: off + 8, length: capEnd - off - 8 },
    checksumStatus: status,
  };
}
