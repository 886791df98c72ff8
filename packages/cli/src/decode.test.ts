import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PcapWriter, buildEthernetIpv4Tcp, buildRoceV2Frame, TcpFlag } from '@smc-r/capture';
import { aethSyndrome, IbOpcode } from '@smc-r/wire';
import { decodeBytes, decodeCapture, type DecodedItem } from './decode.js';
import { decodeInput, DecodeInputError, formatItems, parseHex } from './commands/decode.js';
import { buildSampleHandshake } from './sample.js';
import { main } from './main.js';
import { CAPTURES } from '../../wire/src/testing/clc-samples.js';

const BIN = fileURLToPath(new URL('../bin/smcr.js', import.meta.url));
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const capture = (name: string): Buffer => CAPTURES.find((c) => c.name.startsWith(name))!.bytes;

/**
 * A capture made of real Linux SMC-R bytes: the v1 CLC handshake (hwipl/smc handshake/README.md,
 * captured on loopback) and an LLC CONFIRM_LINK and a CDC captured from Linux (hwipl/smc-go
 * pkg/llc tests), carried in frames we build around them.
 */
function linuxBytesCapture(): Buffer {
  const w = new PcapWriter();
  let ts = 1_600_000_000_000_000_000n;
  const c = { src: '127.0.0.1', dst: '127.0.0.1', sport: 50602, dport: 50000 };
  const s = { src: '127.0.0.1', dst: '127.0.0.1', sport: 50000, dport: 50602 };
  const smcOpt = hex('020405b4 0402 080a 00000001 00000000 01030307 0101fe06e2d4c3d9');
  let cs = 1000;
  let ss = 5000;
  const seg = (fromClient: boolean, flags: number, payload?: Buffer, options?: Buffer): void => {
    const e = fromClient ? c : s;
    w.add(buildEthernetIpv4Tcp({ ...e, seq: fromClient ? cs : ss, ack: fromClient ? ss : cs, flags, ...(payload ? { payload } : {}), ...(options ? { options } : {}) }), (ts += 1000n));
    const n = (payload?.length ?? 0) + (flags & TcpFlag.SYN.value ? 1 : 0);
    if (fromClient) cs += n; else ss += n;
  };
  seg(true, TcpFlag.SYN.value, undefined, smcOpt);
  seg(false, TcpFlag.SYN.value | TcpFlag.ACK.value, undefined, smcOpt);
  seg(true, TcpFlag.ACK.value);
  seg(true, TcpFlag.PSH.value | TcpFlag.ACK.value, capture('proposal v1 smc-r ipv4'));
  seg(false, TcpFlag.PSH.value | TcpFlag.ACK.value, capture('accept v1'));
  seg(true, TcpFlag.PSH.value | TcpFlag.ACK.value, capture('confirm v1'));
  const confirmLink = hex('012c0003 98039babcdef fe80000000000000 9a039bfffeabcdef 000107 00 00010000 02' + '00'.repeat(9));
  const cdc = hex('fe2c0001 00000003 0000 0000 0000000d 0000 0000 00000000 00 00' + '00'.repeat(18));
  const bth = { opcode: IbOpcode.SEND_ONLY.value, se: false, migReq: true, padCnt: 0, tver: 0, pkey: 0xffff, destQp: 0xe5, ackReq: true, psn: 0x72f5fe };
  w.add(buildRoceV2Frame({ src: '10.0.0.1', dst: '10.0.0.2', ib: { bth, payload: confirmLink } }), (ts += 1000n));
  w.add(buildRoceV2Frame({ src: '10.0.0.2', dst: '10.0.0.1', ib: { bth: { ...bth, opcode: IbOpcode.ACKNOWLEDGE.value, destQp: 0xe4, ackReq: false }, aeth: { syndrome: aethSyndrome('ACK', 31), msn: 1 } } }), (ts += 1000n));
  w.add(buildRoceV2Frame({ src: '10.0.0.2', dst: '10.0.0.1', ib: { bth: { ...bth, destQp: 0xe4, psn: 0x0d89a4 }, payload: cdc } }), (ts += 1000n));
  return w.toBuffer();
}

function kinds(items: readonly DecodedItem[]): string[] {
  return items.map((i) => i.kind);
}

