/**
 * SmcOptionProgram's lifecycle on a real kernel, in this process: the cgroup it creates and moves
 * the process into, the bpf link bpftool sees, refcounted offers and listens, typed errors, and
 * cleanup: after close() (and after a holder killed with SIGKILL) no cgroup directory, no link and
 * no program are left, and the next open() works.
 *
 * Needs root and bpftool; skips and says why otherwise.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { SmcOptionProgram, SockopsError, SockopsErrorCode } from '@smc-r/sockops';
import { requireOrSkip } from '../support/tools.js';
import { sleep } from '../support/tcpdump.js';
import { RpcChild, runChild } from '../softroce/support/child.js';

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));

const ownCgroup = (): string => readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'))!.slice(3);
const code = (c: string) => (e: unknown) => e instanceof SockopsError && e.code === c;

/** Programs attached to a cgroup directory, as bpftool reports them. */
function attached(path: string): { id: number; name: string; attach_type: string }[] {
  return JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', path], { encoding: 'utf8' }) || '[]') as { id: number; name: string; attach_type: string }[];
}

function links(): { id: number; prog_id: number }[] {
  return JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' }) || '[]') as { id: number; prog_id: number }[];
}

function progExists(id: number): boolean {
  return spawnSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'ignore' }).status === 0;
}

/** The kernel frees a detached program after an RCU grace period: poll, bounded. */
async function progGone(id: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (!progExists(id)) return true;
    await sleep(50);
  }
  return false;
}

