/**
 * mem completion queue: the software providers' CQ (soft-cq.ts) whose events are delivered in
 * MemFabric's notification stage, after the turn's transport work, never from inside a verb.
 */
import { SoftCq } from '../soft-cq.js';
import type { MemContext } from './context.js';
import type { MemFabric } from './fabric.js';
import type { MemQp } from './qp.js';

export class MemCq extends SoftCq<MemQp> {
  /** @internal MemFabric bookkeeping. */
  inNotify = false;

  constructor(readonly context: MemContext, private readonly fabric: MemFabric, cqe: number) {
    super(cqe);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  protected requestDelivery(): void {
    this.fabric.queueNotify(this);
  }

  protected onClosed(): void {
    this.context.forgetCq(this);
  }
}
