import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cursorAdd, newCdcFields, type CdcFields } from '@smc-r/wire';
import { ConnState, ringMark, markDistance, cursorDiffLarge, cursorWithinRing, isRingSize } from './conn-state.js';
import { SmcTx, TxFlush, newTxTransfer, type TxTransfer } from './tx.js';

const K = 1024;

function setup(sndbufSize = 16 * K, peerRmbeSize = 16 * K, autocorkSize?: number) {
  const st = new ConnState({ sndbufSize, rmbeSize: 16 * K, peerRmbeSize, peerToken: 0x0a01 });
  const ring = Buffer.alloc(sndbufSize);
  const tx = new SmcTx(st, ring, autocorkSize === undefined ? {} : { autocorkSize });
  return { st, ring, tx, t: newTxTransfer() };
}

/** Bytes 0..n-1 of a recognisable pattern starting at stream position `from`. */
function pattern(n: number, from = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((from + i) * 31 + ((from + i) >>> 8)) & 0xff;
  return b;
}

/** The bytes a transfer's SGEs gather from the send ring, in order, per write. */
function gather(ring: Buffer, t: TxTransfer): Buffer[] {
  const out: Buffer[] = [];
  for (let w = 0; w < t.writeCount; w++) {
    const wr = t.writes[w]!;
    const parts: Buffer[] = [];
    for (let s = 0; s < wr.sgeCount; s++) parts.push(ring.subarray(wr.sge[s]!.off, wr.sge[s]!.off + wr.sge[s]!.len));
    const data = Buffer.concat(parts);
    assert.equal(data.length, wr.len, 'SGE lengths add up to the write length');
    out.push(data);
  }
  return out;
}

/** A peer CDC whose consumer cursor is `wrap/count` (the other fields do not matter to tx). */
function peerCons(wrap: number, count: number): CdcFields {
  const f = newCdcFields();
  f.cons.wrap = wrap;
  f.cons.count = count;
  return f;
}

/** Puts all send-side cursors at `sndPos` / `peerPos` with empty rings (a consistent idle state). */
function placeCursors(st: ConnState, sndPos: number, peerPos: number): void {
  for (const c of [st.prep, st.sent, st.fin]) {
    c.wrap = 3;
    c.count = sndPos;
  }
  st.prod.wrap = 7;
  st.prod.count = peerPos;
  st.peerCons.wrap = 7;
  st.peerCons.count = peerPos;
}

