/**
 * An open device (ibv_context): device/port/GID queries, registrable memory, PDs and CQs. The
 * data-path ops are resolved from ibv_context.ops once, here, and shared by its CQs and QPs.
 */
import {
  Errno, VerbsError,
  type Context, type DeviceAttr, type DeviceInfo, type GidEntry, type IbMtu, type PortAttr,
} from '@smc-r/verbs';
import type { ContextPtr } from './handles.js';
import { IBV, OFF } from './layout.js';
import { errnoOf, lastErrno, loadLibc, opsOf, type ContextOps, type VerbsLib } from './native.js';
import { NativeMemoryBlock } from './memory.js';
import { IbvPd } from './pd.js';
import { IbvCq } from './cq.js';

export interface IbvContextOptions {
  /** Inline bytes the device is assumed to accept (ibv_device_attr does not say). Default 64. */
  readonly maxInlineData?: number;
}

export class IbvContext implements Context {
  readonly provider = 'ibverbs';
  readonly device: DeviceInfo;
  readonly nodeGuid: bigint;
  /** The context's data-path entry points (ibv_context.ops). */
  readonly ops: ContextOps;
  readonly #lib: VerbsLib;
  #ptr: ContextPtr | null;
  readonly #maxInline: number;
  readonly #pds = new Set<IbvPd>();
  readonly #cqs = new Set<IbvCq>();
  #attr: DeviceAttr | undefined;

  constructor(lib: VerbsLib, ptr: ContextPtr, device: DeviceInfo, nodeGuid: bigint, opts: IbvContextOptions = {}) {
    this.#lib = lib;
    this.#ptr = ptr;
    this.device = device;
    this.nodeGuid = nodeGuid;
    this.#maxInline = opts.maxInlineData ?? 64;
    this.ops = opsOf(ptr);
  }

