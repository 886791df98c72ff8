/**
 * mem completion queue: a preallocated ring of `cqe` entries, polled into caller-owned
 * WorkCompletion objects (no allocation), with ibv_req_notify_cq-style notification.
 *
 * Notification: `arm()` requests one event. The event fires when a completion is added while
 * armed, or at once (on the next turn) when the CQ already holds completions at arm time, as an
 * mlx5 CQ armed with its consumer index does; `arm(true)` (solicited only) fires for a receive
 * completion of a SOLICITED WR or for any error completion. Each event disarms the CQ and calls
 * the handler once, from the event loop (MemFabric's turn), never from inside a verb. An event
 * raised with no handler set waits for `setHandler`.
 *
 * Overrun: when a completion finds the ring full it is lost, `overruns` counts it, and every QP
 * using this CQ (as send or receive CQ) moves to ERR, as a CQ overrun (IBV_EVENT_CQ_ERR) does on
 * hardware; their flush completions then go into the CQ as space allows (those that do not fit
 * are counted too).
 */
import { Errno, VerbsError } from '../errors.js';
import type { Cq, WorkCompletion } from '../types.js';
import { WcStatus } from '../types.js';
import type { MemContext } from './context.js';
import type { MemFabric } from './fabric.js';
import type { MemQp } from './qp.js';

class CqEntry {
  wrId = 0;
  status = 0;
  opcode = 0;
  byteLen = 0;
  immData = 0;
  withImm = false;
  qpNum = 0;
}

export class MemCq implements Cq {
  readonly cqe: number;
  private readonly ring: CqEntry[];
  private head = 0;
  private count = 0;
  private lost = 0;
  private armed = false;
  private solicitedOnly = false;
  private eventPending = false;
  private handler: (() => void) | null = null;
  private closed = false;
  /** @internal MemFabric bookkeeping. */
  inNotify = false;
  /** @internal QPs using this CQ. */
  readonly qps = new Set<MemQp>();

  constructor(readonly context: MemContext, private readonly fabric: MemFabric, cqe: number) {
    this.cqe = cqe;
    this.ring = new Array<CqEntry>(cqe);
    for (let i = 0; i < cqe; i++) this.ring[i] = new CqEntry();
  }

  get overruns(): number {
    return this.lost;
  }

  get isClosed(): boolean {
    return this.closed;
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
    const e = this.ring[tail]!;
    e.wrId = wrId;
    e.status = status;
    e.opcode = opcode;
    e.byteLen = byteLen;
    e.immData = immData;
    e.withImm = withImm;
    e.qpNum = qpNum;
    this.count++;
    if (this.armed && (!this.solicitedOnly || solicited || status !== WcStatus.SUCCESS)) this.fire();
    return true;
  }

  poll(out: WorkCompletion[], max: number): number {
    if (this.closed) throw new VerbsError('poll_cq', Errno.EINVAL, 'CQ is destroyed');
    const lim = max < out.length ? max : out.length;
    let n = 0;
    while (n < lim && this.count > 0) {
      const e = this.ring[this.head]!;
      const o = out[n]!;
      o.wrId = e.wrId;
      o.status = e.status;
      o.opcode = e.opcode;
      o.byteLen = e.byteLen;
      o.immData = e.immData;
      o.withImm = e.withImm;
      o.qpNum = e.qpNum;
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
    if (handler !== null && this.eventPending && !this.closed) this.fabric.queueNotify(this);
  }

  private fire(): void {
    this.armed = false;
    this.eventPending = true;
    if (this.handler !== null) this.fabric.queueNotify(this);
  }

  /** @internal Called by the fabric's notification stage. */
  deliverEvent(): void {
    if (!this.eventPending || this.closed) return;
    const h = this.handler;
    if (h === null) return;
    this.eventPending = false;
    h();
  }

  /**
   * Destroys the CQ. Like ibv_destroy_cq, refuses (EBUSY) while a QP still uses it: destroy the
   * QPs first (Context.close does). Idempotent.
   */
  close(): void {
    if (this.closed) return;
    for (const qp of this.qps) {
      if (!qp.isDestroyed) throw new VerbsError('destroy_cq', Errno.EBUSY, `QP ${qp.qpNum} still uses this CQ`);
    }
    this.closed = true;
    this.handler = null;
    this.armed = false;
    this.eventPending = false;
    this.count = 0;
    this.context.forgetCq(this);
  }
}
