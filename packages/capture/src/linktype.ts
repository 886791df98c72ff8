/**
 * Link-layer header types the readers report and the dissector understands (tcpdump.org
 * "LINK-LAYER HEADER TYPES"; the values are the LINKTYPE_* numbers stored in pcap/pcapng files).
 */
export const LinkType = {
  /** BSD loopback: 4-byte address family in the byte order of the capturing host. */
  NULL: { value: 0, name: 'NULL', text: 'BSD loopback' },
  /** Ethernet II / 802.3, optionally with 802.1Q / 802.1ad VLAN tags. */
  ETHERNET: { value: 1, name: 'ETHERNET', text: 'Ethernet' },
  /** Raw IP: the packet starts with an IPv4 or IPv6 header. */
  RAW: { value: 101, name: 'RAW', text: 'Raw IP' },
  /** OpenBSD loopback: 4-byte address family, network byte order. */
  LOOP: { value: 108, name: 'LOOP', text: 'OpenBSD loopback' },
  /** Linux "cooked" capture v1 (tcpdump -i any), 16-byte header. */
  LINUX_SLL: { value: 113, name: 'LINUX_SLL', text: 'Linux cooked capture v1' },
  /** Raw IPv4 only. */
  IPV4: { value: 228, name: 'IPV4', text: 'Raw IPv4' },
  /** Raw IPv6 only. */
  IPV6: { value: 229, name: 'IPV6', text: 'Raw IPv6' },
  /** Linux "cooked" capture v2 (tcpdump >= 4.99 -i any), 20-byte header. */
  LINUX_SLL2: { value: 276, name: 'LINUX_SLL2', text: 'Linux cooked capture v2' },
} as const;
export type LinkTypeName = keyof typeof LinkType;

/** The table row of a link type number, or undefined. */
export function linkTypeInfo(value: number): (typeof LinkType)[LinkTypeName] | undefined {
  for (const info of Object.values(LinkType)) if (info.value === value) return info;
  return undefined;
}

/** EtherTypes the dissector follows. */
export const EtherType = {
  IPV4: { value: 0x0800, name: 'IPV4' },
  ARP: { value: 0x0806, name: 'ARP' },
  VLAN: { value: 0x8100, name: 'VLAN' },
  IPV6: { value: 0x86dd, name: 'IPV6' },
  /** RoCEv1 (GRH + BTH directly on Ethernet); not dissected further. */
  ROCE_V1: { value: 0x8915, name: 'ROCE_V1' },
  QINQ: { value: 0x88a8, name: 'QINQ' },
  /** Pre-standard QinQ outer tag some switches use. */
  QINQ_OLD: { value: 0x9100, name: 'QINQ_OLD' },
} as const;

/** IP protocol numbers the dissector follows (IANA "Assigned Internet Protocol Numbers"). */
export const IpProtocol = {
  HOPOPT: { value: 0, name: 'HOPOPT' },
  ICMP: { value: 1, name: 'ICMP' },
  TCP: { value: 6, name: 'TCP' },
  UDP: { value: 17, name: 'UDP' },
  IPV6_ROUTE: { value: 43, name: 'IPV6_ROUTE' },
  IPV6_FRAG: { value: 44, name: 'IPV6_FRAG' },
  ESP: { value: 50, name: 'ESP' },
  AH: { value: 51, name: 'AH' },
  ICMPV6: { value: 58, name: 'ICMPV6' },
  IPV6_NONXT: { value: 59, name: 'IPV6_NONXT' },
  IPV6_OPTS: { value: 60, name: 'IPV6_OPTS' },
} as const;
