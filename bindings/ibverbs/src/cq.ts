/**
 * A completion queue with its own completion channel, watched by libuv (koffi.node.poll on the
 * channel fd, made non-blocking so draining events never blocks the event loop).
 *
 * poll(): one ops.poll_cq call per batch of up to POLL_BATCH completions into preallocated native
 * ibv_wc slots, decoded with DataView into the caller's objects: no allocation.
 *
 * arm(): ops.req_notify_cq, then one look into the CQ. Hardware differs on completions already
 * queued at arm time (an mlx5 CQ raises an event for them, rxe and the test device do not), and the
 * verbs interface promises the handler either way: a completion found by that look is kept in a
 * one-entry stash (poll() returns it first) and the handler is called on a later turn. Each arm
 * gives at most one handler call, from the event loop, never inside a verb.
 */
import koffi, { type node as KoffiNode } from 'koffi';
import { Errno, VerbsError, type Cq, type WorkCompletion } from '@smc-r/verbs';
import type { ChannelPtr, CqPtr, MemPtr } from './handles.js';
import { OFF, IBV } from './layout.js';
import { errnoOf, lastErrno, loadLibc, nativeAlloc, nativeFree, type ContextOps, type VerbsLib } from './native.js';
import type { IbvContext } from './context.js';

/** Completions fetched per poll_cq call. */
export const POLL_BATCH = 32;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
const TWO32 = 4294967296;

export class IbvCq implements Cq {
  readonly context: IbvContext;
  readonly cqe: number;
  readonly overruns = 0;
  readonly #lib: VerbsLib;
  readonly #ops: ContextOps;
  #ptr: CqPtr | null;
  #channel: ChannelPtr | null;
  readonly #poller: KoffiNode.PollHandle;
  /** POLL_BATCH ibv_wc slots, then one stash slot. */
  readonly #wcPtr: MemPtr;
  readonly #stashPtr: MemPtr;
  readonly #wc: DataView;
  readonly #eventOut = Buffer.alloc(16);
  #stashed = false;
  #armed = false;
  #firePending = false;
  #handler: (() => void) | null = null;
  /** QPs using this CQ (send or receive side). */
  users = 0;

