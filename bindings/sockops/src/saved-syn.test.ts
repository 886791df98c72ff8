import assert from 'node:assert/strict';
import net from 'node:net';
import { parseSavedSyn, savedSynCarriesSmc, saveSyn, savedSynOffersSmc } from './saved-syn.js';
import { SockopsError, SockopsErrorCode } from './errors.js';

// Fixtures written by hand from the header layouts (RFC 791, 8200, 9293), not by any encoder here.
const IPV4 = '4500003c12344000400600' + '00c6120001c6120002';
const TCP_FIXED = 'ccb4b7ed' + '01020304' + '00000000';
/** mss 1460, sackOK, TS, nop, wscale 10, SMC, nop, nop: 28 bytes, as Linux sends it (bpf-eval.md 1.3). */
const OPTS_SMC = '020405b4' + '0402' + '080a0000000100000000' + '01' + '03030a' + 'fe06e2d4c3d9' + '0101';
/** The same without the SMC option: 20 bytes. */
const OPTS_PLAIN = '020405b4' + '0402' + '080a0000000100000000' + '01' + '03030a';
const tcp = (opts: string, flags = '02'): string => {
  const doff = (20 + opts.length / 2) / 4;
  return TCP_FIXED + (doff << 4).toString(16).padStart(2, '0') + flags + 'faf0' + '0000' + '0000' + opts;
};
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

const IPV6_TCP = '60000000' + '0000' + '06' + '40' + '20010db8000000000000000000000001' + '20010db8000000000000000000000002';
/** Next header 0 (hop-by-hop), then a hop-by-hop header of 8 bytes pointing at TCP (6) with PadN. */
const IPV6_HBH = '60000000' + '0000' + '00' + '40' + '20010db8000000000000000000000001' + '20010db8000000000000000000000002';
const HBH_TO_TCP = '06' + '00' + '0104' + '00000000';

describe('saved SYN parser', () => {
  it('finds the SMC option in an IPv4 SYN', () => {
    const syn = hex(IPV4 + tcp(OPTS_SMC));
    const parsed = parseSavedSyn(syn)!;
    assert.equal(parsed.tcpOffset, 20);
    assert.equal(parsed.flags, 0x02);
    assert.deepEqual(parsed.options.map((o) => o.kind), [2, 4, 8, 1, 3, 254, 1, 1]);
    assert.equal(savedSynCarriesSmc(syn), true);
  });

  it('reports false for an IPv4 SYN without it', () => {
    assert.equal(savedSynCarriesSmc(hex(IPV4 + tcp(OPTS_PLAIN))), false);
  });

  it('walks IPv6 extension headers to the TCP header', () => {
    const plain6 = hex(IPV6_TCP + tcp(OPTS_SMC));
    assert.equal(parseSavedSyn(plain6)!.tcpOffset, 40);
    assert.equal(savedSynCarriesSmc(plain6), true);
    const hbh = hex(IPV6_HBH + HBH_TO_TCP + tcp(OPTS_SMC));
    assert.equal(parseSavedSyn(hbh)!.tcpOffset, 48);
    assert.equal(savedSynCarriesSmc(hbh), true);
    assert.equal(savedSynCarriesSmc(hex(IPV6_HBH + HBH_TO_TCP + tcp(OPTS_PLAIN))), false);
  });

  it('needs the SYN flag and an exact SMC ExID', () => {
    assert.equal(savedSynCarriesSmc(hex(IPV4 + tcp(OPTS_SMC, '10'))), false);
    const otherExid = OPTS_SMC.replace('fe06e2d4c3d9', 'fe06f9890000');
    assert.equal(savedSynCarriesSmc(hex(IPV4 + tcp(otherExid))), false);
  });

  it('treats a malformed option block as no offer, and non-TCP or truncated input as nothing', () => {
    const badLen = OPTS_SMC.replace('fe06e2d4c3d9', 'fe01e2d4c3d9');
    assert.equal(savedSynCarriesSmc(hex(IPV4 + tcp(badLen))), false);
    assert.equal(parseSavedSyn(hex(IPV4.slice(0, 18) + '11' + IPV4.slice(20) + tcp(OPTS_SMC))), undefined); // UDP
    assert.equal(parseSavedSyn(hex(IPV4 + tcp(OPTS_SMC)).subarray(0, 50)), undefined);
    assert.equal(parseSavedSyn(hex(IPV4 + tcp(OPTS_SMC)).subarray(0, 10)), undefined);
    assert.equal(parseSavedSyn(Buffer.alloc(0)), undefined);
    assert.equal(parseSavedSyn(hex('5' + IPV4.slice(1) + tcp(OPTS_SMC))), undefined); // IP version 5
    assert.equal(savedSynCarriesSmc(hex(IPV6_HBH.slice(0, 12) + '3b' + IPV6_HBH.slice(14) + tcp(OPTS_SMC))), false); // no next header
  });
});

describe('saveSyn / savedSynOffersSmc on loopback (no BPF, no privilege)', () => {
  let server: net.Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  async function accept(withSave: boolean): Promise<{ sock: net.Socket; client: net.Socket }> {
    server = net.createServer();
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    if (withSave) saveSyn(server);
    const accepted = new Promise<net.Socket>((r) => server!.once('connection', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    return { sock: await accepted, client };
  }

  it('reads a plain SYN once: false, then undefined', async function () {
    const { sock, client } = await accept(true);
    try {
      assert.equal(savedSynOffersSmc(sock), false);
      assert.equal(savedSynOffersSmc(sock), undefined);
    } finally {
      client.destroy();
      sock.destroy();
    }
  });

  it('returns undefined when the listener saved nothing', async () => {
    const { sock, client } = await accept(false);
    try {
      assert.equal(savedSynOffersSmc(sock), undefined);
    } finally {
      client.destroy();
      sock.destroy();
    }
  });

  it('refuses objects without an fd with BAD_SOCKET', () => {
    const notListening = net.createServer();
    assert.throws(() => saveSyn(notListening), (e: unknown) => e instanceof SockopsError && e.code === SockopsErrorCode.BAD_SOCKET);
    assert.throws(() => savedSynOffersSmc(new net.Socket()), (e: unknown) => e instanceof SockopsError && e.code === SockopsErrorCode.BAD_SOCKET);
  });
});
