import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Arena, PAGE_SIZE } from './arena.js';

describe('mem: arena allocator', () => {
  it('allocates page-aligned ranges, reuses freed ones first-fit and coalesces neighbours', () => {
    const a = new Arena(1 << 20);
    const x = a.alloc(PAGE_SIZE);
    const y = a.alloc(2 * PAGE_SIZE);
    const z = a.alloc(PAGE_SIZE);
    assert.deepEqual([x, y, z], [0, PAGE_SIZE, 3 * PAGE_SIZE]);
    a.free(y, 2 * PAGE_SIZE);
    assert.equal(a.alloc(PAGE_SIZE), PAGE_SIZE, 'first fit inside the hole');
    a.free(PAGE_SIZE, PAGE_SIZE);
    a.free(x, PAGE_SIZE);
    // [0, 3 pages) is one free range now: a 3-page request fits there.
    assert.equal(a.alloc(3 * PAGE_SIZE), 0);
    assert.equal(a.bytesInUse, 4 * PAGE_SIZE);
  });

  it('zeroes freed memory and returns -1 past maxBytes', () => {
    const a = new Arena(4 * PAGE_SIZE);
    const x = a.alloc(4 * PAGE_SIZE);
    a.u8.fill(7, x, x + 4 * PAGE_SIZE);
    assert.equal(a.alloc(PAGE_SIZE), -1);
    a.free(x, 4 * PAGE_SIZE);
    assert.ok(a.u8.subarray(0, 4 * PAGE_SIZE).every((v) => v === 0));
    assert.equal(a.alloc(4 * PAGE_SIZE), 0);
    assert.equal(Arena.roundUp(1), PAGE_SIZE);
    assert.equal(Arena.roundUp(PAGE_SIZE + 1), 2 * PAGE_SIZE);
  });

  it('never hands out overlapping ranges (random alloc/free sequences)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 8 }), fc.nat()), { maxLength: 60 }), (steps) => {
        const a = new Arena(64 * PAGE_SIZE);
        const live: [number, number][] = [];
        for (const [doAlloc, pages, pick] of steps) {
          if (doAlloc || live.length === 0) {
            const size = pages * PAGE_SIZE;
            const s = a.alloc(size);
            if (s < 0) continue;
            for (const [ls, lsz] of live) assert.ok(s + size <= ls || ls + lsz <= s, `[${s}, +${size}) overlaps [${ls}, +${lsz})`);
            assert.ok(a.u8.subarray(s, s + size).every((v) => v === 0), 'fresh range is zeroed');
            a.u8.fill(0xcc, s, s + size);
            live.push([s, size]);
          } else {
            const [[s, size]] = live.splice(pick % live.length, 1) as [[number, number]];
            a.free(s, size);
          }
        }
        assert.equal(a.bytesInUse, live.reduce((t, [, sz]) => t + sz, 0));
      }),
    );
  });
});
