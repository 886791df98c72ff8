/**
 * The negotiator in mode bpf on the real kernel (root): the sock_ops program of @smc-r/sockops puts
 * the SMC option on the wire, dial()/answer() read the verdict and run the engine (mem provider),
 * and a capture on lo, read by tshark, shows which SYN and SYN-ACK carried the option:
 * SMC <-> SMC, SMC -> plain server, plain client -> SMC server, SMC -> an echoing server (learned,
 * so the second SYN carries no option), and SMC client -> saved-syn server.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SmcOutcome } from '@smc-r/core';
import { Negotiator, answer, dial } from '../../packages/net/src/index.js';
import { sockopsAvailability } from '@smc-r/sockops';
import { SmcReason } from '@smc-r/wire';
// The fixtures are source (packages/net/src/testing), so the negotiator comes from the same module
// instance: its sock_ops program is one per process, shared through that module.
import { NegotiatorWorld } from '../../packages/net/src/testing/world.js';
import { Tcpdump } from '../support/tcpdump.js';
import { haveTool } from '../support/tools.js';

const TIMERS = { TEST_LINK_INTERVAL: 0, CLC_WAIT: 800, CLC_WAIT_SHORT: 150, LLC_WAIT: 400, LLC_WAIT_FIRST_CLIENT: 500 } as const;

interface Syn {
  readonly synAck: boolean;
  readonly srcPort: number;
  readonly dstPort: number;
  /** The option's bytes after kind and length when an SMC option (ExID E2D4 C3D9) was there. */
  readonly smc: boolean;
}

