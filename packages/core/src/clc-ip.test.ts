import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ClcConfigError } from './clc-config.js';
import { ipv4FromGid, maskAddress, parseIp, parseIpv4, parseIpv6, prefixAreaMatches, prefixEqual, proposalPrefixArea } from './clc-ip.js';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('clc-ip: address parsing', () => {
  it('parses dotted quads strictly', () => {
    assert.deepEqual(parseIpv4('10.0.0.2'), h('0a000002'));
    assert.deepEqual(parseIpv4('255.255.255.255'), h('ffffffff'));
    for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.01', '10.0.0.-1', '10..0.1', 'a.b.c.d', '1.2.3.4.5', '']) {
      assert.equal(parseIpv4(bad), undefined, bad);
    }
  });

  it('parses IPv6 with :: and an embedded IPv4 tail', () => {
    assert.deepEqual(parseIpv6('2001:db8:1::2'), h('20010db8000100000000000000000002'));
    assert.deepEqual(parseIpv6('::'), Buffer.alloc(16));
    assert.deepEqual(parseIpv6('::1'), h('00000000000000000000000000000001'));
    assert.deepEqual(parseIpv6('fe80::bace:f6ff:fe12:3456'), h('fe80000000000000bacef6fffe123456'));
    assert.deepEqual(parseIpv6('::ffff:10.0.0.1'), h('00000000000000000000ffff0a000001'));
    assert.deepEqual(parseIpv6('1:2:3:4:5:6:7:8'), h('00010002000300040005000600070008'));
    for (const bad of ['1::2::3', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '12345::', 'g::1', '1:2:3:4:5:6:7::8', ':::']) {
      assert.equal(parseIpv6(bad), undefined, bad);
    }
  });

  it('folds IPv4-mapped addresses to IPv4 and drops a zone', () => {
    assert.deepEqual(parseIp('::ffff:10.0.0.2'), { family: 4, bytes: h('0a000002') });
    assert.deepEqual(parseIp('10.0.0.2'), { family: 4, bytes: h('0a000002') });
    assert.deepEqual(parseIp('fe80::1%eth0'), { family: 6, bytes: h('fe800000000000000000000000000001') });
    assert.throws(() => parseIp('nonsense'), ClcConfigError);
  });

  it('agrees with node:net on random IPv6 text', async () => {
    const { isIPv6 } = await import('node:net');
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        assert.equal(isIPv6(text), true);
        const b = parseIpv6(text);
        assert.ok(b !== undefined, text);
        assert.equal(b.length, 16);
      }),
    );
  });

  it('reads the IPv4 address of an IPv4-mapped GID only', () => {
    assert.equal(ipv4FromGid(h('00000000000000000000ffff0a000001')), '10.0.0.1');
    assert.equal(ipv4FromGid(h('fe80000000000000bacef6fffe123456')), undefined);
    assert.equal(ipv4FromGid(h('0000')), undefined);
  });

  it('masks and compares prefixes bit by bit', () => {
    assert.deepEqual(maskAddress(h('0a0102ff'), 23), h('0a010200'));
    assert.deepEqual(maskAddress(h('0a0103ff'), 23), h('0a010200'));
    assert.deepEqual(maskAddress(h('ffffffff'), 0), h('00000000'));
    assert.deepEqual(maskAddress(h('ffffffff'), 32), h('ffffffff'));
    assert.ok(prefixEqual(h('0a000002'), h('0a0000fe'), 24));
    assert.ok(!prefixEqual(h('0a000102'), h('0a0000fe'), 24));
  });
});

