import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WireError, WireErrorCode } from './errors.js';
import {
  compressBufSize,
  uncompressBufSize,
  SMC_BUF_MIN_SIZE,
  SMC_BUF_SIZE_MAX_N,
  SMCR_RMBE_SIZES,
  SMCR_RMBE_SIZES_LEGACY,
  SMCD_DMBE_SIZES,
  QpMtu,
  mtuFromEnum,
  mtuToEnum,
  mtuEnumAtMost,
} from './bufsize.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function badValue(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => e instanceof WireError && e.code === WireErrorCode.BAD_VALUE && e.offset === 0 && e.msgType === 'bufsize');
}

describe('bufsize: compressed buffer sizes (spec 8.1)', () => {
  it('constants', () => {
    assert.equal(SMC_BUF_MIN_SIZE, 16384);
    assert.equal(SMC_BUF_SIZE_MAX_N, 15);
    assert.equal(SMCR_RMBE_SIZES, 15);
    assert.equal(SMCR_RMBE_SIZES_LEGACY, 5);
    assert.equal(SMCD_DMBE_SIZES, 6);
  });

  it('the spec\'s table: n -> 16 KiB << n', () => {
    const table: [number, number][] = [
      [0, 16 * KiB], [1, 32 * KiB], [2, 64 * KiB], [3, 128 * KiB], [4, 256 * KiB], [5, 512 * KiB],
      [6, 1 * MiB], [7, 2 * MiB], [8, 4 * MiB], [9, 8 * MiB], [10, 16 * MiB], [11, 32 * MiB],
      [12, 64 * MiB], [13, 128 * MiB], [14, 256 * MiB], [15, 512 * MiB],
    ];
    for (const [n, size] of table) {
      assert.equal(uncompressBufSize(n), size, `n=${n}`);
      assert.equal(compressBufSize(size), n, `size=${size}`);
    }
  });

  it('rounds up (spec examples: 64 KiB -> 2, 16 KiB -> 0, 16 KiB + 1 -> 1)', () => {
    assert.equal(compressBufSize(64 * KiB), 2);
    assert.equal(compressBufSize(16 * KiB), 0);
    assert.equal(compressBufSize(16 * KiB + 1), 1);
    assert.equal(compressBufSize(0), 0);
    assert.equal(compressBufSize(1), 0);
    assert.equal(compressBufSize(32 * KiB + 1), 2);
    assert.equal(compressBufSize(64 * KiB - 1), 2);
    assert.equal(compressBufSize(100_000), 3);
    // Linux default: sk_rcvbuf = 2 x 64 KiB, RMB = compress(sk_rcvbuf / 2) = 2 (spec 8.2)
    assert.equal(compressBufSize((2 * 64 * KiB) / 2), 2);
  });

  it('caps at 15 by default, or at the cap given (old kernels: 5)', () => {
    assert.equal(compressBufSize(1024 * MiB), 15);
    assert.equal(compressBufSize(Number.MAX_SAFE_INTEGER), 15);
    assert.equal(compressBufSize(4 * MiB, SMCR_RMBE_SIZES_LEGACY), 5);
    assert.equal(compressBufSize(256 * KiB, SMCR_RMBE_SIZES_LEGACY), 4);
    assert.equal(compressBufSize(4 * MiB, 0), 0);
  });

  it('rejects sizes and caps it cannot represent with BAD_VALUE', () => {
    for (const v of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) badValue(() => compressBufSize(v));
    for (const m of [-1, 16, 2.5]) badValue(() => compressBufSize(1, m));
    for (const n of [-1, 16, 1.5, Number.NaN]) badValue(() => uncompressBufSize(n));
  });

  it('property: the result is the smallest n (up to the cap) whose size holds the request', () => {
    fc.assert(fc.property(fc.nat({ max: 2 ** 31 }), fc.integer({ min: 0, max: 15 }), (s, max) => {
      const n = compressBufSize(s, max);
      assert.ok(n >= 0 && n <= max);
      if (n < max) assert.ok(uncompressBufSize(n) >= s);
      if (n > 0) assert.ok(uncompressBufSize(n - 1) < s);
    }));
  });

  it('property: compress(uncompress(n)) = n', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 15 }), (n) => {
      assert.equal(compressBufSize(uncompressBufSize(n)), n);
    }));
  });
});

describe('bufsize: QP MTU enum (spec 3.4.1)', () => {
  const table: [number, number][] = [[1, 256], [2, 512], [3, 1024], [4, 2048], [5, 4096]];

  it('maps 1..5 to 256..4096 and back', () => {
    for (const [e, bytes] of table) {
      assert.equal(mtuFromEnum(e), bytes);
      assert.equal(mtuToEnum(bytes), e);
    }
    assert.deepEqual(Object.values(QpMtu).map((m) => [m.value, m.bytes]), table);
  });

  it('rejects other enum values and non-IB MTUs with BAD_VALUE', () => {
    for (const e of [0, 6, 15, -1, 2.5]) badValue(() => mtuFromEnum(e));
    for (const b of [0, 1500, 9000, 4095, 128]) badValue(() => mtuToEnum(b));
  });

  it('mtuEnumAtMost picks the largest IB MTU not above a path MTU', () => {
    assert.equal(mtuEnumAtMost(1500), 3);
    assert.equal(mtuEnumAtMost(9000), 5);
    assert.equal(mtuEnumAtMost(4096), 5);
    assert.equal(mtuEnumAtMost(2047), 3);
    assert.equal(mtuEnumAtMost(256), 1);
    for (const b of [255, 0, Number.NaN]) badValue(() => mtuEnumAtMost(b));
  });
});
