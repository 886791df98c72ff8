/**
 * softroce on the wire as a kernel rdma_rxe sees it: the ICRC covers the IPv4 ID and flags, and rxe
 * drops a wrong ICRC silently (rxe-interop.md 2.1). A softroce device now sets IP_PMTUDISC_DO on the
 * socket it binds itself (native-socket.ts; before, only test/softroce/pmtu-launcher.c did it), so
 * Linux sends DF + IP ID 0, the header our ICRC is computed over.
 *
 * Two devices of this process on 127.0.0.1 / 127.0.0.2, RC QPs connected, SENDs and multi-packet
 * RDMA WRITEs both ways, captured on lo with tcpdump. Asserted on every frame: IP ID 0, DF, and the
 * ICRC verifies over the captured IP packet (computeIcrc of @smc-r/wire, independent of softroce's
 * transmit path). The control run with `pmtuDiscoverDo: false` shows what the option fixes: the
 * kernel's IDs are not 0 and those frames' ICRCs do not verify.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dissect, readCapture } from '@smc-r/capture';
import {
  Access, IbMtu, QpState, SendFlag, SoftRoceProvider, WrOpcode, newRecvWr, newSendWr, newWorkCompletion,
  type Context, type Cq, type Mr, type Qp,
} from '@smc-r/verbs';
import { verifyIcrc } from '@smc-r/wire';
import { requireOrSkip } from '../support/tools.js';
import { Tcpdump } from '../support/tcpdump.js';

const PORT = 24931;

interface Ep { ctx: Context; qp: Qp; cq: Cq }

function endpoint(ctx: Context): Ep {
  const pd = ctx.allocPd();
  const cq = ctx.createCq(256);
  const qp = pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap: { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 }, sqSigAll: true });
  qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
  return { ctx, qp, cq };
}

function v2Gid(ctx: Context): { gid: Buffer; index: number } {
  const g = ctx.gidTable(1).find((e) => e.type === 'RoCEv2' && e.ipv4 !== undefined)!;
  return { gid: g.gid, index: g.index };
}

function connectPair(a: Ep, b: Ep): void {
  for (const [self, peer, rq] of [[a, b, 0x200], [b, a, 0x100]] as const) {
    self.qp.modify({
      state: QpState.RTR, pathMtu: IbMtu.MTU_1024, destQpNum: peer.qp.qpNum, rqPsn: rq,
      ah: { dgid: v2Gid(peer.ctx).gid, sgidIndex: v2Gid(self.ctx).index, hopLimit: 64, portNum: 1 }, maxDestRdAtomic: 1, minRnrTimer: 1,
    });
  }
  a.qp.modify({ state: QpState.RTS, sqPsn: 0x100, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 });
  b.qp.modify({ state: QpState.RTS, sqPsn: 0x200, timeout: 14, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 });
}

async function completions(cq: Cq, n: number, timeoutMs = 5000): Promise<void> {
  const wc = [newWorkCompletion()];
  let got = 0;
  const t0 = Date.now();
  while (got < n) {
    while (cq.poll(wc, 1) === 1) {
      assert.equal(wc[0]!.status, 0, `completion status ${wc[0]!.status}`);
      got++;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${got}/${n} completions after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** SENDs and 5 KiB RDMA WRITEs (FIRST/MIDDLE/LAST at MTU 1024) both ways; returns when all completed. */
