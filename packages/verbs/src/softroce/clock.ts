/**
 * The one clock seam of the softroce provider. Every timer the transport uses (retransmission,
 * RNR wait, ACK idle, the per-turn flush and CQ notifications) goes through a `Clock`, so that
 *
 * - the real clock can `unref()` them (an idle device does not keep the process alive: only its
 *   bound socket does) and count them (`pending`, for leak checks after close), and
 * - unit tests drive the transport with a `ManualClock` (virtual time, no sleeping).
 *
 * Callbacks are pre-bound functions owned by the caller (a QP or a device), never closures made
 * per packet.
 */

/** A timer handle; opaque to callers. */
export interface TimerRef {
  /** @internal */ readonly _timer: true;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds (not before the next turn of the event loop). */
  setTimer(fn: () => void, ms: number): TimerRef;
  clearTimer(t: TimerRef): void;
  /** Runs `fn` once on the next turn of the event loop (after pending I/O callbacks). */
  defer(fn: () => void): void;
  /** Timers armed and not yet fired or cleared. */
  readonly pending: number;
}

interface RealTimer extends TimerRef {
  t: NodeJS.Timeout | undefined;
}

/**
 * The clock over Node's timers. `unref` (default true) unrefs every timer so that only open
 * sockets keep the event loop alive.
 */
export class RealClock implements Clock {
  private active = 0;

  constructor(private readonly unref = true) {}

  get pending(): number {
    return this.active;
  }

  now(): number {
    return performance.now();
  }

  setTimer(fn: () => void, ms: number): TimerRef {
    const ref: RealTimer = { _timer: true, t: undefined };
    const t = setTimeout(RealClock.fire, ms < 1 ? 1 : ms, this, ref, fn);
    if (this.unref) t.unref();
    ref.t = t;
    this.active++;
    return ref;
  }

  clearTimer(ref: TimerRef): void {
    const r = ref as RealTimer;
    if (r.t === undefined) return;
    clearTimeout(r.t);
    r.t = undefined;
    this.active--;
  }

  defer(fn: () => void): void {
    setImmediate(fn);
  }

  private static fire(this: void, clock: RealClock, ref: RealTimer, fn: () => void): void {
    if (ref.t === undefined) return;
    ref.t = undefined;
    clock.active--;
    fn();
  }
}

interface ManualTimer extends TimerRef {
  at: number;
  seq: number;
  fn: (() => void) | undefined;
}

/**
 * Virtual time for unit tests: nothing runs until the test calls `run()` (deferred work, to
 * quiescence) or `advance(ms)` (deferred work and the timers that come due, in time order).
 */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: ManualTimer[] = [];
  private deferred: (() => void)[] = [];

  get pending(): number {
    return this.timers.length;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): TimerRef {
    const ref: ManualTimer = { _timer: true, at: this.t + (ms < 0 ? 0 : ms), seq: this.seq++, fn };
    this.timers.push(ref);
    return ref;
  }

  clearTimer(ref: TimerRef): void {
    const r = ref as ManualTimer;
    const i = this.timers.indexOf(r);
    if (i >= 0) this.timers.splice(i, 1);
    r.fn = undefined;
  }

  defer(fn: () => void): void {
    this.deferred.push(fn);
  }

  /** Runs deferred work until none is left (timers do not advance). Returns the number of callbacks run. */
  run(limit = 1_000_000): number {
    let n = 0;
    while (this.deferred.length > 0) {
      const batch = this.deferred;
      this.deferred = [];
      for (const fn of batch) {
        fn();
        if (++n > limit) throw new Error('ManualClock.run: no quiescence (livelock?)');
      }
    }
    return n;
  }

  /** Advances virtual time by `ms`, firing due timers in order and running deferred work in between. */
  advance(ms: number): void {
    const end = this.t + ms;
    this.run();
    for (;;) {
      let next: ManualTimer | undefined;
      for (const tm of this.timers) if (tm.at <= end && (next === undefined || tm.at < next.at || (tm.at === next.at && tm.seq < next.seq))) next = tm;
      if (next === undefined) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      if (next.at > this.t) this.t = next.at;
      const fn = next.fn;
      next.fn = undefined;
      fn?.();
      this.run();
    }
    this.t = end;
  }

  /** Time of the earliest armed timer, or undefined. */
  nextTimerAt(): number | undefined {
    let at: number | undefined;
    for (const tm of this.timers) if (at === undefined || tm.at < at) at = tm.at;
    return at;
  }
}
