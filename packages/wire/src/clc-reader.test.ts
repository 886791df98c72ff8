import assert from 'node:assert/strict';
import { WireError, WireErrorCode } from './errors.js';
import { type ClcMessage, ClcLength, clcToBuffer, decodeClc } from './clc.js';
import { ClcReader } from './clc-reader.js';
import { CAPTURES, SAMPLES } from './testing/clc-samples.js';
import { throwsWire } from './testing/assert.js';

/** Every fixture as bytes with its expected message. The encoder is covered by the golden tests in clc.test.ts. */
const FIXTURES: { name: string; bytes: Buffer; msg: ClcMessage }[] = [
  ...SAMPLES.map((s) => ({ name: s.name, bytes: clcToBuffer(s.msg), msg: s.msg })),
  ...CAPTURES.map((c) => ({ name: c.name, bytes: c.bytes, msg: decodeClc(c.bytes) })),
];
/** All non-Decline fixtures (a Decline ends parsing), then one Decline last. */
const STREAM = [...FIXTURES.filter((f) => f.msg.type !== 'decline'), FIXTURES.find((f) => f.msg.type === 'decline')!];
const STREAM_BYTES = Buffer.concat(STREAM.map((f) => f.bytes));
const STREAM_MSGS = STREAM.map((f) => f.msg);


/** Feeds chunks and collects everything push() returns. */
function feed(r: ClcReader, chunks: Buffer[]): ClcMessage[] {
  const out: ClcMessage[] = [];
  for (const c of chunks) out.push(...r.push(c));
  return out;
}

