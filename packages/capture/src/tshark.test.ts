/**
 * tshark (Wireshark 4.0.17 here) as an independent reader: it must read the pcap / pcapng files we
 * write or hand-build, verify the IPv4/TCP/UDP checksums our builders compute, and decode our
 * RoCEv2 frames to the same BTH fields and ICRC bytes. tshark never checks the ICRC itself
 * (oracles.md 3), so that check is ours (verifyIcrc) and tshark only confirms the bytes' position.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SAMPLES } from '../../wire/src/testing/roce-samples.js';
import { buildEthernetIpv4Tcp, buildEthernetIpv4Udp, buildEthernetIpv6Tcp, buildEthernetIpv6Udp, buildRoceV2Frame } from './build.js';
import { LinkType } from './linktype.js';
import { TcpFlag } from './packet.js';
import { PcapWriter } from './pcap.js';
import { PCAP_BE_NS, PCAP_LE_US, PCAPNG_BE, PCAPNG_LE, SYN_FRAME, UDP_FRAME } from './testing/fixtures.js';

const TSHARK = 'tshark';

function tsharkAvailable(): boolean {
  const r = spawnSync(TSHARK, ['--version'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0;
}

/** Runs tshark on `file` and returns one array of tab-separated fields per frame. */
function fields(file: string, names: string[], extra: string[] = []): string[][] {
  const args = ['-n', '-r', file, '-T', 'fields', ...names.flatMap((n) => ['-e', n]), ...extra];
  const r = spawnSync(TSHARK, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `tshark failed: ${r.stderr}`);
  assert.ok(!/damaged|corrupt|appears to have been cut short/i.test(r.stderr), r.stderr);
  return r.stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

const CHECK = ['-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];
/** Wireshark's checksum status values. */
const BAD = '0';
const GOOD = '1';

describe('capture: tshark cross-check (skipped when tshark is not on PATH)', function () {
  let dir = '';

  before(function () {
    if (!tsharkAvailable()) {
      console.log('    tshark is not on PATH: skipping the tshark cross-checks of @smc-r/capture');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'smcr-capture-'));
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads a PcapWriter file and finds every IPv4/TCP/UDP checksum correct', () => {
    const w = new PcapWriter();
    const badTcp = buildEthernetIpv4Tcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, payload: Buffer.from('x') });
    badTcp[badTcp.length - 1] = 0x79; // payload changed after the checksum: tshark must say Bad
    w.add(SYN_FRAME)
      .add(UDP_FRAME)
      .add(buildEthernetIpv4Tcp({ src: '192.0.2.1', dst: '192.0.2.2', sport: 5555, dport: 40000, seq: 0xfffffff0, ack: 77, flags: TcpFlag.ACK.value | TcpFlag.PSH.value, payload: Buffer.from('SMC-R CLC bytes would go here'), ipId: 0xbeef, vlan: 100 }))
      .add(buildEthernetIpv4Udp({ src: '192.0.2.1', dst: '192.0.2.2', sport: 50123, dport: 4791, payload: Buffer.alloc(61, 0xa5), df: false }))
      .add(buildEthernetIpv6Tcp({ src: 'fd00::1', dst: 'fd00::2', sport: 1234, dport: 80, flags: TcpFlag.SYN.value, options: Buffer.from('020405a0', 'hex') }))
      .add(buildEthernetIpv6Udp({ src: 'fd00::1', dst: 'fe80::2', sport: 53, dport: 53, payload: Buffer.from('odd') }))
      .add(badTcp);
    const file = join(dir, 'checksums.pcap');
    writeFileSync(file, w.toBuffer());
    const rows = fields(file, ['frame.number', 'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status'], CHECK);
    assert.deepEqual(rows, [
      ['1', GOOD, GOOD, ''],
      ['2', GOOD, '', GOOD],
      ['3', GOOD, GOOD, ''],
      ['4', GOOD, '', GOOD],
      ['5', '', GOOD, ''],
      ['6', '', '', GOOD],
      ['7', GOOD, BAD, ''],
    ]);
    const smc = fields(file, ['tcp.options.experimental.exid', 'tcp.options.experimental.data'], ['-Y', 'frame.number == 1']);
    assert.deepEqual(smc, [['0xe2d4', 'c3d9']]); // -T fields prints bytes without colons
  });

  it('reads the hand-written pcap and pcapng golden files', () => {
    const cases: [string, Buffer, string[][]][] = [
      ['le-us.pcap', PCAP_LE_US, [['1', '1700000000.123456000', '47', '12345']]],
      ['be-ns.pcap', PCAP_BE_NS, [['1', '1700000000.123456789', '33', '12345']]],
      ['le.pcapng', PCAPNG_LE, [['1', '1700000000.123456000', '47', '12345'], ['2', '1700000000.123456789', '33', '12345'], ['3', '', '47', '12345']]],
      ['be.pcapng', PCAPNG_BE, [['1', '1700000000.123456000', '33', '12345']]],
    ];
    for (const [name, bytes, want] of cases) {
      const file = join(dir, name);
      writeFileSync(file, bytes);
      assert.deepEqual(fields(file, ['frame.number', 'frame.time_epoch', 'frame.len', 'udp.srcport']), want, name);
    }
  });

  it('decodes our RoCEv2 frames to the same BTH fields and ICRC bytes', () => {
    const w = new PcapWriter({ linkType: LinkType.ETHERNET.value });
    const frames = SAMPLES.map((s, i) => buildRoceV2Frame({ src: '10.0.0.1', dst: '10.0.0.2', sport: 49152 + i, ib: s.msg }));
    frames.push(buildRoceV2Frame({ src: 'fd00::1', dst: 'fd00::2', ib: SAMPLES[0]!.msg }));
    for (const f of frames) w.add(f);
    const file = join(dir, 'roce.pcap');
    writeFileSync(file, w.toBuffer());
    const rows = fields(file, ['infiniband.bth.opcode', 'infiniband.bth.psn', 'infiniband.bth.destqp', 'infiniband.bth.padcnt', 'infiniband.invariant.crc', 'udp.checksum.status'], CHECK);
    assert.equal(rows.length, frames.length);
    rows.forEach((row, i) => {
      const msg = (SAMPLES[i] ?? SAMPLES[0]!).msg;
      const f = frames[i]!;
      assert.deepEqual(row, [
        String(msg.bth.opcode),
        String(msg.bth.psn),
        `0x${msg.bth.destQp.toString(16).padStart(6, '0')}`,
        String(msg.bth.padCnt),
        `0x${f.subarray(f.length - 4).toString('hex')}`, // tshark reads the ICRC bytes big-endian
        GOOD,
      ], SAMPLES[i]?.name ?? 'IPv6');
    });
    // The CDC and LLC SENDs reach tshark's SMC dissector (exact 44-byte payloads).
    const smc = fields(file, ['frame.number', 'smc.llc_msg'], ['-Y', 'smc']);
    assert.deepEqual(smc.map((r) => r[1]), ['0xfe', '0x07', '0xfe', '0xfe', '0xfe']);
  });
});
