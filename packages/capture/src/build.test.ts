import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeIbPacket, encodeSmcOption, verifyIcrc, WireError, WireErrorCode, type IbPacketInput } from '@smc-r/wire';
import { SAMPLES, SCAPY_FRAMES } from '../../wire/src/testing/roce-samples.js';
import {
  buildEthernetIpv4Tcp, buildEthernetIpv4Udp, buildEthernetIpv6Tcp, buildEthernetIpv6Udp, buildRoceV2Frame,
} from './build.js';
import { CaptureErrorCode } from './errors.js';
import { dissect, TcpFlag } from './packet.js';
import { hex, SYN_FRAME, throwsCapture, UDP_FRAME } from './testing/fixtures.js';

describe('capture: frame builders (against hand-built and scapy-built frames)', () => {
  it('buildEthernetIpv4Tcp reproduces the hand-built SYN', () => {
    const f = buildEthernetIpv4Tcp({
      src: '10.0.0.1', dst: '10.0.0.2', sport: 50000, dport: 8080, seq: 0x12345678, flags: TcpFlag.SYN.value, window: 64240,
      options: hex('020405b4 0402 01 030307 0101 fe06e2d4c3d9 0101'),
    });
    assert.deepEqual(f, SYN_FRAME);
  });

  it('buildEthernetIpv4Udp reproduces the hand-built UDP frame', () => {
    const f = buildEthernetIpv4Udp({ src: '192.168.0.1', dst: '192.168.0.199', sport: 12345, dport: 9999, ipId: 0x1c46, df: false, payload: Buffer.from('hello') });
    assert.deepEqual(f, UDP_FRAME);
  });

  it('buildRoceV2Frame reproduces the scapy frames (ICRC and UDP checksum)', () => {
    for (const [name, v] of Object.entries(SCAPY_FRAMES)) {
      const f = v.frame;
      const v6 = f[12] === 0x86;
      const ipOff = 14;
      const p = dissect(f, 1);
      const ip = p.ip!;
      const ib = decodeIbPacket(f, p.udp!.payload.offset, p.udp!.offset + p.udp!.length);
      const input: IbPacketInput = { bth: ib.bth, reth: ib.reth, aeth: ib.aeth, immDt: ib.immDt, payload: f, payloadOffset: ib.payload.offset, payloadLength: ib.payload.length };
      const built = buildRoceV2Frame({
        srcMac: f.subarray(6, 12), dstMac: f.subarray(0, 6), src: ip.src, dst: ip.dst, sport: p.udp!.sport,
        ttl: v6 ? f[ipOff + 7] : f[ipOff + 8],
        tos: v6 ? (f.readUInt16BE(ipOff) >> 4) & 0xff : f[ipOff + 1],
        ...(ip.version === 4 ? { ipId: ip.id, df: ip.df } : { flowLabel: ip.flowLabel }),
        udpChecksum: p.udp!.checksum !== 0,
        ib: input,
      });
      assert.deepEqual(built.toString('hex'), f.toString('hex'), name);
    }
  });

  it('TCP option padding, VLAN tag, IPv6', () => {
    const f = buildEthernetIpv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, options: encodeSmcOptionBytes(false), vlan: { vid: 42, pcp: 3 } });
    const p = dissect(f, 1);
    assert.deepEqual(p.vlans.map((v) => [v.vid, v.pcp]), [[42, 3]]);
    assert.equal(p.tcp?.headerLength, 28); // 6 option bytes + 2 EOL padding
    assert.deepEqual(p.tcp?.options.map((o) => o.kind), [254, 0]);
    assert.equal(p.tcp?.checksumStatus, 'good');
    const g = buildEthernetIpv6Tcp({ src: 'fd00::1', dst: 'fd00::2', sport: 1, dport: 2, payload: Buffer.from('x'), ttl: 1, tos: 0xb8, flowLabel: 0xabcde });
    const q = dissect(g, 1);
    assert.ok(q.ip?.version === 6);
    assert.equal(q.ip.trafficClass, 0xb8);
    assert.equal(q.ip.flowLabel, 0xabcde);
    assert.equal(q.ip.hopLimit, 1);
    assert.equal(q.tcp?.checksumStatus, 'good');
    const u = dissect(buildEthernetIpv6Udp({ src: '::1', dst: '::1', sport: 7, dport: 7 }), 1);
    assert.equal(u.udp?.checksumStatus, 'good');
    const noSum = dissect(buildEthernetIpv4Udp({ src: '1.1.1.1', dst: '2.2.2.2', sport: 7, dport: 7, udpChecksum: false }), 1);
    assert.equal(noSum.udp?.checksumStatus, 'none');
  });

  it('a computed UDP checksum of 0 is sent as 0xffff', () => {
    const fields = { src: '192.168.0.1', dst: '192.168.0.199', sport: 12345, dport: 9999 };
    const payload = Buffer.from('hell\0\0');
    const c = buildEthernetIpv4Udp({ ...fields, payload }).readUInt16BE(40);
    payload.writeUInt16BE(c, 4); // adds ~sum to the sum: the new sum is 0xffff, its complement 0
    const f = buildEthernetIpv4Udp({ ...fields, payload });
    assert.equal(f.readUInt16BE(40), 0xffff);
    assert.equal(dissect(f, 1).udp?.checksumStatus, 'good');
  });

  it('errors', () => {
    const base = { src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 };
    throwsCapture(() => buildEthernetIpv4Tcp({ ...base, sport: 65536 }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv4Tcp({ ...base, dst: 'fd00::1' }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv6Tcp(base), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv4Tcp({ ...base, options: Buffer.alloc(41) }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv4Tcp({ ...base, seq: -1 }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv4Tcp({ ...base, flags: 256 }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv4Tcp({ ...base, ttl: 256 }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv4Tcp({ ...base, vlan: 4096 }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv4Tcp({ ...base, srcMac: '02:00' }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv4Udp({ ...base, payload: Buffer.alloc(65530) }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv6Udp({ src: '::1', dst: '::2', sport: 1, dport: 2, udpChecksum: false }), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => buildEthernetIpv6Udp({ src: '::1', dst: '::2', sport: 1, dport: 2, flowLabel: 0x100000 }), CaptureErrorCode.BAD_VALUE, 0);
    const sample = SAMPLES[0]!.msg;
    assert.throws(() => buildRoceV2Frame({ src: '10.0.0.1', dst: '10.0.0.2', ib: { ...sample, bth: { ...sample.bth, psn: -1 } } }), (e: unknown) => e instanceof WireError && e.code === WireErrorCode.BAD_VALUE);
  });
});

function encodeSmcOptionBytes(withNops: boolean): Buffer {
  const b = Buffer.alloc(8);
  return b.subarray(0, encodeSmcOption(b, 0, withNops));
}

// ---------------------------------------------------------------------------------------------
// build -> dissect round trips

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const ipv6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((w) => w.map((x) => x.toString(16)).join(':'));
const port = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
/** Well-formed option blocks: concatenations of real options (at most 40 bytes after padding). */
const options = fc
  .array(fc.constantFrom(hex('01'), hex('020405b4'), hex('030307'), hex('0402'), hex('080a0000000100000002'), hex('0101fe06e2d4c3d9'), hex('fe06e2d4c3d9')), { maxLength: 5 })
  .map((parts) => Buffer.concat(parts))
  .filter((b) => b.length <= 40);
const vlan = fc.option(fc.integer({ min: 0, max: 4095 }), { nil: undefined });

describe('capture: build -> dissect properties', () => {
  it('TCP over IPv4 and IPv6', () => {
    fc.assert(fc.property(
      fc.boolean(), ipv4, ipv4, ipv6, ipv6, port, port, u32, u32, fc.nat(255), port, options, fc.uint8Array({ maxLength: 200 }), mac, mac, vlan, fc.nat(0xffff),
      (v6, s4, d4, s6, d6, sport, dport, seq, ack, flags, window, opts, payload, srcMac, dstMac, tag, ipId) => {
        const fields = { src: v6 ? s6 : s4, dst: v6 ? d6 : d4, sport, dport, seq, ack, flags, window, options: opts, payload, srcMac, dstMac, vlan: tag, ipId };
        const f = v6 ? buildEthernetIpv6Tcp(fields) : buildEthernetIpv4Tcp(fields);
        const p = dissect(f, 1);
        assert.equal(p.vlans.length, tag === undefined ? 0 : 1);
        assert.equal(p.ip?.version, v6 ? 6 : 4);
        if (p.ip?.version === 4) {
          assert.equal(p.ip.checksumOk, true);
          assert.equal(p.ip.id, ipId);
          assert.equal(p.ip.src, s4);
        }
        const t = p.tcp!;
        assert.deepEqual([t.sport, t.dport, t.seq, t.ack, t.flags, t.window], [sport, dport, seq, ack, flags, window]);
        assert.equal(t.checksumStatus, 'good');
        assert.equal(t.optionsError, undefined);
        assert.equal(t.headerLength, 20 + ((opts.length + 3) & ~3));
        assert.deepEqual(f.subarray(t.payload.offset, t.payload.offset + t.payload.length), Buffer.from(payload));
        assert.equal(t.payload.offset + t.payload.length, f.length);
      },
    ), { numRuns: 300 });
  });

  it('UDP over IPv4 and IPv6', () => {
    fc.assert(fc.property(fc.boolean(), ipv4, ipv4, ipv6, ipv6, port, port, fc.uint8Array({ maxLength: 300 }), vlan, (v6, s4, d4, s6, d6, sport, dport, payload, tag) => {
      const fields = { src: v6 ? s6 : s4, dst: v6 ? d6 : d4, sport, dport, payload, vlan: tag };
      const p = dissect(v6 ? buildEthernetIpv6Udp(fields) : buildEthernetIpv4Udp(fields), 1);
      const u = p.udp!;
      assert.deepEqual([u.sport, u.dport, u.length, u.checksumStatus], [sport, dport, 8 + payload.length, 'good']);
    }), { numRuns: 300 });
  });

  it('RoCEv2 frames of every sample packet carry a valid ICRC and decode back', () => {
    fc.assert(fc.property(fc.constantFrom(...SAMPLES), fc.boolean(), ipv4, ipv4, ipv6, ipv6, port, fc.nat(0xffff), fc.nat(255), (sample, v6, s4, d4, s6, d6, sport, ipId, ttl) => {
      const f = buildRoceV2Frame({ src: v6 ? s6 : s4, dst: v6 ? d6 : d4, sport, ipId, ttl, ib: sample.msg });
      const p = dissect(f, 1);
      const ip = p.ip!;
      assert.equal(p.udp?.dport, 4791);
      assert.equal(p.udp?.checksumStatus, 'good');
      assert.ok(verifyIcrc(f, ip.offset, ip.end), sample.name);
      const d = decodeIbPacket(f, p.udp!.payload.offset, p.udp!.offset + p.udp!.length);
      assert.deepEqual(d.bth, sample.msg.bth);
      // TTL is masked: a router decrementing it keeps the ICRC valid; the IP ID is not.
      const g = Buffer.from(f);
      if (ip.version === 4) {
        g[ip.offset + 8] = (g[ip.offset + 8]! + 1) & 0xff;
        assert.ok(verifyIcrc(g, ip.offset, ip.end));
        g[ip.offset + 5] = g[ip.offset + 5]! ^ 1;
        assert.ok(!verifyIcrc(g, ip.offset, ip.end));
      }
    }), { numRuns: 200 });
  });
});