/** SYNs and SYN-ACKs of the capture as tshark decodes them. */
function syns(pcap: string): Syn[] {
  const out = execFileSync('tshark', [
    '-n', '-r', pcap, '-Y', 'tcp.flags.syn == 1', '-T', 'fields', '-E', 'separator=/t',
    '-e', 'tcp.flags.ack', '-e', 'tcp.srcport', '-e', 'tcp.dstport', '-e', 'tcp.options.experimental.exid', '-e', 'tcp.options.experimental.data',
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((l) => l.trim() !== '').map((l) => {
    const [ack, sp, dp, exid = '', data = ''] = l.split('\t');
    return { synAck: ack === '1' || ack === 'True', srcPort: Number(sp), dstPort: Number(dp), smc: exid === '0xe2d4' && data.replace(/:/g, '') === 'c3d9' };
  });
}

describe('negotiator, mode bpf (real kernel, root): the SMC option on the wire and what each side concludes', function () {
  this.timeout(30_000);
  let w: NegotiatorWorld;
  let dir: string;
  let dump: Tcpdump | undefined;

  before(function () {
    const missing: string[] = [];
    const av = sockopsAvailability();
    if (!av.ok) missing.push(`the sock_ops program cannot be loaded: ${av.missing}`);
    for (const t of ['tcpdump', 'tshark']) if (!haveTool(t)) missing.push(`${t} not installed (npm test installs it as root)`);
    if (missing.length > 0) {
      process.stdout.write(`      SKIP: ${missing.join('; ')}\n`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'smcr-neg-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    w = new NegotiatorWorld(TIMERS);
  });
  afterEach(async () => {
    await dump?.stop();
    dump = undefined;
    await w.cleanup();
  });

  /** A negotiator in `mode`. */
  const neg = (mode: 'bpf' | 'saved-syn' | 'off'): Negotiator => w.negotiator({ mode });

  async function capture(port: number): Promise<string> {
    const file = join(dir, `syn-${port}.pcap`);
    dump = new Tcpdump(file, 'lo', `tcp port ${port} and tcp[tcpflags] & tcp-syn != 0`);
    await dump.start();
    return file;
  }

  it('SMC <-> SMC: option in SYN and SYN-ACK, both read it, SMC-R', async () => {
    const srv = await w.smcServer(neg('bpf'));
    const pcap = await capture(srv.port);
    const client = neg('bpf');
    const c = w.track((await dial({ engine: await w.engine('mem1'), negotiator: client, host: '127.0.0.1', port: srv.port })).outcome);
    const s = w.track(await srv.outcomes[0]!);
    await dump!.stop();
    assert.equal(c.mode, 'smcr', c.mode === 'tcp' ? c.detail : '');
    assert.equal(s.mode, 'smcr', s.mode === 'tcp' ? s.detail : '');
    assert.deepEqual(syns(pcap).map((x) => [x.synAck, x.smc]), [[false, true], [true, true]]);
  });

  it('SMC -> plain server: option in the SYN only; the client falls back 0x03010000', async () => {
    const { port } = await w.listen((s) => s.resume());
    const pcap = await capture(port);
    const c = w.track((await dial({ engine: await w.engine('mem1'), negotiator: neg('bpf'), host: '127.0.0.1', port })).outcome);
    await dump!.stop();
    assert.equal(c.mode === 'tcp' && c.reason, SmcReason.PEERNOSMC.code);
    assert.deepEqual(syns(pcap).map((x) => [x.synAck, x.smc]), [[false, true], [true, false]]);
  });

  it('plain client -> SMC server: no option either way; the server falls back 0x03010000', async () => {
    const srv = await w.smcServer(neg('bpf'));
    const pcap = await capture(srv.port);
    const c = w.track((await dial({ engine: await w.engine('mem1'), negotiator: neg('off'), host: '127.0.0.1', port: srv.port })).outcome);
    const s = w.track(await srv.outcomes[0]!);
    await dump!.stop();
    assert.equal(c.mode === 'tcp' && c.reason, SmcReason.ACTIVE.code);
    assert.equal(s.mode === 'tcp' && s.reason, SmcReason.PEERNOSMC.code);
    assert.deepEqual(syns(pcap).map((x) => [x.synAck, x.smc]), [[false, false], [true, false]]);
  });

  it('SMC -> an echoing server: the reflected option fools the SYN-ACK check, the Proposal comes back, the peer is learned, the next SYN has no option', async () => {
    // A plain echo application on a listener whose SYN-ACKs reflect the option (served by the
    // program without speaking CLC): the TCP-level picture of a middlebox that echoes options.
    const echoNeg = neg('bpf');
    const { server, port } = await w.listen((s) => s.on('data', (d) => s.write(d)));
    echoNeg.serve(server);
    const pcap = await capture(port);
    const client = neg('bpf');
    const e = await w.engine('mem1');
    const first = w.track((await dial({ engine: e, negotiator: client, host: '127.0.0.1', port })).outcome);
    assert.equal(first.mode, 'tcp');
    assert.equal(first.mode === 'tcp' && first.suspectedEcho, true);
    assert.equal(first.mode === 'tcp' && first.reason, SmcReason.PEERNOSMC.code);
    const second = await dial({ engine: e, negotiator: client, host: '127.0.0.1', port });
    w.track(second.outcome);
    assert.equal(second.plan.offer, false);
    assert.equal(second.outcome.mode === 'tcp' && second.outcome.reason, SmcReason.ACTIVE.code);
    second.outcome.socket.resume();
    second.outcome.socket.write('plain');
    const [d] = (await once(second.outcome.socket, 'data')) as [Buffer];
    assert.equal(d.toString(), 'plain');
    await dump!.stop();
    assert.deepEqual(syns(pcap).map((x) => [x.synAck, x.smc]), [[false, true], [true, true], [false, false], [true, false]]);
  });

  it('SMC client -> saved-syn server: the server sees the offer in the saved SYN, cannot answer it; both go on as TCP without losing a byte', async () => {
    const e = await w.engine('mem0');
    const n = neg('saved-syn');
    const outcomes: Promise<SmcOutcome>[] = [];
    // A separate listener in this process: only its SYN is saved, the program does not serve it.
    const { server, port } = await w.listen((s) => outcomes.push(answer(e, n, s)));
    n.serve(server);
    const c = w.track((await dial({ engine: await w.engine('mem1'), negotiator: neg('bpf'), host: '127.0.0.1', port })).outcome);
    assert.equal(c.mode === 'tcp' && c.reason, SmcReason.PEERNOSMC.code);
    c.socket.write('hello over tcp');
    const s = w.track(await outcomes[0]!);
    assert.equal(n.stats.peerSignalled, 1, 'the saved SYN carried the option');
    assert.equal(s.mode === 'tcp' && s.reason, SmcReason.PEERNOSMC.code);
    s.socket.resume();
    const [d] = (await once(s.socket, 'data')) as [Buffer];
    assert.equal(d.toString(), 'hello over tcp');
  });
});
