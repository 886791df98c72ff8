/**
 * One endpoint of the bulk benchmarks, run as a child process (`node bench/dist/softroce-peer.js`)
 * so that the two ends of a transfer have their own event loop and CPU, as two real hosts would.
 * Driven by JSON lines on stdin (`{id, cmd, args}`), answering `{id, ok, result|error}` on stdout.
 *
 * TCP: `tcp-listen` {port} -> then `tcp-recv` {total}; `tcp-send` {port, total, chunk}. The
 * receiver answers one byte after `total` bytes; the sender's time runs from connect to that byte.
 *
 * softroce: `sr-open` {ip, name, mtu?, slots, chunk} -> endpoint; `sr-connect` {remote};
 * `sr-recv` {total}; `sr-send` {total}. The sender RDMA WRITEs `chunk`-byte pieces WITH IMM into
 * a ring of `slots` slots at the receiver; each arrival is answered by an 8-byte inline SEND
 * (credit) that frees the slot. The sender's time runs from the first post to the last credit.
 * Both report their CPU time and the device's packet counters.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { SoftRoceProvider, stats as deviceStats } from './verbs-providers.js';
import {
  Access, IbMtu, QpState, SendFlag, WcOpcode, WcStatus, WrOpcode, newRecvWr, newSendWr, newWorkCompletion, wcStatusName,
  type Context, type Cq, type Mr, type Pd, type Qp,
} from '@smc-r/verbs';

interface Endpoint {
  gid: string;
  qpn: number;
  psn: number;
  ring: { hi: number; lo: number; rkey: number };
  mtu: number;
}

function cpuMs(start: NodeJS.CpuUsage): { user: number; system: number } {
  const d = process.cpuUsage(start);
  return { user: d.user / 1000, system: d.system / 1000 };
}

// ---------------------------------------------------------------------------------------------
// TCP

let server: Server | undefined;
let serverConn: Promise<Socket> | undefined;

function tcpListen(port: number): Promise<{ port: number }> {
  return new Promise((resolve, reject) => {
    server = createServer();
    serverConn = new Promise((res) => server!.once('connection', (s) => res(s)));
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ port: (server!.address() as { port: number }).port }));
  });
}

async function tcpRecv(total: number): Promise<unknown> {
  const sock = await serverConn!;
  const cpu0 = process.cpuUsage();
  return new Promise((resolve, reject) => {
    let got = 0;
    let t0 = 0;
    sock.on('data', (b: Buffer) => {
      if (got === 0) t0 = performance.now();
      got += b.length;
      if (got === total) {
        sock.write(Buffer.from([1]));
        sock.end();
        server!.close();
        resolve({ bytes: got, ms: performance.now() - t0, cpu: cpuMs(cpu0) });
      } else if (got > total) {
        reject(new Error(`received ${got} > ${total}`));
      }
    });
    sock.once('error', reject);
  });
}

function tcpSend(port: number, total: number, chunk: number): Promise<unknown> {
  const buf = Buffer.alloc(chunk, 0xa5);
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: '127.0.0.1', noDelay: true }, () => {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          const n = Math.min(chunk, total - sent);
          sent += n;
          if (!sock.write(n === chunk ? buf : buf.subarray(0, n))) {
            sock.once('drain', pump);
            return;
          }
        }
      };
      sock.once('data', () => {
        resolve({ bytes: total, ms: performance.now() - t0, cpu: cpuMs(cpu0) });
        sock.destroy();
      });
      pump();
    });
    sock.once('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------
// softroce

let ctx: Context | undefined;
let pd: Pd | undefined;
let cq: Cq | undefined;
let qp: Qp | undefined;
let ring: Mr | undefined;
let src: Mr | undefined;
let creditMr: Mr | undefined;
let slots = 8;
let chunk = 1 << 20;
let remote: Endpoint | undefined;
let providerRef: unknown;
let gidIndex = 0;

async function srOpen(a: { ip: string; name: string; mtu?: number; slots: number; chunk: number }): Promise<Endpoint> {
  if (SoftRoceProvider === undefined) throw new Error('SoftRoceProvider is not exported by @smc-r/verbs');
  slots = a.slots;
  chunk = a.chunk;
  const dev: { name: string; ip: string; mtu?: number } = { name: a.name, ip: a.ip };
  if (a.mtu !== undefined) dev.mtu = a.mtu;
  const provider = new SoftRoceProvider({ devices: [dev] });
  providerRef = provider;
  ctx = await provider.open(a.name);
  pd = ctx.allocPd();
  cq = ctx.createCq(4 * slots + 16);
  qp = pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap: { maxSendWr: 2 * slots + 4, maxRecvWr: slots + 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 16 } });
  const rb = ctx.allocMemory(slots * chunk);
  ring = pd.registerMr(rb, 0, rb.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
  const sb = ctx.allocMemory(chunk);
  for (let i = 0; i < chunk; i++) sb.buffer[i] = (i * 2654435761) >>> 24;
  src = pd.registerMr(sb, 0, chunk, Access.LOCAL_WRITE);
  const cb = ctx.allocMemory(64);
  creditMr = pd.registerMr(cb, 0, 64, Access.LOCAL_WRITE);
  // The RoCEv2 entry with an IPv4-mapped GID (rxe's layout puts it at index 3).
  gidIndex = ctx.gidTable(1).find((g) => g.type === 'RoCEv2' && g.ipv4 !== undefined)?.index ?? 0;
  return {
    gid: ctx.queryGid(1, gidIndex).gid.toString('hex'),
    qpn: qp.qpNum,
    psn: (Math.random() * 0xffffff) | 0,
    ring: { hi: ring.addrHi, lo: ring.addrLo, rkey: ring.rkey },
    mtu: ctx.queryPort(1).activeMtu,
  };
}

function srConnect(a: { local: Endpoint; remote: Endpoint }): unknown {
  remote = a.remote;
  const mtu = Math.min(a.local.mtu, a.remote.mtu) as IbMtu;
  qp!.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: Access.REMOTE_WRITE });
  qp!.modify({
    state: QpState.RTR, pathMtu: mtu, destQpNum: remote.qpn, rqPsn: remote.psn, maxDestRdAtomic: 16, minRnrTimer: 12,
    ah: { dgid: Buffer.from(remote.gid, 'hex'), sgidIndex: gidIndex, hopLimit: 64, portNum: 1 },
  });
  qp!.modify({ state: QpState.RTS, sqPsn: a.local.psn, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 16 });
  const rwr = newRecvWr(1);
  for (let i = 0; i < slots; i++) {
    rwr.wrId = i;
    rwr.sgList[0] = { mr: creditMr!, offset: 0, length: 64 };
    rwr.numSge = 1;
    qp!.postRecv(rwr);
  }
  return { mtu };
}

/** Drives the CQ through its notification until `step` returns true (done) or throws. */
function drive(step: () => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cq!.setHandler(null);
      if (err) reject(err);
      else resolve();
    };
    const run = (): void => {
      if (done) return;
      try {
        if (step()) { finish(); return; }
        cq!.arm();
        if (step()) finish();
      } catch (e) {
        finish(e as Error);
      }
    };
    cq!.setHandler(run);
    run();
  });
}

