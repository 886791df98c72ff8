/**
 * An open softroce device (ibv_context): memory, PDs, CQs and the MR key table of this opening.
 * The device underneath (socket, QP numbers, counters) is shared by every context opened on it.
 */
import { Errno, VerbsError } from '../errors.js';
import type { Context, DeviceAttr, DeviceInfo, GidEntry, MemoryBlock, PortAttr } from '../types.js';
import { SrCq } from './cq.js';
import type { SoftRoceDevice } from './device.js';
import { MrTable, SrMemoryBlock, SrMr, SrPd } from './memory.js';
import type { SoftRoceStats } from './stats.js';

function copyGid(g: GidEntry): GidEntry {
  return { ...g, gid: Buffer.from(g.gid) };
}

export class SoftRoceContext implements Context {
  readonly provider = 'softroce';
  readonly device: DeviceInfo;
  /** @internal */ readonly mrTable = new MrTable();
  /** @internal */ qpCount = 0;
  private readonly pds = new Set<SrPd>();
  private readonly cqs = new Set<SrCq>();
  private closing: Promise<void> | undefined;
  closed = false;

  constructor(readonly dev: SoftRoceDevice) {
    this.device = dev.info;
  }

  /** The device's counters (live object shared by all contexts of the device). */
  get stats(): SoftRoceStats {
    return this.dev.stats;
  }

  private live(verb: 'query_device' | 'query_port' | 'query_gid' | 'alloc_memory' | 'alloc_pd' | 'create_cq'): void {
    if (this.closed) throw new VerbsError(verb, Errno.EINVAL, `context of ${this.dev.name} is closed`);
  }

  queryDevice(): DeviceAttr {
    this.live('query_device');
    return { ...this.dev.attr };
  }

  queryPort(portNum: number): PortAttr {
    this.live('query_port');
    if (portNum !== 1) throw new VerbsError('query_port', Errno.EINVAL, `port ${portNum}: softroce devices have port 1 only`);
    return { ...this.dev.portAttr };
  }

  queryGid(portNum: number, index: number): GidEntry {
    this.live('query_gid');
    if (portNum !== 1) throw new VerbsError('query_gid', Errno.EINVAL, `port ${portNum}: softroce devices have port 1 only`);
    const g = this.dev.gids[index];
    if (g === undefined) throw new VerbsError('query_gid', Errno.EINVAL, `GID index ${index} is outside the table (${this.dev.gids.length} entries)`);
    return copyGid(g);
  }

  gidTable(portNum: number): readonly GidEntry[] {
    this.live('query_gid');
    if (portNum !== 1) throw new VerbsError('query_gid', Errno.EINVAL, `port ${portNum}: softroce devices have port 1 only`);
    return this.dev.gids.map(copyGid);
  }

  allocMemory(length: number): MemoryBlock {
    this.live('alloc_memory');
    if (!Number.isInteger(length) || length <= 0 || length > this.dev.attr.maxMrSize) {
      throw new VerbsError('alloc_memory', Errno.EINVAL, `length ${String(length)} must be 1..${this.dev.attr.maxMrSize}`);
    }
    return new SrMemoryBlock(Buffer.alloc(length), length);
  }

  allocPd(): SrPd {
    this.live('alloc_pd');
    const pd = new SrPd(this);
    this.pds.add(pd);
    return pd;
  }

  createCq(cqe: number): SrCq {
    this.live('create_cq');
    if (!Number.isInteger(cqe) || cqe < 1 || cqe > this.dev.attr.maxCqe) {
      throw new VerbsError('create_cq', Errno.EINVAL, `cqe ${String(cqe)} must be 1..${this.dev.attr.maxCqe}`);
    }
    if (this.cqs.size >= this.dev.attr.maxCq) throw new VerbsError('create_cq', Errno.ENOMEM, 'too many CQs');
    const cq = new SrCq(this, cqe);
    this.cqs.add(cq);
    return cq;
  }

  /** @internal */
  newMr(pd: SrPd, block: SrMemoryBlock, offset: number, length: number, access: number): SrMr {
    return this.mrTable.add((key) => new SrMr(pd, block, offset, length, access, key), this.dev.attr.maxMr);
  }

  /** @internal */ forgetMr(mr: SrMr): void {
    this.mrTable.remove(mr);
  }

  /** @internal */ forgetPd(pd: SrPd): void {
    this.pds.delete(pd);
  }

  /** @internal */ forgetCq(cq: SrCq): void {
    this.cqs.delete(cq);
  }

  /** Closes QPs, CQs, MRs and PDs, then releases the device (its socket closes with the last context). Idempotent. */
  close(): Promise<void> {
    if (this.closing === undefined) {
      this.closing = (async () => {
        for (const pd of [...this.pds]) for (const qp of [...pd.qps]) qp.close();
        for (const cq of [...this.cqs]) cq.close();
        for (const pd of [...this.pds]) pd.close();
        this.closed = true;
        await this.dev.release();
      })();
    }
    return this.closing;
  }
}
