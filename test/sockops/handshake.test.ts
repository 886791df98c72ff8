/**
 * The sock_ops program on a real kernel, between separate processes (each SMC peer holds its own
 * program in its own cgroup, like two hosts): SMC<->SMC, SMC<->plain, plain<->SMC, SMC<->an echoing
 * server, on loopback (IPv4 and ::1) and across a veth pair between two namespaces, plus a
 * destination that was not offered (loopback) and a syncookie SYN-ACK (veth). A capture decoded by
 * tshark (the independent oracle, oracles.md 2) shows the option bytes fe06e2d4c3d9 in each SYN and
 * SYN-ACK where expected and their absence elsewhere; every program's cgroup is gone after close.
 *
 * Needs root, tcpdump, tshark, nsenter and iproute2; skips and says why otherwise.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsPair } from '../support/netns.js';
import { Tcpdump } from '../support/tcpdump.js';
import { requireOrSkip } from '../support/tools.js';
import { RpcChild, runChild } from '../softroce/support/child.js';

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));
const SMC_OPTION = 'fe06e2d4c3d9';

interface PeerState {
  peerSmc: boolean;
  sentSmc: boolean;
  role: 'active' | 'passive';
  loadRet: number;
}
interface Accepted {
  peerState: PeerState | null;
  savedSyn: boolean | null;
}
interface ConnectResult {
  peerState: PeerState | null;
  echoed: string | null;
}

/** Starts an agent, in namespace `ns` when given (nsenter keeps the mounts, so cgroup2 stays visible). */
async function startAgent(name: string, ns?: string): Promise<RpcChild> {
  const node = [process.execPath, '--import', 'tsx', AGENT];
  const child = ns === undefined
    ? runChild([node[0]!, node.slice(1)], 180_000, name)
    : runChild(['nsenter', [`--net=/run/netns/${ns}`, ...node]], 180_000, name);
  await child.waitLine((l) => l === 'ready', 30_000);
  return new RpcChild(child);
}

/** One SYN or SYN-ACK as tshark decoded it. */
interface SynFrame {
  src: number;
  dst: number;
  ack: boolean;
  experimental: string[];
  options: string;
}

