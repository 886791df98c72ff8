/**
 * Verbs benchmarks, each next to a baseline measured in the same run (nothing here is asserted):
 *
 * 1. mem provider: RDMA WRITE of 64 KiB (post + completion through the CQ notification) vs
 *    Buffer.copy of 64 KiB. Samples are batches of BATCH operations; per-op times are reported as
 *    median and 5th/95th percentiles, ops/s over the whole run, and the ratio WRITE/copy.
 * 2. softroce bulk between two processes (RDMA WRITE WITH IMM into a credited ring over
 *    127.0.0.1 <-> 127.0.0.2) vs Node TCP over loopback between two processes, the same number of
 *    bytes, several repetitions alternating TCP and softroce: MB/s, packets/s (from the devices'
 *    counters when the provider has them) and packets per CPU-second of the two processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  Access, QpState, SendFlag, WcStatus, WrOpcode, newSendWr, newWorkCompletion, wcStatusName,
  type Context, type Cq, type Provider, type Qp,
} from '@smc-r/verbs';
import { MemProvider, SoftRoceProvider } from './verbs-providers.js';
import { summarize } from './stats.js';

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [line(head), `|${w.map((x, i) => (i === 0 ? `:${'-'.repeat(x + 1)}` : `${'-'.repeat(x + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

// ---------------------------------------------------------------------------------------------
// 1. mem RDMA WRITE 64 KiB vs Buffer.copy 64 KiB

const SIZE = 64 * 1024;
const BATCH = 32;

interface OpRow { name: string; opsPerSec: number; medianNs: number; p5Ns: number; p95Ns: number }

/** Waits until `n` completions have been polled from `cq` (through arm + handler). */
function awaitCompletions(cq: Cq, n: number, wcs: ReturnType<typeof newWorkCompletion>[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const step = (): boolean => {
      let k: number;
      while ((k = cq.poll(wcs, wcs.length)) > 0) {
        for (let i = 0; i < k; i++) {
          if (wcs[i]!.status !== WcStatus.SUCCESS) { reject(new Error(`WRITE failed: ${wcStatusName(wcs[i]!.status)}`)); return true; }
        }
        got += k;
      }
      return got >= n;
    };
    const handler = (): void => {
      if (step()) { cq.setHandler(null); resolve(); return; }
      cq.arm();
      if (step()) { cq.setHandler(null); resolve(); }
    };
    cq.setHandler(handler);
    if (step()) { cq.setHandler(null); resolve(); return; }
    cq.arm();
  });
}

