/**
 * softroce completion queue: a preallocated ring of `cqe` entries polled into caller-owned
 * WorkCompletion objects, with ibv_req_notify_cq-style notification through the device clock.
 *
 * - `arm()` asks for one event: it fires when a completion is added while armed, or on the next
 *   turn when the CQ already holds completions at arm time. `arm(true)` (solicited only) fires for
 *   a receive completion of a packet with the SE bit, or for any error completion.
 * - Each event disarms the CQ and calls the handler once, from a deferred turn, never inside a verb.
 *   An event raised with no handler set waits for `setHandler`.
 * - Overrun: a completion that finds the ring full is lost and counted in `overruns`, and every
 *   QP using this CQ moves to ERR (as IBV_EVENT_CQ_ERR does on hardware); flush completions that
 *   do not fit are counted as well.
 */
import { Errno, VerbsError } from '../errors.js';
import { WcStatus, type Cq, type WorkCompletion } from '../types.js';
import type { SoftRoceContext } from './context.js';
import type { SrQp } from './qp.js';

export class SrCq implements Cq {
  readonly cqe: number;
  private readonly wrId: Float64Array;
  private readonly status: Uint8Array;
  private readonly opcode: Uint8Array;
  private readonly byteLen: Float64Array;
  private readonly imm: Uint32Array;
  private readonly flags: Uint8Array;
  private readonly qpn: Uint32Array;
  private head = 0;
  private count = 0;
  private lost = 0;
  private armed = false;
  private solicitedOnly = false;
  private eventPending = false;
  private deliveryScheduled = false;
  private handler: (() => void) | null = null;
  closed = false;
  /** QPs using this CQ (send or receive side). */
  readonly qps = new Set<SrQp>();
  private readonly deliverBound = (): void => this.deliver();

  constructor(readonly context: SoftRoceContext, cqe: number) {
    this.cqe = cqe;
    this.wrId = new Float64Array(cqe);
    this.status = new Uint8Array(cqe);
    this.opcode = new Uint8Array(cqe);
    this.byteLen = new Float64Array(cqe);
    this.imm = new Uint32Array(cqe);
    this.flags = new Uint8Array(cqe);
    this.qpn = new Uint32Array(cqe);
  }

  get overruns(): number {
    return this.lost;
  }

  /** Completions waiting to be polled. */
  get pending(): number {
    return this.count;
  }

  /** @internal Adds a completion; false when it was lost to an overrun. */
  push(qpNum: number, wrId: number, status: number, opcode: number, byteLen: number, immData: number, withImm: boolean, solicited: boolean): boolean {
    if (this.closed) return false;
    if (this.count === this.cqe) {
      this.lost++;
      for (const qp of this.qps) qp.toError();
      return false;
    }
    let tail = this.head + this.count;
    if (tail >= this.cqe) tail -= this.cqe;
    this.wrId[tail] = wrId;
    this.status[tail] = status;
    this.opcode[tail] = opcode;
    this.byteLen[tail] = byteLen;
    this.imm[tail] = immData;
    this.flags[tail] = withImm ? 1 : 0;
    this.qpn[tail] = qpNum;
    this.count++;
    if (this.armed && (!this.solicitedOnly || solicited || status !== WcStatus.SUCCESS)) this.fire();
    return true;
  }

  poll(out: WorkCompletion[], max: number): number {
    if (this.closed) throw new VerbsError('poll_cq', Errno.EINVAL, 'CQ is destroyed');
    const lim = max < out.length ? max : out.length;
    let n = 0;
    while (n < lim && this.count > 0) {
      const h = this.head;
      const o = out[n]!;
      o.wrId = this.wrId[h]!;
      o.status = this.status[h]!;
      o.opcode = this.opcode[h]!;
      o.byteLen = this.byteLen[h]!;
      o.immData = this.imm[h]!;
      o.withImm = this.flags[h] === 1;
      o.qpNum = this.qpn[h]!;
      o.vendorErr = 0;
      if (++this.head === this.cqe) this.head = 0;
      this.count--;
      n++;
    }
    return n;
  }

  arm(solicitedOnly = false): void {
    if (this.closed) throw new VerbsError('req_notify_cq', Errno.EINVAL, 'CQ is destroyed');
    if (this.eventPending) return;
    this.armed = true;
    this.solicitedOnly = solicitedOnly;
    if (this.count > 0) this.fire();
  }

  setHandler(handler: (() => void) | null): void {
    this.handler = handler;
    if (handler !== null && this.eventPending) this.schedule();
  }

  private fire(): void {
    this.armed = false;
    this.eventPending = true;
    if (this.handler !== null) this.schedule();
  }

  private schedule(): void {
    if (this.deliveryScheduled || this.closed) return;
    this.deliveryScheduled = true;
    this.context.dev.clock.defer(this.deliverBound);
  }

  private deliver(): void {
    this.deliveryScheduled = false;
    if (!this.eventPending || this.closed) return;
    const h = this.handler;
    if (h === null) return;
    this.eventPending = false;
    h();
  }

  /** Destroys the CQ; refuses (EBUSY) while a QP still uses it, like ibv_destroy_cq. Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const qp of this.qps) {
      if (!qp.destroyed) throw new VerbsError('destroy_cq', Errno.EBUSY, `QP ${qp.qpNum} still uses this CQ`);
    }
    this.closed = true;
    this.handler = null;
    this.armed = false;
    this.eventPending = false;
    this.count = 0;
    this.context.forgetCq(this);
  }
}
