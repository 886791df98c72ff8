/**
 * SMC Decline / fallback reason codes (spec section 4): one registry that the CLC codec, the engine,
 * `smcr ss`-style output and docs/reason-codes.md all read.
 *
 * A reason code is a 32-bit value. The first byte is a class (01 resources, 02 timeouts,
 * 03 configuration or capability, 04 synchronisation, 05 peer decline, 09 internal); the rest is detail.
 * Each side of a connection keeps two of them: why it fell back itself, and the code the peer put in a
 * Decline ("peer diagnosis"). The texts below are our own words; names and values are the kernel's
 * (`SMC_CLC_DECL_*`, spec 4.2) and the short names are those `smcr -d stats` prints (smc-tools 1.8.5).
 */
import { SmcError } from './errors.js';

/**
 * How a code relates to the wire (spec 4.2 column "Sent?"):
 * - `sent`: appears in the peer diagnosis field of a CLC Decline.
 * - `local`: only recorded as this side's fallback reason; no Decline carries it (see `wireNote` for the
 *   one exception, PEERNOSMC).
 * - `sent-legacy`: was sent by older kernels; current ones never produce it, but peers may still send it.
 */
export type ReasonWire = 'sent' | 'local' | 'sent-legacy';

/** Where the code is defined: upstream Linux, or only the Alibaba (OpenAnolis) kernel. */
export type ReasonOrigin = 'upstream' | 'alibaba';

/** One row of the reason-code registry. */
export interface ReasonEntry {
  /** The 32-bit code as it appears in the Decline's peer diagnosis field (BE32 on the wire). */
  readonly code: number;
  /** Kernel constant name, e.g. `SMC_CLC_DECL_NOSMCDEV`. */
  readonly name: string;
  /** Name `smcr -d stats` prints; `undefined` where smc-tools 1.8.5 prints `[unknown]`. */
  readonly short: string | undefined;
  /** One short phrase, used by {@link describeReason}. */
  readonly meaning: string;
  /** The likely cause, for humans reading a fallback. */
  readonly cause: string;
  /** What to do about it. */
  readonly remedy: string;
  readonly wire: ReasonWire;
  /** Exceptions to `wire` (PEERNOSMC) and wire details (SYNCERR's out-of-sync flag). */
  readonly wireNote?: string;
  readonly origin: ReasonOrigin;
  /**
   * Whether this userspace SMC-R stack (riding on kernel TCP) can produce the code itself. Codes with
   * `false` are only ever received from peers; `userspaceNote` says why.
   */
  readonly userspace: boolean;
  /** Why `userspace` is false, or the condition under which it is true. */
  readonly userspaceNote?: string;
}

/**
 * Every code of spec 4.2, keyed by the kernel name without its `SMC_CLC_DECL_` prefix, in numeric order.
 * Use `SmcReason.PEERDECL.code` etc. in code; use {@link reasonByCode} to look a received value up.
 */
