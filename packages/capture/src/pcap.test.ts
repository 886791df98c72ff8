import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WireError } from '@smc-r/wire';
import { CaptureError, CaptureErrorCode } from './errors.js';
import { LinkType } from './linktype.js';
import { dissect } from './packet.js';
import { PcapWriter, readCapture, readPcap, readPcapHeader } from './pcap.js';
import { isPcapng, readPcapng } from './pcapng.js';
import { hex, PCAP_BE_NS, PCAP_LE_US, PCAPNG_BE, PCAPNG_LE, SYN_FRAME, throwsCapture, TS_NS, TS_US, UDP_FRAME } from './testing/fixtures.js';

describe('capture: classic pcap', () => {
  it('reads a little-endian microsecond file (golden bytes)', () => {
    assert.deepEqual(readPcapHeader(PCAP_LE_US), { littleEndian: true, nanosecond: false, versionMajor: 2, versionMinor: 4, snaplen: 262144, linkType: 1, fcsLength: 0 });
    const recs = [...readCapture(PCAP_LE_US)];
    assert.equal(recs.length, 1);
    assert.deepEqual(recs[0], { index: 0, ts: TS_US, linkType: 1, data: UDP_FRAME, origLen: 47, interfaceId: 0, fileOffset: 24 });
    assert.equal(recs[0]!.data.buffer, PCAP_LE_US.buffer); // a view, not a copy
  });

  it('reads a big-endian nanosecond file with a cut record', () => {
    const h = readPcapHeader(PCAP_BE_NS);
    assert.equal(h.littleEndian, false);
    assert.equal(h.nanosecond, true);
    assert.equal(h.linkType, LinkType.RAW.value);
    const [r] = [...readPcap(PCAP_BE_NS)];
    assert.equal(r!.ts, TS_NS);
    assert.equal(r!.origLen, 33);
    assert.equal(r!.data.length, 30);
    const p = dissect(r!.data, r!.linkType);
    assert.equal(p.ip?.truncated, true);
    assert.equal(p.udp?.checksumStatus, 'unverified');
  });

  it('reports the FCS length of the link-type field', () => {
    const f = Buffer.from(PCAP_LE_US);
    f.writeUInt32LE(0x84000001, 20); // FCS len 8 words (bits 31-28), P bit 26 set, Ethernet
    assert.equal(readPcapHeader(f).fcsLength, 16);
    assert.equal(readPcapHeader(f).linkType, 1);
  });

  it('PcapWriter writes exactly the golden bytes', () => {
    const w = new PcapWriter();
    w.add(UDP_FRAME, TS_US);
    assert.deepEqual(w.toBuffer(), PCAP_LE_US);
    assert.equal(w.count, 1);
  });

  it('PcapWriter: nanoseconds, snaplen, growth, link type', () => {
    const w = new PcapWriter({ nanosecond: true, snaplen: 40, linkType: LinkType.RAW.value });
    for (let i = 0; i < 200; i++) w.add(UDP_FRAME.subarray(14), TS_NS + BigInt(i));
    const buf = w.toBuffer();
    const recs = [...readCapture(buf)];
    assert.equal(recs.length, 200);
    assert.equal(recs[199]!.ts, TS_NS + 199n);
    assert.equal(recs[5]!.index, 5);
    assert.equal(recs[0]!.data.length, 33); // 33 < snaplen 40
    const w2 = new PcapWriter({ snaplen: 20 });
    w2.add(UDP_FRAME, 0n, 1000);
    const [r] = [...readCapture(w2.toBuffer())];
    assert.equal(r!.data.length, 20);
    assert.equal(r!.origLen, 1000);
    assert.equal(r!.ts, 0n);
  });

  it('PcapWriter rejects bad input with BAD_VALUE', () => {
    throwsCapture(() => new PcapWriter({ linkType: 70000 }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => new PcapWriter({ snaplen: 0 }), CaptureErrorCode.BAD_VALUE, 0);
    const w = new PcapWriter();
    throwsCapture(() => w.add(UDP_FRAME, -1n), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => w.add(UDP_FRAME, 1n << 64n), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => w.add(UDP_FRAME, 0n, 3), CaptureErrorCode.BAD_VALUE, 0);
    assert.equal(w.count, 0);
  });

  it('errors carry code and offset', () => {
    throwsCapture(() => [...readCapture(hex('00'))], CaptureErrorCode.TRUNCATED, 0);
    throwsCapture(() => [...readCapture(hex('01020304 0000'))], CaptureErrorCode.BAD_MAGIC, 0);
    throwsCapture(() => [...readCapture(PCAP_LE_US.subarray(0, 20))], CaptureErrorCode.TRUNCATED, 0);
    const v = Buffer.from(PCAP_LE_US);
    v.writeUInt16LE(3, 4);
    throwsCapture(() => [...readCapture(v)], CaptureErrorCode.BAD_VERSION, 4);
    throwsCapture(() => [...readCapture(PCAP_LE_US.subarray(0, 30))], CaptureErrorCode.TRUNCATED, 24);
    throwsCapture(() => [...readCapture(PCAP_LE_US.subarray(0, 50))], CaptureErrorCode.TRUNCATED, 40);
    const cap = Buffer.from(PCAP_LE_US);
    cap.writeUInt32LE(46, 36); // orig 46 < incl 47
    throwsCapture(() => [...readCapture(cap)], CaptureErrorCode.BAD_RECORD, 32);
    // Records before a broken one are still delivered.
    const two = Buffer.concat([PCAP_LE_US, PCAP_LE_US.subarray(24, 40)]);
    const it = readCapture(two)[Symbol.iterator]();
    assert.equal(it.next().value?.index, 0);
    throwsCapture(() => it.next(), CaptureErrorCode.TRUNCATED, 87 + 16);
  });
});

describe('capture: pcapng', () => {
  it('reads SHB, IDBs, EPBs, SPB and skips other blocks (golden bytes)', () => {
    assert.ok(isPcapng(PCAPNG_LE));
    const recs = [...readCapture(PCAPNG_LE)];
    assert.equal(recs.length, 3);
    assert.deepEqual(recs[0], { index: 0, ts: TS_US, linkType: 1, data: UDP_FRAME, origLen: 47, interfaceId: 0, fileOffset: 80 });
    assert.deepEqual(recs[1], { index: 1, ts: TS_NS, linkType: 101, data: UDP_FRAME.subarray(14), origLen: 33, interfaceId: 1, fileOffset: 160 });
    assert.deepEqual(recs[2], { index: 2, ts: null, linkType: 1, data: UDP_FRAME, origLen: 47, interfaceId: 0, fileOffset: 244 });
    for (const r of recs) assert.equal(dissect(r.data, r.linkType).udp?.checksumStatus, 'good');
  });

  it('reads a big-endian section and a second section resets the interfaces', () => {
    const recs = [...readPcapng(PCAPNG_BE)];
    assert.equal(recs.length, 1);
    assert.equal(recs[0]!.ts, TS_US);
    assert.equal(recs[0]!.linkType, LinkType.IPV4.value);
    assert.equal(dissect(recs[0]!.data, recs[0]!.linkType).udp?.sport, 12345);
    const both = [...readCapture(Buffer.concat([PCAPNG_LE, PCAPNG_BE]))];
    assert.equal(both.length, 4);
    assert.equal(both[3]!.index, 3);
    assert.equal(both[3]!.linkType, 228);
    // In the second section, interface 1 of the first no longer exists.
    const epbOnIf1 = Buffer.from(PCAPNG_BE.subarray(48));
    epbOnIf1.writeUInt32BE(1, 8);
    const stale = Buffer.concat([PCAPNG_LE, PCAPNG_BE.subarray(0, 28), epbOnIf1]);
    const it = readCapture(stale)[Symbol.iterator]();
    for (let i = 0; i < 3; i++) it.next();
    throwsCapture(() => it.next(), CaptureErrorCode.BAD_INTERFACE, 308 + 28 + 8);
  });

  it('binary and decimal if_tsresol, if_tsoffset, Packet Block', () => {
    const idb = hex(`01000000 2c000000 0100 0000 00000000
      0900 0100 8a000000                  # if_tsresol 2^-10 s
      0e00 0800 0a00000000000000          # if_tsoffset 10 s
      0000 0000 2c000000`);
    const idb2 = hex('01000000 20000000 0100 0000 00000000 0900 0100 0c000000 0000 0000 20000000'); // 10^-12 s
    const epb = (ifId: number, hi: number, lo: number): Buffer => {
      const b = hex('06000000 24000000 00000000 00000000 00000000 04000000 04000000 aabbccdd 24000000');
      b.writeUInt32LE(ifId, 8);
      b.writeUInt32LE(hi, 12);
      b.writeUInt32LE(lo, 16);
      return b;
    };
    const opb = hex('02000000 24000000 0100 0000 00000000 e8030000 04000000 04000000 01020304 24000000'); // if 1, 1000 units
    const file = Buffer.concat([PCAPNG_LE.subarray(0, 28), idb, idb2, epb(0, 0, 1536), epb(1, 0, 3_000_000_000), opb]);
    const recs = [...readCapture(file)];
    assert.equal(recs[0]!.ts, 10_000_000_000n + 1_500_000_000n); // 1536/1024 s + 10 s
    assert.equal(recs[1]!.ts, 3_000_000n); // 3e9 ps = 3 ms
    assert.equal(recs[2]!.ts, 1n); // 1000 ps = 1 ns
    assert.deepEqual(recs[2]!.data, hex('01020304'));
    assert.equal(recs[2]!.interfaceId, 1);
  });

  it('errors carry code and offset', () => {
    throwsCapture(() => [...readPcapng(PCAP_LE_US)], CaptureErrorCode.BAD_MAGIC, 0);
    throwsCapture(() => [...readCapture(PCAPNG_LE.subarray(0, 6))], CaptureErrorCode.TRUNCATED, 0);
    throwsCapture(() => [...readCapture(PCAPNG_LE.subarray(0, 10))], CaptureErrorCode.TRUNCATED, 0);
    const bom = Buffer.from(PCAPNG_LE);
    bom.writeUInt32LE(0x12345678, 8);
    throwsCapture(() => [...readCapture(bom)], CaptureErrorCode.BAD_MAGIC, 8);
    const ver = Buffer.from(PCAPNG_LE);
    ver.writeUInt16LE(2, 12);
    throwsCapture(() => [...readCapture(ver)], CaptureErrorCode.BAD_VERSION, 12);
    const len = Buffer.from(PCAPNG_LE);
    len.writeUInt32LE(22, 32); // IDB 0 length not a multiple of 4
    throwsCapture(() => [...readCapture(len)], CaptureErrorCode.BAD_RECORD, 32);
    len.writeUInt32LE(8, 32);
    throwsCapture(() => [...readCapture(len)], CaptureErrorCode.BAD_RECORD, 32);
    const trail = Buffer.from(PCAPNG_LE);
    trail.writeUInt32LE(24, 44);
    throwsCapture(() => [...readCapture(trail)], CaptureErrorCode.BAD_RECORD, 44);
    throwsCapture(() => [...readCapture(PCAPNG_LE.subarray(0, 40))], CaptureErrorCode.TRUNCATED, 28);
    const shortShb = hex('0a0d0d0a 10000000 4d3c2b1a 10000000');
    throwsCapture(() => [...readCapture(shortShb)], CaptureErrorCode.BAD_RECORD, 4);
    const caplen = Buffer.from(PCAPNG_LE);
    caplen.writeUInt32LE(60, 80 + 20); // captured 60 > the 48 bytes the block holds
    throwsCapture(() => [...readCapture(caplen)], CaptureErrorCode.BAD_RECORD, 100);
    const orig = Buffer.from(PCAPNG_LE);
    orig.writeUInt32LE(46, 80 + 24);
    throwsCapture(() => [...readCapture(orig)], CaptureErrorCode.BAD_RECORD, 100);
    const badIf = Buffer.from(PCAPNG_LE);
    badIf.writeUInt32LE(7, 88);
    throwsCapture(() => [...readCapture(badIf)], CaptureErrorCode.BAD_INTERFACE, 88);
    const spbFirst = Buffer.concat([PCAPNG_LE.subarray(0, 28), PCAPNG_LE.subarray(244)]);
    throwsCapture(() => [...readCapture(spbFirst)], CaptureErrorCode.BAD_INTERFACE, 36);
    const opt = Buffer.from(PCAPNG_LE);
    opt.writeUInt16LE(200, 48 + 16 + 2); // if_tsresol option length 200
    throwsCapture(() => [...readCapture(opt)], CaptureErrorCode.BAD_RECORD, 64);
  });
});

describe('capture: damaged files only ever throw CaptureError or WireError', () => {
  const files: Buffer[] = [PCAP_LE_US, PCAP_BE_NS, PCAPNG_LE, PCAPNG_BE, Buffer.concat([PCAP_LE_US, PCAP_LE_US.subarray(24)])];
  const w = new PcapWriter();
  w.add(SYN_FRAME).add(UDP_FRAME);
  files.push(w.toBuffer());

  function readAll(buf: Buffer): void {
    try {
      for (const r of readCapture(buf)) {
        try {
          dissect(r.data, r.linkType);
        } catch (e) {
          if (!(e instanceof CaptureError || e instanceof WireError)) throw e;
        }
      }
    } catch (e) {
      if (!(e instanceof CaptureError)) throw e;
    }
  }

  it('single-byte mutations and truncations', () => {
    fc.assert(fc.property(fc.constantFrom(...files), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (f, pos, val, cut) => {
      const m = Buffer.from(f);
      m[pos % m.length] = val;
      readAll(m);
      readAll(m.subarray(0, cut % (m.length + 1)));
      readAll(f.subarray(0, cut % (f.length + 1)));
    }), { numRuns: 3000 });
  });

  it('every truncation point of every file', () => {
    for (const f of files) for (let n = 0; n <= f.length; n++) readAll(f.subarray(0, n));
  });

  it('random bytes behind a valid magic', () => {
    fc.assert(fc.property(fc.constantFrom(PCAP_LE_US.subarray(0, 24), PCAPNG_LE.subarray(0, 28)), fc.uint8Array({ maxLength: 200 }), (head, tail) => {
      readAll(Buffer.concat([head, tail]));
    }), { numRuns: 2000 });
  });

  it('dissect of random frames on every link type', () => {
    const types = [0, 1, 101, 108, 113, 228, 229, 276, 12345];
    fc.assert(fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 120 }), (lt, b) => {
      try {
        dissect(b, lt);
      } catch (e) {
        if (!(e instanceof CaptureError)) throw e;
      }
    }), { numRuns: 3000 });
  });
});