  constructor(lib: VerbsLib, ops: ContextOps, context: IbvContext, cqe: number) {
    if (!Number.isInteger(cqe) || cqe < 1) throw new VerbsError('create_cq', Errno.EINVAL, `bad cqe ${cqe}`);
    const ctx = context.ptr;
    const ch = lib.create_comp_channel(ctx);
    if (ch === null) throw new VerbsError('create_cq', lastErrno(), 'ibv_create_comp_channel failed');
    const cq = lib.create_cq(ctx, cqe, null, ch, 0);
    if (cq === null) {
      const e = lastErrno();
      lib.destroy_comp_channel(ch);
      throw new VerbsError('create_cq', e, `ibv_create_cq(${cqe}) failed`);
    }
    this.#lib = lib;
    this.#ops = ops;
    this.context = context;
    this.cqe = cqe;
    this.#ptr = cq;
    this.#channel = ch;
    const mem = nativeAlloc((POLL_BATCH + 1) * OFF.wc_size);
    this.#wcPtr = mem.ptr;
    this.#stashPtr = (mem.ptr + BigInt(POLL_BATCH * OFF.wc_size)) as MemPtr;
    this.#wc = mem.view;
    const fd = koffi.decode(ch, OFF.channel_fd, 'int') as number;
    const libc = loadLibc();
    libc.fcntl(fd, F_SETFL, libc.fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    // koffi calls the callback as (status, events); only readability matters here.
    this.#poller = koffi.node.poll(fd, { readable: true }, (() => this.#onReadable()) as (ev: KoffiNode.PollEvents) => void);
    this.#poller.unref();
  }

  get closed(): boolean {
    return this.#ptr === null;
  }

  get ptr(): CqPtr {
    if (this.#ptr === null) throw new VerbsError('create_qp', Errno.EINVAL, 'the CQ is closed');
    return this.#ptr;
  }

  poll(out: WorkCompletion[], max: number): number {
    const cq = this.#ptr;
    if (cq === null) throw new VerbsError('poll_cq', Errno.EINVAL, 'the CQ is closed');
    let n = 0;
    if (this.#stashed && max > 0) {
      this.#stashed = false;
      decode(this.#wc, POLL_BATCH * OFF.wc_size, out[0]!);
      n = 1;
    }
    while (n < max) {
      const want = Math.min(max - n, POLL_BATCH);
      const got = this.#ops.poll_cq(cq, want, this.#wcPtr);
      if (got < 0) throw new VerbsError('poll_cq', errnoOf(got), 'poll_cq failed');
      for (let i = 0; i < got; i++) decode(this.#wc, i * OFF.wc_size, out[n + i]!);
      n += got;
      if (got < want) break;
    }
    return n;
  }

  arm(solicitedOnly = false): void {
    const cq = this.#ptr;
    if (cq === null) throw new VerbsError('req_notify_cq', Errno.EINVAL, 'the CQ is closed');
    const rc = this.#ops.req_notify_cq(cq, solicitedOnly ? 1 : 0);
    if (rc !== 0) throw new VerbsError('req_notify_cq', errnoOf(rc), 'req_notify_cq failed');
    this.#armed = true;
    this.#syncRef();
    if (!this.#stashed) {
      const got = this.#ops.poll_cq(cq, 1, this.#stashPtr);
      if (got < 0) throw new VerbsError('poll_cq', errnoOf(got), 'poll_cq failed');
      this.#stashed = got === 1;
    }
    if (this.#stashed) this.#fireLater();
  }

  setHandler(handler: (() => void) | null): void {
    this.#handler = handler;
    this.#syncRef();
  }

  close(): void {
    const cq = this.#ptr;
    if (cq === null) return;
    if (this.users > 0) throw new VerbsError('destroy_cq', Errno.EBUSY, `${this.users} QP(s) still use this CQ`);
    this.#poller.close();
    this.#drainEvents();
    const rc = this.#lib.destroy_cq(cq);
    if (rc !== 0) throw new VerbsError('destroy_cq', errnoOf(rc), 'ibv_destroy_cq failed');
    this.#ptr = null;
    const ch = this.#channel!;
    this.#channel = null;
    const rc2 = this.#lib.destroy_comp_channel(ch);
    nativeFree(this.#wcPtr);
    this.#handler = null;
    this.context.forget(this);
    if (rc2 !== 0) throw new VerbsError('destroy_cq', errnoOf(rc2), 'ibv_destroy_comp_channel failed');
  }

  /** Keeps the process alive only while someone waits for an event. */
  #syncRef(): void {
    if (this.#ptr === null) return;
    if (this.#armed && this.#handler !== null) this.#poller.ref();
    else this.#poller.unref();
  }

  /** Reads and acks every pending channel event; returns how many there were. */
  #drainEvents(): number {
    const ch = this.#channel;
    const cq = this.#ptr;
    if (ch === null || cq === null) return 0;
    let n = 0;
    while (this.#lib.get_cq_event(ch, this.#eventOut.subarray(0, 8), this.#eventOut.subarray(8, 16)) === 0) n++;
    if (n > 0) this.#lib.ack_cq_events(cq, n);
    return n;
  }

  #onReadable(): void {
    if (this.#drainEvents() > 0) this.#fire();
  }

  #fireLater(): void {
    if (this.#firePending) return;
    this.#firePending = true;
    setImmediate(() => {
      this.#firePending = false;
      this.#fire();
    });
  }

  #fire(): void {
    if (!this.#armed || this.#ptr === null) return;
    const h = this.#handler;
    if (h === null) return; // stays armed: setHandler + a later event deliver it
    this.#armed = false;
    this.#syncRef();
    h();
  }
}

/** ibv_wc at `off` -> a WorkCompletion (DataView reads only). */
function decode(v: DataView, off: number, wc: WorkCompletion): void {
  wc.wrId = v.getUint32(off + OFF.wc_wr_id, true) + v.getUint32(off + OFF.wc_wr_id + 4, true) * TWO32;
  wc.status = v.getUint32(off + OFF.wc_status, true);
  wc.opcode = v.getUint32(off + OFF.wc_opcode, true);
  wc.vendorErr = v.getUint32(off + OFF.wc_vendor_err, true);
  wc.byteLen = v.getUint32(off + OFF.wc_byte_len, true);
  wc.withImm = (v.getUint32(off + OFF.wc_wc_flags, true) & IBV.WC_WITH_IMM) !== 0;
  // __be32 on the wire: read big-endian, the value as the wire has it.
  wc.immData = wc.withImm ? v.getUint32(off + OFF.wc_imm_data, false) : 0;
  wc.qpNum = v.getUint32(off + OFF.wc_qp_num, true);
}
