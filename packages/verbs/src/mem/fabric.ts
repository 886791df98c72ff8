/**
 * The in-process "fabric" of the mem provider: its devices, the shared memory arena, and the
 * scheduler that runs the transport.
 *
 * Asynchrony (why, and what it costs): post_send / post_recv only queue the work request and
 * ask for one deferred turn of the fabric (one per turn, whatever the number of WRs posted). That
 * turn executes every runnable QP's send queue in post order (checked copies, receive consumption,
 * completions), then calls the handlers of the CQs that got an event. So, as on hardware:
 * - nothing completes, and no handler runs, inside a verb's call stack; a buffer handed to a
 *   non-inline WR is read when the WR executes, not at post time (reusing it early is a bug here
 *   too, while INLINE data is copied at post time);
 * - handlers raised during the notification stage (a handler that re-arms a non-empty CQ) run on
 *   the next turn, so a handler that never drains its CQ cannot spin inside one turn.
 *
 * A turn that starts after the event loop was idle for the fabric is a setImmediate, as every turn
 * used to be: an isolated post, a timer's TEST_LINK, a test's single WR see one event-loop iteration
 * before anything completes. Once a turn has run, the turns it causes (a handler that posts, an
 * application that answers from its 'data' handler or from a promise continuation) are microtasks
 * (reactions to a resolved promise: about 40 ns against 100 for queueMicrotask and 1 us for an
 * event-loop iteration) until the event loop next reaches its check phase or {@link MICROTASK_BURST}
 * of them ran; then the next turn is a setImmediate again. So a QP ping-pong costs no event-loop
 * iteration per hop (an iteration, with its epoll_wait, was most of an in-process round trip), the
 * contract holds (a microtask runs once the caller's stack has unwound, never inside a verb), and
 * a flood of completions still lets timers and sockets run every MICROTASK_BURST turns. A turn
 * allocates one promise reaction where it allocated one Immediate; a burst adds one setImmediate
 * (the one that closes it).
 */
import { Arena } from './arena.js';
import type { MemCq } from './cq.js';
import { MemDevice } from './device.js';
import type { MemQp } from './qp.js';

/**
 * Fabric turns run as microtasks in a row before one waits for the event loop (setImmediate).
 * Small enough that a flood of completions delays timers and I/O by at most a few milliseconds
 * (a turn copies at most what its WRs carry), large enough that the two setImmediates per burst
 * are amortized over many hops.
 */
export const MICROTASK_BURST = 32;

const RESOLVED = Promise.resolve();

function rethrow(e: unknown): never {
  throw e;
}

export interface MemFabricOptions {
  devices: number;
  maxAckTimeoutMs: number;
  maxRnrDelayMs: number;
  arenaMaxBytes: number;
  addrHiBase: number;
}

export class MemFabric {
  readonly devices: readonly MemDevice[];
  readonly arena: Arena;
  readonly maxAckTimeoutMs: number;
  readonly maxRnrDelayMs: number;
  readonly addrHiBase: number;

  private scheduled = false;
  private work: (MemQp | undefined)[] = [];
  private workLen = 0;
  private notify: (MemCq | undefined)[] = [];
  private notifySpare: (MemCq | undefined)[] = [];
  private notifyLen = 0;
  private readonly runBound: () => void;
  /** The same turn as a promise reaction: a throw is re-raised as an uncaught exception. */
  private readonly runReaction: () => void;
  /**
   * A turn ran since the event loop last reached its check phase: further turns may be microtasks.
   * `burst` counts those microtask turns; the queued setImmediate `burstEndBound` closes the burst.
   */
  private burstOpen = false;
  private burst = 0;
  private readonly burstEndBound: () => void;