describe('ClcReader', () => {
  it('each fixture split at every byte offset gives the same message', () => {
    for (const f of FIXTURES) {
      for (let cut = 0; cut <= f.bytes.length; cut++) {
        const r = new ClcReader();
        const first = r.push(f.bytes.subarray(0, cut));
        if (cut < f.bytes.length) assert.deepEqual(first, [], `${f.name} @${cut}`);
        const all = [...first, ...r.push(f.bytes.subarray(cut))];
        assert.deepEqual(all, [f.msg], `${f.name} @${cut}`);
        assert.equal(r.bufferedLength, 0);
        assert.equal(r.takeRemaining().length, 0);
      }
    }
  });

  it('each fixture fed byte by byte', () => {
    for (const f of FIXTURES) {
      const r = new ClcReader();
      const chunks = Array.from(f.bytes, (b) => Buffer.from([b]));
      assert.deepEqual(feed(r, chunks), [f.msg], f.name);
    }
  });

  it('several messages in one chunk, and the whole stream split at every offset', () => {
    assert.deepEqual(new ClcReader().push(STREAM_BYTES), STREAM_MSGS);
    for (let cut = 0; cut <= STREAM_BYTES.length; cut++) {
      const r = new ClcReader();
      assert.deepEqual(feed(r, [STREAM_BYTES.subarray(0, cut), STREAM_BYTES.subarray(cut)]), STREAM_MSGS, `@${cut}`);
    }
    const r = new ClcReader();
    assert.deepEqual(feed(r, Array.from(STREAM_BYTES, (b) => Buffer.from([b]))), STREAM_MSGS);
  });

  it('does not alias the caller chunk', () => {
    const f = FIXTURES.find((x) => x.msg.type === 'accept')!;
    const chunk = Buffer.from(f.bytes.subarray(0, 30));
    const r = new ClcReader();
    r.push(chunk);
    chunk.fill(0);
    assert.deepEqual(r.push(f.bytes.subarray(30)), [f.msg]);
  });

  it('detects a peer not speaking CLC (BAD_EYECATCHER) and keeps its bytes for takeRemaining()', () => {
    const http = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = new ClcReader();
    throwsWire(() => r.push(http), WireErrorCode.BAD_EYECATCHER, 0);
    assert.deepEqual(r.takeRemaining(), http);
    assert.equal(r.takeRemaining().length, 0);
    // Detected from the first byte already.
    const r1 = new ClcReader();
    throwsWire(() => r1.push(http.subarray(0, 1)), WireErrorCode.BAD_EYECATCHER, 0);
    // A partial eyecatcher waits; the mismatch is reported at its offset once it arrives.
    const r2 = new ClcReader();
    assert.deepEqual(r2.push(Buffer.from([0xe2, 0xd4])), []);
    throwsWire(() => r2.push(Buffer.from([0xc3, 0x00, 1, 2])), WireErrorCode.BAD_EYECATCHER, 3);
    assert.deepEqual(r2.takeRemaining(), Buffer.from([0xe2, 0xd4, 0xc3, 0x00, 1, 2]));
  });

  it('returns good messages before bad bytes and raises the error on the next push', () => {
    const f = FIXTURES.find((x) => x.msg.type === 'proposal')!;
    const junk = Buffer.from('hello');
    const r = new ClcReader();
    assert.deepEqual(r.push(Buffer.concat([f.bytes, junk])), [f.msg]);
    assert.equal(r.bufferedLength, junk.length);
    throwsWire(() => r.push(Buffer.alloc(0)), WireErrorCode.BAD_EYECATCHER, 0);
    assert.deepEqual(r.takeRemaining(), junk);
  });

  it('stops after a Decline: the following bytes are application data', () => {
    const d = FIXTURES.find((x) => x.msg.type === 'decline')!;
    const accept = FIXTURES.find((x) => x.msg.type === 'accept')!;
    const app = Buffer.concat([accept.bytes, Buffer.from('app data')]); // even CLC-looking bytes are not parsed
    const r = new ClcReader();
    assert.deepEqual(r.push(Buffer.concat([d.bytes, app.subarray(0, 10)])), [d.msg]);
    assert.equal(r.done, true);
    assert.deepEqual(r.push(app.subarray(10)), []);
    assert.deepEqual(r.takeRemaining(), app);
    assert.deepEqual(r.push(Buffer.from('more')), []);
    assert.deepEqual(r.takeRemaining(), Buffer.from('more'));
  });

  it('refuses a header announcing more than maxLength (or less than 12) before buffering the body', () => {
    const hdr = Buffer.from([0xe2, 0xd4, 0xc3, 0xd9, 0x03, 0x02, 0x8d, 0x28]); // Confirm, 653 bytes
    const r = new ClcReader();
    assert.equal(r.maxLength, ClcLength.PROPOSAL_MAX);
    throwsWire(() => r.push(hdr), WireErrorCode.BAD_LENGTH, 5);
    assert.deepEqual(r.takeRemaining(), hdr);
    const small = new ClcReader({ maxLength: 100 });
    const confirm = FIXTURES.find((x) => x.name === 'confirm v2 first contact with fce and one gid')!;
    throwsWire(() => small.push(confirm.bytes.subarray(0, 8)), WireErrorCode.BAD_LENGTH, 5);
    const tiny = Buffer.from(hdr);
    tiny.writeUInt16BE(11, 5);
    throwsWire(() => new ClcReader().push(tiny), WireErrorCode.BAD_LENGTH, 5);
    // A message exactly at the limit is fine.
    assert.deepEqual(new ClcReader({ maxLength: confirm.bytes.length }).push(confirm.bytes), [confirm.msg]);
  });

  it('never buffers more than maxLength for a partial message', () => {
    const big = FIXTURES.reduce((a, b) => (b.bytes.length > a.bytes.length ? b : a));
    const r = new ClcReader({ maxLength: big.bytes.length });
    for (let i = 0; i < big.bytes.length - 1; i++) {
      r.push(big.bytes.subarray(i, i + 1));
      assert.ok(r.bufferedLength <= r.maxLength);
    }
    assert.deepEqual(r.push(big.bytes.subarray(big.bytes.length - 1)), [big.msg]);
  });

  it('decode errors carry offsets relative to takeRemaining() and keep the bytes', () => {
    const p = FIXTURES.find((x) => x.msg.type === 'proposal')!;
    const bad = Buffer.from(p.bytes);
    bad[bad.length - 1] = 0; // broken trailer
    const r = new ClcReader();
    assert.deepEqual(r.push(Buffer.concat([p.bytes, bad.subarray(0, 20)])), [p.msg]);
    throwsWire(() => r.push(bad.subarray(20)), WireErrorCode.BAD_TRAILER, bad.length - 4);
    assert.deepEqual(r.takeRemaining(), bad);
  });

  it('rejects a bad maxLength option', () => {
    for (const maxLength of [11, 65536, 1.5]) throwsWire(() => new ClcReader({ maxLength }), WireErrorCode.BAD_VALUE);
  });
});
