/**
 * A simulated SMC-R connection: two ends, each with a ConnState, SmcTx and SmcRx, wired together in
 * process. RDMA WRITEs are Buffer copies into the other end's RMBE at the moment they are posted (the
 * strictest timing for the "never over unread data" check); CDCs are encoded, queued in order per
 * direction and delivered after random delays; a CDC's send completion reaches its sender only after
 * the CDC was delivered (RC semantics); readers read random amounts and run the consumer-update rule;
 * send slots are limited. A seeded scheduler picks among the events that can happen; when none can
 * and the data is not all through, the connection is deadlocked and the test fails.
 */
import assert from 'node:assert/strict';
import { createHash, type Hash } from 'node:crypto';
import { setFlagsFromString, getHeapSpaceStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { decodeCdcInto, encodeCdc, newCdcFields, CDC_MSG_LEN, type CdcCursor, type CdcFields } from '@smc-r/wire';
import { ConnState, UrgState, cursorDistance } from './conn-state.js';
import { SmcTx, TxFlush, newTxTransfer } from './tx.js';
import { SmcRx } from './rx.js';

const K = 1024;
const M = 1024 * K;

/** mulberry32: a small seeded PRNG, so a failing run can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` pseudo-random bytes from `seed` (xorshift32). */
function randomData(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

interface SimConfig {
  seed: number;
  /** Bytes each end sends (A to B, B to A). */
  total: [number, number];
  sndbuf: [number, number];
  rmbe: [number, number];
  /** CDC send slots per end (a CDC holds one until its completion). */
  slots: number;
  /** Probability that a write is MSG_MORE (corked until a simulated cork timer fires). */
  moreRate: number;
  /** Probability that a write is an urgent (MSG_OOB) send. */
  oobRate: number;
  oobInline: boolean;
  autocorkSize: number;
  /** Initial wrap of every cursor and initial sequence number: start near the 16-bit wraps. */
  wrap0: number;
  seq0: number;
  /** Largest application write. */
  writeMax: number;
}

interface Msg {
  bytes: Buffer;
  mark: number;
}

/** Stream position of a cursor in a ring of `size`, counting wraps from `wrap0` (16-bit safe). */
function absPos(c: Readonly<CdcCursor>, size: number, wrap0: number): number {
  return ((c.wrap - wrap0) & 0xffff) * size + c.count;
}

class End {
  readonly st: ConnState;
  readonly tx: SmcTx;
  readonly rx: SmcRx;
  readonly sndbuf: Buffer;
  readonly rmbe: Buffer;
  readonly t = newTxTransfer();
  readonly cdc = newCdcFields();
  readonly dec = newCdcFields();
  slots: number;
  readonly out: Msg[] = [];
  readonly completions: number[] = [];
  pushBlocked = false;
  corkTimer = -1;
  // Writer.
  readonly data: Buffer;
  wOff = 0;
  oobEnd = -1;
  readonly urgent: number[] = [];
  // Reader (of the other end's data).
  peer!: End;
  rPos = 0;
  uIdx = 0;
  got = 0;
  urgentRead = 0;
  readonly hash: Hash = createHash('sha256');
  // Counters for the report.
  transfers = 0;
  controlCdcs = 0;

  constructor(readonly name: string, readonly cfg: SimConfig, i: 0 | 1) {
    const j = i === 0 ? 1 : 0;
    this.st = new ConnState({ sndbufSize: cfg.sndbuf[i], rmbeSize: cfg.rmbe[i], peerRmbeSize: cfg.rmbe[j], peerToken: 0x100 + j });
    this.sndbuf = Buffer.alloc(cfg.sndbuf[i]);
    this.rmbe = Buffer.alloc(cfg.rmbe[i]);
    this.tx = new SmcTx(this.st, this.sndbuf, { autocorkSize: cfg.autocorkSize });
    this.rx = new SmcRx(this.st, this.rmbe, this.tx, { oobInline: cfg.oobInline });
    this.slots = cfg.slots;
    this.data = randomData(cfg.total[i], cfg.seed * 2 + i);
    for (const c of [this.st.prep, this.st.sent, this.st.fin, this.st.prod, this.st.cons, this.st.confirmed, this.st.peerProd, this.st.peerCons]) {
      c.wrap = cfg.wrap0;
    }
    this.st.txSeq = cfg.seq0;
    this.st.rxSeq = cfg.seq0;
  }

  /** All of the other end's stream has been read (urgent bytes excepted when not inline). */
  get readDone(): boolean {
    const p = this.peer;
    const expected = p.data.length - (this.cfg.oobInline ? 0 : p.urgent.length);
    return p.wOff === p.data.length && p.oobEnd < 0 && this.got === expected;
  }
}

class Sim {
  readonly a: End;
  readonly b: End;
  readonly rnd: () => number;
  steps = 0;
  readonly readBuf = Buffer.alloc(256 * K);

  constructor(readonly cfg: SimConfig) {
    this.rnd = prng(cfg.seed);
    this.a = new End('A', cfg, 0);
    this.b = new End('B', cfg, 1);
    this.a.peer = this.b;
    this.b.peer = this.a;
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rnd() * (hi - lo + 1));
  }

  /** A size from 1 to `max`, log-uniform so that tiny and huge are both common. */
  size(max: number): number {
    return Math.max(1, Math.min(max, Math.floor(Math.exp(this.rnd() * Math.log(max + 1)))));
  }

  // ---- sending ----------------------------------------------------------------------------------

  /** Encodes a CDC and queues it towards the other end. */
  post(x: End, cdc: CdcFields, mark: number): void {
    const bytes = Buffer.alloc(CDC_MSG_LEN);
    encodeCdc(cdc, bytes, 0);
    x.out.push({ bytes, mark });
  }

  push(x: End): void {
    const y = x.peer;
    while (x.slots > 0 && x.tx.nextTransfer(x.t)) {
      x.slots--;
      x.transfers++;
      const t = x.t;
      // Where the data lands: right after what was produced before, and never past the receiver's
      // consumer cursor + ring size, i.e. never over bytes the receiver has not read.
      const end = absPos(t.cdc.prod, y.st.rmbeSize, this.cfg.wrap0);
      const start = end - t.len;
      const yCons = absPos(y.st.cons, y.st.rmbeSize, this.cfg.wrap0);
      assert.ok(start >= yCons, `${x.name}: write starts before the reader's cursor`);
      assert.ok(end <= yCons + y.st.rmbeSize, `${x.name}: write over unread data (${end} > ${yCons} + ${y.st.rmbeSize})`);
      let pos = start % y.st.rmbeSize;
      for (let w = 0; w < t.writeCount; w++) {
        const wr = t.writes[w]!;
        assert.equal(wr.dstOff, pos);
        assert.ok(wr.dstOff + wr.len <= y.st.rmbeSize && wr.sgeCount >= 1 && wr.sgeCount <= 2);
        let d = wr.dstOff;
        let sum = 0;
        for (let s = 0; s < wr.sgeCount; s++) {
          const sge = wr.sge[s]!;
          assert.ok(sge.len > 0 && sge.off + sge.len <= x.st.sndbufSize, 'SGE inside the send ring');
          x.sndbuf.copy(y.rmbe, d, sge.off, sge.off + sge.len);
          d += sge.len;
          sum += sge.len;
        }
        assert.equal(sum, wr.len);
        pos = (pos + wr.len) % y.st.rmbeSize;
      }
      this.post(x, t.cdc, t.mark);
    }
    x.pushBlocked = x.slots === 0 && x.tx.prepared > 0 && x.tx.peerSpace > 0;
  }

  /** Sends a consumer-cursor update if one is owed and a slot is free (else it stays owed). */
  update(x: End): void {
    if (x.slots === 0 || !x.st.updateOwed) return;
    x.slots--;
    x.controlCdcs++;
    const mark = x.st.fillCdc(x.cdc);
    this.post(x, x.cdc, mark);
  }

  // ---- events -----------------------------------------------------------------------------------

  write(x: End): void {
    const before = x.tx.space;
    let oob = false;
    let len: number;
    if (x.oobEnd >= 0) {
      oob = true;
      len = x.oobEnd - x.wOff;
    } else {
      len = Math.min(this.size(this.cfg.writeMax), x.data.length - x.wOff);
      if (this.rnd() < this.cfg.oobRate) {
        oob = true;
        x.oobEnd = x.wOff + len;
      }
    }
    const n = x.tx.write(x.data, x.wOff, len, oob);
    assert.ok(n > 0 && n <= len && n <= before, `${x.name}: write accepted ${n} of ${len} with ${before} free`);
    x.wOff += n;
    // Backpressure is bounded by the ring: written and not yet released never exceeds its size.
    assert.ok(x.tx.space >= 0 && absPos(x.st.prep, x.st.sndbufSize, this.cfg.wrap0) - absPos(x.st.fin, x.st.sndbufSize, this.cfg.wrap0) <= x.st.sndbufSize);
    if (oob && n === len) {
      x.urgent.push(x.wOff - 1);
      x.oobEnd = -1;
    }
    const more = this.rnd() < this.cfg.moreRate;
    const d = x.tx.flushDecision(more);
    if (d === TxFlush.NOW.value) this.push(x);
    else if (d === TxFlush.CORK.value && x.corkTimer < 0) x.corkTimer = this.int(1, 30);
  }

  deliver(x: End): void {
    const y = x.peer;
    const k = this.int(1, Math.min(4, x.out.length));
    for (let i = 0; i < k; i++) {
      const m = x.out.shift()!;
      decodeCdcInto(m.bytes, 0, CDC_MSG_LEN, y.dec);
      assert.equal(y.dec.token, 0x100 + (y === this.a ? 0 : 1), 'CDC carries the receiver token');
      const r = y.rx.onCdc(y.dec);
      assert.equal(r.verdict, 'accepted', `${y.name}: CDC seqno ${y.dec.seqno} ${r.verdict}`);
      assert.ok(y.rx.readable <= y.st.rmbeSize);
      // The send completion comes back to the sender after the CDC arrived.
      x.completions.push(m.mark);
      if (r.txWanted) this.push(y);
      if (r.consCursUpdReq && y.rx.consumerUpdateDue()) this.update(y);
    }
  }

  complete(x: End): void {
    const mark = x.completions.shift()!;
    x.slots++;
    const pushNow = x.tx.onSendComplete(mark);
    if (pushNow || x.pushBlocked) this.push(x);
    this.update(x);
  }

  read(x: End): void {
    const max = this.rnd() < 0.3 ? this.int(1, 100) : this.size(this.readBuf.length);
    const n = x.rx.read(this.readBuf, 0, max);
    assert.ok(n <= max);
    this.verify(x, this.readBuf.subarray(0, n));
    if (x.rx.consumerUpdateDue()) this.update(x);
  }

  readUrgent(x: End): void {
    const b = x.rx.readUrgent(this.rnd() < 0.3);
    // Taking the urgent byte may skip it in the stream: that forces a consumer update.
    if (x.rx.consumerUpdateDue()) this.update(x);
    if (b < 0) return;
    const at = absPos(x.st.urgCurs, x.st.rmbeSize, this.cfg.wrap0) - 1;
    assert.ok(x.peer.urgent.includes(at), `${x.name}: urgent byte at ${at} is not the end of an urgent send`);
    assert.equal(b, x.peer.data[at]);
    x.urgentRead++;
  }

  /** Every byte exactly once, in order; urgent bytes left out of the stream unless inline. */
  verify(x: End, got: Buffer): void {
    const p = x.peer;
    let i = 0;
    while (i < got.length) {
      const nextU = !this.cfg.oobInline && x.uIdx < p.urgent.length ? p.urgent[x.uIdx]! : Infinity;
      if (x.rPos === nextU) {
        x.rPos++;
        x.uIdx++;
        continue;
      }
      const seg = Math.min(got.length - i, nextU - x.rPos);
      assert.ok(x.rPos + seg <= p.wOff, `${x.name}: read bytes that were never written`);
      if (!got.subarray(i, i + seg).equals(p.data.subarray(x.rPos, x.rPos + seg))) {
        assert.fail(`${x.name}: wrong bytes at stream position ${x.rPos}`);
      }
      i += seg;
      x.rPos += seg;
    }
    x.got += got.length;
    x.hash.update(got);
  }

  // ---- scheduler --------------------------------------------------------------------------------

  /** Does reading make progress: bytes to read, or a lone urgent byte still to skip. */
  readable(x: End): boolean {
    if (x.rx.readable > 0) return true;
    return x.st.urgState === UrgState.VALID.value && cursorDistance(x.st.rmbeSize, x.st.cons, x.st.urgCurs) >= 1;
  }

  run(maxSteps = 5_000_000): void {
    const acts: (() => void)[] = [];
    while (!(this.a.readDone && this.b.readDone)) {
      if (++this.steps > maxSteps) assert.fail(`no end after ${maxSteps} steps`);
      acts.length = 0;
      for (const x of [this.a, this.b]) {
        if (x.wOff < x.data.length && x.tx.writable) acts.push(() => this.write(x));
        if (x.out.length > 0) acts.push(() => this.deliver(x));
        if (x.completions.length > 0) acts.push(() => this.complete(x));
        if (this.readable(x)) acts.push(() => this.read(x), () => this.read(x));
        if (x.corkTimer >= 0) {
          acts.push(() => {
            if (--x.corkTimer <= 0) {
              x.corkTimer = -1;
              this.push(x);
            }
          });
        }
        if (!this.cfg.oobInline && x.st.urgState === UrgState.VALID.value && this.rnd() < 0.2) acts.push(() => this.readUrgent(x));
      }
      if (acts.length === 0) assert.fail(`deadlock after ${this.steps} steps: ${this.describe()}`);
      acts[Math.floor(this.rnd() * acts.length)]!();
    }
    // Drain: deliver and complete everything still in flight; every end must come back to idle.
    for (let guard = 0; guard < 100_000; guard++) {
      const x = [this.a, this.b].find((e) => e.out.length > 0 || e.completions.length > 0);
      if (x === undefined) break;
      if (x.out.length > 0) this.deliver(x);
      else this.complete(x);
    }
    for (const x of [this.a, this.b]) {
      assert.equal(x.tx.prepared, 0, `${x.name}: data left unsent`);
      assert.equal(x.tx.inFlight, 0);
      assert.equal(x.tx.space, x.st.sndbufSize, `${x.name}: send ring not fully released`);
      assert.equal(x.slots, this.cfg.slots);
      assert.equal(x.rx.readable, 0);
      if (this.cfg.oobRate === 0) {
        assert.equal(x.hash.digest('hex'), createHash('sha256').update(x.peer.data).digest('hex'), 'checksum');
      }
    }
  }

  describe(): string {
    const d = (x: End): string =>
      `${x.name}{w ${x.wOff}/${x.data.length} prep ${x.tx.prepared} space ${x.tx.space} peerSpace ${x.tx.peerSpace} ` +
      `inFlight ${x.tx.inFlight} slots ${x.slots} urgTxPend ${x.st.urgTxPend} readable ${x.rx.readable} got ${x.got} ` +
      `owed ${x.st.updateOwed} urg ${x.st.urgState}}`;
    return `${d(this.a)} ${d(this.b)} seed ${this.cfg.seed}`;
  }
}

const BASE: SimConfig = {
  seed: 1, total: [0, 0], sndbuf: [16 * K, 16 * K], rmbe: [16 * K, 16 * K], slots: 16,
  moreRate: 0, oobRate: 0, oobInline: false, autocorkSize: 64 * K, wrap0: 0, seq0: 0, writeMax: 64 * K,
};

function sim(over: Partial<SimConfig>): Sim {
  const s = new Sim({ ...BASE, ...over });
  s.run();
  return s;
}

describe('core/datapath: simulated pair (tx + rx, RDMA WRITEs as copies, delayed CDCs)', function () {
  this.timeout(120_000);

  it('1 byte', () => {
    const s = sim({ total: [1, 0] });
    assert.equal(s.b.got, 1);
    assert.equal(s.a.transfers, 1);
  });

  it('8 MiB through a 16 KiB RMBE from a 16 KiB send buffer', () => {
    const s = sim({ seed: 7, total: [8 * M, 0] });
    assert.equal(s.b.got, 8 * M);
  });

  it('8 MiB through a 16 KiB RMBE from a 256 KiB send buffer, 1 MiB back the other way, 2 send slots', () => {
    const s = sim({ seed: 8, total: [8 * M, 1 * M], sndbuf: [256 * K, 32 * K], rmbe: [64 * K, 16 * K], slots: 2 });
    assert.equal(s.b.got, 8 * M);
    assert.equal(s.a.got, 1 * M);
  });

  it('across the 16-bit wraps of cursors and sequence numbers', () => {
    // 4 MiB through 16 KiB is 256 ring wraps: the wrap counter passes 0xffff -> 0, the seqno 65535 -> 0.
    const s = sim({ seed: 9, total: [4 * M, 512 * K], wrap0: 0xffff - 100, seq0: 65535 - 100, moreRate: 0.1 });
    assert.equal(s.b.got, 4 * M);
    assert.ok(s.a.st.prod.wrap < 0xff00 && s.a.st.txSeq < 65000, 'both counters wrapped');
  });

  it('property: random sizes 1 B .. 8 MiB, send buffers, slots, corking, read sizes and delays', () => {
    const ring = fc.constantFrom(16 * K, 16 * K, 32 * K, 64 * K, 256 * K, 1 * M);
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 0x7fffffff }),
      fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 20 }),
      ring, ring, fc.constantFrom(16 * K, 16 * K, 16 * K, 64 * K), fc.constantFrom(16 * K, 32 * K),
      fc.constantFrom(1, 2, 4, 16), fc.constantFrom(0, 0, 0.2, 0.9), fc.constantFrom(0, 4 * K, 64 * K),
      fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(100, 4 * K, 64 * K, 1 * M),
      (seed, la, lb, sa, sb, ra, rb, slots, moreRate, autocorkSize, wrap0, seq0, writeMax) => {
        // log-uniform totals: 1 B .. 8 MiB one way, 0 .. 1 MiB back
        const ta = Math.min(8 * M, Math.floor(2 ** la * (1 + (seed % 1000) / 1000)));
        const tb = lb === 0 ? 0 : Math.floor(2 ** lb * (1 + (seed % 777) / 777));
        sim({ seed, total: [ta, tb], sndbuf: [sa, sb], rmbe: [ra, rb], slots, moreRate, autocorkSize, wrap0, seq0, writeMax });
      }), { numRuns: 30 });
  });

  it('property: urgent data (MSG_OOB), out of band: every urgent byte leaves the stream, recv(MSG_OOB) returns it', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 0x7fffffff }), fc.integer({ min: 1, max: 512 * K }), fc.integer({ min: 0, max: 64 * K }),
      fc.constantFrom(16 * K, 64 * K), fc.constantFrom(1, 4, 16), fc.integer({ min: 0, max: 0xffff }),
      (seed, ta, tb, sndbuf, slots, wrap0) => {
        const s = sim({ seed, total: [ta, tb], sndbuf: [sndbuf, 16 * K], slots, oobRate: 0.05, wrap0, writeMax: 8 * K });
        assert.equal(s.b.got, ta - s.a.urgent.length);
      }), { numRuns: 40 });
  });

  it('property: urgent data with SO_OOBINLINE: the stream keeps every byte', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 0x7fffffff }), fc.integer({ min: 1, max: 512 * K }), fc.integer({ min: 0, max: 0xffff }),
      (seed, ta, wrap0) => {
        const s = sim({ seed, total: [ta, 0], oobRate: 0.05, oobInline: true, wrap0, writeMax: 8 * K });
        assert.equal(s.b.got, ta);
      }), { numRuns: 30 });
  });

  it('the per-message calls allocate nothing (nextTransfer, fillCdc, onSendComplete, onCdc, consumerUpdateDue)', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const used = (): number => getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')!.space_used_size;
    const perOp = (fn: () => void, n = 20_000): number => {
      for (let i = 0; i < 5_000; i++) fn();
      for (let attempt = 0; attempt < 5; attempt++) {
        gc();
        const before = used();
        for (let i = 0; i < n; i++) fn();
        const after = used();
        if (after >= before) return (after - before) / n;
      }
      return NaN;
    };
    // One cycle moves 1000 bytes from A to B and back comes a consumer update: every hot call once.
    const s = new Sim({ ...BASE, total: [0, 0] });
    const { a, b } = s;
    const src = Buffer.alloc(1000, 7);
    const dst = Buffer.alloc(1000);
    const wire = Buffer.alloc(CDC_MSG_LEN);
    const cycle = (): void => {
      a.tx.write(src, 0, 1000);
      a.tx.flushDecision();
      if (!a.tx.nextTransfer(a.t)) throw new Error('no transfer');
      encodeCdc(a.t.cdc, wire, 0);
      decodeCdcInto(wire, 0, CDC_MSG_LEN, b.dec);
      if (b.rx.onCdc(b.dec).verdict !== 'accepted') throw new Error('refused');
      a.tx.onSendComplete(a.t.mark);
      b.rx.read(dst, 0, 1000);
      b.rx.consumerUpdateDue();
      const mark = b.st.fillCdc(b.cdc);
      encodeCdc(b.cdc, wire, 0);
      decodeCdcInto(wire, 0, CDC_MSG_LEN, a.dec);
      if (a.rx.onCdc(a.dec).verdict !== 'accepted') throw new Error('refused');
      b.tx.onSendComplete(mark);
    };
    const bytes = perOp(cycle, 5_000);
    // write() and read() copy 1000 bytes with TypedArray#set, which makes one short-lived view each
    // for a partial copy; everything else must add nothing.
    assert.ok(bytes <= 2 * 96 + 1, `a 1000-byte cycle allocates ${bytes} B`);
    // With 32-byte messages the copies are loops: the whole cycle is allocation-free.
    const small = (): void => {
      a.tx.write(src, 0, 32);
      if (!a.tx.nextTransfer(a.t)) throw new Error('no transfer');
      b.rx.onCdc(a.t.cdc);
      a.tx.onSendComplete(a.t.mark);
      b.rx.read(dst, 0, 32);
      b.rx.consumerUpdateDue();
      const mark = b.st.fillCdc(b.cdc);
      a.rx.onCdc(b.cdc);
      b.tx.onSendComplete(mark);
    };
    const smallBytes = perOp(small);
    assert.ok(smallBytes < 1, `the CDC path allocates ${smallBytes} B per cycle`);
  });
});
