import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SMC_OPT_OBJECT } from './generated/program.js';
import { addressBytes, checkPort, decodeRecord, encodeListenKey, encodeOfferKey, statName } from './keys.js';
import { SockopsError, SockopsErrorCode } from './errors.js';

const layout = (map: string, part: 'key' | 'value') => SMC_OPT_OBJECT.maps.find((m) => m.name === map)![part];
const code = (c: string) => (e: unknown) => e instanceof SockopsError && e.code === c;

describe('map keys and records', () => {
  it('stores IPv4 v4-mapped and IPv6 as its 16 bytes', () => {
    assert.equal(Buffer.from(addressBytes('192.0.2.1')).toString('hex'), '00000000000000000000ffffc0000201');
    assert.equal(Buffer.from(addressBytes('::1')).toString('hex'), '00000000000000000000000000000001');
    assert.equal(Buffer.from(addressBytes('::')).toString('hex'), '0'.repeat(32));
    assert.equal(Buffer.from(addressBytes('2001:db8::2:1')).toString('hex'), '20010db8000000000000000000020001');
    assert.equal(Buffer.from(addressBytes('fe80::')).toString('hex'), 'fe80' + '0'.repeat(28));
    // The v4-mapped IPv6 spelling is the same key as the IPv4 one: what an AF_INET6 socket sees.
    assert.deepEqual(addressBytes('::ffff:192.0.2.1'), addressBytes('192.0.2.1'));
    assert.equal(Buffer.from(addressBytes('1:2:3:4:5:6:7:8')).toString('hex'), '00010002000300040005000600070008');
  });

  it('refuses anything but literal addresses with BAD_ADDRESS', () => {
    for (const bad of ['localhost', '', '1.2.3', '1.2.3.256', '::1%lo', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '192.0.2.1/24', '[::1]']) {
      assert.throws(() => addressBytes(bad), code(SockopsErrorCode.BAD_ADDRESS), bad);
    }
    assert.throws(() => addressBytes(undefined as unknown as string), code(SockopsErrorCode.BAD_ADDRESS));
  });

  it('parses every IPv6 address the way the WHATWG URL parser canonicalises it', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      const words = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16));
      const full = words.join(':');
      const canonical = new URL(`http://[${full}]/`).hostname.slice(1, -1); // compressed form, independent of us
      assert.deepEqual(Buffer.from(addressBytes(full)), Buffer.from(bytes));
      assert.deepEqual(Buffer.from(addressBytes(canonical)), Buffer.from(bytes));
    }), { numRuns: 300 });
  });

  it('lays the offer key out as the program reads it: address, host-order port, zero pad', () => {
    const key = layout('smcr_offer', 'key');
    assert.equal(key.size, 20);
    const out = Buffer.alloc(24, 0xaa);
    encodeOfferKey(key, '192.0.2.1', 0x1234, out, true);
    assert.equal(out.subarray(0, 20).toString('hex'), '00000000000000000000ffffc0000201' + '3412' + '0000');
    assert.equal(out[20], 0xaa, 'bytes past the key untouched');
    encodeOfferKey(key, '2001:db8::1', 443, out, false);
    assert.equal(out.subarray(16, 18).toString('hex'), '01bb');
  });

  it('lays the listen key out as a host-order u32 port', () => {
    const out = Buffer.alloc(4);
    encodeListenKey(layout('smcr_listen', 'key'), 8080, out, true);
    assert.equal(out.toString('hex'), '901f0000');
  });

  it('checks ports with BAD_PORT', () => {
    for (const bad of [0, -1, 65536, 1.5, Number.NaN]) assert.throws(() => checkPort(bad), code(SockopsErrorCode.BAD_PORT), String(bad));
    checkPort(1);
    checkPort(65535);
    assert.throws(() => encodeOfferKey(layout('smcr_offer', 'key'), '::1', 0, Buffer.alloc(20)), code(SockopsErrorCode.BAD_PORT));
  });

  it('decodes the per-socket record', () => {
    const value = layout('smcr_sk_state', 'value');
    assert.equal(value.size, 8);
    assert.deepEqual(decodeRecord(value, Buffer.from('01010100' + '06000000', 'hex')), { peerSmc: true, sentSmc: true, role: 'active', loadRet: 6 });
    assert.deepEqual(decodeRecord(value, Buffer.from('00000200' + 'd6ffffff', 'hex')), { peerSmc: false, sentSmc: false, role: 'passive', loadRet: -42 });
    assert.equal(decodeRecord(value, Buffer.from('0000000000000000', 'hex')), undefined);
  });

  it('names the counters from the program enum', () => {
    assert.equal(statName('SMCR_STAT_SYN_WRITTEN'), 'synWritten');
    assert.equal(statName('SMCR_STAT_SYNACK_COOKIE_SKIPPED'), 'synackCookieSkipped');
    const names = Object.keys(SMC_OPT_OBJECT.enums['smcr_stat']!);
    assert.ok(names.includes('SMCR_STAT_SYN_ENOSPC') && names.includes('SMCR_STAT__COUNT'));
    assert.equal(SMC_OPT_OBJECT.maps.find((m) => m.name === 'smcr_stats')!.maxEntries, SMC_OPT_OBJECT.enums['smcr_stat']!['SMCR_STAT__COUNT']);
  });
});
