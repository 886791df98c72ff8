/**
 * mem device context (ibv_open_device): queries, memory, PDs and CQs of one device.
 */
import { Errno, VerbsError } from '../errors.js';
import type { Context, DeviceAttr, DeviceInfo, GidEntry, PortAttr } from '../types.js';
import { MemCq } from './cq.js';
import type { MemCounters, MemDevice } from './device.js';
import type { MemFabric } from './fabric.js';
import { MemBlock } from './memory.js';
import { MemPd } from './pd.js';

function copyGid(e: GidEntry): GidEntry {
  const out: { index: number; gid: Buffer; type: GidEntry['type']; ipv4?: string; netdev?: string } = { index: e.index, gid: Buffer.from(e.gid), type: e.type };
  if (e.ipv4 !== undefined) out.ipv4 = e.ipv4;
  if (e.netdev !== undefined) out.netdev = e.netdev;
  return out;
}

export class MemContext implements Context {
  readonly provider = 'mem';
  readonly device: DeviceInfo;
  private closed = false;
  private readonly pds = new Set<MemPd>();
  private readonly cqs = new Set<MemCq>();

  constructor(readonly fabric: MemFabric, readonly dev: MemDevice) {
    this.device = dev.info;
  }

  /** The device's counters (shared by every context of the device). */
  get counters(): Readonly<MemCounters> {
    return this.dev.counters;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private live(verb: 'query_device' | 'query_port' | 'query_gid' | 'alloc_memory' | 'alloc_pd' | 'create_cq'): void {
    if (this.closed) throw new VerbsError(verb, Errno.ENODEV, `context of ${this.device.name} is closed`);
  }

  queryDevice(): DeviceAttr {
    this.live('query_device');
    return this.dev.attr;
  }

  queryPort(portNum: number): PortAttr {
    this.live('query_port');
    if (portNum !== 1) throw new VerbsError('query_port', Errno.EINVAL, `${this.device.name} has no port ${portNum}`);
    return this.dev.port;
  }

  queryGid(portNum: number, index: number): GidEntry {
    this.live('query_gid');
    if (portNum !== 1) throw new VerbsError('query_gid', Errno.EINVAL, `${this.device.name} has no port ${portNum}`);
    const e = this.dev.gids[index];
    if (e === undefined) throw new VerbsError('query_gid', Errno.EINVAL, `GID index ${index} is outside the table (length ${this.dev.gids.length})`);
    return copyGid(e);
  }

  gidTable(portNum: number): readonly GidEntry[] {
    this.live('query_gid');
    if (portNum !== 1) throw new VerbsError('query_gid', Errno.EINVAL, `${this.device.name} has no port ${portNum}`);
    return this.dev.gids.map(copyGid);
  }

  allocMemory(length: number): MemBlock {
    this.live('alloc_memory');
    if (!Number.isInteger(length) || length < 1 || length > this.fabric.arena.maxBytes) {
      throw new VerbsError('alloc_memory', Errno.EINVAL, `bad length ${length}`);
    }
    return new MemBlock(this.fabric, this.dev, length);
  }

  allocPd(): MemPd {
    this.live('alloc_pd');
    const pd = new MemPd(this, this.fabric, this.dev);
    this.pds.add(pd);
    return pd;
  }

  createCq(cqe: number): MemCq {
    this.live('create_cq');
    if (!Number.isInteger(cqe) || cqe < 1 || cqe > this.dev.attr.maxCqe) throw new VerbsError('create_cq', Errno.EINVAL, `cqe ${cqe} outside 1..${this.dev.attr.maxCqe}`);
    if (this.dev.cqCount >= this.dev.attr.maxCq) throw new VerbsError('create_cq', Errno.ENOMEM, `device has ${this.dev.cqCount} CQs (maxCq)`);
    const cq = new MemCq(this, this.fabric, cqe);
    this.dev.cqCount++;
    this.cqs.add(cq);
    return cq;
  }

  /** Destroys every QP, MR and PD, then every CQ, then closes. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      for (const pd of [...this.pds]) pd.close();
      for (const cq of [...this.cqs]) cq.close();
      this.closed = true;
    }
    return Promise.resolve();
  }

  /** @internal */
  forgetPd(pd: MemPd): void {
    this.pds.delete(pd);
  }

  /** @internal */
  forgetCq(cq: MemCq): void {
    if (this.cqs.delete(cq)) this.dev.cqCount--;
  }
}
