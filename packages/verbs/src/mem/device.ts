/**
 * A mem device: what `ibv_device` + its port hold on a real adapter. The attributes, the port and
 * the GID table are fixed; the QP number space, the MR key table and the counters are shared by
 * every context opened on the device (as on hardware, where several processes may open one HCA).
 *
 * Synthetic identity of device N (0-based), chosen so nobody mistakes it for a real network:
 * - MAC 02:00:00:00:00:<N+1> (locally administered), node GUID = its EUI-64 (0x000000fffe0000<N+1>).
 * - IPv4 198.18.0.<N+1> (RFC 2544 benchmarking range 198.18.0.0/15, never routed).
 * - GID table laid out as Linux builds it for a RoCE port with one IPv4 address: index 0 and 1
 *   the link-local GID fe80::ff:fe00:<N+1> as RoCEv1 and RoCEv2, index 2 and 3 the IPv4-mapped
 *   GID ::ffff:198.18.0.<N+1> as RoCEv1 and RoCEv2. SMC-R must pick index 3 (the RoCEv2
 *   IPv4-mapped entry), exactly as on a real port.
 */
import type { DeviceAttr, DeviceInfo, GidEntry, PortAttr } from '../types.js';
import { IbMtu } from '../types.js';
import type { MemMr } from './mr.js';
import type { MemQp } from './qp.js';

/** Device limits (ibv_query_device). Chosen near rxe's, small enough to allocate eagerly. */
export const MEM_DEVICE_LIMITS = {
  maxQp: 4096,
  maxQpWr: 16384,
  maxSge: 32,
  maxRecvSge: 32,
  maxCq: 4096,
  maxCqe: 65535,
  maxMr: 65536,
  /** IBA maximum message size, 2^31 bytes. */
  maxMrSize: 2 ** 31,
  maxInlineData: 256,
  /** ibv_device_attr.max_qp_rd_atom / max_qp_init_rd_atom. */
  maxQpRdAtom: 16,
} as const;

/** Counters named after rxe's hw counters (rdma statistic), per device. */
export interface MemCounters {
  /** Requests executed (one per WR, whatever its length). */
  rdmaSends: number;
  rdmaRecvs: number;
  /** RNR NAKs sent (responder) and received (requester). */
  sendRnrErr: number;
  rcvdRnrErr: number;
  /** Requests dropped because their PSN was not the one the responder expected. */
  outOfSeqRequest: number;
  /** Requests dropped: no QP with that number, QP not in RTR/RTS, or GIDs not matching the QP's path. */
  droppedNoQp: number;
  droppedBadState: number;
  droppedBadAddress: number;
  /** Local ACK timeouts (each one a retry or the final RETRY_EXC_ERR). */
  completerRetryErr: number;
  retryExceededErr: number;
  retryRnrExceededErr: number;
}

function newCounters(): MemCounters {
  return {
    rdmaSends: 0, rdmaRecvs: 0, sendRnrErr: 0, rcvdRnrErr: 0, outOfSeqRequest: 0, droppedNoQp: 0,
    droppedBadState: 0, droppedBadAddress: 0, completerRetryErr: 0, retryExceededErr: 0, retryRnrExceededErr: 0,
  };
}

function gidBytes(prefix: readonly number[], tail: readonly number[]): Buffer {
  const g = Buffer.alloc(16);
  g.set(prefix, 0);
  g.set(tail, 16 - tail.length);
  return g;
}

export class MemDevice {
  readonly info: DeviceInfo;
  readonly attr: DeviceAttr;
  readonly port: PortAttr;
  /** GID table of port 1 (entries are copied before they leave the provider). */
  readonly gids: readonly GidEntry[];
  readonly ipv4: string;
  readonly counters: MemCounters = newCounters();

  /** Live QPs by number (the fabric routes requests through this map). */
  readonly qps = new Map<number, MemQp>();
  private nextQpn: number;
  cqCount = 0;

  /** MR table indexed by key >>> 8; the low byte of a key is a per-registration variant. */
  readonly mrs: (MemMr | undefined)[] = [undefined];
  private readonly freeMrIndex: number[] = [];
  private keyVariant: number;
  mrCount = 0;