  constructor(options: MemFabricOptions) {
    const devices: MemDevice[] = [];
    for (let i = 0; i < options.devices; i++) devices.push(new MemDevice(i));
    this.devices = devices;
    this.arena = new Arena(options.arenaMaxBytes);
    this.maxAckTimeoutMs = options.maxAckTimeoutMs;
    this.maxRnrDelayMs = options.maxRnrDelayMs;
    this.addrHiBase = options.addrHiBase >>> 0;
    this.runBound = () => this.run();
    this.runReaction = () => {
      try {
        this.run();
      } catch (e) {
        // Not a rejected promise nobody awaits: the same uncaught exception as a setImmediate turn.
        process.nextTick(rethrow, e);
      }
    };
    this.burstEndBound = () => {
      this.burstOpen = false;
      this.burst = 0;
    };
  }

  private readonly gidIds = new Map<string, number>();

  /**
   * A small number naming the GID value `gid` (16 bytes) on this fabric, so that the data path
   * compares numbers, not buffers. Called at modify time only.
   */
  gidId(gid: Uint8Array): number {
    const key = Buffer.from(gid.buffer, gid.byteOffset, gid.length).toString('hex');
    let id = this.gidIds.get(key);
    if (id === undefined) {
      id = this.gidIds.size + 1;
      this.gidIds.set(key, id);
    }
    return id;
  }

  /** The device owning `gid` (16 bytes), or null: how a request finds the responder's device. */
  deviceByGid(gid: Uint8Array): MemDevice | null {
    for (const d of this.devices) if (d.hasGid(gid)) return d;
    return null;
  }

  /** Queues `qp` for the next turn (its send queue runs, or, in ERR, its queues are flushed). */
  enqueue(qp: MemQp): void {
    if (qp.queued) return;
    qp.queued = true;
    this.work[this.workLen++] = qp;
    this.schedule();
  }

  /** Asks for `cq`'s handler to be called on the next notification stage. */
  queueNotify(cq: MemCq): void {
    if (cq.inNotify) return;
    cq.inNotify = true;
    this.notify[this.notifyLen++] = cq;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.burstOpen && this.burst < MICROTASK_BURST) {
      this.burst++;
      void RESOLVED.then(this.runReaction);
    } else {
      // After a full burst this is queued behind the burst's end: the check phase closes the
      // burst, then this turn opens the next one.
      setImmediate(this.runBound);
    }
  }

  /**
   * Runs the transport work now: every queued QP, including those queued while this runs (a
   * responder moved to ERR, say). CQ handlers are not called here; they run on the scheduled turn.
   */
  runWork(): void {
    let i = 0;
    try {
      for (; i < this.workLen; i++) {
        const qp = this.work[i]!;
        this.work[i] = undefined;
        qp.queued = false;
        qp.progress();
      }
      this.workLen = 0;
    } finally {
      if (i < this.workLen) {
        // progress() threw (a bug): keep the QPs after it queued, in order, for the next turn.
        let n = 0;
        for (let j = i + 1; j < this.workLen; j++) {
          this.work[n++] = this.work[j];
          this.work[j] = undefined;
        }
        this.workLen = n;
      }
    }
  }

  private run(): void {
    if (!this.burstOpen) {
      this.burstOpen = true;
      setImmediate(this.burstEndBound);
    }
    let ok = false;
    try {
      this.runWork();
      ok = true;
    } finally {
      this.scheduled = false;
      // After a throw (a bug), the remaining work and the pending notifications get another turn.
      if (!ok) this.schedule();
    }
    // Swap the notification list so that events raised by handlers go to the next turn.
    const list = this.notify;
    const n = this.notifyLen;
    this.notify = this.notifySpare;
    this.notifySpare = list;
    this.notifyLen = 0;
    let failure: unknown = undefined;
    let failed = false;
    for (let i = 0; i < n; i++) {
      const cq = list[i]!;
      list[i] = undefined;
      cq.inNotify = false;
      try {
        cq.deliverEvent();
      } catch (e) {
        if (!failed) {
          failed = true;
          failure = e;
        }
      }
    }
    // A throwing handler is the application's bug: the fabric stays consistent (every other
    // handler ran) and the first exception surfaces as an uncaught exception of this turn.
    if (failed) throw failure;
  }
}
