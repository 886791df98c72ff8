/**
 * Requester/responder logic of the softroce RC transport, deterministic: two devices on an
 * in-memory datagram network (MemNetwork) driven by a ManualClock, plus a raw peer that crafts
 * packets with @smc-r/wire to probe the responder. Every packet on the network is decoded with
 * the independent decoder of @smc-r/wire (decodeIbPacket) and its ICRC checked.
 */
import assert from 'node:assert/strict';
import {
  AethSyndrome, IbOpcode, RNR_TIMER_MS, computeIcrcUdp4, decodeIbPacket, encodeIbPacket, gidFromIpv4, ibPadCount,
  type IbPacket, type IbPacketInput,
} from '@smc-r/wire';
import { Access, IbMtu, QpState, SendFlag, WcOpcode, WcStatus, WrOpcode, newRecvWr, newSendWr, newWorkCompletion, type Mr, type WorkCompletion } from '../types.js';
import { ManualClock } from './clock.js';
import type { SoftRoceContext } from './context.js';
import type { SoftRoceTestHooks } from './device.js';
import { MemNetwork, type DatagramLink } from './link.js';
import { SoftRoceProvider, type SoftRoceProviderOptions } from './provider.js';
import { connect, makeEndpoint, type Endpoint } from './test-support.js';

const IP_A = '10.0.0.1';
const IP_B = '10.0.0.2';
const IP_RAW = '10.0.0.9';
const PORT = 4791;

interface Seen {
  dev: string;
  dir: 'out' | 'in';
  pkt: IbPacket;
  raw: Buffer;
  dropped: boolean;
}

function ipNum(ip: string): number {
  return ip.split('.').reduce((a, x) => a * 256 + Number(x), 0);
}

interface World {
  clock: ManualClock;
  net: MemNetwork;
  provider: SoftRoceProvider;
  ca: SoftRoceContext;
  cb: SoftRoceContext;
  /** Packets as sent by a / b (decoded), including the ones a filter dropped. */
  sent: Seen[];
  A: Endpoint;
  B: Endpoint;
  ma: Mr;
  mb: Mr;
  /** Drop decisions: return true to drop. */
  dropA: (p: IbPacket, n: number) => boolean;
  dropB: (p: IbPacket, n: number) => boolean;
  close(): Promise<void>;
}

async function world(o: { mtu?: number; opts?: Partial<SoftRoceProviderOptions>; connect?: Parameters<typeof connect>[2]; ep?: Parameters<typeof makeEndpoint>[1] } = {}): Promise<World> {
  const clock = new ManualClock();
  const net = new MemNetwork(clock);
  const sent: Seen[] = [];
  const w = { dropA: () => false, dropB: () => false } as unknown as World;
  const counts = { a: 0, b: 0 };
  const hooks = (dev: 'a' | 'b'): SoftRoceTestHooks => ({
    filter: (dir, packet, length) => {
      if (dir !== 'out') return false;
      const raw = Buffer.from(packet.subarray(0, length));
      const pkt = decodeIbPacket(raw);
      const n = counts[dev]++;
      return (dev === 'a' ? w.dropA : w.dropB)(pkt, n);
    },
    observe: (dir, packet, length, remoteIp, remotePort, dropped) => {
      if (dir !== 'out') return;
      const raw = Buffer.from(packet.subarray(0, length));
      const pkt = decodeIbPacket(raw); // throws on anything malformed
      const src = dev === 'a' ? IP_A : IP_B;
      assert.equal(computeIcrcUdp4(raw, 0, length, ipNum(src), ipNum(remoteIp), PORT, remotePort, 0, 0x4000), pkt.icrc, 'ICRC over IP ID 0 + DF');
      sent.push({ dev, dir, pkt, raw, dropped });
    },
  });
  const provider = new SoftRoceProvider({
    devices: [
      { name: 'a', ip: IP_A, mtu: o.mtu ?? 1024, testHooks: hooks('a') },
      { name: 'b', ip: IP_B, mtu: o.mtu ?? 1024, testHooks: hooks('b') },
    ],
    clock,
    linkFactory: net.factory,
    ...o.opts,
  });
  const ca = (await provider.open('a')) as SoftRoceContext;
  const cb = (await provider.open('b')) as SoftRoceContext;
  const A = makeEndpoint(ca, o.ep);
  const B = makeEndpoint(cb, o.ep);
  connect(A, B, { mtu: (o.mtu ?? 1024) >= 4096 ? IbMtu.MTU_4096 : IbMtu.MTU_1024, timeout: 12, ...o.connect });
  const ba = ca.allocMemory(1 << 20);
  const bb = cb.allocMemory(1 << 20);
  const ma = A.pd.registerMr(ba, 0, ba.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ);
  const mb = B.pd.registerMr(bb, 0, bb.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ);
  for (let i = 0; i < ba.length; i++) ba.buffer[i] = (i * 131 + (i >> 8)) & 0xff;
  Object.assign(w, { clock, net, provider, ca, cb, sent, A, B, ma, mb, async close() { await ca.close(); await cb.close(); } });
  return w;
}

