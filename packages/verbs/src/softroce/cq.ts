/**
 * softroce completion queue: the software providers' CQ (soft-cq.ts) whose events are delivered
 * on a deferred turn of the device clock, never inside a verb.
 */
import { SoftCq } from '../soft-cq.js';
import type { SoftRoceContext } from './context.js';
import type { SrQp } from './qp.js';

export class SrCq extends SoftCq<SrQp> {
  #deliveryScheduled = false;
  readonly #deliverBound = (): void => {
    this.#deliveryScheduled = false;
    this.deliverEvent();
  };

  constructor(readonly context: SoftRoceContext, cqe: number) {
    super(cqe);
  }

  protected requestDelivery(): void {
    if (this.#deliveryScheduled || this.closed) return;
    this.#deliveryScheduled = true;
    this.context.dev.clock.defer(this.#deliverBound);
  }

  protected onClosed(): void {
    this.context.forgetCq(this);
  }
}
