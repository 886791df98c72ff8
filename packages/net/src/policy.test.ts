import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatIp, parseIp, parsePrefix, formatPrefix } from './address.js';
import { LearnedBlockList } from './blocklist.js';
import { NetError, NetErrorCode } from './errors.js';
import { PolicyTable, parsePolicyRule } from './policy.js';

function throwsNet(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof NetError && e.code === code);
}

describe('addresses', () => {
  it('IPv4 and its mapped form are the same peer; IPv6 keeps RFC 5952 text', () => {
    assert.equal(parseIp('10.0.0.1').value, parseIp('::ffff:10.0.0.1').value);
    assert.equal(parseIp('::FFFF:a00:1').value, parseIp('10.0.0.1').value);
    assert.equal(formatIp(parseIp('::ffff:10.0.0.1')), '10.0.0.1');
    assert.equal(formatIp(parseIp('2001:DB8:0:0:0:0:0:1')), '2001:db8::1');
    assert.equal(formatIp(parseIp('::')), '::');
    assert.equal(parseIp('::1').v4, false);
  });

  it('prefixes: IPv4 lengths count within the mapped space; host bits are cleared', () => {
    assert.equal(formatPrefix(parsePrefix('10.1.2.3/8')), '10.0.0.0/8');
    assert.equal(formatPrefix(parsePrefix('fd00::1/8')), 'fd00::/8');
    assert.equal(formatPrefix(parsePrefix('192.168.1.7')), '192.168.1.7/32');
  });

  it('bad literals and lengths are BAD_ADDRESS', () => {
    for (const t of ['10.0.0.256', 'fe80::1%eth0', 'host.example', '', '1.2.3.4/33', '::/129', '10.0.0.0/x', '10.0.0.0/-1']) {
      throwsNet(() => parsePrefix(t), NetErrorCode.BAD_ADDRESS);
    }
    throwsNet(() => parseIp(undefined as unknown as string), NetErrorCode.BAD_ADDRESS);
  });

  it('round trip: any IPv4 or IPv6 address formats to text that parses back to it', () => {
    fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (t) => {
      const a = parseIp(t);
      assert.equal(parseIp(formatIp(a)).value, a.value);
    }));
  });
});

describe('policy table', () => {
  it('the most specific rule wins: longest prefix, then narrowest port range, then the later rule', () => {
    const p = new PolicyTable({
      rules: ['* on', '10.0.0.0/8 off', '10.1.0.0/16 on', '10.1.2.3:5432 off', '10.1.2.3:5000-6000 on', '[fd00::]/8:443 off'],
    });
    assert.equal(p.decide('192.0.2.1', 80).smc, true);
    assert.equal(p.decide('10.9.9.9', 80).smc, false);
    assert.equal(p.decide('10.1.9.9', 80).smc, true);
    assert.equal(p.decide('10.1.2.3', 5432).smc, false, 'single port beats the range');
    assert.equal(p.decide('10.1.2.3', 5433).smc, true);
    assert.equal(p.decide('10.1.2.3', 7000).smc, true, 'falls back to the /16');
    assert.equal(p.decide('::ffff:10.9.9.9', 1).smc, false, 'mapped form matches IPv4 rules');
    assert.equal(p.decide('fd12::7', 443).smc, false);
    assert.equal(p.decide('fd12::7', 80).smc, true);
    assert.equal(p.decide('10.1.2.3', 5432).rule?.text, '10.1.2.3/32 port 5432 off');
    p.add('10.1.2.3:5432 on');
    assert.equal(p.decide('10.1.2.3', 5432).smc, true, 'an equal rule added later overrides');
  });

  it('no rule: the default decides (and says so)', () => {
    assert.deepEqual(new PolicyTable().decide('10.0.0.1', 1), { smc: true, rule: undefined });
    assert.equal(new PolicyTable({ defaultSmc: false }).decide('10.0.0.1', 1).smc, false);
  });

  it('rule text parses into prefix, ports and on/off; bad rules are BAD_POLICY with the rule quoted', () => {
    assert.deepEqual(parsePolicyRule('192.168.1.0/24:8000-8999 on'), { prefix: '192.168.1.0/24', ports: [8000, 8999], smc: true });
    assert.deepEqual(parsePolicyRule('[2001:db8::]/32:443 off'), { prefix: '2001:db8::/32', ports: 443, smc: false });
    assert.deepEqual(parsePolicyRule('2001:db8::1 tcp'), { prefix: '2001:db8::1', smc: false });
    for (const t of ['10.0.0.0/8', '10.0.0.0/8 maybe', '10.0.0.0/8:port on', '']) throwsNet(() => parsePolicyRule(t), NetErrorCode.BAD_POLICY);
    const p = new PolicyTable();
    throwsNet(() => p.add('10.0.0.0/8:9000-8000 on'), NetErrorCode.BAD_POLICY);
    throwsNet(() => p.add('10.0.0.0/8:70000 on'), NetErrorCode.BAD_ADDRESS);
    throwsNet(() => p.add({ prefix: '10.0.0.0/8', smc: 'yes' as unknown as boolean }), NetErrorCode.BAD_POLICY);
    throwsNet(() => p.decide('10.0.0.1', -1), NetErrorCode.BAD_ADDRESS);
  });

  it('property: the decision equals the most specific matching rule found by brute force', () => {
    const rule = fc.record({ a: fc.integer({ min: 0, max: 3 }), bits: fc.integer({ min: 0, max: 32 }), port: fc.option(fc.integer({ min: 1, max: 4 })), smc: fc.boolean() });
    fc.assert(fc.property(fc.array(rule, { maxLength: 12 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 4 }), (rules, host, port) => {
      const ip = (n: number): string => `10.${n}.${n}.${n}`;
      const p = new PolicyTable({ defaultSmc: true });
      for (const r of rules) p.add({ prefix: `${ip(r.a)}/${r.bits}`, ...(r.port !== null ? { ports: r.port } : {}), smc: r.smc });
      const addr = parseIp(ip(host)).value;
      let best: { bits: number; width: number; smc: boolean } | undefined;
      for (const r of rules) {
        const pre = parsePrefix(`${ip(r.a)}/${r.bits}`);
        const mask = pre.bits === 0 ? 0n : ((1n << BigInt(pre.bits)) - 1n) << BigInt(128 - pre.bits);
        if ((addr & mask) !== pre.value || (r.port !== null && r.port !== port)) continue;
        const width = r.port === null ? 65535 : 0;
        if (!best || r.bits > best.bits || (r.bits === best.bits && width <= best.width)) best = { bits: r.bits, width, smc: r.smc };
      }
      assert.equal(p.decide(ip(host), port).smc, best?.smc ?? true);
    }));
  });
});

