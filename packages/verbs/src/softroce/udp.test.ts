/**
 * softroce over real UDP sockets: two devices of this process on 127.0.0.1 and 127.0.0.2 (lo),
 * each with its own socket on one port, so every packet goes through the kernel's UDP stack.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { crc32 } from 'node:zlib';
import { Errno, VerbsError, VerbsErrorCode } from '../errors.js';
import { IbMtu, QpState, SendFlag, WcOpcode, WcStatus, WrOpcode, newRecvWr, newSendWr, newWorkCompletion, Access, type Mr } from '../types.js';
import type { SoftRoceContext } from './context.js';
import { SoftRoceProvider, type SoftRoceProviderOptions } from './provider.js';
import { connect, makeEndpoint, waitCompletions, type Endpoint } from './test-support.js';

const PORT = 24791;

async function pair(opts: SoftRoceProviderOptions & { mtuA?: number; mtuB?: number } = {}): Promise<{ p: SoftRoceProvider; a: SoftRoceContext; b: SoftRoceContext }> {
  const p = new SoftRoceProvider({
    ...opts,
    devices: [
      { name: 'a', ip: '127.0.0.1', port: PORT, mtu: opts.mtuA ?? 1024 },
      { name: 'b', ip: '127.0.0.2', port: PORT, mtu: opts.mtuB ?? 1024 },
    ],
  });
  return { p, a: (await p.open('a')) as SoftRoceContext, b: (await p.open('b')) as SoftRoceContext };
}

/** xorshift32 payload of message n. */
function fill(buf: Buffer, off: number, len: number, n: number): void {
  let x = (Math.imul(n + 1, 0x9e3779b1) ^ 0x2545f491) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[off + i] = x & 0xff;
  }
}