function synFrames(pcap: string): SynFrame[] {
  const out = execFileSync('tshark', [
    '-n', '-r', pcap, '-Y', 'tcp.flags.syn == 1', '-T', 'fields',
    '-e', 'tcp.srcport', '-e', 'tcp.dstport', '-e', 'tcp.flags.ack', '-e', 'tcp.options.experimental', '-e', 'tcp.options',
    '-E', 'occurrence=a', '-E', 'aggregator=|', '-E', 'separator=/t',
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((l) => l.trim() !== '').map((l) => {
    const [src, dst, ack, exp, opts] = l.split('\t');
    return {
      src: Number(src),
      dst: Number(dst),
      ack: ack === '1' || ack === 'True',
      experimental: (exp ?? '').split('|').filter((x) => x !== '').map((x) => x.replace(/:/g, '')),
      options: (opts ?? '').replace(/[:|]/g, ''),
    };
  });
}

/** Asserts the handshake to `port` carried the option in SYN / SYN-ACK exactly as expected. */
function assertWire(frames: SynFrame[], port: number, syn: boolean, synAck: boolean, label: string): void {
  const s = frames.filter((f) => f.dst === port && !f.ack);
  const sa = frames.filter((f) => f.src === port && f.ack);
  assert.ok(s.length >= 1, `${label}: no SYN to port ${port} captured`);
  assert.ok(sa.length >= 1, `${label}: no SYN-ACK from port ${port} captured`);
  for (const [list, want, what] of [[s, syn, 'SYN'], [sa, synAck, 'SYN-ACK']] as const) {
    for (const f of list) {
      if (want) {
        assert.deepEqual(f.experimental, [SMC_OPTION], `${label}: ${what} should carry kind 254 len 6 E2D4C3D9 once`);
        assert.ok(f.options.includes(SMC_OPTION), `${label}: ${what} option bytes ${f.options}`);
      } else {
        assert.deepEqual(f.experimental, [], `${label}: ${what} should carry no experimental option`);
        assert.ok(!f.options.includes('fe06e2d4'), `${label}: ${what} option bytes ${f.options}`);
      }
    }
  }
}

interface Transport {
  name: string;
  /** Addresses the servers listen on / clients connect to; several for loopback (IPv4, IPv6). */
  hosts: string[];
  setup(): { clientNs?: string; serverNs?: string; captureIface: string; captureNs?: string; destroy(): void; pair?: NetnsPair };
}

const TRANSPORTS: Transport[] = [
  {
    name: 'loopback',
    hosts: ['127.0.0.1', '::1'],
    setup: () => ({ captureIface: 'lo', destroy: () => {} }),
  },
  {
    name: 'veth between two namespaces',
    hosts: [],
    setup: () => {
      const pair = NetnsPair.create();
      return { pair, clientNs: pair.a.ns, serverNs: pair.b.ns, captureIface: pair.a.dev, captureNs: pair.a.ns, destroy: () => pair.destroy() };
    },
  },
];

for (const t of TRANSPORTS) {
  describe(`sock_ops SMC option on the wire: ${t.name}`, function () {
    this.timeout(60_000);
    let env: ReturnType<Transport['setup']> | undefined;
    let dir: string | undefined;
    let capture: Tcpdump | undefined;
    const agents: Record<'smcClient' | 'plainClient' | 'smcServer' | 'plainServer', RpcChild | undefined> = { smcClient: undefined, plainClient: undefined, smcServer: undefined, plainServer: undefined };
    const cgroups: string[] = [];
    /** Server ports per case and host, for the capture check. */
    const wire: { label: string; port: number; syn: boolean; synAck: boolean }[] = [];
    let hosts: string[] = t.hosts;

    before(async function () {
      requireOrSkip(this, { root: true, tools: ['tcpdump', 'tshark', 'nsenter', 'ip'] });
      env = t.setup();
      if (env.pair !== undefined) hosts = [env.pair.b.ip];
      dir = mkdtempSync(join(tmpdir(), 'smcr-sockops-wire-'));
      [agents.smcClient, agents.plainClient, agents.smcServer, agents.plainServer] = await Promise.all([
        startAgent('smc client', env.clientNs),
        startAgent('plain client', env.clientNs),
        startAgent('smc server', env.serverNs),
        startAgent('plain server', env.serverNs),
      ]);
      for (const a of [agents.smcClient!, agents.smcServer!]) cgroups.push((await a.call<{ cgroupPath: string }>('open')).cgroupPath);
      capture = new Tcpdump(join(dir, 'syn.pcap'), env.captureIface, 'tcp', env.captureNs);
      await capture.start();
    });

    after(async () => {
      await capture?.stop();
      for (const a of Object.values(agents)) {
        if (a === undefined) continue;
        try {
          await a.close(10_000);
        } catch {
          a.child.kill();
        }
      }
      env?.destroy();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    const listen = async (agent: RpcChild, host: string, opts: { mode: 'report' | 'echo'; smc: boolean; saveSyn: boolean }): Promise<number> =>
      (await agent.call<{ port: number }>('listen', { host, ...opts })).port;

    it('SMC -> SMC: both sides read peerSmc, SYN and SYN-ACK carry the option', async () => {
      for (const host of hosts) {
        const port = await listen(agents.smcServer!, host, { mode: 'report', smc: true, saveSyn: false });
        const c = await agents.smcClient!.call<ConnectResult>('connect', { host, port, offer: true });
        assert.deepEqual(c.peerState, { peerSmc: true, sentSmc: true, role: 'active', loadRet: 6 }, host);
        const [s] = await agents.smcServer!.call<Accepted[]>('accepted', { port, count: 1 });
        assert.deepEqual(s!.peerState, { peerSmc: true, sentSmc: true, role: 'passive', loadRet: 6 }, host);
        wire.push({ label: `SMC->SMC ${host}`, port, syn: true, synAck: true });
      }
    });

    it('SMC -> plain: the client reads peerSmc=false (ENOMSG); the plain server sees the offer in TCP_SAVED_SYN', async () => {
      for (const host of hosts) {
        const port = await listen(agents.plainServer!, host, { mode: 'report', smc: false, saveSyn: true });
        const c = await agents.smcClient!.call<ConnectResult>('connect', { host, port, offer: true });
        assert.deepEqual(c.peerState, { peerSmc: false, sentSmc: true, role: 'active', loadRet: -42 }, host);
        const [s] = await agents.plainServer!.call<Accepted[]>('accepted', { port, count: 1 });
        assert.deepEqual(s, { peerState: null, savedSyn: true }, host);
        wire.push({ label: `SMC->plain ${host}`, port, syn: true, synAck: false });
      }
    });

    it('plain -> SMC: the server reads peerSmc=false and does not echo the option', async () => {
      for (const host of hosts) {
        const port = await listen(agents.smcServer!, host, { mode: 'report', smc: true, saveSyn: false });
        const c = await agents.plainClient!.call<ConnectResult>('connect', { host, port, offer: false });
        assert.equal(c.peerState, null);
        const [s] = await agents.smcServer!.call<Accepted[]>('accepted', { port, count: 1 });
        assert.deepEqual(s!.peerState, { peerSmc: false, sentSmc: false, role: 'passive', loadRet: -42 }, host);
        wire.push({ label: `plain->SMC ${host}`, port, syn: false, synAck: false });
      }
    });

    it('SMC -> echoing server: the option is reflected, so the client reads peerSmc=true (CLC must catch it)', async () => {
      for (const host of hosts) {
        const port = await listen(agents.smcServer!, host, { mode: 'echo', smc: true, saveSyn: false });
        const payload = `not CLC ${host}`;
        const c = await agents.smcClient!.call<ConnectResult>('connect', { host, port, offer: true, payload });
        assert.deepEqual(c.peerState, { peerSmc: true, sentSmc: true, role: 'active', loadRet: 6 }, host);
        assert.equal(c.echoed, payload, 'the application is plain TCP: it echoes');
        wire.push({ label: `SMC->echo ${host}`, port, syn: true, synAck: true });
      }
    });

    if (t.name === 'loopback') {
      it('a destination that was not offered gets no option, even from a process with the program', async () => {
        const host = hosts[0]!;
        const port = await listen(agents.smcServer!, host, { mode: 'report', smc: true, saveSyn: false });
        const c = await agents.smcClient!.call<ConnectResult>('connect', { host, port, offer: false });
        assert.equal(c.peerState, null, 'no record: the socket was not opted in');
        const [s] = await agents.smcServer!.call<Accepted[]>('accepted', { port, count: 1 });
        assert.deepEqual(s!.peerState, { peerSmc: false, sentSmc: false, role: 'passive', loadRet: -42 });
        wire.push({ label: 'SMC (not offered) -> SMC', port, syn: false, synAck: false });
      });
    } else {
      it('a syncookie SYN-ACK never carries the option, and both sides then read false', async () => {
        const host = hosts[0]!;
        NetnsPair.exec(env!.serverNs!, 'sysctl', ['-q', '-w', 'net.ipv4.tcp_syncookies=2']);
        try {
          const port = await listen(agents.smcServer!, host, { mode: 'report', smc: true, saveSyn: false });
          const c = await agents.smcClient!.call<ConnectResult>('connect', { host, port, offer: true });
          assert.deepEqual(c.peerState, { peerSmc: false, sentSmc: true, role: 'active', loadRet: -42 });
          const [s] = await agents.smcServer!.call<Accepted[]>('accepted', { port, count: 1 });
          assert.deepEqual(s!.peerState, { peerSmc: false, sentSmc: false, role: 'passive', loadRet: -2 }, 'no SYN saved in cookie mode: ENOENT');
          const stats = await agents.smcServer!.call<Record<string, number>>('stats');
          assert.ok(stats['synackCookieSkipped']! >= 1, JSON.stringify(stats));
          wire.push({ label: 'SMC->SMC with syncookies', port, syn: true, synAck: false });
        } finally {
          NetnsPair.exec(env!.serverNs!, 'sysctl', ['-q', '-w', 'net.ipv4.tcp_syncookies=1']);
        }
      });
    }

    it('counts what it did', async () => {
      const c = await agents.smcClient!.call<Record<string, number>>('stats');
      const s = await agents.smcServer!.call<Record<string, number>>('stats');
      const n = hosts.length;
      assert.ok(c['synWritten']! >= 3 * n, JSON.stringify(c));
      assert.ok(c['activePeerSmc']! >= 2 * n && c['activePeerPlain']! >= n, JSON.stringify(c));
      assert.ok(s['synackWritten']! >= 2 * n && s['passivePeerSmc']! >= n && s['passivePeerPlain']! >= n, JSON.stringify(s));
      for (const st of [c, s]) assert.equal(st['synEnospc']! + st['synackEnospc']! + st['storeFailed']! + st['storageFailed']! + st['cbFlagsFailed']!, 0);
    });

    it('the capture shows the option bytes exactly where expected (tshark)', async () => {
      await capture!.stop();
      const frames = synFrames(capture!.file);
      assert.ok(wire.length >= 4);
      for (const w of wire) assertWire(frames, w.port, w.syn, w.synAck, w.label);
    });

    it('close() removes each program cgroup', async () => {
      for (const a of [agents.smcClient!, agents.smcServer!]) {
        const r = await a.call<{ cgroupPath: string; cgroupExists: boolean }>('close');
        assert.ok(cgroups.includes(r.cgroupPath));
        assert.equal(r.cgroupExists, false, `${r.cgroupPath} still exists`);
      }
    });
  });
}
