/**
 * @smc-r/capture: pcap / pcapng files and packet layers, pure (Buffer in, objects or Buffer out).
 * Read captures, dissect Ethernet/SLL/loopback/raw IP -> IPv4/IPv6 -> TCP/UDP, reassemble TCP
 * streams, build frames (including RoCEv2 with ICRC) and write pcap files.
 */
export { CaptureError, CaptureErrorCode } from './errors.js';
export type { ByteRange, CaptureRecord } from './types.js';
export { LinkType, linkTypeInfo, EtherType, IpProtocol, type LinkTypeName } from './linktype.js';
export {
  readCapture, readPcap, readPcapHeader, PcapWriter,
  PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC, PCAP_HEADER_LENGTH, PCAP_RECORD_HEADER_LENGTH, PCAP_DEFAULT_SNAPLEN,
  type PcapHeader, type PcapWriterOptions,
} from './pcap.js';
export { readPcapng, isPcapng, PcapngBlockType, PCAPNG_BYTE_ORDER_MAGIC, type PcapngInterface } from './pcapng.js';
export {
  dissect, formatTcpFlags, TcpFlag,
  type Packet, type LinkLayer, type EthernetLink, type SllLink, type Sll2Link, type LoopbackLink, type RawLink,
  type VlanTag, type IpHeader, type Ipv4Header, type Ipv6Header, type Ipv6Extension, type TcpHeader, type UdpHeader,
  type ChecksumStatus,
} from './packet.js';
export {
  buildEthernetIpv4Tcp, buildEthernetIpv6Tcp, buildEthernetIpv4Udp, buildEthernetIpv6Udp, buildRoceV2Frame,
  DEFAULT_SRC_MAC, DEFAULT_DST_MAC,
  type EthernetFields, type IpFields, type TcpFields, type UdpFields, type RoceFrameFields,
} from './build.js';
export {
  TcpReassembler,
  type TcpEndpoint, type TcpStream, type TcpDirection, type TcpEvent, type TcpReassemblerOptions,
} from './tcp-stream.js';
export { checksumAdd, checksumFinish, internetChecksum, ipv4HeaderChecksum, pseudoHeaderSum, transportChecksum } from './checksum.js';
export { parseMac, parseIpv4, parseIpv6, parseIp, formatIpv4, formatIpv6, formatMac } from './addr.js';