describe('learned block list', () => {
  it('blocks (address, port) for ttlMs, then forgets; the mapped form is the same peer', () => {
    let now = 1000;
    const b = new LearnedBlockList({ ttlMs: 500, now: () => now });
    b.learn('10.0.0.1', 80, 'echo');
    assert.equal(b.blocked('::ffff:10.0.0.1', 80)?.why, 'echo');
    assert.equal(b.blocked('10.0.0.1', 81), undefined, 'other ports are not blocked');
    now = 1499;
    assert.ok(b.blocked('10.0.0.1', 80));
    now = 1500;
    assert.equal(b.blocked('10.0.0.1', 80), undefined);
    assert.deepEqual(b.entries(), []);
  });

  it('is bounded: the oldest entry goes first; re-learning refreshes an entry', () => {
    let now = 0;
    const b = new LearnedBlockList({ ttlMs: 10_000, maxEntries: 3, now: () => now });
    for (let i = 1; i <= 3; i++) b.learn(`10.0.0.${i}`, 1, `n${i}`);
    now = 5;
    b.learn('10.0.0.1', 1, 'again'); // now the newest
    b.learn('10.0.0.4', 1, 'n4'); // evicts 10.0.0.2
    assert.deepEqual(b.entries().map((e) => e.address), ['10.0.0.3', '10.0.0.1', '10.0.0.4']);
    assert.equal(b.blocked('10.0.0.1', 1)?.until, 10_005);
  });

  it('ttlMs 0 disables learning; forget() removes one peer or all; bad options are BAD_OPTION', () => {
    const off = new LearnedBlockList({ ttlMs: 0 });
    assert.equal(off.learn('10.0.0.1', 1, 'x'), undefined);
    assert.equal(off.blocked('10.0.0.1', 1), undefined);
    const b = new LearnedBlockList();
    b.learn('10.0.0.1', 1, 'x');
    b.learn('10.0.0.2', 1, 'x');
    b.forget('10.0.0.1', 1);
    assert.deepEqual(b.entries().map((e) => e.address), ['10.0.0.2']);
    b.forget();
    assert.deepEqual(b.entries(), []);
    throwsNet(() => new LearnedBlockList({ ttlMs: -1 }), NetErrorCode.BAD_OPTION);
    throwsNet(() => new LearnedBlockList({ maxEntries: 0 }), NetErrorCode.BAD_OPTION);
    throwsNet(() => b.learn('nope', 1, 'x'), NetErrorCode.BAD_ADDRESS);
  });
});
