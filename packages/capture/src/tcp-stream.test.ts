import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildEthernetIpv4Tcp, buildEthernetIpv4Udp } from './build.js';
import { dissect, TcpFlag, type Packet } from './packet.js';
import { TcpReassembler, type TcpEvent } from './tcp-stream.js';

const { SYN, ACK, FIN, RST, PSH } = { SYN: TcpFlag.SYN.value, ACK: TcpFlag.ACK.value, FIN: TcpFlag.FIN.value, RST: TcpFlag.RST.value, PSH: TcpFlag.PSH.value };
const C = { addr: '10.0.0.1', port: 40000 };
const S = { addr: '10.0.0.2', port: 443 };

/** A segment from the client (dir 0) or the server (dir 1). */
function seg(dir: 0 | 1, seq: number, ack: number, flags: number, payload = ''): Packet {
  const [a, b] = dir === 0 ? [C, S] : [S, C];
  return dissect(buildEthernetIpv4Tcp({ src: a.addr, dst: b.addr, sport: a.port, dport: b.port, seq: seq >>> 0, ack: ack >>> 0, flags, payload: Buffer.from(payload) }), 1);
}

/** Compact view of events: `open`, `d0@0:abc#3`, `gap1@5+2#7`, `fin0@3#4`, `rst1#9`. */
function show(events: TcpEvent[]): string[] {
  return events.map((e) => {
    switch (e.kind) {
      case 'open': return `open${e.stream.id}`;
      case 'data': return `d${e.direction}@${e.offset}:${e.data.toString()}#${e.frameIndex}`;
      case 'gap': return `gap${e.direction}@${e.offset}+${e.length}#${e.frameIndex}`;
      case 'fin': return `fin${e.direction}@${e.offset}#${e.frameIndex}`;
      case 'rst': return `rst${e.direction}#${e.frameIndex}`;
    }
  });
}

function run(r: TcpReassembler, pkts: Packet[]): string[] {
  const out: string[] = [];
  pkts.forEach((p, i) => out.push(...show(r.push(i, p))));
  out.push(...show(r.flush()).map((s) => `flush:${s}`));
  return out;
}

const CI = 1000; // client ISN
const SI = 5000; // server ISN

const handshake = (): Packet[] => [seg(0, CI, 0, SYN), seg(1, SI, CI + 1, SYN | ACK), seg(0, CI + 1, SI + 1, ACK)];

