/**
 * ibverbs binding benchmarks, on the C test device (no RNIC here; the numbers are the binding's
 * own cost plus the test device's, which executes a WRITE inside post_send under one mutex):
 *
 * 1. The koffi floor: ops.poll_cq on an empty CQ through the function pointer read from
 *    ibv_context.ops (one FFI call, nothing to decode).
 * 2. post_send + poll_cq through the binding: a signaled 64-byte RDMA WRITE (WR and SGE written
 *    with DataView into native memory, ops.post_send), then Cq.poll of its completion (ops.poll_cq
 *    + DataView decode). Goal: <= 200 ns per pair.
 * 3. ibv_reg_mr + ibv_dereg_mr by region size, 4 KiB .. 64 MiB (the test device does no pinning;
 *    on hardware registration pins and maps pages, so expect far more per page there).
 * Samples are batches; medians and 5th/95th percentiles per op. Nothing here is asserted.
 */
import { Access, QpState, SendFlag, WcStatus, WrOpcode, newSendWr, newWorkCompletion } from '@smc-r/verbs';
import { buildTestDevice, IbverbsProvider, type IbvContext } from '@smc-r/ibverbs';
import { summarize } from './stats.js';

export interface IbverbsBenchRow { name: string; medianNs: number; p5Ns: number; p95Ns: number }

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [line(head), `|${w.map((x, i) => (i === 0 ? `:${'-'.repeat(x + 1)}` : `${'-'.repeat(x + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Runs `op` in batches of `batch` for ~`ms` (after a warm-up) and summarises seconds per op. */
function measure(name: string, batch: number, ms: number, op: () => void): IbverbsBenchRow {
  const samples: number[] = [];
  const end = performance.now() + ms / 4;
  while (performance.now() < end) for (let i = 0; i < batch; i++) op();
  const stop = performance.now() + ms;
  while (performance.now() < stop) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) op();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e9 / batch);
  }
  return { name, ...summarize(samples) };
}

/** Two QPs of fake0/fake1 connected as SMC-R connects them. */
function pair(a: IbvContext, b: IbvContext) {
  const sides = [a, b].map((ctx, i) => {
    const pd = ctx.allocPd();
    const cq = ctx.createCq(1024);
    const qp = pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap: { maxSendWr: 256, maxRecvWr: 16, maxSendSge: 2, maxRecvSge: 1, maxInlineData: 0 } });
    const block = ctx.allocMemory(1 << 20);
    const mr = pd.registerMr(block, 0, block.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ);
    const gid = ctx.gidTable(1).find((g) => g.type === 'RoCEv2' && g.ipv4 !== undefined)!;
    return { ctx, pd, cq, qp, block, mr, gid, psn: 100 + i };
  });
  const [x, y] = sides as [typeof sides[0], typeof sides[0]];
  for (const [me, peer] of [[x, y], [y, x]] as const) {
    me.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ });
    me.qp.modify({ state: QpState.RTR, pathMtu: 5, destQpNum: peer.qp.qpNum, rqPsn: peer.psn, ah: { dgid: peer.gid.gid, sgidIndex: me.gid.index, hopLimit: 1, portNum: 1 }, maxDestRdAtomic: 1, minRnrTimer: 5 });
  }
  for (const me of [x, y]) me.qp.modify({ state: QpState.RTS, sqPsn: me.psn, timeout: 15, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 });
  return { x, y };
}

export async function ibverbsBench(ms = 400): Promise<{ hot: IbverbsBenchRow[]; regMr: IbverbsBenchRow[] }> {
  const dev = buildTestDevice();
  const provider = new IbverbsProvider({ libraryPath: dev.path });
  const a = await provider.open('fake0');
  const b = await provider.open('fake1');
  try {
    const { x, y } = pair(a, b);
    const hot: IbverbsBenchRow[] = [];
    const cqPtr = x.cq.ptr;
    const wcs = [newWorkCompletion()];
    const scratch = a.allocMemory(4096);
    const pollFn = a.ops.poll_cq;
    hot.push(measure('koffi floor: ops.poll_cq, empty CQ (1 FFI call)', 1000, ms, () => {
      pollFn(cqPtr, 1, scratch.ptr);
    }));
    hot.push(measure('Cq.poll, empty CQ', 1000, ms, () => {
      x.cq.poll(wcs, 1);
    }));
    const wr = newSendWr(1);
    wr.opcode = WrOpcode.RDMA_WRITE;
    wr.flags = SendFlag.SIGNALED;
    wr.sgList[0] = { mr: x.mr, offset: 0, length: 64 };
    wr.numSge = 1;
    wr.raddrHi = y.mr.addrHi;
    wr.raddrLo = y.mr.addrLo;
    wr.rkey = y.mr.rkey;
    let bad = 0;
    hot.push(measure('post_send (64 B RDMA WRITE, signaled) + poll_cq of its completion', 200, ms, () => {
      wr.wrId++;
      x.qp.postSend(wr);
      if (x.cq.poll(wcs, 1) !== 1 || wcs[0]!.status !== WcStatus.SUCCESS) bad++;
    }));
    if (bad > 0) throw new Error(`${bad} WRITEs did not complete at once`);
    scratch.free();

    const regMr: IbverbsBenchRow[] = [];
    for (const size of [4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20]) {
      const block = a.allocMemory(size);
      regMr.push(measure(`${size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`}`, 20, ms / 2, () => {
        x.pd.registerMr(block, 0, size, Access.LOCAL_WRITE | Access.REMOTE_WRITE).close();
      }));
      block.free();
    }
    return { hot, regMr };
  } finally {
    await a.close();
    await b.close();
    dev.cleanup();
  }
}

/** Prints the ibverbs section of the benchmark report. */
export async function runIbverbsBench(): Promise<void> {
  console.log('\n## ibverbs binding (koffi) over the C test device\n');
  try {
    const { hot, regMr } = await ibverbsBench();
    console.log(table(['op', 'median ns', 'p5 ns', 'p95 ns'], hot.map((r) => [r.name, fmt(r.medianNs), fmt(r.p5Ns), fmt(r.p95Ns)])));
    console.log('\npost_send + poll_cq goal: <= 200 ns per pair (the test device\'s own work, a mutex and a 64-byte memcpy, is included).');
    console.log('\n### ibv_reg_mr + ibv_dereg_mr by size (test device: bookkeeping only, no page pinning)\n');
    console.log(table(['size', 'median ns', 'p5 ns', 'p95 ns'], regMr.map((r) => [r.name, fmt(r.medianNs), fmt(r.p5Ns), fmt(r.p95Ns)])));
  } catch (e) {
    console.log(`ibverbs benchmark not run: ${(e as Error).message}`);
  }
}

