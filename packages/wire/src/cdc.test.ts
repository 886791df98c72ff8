import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WireError, WireErrorCode } from './errors.js';
import {
  decodeCdc, decodeCdcInto, encodeCdc, newCdcFields, cdcFirstNonZeroReserved, CdcFlag, CDC_MSG_LEN,
  cursorAdd, cursorDiff, cursorComp, cursorNewer, seqnoOlder, seqnoNext,
  type CdcMessage, type CdcFields, type CdcCursor,
} from './cdc.js';
import { SAMPLES } from './testing/cdc-samples.js';
import { throwsWire } from './testing/assert.js';

/** Hex pieces (whitespace ignored) to a Buffer; every vector is written by hand from spec 7.1. */
function h(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}
const zeros = (n: number): string => '00'.repeat(n);

const BASE: CdcMessage = {
  type: 'cdc', seqno: 0x1234, token: 0x00000a01,
  prod: { wrap: 2, count: 0x8000 }, cons: { wrap: 1, count: 0xfff0 },
  writeBlocked: false, urgDataPending: false, urgDataPresent: false, consCursUpdReq: false, failoverValidation: false,
  peerDoneWriting: false, peerConnClosed: false, peerConnAbort: false, credits: 0,
};

/** BASE with producer flags byte `pf` and connection-state flags byte `cf` (both hand-written). */
function baseHex(pf: string, cf: string, credits = '00'): Buffer {
  return h(
    'fe', //            0: type CDC
    '2c', //            1: length 44
    '1234', //          2: seqno 0x1234
    '00000a01', //      4: token (receiver's alert token)
    '0000', '0002', '00008000', //  8: producer cursor: reserved, wrap 2, count 0x8000
    '0000', '0001', '0000fff0', // 16: consumer cursor: reserved, wrap 1, count 0xfff0
    pf, //             24: producer flags
    cf, //             25: connection state flags
    credits, //        26: credits (Alibaba)
    zeros(17), //      27: reserved
  );
}

interface Golden { name: string; hex: Buffer; msg: CdcMessage }
const GOLDEN: Golden[] = [
  { name: 'data CDC, no flags', hex: baseHex('00', '00'), msg: BASE },
  { name: 'write_blocked', hex: baseHex('80', '00'), msg: { ...BASE, writeBlocked: true } },
  { name: 'urg_data_pending', hex: baseHex('40', '00'), msg: { ...BASE, urgDataPending: true } },
  { name: 'urg_data_present', hex: baseHex('20', '00'), msg: { ...BASE, urgDataPresent: true } },
  { name: 'cons_curs_upd_req', hex: baseHex('10', '00'), msg: { ...BASE, consCursUpdReq: true } },
  { name: 'failover_validation', hex: baseHex('08', '00'), msg: { ...BASE, failoverValidation: true } },
  { name: 'peer_done_writing (shutdown SHUT_WR)', hex: baseHex('00', '80'), msg: { ...BASE, peerDoneWriting: true } },
  { name: 'peer_conn_closed (close)', hex: baseHex('00', '40'), msg: { ...BASE, peerConnClosed: true } },
  { name: 'peer_conn_abort', hex: baseHex('00', '20'), msg: { ...BASE, peerConnAbort: true } },
  { name: 'urgent pending + present with write_blocked', hex: baseHex('e0', '00'), msg: { ...BASE, writeBlocked: true, urgDataPending: true, urgDataPresent: true } },
  { name: 'every flag', hex: baseHex('f8', 'e0'), msg: {
    ...BASE, writeBlocked: true, urgDataPending: true, urgDataPresent: true, consCursUpdReq: true, failoverValidation: true,
    peerDoneWriting: true, peerConnClosed: true, peerConnAbort: true,
  } },
  { name: 'Alibaba credits in byte 26', hex: baseHex('00', '00', '40'), msg: { ...BASE, credits: 64 } },
  {
    name: 'first CDC of a connection, wrap at 65535, large counts',
    hex: h('fe', '2c', '0001' /* seqno 1 */, 'fedcba98' /* token */,
      '0000', 'ffff', '0003fffc' /* prod wrap 65535, count 262140 */,
      '0000', '0000', 'ffffffff' /* cons wrap 0, count 2^32-1 */, '00', '00', '00', zeros(17)),
    msg: { ...BASE, seqno: 1, token: 0xfedcba98, prod: { wrap: 0xffff, count: 262140 }, cons: { wrap: 0, count: 0xffffffff } },
  },
];

/** Real CDC from hwipl/smc-go `pkg/llc/cdc_test.go` (seqno 1, token 3, producer count 13). */
const SMC_GO_CDC = 'fe2c0001 00000003 0000 0000 0000000d 0000 0000 00000000 00 00 ' + zeros(18);