export async function memWriteBench(Ctor: (new () => Provider) | undefined = MemProvider, durationMs = 1500): Promise<OpRow[] | string> {
  if (Ctor === undefined) return 'skipped: MemProvider is not exported by @smc-r/verbs';
  const provider = new Ctor();
  const step = (provider as { step?: () => void }).step?.bind(provider);
  const devs = await provider.listDevices();
  if (devs.length === 0) return 'skipped: the mem provider lists no device';
  const ctx: Context = await provider.open(devs[0]!.name);
  try {
    const pd = ctx.allocPd();
    const cq = ctx.createCq(4 * BATCH);
    const cap = { maxSendWr: 2 * BATCH, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 };
    const a: Qp = pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap });
    const b: Qp = pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap });
    const gid = ctx.queryGid(1, 0).gid;
    const mtu = ctx.queryPort(1).activeMtu;
    for (const [qp, peer] of [[a, b], [b, a]] as const) {
      qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: Access.REMOTE_WRITE });
      qp.modify({ state: QpState.RTR, pathMtu: mtu, destQpNum: peer.qpNum, rqPsn: 100, maxDestRdAtomic: 1, minRnrTimer: 12, ah: { dgid: gid, sgidIndex: 0, hopLimit: 64, portNum: 1 } });
      qp.modify({ state: QpState.RTS, sqPsn: 100, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 });
    }
    const srcBlock = ctx.allocMemory(SIZE);
    const dstBlock = ctx.allocMemory(SIZE);
    srcBlock.buffer.fill(0x5a);
    const src = pd.registerMr(srcBlock, 0, SIZE, Access.LOCAL_WRITE);
    const dst = pd.registerMr(dstBlock, 0, SIZE, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
    const wr = newSendWr(1);
    wr.opcode = WrOpcode.RDMA_WRITE;
    wr.flags = SendFlag.SIGNALED;
    wr.sgList[0] = { mr: src, offset: 0, length: SIZE };
    wr.numSge = 1;
    wr.raddrHi = dst.addrHi;
    wr.raddrLo = dst.addrLo;
    wr.rkey = dst.rkey;
    const wcs = Array.from({ length: BATCH }, () => newWorkCompletion());

    const writeBatch = async (): Promise<void> => {
      for (let i = 0; i < BATCH; i++) { wr.wrId = i; a.postSend(wr); }
      await awaitCompletions(cq, BATCH, wcs);
    };
    /** Post + provider.step() + poll, all synchronous: the provider's own cost, no event-loop hop. */
    const writeBatchSync = (): void => {
      for (let i = 0; i < BATCH; i++) { wr.wrId = i; a.postSend(wr); }
      step!();
      let got = 0;
      while (got < BATCH) {
        const k = cq.poll(wcs, wcs.length);
        if (k === 0) throw new Error(`mem step(): ${got}/${BATCH} completions`);
        for (let i = 0; i < k; i++) if (wcs[i]!.status !== WcStatus.SUCCESS) throw new Error(`WRITE failed: ${wcStatusName(wcs[i]!.status)}`);
        got += k;
      }
    };
    const s = Buffer.alloc(SIZE, 0x5a);
    const d = Buffer.alloc(SIZE);
    const copyBatch = (): void => {
      for (let i = 0; i < BATCH; i++) s.copy(d, 0, 0, SIZE);
    };

    // Warm-up, then alternate 100 ms windows of each so that both see the same machine state.
    for (let i = 0; i < 50; i++) { await writeBatch(); copyBatch(); if (step) writeBatchSync(); }
    if (!dstBlock.buffer.equals(srcBlock.buffer)) throw new Error('mem RDMA WRITE did not copy the data');
    type Kind = 'copy' | 'write' | 'sync';
    const samples: Record<Kind, number[]> = { copy: [], write: [], sync: [] };
    const totals: Record<Kind, { ops: number; ns: number }> = { copy: { ops: 0, ns: 0 }, write: { ops: 0, ns: 0 }, sync: { ops: 0, ns: 0 } };
    const record = (k: Kind, ns: number): void => {
      samples[k].push(ns / BATCH / 1e9);
      totals[k].ops += BATCH;
      totals[k].ns += ns;
    };
    const end = performance.now() + durationMs;
    while (performance.now() < end) {
      // Alternate 100 ms windows of each, so that all see the same machine state.
      for (let w0 = performance.now() + 100; performance.now() < w0;) {
        const t = process.hrtime.bigint();
        await writeBatch();
        record('write', Number(process.hrtime.bigint() - t));
      }
      for (let w0 = performance.now() + 100; performance.now() < w0;) {
        const t = process.hrtime.bigint();
        copyBatch();
        record('copy', Number(process.hrtime.bigint() - t));
      }
      if (step) {
        for (let w0 = performance.now() + 100; performance.now() < w0;) {
          const t = process.hrtime.bigint();
          writeBatchSync();
          record('sync', Number(process.hrtime.bigint() - t));
        }
      }
    }
    const rowOf = (k: Kind, name: string): OpRow => ({ name, opsPerSec: (totals[k].ops / totals[k].ns) * 1e9, ...summarize(samples[k]) });
    const rows = [
      rowOf('copy', 'baseline: Buffer.copy 64 KiB'),
      rowOf('write', `mem RDMA WRITE 64 KiB, completion via CQ handler (batches of ${BATCH})`),
    ];
    if (step) rows.push(rowOf('sync', `mem RDMA WRITE 64 KiB, post + step() + poll (batches of ${BATCH})`));
    return rows;
  } finally {
    await ctx.close();
  }
}

// ---------------------------------------------------------------------------------------------
// 2. softroce bulk vs TCP, two processes each

class Peer {
  readonly proc: ChildProcess;
  #buf = '';
  #id = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  stderr = '';

  constructor() {
    const script = fileURLToPath(new URL('./softroce-peer.js', import.meta.url));
    this.proc = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (s: string) => { this.stderr = (this.stderr + s).slice(-4000); });
    this.proc.stdout!.on('data', (s: string) => {
      const parts = (this.#buf + s).split('\n');
      this.#buf = parts.pop()!;
      for (const l of parts) {
        if (!l.startsWith('{')) continue;
        const m = JSON.parse(l) as { id: number; ok: boolean; result?: unknown; error?: string };
        const p = this.#pending.get(m.id);
        if (p === undefined) continue;
        this.#pending.delete(m.id);
        if (m.ok) p.resolve(m.result);
        else p.reject(new Error(m.error));
      }
    });
    this.proc.once('exit', (code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`bench peer exited (${code}): ${this.stderr}`));
      this.#pending.clear();
    });
  }

  call<T>(cmd: string, args: unknown, timeoutMs = 60_000): Promise<T> {
    const id = this.#id++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => { this.#pending.delete(id); reject(new Error(`${cmd} timed out; stderr: ${this.stderr}`)); }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.proc.stdin!.write(`${JSON.stringify({ id, cmd, args })}\n`);
    });
  }

  async close(): Promise<void> {
    this.proc.stdin!.end();
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    if (this.proc.exitCode === null) await exited;
    clearTimeout(t);
  }
}

