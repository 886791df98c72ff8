/**
 * Work requests of one link (cf. smc_wr.c): a bounded set of send slots for CDC and LLC messages,
 * posted receive buffers, RDMA WRITE posting for the data path, and the completion loop that
 * demultiplexes received messages by their first byte (0xFE CDC, otherwise LLC; spec 1) to the
 * handlers the link registers.
 *
 * Everything is preallocated when the link is created: message buffers live in two registered
 * memory blocks, each slot has its own SendWr/RecvWr object, completions are polled into a fixed
 * array. Posting and polling allocate nothing.
 *
 * The message memory is read and written through plain Uint8Array views made once here, not through
 * the blocks' Buffers or subarrays of them: a provider may back its blocks with a resizable
 * ArrayBuffer (mem does), and on Node 20 every Buffer (a Uint8Array subclass) over such a buffer
 * gets a map of its own, so the codecs' element accesses went megamorphic and a 44-byte CDC encode
 * took microseconds. Plain Uint8Array views of one ArrayBuffer share a map.
 */
import {
  Access, SendFlag, WcOpcode, WcStatus, WrOpcode, newRecvWr, newSendWr, newWorkCompletion,
  type Context, type Cq, type MemoryBlock, type Mr, type Pd, type Qp, type RecvWr, type SendWr, type WorkCompletion,
} from '@smc-r/verbs';

/** Size of a v1 LLC / CDC message and of v1 receive buffers (SMC_WR_TX_SIZE). */
export const WR_MSG_SIZE = 44;

/** What the link does with completions. Called from the event loop, never re-entrantly. */
export interface WrHandlers {
  /** A received message (CDC or LLC). `buf[off, off+len)` is valid only during the call. */
  onReceive(buf: Uint8Array, off: number, len: number): void;
  /** A signaled send slot completed successfully; `tag` is what postMessage was given. */
  onSendDone(tag: number): void;
  /** Any error completion: the link is unusable (the QP is in ERR). Called once. */
  onError(status: number, what: 'send' | 'recv' | 'write'): void;
}

export interface WrQueueOptions {
  /** Send slots (upstream smcr_max_send_wr: 16). */
  sendSlots: number;
  /** Receive buffers (upstream smcr_max_recv_wr: 48). */
  recvSlots: number;
  /** Bytes per slot: 44 in an SMC-Rv1 link group, 8192 in v2 (LLC v2 messages can be long). */
  slotSize: number;
  /** Extra send WRs reserved for RDMA WRITEs of the data path (up to 2 per transfer). */
  writeSlots: number;
}

// wrId encoding: the kind in bits 20.., the index below. Numbers, not objects: no allocation.
const WR_KIND_SEND = 1 << 20;
const WR_KIND_RECV = 2 << 20;
const WR_KIND_WRITE = 3 << 20;
const WR_INDEX_MASK = (1 << 20) - 1;

/** How many completions one poll call takes. */
const POLL_BATCH = 32;

/**
 * The link's WR machinery. Create it after the QP exists and before moving it to RTR (receives
 * must be posted first); then `start()` arms the CQ.
 */
export class WrQueue {
  readonly #qp: Qp;
  readonly #cq: Cq;
  readonly #handlers: WrHandlers;
  readonly #opts: WrQueueOptions;
  readonly #sendBlock: MemoryBlock;
  readonly #recvBlock: MemoryBlock;
  readonly #sendMr: Mr;
  readonly #recvMr: Mr;
  /** Plain views of the send and receive message memory (see the module comment). */
  readonly #sendMem: Uint8Array;
  readonly #recvMem: Uint8Array;
  readonly #sendWrs: SendWr[] = [];
  readonly #sendTags: number[] = [];
  readonly #sendFree: number[] = [];
  readonly #recvWrs: RecvWr[] = [];
  readonly #writeWrs: SendWr[] = [];
  readonly #writeFree: number[] = [];
  readonly #wcs: WorkCompletion[] = [];
  #failed = false;
  #closed = false;
  /** Slot waiters, in order; bounded by the caller (one per pending LLC flow / connection). */
  readonly #waiters: (() => void)[] = [];
  readonly #onCq = (): void => this.#drain();