  /** Counter for synthetic block addresses. */
  blockCount = 0;

  constructor(readonly index: number) {
    const n = index + 1;
    const name = `mem${index}`;
    this.info = Object.freeze({ name, provider: 'mem', transport: 'RoCE' as const });
    this.attr = Object.freeze({
      name,
      provider: 'mem',
      transport: 'RoCE' as const,
      vendorId: 0,
      vendorPartId: 0,
      nodeGuid: 0x000000fffe000000n + BigInt(n),
      physPortCnt: 1,
      maxQp: MEM_DEVICE_LIMITS.maxQp,
      maxQpWr: MEM_DEVICE_LIMITS.maxQpWr,
      maxSge: MEM_DEVICE_LIMITS.maxSge,
      maxRecvSge: MEM_DEVICE_LIMITS.maxRecvSge,
      maxCq: MEM_DEVICE_LIMITS.maxCq,
      maxCqe: MEM_DEVICE_LIMITS.maxCqe,
      maxMr: MEM_DEVICE_LIMITS.maxMr,
      maxMrSize: MEM_DEVICE_LIMITS.maxMrSize,
      maxInlineData: MEM_DEVICE_LIMITS.maxInlineData,
    });
    this.port = Object.freeze({
      portNum: 1,
      state: 'ACTIVE' as const,
      activeMtu: IbMtu.MTU_4096,
      maxMtu: IbMtu.MTU_4096,
      gidTblLen: 4,
      linkLayer: 'Ethernet' as const,
    });
    const b3 = n & 0xff;
    const b2 = (n >>> 8) & 0xff;
    this.ipv4 = `198.18.${b2}.${b3}`;
    const linkLocal = gidBytes([0xfe, 0x80], [0x00, 0x00, 0x00, 0xff, 0xfe, 0x00, b2, b3]);
    const mapped = gidBytes([], [0xff, 0xff, 198, 18, b2, b3]);
    this.gids = Object.freeze([
      Object.freeze({ index: 0, gid: linkLocal, type: 'RoCEv1' as const, netdev: name }),
      Object.freeze({ index: 1, gid: linkLocal, type: 'RoCEv2' as const, netdev: name }),
      Object.freeze({ index: 2, gid: mapped, type: 'RoCEv1' as const, ipv4: this.ipv4, netdev: name }),
      Object.freeze({ index: 3, gid: mapped, type: 'RoCEv2' as const, ipv4: this.ipv4, netdev: name }),
    ]);
    this.nextQpn = ((n << 12) | 0x11) & 0xffffff;
    this.keyVariant = (n * 0x35 + 0x11) & 0xff;
  }

  /** True when `gid` (16 bytes) is one of this device's GIDs. */
  hasGid(gid: Uint8Array): boolean {
    for (const e of this.gids) if (e.gid.equals(gid)) return true;
    return false;
  }

  /** Next free QP number (24 bits, never 0 or 1, not in use). */
  allocQpn(): number {
    for (;;) {
      const q = this.nextQpn;
      this.nextQpn = (this.nextQpn + 1) & 0xffffff;
      if (this.nextQpn < 2) this.nextQpn = 2;
      if (!this.qps.has(q)) return q;
    }
  }

  /** Reserves an MR table slot; returns the key (index << 8 | variant). */
  allocMrKey(mr: MemMr): number {
    const index = this.freeMrIndex.pop() ?? this.mrs.length;
    this.mrs[index] = mr;
    this.keyVariant = (this.keyVariant + 1) & 0xff;
    this.mrCount++;
    return ((index << 8) | this.keyVariant) >>> 0;
  }

  freeMrKey(key: number): void {
    const index = key >>> 8;
    if (this.mrs[index] === undefined) return;
    this.mrs[index] = undefined;
    this.freeMrIndex.push(index);
    this.mrCount--;
  }

  /** The MR a remote key names, or undefined. */
  lookupRkey(rkey: number): MemMr | undefined {
    const mr = this.mrs[rkey >>> 8];
    return mr !== undefined && mr.rkey === rkey >>> 0 ? mr : undefined;
  }
}