describe('SmcOptionProgram lifecycle (real kernel)', function () {
  this.timeout(30_000);
  let program: SmcOptionProgram | undefined;
  const servers: net.Server[] = [];

  before(function () {
    requireOrSkip(this, { root: true, tools: ['bpftool'] });
  });

  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
    program?.close();
    program = undefined;
  });

  async function server(): Promise<{ server: net.Server; port: number; accepted: net.Socket[] }> {
    const accepted: net.Socket[] = [];
    const s = net.createServer((sock) => {
      accepted.push(sock);
      sock.resume();
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { server: s, port: (s.address() as net.AddressInfo).port, accepted };
  }

  async function connect(port: number): Promise<net.Socket> {
    const c = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
    });
    return c;
  }

  it('moves the process into its own cgroup, attaches one sock_ops link there, and undoes both on close()', async () => {
    const before = ownCgroup();
    program = SmcOptionProgram.open();
    const path = program.cgroupPath;
    assert.ok(path.endsWith(`/smcr-${process.pid}`), path);
    assert.ok(ownCgroup().endsWith(`/smcr-${process.pid}`), 'the process runs in the child cgroup');
    const progs = attached(path);
    assert.equal(progs.length, 1);
    assert.equal(progs[0]!.name, 'smcr_sockops');
    assert.match(progs[0]!.attach_type, /sock_ops$/); // 'cgroup_sock_ops' in bpftool 7, 'sock_ops' before
    const progId = progs[0]!.id;
    assert.ok(links().some((l) => l.prog_id === progId), 'attached through a bpf link');
    program.close();
    program.close(); // idempotent
    program = undefined;
    assert.equal(ownCgroup(), before, 'back in the original cgroup');
    assert.equal(existsSync(path), false, 'cgroup directory removed');
    assert.ok(!links().some((l) => l.prog_id === progId), 'link gone');
    assert.ok(await progGone(progId), `program ${progId} still loaded`);
  });

  it('refuses a second open() in the same process, and a bad cgroupName', () => {
    program = SmcOptionProgram.open();
    assert.throws(() => SmcOptionProgram.open(), code(SockopsErrorCode.ALREADY_OPEN));
    program.close();
    program = undefined;
    assert.throws(() => SmcOptionProgram.open({ cgroupName: '../escape' }), code(SockopsErrorCode.BAD_OPTION));
    program = SmcOptionProgram.open({ cgroupName: `smcr-named-${process.pid}` });
    assert.ok(program.cgroupPath.endsWith(`/smcr-named-${process.pid}`));
    const path = program.cgroupPath;
    program.close();
    program = undefined;
    assert.equal(existsSync(path), false);
  });

  it('refcounts offers: the option stays until the last withdrawOffer()', async () => {
    program = SmcOptionProgram.open();
    const { port } = await server();
    program.listenOn(port);
    program.offerTo('127.0.0.1', port);
    program.offerTo('127.0.0.1', port);
    program.withdrawOffer('127.0.0.1', port);
    const a = await connect(port);
    assert.deepEqual(program.peerState(a), { peerSmc: true, sentSmc: true, role: 'active', loadRet: 6 });
    program.withdrawOffer('127.0.0.1', port);
    program.withdrawOffer('127.0.0.1', port); // one too many: ignored
    const b = await connect(port);
    assert.equal(program.peerState(b), undefined, 'not offered any more');
    a.destroy();
    b.destroy();
  });

  it('checks the listen map when the SYN-ACK is built: listenOn after listen(0), stopListening refcounted', async () => {
    program = SmcOptionProgram.open();
    const { port, accepted } = await server();
    program.offerTo('127.0.0.1', port);
    const plain = await connect(port);
    assert.equal(program.peerState(plain)!.peerSmc, false, 'port not listened yet');
    program.listenOn(port);
    program.listenOn(port);
    program.stopListening(port);
    const smc = await connect(port);
    assert.equal(program.peerState(smc)!.peerSmc, true);
    await sleep(20);
    assert.equal(program.peerState(accepted[1]!)!.peerSmc, true, 'server side of the listened connection');
    assert.equal(program.peerState(accepted[0]!), undefined, 'no record for the connection accepted before listenOn');
    program.stopListening(port);
    const after = await connect(port);
    assert.equal(program.peerState(after)!.peerSmc, false);
    assert.equal(program.peerState(after)!.sentSmc, true);
    for (const s of [plain, smc, after]) s.destroy();
    const stats = program.stats();
    assert.equal(stats['connectOffered'], 3);
    assert.equal(stats['activePeerSmc'], 1);
    assert.equal(stats['activePeerPlain'], 2);
  });

  it('matches an AF_INET6 socket connecting to a v4-mapped address with the IPv4 offer', async () => {
    program = SmcOptionProgram.open();
    const s = net.createServer((sock) => sock.resume());
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '::', r)); // dual-stack
    const port = (s.address() as net.AddressInfo).port;
    program.listenOn(port);
    program.offerTo('127.0.0.1', port);
    const c = net.connect(port, '::ffff:127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
    });
    assert.equal(c.remoteFamily, 'IPv6');
    assert.deepEqual(program.peerState(c), { peerSmc: true, sentSmc: true, role: 'active', loadRet: 6 });
    c.destroy();
  });

  it('throws typed errors for bad input and after close()', () => {
    program = SmcOptionProgram.open();
    assert.throws(() => program!.offerTo('example.com', 80), code(SockopsErrorCode.BAD_ADDRESS));
    assert.throws(() => program!.offerTo('::1', 0), code(SockopsErrorCode.BAD_PORT));
    assert.throws(() => program!.listenOn(70000), code(SockopsErrorCode.BAD_PORT));
    assert.throws(() => program!.peerState(new net.Socket()), code(SockopsErrorCode.BAD_SOCKET));
    assert.throws(() => program!.peerState(-1), code(SockopsErrorCode.BAD_SOCKET));
    const fd = openSync('/dev/null', 'r');
    try {
      assert.throws(() => program!.peerState(fd), code(SockopsErrorCode.BAD_SOCKET));
    } finally {
      closeSync(fd);
    }
    program.close();
    for (const f of [() => program!.offerTo('::1', 1), () => program!.listenOn(1), () => program!.peerState(0), () => program!.stats()]) {
      assert.throws(f, code(SockopsErrorCode.CLOSED));
    }
    program = undefined;
  });

  it('a holder killed with SIGKILL leaves only an empty cgroup, which the next open() removes', async () => {
    const child = runChild([process.execPath, ['--import', 'tsx', AGENT]], 60_000, 'sockops holder');
    await child.waitLine((l) => l === 'ready', 30_000);
    const rpc = new RpcChild(child);
    const { cgroupPath, pid } = await rpc.call<{ cgroupPath: string; pid: number }>('open');
    const [prog] = attached(cgroupPath);
    assert.ok(prog !== undefined, 'the holder attached its program');
    child.proc.kill('SIGKILL');
    await child.exited(10_000);
    // The link died with the holder's fds; the empty directory is what a crash leaves.
    assert.ok(await progGone(prog.id), `program ${prog.id} of the killed holder still loaded`);
    assert.ok(!links().some((l) => l.prog_id === prog.id));
    assert.equal(existsSync(cgroupPath), true, 'the crash left the empty directory');
    assert.ok(cgroupPath.endsWith(`/smcr-${pid}`));
    program = SmcOptionProgram.open();
    assert.equal(existsSync(cgroupPath), false, 'open() removed the stale cgroup of the dead holder');
    const { port } = await server();
    program.listenOn(port);
    program.offerTo('127.0.0.1', port);
    const c = await connect(port);
    assert.equal(program.peerState(c)!.peerSmc, true, 'the next program works');
    c.destroy();
  });
});
