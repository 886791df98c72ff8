/**
 * Engine benchmarks: one SMC-R connection between two SmcEngines over the mem provider vs a Node
 * TCP connection over loopback, both in this process, measured in the same run with the rounds of
 * each alternating so that both see the same machine state (nothing here is asserted):
 *
 * 1. bulk: 1 MiB writes, one direction, MB/s per round (median, min, max over the rounds) for SMC-R
 *    with the default 64 KiB RMB / send buffer and with 1 MiB ones; goal: bulk >= 2x TCP.
 * 2. request/response: 64 B request, 64 B echo, one outstanding; round-trip median, p5, p95;
 *    goal: round trip <= 0.25x TCP. TCP has Nagle off (setNoDelay) on both ends.
 *
 */
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { MemProvider } from './verbs-providers.js';
import { summarize } from './stats.js';

type Core = typeof import('@smc-r/core');

const KiB = 1024;
const MiB = 1024 * 1024;

async function loadCore(): Promise<Core | string> {
  return import('@smc-r/core');
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [line(head), `|${w.map((x, i) => (i === 0 ? `:${'-'.repeat(x + 1)}` : `${'-'.repeat(x + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** A connected pair of streams and how to tear it down. */
interface StreamPair {
  readonly a: Duplex;
  readonly b: Duplex;
  close(): Promise<void>;
}

async function listen(): Promise<{ srv: Server; port: number }> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { srv, port: (srv.address() as { port: number }).port };
}

async function tcpPair(): Promise<StreamPair> {
  const { srv, port } = await listen();
  const accepted = once(srv, 'connection') as Promise<[Socket]>;
  const a = connect(port, '127.0.0.1');
  await once(a, 'connect');
  const [b] = await accepted;
  a.setNoDelay(true);
  b.setNoDelay(true);
  srv.close();
  return {
    a, b,
    close: async () => {
      a.destroy();
      b.destroy();
    },
  };
}

/** Two SmcEngines over mem in this process; each pair() is one SMC-R connection (CLC over TCP loopback). */
async function smcEngines(core: Core, buf: number): Promise<{ pair(): Promise<StreamPair>; close(): Promise<void> }> {
  if (MemProvider === undefined) throw new Error('MemProvider is not available');
  const provider = new MemProvider();
  const ctxA = await provider.open('mem0');
  const ctxB = await provider.open('mem1');
  const opts = { clc: { rmbSize: buf, sndbufSize: buf }, timers: { TEST_LINK_INTERVAL: 0 } };
  const server = new core.SmcEngine({ context: ctxA, ...opts });
  const client = new core.SmcEngine({ context: ctxB, ...opts });
  return {
    async pair() {
      const { srv, port } = await listen();
      const accepted = (once(srv, 'connection') as Promise<[Socket]>).then(([s]) => server.accept(s, { peerSignalledSmc: true }));
      const sock = connect(port, '127.0.0.1');
      await once(sock, 'connect');
      const [c, s] = await Promise.all([client.connect(sock, { peerSignalledSmc: true }), accepted]);
      srv.close();
      if (c.mode !== 'smcr' || s.mode !== 'smcr') {
        const why = c.mode === 'tcp' ? c.detail : s.mode === 'tcp' ? s.detail : '';
        throw new Error(`the engines fell back to TCP: ${why}`);
      }
      const a = c.conn;
      const b = s.conn;
      a.on('error', () => {});
      b.on('error', () => {});
      return {
        a, b,
        close: async () => {
          a.end();
          b.end();
          a.resume();
          b.resume();
          await Promise.all([a.closed ? undefined : once(a, 'close'), b.closed ? undefined : once(b, 'close')]);
        },
      };
    },
    async close() {
      await client.close();
      await server.close();
      await ctxA.close();
      await ctxB.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Workloads

/** Moves `total` bytes a -> b in 1 MiB writes; returns MB/s (first write to last byte read). */
async function bulk(p: StreamPair, total: number): Promise<number> {
  const chunk = Buffer.alloc(MiB, 0x5a);
  let got = 0;
  const done = new Promise<void>((resolve) => {
    const onData = (d: Buffer): void => {
      got += d.length;
      if (got >= total) {
        p.b.off('data', onData);
        resolve();
      }
    };
    p.b.on('data', onData);
  });
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < total; sent += MiB) {
    if (!p.a.write(chunk)) await once(p.a, 'drain');
  }
  await done;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return total / 1e6 / s;
}

/** An echo on b; `n` round trips of `size` bytes from a, one outstanding; returns seconds per round trip. */
async function pingPong(p: StreamPair, n: number, size: number): Promise<number[]> {
  const echo = (d: Buffer): void => { p.b.write(d); };
  p.b.on('data', echo);
  const req = Buffer.alloc(size, 0x33);
  const samples: number[] = [];
  let have = 0;
  let wake: (() => void) | null = null;
  const onData = (d: Buffer): void => {
    have += d.length;
    if (have >= size && wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  p.a.on('data', onData);
  try {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      const answered = new Promise<void>((r) => { wake = r; });
      p.a.write(req);
      if (have < size) await answered;
      else wake = null;
      have -= size;
      samples.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
  } finally {
    p.a.off('data', onData);
    p.b.off('data', echo);
  }
  return samples;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export interface EngineBenchOptions {
  /** Bytes per bulk round (default 256 MiB) and rounds per variant (default 7). */
  readonly bulkBytes?: number;
  readonly rounds?: number;
  /** Round trips per block (default 2000) and blocks per transport (default 5). */
  readonly rtts?: number;
  readonly rttBlocks?: number;
  /** Run only one workload (profiling). */
  readonly only?: 'bulk' | 'rr';
}

export async function runEngineBench(opts: EngineBenchOptions = {}): Promise<void> {
  console.log('\n## engine: SMC-R over mem vs Node TCP loopback (same process, same run)\n');
  const core = await loadCore();
  if (typeof core === 'string') {
    console.log(core);
    return;
  }
  const bulkBytes = opts.bulkBytes ?? 256 * MiB;
  const rounds = opts.rounds ?? 7;
  const rtts = opts.rtts ?? 2000;
  const rttBlocks = opts.rttBlocks ?? 5;
  const small = await smcEngines(core, 64 * KiB);
  const large = await smcEngines(core, 1 * MiB);
  try {
    if (opts.only !== 'rr') await bulkSection();
    if (opts.only !== 'bulk') await rrSection();
    console.log('Both ends of each connection run in this one process: the mem provider copies in user space on the event loop,');
    console.log('TCP copies in the kernel during the socket syscalls; the SMC-R CLC handshake itself runs over TCP and is not timed.');
  } catch (e) {
    console.log(`engine benchmark failed: ${(e as Error).stack ?? String(e)}`);
  } finally {
    await small.close();
    await large.close();
  }

  async function bulkSection(): Promise<void> {
    const variants: { name: string; make: () => Promise<StreamPair> }[] = [
      { name: 'TCP loopback', make: tcpPair },
      { name: 'SMC-R mem, 64 KiB RMB/sndbuf', make: () => small.pair() },
      { name: 'SMC-R mem, 1 MiB RMB/sndbuf', make: () => large.pair() },
    ];
    const pairs = await Promise.all(variants.map((v) => v.make()));
    for (const p of pairs) await bulk(p, 32 * MiB); // warm-up
    const mbps: number[][] = variants.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < variants.length; i++) mbps[i]!.push(await bulk(pairs[i]!, bulkBytes));
    }
    for (const p of pairs) await p.close();
    const tcpBulk = median(mbps[0]!);
    console.log(`bulk: ${fmt(bulkBytes / MiB, 0)} MiB per round in 1 MiB writes, ${rounds} rounds per variant, alternating\n`);
    console.log(table(
      ['transport', 'median MB/s', 'min MB/s', 'max MB/s', 'vs TCP'],
      variants.map((v, i) => [v.name, fmt(median(mbps[i]!)), fmt(Math.min(...mbps[i]!)), fmt(Math.max(...mbps[i]!)), `${fmt(median(mbps[i]!) / tcpBulk, 2)}x`]),
    ));
    const bestBulk = Math.max(median(mbps[1]!), median(mbps[2]!)) / tcpBulk;
    console.log(`\nbulk goal SMC-R >= 2x TCP: best ${fmt(bestBulk, 2)}x, ${bestBulk >= 2 ? 'met' : 'not met'}.`);
  }

  async function rrSection(): Promise<void> {
    const rr: { name: string; make: () => Promise<StreamPair> }[] = [
      { name: 'TCP loopback (nodelay)', make: tcpPair },
      { name: 'SMC-R mem, 64 KiB RMB/sndbuf', make: () => small.pair() },
    ];
    const rrPairs = await Promise.all(rr.map((v) => v.make()));
    for (const p of rrPairs) await pingPong(p, 500, 64); // warm-up
    const samples: number[][] = rr.map(() => []);
    for (let b = 0; b < rttBlocks; b++) {
      for (let i = 0; i < rr.length; i++) samples[i]!.push(...(await pingPong(rrPairs[i]!, rtts, 64)));
    }
    for (const p of rrPairs) await p.close();
    const sums = samples.map((s) => summarize(s));
    console.log(`\nrequest/response: 64 B each way, one outstanding, ${rttBlocks} x ${rtts} round trips per transport, alternating\n`);
    console.log(table(
      ['transport', 'median us', 'p5 us', 'p95 us', 'round trips/s', 'vs TCP (median)'],
      rr.map((v, i) => [
        v.name, fmt(sums[i]!.medianNs / 1e3, 2), fmt(sums[i]!.p5Ns / 1e3, 2), fmt(sums[i]!.p95Ns / 1e3, 2),
        fmt(samples[i]!.length / samples[i]!.reduce((x, y) => x + y, 0), 0), `${fmt(sums[i]!.medianNs / sums[0]!.medianNs, 2)}x`,
      ]),
    ));
    const rttRatio = sums[1]!.medianNs / sums[0]!.medianNs;
    console.log(`\nround-trip goal SMC-R <= 0.25x TCP: ${fmt(rttRatio, 2)}x, ${rttRatio <= 0.25 ? 'met' : 'not met'}.`);
  }
}