async function srRecv(a: { total: number; timeoutMs: number }): Promise<unknown> {
  const wcs = Array.from({ length: 32 }, () => newWorkCompletion());
  const swr = newSendWr(1);
  const rwr = newRecvWr(0);
  const cpu0 = process.cpuUsage();
  let got = 0;
  let t0 = 0;
  const credit = creditMr!;
  await drive(() => {
    let k: number;
    while ((k = cq!.poll(wcs, wcs.length)) > 0) {
      for (let i = 0; i < k; i++) {
        const wc = wcs[i]!;
        if (wc.status !== WcStatus.SUCCESS) throw new Error(`receiver: ${wcStatusName(wc.status)} opcode ${wc.opcode}`);
        if (wc.opcode === WcOpcode.SEND) continue;
        if (wc.opcode !== WcOpcode.RECV_RDMA_WITH_IMM) throw new Error(`receiver: unexpected opcode ${wc.opcode}`);
        if (got === 0) t0 = performance.now();
        got += wc.byteLen;
        // Re-post the receive for the next WRITE WITH IMM and return the slot (immData) as a credit.
        rwr.wrId = wc.immData;
        rwr.numSge = 0;
        qp!.postRecv(rwr);
        credit.block.buffer.writeUInt32BE(wc.immData, 0);
        swr.wrId = wc.immData;
        swr.opcode = WrOpcode.SEND;
        swr.flags = SendFlag.SIGNALED | SendFlag.INLINE;
        swr.sgList[0] = { mr: credit, offset: 0, length: 8 };
        swr.numSge = 1;
        qp!.postSend(swr);
      }
    }
    return got >= a.total;
  }, a.timeoutMs);
  return { bytes: got, ms: performance.now() - t0, cpu: cpuMs(cpu0) };
}