  get ptr(): ContextPtr {
    if (this.#ptr === null) throw new VerbsError('open_device', Errno.EINVAL, `${this.device.name} is closed`);
    return this.#ptr;
  }

  get closed(): boolean {
    return this.#ptr === null;
  }

  #live(verb: Parameters<typeof errorFor>[0]): ContextPtr {
    if (this.#ptr === null) throw errorFor(verb, `${this.device.name} is closed`);
    return this.#ptr;
  }

  queryDevice(): DeviceAttr {
    const ctx = this.#live('query_device');
    if (this.#attr !== undefined) return this.#attr;
    const b = Buffer.alloc(OFF.device_attr_size);
    const rc = this.#lib.query_device(ctx, b);
    if (rc !== 0) throw new VerbsError('query_device', errnoOf(rc), 'ibv_query_device failed');
    const maxSge = b.readInt32LE(OFF.dattr_max_sge);
    this.#attr = {
      name: this.device.name,
      provider: this.provider,
      transport: this.device.transport,
      vendorId: b.readUInt32LE(OFF.dattr_vendor_id),
      vendorPartId: b.readUInt32LE(OFF.dattr_vendor_part_id),
      nodeGuid: b.readBigUInt64BE(OFF.dattr_node_guid), // __be64
      physPortCnt: b.readUInt8(OFF.dattr_phys_port_cnt),
      maxQp: b.readInt32LE(OFF.dattr_max_qp),
      maxQpWr: b.readInt32LE(OFF.dattr_max_qp_wr),
      maxSge,
      // ibv_device_attr has one SGE limit; eRDMA accepts only 1 receive SGE (ffi-eval §7).
      maxRecvSge: this.device.transport === 'iWARP' ? 1 : maxSge,
      maxCq: b.readInt32LE(OFF.dattr_max_cq),
      maxCqe: b.readInt32LE(OFF.dattr_max_cqe),
      maxMr: b.readInt32LE(OFF.dattr_max_mr),
      maxMrSize: Number(b.readBigUInt64LE(OFF.dattr_max_mr_size)),
      maxInlineData: this.#maxInline,
    };
    return this.#attr;
  }

  queryPort(portNum: number): PortAttr {
    const ctx = this.#live('query_port');
    const ports = this.queryDevice().physPortCnt;
    if (!Number.isInteger(portNum) || portNum < 1 || portNum > ports) throw new VerbsError('query_port', Errno.EINVAL, `port ${portNum} (the device has ${ports})`);
    const b = Buffer.alloc(OFF.port_attr_size);
    const rc = this.#lib.query_port(ctx, portNum, b);
    if (rc !== 0) throw new VerbsError('query_port', errnoOf(rc), `ibv_query_port(${portNum}) failed`);
    return {
      portNum,
      state: b.readUInt32LE(OFF.pattr_state) === IBV.PORT_ACTIVE ? 'ACTIVE' : 'DOWN',
      activeMtu: b.readUInt32LE(OFF.pattr_active_mtu) as IbMtu,
      maxMtu: b.readUInt32LE(OFF.pattr_max_mtu) as IbMtu,
      gidTblLen: b.readInt32LE(OFF.pattr_gid_tbl_len),
      linkLayer: b.readUInt8(OFF.pattr_link_layer) === IBV.LINK_LAYER_INFINIBAND ? 'InfiniBand' : 'Ethernet',
    };
  }

  queryGid(portNum: number, index: number): GidEntry {
    const e = this.#gid(portNum, index);
    if (e === null) throw new VerbsError('query_gid', Errno.ENOENT, `port ${portNum} GID ${index} is empty`);
    return e;
  }

  /** The populated entries of the port's GID table (empty slots skipped). */
  gidTable(portNum: number): readonly GidEntry[] {
    const len = this.queryPort(portNum).gidTblLen;
    const out: GidEntry[] = [];
    for (let i = 0; i < len; i++) {
      const e = this.#gid(portNum, i);
      if (e !== null) out.push(e);
    }
    return out;
  }

  /** One GID entry with its type, or null for an empty slot (ENODATA or an all-zero GID). */
  #gid(portNum: number, index: number): GidEntry | null {
    const ctx = this.#live('query_gid');
    const len = this.queryPort(portNum).gidTblLen;
    if (!Number.isInteger(index) || index < 0 || index >= len) throw new VerbsError('query_gid', Errno.EINVAL, `GID index ${index} (table of ${len})`);
    let gid: Buffer;
    let type: GidEntry['type'];
    let netdev: string | undefined;
    const qx = this.#lib.query_gid_ex;
    if (qx !== undefined) {
      const b = Buffer.alloc(OFF.gid_entry_size);
      const rc = qx(ctx, portNum, index, b, 0, OFF.gid_entry_size);
      if (rc === ENODATA) return null;
      if (rc !== 0) throw new VerbsError('query_gid', errnoOf(rc), `ibv_query_gid_ex(${portNum}, ${index}) failed`);
      gid = Buffer.from(b.subarray(OFF.gide_gid, OFF.gide_gid + 16));
      const t = b.readUInt32LE(OFF.gide_gid_type);
      type = t === IBV.GID_TYPE_ROCE_V2 ? 'RoCEv2' : t === IBV.GID_TYPE_ROCE_V1 ? 'RoCEv1' : 'IB';
      const ifindex = b.readUInt32LE(OFF.gide_ndev_ifindex);
      if (ifindex !== 0) netdev = loadLibc().if_indextoname(ifindex, Buffer.alloc(16)) ?? undefined;
    } else {
      // rdma-core < 32: no GID type through the API; assume RoCEv2 for IPv4-mapped GIDs.
      gid = Buffer.alloc(16);
      if (this.#lib.query_gid(ctx, portNum, index, gid) !== 0) throw new VerbsError('query_gid', lastErrno(), `ibv_query_gid(${portNum}, ${index}) failed`);
      type = isV4Mapped(gid) ? 'RoCEv2' : 'RoCEv1';
    }
    if (gid.every((x) => x === 0)) return null;
    const e: { index: number; gid: Buffer; type: GidEntry['type']; ipv4?: string; netdev?: string } = { index, gid, type };
    if (isV4Mapped(gid)) e.ipv4 = `${gid[12]}.${gid[13]}.${gid[14]}.${gid[15]}`;
    if (netdev !== undefined) e.netdev = netdev;
    return e;
  }

  allocMemory(length: number): NativeMemoryBlock {
    this.#live('alloc_memory');
    return new NativeMemoryBlock(length);
  }

  allocPd(): IbvPd {
    const ctx = this.#live('alloc_pd');
    const p = this.#lib.alloc_pd(ctx);
    if (p === null) throw new VerbsError('alloc_pd', lastErrno(), 'ibv_alloc_pd failed');
    const pd = new IbvPd(this.#lib, this, p);
    this.#pds.add(pd);
    return pd;
  }

  createCq(cqe: number): IbvCq {
    this.#live('create_cq');
    const cq = new IbvCq(this.#lib, this.ops, this, cqe);
    this.#cqs.add(cq);
    return cq;
  }

  /** @internal A child closed itself. */
  forget(child: IbvPd | IbvCq): void {
    if (child instanceof IbvPd) this.#pds.delete(child);
    else this.#cqs.delete(child);
  }

  async close(): Promise<void> {
    const ctx = this.#ptr;
    if (ctx === null) return;
    for (const pd of [...this.#pds]) pd.close(); // QPs and MRs first
    for (const cq of [...this.#cqs]) cq.close();
    const rc = this.#lib.close_device(ctx);
    this.#ptr = null;
    if (rc !== 0) throw new VerbsError('close_device', errnoOf(rc), 'ibv_close_device failed');
  }
}

const ENODATA = 61;

function isV4Mapped(g: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (g[i] !== 0) return false;
  return g[10] === 0xff && g[11] === 0xff;
}

function errorFor(verb: 'query_device' | 'query_port' | 'query_gid' | 'alloc_memory' | 'alloc_pd' | 'create_cq', why: string): VerbsError {
  return new VerbsError(verb, Errno.EINVAL, why);
}
