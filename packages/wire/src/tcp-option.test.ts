import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WireError, WireErrorCode } from './errors.js';
import {
  parseTcpOptions,
  findSmcOption,
  hasSmcOption,
  isSmcOption,
  encodeSmcOption,
  smcOptionLength,
  TCPOPT_EXP,
  TCPOPT_SMC_MAGIC,
  TCPOLEN_EXP_SMC_BASE,
  TCPOLEN_EXP_SMC_BASE_ALIGNED,
  type TcpOption,
} from './tcp-option.js';
import { SAMPLES } from './testing/tcp-option-samples.js';
import { throwsWire } from './testing/assert.js';

/** Hex with `//` comments per line. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
const opt = (kind: number, offset: number, length: number, data = ''): TcpOption => ({ kind, offset, length, data: hex(data) });


// A Linux SYN's options behind a 20-byte fixed TCP header, so offsets are absolute (20..47).
const SYN = Buffer.concat([Buffer.alloc(20), hex(`
  02 04 05 b4                     // 20: MSS, len 4, 1460
  04 02                           // 24: SACK permitted, len 2
  08 0a 00 01 e2 40 00 00 00 00   // 26: timestamps, len 10, TSval 123456, TSecr 0
  01                              // 36: NOP
  03 03 07                        // 37: window scale, len 3, shift 7
  01 01                           // 40, 41: NOP NOP
  fe 06 e2 d4 c3 d9               // 42: experimental, len 6, ExID E2D4C3D9 (SMC)
`)]);

// A SYN-ACK without timestamps (Linux with net.ipv4.tcp_timestamps=0).
const SYNACK = hex(`
  02 04 05 78                     // 0: MSS 1400
  01 01 04 02                     // 4, 5: NOP NOP; 6: SACK permitted
  01 03 03 0a                     // 8: NOP; 9: window scale 10
  01 01 fe 06 e2 d4 c3 d9         // 12, 13: NOP NOP; 14: SMC option
`);

describe('tcp-option: parseTcpOptions golden blocks', () => {
  it('parses a Linux SYN with the SMC option at absolute offsets', () => {
    const got = parseTcpOptions(SYN, 20, SYN.length);
    assert.deepEqual(got, [
      opt(2, 20, 4, '05b4'),
      opt(4, 24, 2),
      opt(8, 26, 10, '0001e24000000000'),
      opt(1, 36, 1),
      opt(3, 37, 3, '07'),
      opt(1, 40, 1),
      opt(1, 41, 1),
      opt(254, 42, 6, 'e2d4c3d9'),
    ]);
    assert.equal(hasSmcOption(got), true);
    assert.deepEqual(findSmcOption(got), opt(254, 42, 6, 'e2d4c3d9'));
  });

  it('parses a SYN-ACK without timestamps', () => {
    const got = parseTcpOptions(SYNACK);
    assert.deepEqual(got.map((o) => [o.kind, o.offset, o.length]), [
      [2, 0, 4], [1, 4, 1], [1, 5, 1], [4, 6, 2], [1, 8, 1], [3, 9, 3], [1, 12, 1], [1, 13, 1], [254, 14, 6],
    ]);
    assert.equal(findSmcOption(got)?.offset, 14);
  });

  it('a SYN-ACK that lacks the option is not SMC', () => {
    const got = parseTcpOptions(hex('02 04 05 b4 01 01 04 02 01 03 03 07'));
    assert.equal(hasSmcOption(got), false);
    assert.equal(findSmcOption(got), undefined);
  });

  it('the data is a copy, not a view of the input', () => {
    const buf = Buffer.from(SYNACK);
    const got = parseTcpOptions(buf);
    buf.fill(0);
    assert.deepEqual(findSmcOption(got)?.data, hex('e2d4c3d9'));
  });

  it('stops at EOL and ignores the padding after it, even if it is not valid options', () => {
    const got = parseTcpOptions(hex(`
      02 04 05 b4   // MSS
      00            // EOL
      02 00 ff      // padding (would be malformed if parsed)
    `));
    assert.deepEqual(got, [opt(2, 0, 4, '05b4'), opt(0, 4, 1)]);
  });

  it('keeps unknown kinds as raw data (MPTCP, TCP-AO, kind 200)', () => {
    const got = parseTcpOptions(hex(`
      1e 0c 01 81 00 11 22 33 44 55 66 77   // MPTCP MP_CAPABLE, len 12
      c8 02                                // kind 200, len 2, no data
      1d 04 aa bb                          // kind 29 (AO), len 4
    `));
    assert.deepEqual(got, [opt(30, 0, 12, '01810011223344556677'), opt(200, 12, 2), opt(29, 14, 4, 'aabb')]);
  });

  it('an empty block gives no options', () => {
    assert.deepEqual(parseTcpOptions(Buffer.alloc(0)), []);
    assert.deepEqual(parseTcpOptions(SYN, 20, 20), []);
  });
});

describe('tcp-option: SMC option recognition (spec 2.1 receive rule)', () => {
  const one = (h: string): TcpOption => parseTcpOptions(hex(h))[0]!;
  it('accepts kind 254, even length >= 6, ExID E2D4C3D9', () => {
    assert.equal(isSmcOption(one('fe 06 e2 d4 c3 d9')), true);
    assert.equal(isSmcOption(one('fe 08 e2 d4 c3 d9 00 00')), true); // longer even lengths are accepted
  });
  it('rejects other ExIDs, odd lengths, short lengths and other kinds', () => {
    assert.equal(isSmcOption(one('fe 04 f9 89')), false); // TFO cookie request (RFC 7413 experimental form)
    assert.equal(isSmcOption(one('fe 0c f9 89 01 02 03 04 05 06 07 08')), false); // TFO with cookie
    assert.equal(isSmcOption(one('fe 06 12 34 56 78')), false); // other ExID
    assert.equal(isSmcOption(one('fe 06 e2 d4 c3 d8')), false); // last byte differs
    assert.equal(isSmcOption(one('fe 07 e2 d4 c3 d9 00')), false); // odd length
    assert.equal(isSmcOption(one('fe 04 e2 d4')), false); // too short
    assert.equal(isSmcOption(one('fd 06 e2 d4 c3 d9')), false); // kind 253
    assert.equal(hasSmcOption(parseTcpOptions(hex('fe 04 f9 89 01 01 fe 06 e2 d4 c3 d9'))), true);
  });
});

describe('tcp-option: malformed blocks', () => {
  it('length 0 or 1 is BAD_LENGTH at the length byte', () => {
    throwsWire(() => parseTcpOptions(hex('01 01 02 00 05 b4')), WireErrorCode.BAD_LENGTH, 3);
    throwsWire(() => parseTcpOptions(hex('fe 01 e2 d4')), WireErrorCode.BAD_LENGTH, 1);
  });
  it('a length past the end of the block is BAD_LENGTH at the length byte', () => {
    throwsWire(() => parseTcpOptions(hex('02 05 05 b4')), WireErrorCode.BAD_LENGTH, 1);
    // the SYN cut short by one byte: SMC option claims 6, 5 left (offsets absolute)
    throwsWire(() => parseTcpOptions(SYN, 20, SYN.length - 1), WireErrorCode.BAD_LENGTH, 43);
  });
  it('a kind byte with no length byte is TRUNCATED at the kind byte', () => {
    throwsWire(() => parseTcpOptions(hex('02 04 05 b4 08')), WireErrorCode.TRUNCATED, 4);
    throwsWire(() => parseTcpOptions(SYN, 20, 43), WireErrorCode.TRUNCATED, 42);
  });
  it('a block over 40 bytes is BAD_LENGTH at its start', () => {
    throwsWire(() => parseTcpOptions(Buffer.alloc(45, 1), 2, 43), WireErrorCode.BAD_LENGTH, 2);
    assert.equal(parseTcpOptions(Buffer.alloc(45, 1), 2, 42).length, 40);
  });
  it('a range outside the buffer is TRUNCATED, never read', () => {
    throwsWire(() => parseTcpOptions(Buffer.alloc(8, 1), 0, 9), WireErrorCode.TRUNCATED, 0);
    throwsWire(() => parseTcpOptions(Buffer.alloc(8, 1), 6, 4), WireErrorCode.TRUNCATED, 6);
    throwsWire(() => parseTcpOptions(Buffer.alloc(8, 1), -1, 4), WireErrorCode.TRUNCATED, 0);
  });
});

describe('tcp-option: encodeSmcOption', () => {
  it('writes the Linux 8-byte form at an offset and returns the new offset', () => {
    const buf = Buffer.alloc(12, 0xaa);
    assert.equal(encodeSmcOption(buf, 2), 10);
    assert.deepEqual(buf, hex('aa aa 01 01 fe 06 e2 d4 c3 d9 aa aa'));
  });
  it('writes the bare 6-byte option without NOPs', () => {
    const buf = Buffer.alloc(6);
    assert.equal(encodeSmcOption(buf, 0, false), 6);
    assert.deepEqual(buf, hex('fe 06 e2 d4 c3 d9'));
  });
  it('throws BUFFER_TOO_SMALL at the offset when it does not fit', () => {
    assert.throws(() => encodeSmcOption(Buffer.alloc(9), 2), (e: unknown) => e instanceof WireError && e.code === WireErrorCode.BUFFER_TOO_SMALL && e.offset === 2);
    assert.throws(() => encodeSmcOption(Buffer.alloc(5), 0, false), { code: WireErrorCode.BUFFER_TOO_SMALL });
  });
  it('constants and lengths', () => {
    assert.equal(TCPOPT_EXP, 254);
    assert.equal(TCPOPT_SMC_MAGIC, 0xe2d4c3d9);
    assert.equal(TCPOLEN_EXP_SMC_BASE, 6);
    assert.equal(TCPOLEN_EXP_SMC_BASE_ALIGNED, 8);
    assert.equal(smcOptionLength(), 8);
    assert.equal(smcOptionLength(false), 6);
  });
  it('what it writes parses back as the SMC option', () => {
    const buf = Buffer.alloc(8);
    encodeSmcOption(buf, 0);
    assert.deepEqual(findSmcOption(parseTcpOptions(buf)), opt(254, 2, 6, 'e2d4c3d9'));
  });
});

describe('tcp-option: samples', () => {
  for (const s of SAMPLES) {
    it(s.name, () => {
      assert.ok(s.msg.options.length <= 40 && s.msg.options.length % 4 === 0);
      assert.equal(hasSmcOption(parseTcpOptions(s.msg.options)), s.msg.smc);
    });
  }
});

describe('tcp-option: properties', () => {
  // An independent builder of valid option lists: NOPs, and kind/len/data options of kinds 2..253.
  const arbOption = fc.oneof(
    fc.constant({ kind: 1, data: Buffer.alloc(0) }),
    fc.record({ kind: fc.integer({ min: 2, max: 253 }), data: fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)) }),
  );
  const build = (opts: { kind: number; data: Buffer }[]): Buffer =>
    Buffer.concat(opts.map((o) => (o.kind === 1 ? Buffer.from([1]) : Buffer.concat([Buffer.from([o.kind, o.data.length + 2]), o.data]))));

  it('parses every valid option list built independently', () => {
    fc.assert(fc.property(fc.array(arbOption, { maxLength: 8 }), fc.nat({ max: 8 }), (opts, pre) => {
      const block = build(opts);
      fc.pre(block.length <= 40);
      const buf = Buffer.concat([Buffer.alloc(pre, 0xee), block, Buffer.alloc(3, 0xee)]);
      const got = parseTcpOptions(buf, pre, pre + block.length);
      assert.deepEqual(got.map((o) => [o.kind, o.data]), opts.map((o) => [o.kind, o.kind === 1 ? Buffer.alloc(0) : o.data]));
      let p = pre;
      for (const o of got) { assert.equal(o.offset, p); p += o.length; }
      assert.equal(hasSmcOption(got), false);
    }));
  });

  it('finds the SMC option wherever it is placed among valid options', () => {
    fc.assert(fc.property(fc.array(arbOption, { maxLength: 6 }), fc.nat(), (opts, at) => {
      const i = at % (opts.length + 1);
      const smc = Buffer.alloc(8);
      encodeSmcOption(smc, 0);
      const block = Buffer.concat([build(opts.slice(0, i)), smc, build(opts.slice(i))]);
      fc.pre(block.length <= 40);
      assert.equal(findSmcOption(parseTcpOptions(block))?.offset, build(opts.slice(0, i)).length + 2);
    }));
  });

  it('random bytes only ever throw WireError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 48 }), fc.nat({ max: 48 }), fc.nat({ max: 48 }), (a, x, y) => {
      const buf = Buffer.from(a);
      try {
        const got = parseTcpOptions(buf, Math.min(x, y), Math.max(x, y));
        for (const o of got) assert.ok(o.offset + o.length <= Math.max(x, y));
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
      }
    }), { numRuns: 2000 });
  });

  it('single-byte mutations and truncations of a real SYN only ever throw WireError', () => {
    const block = SYN.subarray(20);
    fc.assert(fc.property(fc.nat({ max: block.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.nat({ max: block.length }), (i, v, cut) => {
      const m = Buffer.from(block);
      m[i] = v;
      for (const [b, end] of [[m, m.length], [block, cut], [m, cut]] as const) {
        try {
          parseTcpOptions(b, 0, end);
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
        }
      }
    }));
  });
});
