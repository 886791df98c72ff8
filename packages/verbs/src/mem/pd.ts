/**
 * mem protection domain: owns its MRs and QPs. An lkey or rkey is only valid for QPs of the PD
 * the MR belongs to (IBA 10.2.3), which the data path checks.
 */
import { Errno, VerbsError } from '../errors.js';
import type { MemoryBlock, Pd, QpInitAttr } from '../types.js';
import type { MemContext } from './context.js';
import type { MemDevice } from './device.js';
import type { MemFabric } from './fabric.js';
import { MemMr } from './mr.js';
import { MemQp } from './qp.js';

export class MemPd implements Pd {
  private closed = false;
  private readonly mrs = new Set<MemMr>();
  private readonly qps = new Set<MemQp>();

  constructor(readonly context: MemContext, readonly fabric: MemFabric, readonly device: MemDevice) {}

  get isClosed(): boolean {
    return this.closed;
  }

  registerMr(block: MemoryBlock, offset: number, length: number, access: number): MemMr {
    if (this.closed) throw new VerbsError('reg_mr', Errno.EINVAL, 'PD is deallocated');
    const b = MemMr.validate(this, block, offset, length, access);
    if (this.device.mrCount >= this.device.attr.maxMr) throw new VerbsError('reg_mr', Errno.ENOMEM, `device has ${this.device.mrCount} MRs (maxMr)`);
    const mr = new MemMr(this, this.device, b, offset, length, access);
    this.mrs.add(mr);
    return mr;
  }

  createQp(init: QpInitAttr): MemQp {
    if (this.closed) throw new VerbsError('create_qp', Errno.EINVAL, 'PD is deallocated');
    const qp = MemQp.create(this, init);
    this.qps.add(qp);
    return qp;
  }

  /** Destroys the QPs, deregisters the MRs, then deallocates the PD. Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const qp of [...this.qps]) qp.close();
    for (const mr of [...this.mrs]) mr.close();
    this.closed = true;
    this.context.forgetPd(this);
  }

  /** @internal */
  forgetMr(mr: MemMr): void {
    this.mrs.delete(mr);
  }

  /** @internal */
  forgetQp(qp: MemQp): void {
    this.qps.delete(qp);
  }
}