interface Transfer { bytes: number; ms: number; cpu: { user: number; system: number } }
interface Run { mbps: number; ms: number; cpuMs: number; packets?: number; dataPackets?: number }

/** Sum of the numeric counters whose name says "tx" and "packet" (or the best match available). */
function txPackets(s: Record<string, number> | null): number | undefined {
  if (s === null) return undefined;
  const keys = Object.keys(s);
  const k = keys.find((x) => /^tx_?packets$/i.test(x)) ?? keys.find((x) => /tx/i.test(x) && /p(ac)?k(e)?t/i.test(x) && !/drop|retr|err/i.test(x));
  return k === undefined ? undefined : s[k];
}

function delta(a: Record<string, number> | null, b: Record<string, number> | null): Record<string, number> | null {
  if (a === null || b === null) return null;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) out[k] = v - (a[k] ?? 0);
  return out;
}

async function bulkBench(total: number, reps: number, chunk: number, mtu: number): Promise<string> {
  const lines: string[] = [];
  const sender = new Peer();
  const receiver = new Peer();
  const tcp: Run[] = [];
  const sr: Run[] = [];
  let srNote = '';
  let lastStats: { sender: Record<string, number> | null; receiver: Record<string, number> | null } | undefined;
  try {
    let srReady = false;
    if (SoftRoceProvider === undefined) {
      srNote = 'softroce skipped: SoftRoceProvider is not exported by @smc-r/verbs';
    } else {
      try {
        const slots = 8;
        const rx = await receiver.call<Record<string, unknown>>('sr-open', { ip: '127.0.0.2', name: 'bench-rx', mtu, slots, chunk });
        const tx = await sender.call<Record<string, unknown>>('sr-open', { ip: '127.0.0.1', name: 'bench-tx', mtu, slots, chunk });
        await receiver.call('sr-connect', { local: rx, remote: tx });
        await sender.call('sr-connect', { local: tx, remote: rx });
        srReady = true;
      } catch (e) {
        srNote = `softroce skipped: ${(e as Error).message.split('\n')[0]}`;
      }
    }
    for (let r = 0; r < reps; r++) {
      // TCP
      const { port } = await receiver.call<{ port: number }>('tcp-listen', { port: 0 });
      const recvP = receiver.call<Transfer>('tcp-recv', { total });
      const s = await sender.call<Transfer>('tcp-send', { port, total, chunk });
      const rv = await recvP;
      tcp.push({ mbps: total / 1e6 / (s.ms / 1e3), ms: s.ms, cpuMs: s.cpu.user + s.cpu.system + rv.cpu.user + rv.cpu.system });
      // softroce
      if (srReady) {
        const s0 = await sender.call<Record<string, number> | null>('sr-stats', {});
        const r0 = await receiver.call<Record<string, number> | null>('sr-stats', {});
        const recvQ = receiver.call<Transfer>('sr-recv', { total, timeoutMs: 120_000 }, 130_000);
        const ss = await sender.call<Transfer>('sr-send', { total, timeoutMs: 120_000 }, 130_000);
        const rr = await recvQ;
        const s1 = await sender.call<Record<string, number> | null>('sr-stats', {});
        const r1 = await receiver.call<Record<string, number> | null>('sr-stats', {});
        const ds = delta(s0, s1);
        const dr = delta(r0, r1);
        lastStats = { sender: ds, receiver: dr };
        const txS = txPackets(ds);
        const txR = txPackets(dr);
        const run: Run = { mbps: total / 1e6 / (ss.ms / 1e3), ms: ss.ms, cpuMs: ss.cpu.user + ss.cpu.system + rr.cpu.user + rr.cpu.system };
        if (txS !== undefined) run.dataPackets = txS;
        if (txS !== undefined && txR !== undefined) run.packets = txS + txR;
        sr.push(run);
      }
    }
  } finally {
    await Promise.all([sender.close(), receiver.close()]);
  }

  const med = (xs: number[]): number => quantile([...xs].sort((a, b) => a - b), 0.5);
  const row = (name: string, runs: Run[], pkts: boolean): string[] => {
    const mb = runs.map((x) => x.mbps).sort((a, b) => a - b);
    const pps = pkts && runs.every((x) => x.packets !== undefined) ? runs.map((x) => x.packets! / (x.ms / 1e3)) : [];
    const ppsCpu = pkts && runs.every((x) => x.packets !== undefined) ? runs.map((x) => x.packets! / (x.cpuMs / 1e3)) : [];
    return [
      name, fmt(med(mb)), fmt(quantile(mb, 0.05)), fmt(quantile(mb, 0.95)), fmt(med(runs.map((x) => x.ms)), 0),
      fmt(med(runs.map((x) => x.cpuMs)), 0), pps.length ? fmt(med(pps), 0) : 'n/a', ppsCpu.length ? fmt(med(ppsCpu), 0) : 'n/a',
    ];
  };
  const mib = total / (1 << 20);
  lines.push(`${mib} MiB per run, ${reps} runs each (alternating), ${chunk >> 10} KiB writes; softroce path MTU ${mtu} B, 127.0.0.1 -> 127.0.0.2.`);
  lines.push('MB/s = 10^6 bytes per second of the sender\'s wall time (first byte posted to last credit / ack); CPU = user + system of both processes.\n');
  const rows = [row('TCP loopback (net.Socket, 2 processes)', tcp, false)];
  if (sr.length) rows.push(row('softroce RDMA WRITE WITH IMM (2 processes)', sr, true));
  lines.push(table(['transfer', 'MB/s median', 'p5', 'p95', 'ms median', 'CPU ms median', 'packets/s (both dirs)', 'packets per CPU-s'], rows));
  if (sr.length && tcp.length) {
    lines.push(`\nsoftroce / TCP throughput: ${fmt(med(sr.map((x) => x.mbps)) / med(tcp.map((x) => x.mbps)), 2)}x (goal >= 0.4x)`);
    if (sr.every((x) => x.dataPackets !== undefined)) {
      lines.push(`softroce sender data-direction packets/s: ${fmt(med(sr.map((x) => x.dataPackets! / (x.ms / 1e3))), 0)} (goal >= 250,000 per core)`);
    }
    if (lastStats !== undefined) lines.push(`last softroce run, counter deltas: sender ${JSON.stringify(lastStats.sender)}; receiver ${JSON.stringify(lastStats.receiver)}`);
  }
  if (srNote) lines.push(`\n${srNote}`);
  return lines.join('\n');
}