function at(bytes: Uint8Array, pad = 3): [Buffer, number, number] {
  const buf = Buffer.alloc(pad + bytes.length + 5, 0xaa);
  buf.set(bytes, pad);
  return [buf, pad, pad + bytes.length];
}

describe('cdc', () => {
  describe('golden vectors (hand-written from spec 7.1)', () => {
    for (const g of GOLDEN) {
      it(g.name, () => {
        assert.equal(g.hex.length, CDC_MSG_LEN);
        const out = Buffer.alloc(50, 0xee);
        assert.equal(encodeCdc(g.msg, out, 4), 48);
        assert.deepEqual(out.subarray(4, 48), g.hex);
        assert.deepEqual(out.subarray(0, 4), Buffer.alloc(4, 0xee));
        assert.deepEqual(decodeCdc(g.hex), g.msg);
        const [buf, off, end] = at(g.hex);
        assert.deepEqual(decodeCdc(buf, off, end), g.msg);
      });
    }
    it('hwipl/smc-go capture', () => {
      const raw = h(SMC_GO_CDC);
      assert.deepEqual(decodeCdc(raw), { ...BASE, seqno: 1, token: 3, prod: { wrap: 0, count: 13 }, cons: { wrap: 0, count: 0 } });
      const out = Buffer.alloc(44);
      encodeCdc(decodeCdc(raw), out, 0);
      assert.deepEqual(out, raw);
    });
    it('testing/cdc-samples round-trip', () => {
      for (const s of SAMPLES) {
        const out = Buffer.alloc(44);
        encodeCdc(s.msg, out, 0);
        assert.deepEqual(decodeCdc(out), s.msg, s.name);
      }
    });
    it('CdcFlag masks match the vectors', () => {
      assert.equal(CdcFlag.WRITE_BLOCKED.value | CdcFlag.URG_DATA_PENDING.value | CdcFlag.URG_DATA_PRESENT.value |
        CdcFlag.CONS_CURS_UPD_REQ.value | CdcFlag.FAILOVER_VALIDATION.value, 0xf8);
      assert.equal(CdcFlag.PEER_DONE_WRITING.value | CdcFlag.PEER_CONN_CLOSED.value | CdcFlag.PEER_CONN_ABORT.value, 0xe0);
    });
  });

  describe('decodeCdcInto', () => {
    it('fills and returns the caller object, reusing its cursors', () => {
      const out = newCdcFields();
      const prod = out.prod;
      for (const g of GOLDEN) {
        const [buf, off, end] = at(g.hex, 7);
        assert.equal(decodeCdcInto(buf, off, end, out), out);
        assert.equal(out.prod, prod);
        assert.deepEqual(out, g.msg);
      }
    });
    it('leaves the object untouched on error', () => {
      const out = newCdcFields();
      decodeCdcInto(GOLDEN[1]!.hex, 0, 44, out);
      const before = JSON.stringify(out);
      const bad = Buffer.from(GOLDEN[0]!.hex);
      bad[1] = 43;
      assert.throws(() => decodeCdcInto(bad, 0, 44, out), WireError);
      assert.equal(JSON.stringify(out), before);
    });
  });

  describe('reserved bits and bytes', () => {
    it('are ignored by decode and found by cdcFirstNonZeroReserved', () => {
      assert.equal(cdcFirstNonZeroReserved(GOLDEN[0]!.hex), -1);
      for (const [i, v] of [[8, 1], [9, 0x80], [16, 2], [17, 1], [24, 0x07], [25, 0x1f], [27, 1], [43, 0xff]] as const) {
        const x = Buffer.from(GOLDEN[0]!.hex);
        x[i] = x[i]! | v;
        assert.deepEqual(decodeCdc(x), BASE, `byte ${i}`);
        const [buf, off] = at(x, 2);
        assert.equal(cdcFirstNonZeroReserved(buf, off), 2 + i);
      }
      const cr = GOLDEN.find((g) => g.msg.credits !== 0)!.hex;
      assert.equal(cdcFirstNonZeroReserved(cr), -1);
      assert.equal(cdcFirstNonZeroReserved(cr, 0, false), 26);
    });
  });

  describe('errors', () => {
    const good = GOLDEN[0]!.hex;
    it('TRUNCATED', () => {
      throwsWire(() => decodeCdc(Buffer.alloc(0)), WireErrorCode.TRUNCATED, 0);
      throwsWire(() => decodeCdc(good.subarray(0, 1)), WireErrorCode.TRUNCATED, 0);
      const [buf, off, end] = at(good.subarray(0, 43));
      throwsWire(() => decodeCdc(buf, off, end), WireErrorCode.TRUNCATED, off);
    });
    it('UNKNOWN_TYPE', () => {
      for (const t of [0x01, 0x21, 0x00, 0xff]) {
        const x = Buffer.from(good);
        x[0] = t;
        const [buf, off, end] = at(x);
        throwsWire(() => decodeCdc(buf, off, end), WireErrorCode.UNKNOWN_TYPE, off);
      }
    });
    it('BAD_LENGTH: length byte, and bytes after the message', () => {
      for (const l of [0, 43, 45, 0xff]) {
        const x = Buffer.from(good);
        x[1] = l;
        const [buf, off, end] = at(x);
        throwsWire(() => decodeCdc(buf, off, end), WireErrorCode.BAD_LENGTH, off + 1);
      }
      const [buf, off, end] = at(Buffer.concat([good, Buffer.alloc(4)]));
      throwsWire(() => decodeCdc(buf, off, end), WireErrorCode.BAD_LENGTH, off + 1);
    });
    it('BUFFER_TOO_SMALL', () => {
      throwsWire(() => encodeCdc(BASE, Buffer.alloc(43), 0), WireErrorCode.BUFFER_TOO_SMALL, 0);
      throwsWire(() => encodeCdc(BASE, Buffer.alloc(60), 17), WireErrorCode.BUFFER_TOO_SMALL, 17);
      throwsWire(() => encodeCdc({ ...BASE, seqno: -1 }, Buffer.alloc(60), 20), WireErrorCode.BUFFER_TOO_SMALL, 20);
    });
    it('BAD_VALUE', () => {
      const out = Buffer.alloc(60);
      const cases: [CdcMessage, number][] = [
        [{ ...BASE, seqno: 0x10000 }, 12],
        [{ ...BASE, token: -1 }, 14],
        [{ ...BASE, token: 2 ** 32 }, 14],
        [{ ...BASE, prod: { wrap: 0x10000, count: 0 } }, 20],
        [{ ...BASE, prod: { wrap: 0, count: 1.5 } }, 22],
        [{ ...BASE, cons: { wrap: -1, count: 0 } }, 28],
        [{ ...BASE, cons: { wrap: 0, count: 2 ** 32 } }, 30],
        [{ ...BASE, credits: 256 }, 36],
      ];
      for (const [m, o] of cases) throwsWire(() => encodeCdc(m, out, 10), WireErrorCode.BAD_VALUE, o);
    });
  });

  describe('properties', () => {
    const u16 = fc.integer({ min: 0, max: 0xffff });
    const u32 = fc.integer({ min: 0, max: 0xffffffff });
    const cursor = fc.record({ wrap: u16, count: u32 }, { noNullPrototype: true });
    const arbCdc: fc.Arbitrary<CdcMessage> = fc.record({
      type: fc.constant('cdc' as const), seqno: u16, token: u32, prod: cursor, cons: cursor,
      writeBlocked: fc.boolean(), urgDataPending: fc.boolean(), urgDataPresent: fc.boolean(), consCursUpdReq: fc.boolean(),
      failoverValidation: fc.boolean(), peerDoneWriting: fc.boolean(), peerConnClosed: fc.boolean(), peerConnAbort: fc.boolean(),
      credits: fc.integer({ min: 0, max: 255 }),
    }, { noNullPrototype: true });

    it('decode(encode(m)) deep-equals m', () => {
      fc.assert(fc.property(arbCdc, fc.nat(16), (m, pad) => {
        const buf = Buffer.alloc(pad + 44);
        encodeCdc(m, buf, pad);
        assert.deepEqual(decodeCdc(buf, pad), m);
        const out: CdcFields = newCdcFields();
        assert.deepEqual(decodeCdcInto(buf, pad, pad + 44, out), m);
      }), { numRuns: 1000 });
    });
    it('random bytes, mutations and truncations only throw WireError; decodes re-encode to the same fields', () => {
      const arbBytes = fc.oneof(
        fc.uint8Array({ maxLength: 60 }),
        fc.uint8Array({ minLength: 42, maxLength: 42 }).map((r) => Uint8Array.from([0xfe, 0x2c, ...r])),
        fc.tuple(arbCdc, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(44)).map(([m, p, v, cut]) => {
          const x = Buffer.alloc(44);
          encodeCdc(m, x, 0);
          x[p % 44] = v;
          return x.subarray(0, cut);
        }),
      );
      fc.assert(fc.property(arbBytes, (bytes) => {
        let m: CdcMessage;
        try {
          m = decodeCdc(bytes);
        } catch (e) {
          assert.ok(e instanceof WireError, `non-WireError: ${String(e)}`);
          return;
        }
        const again = Buffer.alloc(44);
        encodeCdc(m, again, 0);
        assert.deepEqual(decodeCdc(again), m);
        assert.equal(cdcFirstNonZeroReserved(again), -1);
      }), { numRuns: 3000 });
    });
  });

  describe('cursor arithmetic (spec 7.2)', () => {
    const arbRing = fc.integer({ min: 1, max: 2 ** 31 }).chain((size) =>
      fc.record({ size: fc.constant(size), count: fc.integer({ min: 0, max: size - 1 }), wrap: fc.integer({ min: 0, max: 0xffff }), n: fc.integer({ min: 0, max: size }) }));

    it('adding n then measuring the distance gives n, for 0 <= n <= size', () => {
      fc.assert(fc.property(arbRing, ({ size, count, wrap, n }) => {
        const old: CdcCursor = { wrap, count };
        const cur: CdcCursor = { wrap, count };
        cursorAdd(cur, n, size);
        assert.ok(cur.count >= 0 && cur.count < size);
        const wrapped = count + n >= size;
        assert.equal(cur.wrap, wrapped ? (wrap + 1) & 0xffff : wrap);
        assert.equal(cursorDiff(size, old, cur), n);
        // smc_curs_comp ignores the 16-bit wraparound: after 65535 -> 0 it sees old as ahead.
        assert.equal(cursorComp(size, old, cur), wrapped && wrap === 0xffff ? -(size - cur.count + count) : n);
        assert.ok(cursorNewer(old, cur));
      }), { numRuns: 2000 });
    });
    it('the wrap counter wraps at 65536, and wrap 0 counts as newer than 65535', () => {
      const c: CdcCursor = { wrap: 0xffff, count: 4000 };
      cursorAdd(c, 100, 4096);
      assert.deepEqual(c, { wrap: 0, count: 4 });
      assert.equal(cursorDiff(4096, { wrap: 0xffff, count: 4000 }, c), 100);
      assert.ok(cursorNewer({ wrap: 0xffff, count: 4000 }, c));
    });
    it('examples: add, diff, comp', () => {
      const c: CdcCursor = { wrap: 3, count: 10 };
      cursorAdd(c, 0, 64);
      assert.deepEqual(c, { wrap: 3, count: 10 });
      cursorAdd(c, 54, 64);
      assert.deepEqual(c, { wrap: 4, count: 0 });
      cursorAdd(c, 64, 64);
      assert.deepEqual(c, { wrap: 5, count: 0 });
      assert.equal(cursorDiff(64, { wrap: 1, count: 50 }, { wrap: 2, count: 10 }), 24);
      assert.equal(cursorDiff(64, { wrap: 1, count: 50 }, { wrap: 1, count: 10 }), 0); // never negative
      assert.equal(cursorComp(64, { wrap: 2, count: 10 }, { wrap: 1, count: 50 }), -24);
      assert.equal(cursorComp(64, { wrap: 1, count: 10 }, { wrap: 1, count: 10 }), 0);
    });
    it('cursorNewer follows the kernel receive rule', () => {
      const cur = { wrap: 5, count: 100 };
      assert.equal(cursorNewer(cur, { wrap: 5, count: 100 }), true); // equal: adopted (no-op)
      assert.equal(cursorNewer(cur, { wrap: 5, count: 101 }), true);
      assert.equal(cursorNewer(cur, { wrap: 5, count: 99 }), false); // same wrap, smaller count
      assert.equal(cursorNewer(cur, { wrap: 6, count: 0 }), true);
      assert.equal(cursorNewer(cur, { wrap: 4, count: 4000 }), false); // older wrap
      assert.equal(cursorNewer(cur, { wrap: 0, count: 0 }), true); // wrap 0: 16-bit wraparound
      fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.nat(), fc.nat(), (w1, w2, c1, c2) => {
        const expect = !(w1 > w2 && w2 !== 0) && !(w1 === w2 && c1 > c2);
        assert.equal(cursorNewer({ wrap: w1, count: c1 }, { wrap: w2, count: c2 }), expect);
      }));
    });
    it('seqno comparison: (s16)(new - last) < 0 is older', () => {
      assert.equal(seqnoOlder(5, 10), true);
      assert.equal(seqnoOlder(10, 5), false);
      assert.equal(seqnoOlder(10, 10), false);
      assert.equal(seqnoOlder(0, 0xffff), false); // 0 follows 65535
      assert.equal(seqnoOlder(0xffff, 0), true);
      assert.equal(seqnoNext(0xffff), 0);
      fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 1, max: 0x7fff }), (last, d) => {
        assert.equal(seqnoOlder((last + d) & 0xffff, last), false);
        assert.equal(seqnoOlder((last - d) & 0xffff, last), true);
      }));
    });
  });
});
