/**
 * One SMC-R connection as a Node Duplex stream (cf. af_smc.c's socket ops over smc_tx.c, smc_rx.c,
 * smc_cdc.c and smc_close.c). The stream's buffering is kept small: backpressure comes from the
 * send ring (SmcTx.write returns 0 when full, and _write waits) and from the reader (data stays in
 * our RMBE until read, and the consumer cursor, and so the peer's window, moves only then).
 *
 * Per CDC nothing is allocated: one transfer descriptor, one CdcFields, reused.
 */
import { Duplex } from 'node:stream';
import { encodeCdc, newCdcFields, type CdcFields } from '@smc-r/wire';
import type { MemoryBlock, Mr } from '@smc-r/verbs';
import { CloseMachine, type CloseAction } from './close.js';
import { ConnState } from './conn-state.js';
import { EngineError, EngineErrorCode } from './errors.js';
import type { Link } from './link.js';
import { SEND_TAG_SCALE } from './lgr.js';
import { SmcRx } from './rx.js';
import { SmcTx, TxFlush, newTxTransfer, type TxTransfer } from './tx.js';
import { Timers } from './constants.js';

/** Our buffers for one connection: the RMB (peer writes into it) and the send ring (we write from it). */
export interface ConnBuffers {
  readonly rmbBlock: MemoryBlock;
  readonly rmbMr: Mr;
  readonly sndBlock: MemoryBlock;
  readonly sndMr: Mr;
}

export interface ConnPeer {
  /** The peer's alert token: goes into every CDC we send. */
  readonly token: number;
  readonly rkey: number;
  /** Address of the peer's RMBE for this connection, 32-bit halves. */
  readonly rmbeAddrHi: number;
  readonly rmbeAddrLo: number;
  readonly rmbeSize: number;
}

export interface SmcConnectionOptions {
  readonly link: Link;
  /** Our alert token (the peer puts it into its CDCs). */
  readonly token: number;
  readonly buffers: ConnBuffers;
  readonly peer: ConnPeer;
  readonly role: 'client' | 'server';
  /** Called once when the connection's resources can be released (close machine `release`). */
  readonly onRelease: (conn: SmcConnection) => void;
}

/** Counters for `smcr ss -d` style output. */
export interface ConnCounters {
  bytesSent: number;
  bytesReceived: number;
  cdcSent: number;
  cdcReceived: number;
  writesPosted: number;
}

const TWO32 = 0x1_0000_0000;

/** The registered range of `block` as a plain Uint8Array view (one per connection). */
function ringView(block: MemoryBlock, mr: Mr): Uint8Array {
  const b = block.buffer;
  return new Uint8Array(b.buffer, b.byteOffset + mr.offset, mr.length);
}

export class SmcConnection extends Duplex {
  readonly token: number;
  readonly role: 'client' | 'server';
  readonly state: ConnState;
  readonly tx: SmcTx;
  readonly rx: SmcRx;
  readonly close: CloseMachine;
  readonly link: Link;
  /** Small index in the link group, carried in send-completion tags (set by LinkGroup.addConn). */
  index = 0;
  readonly counters: ConnCounters = { bytesSent: 0, bytesReceived: 0, cdcSent: 0, cdcReceived: 0, writesPosted: 0 };
  readonly #buffers: ConnBuffers;
  readonly #peer: ConnPeer;
  readonly #onRelease: (conn: SmcConnection) => void;
  readonly #xfer: TxTransfer = newTxTransfer();
  readonly #cdc: CdcFields = newCdcFields();
  /** A write waiting for ring space: the chunk, how far it got, and its callback. */
  #pendingChunk: Buffer | null = null;
  #pendingOff = 0;
  #pendingCb: ((err?: Error | null) => void) | null = null;
  #finalCb: ((err?: Error | null) => void) | null = null;
  #waitingSlot = false;
  /** A control CDC (close flags, consumer update) found no free slot: send it when one frees. */
  #controlOwed = false;
  #corkTimer: NodeJS.Timeout | null = null;
  #drainTimer: NodeJS.Timeout | null = null;
  #readWanted = false;
  #released = false;
  #eofPushed = false;

