import assert from 'node:assert/strict';
import { WireError } from '@smc-r/wire';
import { formatIpv6, parseIp, parseIpv4, parseIpv6, parseMac } from './addr.js';
import { checksumAdd, checksumFinish, internetChecksum, ipv4HeaderChecksum, transportChecksum } from './checksum.js';
import { CaptureErrorCode } from './errors.js';
import { LinkType } from './linktype.js';
import { dissect, formatTcpFlags, TcpFlag, type Ipv4Header, type Packet } from './packet.js';
import { hex, SYN_FRAME, throwsCapture, UDP_FRAME } from './testing/fixtures.js';

/** IPv6 UDP fd00::1:1000 -> fd00::2:2000, "abc", behind a hop-by-hop options header. */
const UDP6_HOPOPT = hex(`
  6 00 00000 0013 00 40                 # IPv6: payload 19 (8 hop-by-hop + 11 UDP), next header 0, hop limit 64
  fd000000000000000000000000000001 fd000000000000000000000000000002
  11 00 0104 00000000                   # hop-by-hop: next UDP, length 0 (8 bytes), PadN(4) option... padded
  03e8 07d0 000b 35b9 616263            # UDP, checksum 35b9
`);

/** The IPv4 layer of a dissected frame (fails the test if there is none). */
function v4(p: Packet): Ipv4Header {
  assert.equal(p.ip?.version, 4);
  return p.ip as Ipv4Header;
}

describe('capture: checksums', () => {
  it('RFC 1071 section 3 example', () => {
    const b = hex('0001 f203 f4f5 f6f7');
    assert.equal(checksumFinish(checksumAdd(0, b, 0, b.length)), ~0xddf2 & 0xffff);
    assert.equal(internetChecksum(b, 0, b.length), 0x220d);
    assert.equal(internetChecksum(hex('01'), 0, 1), ~0x0100 & 0xffff); // odd byte padded with zero
  });
  it('IPv4 header checksum (textbook header 4500 0073 ... b861)', () => {
    const h = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
    assert.equal(ipv4HeaderChecksum(h, 0), 0xb861);
    assert.equal(internetChecksum(h, 0, 20), 0);
  });
  it('TCP and UDP checksums of the hand-built frames', () => {
    assert.equal(transportChecksum(SYN_FRAME, 14, 6, 34, SYN_FRAME.length), 0);
    assert.equal(transportChecksum(UDP_FRAME, 14, 17, 34, UDP_FRAME.length), 0);
    assert.equal(ipv4HeaderChecksum(SYN_FRAME, 14), 0x26ba);
    const z = Buffer.from(SYN_FRAME);
    z.writeUInt16BE(0, 50);
    assert.equal(transportChecksum(z, 14, 6, 34, z.length), 0x4ed2);
  });
});

describe('capture: addresses', () => {
  it('parses and formats', () => {
    assert.deepEqual(parseIpv4('10.0.0.1'), Buffer.from([10, 0, 0, 1]));
    assert.deepEqual(parseIpv6('fd00::2'), hex('fd000000000000000000000000000002'));
    assert.deepEqual(parseIpv6('::'), Buffer.alloc(16));
    assert.deepEqual(parseIpv6('::ffff:192.0.2.254'), hex('00000000000000000000ffffc00002fe'));
    assert.deepEqual(parseIpv6('::1.2.3.4'), hex('00000000000000000000000001020304'));
    assert.deepEqual(parseIpv6('1:2:3:4:5:6:1.2.3.4'), hex('00010002000300040005000601020304'));
    assert.deepEqual(parseIpv6('1:2:3:4:5:6:7:8'), hex('00010002000300040005000600070008'));
    assert.deepEqual(parseIpv6('fe80::1:2'), hex('fe800000000000000000000000010002'));
    assert.equal(parseIp('fd00::1').length, 16);
    assert.equal(parseIp('1.2.3.4').length, 4);
    assert.equal(formatIpv6(hex('20010db8000000000000000000000001')), '2001:db8::1');
    assert.deepEqual(parseMac('02-00-0A-00-00-01'), hex('02000a000001'));
    assert.deepEqual(parseMac(new Uint8Array(6)), Buffer.alloc(6));
  });
  it('rejects bad text with BAD_VALUE', () => {
    for (const s of ['1.2.3', '1.2.3.256', 'a.b.c.d', '1.2.3.4.5', '']) throwsCapture(() => parseIpv4(s), CaptureErrorCode.BAD_VALUE, 0);
    for (const s of ['1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', 'g::1', '1:2:3:4:5:6:7::8', '12345::']) throwsCapture(() => parseIpv6(s), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => parseMac('02:00:00:00:00'), CaptureErrorCode.BAD_VALUE, 0);
    throwsCapture(() => parseMac(new Uint8Array(5)), CaptureErrorCode.BAD_VALUE, 0);
  });
});