function poll(cq: { poll(out: WorkCompletion[], max: number): number }): WorkCompletion[] {
  const out: WorkCompletion[] = [];
  const buf = [newWorkCompletion()];
  while (cq.poll(buf, 1) === 1) out.push({ ...buf[0]! });
  return out;
}

function postRecv(ep: Endpoint, mr: Mr, wrId: number, offset: number, length: number): void {
  const r = newRecvWr(1);
  r.wrId = wrId;
  r.sgList[0] = { mr, offset, length };
  r.numSge = 1;
  ep.qp.postRecv(r);
}

function post(ep: Endpoint, mr: Mr, o: { wrId: number; opcode: WrOpcode; offset?: number; length: number; remote?: Mr; roff?: number; imm?: number; flags?: number }): void {
  const s = newSendWr(1);
  s.wrId = o.wrId;
  s.opcode = o.opcode;
  s.flags = o.flags ?? SendFlag.SIGNALED;
  s.sgList[0] = { mr, offset: o.offset ?? 0, length: o.length };
  s.numSge = 1;
  if (o.remote !== undefined) {
    const lo = o.remote.addrLo + (o.roff ?? 0);
    s.raddrHi = o.remote.addrHi + Math.floor(lo / 2 ** 32);
    s.raddrLo = lo >>> 0;
    s.rkey = o.remote.rkey;
  }
  s.immData = o.imm ?? 0;
  ep.qp.postSend(s);
}

const names = (seen: Seen[]): string[] => seen.map((s) => s.pkt.type);