describe('capture: TCP reassembly', () => {
  it('in-order data both ways, then FIN both ways', () => {
    const r = new TcpReassembler();
    const out = run(r, [
      ...handshake(),
      seg(0, CI + 1, SI + 1, ACK | PSH, 'hello'),
      seg(1, SI + 1, CI + 6, ACK | PSH, 'world!'),
      seg(0, CI + 6, SI + 7, ACK | FIN),
      seg(1, SI + 7, CI + 7, ACK | FIN),
      seg(0, CI + 7, SI + 8, ACK),
    ]);
    assert.deepEqual(out, ['open0', 'd0@0:hello#3', 'd1@0:world!#4', 'fin0@5#5', 'fin1@6#6']);
    const [st] = r.streams;
    assert.deepEqual(st!.client, C);
    assert.deepEqual(st!.server, S);
    assert.equal(st!.midstream, false);
    assert.equal(st!.firstFrame, 0);
  });

  it('reorders out-of-order segments and keeps each chunk\'s frame index', () => {
    const r = new TcpReassembler();
    const out = run(r, [...handshake(), seg(0, CI + 4, SI + 1, ACK, 'def'), seg(0, CI + 7, SI + 1, ACK, 'ghi'), seg(0, CI + 1, SI + 1, ACK, 'abc')]);
    assert.deepEqual(out, ['open0', 'd0@0:abc#5', 'd0@3:def#3', 'd0@6:ghi#4']);
    assert.deepEqual(r.streams[0]!.outOfOrder, [2, 0]);
  });

  it('drops retransmissions and delivers only the new part of an overlapping one', () => {
    const r = new TcpReassembler();
    const out = run(r, [
      ...handshake(),
      seg(0, CI + 1, SI + 1, ACK, 'abcd'),
      seg(0, CI + 1, SI + 1, ACK, 'abcd'), // plain retransmission
      seg(0, CI + 3, SI + 1, ACK, 'cdef'), // overlap: 'ef' is new
      seg(0, CI + 1, SI + 1, ACK, 'XX'), // old bytes with different content: first copy wins
    ]);
    assert.deepEqual(out, ['open0', 'd0@0:abcd#3', 'd0@4:ef#5']);
    assert.deepEqual(r.streams[0]!.retransmissions, [2, 0]);
  });

  it('reports a hole the peer acknowledged as a gap, then the data behind it', () => {
    const r = new TcpReassembler();
    const out = run(r, [
      ...handshake(),
      seg(0, CI + 1, SI + 1, ACK, 'abc'),
      // 'def' at CI+4 was not captured
      seg(0, CI + 7, SI + 1, ACK, 'ghi'),
      seg(1, SI + 1, CI + 10, ACK), // the server has everything up to 'ghi'
    ]);
    assert.deepEqual(out, ['open0', 'd0@0:abc#3', 'gap0@3+3#5', 'd0@6:ghi#4']);
  });

  it('an acknowledged hole with nothing behind it, and a hole still open at flush', () => {
    const r = new TcpReassembler();
    const out = run(r, [
      ...handshake(),
      seg(1, SI + 1, CI + 4, ACK), // acks 3 bytes we never saw
      seg(0, CI + 4, SI + 1, ACK, 'abc'),
      seg(0, CI + 10, SI + 1, ACK, 'xyz'), // 3-byte hole never filled, never acked
    ]);
    assert.deepEqual(out, ['open0', 'gap0@0+3#3', 'd0@3:abc#4', 'flush:gap0@6+3#5', 'flush:d0@9:xyz#5']);
  });

  it('a frame cut by the snap length yields its captured bytes and a gap for the rest', () => {
    const full = buildEthernetIpv4Tcp({ src: C.addr, dst: S.addr, sport: C.port, dport: S.port, seq: CI + 1, ack: SI + 1, flags: ACK, payload: Buffer.from('abcdefgh') });
    const cut = dissect(full.subarray(0, full.length - 5), 1);
    assert.equal(cut.tcp?.segmentLength, 8);
    const r = new TcpReassembler();
    const out = run(r, [...handshake(), cut, seg(0, CI + 9, SI + 1, ACK, 'ij')]);
    assert.deepEqual(out, ['open0', 'd0@0:abc#3', 'gap0@3+5#3', 'd0@8:ij#4']);
  });

  it('handles sequence numbers wrapping past 2^32', () => {
    const isn = 0xfffffffd;
    const r = new TcpReassembler();
    const out = run(r, [
      seg(0, isn, 0, SYN), seg(1, SI, isn + 1, SYN | ACK),
      seg(0, (isn + 4) >>> 0, SI + 1, ACK, 'defg'), // starts at seq 1 after the wrap
      seg(0, isn + 1, SI + 1, ACK, 'abc'), // 0xfffffffe .. 0x00000000
      seg(1, SI + 1, (isn + 8) >>> 0, ACK),
    ]);
    assert.deepEqual(out, ['open0', 'd0@0:abc#3', 'd0@3:defg#2']);
  });

  it('a capture that starts mid-stream', () => {
    const r = new TcpReassembler();
    const out = run(r, [seg(1, 777, 999, ACK, 'late'), seg(0, 999, 781, ACK, 'reply'), seg(1, 781, 1004, ACK, '!')]);
    assert.deepEqual(out, ['open0', 'd0@0:late#0', 'd1@0:reply#1', 'd0@4:!#2']);
    assert.equal(r.streams[0]!.midstream, true);
    assert.deepEqual(r.streams[0]!.client, S); // the first sender
  });

  it('SYN-ACK first: the receiver is the client', () => {
    const r = new TcpReassembler();
    run(r, [seg(1, SI, CI + 1, SYN | ACK), seg(0, CI + 1, SI + 1, ACK, 'x')]);
    assert.deepEqual(r.streams[0]!.client, C);
    assert.equal(r.streams[0]!.midstream, false);
  });

  it('a retransmitted SYN stays in the stream; a new SYN on the 4-tuple opens a new one', () => {
    const r = new TcpReassembler();
    const out = run(r, [
      seg(0, CI, 0, SYN), seg(0, CI, 0, SYN), seg(1, SI, CI + 1, SYN | ACK), seg(0, CI + 1, SI + 1, ACK, 'one'),
      seg(1, SI + 1, CI + 4, RST | ACK),
      seg(0, 90000, 0, SYN), seg(1, 70000, 90001, SYN | ACK), seg(0, 90001, 70001, ACK, 'two'),
    ]);
    assert.deepEqual(out, ['open0', 'd0@0:one#3', 'rst1#4', 'open1', 'd0@0:two#7']);
    assert.equal(r.streams.length, 2);
    assert.equal(r.streams[1]!.firstFrame, 5);
  });

  it('bounds the out-of-order buffer: past the limit the hole becomes a gap', () => {
    const r = new TcpReassembler({ maxBufferedBytes: 5 });
    const out = run(r, [...handshake(), seg(0, CI + 11, SI + 1, ACK, 'abc'), seg(0, CI + 14, SI + 1, ACK, 'def')]);
    assert.deepEqual(out, ['open0', 'gap0@0+10#4', 'd0@10:abc#3', 'd0@13:def#4']);
  });

  it('ignores frames without TCP', () => {
    const r = new TcpReassembler();
    assert.deepEqual(r.push(0, dissect(buildEthernetIpv4Udp({ src: '1.1.1.1', dst: '2.2.2.2', sport: 1, dport: 2 }), 1)), []);
    assert.equal(r.streams.length, 0);
  });

  it('keeps 4-tuples apart', () => {
    const r = new TcpReassembler();
    const a = dissect(buildEthernetIpv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, seq: 1, flags: ACK, payload: Buffer.from('a') }), 1);
    const b = dissect(buildEthernetIpv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 3, dport: 2, seq: 1, flags: ACK, payload: Buffer.from('b') }), 1);
    assert.deepEqual(run(r, [a, b]), ['open0', 'd0@0:a#0', 'open1', 'd0@0:b#1']);
  });

  it('property: any segmentation, order and duplication of a complete stream reassembles exactly', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 400 }),
      fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (data, cuts, isn, swaps, dups) => {
        // Cut the data into segments.
        const segs: { off: number; len: number }[] = [];
        let off = 0;
        for (let i = 0; off < data.length; i++) {
          const len = Math.min(cuts[i % cuts.length]!, data.length - off);
          segs.push({ off, len });
          off += len;
        }
        for (const d of dups) segs.push(segs[d % segs.length]!);
        for (let i = 0; i < swaps.length; i++) {
          const j = swaps[i]! % segs.length;
          const k = i % segs.length;
          [segs[j], segs[k]] = [segs[k]!, segs[j]!];
        }
        const pkts = [seg(0, isn, 0, SYN), seg(1, SI, isn + 1, SYN | ACK)];
        for (const s of segs) {
          const f = buildEthernetIpv4Tcp({ src: C.addr, dst: S.addr, sport: C.port, dport: S.port, seq: (isn + 1 + s.off) >>> 0, ack: SI + 1, flags: ACK, payload: data.subarray(s.off, s.off + s.len) });
          pkts.push(dissect(f, 1));
        }
        const r = new TcpReassembler();
        const chunks: Buffer[] = [];
        let expect = 0;
        const take = (events: TcpEvent[]): void => {
          for (const e of events) {
            assert.notEqual(e.kind, 'gap');
            if (e.kind === 'data') {
              assert.equal(e.offset, expect);
              expect += e.data.length;
              chunks.push(e.data);
            }
          }
        };
        pkts.forEach((p, i) => take(r.push(i, p)));
        take(r.flush());
        assert.deepEqual(Buffer.concat(chunks), Buffer.from(data));
      },
    ), { numRuns: 300 });
  });
});