describe('softroce over UDP (127.0.0.1 <-> 127.0.0.2)', function () {
  this.timeout(30000);

  const lossy = [
    { title: '8 MiB of SENDs, MTU 4096, 10% of the datagrams each device sends dropped', total: 8 << 20, mtu: 4096, hooks: { dropOutgoing: 0.1, seed: 42 } },
    { title: '2 MiB of SENDs, MTU 1024, 10% of the datagrams each device receives dropped', total: 2 << 20, mtu: 1024, hooks: { dropIncoming: 0.1, seed: 7 } },
  ];
  for (const L of lossy) it(`${L.title}: all arrive exactly once, in order, intact`, async () => {
    const { p, a, b } = await pair({
      testHooks: L.hooks,
      maxAckTimeoutMs: 3,
      maxInflightPackets: 16,
      mtuA: L.mtu,
      mtuB: L.mtu,
    });
    const A = makeEndpoint(a, { maxSendWr: 64, maxRecvWr: 64 });
    const B = makeEndpoint(b, { maxSendWr: 64, maxRecvWr: 64 });
    connect(A, B, { mtu: L.mtu === 4096 ? IbMtu.MTU_4096 : IbMtu.MTU_1024, timeout: 14, retryCnt: 7 });
    const TOTAL = L.total;
    const SLOT = 128 * 1024;
    const SLOTS = 16;
    const src = a.allocMemory(SLOT * SLOTS);
    const dst = b.allocMemory(SLOT * SLOTS);
    const ms = A.pd.registerMr(src, 0, src.length, Access.LOCAL_WRITE);
    const md = B.pd.registerMr(dst, 0, dst.length, Access.LOCAL_WRITE);
    // Message sizes: 1 B .. 128 KiB (deterministic), adding up to exactly TOTAL.
    const sizes: number[] = [];
    let sum = 0;
    let r = 12345;
    while (sum < TOTAL) {
      r = (Math.imul(r, 1103515245) + 12345) >>> 0;
      const s = Math.min(TOTAL - sum, 1 + (r % SLOT));
      sizes.push(s);
      sum += s;
    }
    const crcs = sizes.map((s, n) => {
      const t = Buffer.alloc(s);
      fill(t, 0, s, n);
      return crc32(t);
    });
    const rw = newRecvWr(1);
    const postRecv = (n: number): void => {
      rw.wrId = n;
      rw.sgList[0] = { mr: md, offset: (n % SLOTS) * SLOT, length: SLOT };
      rw.numSge = 1;
      B.qp.postRecv(rw);
    };
    for (let n = 0; n < SLOTS && n < sizes.length; n++) postRecv(n);
    const sw = newSendWr(1);
    let sent = 0;
    const postSend = (): void => {
      const n = sent++;
      fill(src.buffer, (n % SLOTS) * SLOT, sizes[n]!, n);
      sw.wrId = n;
      sw.opcode = WrOpcode.SEND;
      sw.flags = SendFlag.SIGNALED;
      sw.sgList[0] = { mr: ms, offset: (n % SLOTS) * SLOT, length: sizes[n]! };
      sw.numSge = 1;
      A.qp.postSend(sw);
    };
    const done = new Promise<void>((resolve, reject) => {
      const wc = [newWorkCompletion(), newWorkCompletion(), newWorkCompletion(), newWorkCompletion()];
      let nextRecv = 0;
      let nextSendDone = 0;
      let bytes = 0;
      const check = (): void => {
        if (nextRecv === sizes.length && nextSendDone === sizes.length) resolve();
      };
      B.recvCq.setHandler(() => {
        try {
          for (let k; (k = B.recvCq.poll(wc, wc.length)) > 0;) {
            for (let i = 0; i < k; i++) {
              const c = wc[i]!;
              assert.equal(c.status, WcStatus.SUCCESS);
              assert.equal(c.wrId, nextRecv, 'receives complete in order, each once');
              assert.equal(c.byteLen, sizes[nextRecv]);
              const off = (nextRecv % SLOTS) * SLOT;
              assert.equal(crc32(dst.buffer.subarray(off, off + c.byteLen)), crcs[nextRecv], `message ${nextRecv} intact`);
              bytes += c.byteLen;
              if (nextRecv + SLOTS < sizes.length) postRecv(nextRecv + SLOTS);
              nextRecv++;
            }
          }
          B.recvCq.arm();
          check();
        } catch (e) {
          reject(e);
        }
      });
      A.sendCq.setHandler(() => {
        try {
          for (let k; (k = A.sendCq.poll(wc, wc.length)) > 0;) {
            for (let i = 0; i < k; i++) {
              assert.equal(wc[i]!.status, WcStatus.SUCCESS, `send ${wc[i]!.wrId}`);
              assert.equal(wc[i]!.wrId, nextSendDone++);
              if (sent < sizes.length) postSend();
            }
          }
          A.sendCq.arm();
          check();
        } catch (e) {
          reject(e);
        }
      });
      B.recvCq.arm();
      A.sendCq.arm();
      for (let i = 0; i < SLOTS && sent < sizes.length; i++) postSend();
      void bytes;
    });
    await done;
    // Nothing is delivered twice: no late completion shows up.
    await new Promise((res) => setTimeout(res, 30));
    assert.equal(B.recvCq.poll([newWorkCompletion()], 1), 0);
    const sa = a.stats;
    const sb = b.stats;
    const drops = sa.hookDropsTx + sa.hookDropsRx + sb.hookDropsTx + sb.hookDropsRx;
    assert.ok(drops > 0.05 * (sa.txPackets + sb.txPackets), `drops ${drops}`);
    assert.ok(sa.hookDropsTx + sa.hookDropsRx > 0 && sb.hookDropsTx + sb.hookDropsRx > 0, 'both directions lose packets');
    assert.ok(sa.retransmissions > 0 && sb.naksSent > 0 && sb.duplicates > 0);
    assert.equal(sa.dropBadIcrc + sb.dropBadIcrc + sa.dropMalformed + sb.dropMalformed + sa.dropUnknownQpn + sb.dropUnknownQpn, 0);
    await a.close();
    await b.close();
    assert.equal(p.clock.pending, 0, 'no timer left after close');
  });

  it('1 MiB of RDMA READs and 1 MiB of WRITE_WITH_IMMs under 10% loss (MTU 1024): data intact, completions in order', async () => {
    const { a, b } = await pair({ testHooks: { dropOutgoing: 0.1, dropIncoming: 0.05, seed: 99 }, maxAckTimeoutMs: 3, maxInflightPackets: 16 });
    const A = makeEndpoint(a, { maxSendWr: 64, maxRecvWr: 64 });
    const B = makeEndpoint(b, { maxSendWr: 64, maxRecvWr: 64 });
    connect(A, B, { mtu: IbMtu.MTU_1024, timeout: 14, retryCnt: 7 });
    const ba = a.allocMemory(4 << 20);
    const bb = b.allocMemory(4 << 20);
    const ma = A.pd.registerMr(ba, 0, ba.length, Access.LOCAL_WRITE);
    const mb = B.pd.registerMr(bb, 0, bb.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ);
    fill(bb.buffer, 0, 2 << 20, 5);
    fill(ba.buffer, 2 << 20, 2 << 20, 6);
    const r = newRecvWr(0);
    for (let i = 0; i < 8; i++) {
      r.wrId = 100 + i;
      B.qp.postRecv(r);
    }
    const s = newSendWr(1);
    const N = 4;
    for (let i = 0; i < N; i++) {
      // READ 256 KiB of b into the first half of a; WRITE_WITH_IMM 256 KiB of a's second half into b's second half.
      const off = i * (256 << 10);
      Object.assign(s, { wrId: 2 * i, opcode: WrOpcode.RDMA_READ, flags: SendFlag.SIGNALED, numSge: 1, raddrHi: mb.addrHi, raddrLo: mb.addrLo + off, rkey: mb.rkey });
      s.sgList[0] = { mr: ma, offset: off, length: 256 << 10 };
      A.qp.postSend(s);
      Object.assign(s, { wrId: 2 * i + 1, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, immData: i, raddrLo: mb.addrLo + (2 << 20) + off });
      s.sgList[0] = { mr: ma, offset: (2 << 20) + off, length: 256 << 10 };
      A.qp.postSend(s);
    }
    const sc = await waitCompletions(A.sendCq, 2 * N, 15000);
    assert.deepEqual(sc.map((c) => [c.wrId, c.status]), Array.from({ length: 2 * N }, (_, i) => [i, WcStatus.SUCCESS]));
    const rc = await waitCompletions(B.recvCq, N, 15000);
    assert.deepEqual(rc.map((c) => [c.wrId, c.immData, c.byteLen]), Array.from({ length: N }, (_, i) => [100 + i, i, 256 << 10]));
    assert.ok(ba.buffer.subarray(0, 1 << 20).equals(bb.buffer.subarray(0, 1 << 20)), 'READ data');
    assert.ok(bb.buffer.subarray(2 << 20, 3 << 20).equals(ba.buffer.subarray(2 << 20, 3 << 20)), 'WRITE data');
    assert.ok(a.stats.retransmissions > 0 && a.stats.hookDropsRx + b.stats.hookDropsRx > 0);
    await a.close();
    await b.close();
  });

  it('many QPs share one socket per device: 16 pairs transfer at once, each in order', async () => {
    const { a, b } = await pair();
    const pairs: { A: Endpoint; B: Endpoint; ma: Mr; mb: Mr }[] = [];
    for (let i = 0; i < 16; i++) {
      const A = makeEndpoint(a, { maxSendWr: 32, maxRecvWr: 32 });
      const B = makeEndpoint(b, { maxSendWr: 32, maxRecvWr: 32 });
      connect(A, B, { psnA: i * 0x10000, psnB: 0xfff000 + i });
      const ma = A.pd.registerMr(a.allocMemory(32 * 4096), 0, 32 * 4096, Access.LOCAL_WRITE);
      const mb = B.pd.registerMr(b.allocMemory(32 * 4096), 0, 32 * 4096, Access.LOCAL_WRITE);
      pairs.push({ A, B, ma, mb });
    }
    const r = newRecvWr(1);
    const s = newSendWr(1);
    pairs.forEach((p, i) => {
      for (let k = 0; k < 20; k++) {
        r.wrId = k;
        r.sgList[0] = { mr: p.mb, offset: k * 4096, length: 4096 };
        r.numSge = 1;
        p.B.qp.postRecv(r);
        const len = 1 + ((i * 977 + k * 131) % 4096);
        fill(p.ma.block.buffer, k * 4096, len, i * 100 + k);
        Object.assign(s, { wrId: k, opcode: WrOpcode.SEND, flags: SendFlag.SIGNALED, numSge: 1 });
        s.sgList[0] = { mr: p.ma, offset: k * 4096, length: len };
        p.A.qp.postSend(s);
      }
    });
    await Promise.all(pairs.map(async (p, i) => {
      const rc = await waitCompletions(p.B.recvCq, 20);
      assert.deepEqual(rc.map((c) => c.wrId), Array.from({ length: 20 }, (_, k) => k));
      rc.forEach((c, k) => {
        assert.equal(c.byteLen, 1 + ((i * 977 + k * 131) % 4096));
        assert.equal(c.qpNum, p.B.qp.qpNum);
        assert.ok(p.mb.block.buffer.subarray(k * 4096, k * 4096 + c.byteLen).equals(p.ma.block.buffer.subarray(k * 4096, k * 4096 + c.byteLen)));
      });
      assert.equal((await waitCompletions(p.A.sendCq, 20)).length, 20);
    }));
    assert.equal(a.stats.dropUnknownQpn + b.stats.dropUnknownQpn, 0);
    await a.close();
    await b.close();
  });

  it('WRITE_WITH_IMM, READ and SEND_WITH_IMM with 4096-byte MTU', async () => {
    const { a, b } = await pair({ mtuA: 4096, mtuB: 4096 });
    const A = makeEndpoint(a);
    const B = makeEndpoint(b);
    connect(A, B, { mtu: IbMtu.MTU_4096 });
    const ba = a.allocMemory(1 << 20);
    const bb = b.allocMemory(1 << 20);
    const ma = A.pd.registerMr(ba, 0, ba.length, Access.LOCAL_WRITE);
    const mb = B.pd.registerMr(bb, 0, bb.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ);
    fill(ba.buffer, 0, 300000, 1);
    fill(bb.buffer, 500000, 200000, 2);
    const s = newSendWr(1);
    const r = newRecvWr(1);
    r.wrId = 77;
    r.sgList[0] = { mr: mb, offset: 900000, length: 64 };
    r.numSge = 1;
    B.qp.postRecv(r);
    r.wrId = 78;
    B.qp.postRecv(r);
    Object.assign(s, { wrId: 1, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, flags: SendFlag.SIGNALED, raddrHi: mb.addrHi, raddrLo: mb.addrLo, rkey: mb.rkey, immData: 0x01020304, numSge: 1 });
    s.sgList[0] = { mr: ma, offset: 0, length: 300000 };
    A.qp.postSend(s);
    Object.assign(s, { wrId: 2, opcode: WrOpcode.RDMA_READ, raddrLo: mb.addrLo + 500000 });
    s.sgList[0] = { mr: ma, offset: 400000, length: 200000 };
    A.qp.postSend(s);
    Object.assign(s, { wrId: 3, opcode: WrOpcode.SEND_WITH_IMM, immData: 0xfffffffe, flags: SendFlag.SIGNALED | SendFlag.INLINE });
    s.sgList[0] = { mr: ma, offset: 0, length: 40 };
    A.qp.postSend(s);
    const sc = await waitCompletions(A.sendCq, 3);
    assert.deepEqual(sc.map((c) => [c.wrId, c.status, c.opcode]), [[1, 0, WcOpcode.RDMA_WRITE], [2, 0, WcOpcode.RDMA_READ], [3, 0, WcOpcode.SEND]]);
    const rc = await waitCompletions(B.recvCq, 2);
    assert.deepEqual(rc.map((c) => [c.wrId, c.opcode, c.byteLen, c.withImm, c.immData]), [[77, WcOpcode.RECV_RDMA_WITH_IMM, 300000, true, 0x01020304], [78, WcOpcode.RECV, 40, true, 0xfffffffe]]);
    assert.ok(bb.buffer.subarray(0, 300000).equals(ba.buffer.subarray(0, 300000)));
    assert.ok(ba.buffer.subarray(400000, 600000).equals(bb.buffer.subarray(500000, 700000)));
    assert.ok(bb.buffer.subarray(900000, 900040).equals(ba.buffer.subarray(0, 40)));
    // 300000 B at 4096 per packet: 74 packets (73 x 4096 + 992).
    assert.equal(a.stats.retransmissions, 0);
    await a.close();
    await b.close();
  });

  it('a path MTU mismatch (4096 sender, 1024 responder): NAK invalid request, REM_INV_REQ_ERR, both QPs in ERR', async () => {
    const { a, b } = await pair({ mtuA: 4096, mtuB: 1024 });
    const A = makeEndpoint(a);
    const B = makeEndpoint(b);
    connect(A, B, { mtu: IbMtu.MTU_4096 });
    assert.equal(A.qp.query().pathMtu, IbMtu.MTU_4096);
    assert.equal(B.qp.query().pathMtu, IbMtu.MTU_1024, 'capped by the device');
    const ba = a.allocMemory(8192);
    const bb = b.allocMemory(8192);
    const ma = A.pd.registerMr(ba, 0, ba.length, Access.LOCAL_WRITE);
    const mb = B.pd.registerMr(bb, 0, bb.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
    const s = newSendWr(1);
    Object.assign(s, { wrId: 5, opcode: WrOpcode.RDMA_WRITE, flags: SendFlag.SIGNALED, raddrHi: mb.addrHi, raddrLo: mb.addrLo, rkey: mb.rkey, numSge: 1 });
    s.sgList[0] = { mr: ma, offset: 0, length: 2000 };
    A.qp.postSend(s);
    const [c] = await waitCompletions(A.sendCq, 1);
    assert.equal(c!.status, WcStatus.REM_INV_REQ_ERR);
    assert.equal(A.qp.state, QpState.ERR);
    assert.equal(B.qp.state, QpState.ERR);
    assert.equal(b.stats.naksSent, 1);
    assert.ok(bb.buffer.every((x) => x === 0), 'nothing written');
    await a.close();
    await b.close();
  });

  it('open: a port in use is VerbsError(open_device, EADDRINUSE); an unknown name is NO_DEVICE', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((res) => blocker.bind(PORT + 1, '127.0.0.1', () => res()));
    try {
      const p = new SoftRoceProvider({ devices: [{ name: 'x', ip: '127.0.0.1', port: PORT + 1 }] });
      await assert.rejects(p.open('x'), (e: unknown) => e instanceof VerbsError && e.verb === 'open_device' && e.errno === Errno.EADDRINUSE && /in use/.test(e.message));
      await assert.rejects(p.open('nope'), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.NO_DEVICE);
    } finally {
      blocker.close();
    }
  });

  it('contexts of one device share its socket; the last close unbinds it; the device opens again', async () => {
    const p = new SoftRoceProvider({ devices: [{ name: 'x', ip: '127.0.0.1', port: PORT + 2 }] });
    const c1 = (await p.open('x')) as SoftRoceContext;
    const c2 = (await p.open('x')) as SoftRoceContext;
    assert.equal(c1.stats, c2.stats);
    assert.equal(p.device('x')!.isOpen, true);
    await c1.close();
    assert.equal(p.device('x')!.isOpen, true);
    await c2.close();
    assert.equal(p.device('x')!.isOpen, false);
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((res, rej) => {
      probe.once('error', rej);
      probe.bind(PORT + 2, '127.0.0.1', () => res());
    });
    probe.close();
    const c3 = await p.open('x');
    await c3.close();
  });

  it('default devices: one per non-internal IPv4 address plus softroce-lo (127.0.0.1); GID table as Linux lays it out', async () => {
    const p = new SoftRoceProvider();
    const list = await p.listDevices();
    const lo = list.find((d) => d.name === 'softroce-lo');
    assert.ok(lo !== undefined);
    assert.ok(list.every((d) => d.provider === 'softroce' && d.transport === 'RoCE'));
    const q = new SoftRoceProvider({ devices: [{ name: 'g', ip: '127.0.0.1', port: PORT + 3 }] });
    const c = await q.open('g');
    const t = c.gidTable(1);
    assert.deepEqual(t.map((g) => g.type), ['RoCEv1', 'RoCEv2', 'RoCEv1', 'RoCEv2']);
    assert.equal(t[3]!.gid.toString('hex'), '00000000000000000000ffff7f000001');
    assert.equal(t[3]!.ipv4, '127.0.0.1');
    assert.equal(c.queryPort(1).activeMtu, IbMtu.MTU_1024);
    assert.throws(() => c.queryGid(1, 4), (e: unknown) => e instanceof VerbsError && e.errno === Errno.EINVAL);
    await c.close();
  });

  it('RTR refuses a non-IPv4 GID and a non-RoCEv2 source GID index', async () => {
    const { a, b } = await pair();
    const A = makeEndpoint(a);
    const rtr = (dgid: Buffer, sgidIndex: number) => () => A.qp.modify({
      state: QpState.RTR, pathMtu: IbMtu.MTU_1024, destQpNum: 1, rqPsn: 0, ah: { dgid, sgidIndex, hopLimit: 1, portNum: 1 }, maxDestRdAtomic: 1, minRnrTimer: 5,
    });
    const v4 = b.gidTable(1)[3]!.gid;
    assert.throws(rtr(b.gidTable(1)[1]!.gid, 3), (e: unknown) => e instanceof VerbsError && e.errno === Errno.EINVAL);
    assert.throws(rtr(v4, 1), (e: unknown) => e instanceof VerbsError && e.errno === Errno.EINVAL);
    assert.equal(A.qp.state, QpState.INIT);
    rtr(v4, 3)();
    assert.equal(A.qp.state, QpState.RTR);
    await a.close();
    await b.close();
  });
});