  constructor(opts: SmcConnectionOptions) {
    // The stream's own buffers stay small: the send ring and the RMBE do the buffering.
    super({ allowHalfOpen: true, highWaterMark: 16 * 1024, readableHighWaterMark: 64 * 1024 });
    this.token = opts.token;
    this.role = opts.role;
    this.link = opts.link;
    this.#buffers = opts.buffers;
    this.#peer = opts.peer;
    this.#onRelease = opts.onRelease;
    this.state = new ConnState({
      sndbufSize: opts.buffers.sndMr.length, rmbeSize: opts.buffers.rmbMr.length,
      peerRmbeSize: opts.peer.rmbeSize, peerToken: opts.peer.token,
    });
    // Plain Uint8Array views, not Buffer subarrays: see wr.ts on Buffers over resizable memory.
    const snd = ringView(opts.buffers.sndBlock, opts.buffers.sndMr);
    const rmb = ringView(opts.buffers.rmbBlock, opts.buffers.rmbMr);
    this.tx = new SmcTx(this.state, snd);
    this.rx = new SmcRx(this.state, rmb, this.tx);
    this.close = new CloseMachine();
    this.close.connected();
  }

  // ------------------------------------------------------------------ Duplex

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const err = this.close.sendError();
    if (err !== null) {
      cb(new EngineError(err === 'ECONNRESET' ? EngineErrorCode.RESET : EngineErrorCode.STATE, `write after ${err}`));
      return;
    }
    this.#pendingChunk = chunk;
    this.#pendingOff = 0;
    this.#pendingCb = cb;
    this.#fillFromPending();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#finalCb = cb;
    this.#act(this.close.end(this.state.sndbufSize - this.state.sndbufSpace > 0));
  }

  override _read(): void {
    this.#readWanted = true;
    this.#deliver();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#corkTimer !== null) clearTimeout(this.#corkTimer);
    this.#corkTimer = null;
    if (this.close.state !== 'CLOSED' && !this.#released) {
      // After end() and the peer's end, with everything read and sent, destroy() is the orderly close
      // (autoDestroy calls it); any other destroy() aborts, as node:net's does.
      const orderly = err === null && this.writableFinished && this.readableEnded;
      const txPending = this.state.sndbufSpace < this.state.sndbufSize;
      try {
        this.#act(orderly ? this.close.close(txPending, this.rx.readable > 0) : this.close.destroy(err !== null));
      } catch {
        // The state machine refuses only impossible events here; the link group still releases us.
      }
    }
    // Resources are released when the close machine says so (both sides closed) or the link group
    // ends: the peer may still write into our RMB until it has seen our close (spec 7.6).
    cb(err);
  }

  // ------------------------------------------------------------------ urgent data (spec 7.5)

  /**
   * send(MSG_OOB): sends `data` with its last byte as the urgent byte. Ordered after everything written
   * before, so it is refused (false) while the stream still holds earlier writes or an earlier urgent
   * send is unconsumed, or the ring lacks room for all of it; try again after 'drain'. The peer gets an
   * 'urgent' event with the byte; the other bytes arrive in the normal stream.
   */
  sendUrgent(data: Buffer): boolean {
    if (data.length === 0 || this.writableLength > 0 || this.#pendingChunk !== null) return false;
    if (this.close.sendError() !== null || this.tx.space < data.length) return false;
    const n = this.tx.write(data, 0, data.length, true);
    if (n !== data.length) {
      // tx.write refuses whole (an urgent send is outstanding) or fits all: we checked the space.
      return false;
    }
    this.counters.bytesSent += n;
    this.#push();
    return true;
  }

  // ------------------------------------------------------------------ send path

  #fillFromPending(): void {
    const chunk = this.#pendingChunk;
    if (chunk === null) return;
    while (this.#pendingOff < chunk.length) {
      const n = this.tx.write(chunk, this.#pendingOff, chunk.length - this.#pendingOff);
      if (n === 0) break;
      this.#pendingOff += n;
      this.counters.bytesSent += n;
    }
    // "More is coming" only when the stream holds data beyond the chunk being written (writableLength
    // counts the current chunk too), else a lone small write would wait for the cork timer.
    const flush = this.tx.flushDecision(this.#pendingOff < chunk.length || this.writableLength > chunk.length);
    if (flush === TxFlush.NOW.value || this.#pendingOff < chunk.length) this.#push();
    else if (flush === TxFlush.CORK.value) this.#armCork();
    if (this.#pendingOff >= chunk.length) {
      const cb = this.#pendingCb!;
      this.#pendingChunk = null;
      this.#pendingCb = null;
      cb();
    }
  }

  #armCork(): void {
    if (this.#corkTimer !== null) return;
    this.#corkTimer = setTimeout(() => {
      this.#corkTimer = null;
      this.#push();
    }, Timers.TX_CORK_DELAY);
  }

  /** Moves prepared data to the peer: RDMA WRITEs, then the CDC, while slots and peer space last. */
  #push(): void {
    const link = this.link;
    const x = this.#xfer;
    while (!link.closed && !link.wr.failed) {
      const slot = link.wr.getSlot();
      if (slot < 0) {
        this.#waitSlot();
        return;
      }
      if (!this.tx.nextTransfer(x)) {
        link.wr.releaseSlot(slot);
        break;
      }
      const mr = this.#buffers.sndMr;
      for (let i = 0; i < x.writeCount; i++) {
        const w = x.writes[i]!;
        const lo = this.#peer.rmbeAddrLo + w.dstOff;
        const hi = this.#peer.rmbeAddrHi + (lo >= TWO32 ? 1 : 0);
        const s0 = w.sge[0];
        const s1 = w.sge[1];
        link.wr.postWrite(mr, s0.off, s0.len, s1.off, w.sgeCount > 1 ? s1.len : 0, hi >>> 0, lo % TWO32, this.#peer.rkey);
        this.counters.writesPosted++;
      }
      this.#postCdc(slot, x.cdc, x.mark);
    }
    this.#maybeConsumerUpdate();
  }

  #postCdc(slot: number, fields: CdcFields, mark: number): void {
    const wr = this.link.wr;
    encodeCdc(fields, wr.sendMemory, wr.slotOffset(slot));
    // The tag carries our index and the mark so the link group routes the completion back to us.
    this.link.wr.postMessage(slot, 44, this.index * SEND_TAG_SCALE + mark);
    this.counters.cdcSent++;
  }

  #waitSlot(): void {
    if (this.#waitingSlot) return;
    this.#waitingSlot = true;
    this.link.wr.whenSlotFree(() => {
      this.#waitingSlot = false;
      if (this.#controlOwed) {
        this.#controlOwed = false;
        if (!this.#sendControlCdc()) return;
      }
      this.#push();
    });
  }

  /** A CDC without data: consumer-cursor update or close flags (smc_cdc_get_slot_and_msg_send). */
  #sendControlCdc(): boolean {
    const link = this.link;
    if (link.closed || link.wr.failed) return false;
    const slot = link.wr.getSlot();
    if (slot < 0) {
      this.#controlOwed = true;
      this.#waitSlot();
      return false;
    }
    const mark = this.state.fillCdc(this.#cdc);
    this.#postCdc(slot, this.#cdc, mark);
    return true;
  }

  #maybeConsumerUpdate(): void {
    if (this.rx.consumerUpdateDue()) this.#sendControlCdc();
  }

  /** The link reports a completed CDC send (tag = the mark fillCdc returned). */
  onSendDone(mark: number): void {
    const push = this.tx.onSendComplete(mark);
    if (push || this.tx.prepared > 0) this.#push();
    if (this.#pendingChunk !== null) this.#fillFromPending();
    if (this.close.pending !== 'none' && this.state.sndbufSpace === this.state.sndbufSize) this.#drained();
  }

  // ------------------------------------------------------------------ receive path

  /** A CDC for this connection arrived on the link. `fields` is reused by the caller. */
  onCdc(fields: Readonly<CdcFields>): void {
    this.counters.cdcReceived++;
    const r = this.rx.onCdc(fields);
    if (r.verdict === 'old') return;
    if (r.verdict === 'out-of-sync' || r.verdict === 'bad-cursor') {
      this.destroy(new EngineError(EngineErrorCode.PROTOCOL, `CDC rejected: ${r.verdict}`));
      return;
    }
    if (r.urgentArrived) {
      const b = this.rx.readUrgent();
      if (b >= 0) this.emit('urgent', b);
    }
    if (r.newBytes > 0) this.#deliver();
    if (r.txWanted || r.freed > 0) {
      if (this.#pendingChunk !== null) this.#fillFromPending();
      this.#push();
    }
    if (r.peerDoneWriting || r.peerConnClosed || r.peerConnAbort) {
      this.#act(this.close.peerCdc(r));
    }
    this.#maybeConsumerUpdate();
  }

  /** Copies readable bytes into the stream while it wants them. */
  #deliver(): void {
    while (this.#readWanted && this.rx.readable > 0) {
      const n = this.rx.readable;
      const out = Buffer.allocUnsafe(Math.min(n, 64 * 1024));
      const got = this.rx.read(out, 0, out.length);
      if (got === 0) break;
      this.counters.bytesReceived += got;
      this.#readWanted = this.push(got === out.length ? out : out.subarray(0, got));
      this.#maybeConsumerUpdate();
    }
    if (this.rx.readable === 0 && (this.state.peerDoneWriting || this.state.peerConnClosed) && !this.#eofPushed) {
      this.#eofPushed = true;
      this.push(null);
    }
  }

  // ------------------------------------------------------------------ close

  /** Carries out what the close machine decided. */
  #act(a: CloseAction): void {
    if (a.drain) {
      this.#drainTimer ??= setTimeout(() => { this.#drainTimer = null; this.#drained(); }, Timers.MAX_STREAM_WAIT);
      this.#push();
      if (this.state.sndbufSpace === this.state.sndbufSize) this.#drained();
      return;
    }
    if (a.sendCdc) {
      this.state.localDoneWriting = a.txDoneWriting;
      this.state.localConnClosed = a.txConnClosed;
      this.state.localConnAbort = a.txConnAbort;
      this.#sendControlCdc();
    }
    if (a.readerEof) this.#deliver();
    if (a.error !== null && !this.destroyed) {
      const code = a.error === 'ECONNRESET' ? EngineErrorCode.RESET : EngineErrorCode.ABORTED;
      this.destroy(new EngineError(code, a.error === 'ECONNRESET' ? 'connection reset by peer' : 'connection aborted'));
    }
    if (this.#finalCb !== null && (this.state.localDoneWriting || this.state.localConnClosed)) {
      const cb = this.#finalCb;
      this.#finalCb = null;
      cb();
    }
    if (a.release) this.#release();
  }

  #drained(): void {
    if (this.#drainTimer !== null) {
      clearTimeout(this.#drainTimer);
      this.#drainTimer = null;
    }
    if (this.close.pending === 'none') return;
    this.#act(this.close.drained(this.rx.readable > 0));
  }

  /** The link group died (link down, DELETE_LINK): local abort (spec 9.2 last table). */
  abortLocal(): void {
    if (this.#released) return;
    // The link cannot carry the best-effort abort CDC the machine asks for (smc_conn_kill): skip it.
    const a = this.close.localAbort();
    this.#act({ ...a, sendCdc: false });
    this.#act(this.close.abortDone());
    if (!this.destroyed) this.destroy(new EngineError(EngineErrorCode.ABORTED, 'link group terminated'));
  }

  #clearTimers(): void {
    if (this.#corkTimer !== null) clearTimeout(this.#corkTimer);
    if (this.#drainTimer !== null) clearTimeout(this.#drainTimer);
    this.#corkTimer = null;
    this.#drainTimer = null;
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#clearTimers();
    this.#onRelease(this);
  }
}