describe('softroce transport (in-memory network, manual clock)', () => {
  describe('segmentation', () => {
    for (const mtu of [1024, 4096]) {
      it(`SEND of 2.5 MTU (${mtu}): FIRST/MIDDLE exactly MTU, LAST the rest; consecutive PSNs; AckReq and SE on LAST`, async () => {
        const w = await world({ mtu });
        const len = Math.floor(mtu * 2.5) + 3;
        postRecv(w.B, w.mb, 7, 0, 3 * mtu);
        post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.SEND, length: len });
        w.clock.run();
        const a = w.sent.filter((s) => s.dev === 'a');
        assert.deepEqual(names(a), ['SEND_FIRST', 'SEND_MIDDLE', 'SEND_LAST']);
        assert.deepEqual(a.map((s) => s.pkt.payload.length), [mtu, mtu, len - 2 * mtu]);
        assert.deepEqual(a.map((s) => s.pkt.bth.psn), [0x100, 0x101, 0x102]);
        assert.deepEqual(a.map((s) => s.pkt.bth.ackReq), [false, false, true]);
        assert.deepEqual(a.map((s) => s.pkt.bth.se), [false, false, true]);
        for (const s of a) {
          assert.equal(s.pkt.bth.pkey, 0xffff);
          assert.equal(s.pkt.bth.tver, 0);
          assert.equal(s.pkt.bth.migReq, false);
          assert.equal(s.pkt.bth.padCnt, ibPadCount(s.pkt.payload.length));
          assert.equal(s.pkt.bth.destQp, w.B.qp.qpNum);
        }
        const rc = poll(w.B.recvCq);
        assert.equal(rc.length, 1);
        assert.equal(rc[0]!.byteLen, len);
        assert.ok(w.mb.block.buffer.subarray(0, len).equals(w.ma.block.buffer.subarray(0, len)));
        const acks = w.sent.filter((s) => s.dev === 'b');
        assert.deepEqual(names(acks), ['ACKNOWLEDGE']);
        assert.equal(acks[0]!.pkt.aeth!.syndrome, AethSyndrome.ACK_NO_CREDIT.value);
        assert.equal(acks[0]!.pkt.aeth!.msn, 1);
        assert.equal(acks[0]!.pkt.bth.psn, 0x102);
        assert.equal(poll(w.A.sendCq)[0]!.status, WcStatus.SUCCESS);
        await w.close();
      });
    }

    it('WRITE_WITH_IMM: RETH (VA, rkey, whole DMA length) on FIRST only, ImmDt on LAST; READ request and FIRST/MIDDLE/LAST responses with AETH on FIRST/LAST', async () => {
      const w = await world();
      postRecv(w.B, w.mb, 7, 0, 0);
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, length: 3000, remote: w.mb, roff: 4096, imm: 0xdeadbeef });
      w.clock.run();
      const a = w.sent.filter((s) => s.dev === 'a');
      assert.deepEqual(names(a), ['RDMA_WRITE_FIRST', 'RDMA_WRITE_MIDDLE', 'RDMA_WRITE_LAST_IMM']);
      const reth = a[0]!.pkt.reth!;
      assert.equal(reth.rkey, w.mb.rkey);
      assert.equal(reth.dmaLength, 3000);
      assert.equal(reth.va, (BigInt(w.mb.addrHi) << 32n) + BigInt(w.mb.addrLo) + 4096n);
      assert.equal(a[2]!.pkt.immDt, 0xdeadbeef);
      const rc = poll(w.B.recvCq);
      assert.deepEqual([rc[0]!.opcode, rc[0]!.byteLen, rc[0]!.immData, rc[0]!.withImm], [WcOpcode.RECV_RDMA_WITH_IMM, 3000, 0xdeadbeef, true]);
      assert.ok(w.mb.block.buffer.subarray(4096, 7096).equals(w.ma.block.buffer.subarray(0, 3000)));
      w.sent.length = 0;
      post(w.A, w.ma, { wrId: 2, opcode: WrOpcode.RDMA_READ, offset: 100000, length: 2500, remote: w.mb, roff: 4096 });
      w.clock.run();
      const req = w.sent.filter((s) => s.dev === 'a');
      assert.deepEqual(names(req), ['RDMA_READ_REQUEST']);
      assert.equal(req[0]!.pkt.reth!.dmaLength, 2500);
      assert.equal(req[0]!.pkt.bth.ackReq, true);
      const resp = w.sent.filter((s) => s.dev === 'b');
      assert.deepEqual(names(resp), ['RDMA_READ_RESPONSE_FIRST', 'RDMA_READ_RESPONSE_MIDDLE', 'RDMA_READ_RESPONSE_LAST']);
      assert.deepEqual(resp.map((s) => s.pkt.bth.psn), [req[0]!.pkt.bth.psn, req[0]!.pkt.bth.psn + 1, req[0]!.pkt.bth.psn + 2]);
      assert.deepEqual(resp.map((s) => s.pkt.aeth !== undefined), [true, false, true]);
      assert.ok(w.ma.block.buffer.subarray(100000, 102500).equals(w.mb.block.buffer.subarray(4096, 6596)));
      // The next WR's PSN skips the 3 PSNs of the READ.
      w.sent.length = 0;
      post(w.A, w.ma, { wrId: 3, opcode: WrOpcode.RDMA_WRITE, length: 8, remote: w.mb });
      w.clock.run();
      assert.equal(w.sent.find((s) => s.dev === 'a')!.pkt.bth.psn, req[0]!.pkt.bth.psn + 3);
      assert.deepEqual(poll(w.A.sendCq).map((c) => [c.wrId, c.status, c.opcode]), [[1, 0, WcOpcode.RDMA_WRITE], [2, 0, WcOpcode.RDMA_READ], [3, 0, WcOpcode.RDMA_WRITE]]);
      await w.close();
    });

    it('zero-length WRITE and READ are single packets with no payload', async () => {
      const w = await world();
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.RDMA_WRITE, length: 0, remote: w.mb });
      post(w.A, w.ma, { wrId: 2, opcode: WrOpcode.RDMA_READ, length: 0, remote: w.mb });
      w.clock.run();
      // The READ response also acknowledges the WRITE before it: no separate ACK.
      assert.deepEqual(names(w.sent), ['RDMA_WRITE_ONLY', 'RDMA_READ_REQUEST', 'RDMA_READ_RESPONSE_ONLY']);
      assert.deepEqual(poll(w.A.sendCq).map((c) => c.status), [0, 0]);
      await w.close();
    });
  });

  describe('PSN', () => {
    it('wraps at 2^24 (requester and responder)', async () => {
      const w = await world({ connect: { psnA: 0xfffffe, psnB: 0xffffff } });
      postRecv(w.B, w.mb, 1, 0, 8192);
      postRecv(w.A, w.ma, 2, 500000, 8192);
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.SEND, length: 5000 });
      post(w.B, w.mb, { wrId: 2, opcode: WrOpcode.SEND, length: 3000, offset: 0 });
      w.clock.run();
      assert.deepEqual(w.sent.filter((s) => s.dev === 'a' && s.pkt.type.startsWith('SEND')).map((s) => s.pkt.bth.psn), [0xfffffe, 0xffffff, 0, 1, 2]);
      assert.deepEqual(w.sent.filter((s) => s.dev === 'b' && s.pkt.type.startsWith('SEND')).map((s) => s.pkt.bth.psn), [0xffffff, 0, 1]);
      assert.equal(poll(w.B.recvCq)[0]!.byteLen, 5000);
      assert.equal(poll(w.A.recvCq)[0]!.byteLen, 3000);
      assert.equal(poll(w.A.sendCq)[0]!.status, WcStatus.SUCCESS);
      assert.equal(poll(w.B.sendCq)[0]!.status, WcStatus.SUCCESS);
      // Across the wrap, more traffic still flows.
      postRecv(w.B, w.mb, 3, 0, 8192);
      post(w.A, w.ma, { wrId: 3, opcode: WrOpcode.SEND, length: 10 });
      w.clock.run();
      assert.equal(poll(w.B.recvCq)[0]!.wrId, 3);
      assert.equal(w.ca.stats.retransmissions + w.cb.stats.retransmissions, 0);
      await w.close();
    });
  });

  describe('loss recovery', () => {
    it('go-back-N after a lost packet: one NAK (PSN sequence error, expected PSN) per gap, retransmission from the hole, data exactly once', async () => {
      const w = await world();
      let dropped = false;
      w.dropA = (p) => {
        if (!dropped && p.type === 'SEND_MIDDLE' && p.bth.psn === 0x102) {
          dropped = true;
          return true;
        }
        return false;
      };
      postRecv(w.B, w.mb, 1, 0, 10 * 1024);
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.SEND, length: 6 * 1024 });
      w.clock.run();
      const naks = w.sent.filter((s) => s.dev === 'b' && s.pkt.type === 'ACKNOWLEDGE' && s.pkt.aeth!.syndrome === AethSyndrome.NAK_PSN_SEQUENCE_ERROR.value);
      assert.equal(naks.length, 1);
      assert.equal(naks[0]!.pkt.bth.psn, 0x102);
      const psns = w.sent.filter((s) => s.dev === 'a').map((s) => s.pkt.bth.psn);
      assert.deepEqual(psns, [0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x102, 0x103, 0x104, 0x105]);
      assert.equal(w.cb.stats.dropOutOfSequence, 3);
      assert.equal(w.ca.stats.naksReceived, 1);
      assert.equal(w.ca.stats.retransmissions, 4);
      const rc = poll(w.B.recvCq);
      assert.equal(rc.length, 1);
      assert.ok(w.mb.block.buffer.subarray(0, 6 * 1024).equals(w.ma.block.buffer.subarray(0, 6 * 1024)));
      assert.equal(poll(w.A.sendCq).length, 1);
      await w.close();
    });

    it('a lost last packet is resent after the local ACK timeout (4.096 us * 2^timeout) without progress', async () => {
      const w = await world({ connect: { timeout: 14 } }); // 67.1 ms
      let n = 0;
      w.dropA = (p) => p.type === 'SEND_LAST' && n++ === 0;
      postRecv(w.B, w.mb, 1, 0, 4096);
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.SEND, length: 2000 });
      w.clock.run();
      assert.equal(poll(w.B.recvCq).length, 0);
      // FIRST had no AckReq: the responder's idle timer ACKs it after 1 ms (progress for the requester).
      w.clock.advance(1);
      assert.deepEqual(w.sent.filter((s) => s.dev === 'b').map((s) => [s.pkt.type, s.pkt.bth.psn]), [['ACKNOWLEDGE', 0x100]]);
      w.clock.advance(67.1 - 0.05);
      assert.equal(w.ca.stats.timeouts, 0);
      w.clock.advance(0.1);
      assert.equal(w.ca.stats.timeouts, 1);
      // Go-back-N from the oldest unacknowledged PSN (0x101).
      assert.deepEqual(w.sent.filter((s) => s.dev === 'a').map((s) => [s.pkt.type, s.pkt.bth.psn]),
        [['SEND_FIRST', 0x100], ['SEND_LAST', 0x101], ['SEND_LAST', 0x101]]);
      assert.equal(w.ca.stats.retransmissions, 1);
      assert.equal(poll(w.B.recvCq)[0]!.byteLen, 2000);
      assert.equal(poll(w.A.sendCq)[0]!.status, WcStatus.SUCCESS);
      await w.close();
    });

    it('a lost ACK: the retransmitted request is a duplicate, re-ACKed, and not delivered twice', async () => {
      const w = await world();
      let n = 0;
      w.dropB = (p) => p.type === 'ACKNOWLEDGE' && n++ === 0;
      postRecv(w.B, w.mb, 1, 0, 4096);
      postRecv(w.B, w.mb, 2, 4096, 4096);
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.SEND, length: 100 });
      w.clock.run();
      w.clock.advance(20);
      assert.equal(w.ca.stats.timeouts, 1);
      assert.equal(w.cb.stats.duplicates, 1);
      assert.equal(w.cb.stats.acksSent, 2);
      assert.deepEqual(poll(w.B.recvCq).map((c) => c.wrId), [1]);
      assert.deepEqual(poll(w.A.sendCq).map((c) => [c.wrId, c.status]), [[1, 0]]);
      await w.close();
    });

    it('retries exactly retryCnt times, then RETRY_EXC_ERR and ERR', async () => {
      const w = await world({ connect: { timeout: 10, retryCnt: 3 } }); // 4.19 ms
      w.dropA = () => true;
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.RDMA_WRITE, length: 10, remote: w.mb });
      post(w.A, w.ma, { wrId: 2, opcode: WrOpcode.RDMA_WRITE, length: 10, remote: w.mb, flags: 0 });
      w.clock.run();
      w.clock.advance(4.194 * 4 - 0.01);
      assert.equal(w.A.qp.state, QpState.RTS);
      w.clock.advance(0.02);
      assert.equal(w.ca.stats.timeouts, 4);
      assert.equal(w.A.qp.state, QpState.ERR);
      assert.deepEqual(poll(w.A.sendCq).map((c) => [c.wrId, c.status]), [[1, WcStatus.RETRY_EXC_ERR], [2, WcStatus.WR_FLUSH_ERR]]);
      assert.equal(w.sent.filter((s) => s.dev === 'a').length, 8);
      assert.equal(w.clock.pending, 0, 'no timer left behind');
      await w.close();
    });

    it('a lost READ response: the READ is re-issued from the missing response (RETH VA/length adjusted, PSN of that response)', async () => {
      const w = await world();
      let n = 0;
      w.dropB = (p) => p.type === 'RDMA_READ_RESPONSE_MIDDLE' && n++ === 1;
      w.mb.block.buffer.fill(0x77, 0, 5000);
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.RDMA_READ, offset: 8192, length: 5000, remote: w.mb });
      w.clock.run();
      const reqs = w.sent.filter((s) => s.dev === 'a' && s.pkt.type === 'RDMA_READ_REQUEST');
      assert.equal(reqs.length, 2);
      assert.equal(reqs[1]!.pkt.bth.psn, 0x102);
      assert.equal(reqs[1]!.pkt.reth!.dmaLength, 5000 - 2048);
      assert.equal(reqs[1]!.pkt.reth!.va, reqs[0]!.pkt.reth!.va + 2048n);
      assert.ok(w.ma.block.buffer.subarray(8192, 13192).every((x) => x === 0x77));
      assert.deepEqual(poll(w.A.sendCq).map((c) => [c.wrId, c.status, c.byteLen]), [[1, 0, 5000]]);
      await w.close();
    });

    it('the window bounds the PSNs in flight', async () => {
      const w = await world({ opts: { maxInflightPackets: 8 } });
      let maxInFlight = 0;
      let lastAck = 0x100 - 1;
      const orig = w.sent.push.bind(w.sent);
      w.sent.push = (...items: Seen[]) => {
        for (const s of items) {
          if (s.dev === 'b' && s.pkt.type === 'ACKNOWLEDGE') lastAck = s.pkt.bth.psn;
          if (s.dev === 'a') maxInFlight = Math.max(maxInFlight, s.pkt.bth.psn - lastAck);
        }
        return orig(...items);
      };
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.RDMA_WRITE, length: 100 * 1024, remote: w.mb });
      w.clock.run();
      assert.equal(maxInFlight, 8);
      assert.equal(poll(w.A.sendCq).length, 1);
      assert.ok(w.mb.block.buffer.subarray(0, 100 * 1024).equals(w.ma.block.buffer.subarray(0, 100 * 1024)));
      await w.close();
    });
  });

  describe('RNR', () => {
    it('RNR NAK carries the responder\'s min_rnr_timer; the requester waits that long, then resends', async () => {
      const w = await world({ connect: { minRnrTimer: 14 } }); // 1.28 ms
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.SEND, length: 3000 });
      w.clock.run();
      const rnr = w.sent.filter((s) => s.dev === 'b');
      assert.equal(rnr.length, 1);
      assert.equal(rnr[0]!.pkt.aeth!.syndrome, 0x20 | 14);
      assert.equal(rnr[0]!.pkt.bth.psn, 0x100);
      assert.equal(w.cb.stats.rnrNaksSent, 1);
      assert.equal(w.cb.stats.naksSent, 0, 'no PSN-sequence NAK for the packets after the refused one');
      postRecv(w.B, w.mb, 9, 0, 4096);
      const before = w.sent.length;
      w.clock.advance(RNR_TIMER_MS[14]! - 0.01);
      assert.equal(w.sent.length, before);
      w.clock.advance(0.02);
      assert.equal(poll(w.B.recvCq)[0]!.byteLen, 3000);
      assert.equal(poll(w.A.sendCq)[0]!.status, WcStatus.SUCCESS);
      await w.close();
    });

    it('rnrRetry 7 is infinite; a WRITE_WITH_IMM waits for a receive too', async () => {
      const w = await world({ connect: { minRnrTimer: 12, rnrRetry: 7 } }); // 0.64 ms
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, length: 2500, remote: w.mb, imm: 5 });
      w.clock.run();
      for (let i = 0; i < 20; i++) w.clock.advance(1);
      assert.ok(w.cb.stats.rnrNaksSent >= 20);
      assert.equal(w.A.qp.state, QpState.RTS);
      postRecv(w.B, w.mb, 9, 0, 0);
      w.clock.advance(1);
      assert.deepEqual(poll(w.B.recvCq).map((c) => [c.wrId, c.opcode, c.byteLen, c.immData]), [[9, WcOpcode.RECV_RDMA_WITH_IMM, 2500, 5]]);
      assert.ok(w.mb.block.buffer.subarray(0, 2500).equals(w.ma.block.buffer.subarray(0, 2500)));
      assert.equal(poll(w.A.sendCq)[0]!.status, WcStatus.SUCCESS);
      await w.close();
    });
  });

  describe('ACK coalescing', () => {
    it('SENDs posted in one turn are acknowledged by one ACK for the last PSN', async () => {
      const w = await world();
      for (let i = 0; i < 10; i++) postRecv(w.B, w.mb, i, i * 100, 100);
      for (let i = 0; i < 10; i++) post(w.A, w.ma, { wrId: i, opcode: WrOpcode.SEND, length: 50, flags: i === 9 ? SendFlag.SIGNALED : 0 });
      w.clock.run();
      const acks = w.sent.filter((s) => s.dev === 'b');
      assert.equal(acks.length, 1);
      assert.equal(acks[0]!.pkt.bth.psn, 0x109);
      assert.equal(acks[0]!.pkt.aeth!.msn, 10);
      assert.deepEqual(poll(w.A.sendCq).map((c) => c.wrId), [9]);
      assert.equal(poll(w.B.recvCq).length, 10);
      await w.close();
    });
  });

  describe('responder checks (raw peer)', () => {
    /** A peer that crafts packets: registers on the network and records what it receives. */
    class RawPeer {
      readonly got: IbPacket[] = [];
      link!: DatagramLink;
      private readonly buf = Buffer.alloc(8192);
      constructor(readonly w: World, readonly ip = IP_RAW, readonly port = PORT) {}
      async open(): Promise<this> {
        this.link = await this.w.net.factory(
          { deviceName: 'raw', ip: this.ip, port: this.port, recvBufferSize: 0, sendBufferSize: 0, fd: undefined, onError: () => undefined },
          (b, len) => {
            this.got.push(decodeIbPacket(Buffer.from(b.subarray(0, len))));
          },
        );
        return this;
      }
      send(m: IbPacketInput, o: { ipId?: number; corrupt?: boolean; dst?: string; truncate?: number } = {}): void {
        let len = encodeIbPacket(m, this.buf, 0);
        const icrc = computeIcrcUdp4(this.buf, 0, len, ipNum(this.ip), ipNum(o.dst ?? IP_B), this.port, PORT, o.ipId ?? 0, 0x4000);
        this.buf.writeUInt32LE(icrc, len - 4);
        if (o.corrupt === true) this.buf[len - 5] = this.buf[len - 5]! ^ 0x01;
        if (o.truncate !== undefined) len = o.truncate;
        this.link.send(this.buf, len, o.dst ?? IP_B, PORT);
      }
    }

    /** Connects a fresh responder QP on b to the raw peer (dest QPN 0x77), PSN 0x500. */
    async function rawWorld(access = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ, opts: Partial<SoftRoceProviderOptions> = {}): Promise<{ w: World; raw: RawPeer; qpn: number }> {
      const w = await world({ opts });
      const raw = await new RawPeer(w).open();
      const ep = makeEndpoint(w.cb, { access });
      ep.qp.modify({
        state: QpState.RTR, pathMtu: IbMtu.MTU_1024, destQpNum: 0x77, rqPsn: 0x500,
        ah: { dgid: gidFromIpv4(IP_RAW), sgidIndex: 3, hopLimit: 64, portNum: 1 }, maxDestRdAtomic: 4, minRnrTimer: 3,
      });
      (w as unknown as { R: Endpoint }).R = ep;
      return { w, raw, qpn: ep.qp.qpNum };
    }

    const bth = (opcode: number, destQp: number, psn: number, payLen = 0, ackReq = true) =>
      ({ opcode, se: false, migReq: false, padCnt: ibPadCount(payLen), tver: 0, pkey: 0xffff, destQp, ackReq, psn });

    it('PSN ahead: one NAK (0x60, expected PSN) per gap; the expected PSN then continues; behind: re-ACK', async () => {
      const { w, raw, qpn } = await rawWorld();
      const R = (w as unknown as { R: Endpoint }).R;
      const mr = R.pd.registerMr(w.cb.allocMemory(4096), 0, 4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
      const va = (BigInt(mr.addrHi) << 32n) + BigInt(mr.addrLo);
      const write = (psn: number, ackReq = true) => raw.send({ bth: bth(IbOpcode.RDMA_WRITE_ONLY.value, qpn, psn, 4, ackReq), reth: { va, rkey: mr.rkey, dmaLength: 4 }, payload: Buffer.from([1, 2, 3, 4]) });
      write(0x502);
      write(0x503);
      write(0x504);
      w.clock.run();
      assert.equal(raw.got.length, 1);
      assert.equal(raw.got[0]!.aeth!.syndrome, 0x60);
      assert.equal(raw.got[0]!.bth.psn, 0x500);
      assert.equal(raw.got[0]!.bth.destQp, 0x77);
      write(0x500);
      write(0x501);
      w.clock.run();
      assert.equal(raw.got.length, 2);
      assert.deepEqual([raw.got[1]!.aeth!.syndrome, raw.got[1]!.bth.psn, raw.got[1]!.aeth!.msn], [0x1f, 0x501, 2]);
      write(0x500); // duplicate
      w.clock.run();
      assert.deepEqual([raw.got[2]!.aeth!.syndrome, raw.got[2]!.bth.psn], [0x1f, 0x501]);
      assert.equal(w.cb.stats.duplicates, 1);
      await w.close();
    });

    it('without AckReq the responder ACKs every ackCoalesce requests (at the end of the turn)', async () => {
      const { w, raw, qpn } = await rawWorld(undefined, { ackCoalesce: 4 });
      const R = (w as unknown as { R: Endpoint }).R;
      const mr = R.pd.registerMr(w.cb.allocMemory(16384), 0, 16384, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
      const va = (BigInt(mr.addrHi) << 32n) + BigInt(mr.addrLo);
      const acks: number[] = [];
      for (let i = 0; i < 10; i++) {
        const op = i === 0 ? IbOpcode.RDMA_WRITE_FIRST.value : i === 9 ? IbOpcode.RDMA_WRITE_LAST.value : IbOpcode.RDMA_WRITE_MIDDLE.value;
        raw.send({ bth: bth(op, qpn, 0x500 + i, 1024, false), ...(i === 0 ? { reth: { va, rkey: mr.rkey, dmaLength: 10240 } } : {}), payload: Buffer.alloc(1024, i) });
        w.clock.run();
        acks.push(raw.got.length);
      }
      assert.deepEqual(acks, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]);
      assert.deepEqual(raw.got.map((p) => p.bth.psn), [0x503, 0x507]);
      w.clock.advance(1);
      assert.deepEqual(raw.got.map((p) => p.bth.psn), [0x503, 0x507, 0x509]);
      await w.close();
    });

    it('the idle timer ACKs requests that did not ask for one', async () => {
      const { w, raw, qpn } = await rawWorld();
      const R = (w as unknown as { R: Endpoint }).R;
      const mr = R.pd.registerMr(w.cb.allocMemory(4096), 0, 4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
      const va = (BigInt(mr.addrHi) << 32n) + BigInt(mr.addrLo);
      raw.send({ bth: bth(IbOpcode.RDMA_WRITE_ONLY.value, qpn, 0x500, 4, false), reth: { va, rkey: mr.rkey, dmaLength: 4 }, payload: Buffer.alloc(4) });
      w.clock.run();
      assert.equal(raw.got.length, 0);
      w.clock.advance(1);
      assert.deepEqual(raw.got.map((p) => [p.aeth!.syndrome, p.bth.psn]), [[0x1f, 0x500]]);
      await w.close();
    });

    it('a packet longer than the path MTU is NAKed invalid request (0x61) and the responder QP goes to ERR', async () => {
      const { w, raw, qpn } = await rawWorld();
      const R = (w as unknown as { R: Endpoint }).R;
      const mr = R.pd.registerMr(w.cb.allocMemory(4096), 0, 4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
      const va = (BigInt(mr.addrHi) << 32n) + BigInt(mr.addrLo);
      raw.send({ bth: bth(IbOpcode.RDMA_WRITE_ONLY.value, qpn, 0x500, 1400), reth: { va, rkey: mr.rkey, dmaLength: 1400 }, payload: Buffer.alloc(1400, 9) });
      w.clock.run();
      assert.deepEqual(raw.got.map((p) => [p.aeth!.syndrome, p.bth.psn]), [[0x61, 0x500]]);
      assert.equal(R.qp.state, QpState.ERR);
      assert.ok(mr.block.buffer.every((x) => x === 0), 'nothing written');
      await w.close();
    });

    it('FIRST shorter than the MTU, and MIDDLE without FIRST, are invalid requests', async () => {
      for (const variant of ['short-first', 'no-first'] as const) {
        const { w, raw, qpn } = await rawWorld();
        const R = (w as unknown as { R: Endpoint }).R;
        postRecv(R, R.pd.registerMr(w.cb.allocMemory(8192), 0, 8192, Access.LOCAL_WRITE), 1, 0, 8192);
        if (variant === 'short-first') raw.send({ bth: bth(IbOpcode.SEND_FIRST.value, qpn, 0x500, 1000), payload: Buffer.alloc(1000) });
        else raw.send({ bth: bth(IbOpcode.SEND_MIDDLE.value, qpn, 0x500, 1024), payload: Buffer.alloc(1024) });
        w.clock.run();
        assert.deepEqual(raw.got.map((p) => p.aeth!.syndrome), [0x61], variant);
        assert.equal(R.qp.state, QpState.ERR);
        await w.close();
      }
    });

    it('a WRITE with a wrong rkey is NAKed remote access error (0x62)', async () => {
      const { w, raw, qpn } = await rawWorld();
      const R = (w as unknown as { R: Endpoint }).R;
      const mr = R.pd.registerMr(w.cb.allocMemory(4096), 0, 4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
      const va = (BigInt(mr.addrHi) << 32n) + BigInt(mr.addrLo);
      raw.send({ bth: bth(IbOpcode.RDMA_WRITE_ONLY.value, qpn, 0x500, 8), reth: { va, rkey: mr.rkey ^ 0x100, dmaLength: 8 }, payload: Buffer.alloc(8, 1) });
      w.clock.run();
      assert.deepEqual(raw.got.map((p) => [p.aeth!.syndrome, p.bth.psn]), [[0x62, 0x500]]);
      assert.equal(R.qp.state, QpState.ERR);
      await w.close();
    });

    it('drops and counts: bad ICRC, unknown QPN, malformed, bad P_Key, wrong source, QP state', async () => {
      const { w, raw, qpn } = await rawWorld();
      const R = (w as unknown as { R: Endpoint }).R;
      const mr = R.pd.registerMr(w.cb.allocMemory(4096), 0, 4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
      const va = (BigInt(mr.addrHi) << 32n) + BigInt(mr.addrLo);
      const m = (destQp = qpn, pkey = 0xffff, tver = 0): IbPacketInput => ({
        bth: { ...bth(IbOpcode.RDMA_WRITE_ONLY.value, destQp, 0x500, 4), pkey, tver }, reth: { va, rkey: mr.rkey, dmaLength: 4 }, payload: Buffer.from([9, 9, 9, 9]),
      });
      raw.send(m(), { corrupt: true });
      raw.send(m(0x123456));
      raw.send(m(), { truncate: 10 });
      raw.send(m(), { truncate: 30 });
      raw.send(m(qpn, 0x1234));
      const other = await new RawPeer(w, '10.0.0.8').open();
      other.send(m());
      raw.send(m(w.A.qp.qpNum), { dst: IP_A }); // a's QP is connected to b, not to the raw peer
      w.clock.run();
      const s = w.cb.stats;
      assert.deepEqual([s.dropBadIcrc, s.dropUnknownQpn, s.dropMalformed, s.dropWrongSource], [1, 1, 3, 1]);
      assert.equal(w.ca.stats.dropWrongSource, 1);
      assert.equal(raw.got.length, 0, 'dropped silently');
      assert.ok(mr.block.buffer.every((x) => x === 0));
      assert.equal(R.qp.state, QpState.RTR);
      R.qp.modify({ state: QpState.ERR });
      raw.send(m());
      w.clock.run();
      assert.equal(w.cb.stats.dropQpState, 1);
      await w.close();
    });

    it('accepts an ICRC computed over a kernel-chosen IP ID (rdma_rxe sends __ip_select_ident IDs)', async () => {
      const { w, raw, qpn } = await rawWorld();
      const R = (w as unknown as { R: Endpoint }).R;
      const mr = R.pd.registerMr(w.cb.allocMemory(4096), 0, 4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
      const va = (BigInt(mr.addrHi) << 32n) + BigInt(mr.addrLo);
      for (const [i, id] of [0x1234, 0xffff, 0x8000, 1].entries()) {
        raw.send({ bth: bth(IbOpcode.RDMA_WRITE_ONLY.value, qpn, 0x500 + i, 4), reth: { va: va + BigInt(4 * i), rkey: mr.rkey, dmaLength: 4 }, payload: Buffer.from([i, i, i, i + 1]) }, { ipId: id });
      }
      raw.send({ bth: bth(IbOpcode.RDMA_WRITE_ONLY.value, qpn, 0x504, 4), reth: { va, rkey: mr.rkey, dmaLength: 4 }, payload: Buffer.alloc(4) }, { ipId: 0x4321, corrupt: true });
      w.clock.run();
      assert.equal(w.cb.stats.icrcIpIdRecovered, 4);
      assert.equal(w.cb.stats.dropBadIcrc, 1);
      assert.deepEqual([...mr.block.buffer.subarray(0, 16)], [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]);
      await w.close();
    });

    it('ACKs and NAKs outside the requester window are dropped and counted', async () => {
      const w = await world();
      // A raw peer on b's address (another port): the source address is what a QP checks.
      const raw = await new RawPeer(w, IP_B, 5000).open();
      post(w.A, w.ma, { wrId: 1, opcode: WrOpcode.RDMA_WRITE, length: 8, remote: w.mb });
      w.dropA = () => true;
      w.clock.run();
      // Outstanding: PSN 0x100 only. ACK 0x300, NAK 0x0ff, RNR NAK 0x101 are all outside.
      raw.send({ bth: bth(IbOpcode.ACKNOWLEDGE.value, w.A.qp.qpNum, 0x300), aeth: { syndrome: 0x1f, msn: 1 } }, { dst: IP_A });
      raw.send({ bth: bth(IbOpcode.ACKNOWLEDGE.value, w.A.qp.qpNum, 0x0ff), aeth: { syndrome: 0x62, msn: 1 } }, { dst: IP_A });
      raw.send({ bth: bth(IbOpcode.ACKNOWLEDGE.value, w.A.qp.qpNum, 0x101), aeth: { syndrome: 0x21, msn: 1 } }, { dst: IP_A });
      w.clock.run();
      assert.equal(w.ca.stats.dropPsnOutOfWindow, 3);
      assert.equal(w.A.qp.state, QpState.RTS);
      assert.equal(poll(w.A.sendCq).length, 0);
      // A coalesced ACK for the outstanding PSN completes it.
      raw.send({ bth: bth(IbOpcode.ACKNOWLEDGE.value, w.A.qp.qpNum, 0x100), aeth: { syndrome: 0x1f, msn: 1 } }, { dst: IP_A });
      w.clock.run();
      assert.deepEqual(poll(w.A.sendCq).map((c) => [c.wrId, c.status]), [[1, 0]]);
      await w.close();
    });
  });
});
