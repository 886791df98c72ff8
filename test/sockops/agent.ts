/**
 * One TCP endpoint process of the sock_ops tests (run as `node --import tsx agent.ts`, inside a
 * namespace through `nsenter --net=...`, which keeps the mount namespace and so the cgroup2 mount;
 * `ip netns exec` would remount /sys and hide it). It speaks the JSON-lines protocol of
 * test/softroce/support/child.ts: `{id, cmd, args}` in, `{id, ok, result|error}` out.
 *
 * An agent with `open` holds its own SmcOptionProgram in its own `smcr-<pid>` cgroup, like a host
 * running the negotiator; one without is a plain TCP peer. Servers either report what they saw
 * per accepted socket (`report`) or echo bytes back (`echo`: plain TCP that still reflects the
 * option when its port is listened on). Exits 0 when stdin closes, after closing everything.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { SmcOptionProgram, saveSyn, savedSynOffersSmc, type PeerState } from '@smc-r/sockops';
import { serveRpc } from '../support/rpc-serve.js';

interface Accepted {
  peerState: PeerState | null;
  savedSyn: boolean | null;
}

let program: SmcOptionProgram | undefined;
const servers = new Map<number, { server: net.Server; accepted: Accepted[]; waiters: (() => void)[] }>();

/** Waits (bounded) until the handshake's record exists: the passive record is written on the final ACK. */
async function settledPeerState(sock: net.Socket): Promise<PeerState | null> {
  if (program === undefined) return null;
  for (let i = 0; i < 50; i++) {
    const s = program?.peerState(sock);
    if (s !== undefined) return s;
    await new Promise((r) => setTimeout(r, 10));
  }
  return null;
}

async function listen(args: { host: string; mode: 'report' | 'echo'; smc: boolean; saveSyn: boolean }): Promise<{ port: number }> {
  const entry = { server: net.createServer(), accepted: [] as Accepted[], waiters: [] as (() => void)[] };
  entry.server.on('connection', (sock) => {
    sock.on('error', () => { /* the peer may reset */ });
    const record: Accepted = { peerState: null, savedSyn: args.saveSyn ? savedSynOffersSmc(sock) ?? null : null };
    void settledPeerState(sock).then((s) => {
      record.peerState = s;
      entry.accepted.push(record);
      for (const w of entry.waiters.splice(0)) w();
      if (args.mode === 'echo') sock.pipe(sock);
      else sock.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    entry.server.once('error', reject);
    entry.server.listen(0, args.host, () => resolve());
  });
  const port = (entry.server.address() as net.AddressInfo).port;
  if (args.saveSyn) saveSyn(entry.server);
  // listenOn after listen(0): the program checks the port when it builds each SYN-ACK.
  if (args.smc) program!.listenOn(port);
  servers.set(port, entry);
  return { port };
}

async function accepted(args: { port: number; count: number }): Promise<Accepted[]> {
  const entry = servers.get(args.port);
  if (entry === undefined) throw new Error(`no server on ${args.port}`);
  const deadline = Date.now() + 5000;
  while (entry.accepted.length < args.count) {
    if (Date.now() > deadline) throw new Error(`only ${entry.accepted.length} of ${args.count} connections accepted on ${args.port}`);
    await new Promise<void>((r) => {
      entry.waiters.push(r);
      setTimeout(r, 100);
    });
  }
  return entry.accepted;
}

async function connect(args: { host: string; port: number; offer: boolean; payload?: string }): Promise<{ peerState: PeerState | null; echoed: string | null }> {
  if (args.offer) program!.offerTo(args.host, args.port);
  try {
    const sock = net.connect(args.port, args.host);
    sock.on('error', () => { /* reported through the promises below */ });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
      setTimeout(() => reject(new Error('connect timed out')), 5000);
    });
    const peerState = program?.peerState(sock) ?? null;
    let echoed: string | null = null;
    const payload = args.payload;
    if (payload !== undefined) {
      const want = Buffer.byteLength(payload);
      echoed = await new Promise<string>((resolve, reject) => {
        let got = '';
        sock.setEncoding('utf8');
        sock.on('data', (d: string) => {
          got += d;
          if (Buffer.byteLength(got) >= want) resolve(got);
        });
        setTimeout(() => reject(new Error(`echo: got ${JSON.stringify(got)} only`)), 5000);
        sock.write(payload);
      });
    }
    sock.destroy();
    return { peerState, echoed };
  } finally {
    if (args.offer) program!.withdrawOffer(args.host, args.port);
  }
}

function closeAll(): { cgroupPath: string | null; cgroupExists: boolean } {
  for (const { server } of servers.values()) server.close();
  servers.clear();
  const cgroupPath = program?.cgroupPath ?? null;
  program?.close();
  program = undefined;
  return { cgroupPath, cgroupExists: cgroupPath !== null && existsSync(cgroupPath) };
}

async function handle(cmd: string, args: Record<string, unknown>): Promise<unknown> {
  switch (cmd) {
    case 'open':
      program = SmcOptionProgram.open();
      return { cgroupPath: program.cgroupPath, pid: process.pid };
    case 'listen':
      return listen(args as Parameters<typeof listen>[0]);
    case 'accepted':
      return accepted(args as Parameters<typeof accepted>[0]);
    case 'connect':
      return connect(args as Parameters<typeof connect>[0]);
    case 'stats':
      return program!.stats();
    case 'close':
      return closeAll();
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

serveRpc({ handle, close: closeAll }, { concurrent: false });
process.stdout.write('ready\n');
