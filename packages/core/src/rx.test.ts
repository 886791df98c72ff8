import assert from 'node:assert/strict';
import fc from 'fast-check';
import { newCdcFields, type CdcFields } from '@smc-r/wire';
import { ConnState, UrgState, rmbeUpdateLimit, SOCK_MIN_SNDBUF_HALF } from './conn-state.js';
import { SmcTx } from './tx.js';
import { SmcRx } from './rx.js';

const K = 1024;

function setup(rmbeSize = 16 * K, oobInline = false) {
  const st = new ConnState({ sndbufSize: 16 * K, rmbeSize, peerRmbeSize: 16 * K, peerToken: 7 });
  const rmbe = Buffer.alloc(rmbeSize);
  const tx = new SmcTx(st, Buffer.alloc(16 * K));
  const rx = new SmcRx(st, rmbe, tx, { oobInline });
  return { st, rmbe, tx, rx, peer: new Peer(rmbe) };
}

function byteAt(pos: number): number {
  return (pos * 131 + (pos >>> 9)) & 0xff;
}

/**
 * The remote sender, by hand: RDMA-writes stream bytes into our RMBE and builds its CDCs (seqno from
 * 1, producer cursor = bytes written, consumer cursor = whatever the test says).
 */
class Peer {
  seq = 0;
  written = 0;
  constructor(readonly rmbe: Buffer) {}
  /** Writes `n` stream bytes (or the given ones) at the producer cursor; returns the CDC. */
  send(n: number, flags: Partial<CdcFields> = {}, bytes?: Buffer): CdcFields {
    const size = this.rmbe.length;
    for (let i = 0; i < n; i++) this.rmbe[(this.written + i) % size] = bytes ? bytes[i]! : byteAt(this.written + i);
    this.written += n;
    return this.cdc(flags);
  }
  cdc(flags: Partial<CdcFields> = {}): CdcFields {
    const size = this.rmbe.length;
    this.seq = (this.seq + 1) & 0xffff;
    const f = newCdcFields();
    f.seqno = this.seq;
    f.token = 7;
    f.prod.wrap = Math.floor(this.written / size) & 0xffff;
    f.prod.count = this.written % size;
    Object.assign(f, flags);
    return f;
  }
}

function readAll(rx: SmcRx, max = 1 << 20): Buffer {
  const b = Buffer.alloc(max);
  const n = rx.read(b, 0, max);
  return b.subarray(0, n);
}

function stream(from: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = byteAt(from + i);
  return b;
}