describe('core/tx: send side (spec 7.3-7.5)', () => {
  it('accepts only 16 KiB << n ring sizes and a matching send ring', () => {
    assert.ok(isRingSize(16 * K) && isRingSize(512 * K * K) && !isRingSize(8 * K) && !isRingSize(48 * K));
    assert.throws(() => new ConnState({ sndbufSize: 20000, rmbeSize: 16 * K, peerRmbeSize: 16 * K, peerToken: 1 }), RangeError);
    const st = new ConnState({ sndbufSize: 32 * K, rmbeSize: 16 * K, peerRmbeSize: 16 * K, peerToken: 1 });
    assert.throws(() => new SmcTx(st, Buffer.alloc(16 * K)), RangeError);
  });

  it('write copies into the ring, splits at its end, and applies backpressure at the ring size', () => {
    const { st, ring, tx, t } = setup();
    const a = pattern(10 * K);
    assert.equal(tx.write(a, 0, a.length), 10 * K);
    assert.deepEqual(ring.subarray(0, 10 * K), a);
    assert.equal(tx.space, 6 * K);
    // Only 6 KiB fit: the write is short, never more than the free space.
    const b = pattern(8 * K, 10 * K);
    assert.equal(tx.write(b, 0, b.length), 6 * K);
    assert.equal(tx.space, 0);
    assert.equal(tx.writable, false);
    assert.equal(tx.write(b, 6 * K, 2 * K), 0, 'full ring: 0');
    // Transfer everything, complete the CDC, let the peer consume: the ring frees, the next write wraps.
    assert.ok(tx.nextTransfer(t));
    assert.equal(tx.space, 0, 'RDMA-written is not free yet: space returns with the CDC completion');
    tx.onPeerCdc(peerCons(1, 0));
    tx.onSendComplete(t.mark);
    assert.equal(tx.space, 16 * K);
    assert.equal(st.prep.wrap, 1);
    assert.equal(tx.write(pattern(3 * K, 99), 0, 3 * K), 3 * K);
    assert.deepEqual(ring.subarray(0, 3 * K), pattern(3 * K, 99));
    // A write that straddles the ring end lands in two pieces.
    placeCursors(st, 15 * K, 0);
    st.sndbufSpace = 16 * K;
    const c = pattern(3 * K, 5);
    assert.equal(tx.write(c, 0, c.length), 3 * K);
    assert.deepEqual(ring.subarray(15 * K), c.subarray(0, K));
    assert.deepEqual(ring.subarray(0, 2 * K), c.subarray(K));
    assert.throws(() => tx.write(c, 1, c.length), RangeError);
  });

  it('a simple transfer: one write, one SGE, and the first CDC carries seqno 1 (spec 7.1)', () => {
    const { st, ring, tx, t } = setup();
    assert.equal(tx.nextTransfer(t), false, 'nothing prepared: no transfer, no CDC');
    tx.write(pattern(1000), 0, 1000);
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.len, 1000);
    assert.equal(t.writeCount, 1);
    assert.deepEqual({ dst: t.writes[0].dstOff, n: t.writes[0].sgeCount, sge: { ...t.writes[0].sge[0] } },
      { dst: 0, n: 1, sge: { off: 0, len: 1000 } });
    assert.deepEqual(gather(ring, t)[0], pattern(1000));
    assert.equal(t.cdc.seqno, 1);
    assert.equal(t.cdc.token, 0x0a01);
    assert.deepEqual(t.cdc.prod, { wrap: 0, count: 1000 });
    assert.deepEqual(t.cdc.cons, { wrap: 0, count: 0 });
    assert.equal(t.cdc.writeBlocked, false);
    assert.equal(t.cdc.consCursUpdReq, false, 'Linux never sets cons_curs_upd_req');
    assert.equal(tx.peerSpace, 16 * K - 1000);
    assert.equal(tx.prepared, 0);
    assert.equal(tx.inFlight, 1);
    assert.equal(t.mark, 1000);
    assert.equal(st.txSeq, 1);
    assert.equal(tx.nextTransfer(t), false);
  });

  it('peer RMBE wrap and send ring wrap: 2 writes, the first with 2 SGEs', () => {
    const { st, ring, tx, t } = setup(32 * K, 16 * K);
    placeCursors(st, 31 * K, 14 * K);
    const d = pattern(3 * K, 7);
    assert.equal(tx.write(d, 0, d.length), 3 * K);
    assert.deepEqual(ring.subarray(31 * K), d.subarray(0, K));
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.writeCount, 2);
    const [w0, w1] = t.writes;
    assert.deepEqual([w0.dstOff, w0.len, w0.sgeCount], [14 * K, 2 * K, 2]);
    assert.deepEqual([{ ...w0.sge[0] }, { ...w0.sge[1] }], [{ off: 31 * K, len: K }, { off: 0, len: K }]);
    assert.deepEqual([w1.dstOff, w1.len, w1.sgeCount], [0, K, 1]);
    assert.deepEqual({ ...w1.sge[0] }, { off: K, len: K });
    assert.deepEqual(Buffer.concat(gather(ring, t)), d);
    assert.deepEqual(t.cdc.prod, { wrap: 8, count: K });
    assert.deepEqual({ ...st.sent }, { wrap: 4, count: 2 * K });
  });

  it('peer RMBE wrap and send ring wrap: 2 writes, the second with 2 SGEs (where Linux would overrun its sndbuf)', () => {
    // Linux computes the second write's first SGE from the old sndbuf offset (smcr_tx_rdma_writes);
    // with these cursors that SGE would run 512 bytes past the end of a 32 KiB send ring.
    const { st, ring, tx, t } = setup(32 * K, 16 * K);
    placeCursors(st, 31 * K, 15.5 * K);
    const d = pattern(3 * K, 11);
    tx.write(d, 0, d.length);
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.writeCount, 2);
    const [w0, w1] = t.writes;
    assert.deepEqual([w0.dstOff, w0.len, w0.sgeCount, { ...w0.sge[0] }], [15.5 * K, 512, 1, { off: 31 * K, len: 512 }]);
    assert.deepEqual([w1.dstOff, w1.len, w1.sgeCount], [0, 2.5 * K, 2]);
    assert.deepEqual([{ ...w1.sge[0] }, { ...w1.sge[1] }], [{ off: 31.5 * K, len: 512 }, { off: 0, len: 2 * K }]);
    for (const w of t.writes.slice(0, t.writeCount)) {
      for (const s of w.sge.slice(0, w.sgeCount)) assert.ok(s.off + s.len <= 32 * K, 'SGE inside the send ring');
    }
    assert.deepEqual(Buffer.concat(gather(ring, t)), d);
  });

  it('a transfer ending exactly at both ring ends uses one write and one SGE', () => {
    const { st, tx, t } = setup(16 * K, 16 * K);
    placeCursors(st, 12 * K, 12 * K);
    tx.write(pattern(4 * K), 0, 4 * K);
    assert.ok(tx.nextTransfer(t));
    assert.deepEqual([t.writeCount, t.writes[0].sgeCount, t.writes[0].len], [1, 1, 4 * K]);
    assert.deepEqual(t.cdc.prod, { wrap: 8, count: 0 });
    assert.deepEqual({ ...st.sent }, { wrap: 4, count: 0 });
  });

  it('write_blocked = bytes waiting >= peer free space (spec 7.3 step 2)', () => {
    const { st, tx, t } = setup(64 * K, 16 * K);
    // The peer has 15384 unread bytes: 1000 free.
    placeCursors(st, 0, 15384);
    st.peerCons.count = 0;
    st.peerRmbeSpace = 1000;
    tx.write(pattern(999), 0, 999);
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.cdc.writeBlocked, false, '999 < 1000');
    assert.equal(tx.peerSpace, 1);
    tx.write(pattern(1), 0, 1);
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.cdc.writeBlocked, true, '1 >= 1: the window closed');
    assert.equal(tx.peerSpace, 0);
    assert.deepEqual(t.cdc.prod, { wrap: 8, count: 0 });
    tx.write(pattern(500), 0, 500);
    assert.equal(tx.nextTransfer(t), false, 'no peer space: no transfer, no CDC');
    // The peer consumes 200 bytes: 500 waiting >= 200 free.
    assert.equal(tx.onPeerCdc(peerCons(7, 200)), 200);
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.len, 200);
    assert.equal(t.cdc.writeBlocked, true);
    tx.onPeerCdc(peerCons(7, 16000));
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.len, 300);
    assert.equal(t.cdc.writeBlocked, false);
    // A data-less CDC (consumer update) carries the last write_blocked value, as in Linux.
    const f = newCdcFields();
    st.fillCdc(f);
    assert.equal(f.writeBlocked, false);
  });

  it('sequence numbers advance for every CDC and wrap from 65535 to 0 (spec 7.1, 7.7)', () => {
    const { st, tx, t } = setup();
    const f = newCdcFields();
    st.txSeq = 65534;
    st.fillCdc(f);
    assert.equal(f.seqno, 65535);
    tx.write(pattern(10), 0, 10);
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.cdc.seqno, 0);
    st.fillCdc(f);
    assert.equal(f.seqno, 1);
    assert.equal(tx.inFlight, 3);
  });

  it('fillCdc carries the close flags, confirms the consumer cursor and satisfies an update request', () => {
    const { st } = setup();
    st.cons.wrap = 2;
    st.cons.count = 777;
    st.peerConsCursUpdReq = true;
    st.updateOwed = true;
    st.localDoneWriting = true;
    st.localConnAbort = true;
    const f = newCdcFields();
    f.credits = 9;
    f.failoverValidation = true;
    st.fillCdc(f);
    assert.deepEqual(f.cons, { wrap: 2, count: 777 });
    assert.deepEqual({ ...st.confirmed }, { wrap: 2, count: 777 });
    assert.deepEqual([f.peerDoneWriting, f.peerConnClosed, f.peerConnAbort, f.failoverValidation, f.credits], [true, false, true, false, 0]);
    assert.deepEqual([st.peerConsCursUpdReq, st.updateOwed], [false, false]);
  });

  it('the CDC send completion releases ring space up to its mark (spec 7.3 step 5)', () => {
    const { st, tx, t } = setup();
    tx.write(pattern(4000), 0, 4000);
    assert.ok(tx.nextTransfer(t));
    const m1 = t.mark;
    tx.write(pattern(3000), 0, 3000);
    assert.ok(tx.nextTransfer(t));
    const m2 = t.mark;
    const f = newCdcFields();
    const m3 = st.fillCdc(f); // a data-less CDC: same mark as the last transfer
    assert.equal(m3, m2);
    assert.equal(tx.space, 16 * K - 7000);
    assert.equal(tx.onSendComplete(m1), false);
    assert.equal(tx.space, 16 * K - 3000);
    assert.equal(tx.onSendComplete(m2), false);
    assert.equal(tx.space, 16 * K);
    tx.write(pattern(10), 0, 10);
    assert.equal(tx.onSendComplete(m3), true, 'last CDC in flight completed with data waiting: push');
    assert.equal(tx.inFlight, 0);
    // A failed completion releases nothing (the link is going down anyway).
    assert.ok(tx.nextTransfer(t));
    tx.onSendComplete(t.mark, false);
    assert.equal(tx.space, 16 * K - 10);
    assert.equal(tx.inFlight, 0);
  });

  it('autocorking: hold small writes while CDCs are in flight, up to min(sndbuf / 2, autocorking_size) (spec 7.4)', () => {
    const { tx, t } = setup(256 * K, 256 * K);
    tx.write(pattern(100), 0, 100);
    assert.equal(tx.flushDecision(), TxFlush.NOW.value, 'first message never corks');
    assert.ok(tx.nextTransfer(t));
    tx.write(pattern(100), 0, 100);
    assert.equal(tx.flushDecision(), TxFlush.AUTOCORK.value, 'a CDC is in flight');
    const big = pattern(64 * K);
    tx.write(big, 0, 64 * K - 100);
    assert.equal(tx.prepared, 64 * K);
    assert.equal(tx.flushDecision(), TxFlush.AUTOCORK.value, 'exactly autocorking_size prepared still corks');
    tx.write(big, 0, 1);
    assert.equal(tx.flushDecision(), TxFlush.NOW.value, 'more than autocorking_size: push');
    assert.equal(tx.flushDecision(true), TxFlush.CORK.value, 'MSG_MORE with ring space left corks');
  });

  it('autocork limit is half the send ring when that is smaller; MSG_MORE corks while the ring has space', () => {
    const { st, tx, t } = setup(16 * K, 16 * K);
    tx.write(pattern(10), 0, 10);
    assert.ok(tx.nextTransfer(t));
    tx.write(pattern(8 * K), 0, 8 * K);
    assert.equal(tx.flushDecision(), TxFlush.AUTOCORK.value, '8 KiB = sndbuf / 2');
    tx.write(pattern(1), 0, 1);
    assert.equal(tx.flushDecision(), TxFlush.NOW.value);
    assert.equal(tx.flushDecision(true), TxFlush.CORK.value);
    st.sndbufSpace = 0;
    assert.equal(tx.flushDecision(true), TxFlush.NOW.value, 'corked but the ring is full: push');
    const off = setup(16 * K, 16 * K, 0);
    off.tx.write(pattern(10), 0, 10);
    assert.ok(off.tx.nextTransfer(off.t));
    off.tx.write(pattern(1), 0, 1);
    assert.equal(off.tx.flushDecision(), TxFlush.NOW.value, 'autocorking_size 0 disables autocorking');
  });

  it('peer consumer cursor: adopted unless older, adds free space, refuses cursors past our producer cursor (spec 7.2)', () => {
    const { st, tx, t } = setup();
    tx.write(pattern(10000), 0, 10000);
    assert.ok(tx.nextTransfer(t));
    assert.equal(tx.onPeerCdc(peerCons(0, 4000)), 4000);
    assert.equal(tx.peerSpace, 16 * K - 6000);
    assert.equal(tx.onPeerCdc(peerCons(0, 3000)), 0, 'older count, same wrap: ignored');
    assert.deepEqual({ ...st.peerCons }, { wrap: 0, count: 4000 });
    assert.equal(tx.onPeerCdc(peerCons(0, 4000)), 0, 'equal: no change');
    assert.equal(tx.onPeerCdc(peerCons(0, 10001)), -1, 'consumed more than we wrote');
    assert.equal(tx.onPeerCdc(peerCons(1, 0)), -1, 'a whole wrap ahead of our producer cursor');
    assert.equal(tx.onPeerCdc(peerCons(0, 16 * K)), -1, 'count outside the ring');
    assert.deepEqual({ ...st.peerCons }, { wrap: 0, count: 4000 });
    assert.equal(tx.onPeerCdc(peerCons(0, 10000)), 6000);
    assert.equal(tx.peerSpace, 16 * K);
    // The 16-bit wrap: a peer cursor at wrap 0 after 0xffff is newer.
    placeCursors(st, 0, 100);
    st.prod.wrap = 0;
    st.peerCons.wrap = 0xffff;
    st.peerCons.count = 16 * K - 100;
    st.peerRmbeSpace = 16 * K - 200;
    assert.equal(tx.onPeerCdc(peerCons(0, 50)), 150);
    assert.equal(tx.peerSpace, 16 * K - 50);
    // The kernel's rule is not serial arithmetic: wrap 0xfffe counts as newer than 0, so a stale
    // cursor from before the 16-bit wrap would be adopted; the ring check refuses it instead.
    assert.equal(tx.onPeerCdc(peerCons(0xfffe, 0)), -1);
    assert.equal(tx.onPeerCdc(peerCons(0, 40)), 0, 'same wrap, smaller count: older');
  });

  it('urgent data: pending until written, present on the CDC ending at the urgent byte, one outstanding send (spec 7.5)', () => {
    const { st, tx, t } = setup(16 * K, 16 * K);
    // The peer has 1000 bytes of space.
    placeCursors(st, 0, 15384);
    st.peerCons.count = 0;
    st.peerRmbeSpace = 1000;
    const d = pattern(1500);
    assert.equal(tx.write(d, 0, 1500, true), 1500);
    assert.equal(st.urgDataPending, true);
    assert.equal(st.urgTxPend, true);
    assert.equal(tx.writable, false, 'one urgent send outstanding');
    assert.equal(tx.write(d, 0, 10), 0, 'further writes wait');
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.len, 1000);
    assert.deepEqual([t.cdc.urgDataPending, t.cdc.urgDataPresent], [true, false], 'not all written yet');
    tx.onPeerCdc(peerCons(7, 16000));
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.len, 500);
    assert.deepEqual([t.cdc.urgDataPending, t.cdc.urgDataPresent], [true, true], 'ends at the urgent byte');
    assert.deepEqual([st.urgDataPending, st.urgDataPresent], [false, false], 'cleared after that CDC');
    const f = newCdcFields();
    st.fillCdc(f);
    assert.deepEqual([f.urgDataPending, f.urgDataPresent], [false, false]);
    assert.equal(tx.onPeerCdc(peerCons(8, 0)), 384);
    assert.equal(st.urgTxPend, true, 'the peer has not consumed everything');
    assert.equal(tx.onPeerCdc(peerCons(8, 500)), 500);
    assert.equal(st.urgTxPend, false, 'all consumed: more urgent (or normal) data accepted');
    tx.onSendComplete(t.mark);
    assert.equal(tx.writable, true);
  });

  it('a peer CDC between the urgent write and its transfer does not end the urgent send', () => {
    // Linux ends it as soon as the peer's RMBE is empty (smc_cdc_msg_recv_action); if the urgent
    // bytes are still in the send ring (autocork, no send slot) they would then go out without
    // urg_data_present.
    const { st, tx, t } = setup();
    tx.write(pattern(100), 0, 100);
    assert.ok(tx.nextTransfer(t));
    assert.equal(tx.write(pattern(10), 0, 10, true), 10);
    assert.equal(tx.flushDecision(), TxFlush.AUTOCORK.value, 'held back: a CDC is in flight');
    assert.equal(tx.onPeerCdc(peerCons(0, 100)), 100);
    assert.equal(tx.peerSpace, 16 * K);
    assert.equal(st.urgTxPend, true, 'not transferred yet');
    assert.ok(tx.nextTransfer(t));
    assert.equal(t.cdc.urgDataPresent, true);
    assert.equal(tx.onPeerCdc(peerCons(0, 110)), 10);
    assert.equal(st.urgTxPend, false);
  });

  it('an urgent send written in pieces announces pending data at once and present only at its end', () => {
    const { st, tx, t } = setup(16 * K, 16 * K);
    const d = pattern(20 * K);
    assert.equal(tx.write(d, 0, 20 * K, true), 16 * K);
    assert.equal(st.urgDataPending, true);
    assert.equal(st.urgTxPend, false, 'not the whole send yet');
    assert.ok(tx.nextTransfer(t));
    assert.deepEqual([t.cdc.urgDataPending, t.cdc.urgDataPresent], [true, false]);
    tx.onPeerCdc(peerCons(1, 0));
    tx.onSendComplete(t.mark);
    assert.equal(tx.write(d, 16 * K, 4 * K, true), 4 * K);
    assert.equal(st.urgTxPend, true);
    assert.ok(tx.nextTransfer(t));
    assert.deepEqual([t.cdc.urgDataPending, t.cdc.urgDataPresent], [true, true]);
  });

  it('cursor helpers: marks round-trip, diff_large, within-ring', () => {
    // Marks: small integers whose difference is the byte distance, across the 16-bit wrap too.
    fc.assert(fc.property(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 0xffff }), fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }), (n, wrap, p, q) => {
        const size = 16 * K * 2 ** n;
        const from = { wrap, count: Math.floor(p * (size - 1)) };
        const dist = Math.floor(q * size);
        const to = { ...from };
        cursorAdd(to, dist, size);
        const m1 = ringMark(from, size);
        const m2 = ringMark(to, size);
        assert.ok(Number.isInteger(m1) && m1 >= 0 && m1 < 2 ** 30 && m2 < 2 ** 30, 'a small integer');
        assert.equal(markDistance(m1, m2), dist);
      }));
    const S = 16 * K;
    assert.equal(cursorDiffLarge(S, { wrap: 1, count: 100 }, { wrap: 1, count: 50 }), 0);
    assert.equal(cursorDiffLarge(S, { wrap: 1, count: 100 }, { wrap: 2, count: 100 }), S);
    assert.equal(cursorDiffLarge(S, { wrap: 1, count: 100 }, { wrap: 3, count: 0 }), S, 'capped at the ring size');
    assert.equal(cursorDiffLarge(S, { wrap: 0xffff, count: S - 10 }, { wrap: 0, count: 5 }), 15);
    assert.ok(cursorWithinRing({ wrap: 0xffff, count: 10 }, { wrap: 0, count: 10 }));
    assert.ok(!cursorWithinRing({ wrap: 0xffff, count: 10 }, { wrap: 0, count: 11 }));
    assert.ok(!cursorWithinRing({ wrap: 5, count: 10 }, { wrap: 5, count: 9 }));
  });

  it('property: random writes, transfers, completions and peer reads keep every invariant', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('write' as const), n: fc.integer({ min: 1, max: 70 * K }), oob: fc.boolean() }),
      fc.record({ k: fc.constant('push' as const) }),
      fc.record({ k: fc.constant('complete' as const) }),
      fc.record({ k: fc.constant('consume' as const), n: fc.integer({ min: 0, max: 40 * K }) }),
    );
    const sizes = fc.constantFrom(16 * K, 32 * K, 64 * K);
    fc.assert(fc.property(sizes, sizes, fc.array(op, { maxLength: 200 }), (S, P, ops) => {
      const { st, ring, tx, t } = setup(S, P);
      let written = 0; // stream position of the next byte the application writes
      let transferred = 0; // bytes moved into the peer RMBE
      let consumed = 0; // bytes the peer has consumed
      const marks: number[] = [];
      for (const o of ops) {
        if (o.k === 'write') {
          const before = tx.space;
          const n = tx.write(pattern(o.n, written), 0, o.n, o.oob);
          assert.ok(n <= o.n && n <= before);
          if (st.urgTxPend && n === 0) continue;
          written += n;
        } else if (o.k === 'push') {
          while (tx.nextTransfer(t)) {
            marks.push(t.mark);
            const datas = gather(ring, t);
            for (let w = 0; w < t.writeCount; w++) {
              const data = datas[w]!;
              assert.equal(t.writes[w]!.dstOff, transferred % P, 'writes continue at the producer cursor');
              // Never into unread peer space: the write lies in [consumed, consumed + P).
              assert.ok(transferred + data.length <= consumed + P, 'write over unread data');
              assert.deepEqual(data, pattern(data.length, transferred), 'bytes in stream order');
              transferred += data.length;
            }
            assert.equal(t.cdc.prod.count, transferred % P);
            assert.equal(t.cdc.prod.wrap, Math.floor(transferred / P) & 0xffff);
          }
        } else if (o.k === 'complete') {
          const m = marks.shift();
          if (m !== undefined) tx.onSendComplete(m);
        } else {
          const n = Math.min(o.n, transferred - consumed);
          consumed += n;
          tx.onPeerCdc(peerCons(Math.floor(consumed / P) & 0xffff, consumed % P));
        }
        // Invariants (cf. the kernel's "guarantee 0 <= x <= size" comments).
        assert.ok(tx.space >= 0 && tx.space <= S);
        assert.equal(tx.space + written - finPos(st, S), S);
        assert.ok(tx.peerSpace >= 0 && tx.peerSpace <= P);
        assert.equal(tx.peerSpace, P - (transferred - consumed));
        assert.equal(tx.prepared, written - transferred);
      }
    }), { numRuns: 150 });

    /** Stream position of the fin cursor (rings here never exceed 65536 wraps). */
    function finPos(st: ConnState, S: number): number {
      return st.fin.wrap * S + st.fin.count;
    }
  });
});