async function srSend(a: { total: number; timeoutMs: number }): Promise<unknown> {
  const wcs = Array.from({ length: 32 }, () => newWorkCompletion());
  const swr = newSendWr(1);
  const rwr = newRecvWr(1);
  const chunks = Math.ceil(a.total / chunk);
  let posted = 0;
  let credited = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = remote!;
  // Credits come back in order (one per WRITE WITH IMM, on one RC QP), so chunk p uses ring slot
  // p % slots and may be posted once chunk p - slots has been credited.
  await drive(() => {
    let k: number;
    while ((k = cq!.poll(wcs, wcs.length)) > 0) {
      for (let i = 0; i < k; i++) {
        const wc = wcs[i]!;
        if (wc.status !== WcStatus.SUCCESS) throw new Error(`sender: ${wcStatusName(wc.status)} opcode ${wc.opcode}`);
        if (wc.opcode !== WcOpcode.RECV) continue;
        credited++;
        rwr.wrId = credited;
        rwr.sgList[0] = { mr: creditMr!, offset: 0, length: 64 };
        rwr.numSge = 1;
        qp!.postRecv(rwr);
      }
    }
    while (posted - credited < slots && posted < chunks) {
      const len = Math.min(chunk, a.total - posted * chunk);
      const slot = posted % slots;
      const lo = r.ring.lo + slot * chunk;
      swr.wrId = posted;
      swr.opcode = WrOpcode.RDMA_WRITE_WITH_IMM;
      swr.flags = SendFlag.SIGNALED;
      swr.sgList[0] = { mr: src!, offset: 0, length: len };
      swr.numSge = 1;
      swr.raddrHi = (r.ring.hi + Math.floor(lo / 2 ** 32)) >>> 0;
      swr.raddrLo = lo >>> 0;
      swr.rkey = r.ring.rkey;
      swr.immData = slot;
      qp!.postSend(swr);
      posted++;
    }
    return credited === chunks;
  }, a.timeoutMs);
  return { bytes: a.total, ms: performance.now() - t0, cpu: cpuMs(cpu0) };
}

// ---------------------------------------------------------------------------------------------

async function handle(cmd: string, a: Record<string, unknown>): Promise<unknown> {
  switch (cmd) {
    case 'tcp-listen': return tcpListen(a['port'] as number);
    case 'tcp-recv': return tcpRecv(a['total'] as number);
    case 'tcp-send': return tcpSend(a['port'] as number, a['total'] as number, a['chunk'] as number);
    case 'sr-open': return srOpen(a as never);
    case 'sr-connect': return srConnect(a as never);
    case 'sr-recv': return srRecv(a as never);
    case 'sr-send': return srSend(a as never);
    case 'sr-stats': return ctx === undefined ? null : deviceStats(ctx, providerRef);
    default: throw new Error(`unknown command ${cmd}`);
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (line.trim() === '') return;
  const req = JSON.parse(line) as { id: number; cmd: string; args: Record<string, unknown> };
  // Requests run concurrently (a receive and a stats call may overlap); answers carry the id.
  handle(req.cmd, req.args).then(
    (result) => process.stdout.write(`${JSON.stringify({ id: req.id, ok: true, result: result ?? null })}\n`),
    (e: unknown) => process.stdout.write(`${JSON.stringify({ id: req.id, ok: false, error: (e as Error).stack ?? String(e) })}\n`),
  );
});
rl.on('close', () => {
  const c = ctx;
  ctx = undefined;
  void (c === undefined ? Promise.resolve() : c.close()).finally(() => process.exit(0));
});
