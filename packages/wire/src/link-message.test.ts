import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WireError, WireErrorCode } from './errors.js';
import { decodeLinkMessage, linkMessageKind } from './link-message.js';
import { LlcType } from './llc.js';
import { throwsWire } from './testing/assert.js';

function h(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}
const zeros = (n: number): string => '00'.repeat(n);


describe('link-message', () => {
  it('linkMessageKind classifies all 256 first bytes', () => {
    const v1 = new Set<number>(Object.values(LlcType).filter((i) => i.lgr === 'v1').map((i) => i.value));
    const v2 = new Set<number>(Object.values(LlcType).filter((i) => i.lgr === 'v2').map((i) => i.value));
    for (let b = 0; b < 256; b++) {
      const want = b === 0xfe ? 'cdc' : v1.has(b) ? 'llc-v1' : v2.has(b) ? 'llc-v2' : undefined;
      assert.equal(linkMessageKind(b), want, `0x${b.toString(16)}`);
    }
    assert.deepEqual([...v1].sort((a, b) => a - b), [0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0a]);
    assert.deepEqual([...v2].sort((a, b) => a - b), [0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x29]);
  });

  it('demultiplexes CDC, LLC v1 and LLC v2', () => {
    const cdc = decodeLinkMessage(h('fe', '2c', '0001', '00000003', '0000', '0000', '0000000d', zeros(8), zeros(20)));
    assert.equal(cdc.type, 'cdc');
    const tl = decodeLinkMessage(h('07', '2c', '00', '80', zeros(40)));
    assert.ok(tl.type === 'test_link' && !tl.v2 && tl.resp);
    const buf = Buffer.concat([Buffer.alloc(3), h('24', '2c00', '60', '00', '00030000', zeros(35)), Buffer.alloc(2)]);
    const dl = decodeLinkMessage(buf, 3, 47);
    assert.ok(dl.type === 'delete_link' && dl.v2 && dl.all && dl.orderly && dl.reason === 0x30000);
  });

  it('UNKNOWN_TYPE for other first bytes, TRUNCATED for an empty payload', () => {
    for (const t of [0x00, 0x05, 0x0b, 0x23, 0x28, 0x2a, 0x30, 0x80, 0xfd, 0xff]) {
      const x = Buffer.concat([Buffer.alloc(2), Buffer.from([t, 44]), Buffer.alloc(42)]);
      throwsWire(() => decodeLinkMessage(x, 2), WireErrorCode.UNKNOWN_TYPE, 2);
    }
    throwsWire(() => decodeLinkMessage(Buffer.alloc(4), 4), WireErrorCode.TRUNCATED, 4);
  });

  it('passes through the codec errors', () => {
    throwsWire(() => decodeLinkMessage(h('fe', '2b', zeros(42))), WireErrorCode.BAD_LENGTH, 1);
    throwsWire(() => decodeLinkMessage(h('01', '2c', zeros(10))), WireErrorCode.TRUNCATED, 0);
  });

  it('random payloads only throw WireError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), fc.constantFrom(0xfe, 0x01, 0x07, 0x22, 0x29), fc.boolean(), (bytes, first, force) => {
      const x = Uint8Array.from(bytes);
      if (force && x.length > 1) {
        x[0] = first;
        x[1] = 44;
      }
      try {
        decodeLinkMessage(x);
      } catch (e) {
        assert.ok(e instanceof WireError, String(e));
      }
    }), { numRuns: 2000 });
  });
});