  constructor(ctx: Context, pd: Pd, qp: Qp, cq: Cq, handlers: WrHandlers, opts: WrQueueOptions) {
    this.#qp = qp;
    this.#cq = cq;
    this.#handlers = handlers;
    this.#opts = opts;
    const { sendSlots, recvSlots, slotSize, writeSlots } = opts;
    this.#sendBlock = ctx.allocMemory(sendSlots * slotSize);
    this.#recvBlock = ctx.allocMemory(recvSlots * slotSize);
    this.#sendMr = pd.registerMr(this.#sendBlock, 0, this.#sendBlock.length, Access.LOCAL_WRITE);
    this.#recvMr = pd.registerMr(this.#recvBlock, 0, this.#recvBlock.length, Access.LOCAL_WRITE);
    this.#sendMem = plainView(this.#sendBlock.buffer);
    this.#recvMem = plainView(this.#recvBlock.buffer);
    for (let i = 0; i < sendSlots; i++) {
      const wr = newSendWr(1);
      wr.wrId = WR_KIND_SEND | i;
      wr.opcode = WrOpcode.SEND;
      wr.sgList[0] = { mr: this.#sendMr, offset: i * slotSize, length: slotSize };
      wr.numSge = 1;
      this.#sendWrs.push(wr);
      this.#sendTags.push(0);
      this.#sendFree.push(sendSlots - 1 - i);
    }
    for (let i = 0; i < recvSlots; i++) {
      const wr = newRecvWr(1);
      wr.wrId = WR_KIND_RECV | i;
      wr.sgList[0] = { mr: this.#recvMr, offset: i * slotSize, length: slotSize };
      wr.numSge = 1;
      this.#recvWrs.push(wr);
    }
    for (let i = 0; i < writeSlots; i++) {
      const wr = newSendWr(2);
      wr.wrId = WR_KIND_WRITE | i;
      wr.opcode = WrOpcode.RDMA_WRITE;
      wr.sgList[0] = { mr: this.#sendMr, offset: 0, length: 0 };
      wr.sgList[1] = { mr: this.#sendMr, offset: 0, length: 0 };
      this.#writeWrs.push(wr);
      this.#writeFree.push(writeSlots - 1 - i);
    }
    for (let i = 0; i < POLL_BATCH; i++) this.#wcs.push(newWorkCompletion());
  }

  /** Posts every receive buffer. Call once, with the QP in INIT (before RTR). */
  postReceives(): void {
    for (const wr of this.#recvWrs) this.#qp.postRecv(wr);
  }

  /** Starts completion processing. */
  start(): void {
    this.#cq.setHandler(this.#onCq);
    this.#cq.arm();
    // Completions may already be queued (a fast peer): drain once now, from the event loop.
    queueMicrotask(this.#onCq);
  }

  get failed(): boolean {
    return this.#failed;
  }

  get freeSendSlots(): number {
    return this.#sendFree.length;
  }

  /**
   * Reserves a send slot and returns its index, or -1 when all are in flight (the caller waits
   * with `whenSlotFree`). Fill `slotBuffer(i)` and call `postMessage`.
   */
  getSlot(): number {
    const i = this.#sendFree.pop();
    return i === undefined ? -1 : i;
  }

  /** Calls `fn` once a send slot is free (immediately queued if one is free now). */
  whenSlotFree(fn: () => void): void {
    if (this.#sendFree.length > 0) queueMicrotask(fn);
    else this.#waiters.push(fn);
  }

  /** The slot's message buffer (a new view into registered memory, `slotSize` bytes). */
  slotBuffer(slot: number): Uint8Array {
    return this.#sendMem.subarray(slot * this.#opts.slotSize, (slot + 1) * this.#opts.slotSize);
  }

  /**
   * The memory of all send slots, for encoders that write at {@link slotOffset} without a view per
   * message (the data path's CDCs). Write at most `slotSize` bytes there.
   */
  get sendMemory(): Uint8Array {
    return this.#sendMem;
  }

  /** Offset of the slot's message in {@link sendMemory}. */
  slotOffset(slot: number): number {
    return slot * this.#opts.slotSize;
  }

  /**
   * Sends `len` bytes of the slot as an RDMA SEND. Every message is signaled: its completion frees
   * the slot and reports `tag` to onSendDone (CDCs use it to release send-buffer space).
   */
  postMessage(slot: number, len: number, tag: number): void {
    const wr = this.#sendWrs[slot]!;
    wr.sgList[0]!.length = len;
    wr.flags = SendFlag.SIGNALED | SendFlag.SOLICITED;
    this.#sendTags[slot] = tag;
    this.#qp.postSend(wr);
  }

  /** Gives back a slot obtained with getSlot() that was not posted. */
  releaseSlot(slot: number): void {
    this.#freeSlot(slot);
  }

  /**
   * Posts one RDMA WRITE of up to two pieces of `mr` (the connection's send buffer) to the peer's
   * (raddrHi, raddrLo, rkey). Unsignaled, like upstream: RC ordering makes the following CDC's
   * completion imply the write's. Returns false when no write WR is free.
   */
  postWrite(mr: Mr, off1: number, len1: number, off2: number, len2: number, raddrHi: number, raddrLo: number, rkey: number): boolean {
    const i = this.#writeFree.pop();
    if (i === undefined) return false;
    const wr = this.#writeWrs[i]!;
    const s0 = wr.sgList[0]!;
    s0.mr = mr;
    s0.offset = off1;
    s0.length = len1;
    if (len2 > 0) {
      const s1 = wr.sgList[1]!;
      s1.mr = mr;
      s1.offset = off2;
      s1.length = len2;
      wr.numSge = 2;
    } else {
      wr.numSge = 1;
    }
    wr.raddrHi = raddrHi;
    wr.raddrLo = raddrLo;
    wr.rkey = rkey;
    wr.flags = 0;
    this.#qp.postSend(wr);
    // Unsignaled: the WR object is reusable once the provider has taken it (post copies the WR).
    this.#writeFree.push(i);
    return true;
  }

  #freeSlot(slot: number): void {
    this.#sendFree.push(slot);
    const w = this.#waiters.shift();
    if (w !== undefined) w();
  }

  #drain(): void {
    // A completion handler may close the link (error -> link group terminated), destroying the CQ:
    // check after every completion, never poll a closed queue.
    while (!this.#closed) {
      const n = this.#cq.poll(this.#wcs, POLL_BATCH);
      for (let k = 0; k < n && !this.#closed; k++) this.#complete(this.#wcs[k]!);
      if (this.#closed) return;
      if (n < POLL_BATCH) {
        this.#cq.arm();
        // Close the arm race: anything that completed between the last poll and arm().
        const m = this.#cq.poll(this.#wcs, POLL_BATCH);
        if (m === 0) return;
        for (let k = 0; k < m && !this.#closed; k++) this.#complete(this.#wcs[k]!);
      }
    }
  }

  #complete(wc: WorkCompletion): void {
    const kind = wc.wrId & ~WR_INDEX_MASK;
    const index = wc.wrId & WR_INDEX_MASK;
    if (wc.status !== WcStatus.SUCCESS) {
      if (kind === WR_KIND_SEND) this.#freeSlot(index);
      if (!this.#failed) {
        this.#failed = true;
        this.#handlers.onError(wc.status, kind === WR_KIND_RECV ? 'recv' : kind === WR_KIND_WRITE ? 'write' : 'send');
      }
      return;
    }
    if (kind === WR_KIND_RECV) {
      if (wc.opcode === WcOpcode.RECV && wc.byteLen > 0) {
        const off = index * this.#opts.slotSize;
        this.#handlers.onReceive(this.#recvMem, off, wc.byteLen);
      }
      if (!this.#closed && !this.#failed) this.#qp.postRecv(this.#recvWrs[index]!);
    } else if (kind === WR_KIND_SEND) {
      const tag = this.#sendTags[index]!;
      this.#freeSlot(index);
      this.#handlers.onSendDone(tag);
    }
  }

  /** Stops processing and deregisters the buffers. The QP must be destroyed first. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cq.setHandler(null);
    this.#waiters.length = 0;
    this.#sendMr.close();
    this.#recvMr.close();
    this.#sendBlock.free();
    this.#recvBlock.free();
  }
}

/** A plain Uint8Array over the same bytes as `b` (one object; see the module comment). */
function plainView(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}
