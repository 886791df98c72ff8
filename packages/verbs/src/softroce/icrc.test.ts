/**
 * ICRC of datagrams whose IP header is out of reach: what softroce computes on transmit, and the
 * receive check that recovers an unknown IP ID (kernel-built headers). The reference is
 * `computeIcrc` of @smc-r/wire over a whole IPv4 packet built here byte by byte.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { computeIcrc, verifyIcrc } from '@smc-r/wire';
import { IcrcChecker, fillIcrcUdp4 } from './icrc.js';

/** A whole IPv4/UDP datagram around `ib` (BTH .. ICRC slot), as Linux would put it on the wire. */
function ipPacket(ib: Buffer, src: number, dst: number, sport: number, dport: number, id: number, flags = 0x4000, ttl = 64, tos = 0): Buffer {
  const p = Buffer.alloc(28 + ib.length);
  p[0] = 0x45; // version 4, IHL 5
  p[1] = tos;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(id, 4);
  p.writeUInt16BE(flags, 6);
  p[8] = ttl;
  p[9] = 17;
  p.writeUInt16BE(0xbeef, 10); // header checksum: masked, any value
  p.writeUInt32BE(src, 12);
  p.writeUInt32BE(dst, 16);
  p.writeUInt16BE(sport, 20);
  p.writeUInt16BE(dport, 22);
  p.writeUInt16BE(8 + ib.length, 24);
  p.writeUInt16BE(0, 26); // UDP checksum: masked
  ib.copy(p, 28);
  return p;
}

const arb = fc.record({
  words: fc.integer({ min: 4, max: 1060 }), // 16 .. 4240 bytes of BTH .. ICRC
  seed: fc.integer({ min: 1, max: 0x7fffffff }),
  src: fc.integer({ min: 0, max: 0xffffffff }),
  dst: fc.integer({ min: 0, max: 0xffffffff }),
  sport: fc.integer({ min: 1, max: 0xffff }),
  dport: fc.integer({ min: 1, max: 0xffff }),
  id: fc.integer({ min: 0, max: 0xffff }),
});

function body(words: number, seed: number): Buffer {
  const b = Buffer.alloc(words * 4);
  let x = seed;
  for (let i = 0; i < b.length - 4; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

describe('softroce ICRC', () => {
  it('transmit: the ICRC covers IP ID 0 with DF (what an IP_PMTUDISC_DO socket puts on the wire)', () => {
    fc.assert(fc.property(arb, (r) => {
      const ib = body(r.words, r.seed);
      fillIcrcUdp4(ib, ib.length, r.src, r.dst, r.sport, r.dport);
      const wire = ipPacket(ib, r.src, r.dst, r.sport, r.dport, 0, 0x4000, 1 + (r.seed & 0x7f), r.seed & 0xff);
      assert.ok(verifyIcrc(wire, 0, wire.length));
      if (r.id !== 0) assert.ok(!verifyIcrc(ipPacket(ib, r.src, r.dst, r.sport, r.dport, r.id), 0, wire.length), 'the ID is not masked');
    }), { numRuns: 200, seed: 7 });
  });

  it('receive: accepts the ICRC for any IP ID the sender chose (DF), and reports that ID', () => {
    const chk = new IcrcChecker();
    fc.assert(fc.property(arb, (r) => {
      const ib = body(r.words, r.seed);
      const wire = ipPacket(ib, r.src, r.dst, r.sport, r.dport, r.id);
      ib.writeUInt32LE(computeIcrc(wire, 0, wire.length), ib.length - 4);
      assert.ok(chk.check(ib, ib.length, r.src, r.dst, r.sport, r.dport));
      assert.equal(chk.lastId, r.id);
    }), { numRuns: 300, seed: 11 });
  });

  it('receive: refuses a flipped bit anywhere, a wrong address or port', () => {
    const chk = new IcrcChecker();
    fc.assert(fc.property(arb, fc.nat(), fc.integer({ min: 0, max: 7 }), (r, at, bit) => {
      const ib = body(r.words, r.seed);
      const wire = ipPacket(ib, r.src, r.dst, r.sport, r.dport, r.id);
      ib.writeUInt32LE(computeIcrc(wire, 0, wire.length), ib.length - 4);
      const bad = Buffer.from(ib);
      let i = at % bad.length;
      if (i === 4) i = 5; // BTH resv8a is masked out of the ICRC (IBA A17.3.3)
      bad[i] = bad[i]! ^ (1 << bit);
      assert.ok(!chk.check(bad, bad.length, r.src, r.dst, r.sport, r.dport), 'flipped bit');
      assert.ok(!chk.check(ib, ib.length, (r.src ^ 1) >>> 0, r.dst, r.sport, r.dport), 'source address');
      assert.ok(!chk.check(ib, ib.length, r.src, r.dst, r.sport ^ 0x100, r.dport), 'source port');
      assert.ok(!chk.check(ib, ib.length, r.src, r.dst, r.sport, r.dport ^ 2), 'destination port');
    }), { numRuns: 300, seed: 13 });
  });

  it('receive: a header without DF (the ID is then not what the check solves for) is refused', () => {
    const chk = new IcrcChecker();
    const ib = body(40, 5);
    const wire = ipPacket(ib, 0x0a000001, 0x0a000002, 4791, 4791, 0x1234, 0x0000);
    ib.writeUInt32LE(computeIcrc(wire, 0, wire.length), ib.length - 4);
    assert.equal(chk.check(ib, ib.length, 0x0a000001, 0x0a000002, 4791, 4791), false);
  });
});
