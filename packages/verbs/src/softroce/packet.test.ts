/**
 * The allocation-free packet reader against the independent decoder of @smc-r/wire: same
 * acceptance, same field values, on valid packets of every RC opcode, random bytes and single-byte
 * mutations/truncations. Plus the IPv4 and PSN helpers.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IbOpcode, WireError, decodeIbPacket, encodeIbPacket, ibPadCount, type IbPacketInput } from '@smc-r/wire';
import { ParseError, PSN_MASK, RxPacket, ipv4FromGid, ipv4ToNumber, numberToIpv4, parseIbPacket, psnAdd, psnDiff } from './packet.js';

function same(buf: Buffer): void {
  const rx = new RxPacket();
  let ref: ReturnType<typeof decodeIbPacket> | undefined;
  try {
    ref = decodeIbPacket(buf);
  } catch (e) {
    assert.ok(e instanceof WireError, String(e));
  }
  const err = parseIbPacket(buf, buf.length, rx);
  if (ref === undefined) {
    assert.notEqual(err, ParseError.OK, `reader accepts what decodeIbPacket refuses: ${buf.toString('hex')}`);
    return;
  }
  assert.equal(err, ParseError.OK, `reader refuses what decodeIbPacket accepts: ${buf.toString('hex')}`);
  const b = ref.bth;
  assert.deepEqual(
    [rx.opcode, rx.se, rx.migReq, rx.padCnt, rx.pkey, rx.destQp, rx.ackReq, rx.psn, rx.payloadOff, rx.payloadLen, rx.icrc],
    [b.opcode, b.se, b.migReq, b.padCnt, b.pkey, b.destQp, b.ackReq, b.psn, ref.payload.offset, ref.payload.length, ref.icrc],
  );
  assert.equal(rx.hasReth, ref.reth !== undefined);
  if (ref.reth !== undefined) {
    assert.equal((BigInt(rx.vaHi) << 32n) | BigInt(rx.vaLo), ref.reth.va);
    assert.deepEqual([rx.rkey, rx.dmaLen], [ref.reth.rkey, ref.reth.dmaLength]);
  }
  if (!rx.unsupported) {
    assert.equal(rx.hasAeth, ref.aeth !== undefined);
    if (ref.aeth !== undefined) assert.deepEqual([rx.syndrome, rx.msn], [ref.aeth.syndrome, ref.aeth.msn]);
    assert.equal(rx.hasImm, ref.immDt !== undefined);
    if (ref.immDt !== undefined) assert.equal(rx.imm, ref.immDt);
  } else {
    assert.ok(ref.atomicEth !== undefined || ref.atomicAckEth !== undefined || ref.ieth !== undefined);
  }
}

const arbPacket = fc.record({
  op: fc.constantFrom(...Object.values(IbOpcode)),
  se: fc.boolean(),
  migReq: fc.boolean(),
  pkey: fc.integer({ min: 0, max: 0xffff }),
  destQp: fc.integer({ min: 0, max: 0xffffff }),
  ackReq: fc.boolean(),
  psn: fc.integer({ min: 0, max: 0xffffff }),
  va: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  rkey: fc.integer({ min: 0, max: 0xffffffff }),
  dma: fc.integer({ min: 0, max: 0xffffffff }),
  syndrome: fc.integer({ min: 0, max: 0x7f }),
  msn: fc.integer({ min: 0, max: 0xffffff }),
  imm: fc.integer({ min: 0, max: 0xffffffff }),
  payload: fc.uint8Array({ maxLength: 70 }),
}).map((r): Buffer => {
  const o = r.op;
  const payload = o.payload ? Buffer.from(r.payload) : Buffer.alloc(0);
  const m: IbPacketInput = {
    bth: { opcode: o.value, se: r.se, migReq: r.migReq, padCnt: ibPadCount(payload.length), tver: 0, pkey: r.pkey, destQp: r.destQp, ackReq: r.ackReq, psn: r.psn },
    reth: o.reth ? { va: r.va, rkey: r.rkey, dmaLength: r.dma } : undefined,
    atomicEth: o.atomicEth ? { va: r.va, rkey: r.rkey, swapAdd: r.va, compare: 5n } : undefined,
    aeth: o.aeth ? { syndrome: r.syndrome, msn: r.msn } : undefined,
    atomicAckEth: o.atomicAckEth ? { origRemoteData: r.va } : undefined,
    immDt: o.immDt ? r.imm : undefined,
    ieth: o.ieth ? r.rkey : undefined,
    payload,
    icrc: r.imm,
  };
  const buf = Buffer.alloc(200);
  return buf.subarray(0, encodeIbPacket(m, buf, 0));
});

describe('softroce packet reader', () => {
  it('reads every RC opcode exactly as decodeIbPacket does', () => {
    fc.assert(fc.property(arbPacket, (b) => same(b)), { numRuns: 1000 });
  });

  it('accepts and refuses exactly what decodeIbPacket does on mutations and truncations', () => {
    fc.assert(fc.property(arbPacket, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (b, at, v, cut) => {
      const m = Buffer.from(b);
      m[at % m.length] = v;
      same(m);
      same(m.subarray(0, cut % (m.length + 1)));
    }), { numRuns: 1500 });
  });

  it('refuses random bytes the way decodeIbPacket does', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (u) => same(Buffer.from(u))), { numRuns: 1500 });
  });

  it('reports why: truncated, unknown opcode, TVer, length', () => {
    const rx = new RxPacket();
    // RC SEND ONLY, 4-byte payload, valid.
    // opcode 04, flags 00, P_Key ffff, resv 00, DestQP 000012, AckReq 00, PSN 000001, payload, ICRC.
    const ok = Buffer.from('0400ffff' + '00000012' + '00000001' + 'aabbccdd' + '11223344', 'hex');
    assert.equal(parseIbPacket(ok, ok.length, rx), ParseError.OK);
    assert.equal(parseIbPacket(ok, 11, rx), ParseError.TRUNCATED);
    const uc = Buffer.from(ok);
    uc[0] = 0x24; // UC SEND ONLY
    assert.equal(parseIbPacket(uc, uc.length, rx), ParseError.UNKNOWN_OPCODE);
    const tv = Buffer.from(ok);
    tv[1] = 0x01;
    assert.equal(parseIbPacket(tv, tv.length, rx), ParseError.BAD_TVER);
    assert.equal(parseIbPacket(ok, 18, rx), ParseError.BAD_LENGTH);
  });

  it('IPv4 text <-> number, GIDs, PSN arithmetic', () => {
    assert.equal(ipv4ToNumber('127.0.0.2'), 0x7f000002);
    assert.equal(ipv4ToNumber('255.255.255.255'), 0xffffffff);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', 'a.b.c.d', '1.2.3.4 ', '1234.1.1.1']) assert.equal(ipv4ToNumber(bad), -1, bad);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => ipv4ToNumber(numberToIpv4(n)) === n));
    assert.equal(ipv4FromGid(Buffer.from('00000000000000000000ffff0a000001', 'hex')), '10.0.0.1');
    assert.equal(ipv4FromGid(Buffer.from('fe800000000000000000ffff0a000001', 'hex')), undefined);
    assert.equal(psnAdd(PSN_MASK, 1), 0);
    assert.equal(psnAdd(0, PSN_MASK), PSN_MASK);
    assert.equal(psnDiff(0, PSN_MASK), 1);
    assert.equal(psnDiff(PSN_MASK, 0), -1);
    assert.equal(psnDiff(0x800000, 0), -0x800000);
    assert.equal(psnDiff(0x7fffff, 0), 0x7fffff);
  });
});