async function traffic(a: Ep, b: Ep): Promise<void> {
  const SIZE = 5 * 1024;
  const mem = (e: Ep): Mr => {
    const blk = e.ctx.allocMemory(64 * 1024);
    return e.qp.pd.registerMr(blk, 0, blk.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
  };
  const ma = mem(a);
  const mb = mem(b);
  for (const [self, mr] of [[a, ma], [b, mb]] as const) {
    for (let i = 0; i < 4; i++) {
      const r = newRecvWr(1);
      r.wrId = i;
      r.sgList[0] = { mr, offset: i * 1024, length: 1024 };
      r.numSge = 1;
      self.qp.postRecv(r);
    }
  }
  for (const [self, mr, peer] of [[a, ma, mb], [b, mb, ma]] as const) {
    for (let i = 0; i < 4; i++) {
      const w = newSendWr(1);
      w.wrId = i;
      w.opcode = i % 2 === 0 ? WrOpcode.SEND : WrOpcode.RDMA_WRITE;
      w.flags = SendFlag.SIGNALED;
      w.sgList[0] = { mr, offset: 0, length: i % 2 === 0 ? 44 : SIZE };
      w.numSge = 1;
      if (w.opcode === WrOpcode.RDMA_WRITE) {
        w.raddrHi = peer.addrHi;
        w.raddrLo = (peer.addrLo + 8192) >>> 0;
        w.rkey = peer.rkey;
      }
      self.qp.postSend(w);
    }
  }
  // 4 sends + 2 receives of SENDs per side, one CQ each.
  await Promise.all([completions(a.cq, 6), completions(b.cq, 6)]);
}

interface WireFrame { id: number; df: boolean; icrcOk: boolean }

async function capturedRun(dir: string, name: string, pmtuDiscoverDo: boolean): Promise<WireFrame[]> {
  const pcap = join(dir, `${name}.pcap`);
  const dump = new Tcpdump(pcap, 'lo', `udp port ${PORT}`);
  await dump.start();
  const p = new SoftRoceProvider({
    devices: [
      { name: 'a', ip: '127.0.0.1', port: PORT, pmtuDiscoverDo },
      { name: 'b', ip: '127.0.0.2', port: PORT, pmtuDiscoverDo },
    ],
  });
  const ca = await p.open('a');
  const cb = await p.open('b');
  try {
    assert.equal(p.device('a')!.ipHeader, pmtuDiscoverDo ? 'id0-df' : 'kernel-id', p.device('a')!.ipHeaderNote);
    const a = endpoint(ca);
    const b = endpoint(cb);
    connectPair(a, b);
    await traffic(a, b);
  } finally {
    await ca.close();
    await cb.close();
    await dump.stop();
  }
  const frames: WireFrame[] = [];
  for (const rec of readCapture(readFileSync(pcap))) {
    const pk = dissect(rec.data, rec.linkType);
    if (pk.ip === undefined || pk.ip.version !== 4 || pk.udp === undefined) continue;
    frames.push({ id: pk.ip.id, df: pk.ip.df, icrcOk: verifyIcrc(rec.data, pk.ip.offset, pk.ip.offset + pk.ip.totalLength) });
  }
  return frames;
}

describe('softroce: IP ID 0 + DF and an exact ICRC on the wire without a launcher', function () {
  this.timeout(30_000);
  let dir: string | undefined;

  before(function () {
    requireOrSkip(this, { tools: ['tcpdump'], root: true });
  });
  after(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('every datagram of a device that binds its own socket: ID 0, DF, ICRC valid over the real header', async () => {
    dir = mkdtempSync(join(tmpdir(), 'smcri-ipid-'));
    const frames = await capturedRun(dir, 'pmtudisc-do', true);
    // 2 SENDs + 2 x 5 WRITE packets per side, plus ACKs.
    assert.ok(frames.length >= 24, `only ${frames.length} frames captured`);
    assert.deepEqual(frames.filter((f) => f.id !== 0 || !f.df), [], 'frames without ID 0 + DF');
    assert.deepEqual(frames.filter((f) => !f.icrcOk), [], 'frames whose ICRC does not verify');
  });

  it('control: with pmtuDiscoverDo false Linux picks IP IDs and the ICRCs do not verify', async () => {
    dir ??= mkdtempSync(join(tmpdir(), 'smcri-ipid-'));
    const frames = await capturedRun(dir, 'pmtudisc-want', false);
    assert.ok(frames.length >= 24);
    const nonzero = frames.filter((f) => f.id !== 0);
    assert.ok(nonzero.length > 0, 'the kernel chose non-zero IDs');
    assert.ok(nonzero.every((f) => !f.icrcOk), 'a frame with a kernel-chosen ID must not verify');
  });
});