/** Prints the verbs section of the benchmark report. */
export async function runVerbsBench(opts: { total?: number; reps?: number } = {}): Promise<void> {
  console.log('\n## verbs: mem RDMA WRITE vs Buffer.copy (64 KiB)\n');
  try {
    const rows = await memWriteBench();
    if (typeof rows === 'string') {
      console.log(rows);
    } else {
      const copy = rows[0]!;
      console.log(table(
        ['op', 'ops/s', 'mean ns', 'median ns', 'p5 ns', 'p95 ns', 'vs copy (ops/s)'],
        rows.map((r) => [r.name, fmt(r.opsPerSec, 0), fmt(1e9 / r.opsPerSec), fmt(r.medianNs), fmt(r.p5Ns), fmt(r.p95Ns), `${fmt(r.opsPerSec / copy.opsPerSec, 2)}x`]),
      ));
      const best = rows.slice(1).reduce((x, y) => (y.opsPerSec > x.opsPerSec ? y : x));
      console.log(`\nmem WRITE / copy: ${rows.slice(1).map((r) => `${fmt(r.opsPerSec / copy.opsPerSec, 2)}x`).join(' (event loop), ')}${rows.length > 2 ? ' (step)' : ''}; goal >= 0.8x; best ${fmt(best.opsPerSec / copy.opsPerSec, 2)}x.`);
      console.log(`Per-op ns = batch time / ${BATCH}; ops/s and mean come from the totals, so a slow tail shows as mean > median.`);
      console.log('The event-loop variant includes the hop through the event loop (CQ notification) once per batch; the step() variant runs the provider\'s transport work synchronously.');
    }
  } catch (e) {
    console.log(`mem benchmark failed: ${(e as Error).message}`);
  }
  for (const mtu of [1024, 4096]) {
    console.log(`\n## verbs: softroce bulk vs TCP loopback (two processes), softroce path MTU ${mtu}\n`);
    try {
      console.log(await bulkBench(opts.total ?? 256 * 1024 * 1024, opts.reps ?? 3, 1024 * 1024, mtu));
    } catch (e) {
      console.log(`bulk benchmark failed: ${(e as Error).message}`);
    }
  }
}