describe('clc-ip: the client prefix area (spec 3.3.2)', () => {
  it('IPv4: the device address whose subnet holds the local address, masked', () => {
    const area = proposalPrefixArea('10.0.0.2', [
      { address: '192.168.7.1', prefixLen: 16 },
      { address: '10.0.0.2', prefixLen: 24 },
    ]);
    assert.deepEqual(area, { subnet: h('0a000000'), prefixLen: 24, ipv6Prefixes: [] });
  });

  it('IPv4-mapped sockets use the IPv4 rule', () => {
    const area = proposalPrefixArea('::ffff:172.16.5.9', [{ address: '172.16.5.1', prefixLen: 20 }]);
    assert.deepEqual(area, { subnet: h('ac100000'), prefixLen: 20, ipv6Prefixes: [] });
  });

  it('IPv4 without a containing device address gives none', () => {
    assert.equal(proposalPrefixArea('10.0.0.2', [{ address: '10.0.1.1', prefixLen: 24 }]), undefined);
    assert.equal(proposalPrefixArea('10.0.0.2', []), undefined);
  });

  it('IPv6: up to 8 non-link-local prefixes of the device, subnet 0 length 0', () => {
    const addrs = [{ address: 'fe80::1', prefixLen: 64 }];
    for (let i = 1; i <= 10; i++) addrs.push({ address: `2001:db8:${i}::2`, prefixLen: 64 });
    const area = proposalPrefixArea('2001:db8:1::2', addrs);
    assert.ok(area);
    assert.deepEqual(area.subnet, Buffer.alloc(4));
    assert.equal(area.prefixLen, 0);
    assert.equal(area.ipv6Prefixes.length, 8);
    assert.deepEqual(area.ipv6Prefixes[0], { prefix: h('20010db8000100000000000000000000'), prefixLen: 64 });
    assert.equal(proposalPrefixArea('2001:db8:1::2', [{ address: 'fe80::1', prefixLen: 64 }]), undefined);
  });

  it('rejects bad prefix lengths as configuration errors', () => {
    assert.throws(() => proposalPrefixArea('10.0.0.2', [{ address: '10.0.0.2', prefixLen: 33 }]), ClcConfigError);
    assert.throws(() => proposalPrefixArea('::1', [{ address: '::1', prefixLen: 129 }]), ClcConfigError);
  });
});

describe('clc-ip: the server prefix check (spec 3.6.3 step 6)', () => {
  const v4 = { subnet: h('0a000000'), prefixLen: 24, ipv6Prefixes: [] };

  it('IPv4: same length and subnet on one device address', () => {
    assert.ok(prefixAreaMatches(v4, [{ address: '10.0.0.1', prefixLen: 24 }]));
    assert.ok(!prefixAreaMatches(v4, [{ address: '10.0.0.1', prefixLen: 16 }]), 'length differs');
    assert.ok(!prefixAreaMatches(v4, [{ address: '10.0.1.1', prefixLen: 24 }]), 'subnet differs');
    assert.ok(!prefixAreaMatches(v4, [{ address: '2001:db8::1', prefixLen: 24 }]), 'IPv6 addresses do not count');
  });

  it('IPv6: one proposed prefix equals one non-link-local device prefix', () => {
    const v6 = { subnet: Buffer.alloc(4), prefixLen: 0, ipv6Prefixes: [{ prefix: h('20010db8000100000000000000000000'), prefixLen: 64 }] };
    assert.ok(prefixAreaMatches(v6, [{ address: '2001:db8:1::1', prefixLen: 64 }]));
    assert.ok(!prefixAreaMatches(v6, [{ address: '2001:db8:2::1', prefixLen: 64 }]));
    assert.ok(!prefixAreaMatches(v6, [{ address: '2001:db8:1::1', prefixLen: 48 }]));
    const ll = { subnet: Buffer.alloc(4), prefixLen: 0, ipv6Prefixes: [{ prefix: h('fe800000000000000000000000000000'), prefixLen: 64 }] };
    assert.ok(!prefixAreaMatches(ll, [{ address: 'fe80::1', prefixLen: 64 }]), 'link-local device addresses are skipped');
  });

  it('a client and a server on the same subnet always agree (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), fc.ipV4(), (net, len, other) => {
        const base = maskAddress(parseIp(net).bytes, len);
        const host = (b: Buffer): string => Array.from(b).join('.');
        // Client and server addresses inside the same /len.
        const mix = (x: Buffer): Buffer => {
          const out = Buffer.from(base);
          const m = maskAddress(Buffer.alloc(4, 0xff), len);
          for (let i = 0; i < 4; i++) out[i] = out[i]! | (x[i]! & ~m[i]! & 0xff);
          return out;
        };
        const c = host(mix(parseIp(other).bytes));
        const s = host(mix(Buffer.from(parseIp(other).bytes).reverse()));
        const area = proposalPrefixArea(c, [{ address: c, prefixLen: len }]);
        assert.ok(area);
        assert.ok(prefixAreaMatches(area, [{ address: s, prefixLen: len }]));
      }),
    );
  });
});