describe('smcr decode', () => {
  describe('captures', () => {
    it('decodes real Linux SMC-R bytes: SMC option, v1 CLC handshake, CONFIRM_LINK and CDC', () => {
      const items = decodeCapture(linuxBytesCapture());
      assert.deepEqual(kinds(items), ['tcp-option', 'tcp-option', 'clc', 'clc', 'clc', 'roce', 'llc', 'roce', 'roce', 'cdc']);
      assert.match(items[0]!.summary, /SYN with SMC option/);
      assert.match(items[1]!.summary, /SYN,ACK with SMC option/);
      const [prop, acc, conf] = items.slice(2, 5).map((i) => i.message as Record<string, unknown>);
      assert.equal(prop!.type, 'proposal');
      assert.equal(acc!.type, 'accept');
      assert.equal(acc!.qpn, 0xe4);
      assert.equal(acc!.rmbRkey, 0x157d);
      assert.equal(acc!.firstContact, true);
      assert.equal(conf!.type, 'confirm');
      assert.equal(conf!.qpn, 0xe5);
      assert.equal(conf!.psn, 0x0d89a4);
      assert.equal(items[2]!.frame, 4);
      const link = items[6]!.message as Record<string, unknown>;
      assert.equal(link.type, 'confirm_link');
      assert.equal(link.senderQpn, 0x107);
      const cdc = items[9]!.message as Record<string, unknown>;
      assert.deepEqual(cdc.prod, { wrap: 0, count: 13 });
      assert.equal(cdc.token, 3);
      for (const r of items.filter((i) => i.kind === 'roce')) assert.match(r.summary, /ICRC ok$/);
    });

    it('decodes the sample SMC-Rv2 connection completely, with v2 LLC and every ICRC valid', () => {
      const items = decodeCapture(buildSampleHandshake());
      assert.equal(items.filter((i) => i.kind === 'error').length, 0, formatItems(items.filter((i) => i.kind === 'error')));
      const clc = items.filter((i) => i.kind === 'clc').map((i) => (i.message as { type: string }).type);
      assert.deepEqual(clc, ['proposal', 'accept', 'confirm']);
      const llc = items.filter((i) => i.kind === 'llc').map((i) => i.message as { type: string; v2: boolean; resp: boolean });
      assert.deepEqual(llc.map((m) => [m.type, m.v2, m.resp]), [['confirm_link', true, false], ['confirm_link', true, true]]);
      const cdcs = items.filter((i) => i.kind === 'cdc').map((i) => i.message as { peerConnClosed: boolean });
      assert.deepEqual(cdcs.map((m) => m.peerConnClosed), [false, false, true, true]);
      const roce = items.filter((i) => i.kind === 'roce');
      assert.equal(roce.length, 16);
      for (const r of roce) assert.match(r.summary, /ICRC ok$/);
    });

    it('reports a corrupted ICRC and keeps decoding', () => {
      const pcap = buildSampleHandshake();
      // Flip one payload byte of the first RoCE frame (frame 9): find its first SEND payload byte.
      const items = decodeCapture(pcap);
      const first = items.find((i) => i.kind === 'roce')!;
      const offInFrame = (first.message as { payload: { offset: number } }).payload.offset;
      // pcap: 24-byte file header, then 16-byte record headers; locate frame 9's data start.
      let p = 24;
      for (let f = 1; f < first.frame!; f++) p += 16 + pcap.readUInt32LE(p + 8);
      const bad = Buffer.from(pcap);
      bad[p + 16 + offInFrame + 10]! ^= 0x01;
      const again = decodeCapture(bad);
      const r = again.filter((i) => i.kind === 'roce');
      assert.match(r[0]!.summary, /ICRC BAD$/);
      assert.match(r[1]!.summary, /ICRC ok$/);
    });

    it('does not take plain TCP data for CLC, and reports a truncated capture as an error item', () => {
      const w = new PcapWriter();
      const f = { src: '10.1.1.1', dst: '10.1.1.2', sport: 1234, dport: 80 };
      w.add(buildEthernetIpv4Tcp({ ...f, seq: 1, flags: TcpFlag.SYN.value }), 1n);
      w.add(buildEthernetIpv4Tcp({ ...f, seq: 2, flags: TcpFlag.PSH.value | TcpFlag.ACK.value, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') }), 2n);
      const items = decodeCapture(w.toBuffer());
      assert.deepEqual(kinds(items), ['tcp-option']);
      assert.match(items[0]!.summary, /without SMC option/);
      const cut = decodeCapture(w.toBuffer().subarray(0, 40));
      assert.equal(cut.at(-1)!.kind, 'error');
      assert.match(cut.at(-1)!.error!.code, /^ERR_SMC_CAPTURE_/);
    });
  });

  describe('hex input', () => {
    it('auto-detects CLC, LLC, CDC and TCP options', () => {
      assert.deepEqual(kinds(decodeBytes(capture('decline v1'))), ['clc']);
      const decl = decodeBytes(capture('decline v1'))[0]!;
      assert.match(decl.summary, /^CLC Decline v1 \(28 bytes\) reason 0x03030000$/);
      const cdc = decodeBytes(hex('fe2c0001 00000003 0000 0000 0000000d 0000 0000 00000000 00 00' + '00'.repeat(18)));
      assert.deepEqual(kinds(cdc), ['cdc']);
      const opts = decodeBytes(hex('020405b4 0101fe06e2d4c3d9'));
      assert.deepEqual(opts.map((o) => o.summary), ['TCP option kind 2, length 4', 'TCP option kind 1', 'TCP option kind 1', 'TCP option SMC (kind 254, length 6, ExID 0xe2d4c3d9)']);
    });

    it('decodes several concatenated CLC messages, and says when bytes are left over', () => {
      const both = Buffer.concat([capture('proposal v1 smc-r ipv4'), capture('accept v1'), Buffer.from('e2d4', 'hex')]);
      const items = decodeBytes(both, 'clc');
      assert.deepEqual(kinds(items), ['clc', 'clc', 'note']);
      assert.match(items[2]!.summary, /2 trailing bytes/);
    });

    it('turns malformed bytes into error items with the wire error code and offset', () => {
      const truncated = capture('accept v1').subarray(0, 50);
      const items = decodeBytes(truncated, 'clc');
      assert.equal(items.length, 1);
      // The reader holds an incomplete message: nothing decoded, bytes reported as left over.
      assert.equal(items[0]!.kind, 'note');
      const badLen = Buffer.from(capture('decline v1'));
      badLen.writeUInt16BE(29, 5);
      const e = decodeBytes(Buffer.concat([badLen, Buffer.alloc(1)]), 'clc').find((i) => i.kind === 'error')!;
      assert.equal(e.error!.code, 'ERR_SMC_WIRE_BAD_LENGTH');
      const llc = decodeBytes(hex('012b0003' + '00'.repeat(40)), 'link')[0]!;
      assert.equal(llc.kind, 'error');
      assert.equal(llc.error!.code, 'ERR_SMC_WIRE_BAD_LENGTH');
    });

    it('parseHex accepts spacing, colons and 0x, and rejects the rest with a typed error', () => {
      assert.deepEqual(parseHex('0xe2 d4:c3\nd9'), hex('e2d4c3d9'));
      assert.throws(() => parseHex('e2d4g1'), (e: unknown) => e instanceof DecodeInputError && e.code === 'ERR_SMC_CLI_INPUT' && /"g"/.test(e.message));
      assert.throws(() => parseHex('abc'), { code: 'ERR_SMC_CLI_INPUT' });
      assert.throws(() => parseHex('  '), { code: 'ERR_SMC_CLI_INPUT' });
    });

    it('reads a file of hex as well as a pcap file', () => {
      const dir = mkdtempSync(join(tmpdir(), 'smcr-decode-'));
      try {
        const f = join(dir, 'decline.hex');
        writeFileSync(f, capture('decline v1').toString('hex').replace(/(..)/g, '$1 '));
        assert.deepEqual(kinds(decodeInput(f, { kind: 'auto' })), ['clc']);
        const p = join(dir, 'sample.pcap');
        writeFileSync(p, buildSampleHandshake());
        assert.ok(decodeInput(p, { kind: 'auto' }).length > 20);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('the smcr binary', () => {
    it('prints a tree for hex given as arguments', () => {
      const h = capture('accept v1').toString('hex');
      const out = execFileSync(process.execPath, [BIN, 'decode', h.slice(0, 20), h.slice(20)], { encoding: 'utf8' });
      assert.match(out, /^CLC Accept v1 \(68 bytes\) first contact$/m);
      assert.match(out, /^ {2}qpn: 228 \(0x0000e4\)$/m);
      assert.match(out, /^ {2}gid: fe80::9a03:9bff:feab:cdef$/m);
      assert.match(out, /^ {2}mac: 98:03:9b:ab:cd:ef$/m);
    });

    it('prints JSON from standard input, and exits 3 when something does not decode', () => {
      const ok = spawnSync(process.execPath, [BIN, 'decode', '--json'], { input: capture('decline v1').toString('hex'), encoding: 'utf8' });
      assert.equal(ok.status, 0, ok.stderr);
      const items = JSON.parse(ok.stdout) as { kind: string; message: { peerDiagnosis: number; peerId: string } }[];
      assert.equal(items[0]!.kind, 'clc');
      assert.equal(items[0]!.message.peerDiagnosis, 0x03030000);
      assert.equal(items[0]!.message.peerId, '2525252525252500');
      const bad = spawnSync(process.execPath, [BIN, 'decode', '--kind', 'link', '012b0003' + '00'.repeat(40)], { encoding: 'utf8' });
      assert.equal(bad.status, 3);
      assert.match(bad.stdout, /ERR_SMC_WIRE_BAD_LENGTH/);
    });

    it('rejects bad input and bad options with a message, not a stack trace', async () => {
      const errs: string[] = [];
      const code = await main(['decode', 'zz'], () => {}, (s) => errs.push(s));
      assert.equal(code, 1);
      assert.match(errs.join(''), /not hex: unexpected "z" .*\[ERR_SMC_CLI_INPUT\]/);
      const r = spawnSync(process.execPath, [BIN, 'decode', '--kind', 'nope', 'e2d4'], { encoding: 'utf8' });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /argument 'nope' is invalid/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  });
});
