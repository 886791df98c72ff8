/**
 * Interop with the Linux kernel's SMC-R: Debian's 6.1 in qemu over rdma_rxe, both directions.
 * Our side (agent.ts: SmcEngine + softroce, SMC-Rv2, the guest's UEID) runs in the namespace and
 * speaks RoCEv2 to the guest's rxe; the guest runs smc_test (AF_SMC echo server / client) and
 * reports through smc_diag what the kernel thinks of each connection.
 *
 * Cases: Decline paths (guest without UEID, guest without a pnet entry = no SMC device for eth0)
 * in both directions, with our reason codes compared to the kernel's smc_diag; kernel server <- our
 * client (16 MiB each way, sha256 on both sides, orderly close); a second connection reusing the
 * link group; our server <- kernel client (16 MiB each way). The Decline cases run first, on a
 * guest without link groups. smc_test keeps fallen-back sockets open (README, "Known issues"). The tap is
 * captured throughout, and every CLC / LLC / CDC message in the capture must decode with our
 * decoder (smcr decode's engine) with every ICRC valid.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { decodeCapture, type DecodedItem } from '@smc-r/cli';
import { SmcReason } from '@smc-r/wire';
import { RpcChild, Child } from '../softroce/support/child.js';
import { Tcpdump } from '../support/tcpdump.js';
import type { EchoResult, Outcome, TransferResult } from './agent.js';
import { hex32, parseResults, PNETID, UEID, useInteropGuest, waitFor, type GuestResult } from './harness/suite.js';

const MiB = 1024 * 1024;
const BULK = 16 * MiB;
const AGENT = new URL('./agent.ts', import.meta.url).pathname;

describe('interop: our SMC-Rv2 against the Linux 6.1 kernel (qemu, rdma_rxe)', function () {
  this.timeout(120_000);
  let agent: RpcChild | undefined;
  let dump: Tcpdump | undefined;
  let pcap = '';
  const env = useInteropGuest(async (e) => {
    await e.guest.run(`smc_nl ueid-add ${UEID}`);
    await e.guest.run(`smc_nl pnet-add ${PNETID} eth0 rxe0 1`);
    pcap = join(e.dir, 'interop.pcap');
    e.captures.push(pcap);
    dump = new Tcpdump(pcap, e.net.tap, 'tcp or udp port 4791', e.net.ns, 2048);
    await dump.start();
    // The agent's negotiator (mode bpf) moves it into its own cgroup and attaches the sock_ops program.
    const [cmd, args] = e.net.wrap(process.execPath, ['--import', 'tsx', AGENT]);
    const child = new Child(cmd, args, 280_000, 'interop-agent');
    e.onFailure.push(() => `--- agent stderr (tail) ---\n${child.stderr.slice(-3000)}`);
    agent = new RpcChild(child);
    const opened = await agent.call<{ negotiator: string; ipHeader: string; ipHeaderNote?: string }>('open', { ip: e.net.hostIp, ueid: UEID });
    process.stdout.write(`      agent: negotiator ${opened.negotiator}, IP header ${opened.ipHeader}${opened.ipHeaderNote ? ` (${opened.ipHeaderNote})` : ''}\n`);
    assert.equal(opened.ipHeader, 'id0-df', 'softroce must send IP ID 0 + DF, or rxe drops every packet (koffi missing?)');
  });

  after(async () => {
    try {
      await agent?.call('shutdown', {}, 15_000);
      await agent?.close(15_000);
    } catch {
      agent?.child.kill();
    }
    await dump?.stop();
  });

  const guestLog = (f: string): Promise<string> => env.guest.run(`cat ${f} 2>/dev/null || true`);
  const results = async (f: string, n: number): Promise<GuestResult[]> =>
    parseResults(await waitFor(() => guestLog(f), (s) => parseResults(s).length >= n, 60_000, `${n} RESULT line(s) in ${f}`));

  async function startServer(port: number, log: string): Promise<void> {
    await env.guest.run(`smc_test server ${port} 0 > ${log} 2>&1 &`);
    await waitFor(() => guestLog(log), (s) => s.includes('LISTENING'), 10_000, 'the guest AF_SMC server');
  }

  /** Sets the guest's UEID table and pnet table (idempotent: flush, then add what is wanted). */
  async function guestConfig(c: { ueid: boolean; pnet: boolean }): Promise<void> {
    await env.guest.run('smc_nl ueid-flush');
    if (c.ueid) await env.guest.run(`smc_nl ueid-add ${UEID}`);
    await env.guest.run('smc_nl pnet-flush');
    if (c.pnet) await env.guest.run(`smc_nl pnet-add ${PNETID} eth0 rxe0 1`);
  }

  let firstLgr: number | undefined;

  /** Our client against the guest server after `setup`; returns both views. */
  async function declineAsClient(port: number, log: string): Promise<{ ours: Outcome; kernel: GuestResult }> {
    await startServer(port, log);
    const ours = await agent!.call<Outcome>('connect', { host: env.net.guestIp, port }, 30_000);
    if (ours.mode === 'tcp') await agent!.call('fallbackClose', { conn: ours.conn });
    const [kernel] = await results(log, 1);
    return { ours, kernel: kernel! };
  }

  /** The guest's client against our server after `setup`. */
  async function declineAsServer(port: number, log: string): Promise<{ ours: Outcome; kernel: GuestResult }> {
    await agent!.call('listen', { host: env.net.hostIp, port });
    await env.guest.run(`smc_test client ${env.net.hostIp} ${port} 4096 9 > ${log} 2>&1 &`);
    const ours = await agent!.call<Outcome>('accepted', {}, 30_000);
    await agent!.call<EchoResult>('echo', { conn: ours.conn }, 30_000);
    const [kernel] = await results(log, 1);
    return { ours, kernel: kernel! };
  }

  it('Decline, guest without a UEID: kernel server declines our SMC-Rv2 Proposal, codes match', async () => {
    await guestConfig({ ueid: false, pnet: true });
    {
      const { ours, kernel } = await declineAsClient(5002, '/tmp/srv-noueid.log');
      assert.equal(ours.mode, 'tcp');
      assert.equal(kernel.mode, 'TCP');
      assert.equal(hex32(ours.reason), hex32(SmcReason.PEERDECL.code));
      assert.notEqual(kernel.reason, 0);
      assert.equal(hex32(ours.peerDiagnosis), hex32(kernel.reason), 'our peer diagnosis is the kernel server\'s reason');
      process.stdout.write(`      kernel server reason ${hex32(kernel.reason)}; ours ${hex32(ours.reason)}/${hex32(ours.peerDiagnosis)}\n`);
    }
  });

  it('Decline, guest without a UEID: the kernel client declines first, codes match', async () => {
    await guestConfig({ ueid: false, pnet: true });
    {
      const { ours, kernel } = await declineAsServer(6002, '/tmp/cli-noueid.log');
      assert.equal(ours.mode, 'tcp');
      assert.equal(kernel.mode, 'TCP');
      assert.equal(hex32(ours.reason), hex32(SmcReason.PEERDECL.code));
      assert.equal(hex32(ours.peerDiagnosis), hex32(kernel.reason), 'our peer diagnosis is the kernel client\'s reason');
      assert.equal(kernel.mismatch, -1, 'the data still flowed over TCP');
      process.stdout.write(`      kernel client reason ${hex32(kernel.reason)}; ours ${hex32(ours.reason)}/${hex32(ours.peerDiagnosis)}\n`);
    }
  });

  it('Decline, guest without a pnet entry (no SMC device for eth0): kernel server, codes match', async () => {
    await guestConfig({ ueid: true, pnet: false });
    const a = await declineAsClient(5003, '/tmp/srv-nodev.log');
    assert.equal(a.ours.mode, 'tcp');
    assert.equal(a.kernel.mode, 'TCP');
    assert.equal(hex32(a.ours.reason), hex32(SmcReason.PEERDECL.code));
    assert.equal(hex32(a.ours.peerDiagnosis), hex32(a.kernel.reason), 'kernel server reason = our peer diagnosis');
    process.stdout.write(`      kernel server ${hex32(a.kernel.reason)}; ours ${hex32(a.ours.reason)}/${hex32(a.ours.peerDiagnosis)}\n`);
    await guestConfig({ ueid: true, pnet: true });
  });

  it('Decline, guest without a pnet entry: the kernel client declines first, codes match', async () => {
    await guestConfig({ ueid: true, pnet: false });
    const b = await declineAsServer(6003, '/tmp/cli-nodev.log');
    assert.equal(b.ours.mode, 'tcp');
    assert.equal(b.kernel.mode, 'TCP');
    assert.equal(hex32(b.ours.peerDiagnosis), hex32(b.kernel.reason), 'kernel client reason = our peer diagnosis');
    await guestConfig({ ueid: true, pnet: true });
  });

  it('kernel server <- our client: SMC-Rv2 first contact, 16 MiB each way with sha256, orderly close', async () => {
    await startServer(5001, '/tmp/srv1.log');
    const o = await agent!.call<Outcome>('connect', { host: env.net.guestIp, port: 5001 }, 30_000);
    assert.equal(o.mode, 'smcr', `fell back: ${hex32(o.reason)}/${hex32(o.peerDiagnosis)} ${o.detail ?? ''}`);
    assert.equal(o.peerSmc, true, 'the kernel\'s SYN / SYN-ACK carried the SMC option (read by our sock_ops program)');
    assert.equal(o.version, 2);
    assert.equal(o.firstContact, true);
    firstLgr = o.lgrId;
    const t = await agent!.call<TransferResult>('transfer', { conn: o.conn, bytes: BULK, seed: 1 }, 110_000);
    assert.deepEqual(t.errors, []);
    assert.equal(t.sent, BULK);
    assert.equal(t.received, BULK);
    assert.equal(t.firstMismatch, -1, 'the echo differs from what we sent');
    assert.equal(t.sha256Received, t.sha256Sent);
    const [g] = await results('/tmp/srv1.log', 1);
    assert.equal(g!.mode, 'SMCR', 'smc_diag: the kernel used SMC-R');
    assert.equal(g!.ibdev, 'rxe0');
    assert.equal(g!.lgrRole, 'server');
    assert.equal(g!.rx, BULK);
    assert.equal(g!.rxSha256, t.sha256Sent, 'the kernel received exactly what we sent');
    assert.equal(g!.err, '0', 'orderly close on the kernel side (no error on read/write)');
    process.stdout.write(`      16 MiB echoed in ${t.ms} ms (${(2 * BULK / MiB / (t.ms / 1000)).toFixed(1)} MiB/s both directions)\n`);
  });

  it('a second connection reuses the link group (no first contact), 1 MiB each way', async function () {
    if (firstLgr === undefined) this.skip();
    const o = await agent!.call<Outcome>('connect', { host: env.net.guestIp, port: 5001 }, 30_000);
    assert.equal(o.mode, 'smcr', `fell back: ${hex32(o.reason)}/${hex32(o.peerDiagnosis)} ${o.detail ?? ''}`);
    assert.equal(o.peerSmc, true, 'the kernel\'s SYN / SYN-ACK carried the SMC option (read by our sock_ops program)');
    assert.equal(o.firstContact, false, 'the kernel server reused the link group');
    assert.equal(o.lgrId, firstLgr);
    const t = await agent!.call<TransferResult>('transfer', { conn: o.conn, bytes: MiB, seed: 2 }, 60_000);
    assert.equal(t.firstMismatch, -1);
    assert.equal(t.received, MiB);
    const [, g] = await results('/tmp/srv1.log', 2);
    assert.equal(g!.mode, 'SMCR');
    assert.equal(g!.rxSha256, t.sha256Sent);
  });

  it('our server <- kernel client: SMC-Rv2, 16 MiB each way with sha256, orderly close', async () => {
    await agent!.call('listen', { host: env.net.hostIp, port: 6001 });
    await env.guest.run(`smc_test client ${env.net.hostIp} 6001 ${BULK} 7 > /tmp/cli1.log 2>&1 &`);
    const o = await agent!.call<Outcome>('accepted', {}, 30_000);
    assert.equal(o.mode, 'smcr', `fell back: ${hex32(o.reason)}/${hex32(o.peerDiagnosis)} ${o.detail ?? ''}`);
    assert.equal(o.peerSmc, true, 'the kernel\'s SYN / SYN-ACK carried the SMC option (read by our sock_ops program)');
    assert.equal(o.version, 2);
    assert.equal(o.firstContact, true);
    const e = await agent!.call<EchoResult>('echo', { conn: o.conn }, 110_000);
    assert.deepEqual(e.errors, []);
    assert.equal(e.received, BULK);
    const [g] = await results('/tmp/cli1.log', 1);
    assert.equal(g!.mode, 'SMCR');
    assert.equal(g!.lgrRole, 'client');
    assert.equal(g!.tx, BULK);
    assert.equal(g!.rx, BULK);
    assert.equal(g!.mismatch, -1, 'the kernel got back exactly what it sent');
    assert.equal(g!.txSha256, e.sha256, 'we received exactly what the kernel sent');
    assert.equal(g!.err, '0');
    process.stdout.write(`      kernel client: 16 MiB echoed in ${e.ms} ms\n`);
  });

  it('our decoder decodes every CLC / LLC / CDC message of the capture, every ICRC valid', async function () {
    this.timeout(120_000);
    await agent!.call('shutdown', {}, 15_000); // DELETE_LINK on the wire
    await new Promise((r) => setTimeout(r, 500));
    await dump!.stop();
    const items: DecodedItem[] = decodeCapture(readFileSync(pcap));
    const errors = items.filter((i) => i.kind === 'error');
    assert.deepEqual(errors.slice(0, 5).map((i) => `frame ${i.frame}: ${i.summary}`), [], `${errors.length} decode errors`);
    const count = (k: string): number => items.filter((i) => i.kind === k).length;
    const clc = items.filter((i) => i.kind === 'clc').map((i) => i.summary);
    for (const t of ['Proposal', 'Accept', 'Confirm', 'Decline']) assert.ok(clc.some((s) => s.includes(t)), `a CLC ${t} in the capture`);
    const llc = new Set(items.filter((i) => i.kind === 'llc').map((i) => i.summary.split(' ')[1]));
    for (const t of ['CONFIRM_LINK_V2', 'ADD_LINK_V2', 'CONFIRM_RKEY_V2', 'DELETE_LINK_V2']) assert.ok(llc.has(t), `LLC ${t} in the capture (have ${[...llc].join(', ')})`);
    assert.ok(count('cdc') > 100, 'CDC messages');
    const badIcrc = items.filter((i) => i.kind === 'roce' && /ICRC (bad|invalid)/i.test(i.summary));
    assert.deepEqual(badIcrc.slice(0, 3).map((i) => i.frame), []);
    process.stdout.write(`      decoded ${items.length} items: ${count('clc')} CLC, ${count('llc')} LLC, ${count('cdc')} CDC, ${count('roce')} RoCE packets\n`);
  });
});