describe('core/rx: receive side (spec 7.2, 7.4, 7.5, 7.7)', () => {
  it('new producer cursor -> readable bytes; read copies out split at the ring end and advances the cursor', () => {
    const { st, rx, peer } = setup();
    let r = rx.onCdc(peer.send(10 * K));
    assert.equal(r.verdict, 'accepted');
    assert.equal(r.newBytes, 10 * K);
    assert.equal(rx.readable, 10 * K);
    const dst = Buffer.alloc(20 * K);
    assert.equal(rx.read(dst, 100, 4 * K), 4 * K);
    assert.deepEqual(dst.subarray(100, 100 + 4 * K), stream(0, 4 * K));
    assert.deepEqual({ ...st.cons }, { wrap: 0, count: 4 * K });
    assert.deepEqual(readAll(rx), stream(4 * K, 6 * K));
    // 10 KiB more: 6 KiB up to the ring end, 4 KiB from its start; one read takes both pieces.
    r = rx.onCdc(peer.send(10 * K));
    assert.equal(r.newBytes, 10 * K);
    assert.deepEqual(readAll(rx), stream(10 * K, 10 * K));
    assert.deepEqual({ ...st.cons }, { wrap: 1, count: 4 * K });
    assert.equal(rx.read(dst, 0, 100), 0, 'nothing readable');
    assert.throws(() => rx.read(dst, 1, dst.length), RangeError);
    // A full ring at once (producer exactly one ring ahead): 16 KiB readable.
    r = rx.onCdc(peer.send(16 * K));
    assert.equal(r.newBytes, 16 * K);
    assert.deepEqual(readAll(rx), stream(20 * K, 16 * K));
  });

  it('seqno order: an older CDC is dropped, equal and newer ones pass, and 65535 -> 0 is newer (spec 7.2)', () => {
    const { st, rx, peer } = setup();
    const first = peer.send(100);
    assert.equal(first.seqno, 1, 'a peer starts at 1');
    assert.equal(rx.onCdc(first).verdict, 'accepted');
    assert.equal(rx.onCdc(first).verdict, 'accepted', 'same seqno again: not before the last one');
    const second = peer.send(100);
    assert.equal(rx.onCdc(second).verdict, 'accepted');
    const stale = newCdcFields();
    stale.seqno = 1;
    stale.prod.count = 5000;
    stale.peerConnClosed = true;
    const r = rx.onCdc(stale);
    assert.equal(r.verdict, 'old');
    assert.equal(rx.readable, 200, 'the stale CDC changed nothing');
    assert.equal(st.peerConnClosed, false);
    // Across the 16-bit wrap (as if 65532 more CDCs had come).
    peer.seq = 65534;
    st.rxSeq = 65534;
    const last = peer.send(1);
    assert.equal(last.seqno, 65535);
    assert.equal(rx.onCdc(last).verdict, 'accepted');
    assert.equal(st.rxSeq, 65535);
    const wrapped = peer.send(1);
    assert.equal(wrapped.seqno, 0);
    assert.equal(rx.onCdc(wrapped).verdict, 'accepted');
    const late = newCdcFields();
    late.seqno = 65535;
    assert.equal(rx.onCdc(late).verdict, 'old');
    // Half the sequence space ahead is "before" in signed 16-bit arithmetic.
    late.seqno = 0x8000;
    assert.equal(rx.onCdc(late).verdict, 'old');
    late.seqno = 0x7fff;
    late.prod.count = 202;
    assert.equal(rx.onCdc(late).verdict, 'accepted');
  });

  it('an older producer cursor in a newer CDC is ignored (spec 7.2)', () => {
    const { st, rx, peer } = setup();
    rx.onCdc(peer.send(3000));
    const older = peer.cdc();
    older.prod.count = 1000;
    const r = rx.onCdc(older);
    assert.equal(r.verdict, 'accepted');
    assert.equal(r.newBytes, 0);
    assert.deepEqual({ ...st.peerProd }, { wrap: 0, count: 3000 });
    assert.equal(rx.readable, 3000);
    assert.equal(st.rxSeq, older.seqno, 'the seqno is taken even so');
  });

  it('a producer cursor past our consumer cursor + ring size is a protocol error, not applied', () => {
    const { st, rx, peer } = setup();
    rx.onCdc(peer.send(16 * K));
    const over = peer.send(1);
    assert.equal(rx.onCdc(over).verdict, 'bad-cursor');
    assert.equal(rx.readable, 16 * K);
    assert.deepEqual({ ...st.peerProd }, { wrap: 1, count: 0 });
    const crazy = peer.cdc();
    crazy.prod.count = 16 * K;
    crazy.prod.wrap = 1;
    assert.equal(rx.onCdc(crazy).verdict, 'bad-cursor', 'count outside the ring');
  });

  it('the consumer cursor of a peer CDC goes to the send side: free space and txWanted', () => {
    const { st, tx, rx, peer } = setup();
    tx.write(Buffer.alloc(10 * K), 0, 10 * K);
    // Our side wrote 10 KiB into the peer (simulated by moving the producer cursor).
    st.prod.count = 10 * K;
    st.peerRmbeSpace = 6 * K;
    st.sent.count = 8 * K; // 2 KiB still prepared
    const f = peer.cdc();
    f.cons.count = 4 * K;
    const r = rx.onCdc(f);
    assert.equal(r.freed, 4 * K);
    assert.equal(r.txWanted, true, 'space opened with data waiting');
    assert.equal(tx.peerSpace, 10 * K);
    const g = peer.cdc();
    g.cons.count = 11 * K;
    assert.equal(rx.onCdc(g).verdict, 'bad-cursor', 'consumed more than we produced');
  });

  it('failover validation: a seqno already seen is fine, an unseen one means lost CDCs (spec 7.7)', () => {
    const { st, rx, peer } = setup();
    rx.onCdc(peer.send(10));
    rx.onCdc(peer.send(10));
    const v = peer.cdc({ failoverValidation: true });
    v.seqno = 2;
    assert.equal(rx.onCdc(v).verdict, 'validated');
    v.seqno = 1;
    v.prod.count = 9999;
    assert.equal(rx.onCdc(v).verdict, 'validated', 'older is fine, and it is not applied');
    assert.equal(rx.readable, 20);
    v.seqno = 3;
    assert.equal(rx.onCdc(v).verdict, 'out-of-sync');
    assert.equal(st.outOfSync, true);
    assert.equal(rx.onCdc(peer.send(10)).verdict, 'out-of-sync', 'nothing is accepted afterwards');
  });

  it('connection-state flags are reported and kept for the close machine', () => {
    const { st, rx, peer } = setup();
    let r = rx.onCdc(peer.send(5, { peerDoneWriting: true }));
    assert.deepEqual([r.peerDoneWriting, r.peerConnClosed, r.peerConnAbort], [true, false, false]);
    r = rx.onCdc(peer.cdc({ peerConnClosed: true }));
    assert.deepEqual([r.peerDoneWriting, r.peerConnClosed], [false, true]);
    assert.deepEqual([st.peerDoneWriting, st.peerConnClosed, st.rxedAnyClose], [true, true, true]);
    assert.equal(rx.readable, 5, 'data before the close is still readable');
    r = rx.onCdc(peer.cdc({ peerConnAbort: true }));
    assert.equal(r.peerConnAbort, true);
    assert.equal(st.peerConnAbort, true);
    assert.equal(rx.read(Buffer.alloc(10), 0, 10), 5);
    assert.equal(rx.consumerUpdateDue(), false, 'never an update after the peer aborted');
  });

  it('urgent byte: present with new data, the byte before the producer cursor, skipped in the stream (spec 7.5)', () => {
    const { st, rx, peer } = setup();
    rx.onCdc(peer.send(100));
    const r = rx.onCdc(peer.send(50, { urgDataPending: true, urgDataPresent: true }));
    assert.equal(r.urgentArrived, true);
    assert.equal(r.newBytes, 49, 'the urgent byte is not counted as readable');
    assert.equal(rx.urgentState, UrgState.VALID.value);
    assert.equal(rx.urgentByte, byteAt(149));
    const dst = Buffer.alloc(1000);
    assert.equal(rx.read(dst, 0, 1000), 149);
    assert.deepEqual(dst.subarray(0, 149), stream(0, 149));
    assert.deepEqual({ ...st.cons }, { wrap: 0, count: 150 }, 'the reader skipped the urgent byte');
    assert.equal(st.forceUpdate, true);
    assert.equal(rx.consumerUpdateDue(), true, 'forced after the urgent byte (spec 7.4)');
    assert.equal(rx.readUrgent(true), byteAt(149), 'peek');
    assert.equal(rx.readUrgent(), byteAt(149));
    assert.equal(rx.readUrgent(), -1, 'read already');
    assert.equal(rx.urgentState, UrgState.READ.value);
  });

  it('urgent byte at cursor count 0 is the last byte of the ring', () => {
    const { st, rmbe, rx, peer } = setup();
    rx.onCdc(peer.send(16 * K - 10));
    readAll(rx);
    const r = rx.onCdc(peer.send(10, { urgDataPresent: true }));
    assert.deepEqual({ ...st.urgCurs }, { wrap: 1, count: 0 });
    assert.equal(r.urgentArrived, true);
    assert.equal(rx.urgentByte, rmbe[16 * K - 1]);
    assert.equal(rx.urgentByte, byteAt(16 * K - 1));
    assert.deepEqual(readAll(rx), stream(16 * K - 10, 9));
    assert.deepEqual({ ...st.cons }, { wrap: 1, count: 0 });
  });

  it('a lone urgent byte is skipped by the next read even if nothing else is readable', () => {
    const { st, rx, peer } = setup();
    rx.onCdc(peer.send(10));
    readAll(rx);
    assert.equal(rx.consumerUpdateDue(), false);
    rx.onCdc(peer.send(1, { urgDataPending: true, urgDataPresent: true }));
    assert.equal(rx.readable, 0);
    assert.equal(rx.read(Buffer.alloc(1), 0, 1), 0);
    assert.deepEqual({ ...st.cons }, { wrap: 0, count: 11 });
    assert.equal(rx.consumerUpdateDue(), true);
  });

  it('recv(MSG_OOB) first, with the reader right before a lone urgent byte: the byte is still skipped', () => {
    const { st, rx, peer } = setup();
    rx.onCdc(peer.send(10));
    readAll(rx);
    rx.onCdc(peer.send(1, { urgDataPresent: true }));
    assert.equal(rx.readUrgent(), byteAt(10));
    assert.deepEqual({ ...st.cons }, { wrap: 0, count: 11 }, 'skipped (Linux would leave it and stall the sender)');
    assert.equal(rx.consumerUpdateDue(), true);
  });

  it('recv(MSG_OOB) before the reader reaches the urgent byte: skipped later', () => {
    const { st, rx, peer } = setup();
    rx.onCdc(peer.send(100, { urgDataPresent: true }));
    assert.equal(rx.readUrgent(), byteAt(99));
    assert.equal(st.urgSkipPend, true);
    assert.deepEqual(readAll(rx, 60), stream(0, 60));
    assert.deepEqual(readAll(rx), stream(60, 39));
    assert.deepEqual({ ...st.cons }, { wrap: 0, count: 100 });
    assert.equal(st.urgSkipPend, false);
  });

  it('an urgent byte just after the 16-bit wrap of the cursor is still skipped (wrap-safe comparison)', () => {
    const { st, rx, peer } = setup();
    // Everything so far: 0xffff rings and 16374 bytes, all read and confirmed.
    peer.written = 0xffff * 16 * K + 16 * K - 10;
    for (const c of [st.cons, st.confirmed, st.peerProd]) {
      c.wrap = 0xffff;
      c.count = 16 * K - 10;
    }
    const r = rx.onCdc(peer.send(20, { urgDataPresent: true }));
    assert.equal(r.newBytes, 19);
    assert.deepEqual({ ...st.urgCurs }, { wrap: 0, count: 10 });
    assert.deepEqual(readAll(rx), stream(peer.written - 20, 19));
    assert.deepEqual({ ...st.cons }, { wrap: 0, count: 10 }, 'skipped: Linux\'s smc_curs_comp would see it as far behind');
    assert.equal(rx.consumerUpdateDue(), true);
  });

  it('taking the urgent byte with recv(MSG_OOB) forces a consumer update when it skips it', () => {
    const { rx, peer } = setup();
    rx.onCdc(peer.send(10));
    readAll(rx);
    rx.onCdc(peer.send(1, { urgDataPresent: true }));
    assert.equal(rx.readUrgent(true), byteAt(10));
    assert.equal(rx.consumerUpdateDue(), false, 'a peek changes nothing');
    assert.equal(rx.readUrgent(), byteAt(10));
    assert.equal(rx.consumerUpdateDue(), true);
  });

  it('urg_data_pending without data: urgent data announced (NOTYET) and a push is wanted', () => {
    const { rx, peer } = setup();
    const r = rx.onCdc(peer.cdc({ urgDataPending: true }));
    assert.equal(r.urgentAnnounced, true);
    assert.equal(r.txWanted, true);
    assert.equal(rx.urgentState, UrgState.NOTYET.value);
    assert.equal(rx.readUrgent(), -1, 'EINVAL in Linux until it arrives');
  });

  it('SO_OOBINLINE: reads stop before the urgent byte, the next read returns it and forces an update', () => {
    const { st, rx, peer } = setup(16 * K, true);
    const r = rx.onCdc(peer.send(100, { urgDataPresent: true }));
    assert.equal(r.newBytes, 100, 'inline: the urgent byte stays in the stream');
    assert.equal(rx.readUrgent(), -1, 'no out-of-band read in inline mode');
    assert.deepEqual(readAll(rx), stream(0, 99));
    assert.equal(st.forceUpdate, false);
    assert.deepEqual(readAll(rx), stream(99, 1));
    assert.equal(st.forceUpdate, true);
    assert.equal(rx.urgentState, UrgState.READ.value);
  });

  it('rmbe_update_limit = max(rmbe_size / 10, SOCK_MIN_SNDBUF / 2 = 2304)', () => {
    assert.equal(SOCK_MIN_SNDBUF_HALF, 2304);
    assert.equal(rmbeUpdateLimit(16 * K), 2304);
    assert.equal(rmbeUpdateLimit(32 * K), 3276);
    assert.equal(rmbeUpdateLimit(64 * K), 6553);
    assert.equal(rmbeUpdateLimit(1024 * K), 104857);
  });

  describe('consumer update rule (spec 7.4, smc_tx_consumer_update)', () => {
    /** Peer wrote `produced` bytes (maybe with write_blocked); we read `read` of them. */
    function due(produced: number, read: number, opts: { writeBlocked?: boolean; rmbe?: number } = {}): boolean {
      const { rx, peer } = setup(opts.rmbe ?? 16 * K);
      rx.onCdc(peer.send(produced, { writeBlocked: opts.writeBlocked ?? false }));
      assert.equal(rx.read(Buffer.alloc(read), 0, read), read);
      return rx.consumerUpdateDue();
    }

    it('to_confirm must exceed the limit (2304 for 16 KiB): 2304 is not enough, 2305 is', () => {
      assert.equal(due(10000, 2304), false);
      assert.equal(due(10000, 2305), true, 'sender_free = 16384 - 10000 = 6384 <= 8192');
    });

    it('sender_free <= rmbe_size / 2: 8192 free is due, 8193 free is not', () => {
      assert.equal(due(8192, 2305), true);
      assert.equal(due(8191, 2305), false);
      assert.equal(due(8191, 8191), false, 'even all of it, without write_blocked');
    });

    it('or the peer set write_blocked', () => {
      assert.equal(due(3000, 2305, { writeBlocked: true }), true);
      assert.equal(due(3000, 2304, { writeBlocked: true }), false);
    });

    it('64 KiB RMBE: limit 6553, half 32768', () => {
      const R = 64 * K;
      assert.equal(due(40000, 6553, { rmbe: R }), false);
      assert.equal(due(40000, 6554, { rmbe: R }), true);
      assert.equal(due(32768, 6554, { rmbe: R }), true);
      assert.equal(due(32767, 6554, { rmbe: R }), false);
    });

    it('to_confirm counts from the cursor last sent, not from zero', () => {
      const { st, rx, peer } = setup();
      rx.onCdc(peer.send(12000));
      rx.read(Buffer.alloc(3000), 0, 3000);
      assert.equal(rx.consumerUpdateDue(), true);
      st.fillCdc(newCdcFields());
      assert.deepEqual({ ...st.confirmed }, { wrap: 0, count: 3000 });
      rx.read(Buffer.alloc(2304), 0, 2304);
      assert.equal(rx.consumerUpdateDue(), false, 'only 2304 since the last update');
      rx.read(Buffer.alloc(1), 0, 1);
      assert.equal(rx.consumerUpdateDue(), true);
    });

    it('sender_free uses the distance from the confirmed cursor to the peer producer cursor across wraps', () => {
      const { st, rx, peer } = setup();
      rx.onCdc(peer.send(16 * K));
      rx.read(Buffer.alloc(16 * K), 0, 16 * K);
      assert.equal(rx.consumerUpdateDue(), true);
      st.fillCdc(newCdcFields());
      // Confirmed (1, 0). The peer fills 9000 more; we read 2305: free = 16384 - 9000 = 7384.
      rx.onCdc(peer.send(9000));
      rx.read(Buffer.alloc(2305), 0, 2305);
      assert.equal(rx.consumerUpdateDue(), true);
    });

    it('cons_curs_upd_req from the peer: due at once, even with nothing to confirm; cleared by the CDC', () => {
      const { st, rx, peer } = setup();
      const r = rx.onCdc(peer.cdc({ consCursUpdReq: true }));
      assert.equal(r.consCursUpdReq, true);
      assert.equal(r.txWanted, true);
      assert.equal(rx.consumerUpdateDue(), true);
      const f = newCdcFields();
      st.fillCdc(f);
      assert.equal(f.consCursUpdReq, false, 'we never request one ourselves');
      assert.equal(rx.consumerUpdateDue(), false);
    });

    it('a due update is remembered until a CDC goes out (no send slot now, ask again later)', () => {
      const { st, rx, peer } = setup();
      rx.onCdc(peer.send(3000, { writeBlocked: true }));
      rx.read(Buffer.alloc(3000), 0, 3000);
      assert.equal(rx.consumerUpdateDue(), true);
      assert.equal(st.peerWriteBlocked, false, 'write_blocked forgotten once everything is read (as Linux)');
      assert.equal(rx.consumerUpdateDue(), true, 'still owed');
      st.fillCdc(newCdcFields());
      assert.equal(rx.consumerUpdateDue(), false);
    });

    it('property: exactly the kernel formula for any produced / read / write_blocked / RMBE size', () => {
      fc.assert(fc.property(
        fc.constantFrom(16 * K, 32 * K, 64 * K, 128 * K),
        fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(),
        (R, p, q, wb) => {
          const produced = Math.floor(p * R);
          const read = Math.floor(q * produced);
          const limit = Math.max(Math.floor(R / 10), 2304);
          const senderFree = read > limit ? R - produced : R;
          const expect = read > limit && (senderFree <= R / 2 || wb);
          assert.equal(due(produced, read, { writeBlocked: wb, rmbe: R }), expect);
        }), { numRuns: 300 });
    });
  });

  it('the write_blocked of a later CDC replaces the earlier one (flags are per CDC)', () => {
    const { st, rx, peer } = setup();
    rx.onCdc(peer.send(100, { writeBlocked: true }));
    assert.equal(st.peerWriteBlocked, true);
    const r = rx.onCdc(peer.cdc());
    assert.equal(r.peerWriteBlocked, false);
    assert.equal(st.peerWriteBlocked, false);
  });
});