describe('capture: dissect', () => {
  it('Ethernet / IPv4 / TCP SYN with options', () => {
    const p = dissect(SYN_FRAME, LinkType.ETHERNET.value);
    assert.deepEqual(p.link, { type: 'ethernet', dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01' });
    assert.equal(p.etherType, 0x0800);
    assert.deepEqual(p.vlans, []);
    assert.deepEqual(p.ip, {
      version: 4, offset: 14, headerLength: 20, dscp: 0, ecn: 0, totalLength: 60, id: 0, df: true, mf: false,
      fragmentOffset: 0, ttl: 64, protocol: 6, checksum: 0x26ba, checksumOk: true, src: '10.0.0.1', dst: '10.0.0.2',
      options: { offset: 34, length: 0 }, fragment: false, payload: { offset: 34, length: 40 }, end: 74, truncated: false,
    });
    const t = p.tcp!;
    assert.equal(t.sport, 50000);
    assert.equal(t.dport, 8080);
    assert.equal(t.seq, 0x12345678);
    assert.equal(t.ack, 0);
    assert.equal(t.flags, TcpFlag.SYN.value);
    assert.equal(formatTcpFlags(t.flags), 'SYN');
    assert.equal(t.window, 64240);
    assert.equal(t.headerLength, 40);
    assert.equal(t.checksumStatus, 'good');
    assert.deepEqual(t.payload, { offset: 74, length: 0 });
    assert.equal(t.segmentLength, 0);
    assert.deepEqual(t.options.map((o) => [o.kind, o.offset, o.length]), [
      [2, 54, 4], [4, 58, 2], [1, 60, 1], [3, 61, 3], [1, 64, 1], [1, 65, 1], [254, 66, 6], [1, 72, 1], [1, 73, 1],
    ]);
    assert.deepEqual(t.options[6]!.data, hex('e2d4c3d9'));
    assert.equal(t.optionsError, undefined);
    assert.equal(p.udp, undefined);
  });

  it('Ethernet / IPv4 / UDP', () => {
    const p = dissect(UDP_FRAME, LinkType.ETHERNET.value);
    assert.equal(v4(p).checksumOk, true);
    assert.equal(v4(p).df, false);
    assert.equal(v4(p).id, 0x1c46);
    assert.deepEqual(p.udp, { offset: 34, sport: 12345, dport: 9999, length: 13, checksum: 0xe2a0, payload: { offset: 42, length: 5 }, checksumStatus: 'good' });
    const bad = Buffer.from(UDP_FRAME);
    bad[bad.length - 1] = 0x21;
    assert.equal(dissect(bad, 1).udp?.checksumStatus, 'bad');
    bad.writeUInt16BE(0, 40);
    assert.equal(dissect(bad, 1).udp?.checksumStatus, 'none');
    const ipBad = Buffer.from(UDP_FRAME);
    ipBad[22] = 63; // TTL changed, checksum not
    assert.equal(v4(dissect(ipBad, 1)).checksumOk, false);
  });

  it('ignores Ethernet padding and flags snaplen truncation', () => {
    const padded = Buffer.concat([UDP_FRAME, Buffer.alloc(13)]); // 47 -> 60 bytes
    const p = dissect(padded, 1);
    assert.equal(p.udp?.checksumStatus, 'good');
    assert.deepEqual(p.udp?.payload, { offset: 42, length: 5 });
    const cut = SYN_FRAME.subarray(0, 60); // inside the TCP options
    throwsCapture(() => dissect(cut, 1), CaptureErrorCode.TRUNCATED, 34);
    const data = Buffer.concat([UDP_FRAME]);
    const short = dissect(data.subarray(0, 44), 1);
    assert.equal(short.ip?.truncated, true);
    assert.equal(short.udp?.checksumStatus, 'unverified');
    assert.deepEqual(short.udp?.payload, { offset: 42, length: 2 });
  });

  it('802.1Q and QinQ tags', () => {
    const tagged = Buffer.concat([UDP_FRAME.subarray(0, 12), hex('88a8 0064 8100 a00a'), UDP_FRAME.subarray(12)]);
    const p = dissect(tagged, 1);
    assert.deepEqual(p.vlans, [
      { offset: 12, tpid: 0x88a8, pcp: 0, dei: false, vid: 100 },
      { offset: 16, tpid: 0x8100, pcp: 5, dei: false, vid: 10 },
    ]);
    assert.equal(p.udp?.checksumStatus, 'good');
    throwsCapture(() => dissect(tagged.subarray(0, 16), 1), CaptureErrorCode.TRUNCATED, 14);
  });

  it('non-IP Ethernet stops at the link layer', () => {
    const arp = Buffer.concat([UDP_FRAME.subarray(0, 12), hex('0806'), Buffer.alloc(28)]);
    const p = dissect(arp, 1);
    assert.equal(p.etherType, 0x0806);
    assert.equal(p.ip, undefined);
  });

  it('Linux cooked v1 and v2, loopback, raw', () => {
    const ip = UDP_FRAME.subarray(14);
    const sll = Buffer.concat([hex('0004 0001 0006 020000000001 0000 0800'), ip]); // sent by us, Ethernet, 6-byte addr
    const p1 = dissect(sll, LinkType.LINUX_SLL.value);
    assert.deepEqual(p1.link, { type: 'sll', packetType: 4, arphrd: 1, address: '02:00:00:00:00:01', protocol: 0x0800 });
    assert.equal(p1.udp?.checksumStatus, 'good');
    const sll2 = Buffer.concat([hex('0800 0000 00000001 0304 00 06 000000000000 0000'), ip]); // lo, ARPHRD_LOOPBACK
    const p2 = dissect(sll2, LinkType.LINUX_SLL2.value);
    assert.deepEqual(p2.link, { type: 'sll2', protocol: 0x0800, ifindex: 1, arphrd: 772, packetType: 0, address: '00:00:00:00:00:00' });
    assert.equal(p2.udp?.sport, 12345);
    const nullLe = Buffer.concat([hex('02000000'), ip]);
    assert.deepEqual(dissect(nullLe, LinkType.NULL.value).link, { type: 'loopback', family: 2 });
    assert.equal(dissect(nullLe, LinkType.NULL.value).udp?.checksumStatus, 'good');
    const nullBe = Buffer.concat([hex('0000001e'), UDP6_HOPOPT]); // macOS AF_INET6 = 30, big-endian writer
    assert.equal(dissect(nullBe, LinkType.NULL.value).udp?.checksumStatus, 'good');
    const loop = Buffer.concat([hex('00000002'), ip]);
    assert.equal(dissect(loop, LinkType.LOOP.value).ip?.src, '192.168.0.1');
    assert.equal(dissect(ip, LinkType.RAW.value).udp?.dport, 9999);
    assert.equal(dissect(ip, LinkType.IPV4.value).udp?.dport, 9999);
    assert.equal(dissect(UDP6_HOPOPT, LinkType.RAW.value).ip?.version, 6);
    assert.equal(dissect(UDP6_HOPOPT, LinkType.IPV6.value).udp?.checksumStatus, 'good');
    assert.equal(dissect(Buffer.concat([hex('0b000000'), ip]), LinkType.NULL.value).ip, undefined); // unknown family
  });

  it('IPv6 with a hop-by-hop header', () => {
    const p = dissect(UDP6_HOPOPT, LinkType.RAW.value);
    const ip = p.ip;
    assert.ok(ip && ip.version === 6);
    assert.equal(ip.src, 'fd00::1');
    assert.equal(ip.dst, 'fd00::2');
    assert.equal(ip.hopLimit, 64);
    assert.equal(ip.nextHeader, 0);
    assert.equal(ip.protocol, 17);
    assert.deepEqual(ip.extensions, [{ type: 0, offset: 40, length: 8 }]);
    assert.deepEqual(p.udp, { offset: 48, sport: 1000, dport: 2000, length: 11, checksum: 0x35b9, payload: { offset: 56, length: 3 }, checksumStatus: 'good' });
  });

  it('IP fragments are flagged and not parsed further', () => {
    const mf = Buffer.from(UDP_FRAME);
    mf.writeUInt16BE(0x2000, 20);
    mf.writeUInt16BE(0, 24);
    mf.writeUInt16BE(ipv4HeaderChecksum(mf, 14), 24);
    const p = dissect(mf, 1);
    assert.equal(p.ip?.fragment, true);
    assert.equal(v4(p).checksumOk, true);
    assert.equal(p.udp, undefined);
    const frag6 = Buffer.from(UDP6_HOPOPT);
    frag6[6] = 44; // fragment header in place of hop-by-hop
    frag6.writeUInt32BE(0x11000009, 40); // next UDP, offset 1 (8 bytes), MF
    const q = dissect(frag6, LinkType.RAW.value);
    assert.equal(q.ip?.fragment, true);
    assert.equal(q.udp, undefined);
  });

  it('TSO captures (IP total length 0) use the captured length and leave checksums unverified', () => {
    const tso = Buffer.from(SYN_FRAME);
    tso.writeUInt16BE(0, 16);
    const p = dissect(tso, 1);
    assert.equal(v4(p).totalLength, 0);
    assert.equal(p.ip?.end, SYN_FRAME.length);
    assert.equal(p.tcp?.checksumStatus, 'unverified');
  });

  it('keeps dissecting when the TCP options are bad', () => {
    const bad = Buffer.from(SYN_FRAME);
    bad[55] = 0; // MSS option length 0
    const p = dissect(bad, 1);
    assert.ok(p.tcp?.optionsError instanceof WireError);
    assert.deepEqual(p.tcp?.options, []);
    assert.equal(p.tcp?.checksumStatus, 'bad');
  });

  it('errors carry code and offset', () => {
    throwsCapture(() => dissect(SYN_FRAME, 105), CaptureErrorCode.UNSUPPORTED_LINK_TYPE, 0);
    throwsCapture(() => dissect(SYN_FRAME.subarray(0, 13), 1), CaptureErrorCode.TRUNCATED, 0);
    throwsCapture(() => dissect(SYN_FRAME.subarray(0, 30), 1), CaptureErrorCode.TRUNCATED, 14);
    throwsCapture(() => dissect(hex('0000'), LinkType.LINUX_SLL.value), CaptureErrorCode.TRUNCATED, 0);
    throwsCapture(() => dissect(hex('0000'), LinkType.LINUX_SLL2.value), CaptureErrorCode.TRUNCATED, 0);
    throwsCapture(() => dissect(hex('02'), LinkType.NULL.value), CaptureErrorCode.TRUNCATED, 0);
    throwsCapture(() => dissect(hex(''), LinkType.RAW.value), CaptureErrorCode.TRUNCATED, 0);
    throwsCapture(() => dissect(hex('5500'), LinkType.RAW.value), CaptureErrorCode.MALFORMED, 0);
    throwsCapture(() => dissect(Buffer.concat([UDP_FRAME.subarray(14), Buffer.alloc(20)]), LinkType.IPV6.value), CaptureErrorCode.MALFORMED, 0);
    throwsCapture(() => dissect(UDP6_HOPOPT, LinkType.IPV4.value), CaptureErrorCode.MALFORMED, 0);
    const ihl = Buffer.from(SYN_FRAME);
    ihl[14] = 0x44;
    throwsCapture(() => dissect(ihl, 1), CaptureErrorCode.MALFORMED, 14);
    const tl = Buffer.from(SYN_FRAME);
    tl.writeUInt16BE(19, 16);
    throwsCapture(() => dissect(tl, 1), CaptureErrorCode.MALFORMED, 16);
    const tl2 = Buffer.from(SYN_FRAME);
    tl2.writeUInt16BE(30, 16); // 10 bytes of TCP
    throwsCapture(() => dissect(tl2, 1), CaptureErrorCode.MALFORMED, 34);
    const doff = Buffer.from(SYN_FRAME);
    doff[46] = 0x40;
    throwsCapture(() => dissect(doff, 1), CaptureErrorCode.MALFORMED, 46);
    doff[46] = 0xf0; // 60 bytes > 40-byte segment
    throwsCapture(() => dissect(doff, 1), CaptureErrorCode.MALFORMED, 46);
    const ulen = Buffer.from(UDP_FRAME);
    ulen.writeUInt16BE(7, 38);
    throwsCapture(() => dissect(ulen, 1), CaptureErrorCode.MALFORMED, 38);
    ulen.writeUInt16BE(14, 38);
    throwsCapture(() => dissect(ulen, 1), CaptureErrorCode.MALFORMED, 38);
    const u4 = Buffer.from(UDP_FRAME);
    u4.writeUInt16BE(24, 16); // 4 bytes of UDP
    throwsCapture(() => dissect(u4, 1), CaptureErrorCode.MALFORMED, 34);
    const ext = Buffer.from(UDP6_HOPOPT);
    ext[41] = 3; // hop-by-hop of 32 bytes > payload
    throwsCapture(() => dissect(ext, LinkType.RAW.value), CaptureErrorCode.MALFORMED, 40);
    throwsCapture(() => dissect(UDP6_HOPOPT.subarray(0, 44), LinkType.RAW.value), CaptureErrorCode.TRUNCATED, 40);
    throwsCapture(() => dissect(UDP6_HOPOPT.subarray(0, 30), LinkType.RAW.value), CaptureErrorCode.TRUNCATED, 0);
    throwsCapture(() => dissect(UDP_FRAME.subarray(0, 38), 1), CaptureErrorCode.TRUNCATED, 34);
  });
});