export const SmcReason = {
  MEM: {
    code: 0x01010000,
    name: 'SMC_CLC_DECL_MEM',
    short: 'MEMORY',
    meaning: 'out of memory for SMC resources',
    cause: 'Allocating or registering the send buffer, the RMB or the link group failed: memory pressure, a low locked-memory limit, or the RDMA device ran out of memory regions or queue pairs.',
    remedy: 'Check free memory and RLIMIT_MEMLOCK (ulimit -l), use smaller buffers or fewer connections, and check the RDMA device resource limits.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
    userspaceNote: 'Registering memory with the RNIC pins pages, so a low RLIMIT_MEMLOCK is the usual userspace trigger.',
  },
  TIMEOUT_CL: {
    code: 0x02010000,
    name: 'SMC_CLC_DECL_TIMEOUT_CL',
    short: 'TIMEOUT_CL',
    meaning: 'CONFIRM_LINK timed out',
    cause: 'On first contact the LLC CONFIRM_LINK request (awaited by the client) or response (awaited by the server) did not arrive over the new RDMA link, or could not be sent. RoCE traffic is usually not getting through: wrong GID or MAC, VLAN, firewall, lossy fabric or MTU mismatch.',
    remedy: 'Test RDMA connectivity between the same GIDs (rping, ib_send_bw), and check the GID index, VLAN and MTU on both hosts.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  TIMEOUT_AL: {
    code: 0x02020000,
    name: 'SMC_CLC_DECL_TIMEOUT_AL',
    short: 'TIMEOUT_AL',
    meaning: 'ADD_LINK timed out (old kernels)',
    cause: 'Kernels up to 5.7 required an ADD_LINK exchange during first contact, and it did not finish in time.',
    remedy: 'Same checks as TIMEOUT_CL; newer kernels treat the second link as optional, so updating the peer removes this failure.',
    wire: 'sent-legacy',
    origin: 'upstream',
    userspace: false,
    userspaceNote: 'Current kernels and this stack never produce it (the second link is optional); it only arrives in a Decline from a peer running Linux 5.7 or older.',
  },
  CNFERR: {
    code: 0x03000000,
    name: 'SMC_CLC_DECL_CNFERR',
    short: 'CNF_ERR',
    meaning: 'SMC configuration error',
    cause: 'The local side could not build its Proposal or link parameters, for example it could not work out the IP prefix of the interface or find a usable GID.',
    remedy: 'Check the IP configuration of the interface and the GID table of the RDMA device (RoCEv2 needs an IPv4-mapped GID for the interface address).',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  PEERNOSMC: {
    code: 0x03010000,
    name: 'SMC_CLC_DECL_PEERNOSMC',
    short: 'PEER_NO_SMC',
    meaning: 'peer did not offer SMC',
    cause: 'The SYN or SYN-ACK carried no SMC TCP option: the peer is not SMC-enabled, a middlebox stripped the option, or a busy Linux listener (limit_smc_hs) left it out.',
    remedy: 'Enable SMC on the peer (smc_run, AF_SMC or IPPROTO_SMC) and check that nothing on the path strips unknown TCP options.',
    wire: 'local',
    wireNote: 'Exception: a Linux server also sends it in a Decline when a Proposal offers neither v1 nor any v2 mode it can use.',
    origin: 'upstream',
    userspace: true,
    userspaceNote: 'We see the peer\'s option in the captured SYN or SYN-ACK (eBPF sock_ops or TCP_SAVED_SYN).',
  },
  ACTIVE: {
    code: 0x03010001,
    name: 'SMC_CLC_DECL_ACTIVE',
    short: undefined,
    meaning: 'local policy chose plain TCP',
    cause: 'Alibaba kernels: the per-socket negotiator (a BPF policy) refused SMC for this connection, so the SMC option was never sent.',
    remedy: 'Intended behaviour; review the negotiation policy if SMC was expected towards this destination.',
    wire: 'local',
    origin: 'alibaba',
    userspace: true,
    userspaceNote: 'We may record it when our own per-destination policy leaves the option out (spec 2.3); it never goes on the wire.',
  },
  IPSEC: {
    code: 0x03020000,
    name: 'SMC_CLC_DECL_IPSEC',
    short: 'IPSEC',
    meaning: 'connection is under an IPsec policy',
    cause: 'The TCP socket has an IPsec (xfrm) policy. SMC would move the data onto RDMA, outside IPsec protection, so the kernel refuses.',
    remedy: 'Expected for IPsec-protected traffic: exclude such destinations from SMC, or remove the policy if the protection is not needed.',
    wire: 'sent',
    origin: 'upstream',
    userspace: false,
    userspaceNote: 'Node exposes no per-socket xfrm policy and reading the system policy database needs CAP_NET_ADMIN, so we cannot detect IPsec ourselves; we only receive it from kernel peers. Exclude IPsec-protected destinations from SMC by policy instead.',
  },
  NOSMCDEV: {
    code: 0x03030000,
    name: 'SMC_CLC_DECL_NOSMCDEV',
    short: 'NOSMCDEV',
    meaning: 'no usable SMC device',
    cause: 'Neither an RDMA (RoCE) device nor an ISM device can serve the interface that carries the TCP connection: none present, port down, or no PNET ID / GID match.',
    remedy: 'Check `smcr device` or `rdma link`, the port state, and the PNET table or GID mapping between the network interface and the RDMA device.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  NOSMCDDEV: {
    code: 0x03030001,
    name: 'SMC_CLC_DECL_NOSMCDDEV',
    short: 'NOSMCDDEV',
    meaning: 'no usable SMC-D (ISM) device',
    cause: 'SMC-D was the only mode left but no ISM device fits; ISM exists only on IBM Z (or as the loopback ISM device of recent kernels).',
    remedy: 'Offer SMC-R as well, or configure ISM on both ends.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
    userspaceNote: 'Only as a server answering a Proposal that offers SMC-D alone: we never have an ISM device, and a Linux server without one answers the same way.',
  },
  NOSMCRDEV: {
    code: 0x03030002,
    name: 'SMC_CLC_DECL_NOSMCRDEV',
    short: 'NOSMCRDEV',
    meaning: 'no usable SMC-R (RoCE) device',
    cause: 'No active RDMA port belongs to the network interface of the TCP connection: no PNET ID match, port down, or no GID for the interface address.',
    remedy: 'Bring the RoCE port up, check the GID table for the interface addresses, and the PNET ID configuration where one is used.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  NOISM2SUPP: {
    code: 0x03030003,
    name: 'SMC_CLC_DECL_NOISM2SUPP',
    short: 'NOISM2SUPP',
    meaning: 'no ISMv2 support',
    cause: 'The peer offered SMC-Dv2 but the local hardware has no ISMv2.',
    remedy: 'Use SMC-R or SMC-Dv1; ISMv2 needs IBM z15 or later.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
    userspaceNote: 'A server answers it to a Proposal that offers only SMC-Dv2 (ISMv2): we have no ISM device, so our server declines such Proposals with it.',
  },
  NOV2EXT: {
    code: 0x03030004,
    name: 'SMC_CLC_DECL_NOV2EXT',
    short: 'NOV2EXT',
    meaning: 'v2 Proposal without the v2 extension',
    cause: 'The client\'s Proposal offered a v2 mode but did not carry the SMCv2 extension the server needs to evaluate it.',
    remedy: 'A defect or incompatibility in the client; update it.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  NOV2DEXT: {
    code: 0x03030005,
    name: 'SMC_CLC_DECL_NOV2DEXT',
    short: 'NOV2DEXT',
    meaning: 'Proposal without the SMC-Dv2 extension',
    cause: 'The client offered SMC-Dv2 but left out the SMC-Dv2 extension (its ISM GIDs and CHIDs).',
    remedy: 'A defect in the client; update it or disable SMC-Dv2 there.',
    wire: 'sent',
    origin: 'upstream',
    userspace: false,
    userspaceNote: 'SMC-D only: we never evaluate SMC-Dv2 offers, so we only receive it.',
  },
  NOSEID: {
    code: 0x03030006,
    name: 'SMC_CLC_DECL_NOSEID',
    short: 'NOSEID',
    meaning: 'peer sent no system EID',
    cause: 'The client offered SMC-Dv2 without a system EID, which SMC-Dv2 requires.',
    remedy: 'Enable the system EID on the client (`smcd seid enable`) or use SMC-R.',
    wire: 'sent',
    origin: 'upstream',
    userspace: false,
    userspaceNote: 'SMC-D only: we never evaluate SMC-Dv2 offers, so we only receive it.',
  },
  NOSMCD2DEV: {
    code: 0x03030007,
    name: 'SMC_CLC_DECL_NOSMCD2DEV',
    short: 'NOSMCD2DEV',
    meaning: 'no usable SMC-Dv2 device',
    cause: 'SMC-Dv2 was offered but no ISMv2 device could serve it: none present, no CHID match, or initialisation failed.',
    remedy: 'Check the ISM devices and CHIDs on both IBM Z hosts, or use SMC-R.',
    wire: 'sent',
    origin: 'upstream',
    userspace: false,
    userspaceNote: 'SMC-D only: we never search ISMv2 devices (an SMC-R-only server answers a D-only Proposal with NOSMCDDEV or NOSMCDEV), so we only receive it.',
  },
  NOUEID: {
    code: 0x03030008,
    name: 'SMC_CLC_DECL_NOUEID',
    short: undefined,
    meaning: 'peer sent no user EID',
    cause: 'The client offered SMC-Rv2 without any user-defined EID; SMC-Rv2 needs at least one EID that both hosts share.',
    remedy: 'Add the same UEID on both hosts (`smcr ueid add <EID>`).',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  RELEASEERR: {
    code: 0x03030009,
    name: 'SMC_CLC_DECL_RELEASEERR',
    short: undefined,
    meaning: 'SMC release negotiation failed',
    cause: 'During v2.1 negotiation the release echoed in the client\'s Confirm differs from the release the server chose.',
    remedy: 'A defect in the peer; update it (v2.1 arrived in Linux 6.7).',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  MAXCONNERR: {
    code: 0x0303000a,
    name: 'SMC_CLC_DECL_MAXCONNERR',
    short: undefined,
    meaning: 'max-connections negotiation failed',
    cause: 'The negotiated connections-per-link-group limit is below 16, or the Confirm did not echo the value the server sent.',
    remedy: 'Raise net.smc.smcr_max_conns_per_lgr (16..255) on the side that set it too low; an echo mismatch is a peer defect.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  MAXLINKERR: {
    code: 0x0303000b,
    name: 'SMC_CLC_DECL_MAXLINKERR',
    short: undefined,
    meaning: 'max-links negotiation failed',
    cause: 'The negotiated links-per-link-group limit is outside 1..2, or the Confirm did not echo the value the server sent.',
    remedy: 'Check net.smc.smcr_max_links_per_lgr (1..2) on both hosts; an echo mismatch is a peer defect.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  VENDORERR: {
    code: 0x0303000c,
    name: 'SMC_CLC_DECL_VENDORERR',
    short: undefined,
    meaning: 'vendor/feature negotiation failed',
    cause: 'Alibaba kernels: the vendor option bits in the Confirm (RQ credits, RDMA write with immediate) do not echo those of the Accept. Unmerged upstream patches reused this value for other feature-negotiation failures, so a non-Alibaba peer may mean something else by it.',
    remedy: 'Update the peer; if it is not an Alibaba kernel, read the code as a generic feature-negotiation failure.',
    wire: 'sent',
    origin: 'alibaba',
    userspace: false,
    userspaceNote: 'Only a server that negotiated the Alibaba vendor options produces it; we do not offer them (spec 12 rows 8 and 9), so we only receive it.',
  },
  MODEUNSUPP: {
    code: 0x03040000,
    name: 'SMC_CLC_DECL_MODEUNSUPP',
    short: 'MODEUNSUPP',
    meaning: 'Accept chose a mode that was not offered',
    cause: 'The server\'s Accept selected a mode (SMC-R or SMC-D, v1 or v2) that the client\'s Proposal did not offer.',
    remedy: 'A defect in the server; update it.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  RMBE_EC: {
    code: 0x03050000,
    name: 'SMC_CLC_DECL_RMBE_EC',
    short: 'RMBE_EC',
    meaning: 'peer wants RMBE eye-catchers',
    cause: 'The peer\'s CONFIRM_LINK did not declare the no-eye-catcher mode; Linux only supports RMBEs without eye-catchers.',
    remedy: 'Configure the peer (an RFC 7609 implementation such as z/OS) to use RMBEs without eye-catchers.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  OPTUNSUPP: {
    code: 0x03060000,
    name: 'SMC_CLC_DECL_OPTUNSUPP',
    short: 'OPTUNSUPP',
    meaning: 'socket option incompatible with SMC',
    cause: 'The application used a TCP option or send flag SMC cannot honour (the TCP Fast Open variants) before connecting, so the socket switched to plain TCP.',
    remedy: 'Do not enable TCP Fast Open on sockets that should use SMC.',
    wire: 'local',
    origin: 'upstream',
    userspace: true,
    userspaceNote: 'Only if our socket API accepts a Fast Open request and falls back instead of refusing it; local only.',
  },
  DIFFPREFIX: {
    code: 0x03070000,
    name: 'SMC_CLC_DECL_DIFFPREFIX',
    short: 'DIFFPREFIX',
    meaning: 'peer is in a different IP subnet',
    cause: 'SMC-Rv1 (and SMC-Dv1) need both hosts in one IP subnet, and none of the client\'s prefixes matches the server\'s interface.',
    remedy: 'Put both hosts in the same subnet, or use SMC-Rv2 (routable RoCEv2) with a shared UEID.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  GETVLANERR: {
    code: 0x03080000,
    name: 'SMC_CLC_DECL_GETVLANERR',
    short: 'GETVLANERR',
    meaning: 'cannot determine the VLAN',
    cause: 'Looking up the VLAN id of the network device that carries the TCP connection failed (unusual or deeply stacked devices).',
    remedy: 'Check the interface stack (VLAN over bond over ...) and use a simpler device layout for SMC traffic.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
    userspaceNote: 'We read the VLAN of the netdev from sysfs / rtnetlink; a failed lookup maps here.',
  },
  ISMVLANERR: {
    code: 0x03090000,
    name: 'SMC_CLC_DECL_ISMVLANERR',
    short: 'ISMVLANERR',
    meaning: 'cannot register the VLAN on the ISM device',
    cause: 'The ISM device refused the VLAN id of the connection.',
    remedy: 'Check the VLAN configuration and limits of the ISM device (IBM Z).',
    wire: 'sent',
    origin: 'upstream',
    userspace: false,
    userspaceNote: 'SMC-D only: we have no ISM device, so we only receive it.',
  },
  NOACTLINK: {
    code: 0x030a0000,
    name: 'SMC_CLC_DECL_NOACTLINK',
    short: 'NOACTLINK',
    meaning: 'no active link in the link group',
    cause: 'The reused link group had no link in the active state to carry the new connection (links going down or being recovered).',
    remedy: 'Usually transient; if it persists, check the RoCE port state and the link groups (`smcr linkgroup`).',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  NOSRVLINK: {
    code: 0x030b0000,
    name: 'SMC_CLC_DECL_NOSRVLINK',
    short: 'NOSRVLINK',
    meaning: 'link named by the Accept not found',
    cause: 'The Accept names a link (QP number, GID, MAC) the client\'s link group does not have: the two sides see the link group differently.',
    remedy: 'Usually transient after link failures; if it persists, close the SMC connections between the two hosts so the link group is rebuilt.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  VERSMISMAT: {
    code: 0x030c0000,
    name: 'SMC_CLC_DECL_VERSMISMAT',
    short: 'VERSMISMAT',
    meaning: 'SMC version mismatch',
    cause: 'The peers share no SMC version and mode, for example one offers only v2 and the other only v1.',
    remedy: 'Enable a common mode: keep v1 enabled, or update the older side for v2.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  MAX_DMB: {
    code: 0x030d0000,
    name: 'SMC_CLC_DECL_MAX_DMB',
    short: 'MAX_DMB',
    meaning: 'SMC-D buffer limit reached',
    cause: 'The ISM device has no free DMB for another connection.',
    remedy: 'Use fewer SMC-D connections at a time, or retry later.',
    wire: 'sent',
    origin: 'upstream',
    userspace: false,
    userspaceNote: 'SMC-D only: we have no ISM device, so we only receive it.',
  },
  NOROUTE: {
    code: 0x030e0000,
    name: 'SMC_CLC_DECL_NOROUTE',
    short: undefined,
    meaning: 'no route to the peer\'s RoCE address',
    cause: 'SMC-Rv2: the route lookup towards the peer\'s RoCEv2 IP address (taken from its GID) failed.',
    remedy: 'Add a route between the RoCE interfaces, or check which GID the peer advertises.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  NOINDIRECT: {
    code: 0x030f0000,
    name: 'SMC_CLC_DECL_NOINDIRECT',
    short: undefined,
    meaning: 'peer claimed an indirect path',
    cause: 'SMC-Rv2: the server said the client is reached through a gateway, but the client\'s routing shows the server directly attached; the two routing views disagree.',
    remedy: 'Make routing symmetric (same subnet masks and routes on both hosts).',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  SYNCERR: {
    code: 0x04000000,
    name: 'SMC_CLC_DECL_SYNCERR',
    short: 'SYNCERR',
    meaning: 'link group out of sync',
    cause: 'The peers disagree about an existing link group (for example the server reuses one the client no longer has); the server tears that link group down.',
    remedy: 'Usually clears itself once the stale link group is gone; repeated occurrences point to link failures or a peer defect.',
    wire: 'sent',
    wireNote: 'The Decline also carries the out-of-sync flag (0x08 in header byte 7).',
    origin: 'upstream',
    userspace: true,
  },
  PEERDECL: {
    code: 0x05000000,
    name: 'SMC_CLC_DECL_PEERDECL',
    short: 'PEERDECL',
    meaning: 'peer declined SMC',
    cause: 'The peer sent a Decline; its own reason is the peer diagnosis (the code after the slash in smcss output).',
    remedy: 'Look up the peer\'s code.',
    wire: 'local',
    origin: 'upstream',
    userspace: true,
  },
  INTERR: {
    code: 0x09990000,
    name: 'SMC_CLC_DECL_INTERR',
    short: undefined,
    meaning: 'internal error',
    cause: 'An unexpected failure inside the SMC stack, for example creating or modifying a queue pair failed.',
    remedy: 'Check the kernel log (kernel peers) or our debug output (NODE_DEBUG=smcr); report it if it is reproducible.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  ERR_RTOK: {
    code: 0x09990001,
    name: 'SMC_CLC_DECL_ERR_RTOK',
    short: undefined,
    meaning: 'cannot store the peer\'s buffer token',
    cause: 'Recording the rkey and address of the peer\'s RMB failed: the token table of the link group is full or the values are unusable.',
    remedy: 'Use fewer connections per link group; otherwise suspect a peer defect.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  ERR_RDYLNK: {
    code: 0x09990002,
    name: 'SMC_CLC_DECL_ERR_RDYLNK',
    short: undefined,
    meaning: 'RDMA link could not be made ready',
    cause: 'Moving the queue pair to a ready state (INIT, RTR) or posting its receive buffers failed.',
    remedy: 'Check the RDMA device state and its resource limits (QPs, CQs, locked memory).',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  ERR_REGBUF: {
    code: 0x09990003,
    name: 'SMC_CLC_DECL_ERR_REGBUF',
    short: undefined,
    meaning: 'buffer registration failed',
    cause: 'Registering a buffer with the RDMA device, or the CONFIRM_RKEY exchange announcing it, failed (older kernels name the code ERR_REGRMB).',
    remedy: 'Check locked-memory and memory-region limits, and the health of every link in the link group.',
    wire: 'sent',
    origin: 'upstream',
    userspace: true,
  },
  CREDITSERR: {
    code: 0x09990004,
    name: 'SMC_CLC_DECL_CREDITSERR',
    short: undefined,
    meaning: 'receive-queue credit setup failed',
    cause: 'Alibaba kernels: announcing the initial receive-queue credits over the new link failed.',
    remedy: 'A problem on the Alibaba peer: check its link health, or disable credit-based flow control there.',
    wire: 'sent',
    origin: 'alibaba',
    userspace: false,
    userspaceNote: 'Only with Alibaba credit-based flow control, which we do not enable (spec 12 row 9), so we only receive it.',
  },
} as const satisfies Record<string, ReasonEntry>;

/** Key of {@link SmcReason} (`'NOSMCDEV'`, ...). */
export type SmcReasonKey = keyof typeof SmcReason;
/** Union of the numeric codes in {@link SmcReason}. */
export type SmcReasonCode = (typeof SmcReason)[SmcReasonKey]['code'];

/** Every registry entry, in numeric order. */
export const REASON_LIST: readonly ReasonEntry[] = Object.freeze(Object.values(SmcReason));

const BY_CODE: ReadonlyMap<number, ReasonEntry> = new Map(REASON_LIST.map((e) => [e.code, e]));

/** A code used by pre-2018 kernels (spec 4.3): decode and print only, never sent by us. */
export interface LegacyReasonEntry {
  readonly code: number;
  /** Kernel constant name of the time. */
  readonly name: string;
  readonly meaning: string;
  /** What became of it. */
  readonly today: string;
}

/**
 * The codes of the 2016 kernel that differ from today's (spec 4.3). `0x03030000` meant IPsec then and
 * means NOSMCDEV now; lookups prefer the current meaning.
 */
export const LEGACY_REASONS: readonly LegacyReasonEntry[] = Object.freeze([
  { code: 0x02000000, name: 'SMC_CLC_DECL_TIMEOUT', meaning: 'timeout (old kernels)', today: 'split into TIMEOUT_CL (0x02010000) and TIMEOUT_AL (0x02020000)' },
  { code: 0x02040000, name: 'SMC_CLC_DECL_TCL', meaning: 'timeout waiting for the QP confirmation (old kernels)', today: 'roughly TIMEOUT_CL (0x02010000)' },
  { code: 0x03030000, name: 'SMC_CLC_DECL_IPSEC', meaning: 'IPsec in use (old value)', today: 'IPsec moved to 0x03020000; 0x03030000 is now NOSMCDEV' },
  { code: 0x06000000, name: 'SMC_CLC_DECL_REPLY', meaning: 'internal marker: reply to a received Decline (old kernels)', today: 'gone; never on the wire' },
  { code: 0x07000000, name: 'SMC_CLC_DECL_SEND', meaning: 'sending problem (old kernels)', today: 'gone' },
  { code: 0x99990000, name: 'SMC_CLC_DECL_INTERR', meaning: 'internal error (old value)', today: 'now 0x09990000' },
] as const);

const LEGACY_BY_CODE: ReadonlyMap<number, LegacyReasonEntry> = new Map(LEGACY_REASONS.map((e) => [e.code, e]));

/**
 * Normalises a reason to an unsigned 32-bit integer, or undefined. Signed 32-bit reads (readInt32BE)
 * are accepted, so 0x99990000 read as a negative number still finds its entry.
 */
function toU32(code: number): number | undefined {
  if (!Number.isInteger(code) || code < -0x80000000 || code > 0xffffffff) return undefined;
  return code >>> 0;
}

/** `0x%08x` as smcss prints it; anything that is not a 32-bit integer is printed as is. */
function hex8(code: number): string {
  const u = toU32(code);
  return u === undefined ? String(code) : `0x${u.toString(16).padStart(8, '0')}`;
}

/** The registry entry for a current code (spec 4.2), or undefined. */
export function reasonByCode(code: number): ReasonEntry | undefined {
  const u = toU32(code);
  return u === undefined ? undefined : BY_CODE.get(u);
}

/** The entry of a pre-2018 code (spec 4.3), or undefined. Does not consult the current registry. */
export function legacyReasonByCode(code: number): LegacyReasonEntry | undefined {
  const u = toU32(code);
  return u === undefined ? undefined : LEGACY_BY_CODE.get(u);
}

/**
 * One line for logs and CLI output, e.g. `0x03030000 SMC_CLC_DECL_NOSMCDEV (no usable SMC device)`.
 * Legacy codes say so; unknown ones print as `0x12345678 unknown` (spec 4.3: print, never reject).
 * Never throws.
 */
export function describeReason(code: number): string {
  const e = reasonByCode(code);
  if (e) return `${hex8(code)} ${e.name} (${e.meaning})`;
  const l = legacyReasonByCode(code);
  if (l) return `${hex8(code)} ${l.name} (legacy: ${l.meaning})`;
  return `${hex8(code)} unknown`;
}

/**
 * The smcss "Mode" column of a fallen-back socket (spec 4.1, 11.1): `TCP 0x05000000/0x03030000`.
 * The peer part is printed only when `peerCode` is given and non-zero, as smcss does.
 */
export function formatFallback(localCode: number, peerCode?: number): string {
  return peerCode === undefined || peerCode === 0 ? `TCP ${hex8(localCode)}` : `TCP ${hex8(localCode)}/${hex8(peerCode)}`;
}

/**
 * Whether `code` may be put in a Decline we send: registered codes marked `sent` or `sent-legacy`, plus
 * PEERNOSMC (a server declines with it when a Proposal offers no mode it can use, spec 4.2). False for
 * PEERDECL (never answer a Decline with a Decline), the other local-only codes, legacy and unknown codes.
 */
export function isDeclineSendable(code: number): boolean {
  const e = reasonByCode(code);
  if (!e) return false;
  return e.wire !== 'local' || e.code === SmcReason.PEERNOSMC.code;
}

/** Stable codes of {@link SmcReasonError}. */
export const SmcReasonErrorCode = {
  /** This side gave up on SMC for `reason` (and fell back to TCP, or failed where fallback is not allowed). */
  FALLBACK: 'ERR_SMC_FALLBACK',
  /** The peer declined; `reason` is PEERDECL and `peerDiagnosis` holds the peer's diagnosis. */
  DECLINED: 'ERR_SMC_DECLINED',
} as const;
export type SmcReasonErrorCode = (typeof SmcReasonErrorCode)[keyof typeof SmcReasonErrorCode];

/** Options of {@link SmcReasonError}. */
export interface SmcReasonErrorOptions {
  /** The code of the peer's Decline; meaningful when `reason` is PEERDECL. */
  readonly peerDiagnosis?: number;
  /**
   * Whether the handshake should send a Decline carrying `reason` before falling back. Defaults to
   * "the registry marks the code as sent" (so false for PEERNOSMC, PEERDECL, OPTUNSUPP, ACTIVE and
   * unknown codes); pass true for the PEERNOSMC exception of spec 4.2.
   */
  readonly decline?: boolean;
  /** Extra context appended to the message (which step failed). */
  readonly detail?: string;
  readonly cause?: unknown;
}

/**
 * The SMC handshake ended in a fallback (spec 4.1): the kernel's "positive return code". Handshake steps
 * throw it; the handshake driver catches it, sends a Decline when `decline` is true, records `reason` /
 * `peerDiagnosis` for diagnostics, and continues as plain TCP (or surfaces the error when the caller
 * required SMC). Failures that are not fallbacks (negative errno in the kernel: timeouts, garbage on the
 * CLC stream) are other errors, not this one.
 */
export class SmcReasonError extends SmcError {
  declare readonly code: SmcReasonErrorCode;
  /** This side's fallback reason (`fallback_rsn`). */
  readonly reason: number;
  /** The peer's diagnosis from its Decline (`peer_diagnosis`), if one was received. */
  readonly peerDiagnosis: number | undefined;
  /** Whether a Decline carrying `reason` should be sent before falling back. */
  readonly decline: boolean;

  constructor(reason: number, options: SmcReasonErrorOptions = {}) {
    const { peerDiagnosis, decline, detail, cause } = options;
    const code = reason === SmcReason.PEERDECL.code ? SmcReasonErrorCode.DECLINED : SmcReasonErrorCode.FALLBACK;
    const what = code === SmcReasonErrorCode.DECLINED && peerDiagnosis !== undefined
      ? `peer declined SMC: ${describeReason(peerDiagnosis)}`
      : `SMC not used: ${describeReason(reason)}`;
    super(code, `${what} [${formatFallback(reason, peerDiagnosis)}]${detail ? `: ${detail}` : ''}`, cause === undefined ? undefined : { cause });
    this.reason = reason;
    this.peerDiagnosis = peerDiagnosis;
    const e = reasonByCode(reason);
    this.decline = decline ?? (e !== undefined && e.wire !== 'local');
  }
}
