/**
 * The completion queue of the software providers (mem, softroce): a preallocated ring of `cqe`
 * entries in typed arrays, polled into caller-owned WorkCompletion objects (no allocation), with
 * ibv_req_notify_cq-style notification.
 *
 * - `arm()` asks for one event: it fires when a completion is added while armed, or on the next
 *   turn when the CQ already holds completions at arm time (as an mlx5 CQ armed with its consumer
 *   index does). `arm(true)` (solicited only) fires for a receive completion of a solicited WR, or
 *   for any error completion.
 * - Each event disarms the CQ and calls the handler once, from a later turn the provider chooses
 *   (`requestDelivery`), never inside a verb. An event raised with no handler waits for `setHandler`.
 * - Overrun: a completion that finds the ring full is lost and counted in `overruns`, and every QP
 *   using this CQ moves to ERR, as IBV_EVENT_CQ_ERR does on hardware.
 */
import { Errno, VerbsError } from './errors.js';
import { WcStatus, type Context, type Cq, type WorkCompletion } from './types.js';

/** What the CQ needs of the QPs that use it. */
export interface SoftCqQp {
  readonly qpNum: number;
  /** The QP is destroyed (then the CQ may be destroyed too). */
  readonly gone: boolean;
  toError(): void;
}

export abstract class SoftCq<Q extends SoftCqQp> implements Cq {
  abstract readonly context: Context;
  readonly cqe: number;
  /** QPs using this CQ (as send or receive CQ). */
  readonly qps = new Set<Q>();
  readonly #wrId: Float64Array;
  readonly #status: Uint8Array;
  readonly #opcode: Uint8Array;
  readonly #byteLen: Float64Array;
  readonly #imm: Uint32Array;
  readonly #withImm: Uint8Array;
  readonly #qpn: Uint32Array;
  #head = 0;
  #count = 0;
  #lost = 0;
  #armed = false;
  #solicitedOnly = false;
  #eventPending = false;
  #handler: (() => void) | null = null;
  #closed = false;

  constructor(cqe: number) {
    this.cqe = cqe;
    this.#wrId = new Float64Array(cqe);
    this.#status = new Uint8Array(cqe);
    this.#opcode = new Uint8Array(cqe);
    this.#byteLen = new Float64Array(cqe);
    this.#imm = new Uint32Array(cqe);
    this.#withImm = new Uint8Array(cqe);
    this.#qpn = new Uint32Array(cqe);
  }

  /** Arranges for `deliverEvent()` to run on a later turn (deduplicated by the provider). */
  protected abstract requestDelivery(): void;
  /** The CQ was destroyed: the provider forgets it. */
  protected abstract onClosed(): void;

  get overruns(): number {
    return this.#lost;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Completions waiting to be polled. */
  get pending(): number {
    return this.#count;
  }

  /** @internal Adds a completion; false when it was lost to an overrun. */
  push(qpNum: number, wrId: number, status: number, opcode: number, byteLen: number, immData: number, withImm: boolean, solicited: boolean): boolean {
    if (this.#closed) return false;
    if (this.#count === this.cqe) {
      this.#lost++;
      for (const qp of this.qps) qp.toError();
      return false;
    }
    let tail = this.#head + this.#count;
    if (tail >= this.cqe) tail -= this.cqe;
    this.#wrId[tail] = wrId;
    this.#status[tail] = status;
    this.#opcode[tail] = opcode;
    this.#byteLen[tail] = byteLen;
    this.#imm[tail] = immData;
    this.#withImm[tail] = withImm ? 1 : 0;
    this.#qpn[tail] = qpNum;
    this.#count++;
    if (this.#armed && (!this.#solicitedOnly || solicited || status !== WcStatus.SUCCESS)) this.#fire();
    return true;
  }

  poll(out: WorkCompletion[], max: number): number {
    if (this.#closed) throw new VerbsError('poll_cq', Errno.EINVAL, 'CQ is destroyed');
    const lim = max < out.length ? max : out.length;
    let n = 0;
    while (n < lim && this.#count > 0) {
      const h = this.#head;
      const o = out[n]!;
      o.wrId = this.#wrId[h]!;
      o.status = this.#status[h]!;
      o.opcode = this.#opcode[h]!;
      o.byteLen = this.#byteLen[h]!;
      o.immData = this.#imm[h]!;
      o.withImm = this.#withImm[h] === 1;
      o.qpNum = this.#qpn[h]!;
      o.vendorErr = 0;
      if (++this.#head === this.cqe) this.#head = 0;
      this.#count--;
      n++;
    }
    return n;
  }

  arm(solicitedOnly = false): void {
    if (this.#closed) throw new VerbsError('req_notify_cq', Errno.EINVAL, 'CQ is destroyed');
    if (this.#eventPending) return;
    this.#armed = true;
    this.#solicitedOnly = solicitedOnly;
    if (this.#count > 0) this.#fire();
  }

  setHandler(handler: (() => void) | null): void {
    this.#handler = handler;
    if (handler !== null && this.#eventPending && !this.#closed) this.requestDelivery();
  }

  #fire(): void {
    this.#armed = false;
    this.#eventPending = true;
    if (this.#handler !== null) this.requestDelivery();
  }

  /** @internal The provider's deferred turn: calls the handler once per event. */
  deliverEvent(): void {
    if (!this.#eventPending || this.#closed) return;
    const h = this.#handler;
    if (h === null) return;
    this.#eventPending = false;
    h();
  }

  /** Destroys the CQ. Like ibv_destroy_cq, refuses (EBUSY) while a QP still uses it. Idempotent. */
  close(): void {
    if (this.#closed) return;
    for (const qp of this.qps) {
      if (!qp.gone) throw new VerbsError('destroy_cq', Errno.EBUSY, `QP ${qp.qpNum} still uses this CQ`);
    }
    this.#closed = true;
    this.#handler = null;
    this.#armed = false;
    this.#eventPending = false;
    this.#count = 0;
    this.onClosed();
  }
}
