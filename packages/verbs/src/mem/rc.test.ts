// mem transport details beyond the conformance suite: what makes a request go unanswered, the
// timer clamps, the rarer responder errors, slot accounting, PSNs and counters.
import assert from 'node:assert/strict';
import { Errno } from '../errors.js';
import type { Context } from '../types.js';
import { Access, QpState, SendFlag, WcOpcode, WcStatus, WrOpcode } from '../types.js';
import type { ConnectOptions, Side, SideOptions } from '../testing/conformance.js';
import { ALL_ACCESS, assertVerbsError, connectPair, findRoceV2Ipv4Gid, makeSide, pollNow, recvWr, sendWr, sge, sleep, waitCompletions } from '../testing/conformance.js';
import type { MemContext } from './context.js';
import type { MemProviderOptions } from './provider.js';
import { MemProvider } from './provider.js';

interface MemPair {
  p: MemProvider;
  a: Side;
  b: Side;
  ca: MemContext;
  cb: MemContext;
}

const opened: Context[] = [];
/** Each describe closes the contexts its tests opened. */
function closeOpened(): void {
  afterEach(async () => {
    for (const c of opened.splice(0)) await c.close();
  });
}

async function pair(o: { provider?: MemProviderOptions; a?: SideOptions; b?: SideOptions; connect?: ConnectOptions | false } = {}): Promise<MemPair> {
  const p = new MemProvider(o.provider);
  const ca = await p.open('mem0');
  const cb = await p.open('mem1');
  opened.push(ca, cb);
  const a = makeSide(ca, 0x100, o.a);
  const b = makeSide(cb, 0x200, o.b);
  if (o.connect !== false) connectPair(a, b, o.connect);
  return { p, a, b, ca, cb };
}

/** Resolves after the fabric turn already scheduled (setImmediate callbacks run in order). */
const turn = () => new Promise<void>((r) => setImmediate(r));

const write = (s: Side, peer: Side, wrId: number, len = 8, flags: number = SendFlag.SIGNALED) =>
  s.qp.postSend(sendWr({ wrId, opcode: WrOpcode.RDMA_WRITE, flags, sges: [sge(s.mr, 0, len)], remote: { mr: peer.mr, offset: 0 } }));

/** Brings a and b up by hand, as connectPair would, with per-side overrides. */
function connectManual(a: Side, b: Side, o: { aRqPsn?: number; aSgidIndex?: number; aDest?: number; aMtu?: 1 | 2 | 3 | 4 | 5; bMtu?: 1 | 2 | 3 | 4 | 5; timeout?: number; retryCnt?: number; bAccess?: number; bMaxDestRdAtomic?: number }) {
  const ga = findRoceV2Ipv4Gid(a.ctx);
  const gb = findRoceV2Ipv4Gid(b.ctx);
  a.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: ALL_ACCESS });
  b.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: o.bAccess ?? ALL_ACCESS });
  a.qp.modify({ state: QpState.RTR, pathMtu: o.aMtu ?? 5, destQpNum: o.aDest ?? b.qp.qpNum, rqPsn: o.aRqPsn ?? b.psn, ah: { dgid: gb.gid, sgidIndex: o.aSgidIndex ?? ga.index, hopLimit: 1, portNum: 1 }, maxDestRdAtomic: 1, minRnrTimer: 5 });
  b.qp.modify({ state: QpState.RTR, pathMtu: o.bMtu ?? 5, destQpNum: a.qp.qpNum, rqPsn: a.psn, ah: { dgid: ga.gid, sgidIndex: gb.index, hopLimit: 1, portNum: 1 }, maxDestRdAtomic: o.bMaxDestRdAtomic ?? 1, minRnrTimer: 5 });
  for (const s of [a, b]) s.qp.modify({ state: QpState.RTS, sqPsn: s.psn, timeout: o.timeout ?? 8, retryCnt: o.retryCnt ?? 1, rnrRetry: 7, maxRdAtomic: 1 });
}

describe('mem: unanswered requests', () => {
  closeOpened();
  it('a PSN the responder does not expect is dropped (outOfSeqRequest) and ends in RETRY_EXC_ERR', async () => {
    const { a, b, cb } = await pair({ connect: false });
    // connectManual's a* options apply to its first argument: b expects a PSN one ahead of a's.
    connectManual(b, a, { aRqPsn: a.psn + 1 });
    write(a, b, 1);
    const [wc] = await waitCompletions(a.scq, 1);
    assert.equal(wc!.status, WcStatus.RETRY_EXC_ERR);
    assert.equal(cb.counters.outOfSeqRequest, 2, 'first try + 1 retry');
    assert.ok(b.block.buffer.every((x) => x === 0));
  });

  it('a RoCEv1 source GID toward a RoCEv2 QP does not get through (droppedBadAddress)', async () => {
    const { a, b, cb } = await pair({ connect: false });
    connectManual(a, b, { aSgidIndex: 2 }); // index 2: the same IPv4-mapped GID, as RoCEv1
    write(a, b, 1);
    assert.equal((await waitCompletions(a.scq, 1))[0]!.status, WcStatus.RETRY_EXC_ERR);
    assert.equal(cb.counters.droppedBadAddress, 2);
  });

  it('an unknown destination QPN is dropped (droppedNoQp)', async () => {
    const { a, b, cb } = await pair({ connect: false });
    connectManual(a, b, { aDest: 0xabcdef });
    write(a, b, 1);
    assert.equal((await waitCompletions(a.scq, 1))[0]!.status, WcStatus.RETRY_EXC_ERR);
    assert.equal(cb.counters.droppedNoQp, 2);
  });

  it('a responder still in INIT drops requests; once it reaches RTR a retry gets through', async () => {
    const { a, b, cb } = await pair({ connect: false });
    const ga = findRoceV2Ipv4Gid(a.ctx);
    const gb = findRoceV2Ipv4Gid(b.ctx);
    a.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: ALL_ACCESS });
    a.qp.modify({ state: QpState.RTR, pathMtu: 5, destQpNum: b.qp.qpNum, rqPsn: b.psn, ah: { dgid: gb.gid, sgidIndex: ga.index, hopLimit: 1, portNum: 1 }, maxDestRdAtomic: 1, minRnrTimer: 5 });
    a.qp.modify({ state: QpState.RTS, sqPsn: a.psn, timeout: 12, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 });
    b.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: ALL_ACCESS });
    a.block.buffer.fill(9, 0, 8);
    write(a, b, 1);
    await sleep(5);
    assert.ok(cb.counters.droppedBadState >= 1);
    b.qp.modify({ state: QpState.RTR, pathMtu: 5, destQpNum: a.qp.qpNum, rqPsn: a.psn, ah: { dgid: ga.gid, sgidIndex: gb.index, hopLimit: 1, portNum: 1 }, maxDestRdAtomic: 1, minRnrTimer: 5 });
    assert.equal((await waitCompletions(a.scq, 1))[0]!.status, WcStatus.SUCCESS);
    assert.ok(b.block.buffer.subarray(0, 8).every((x) => x === 9));
  });

  it('the ACK timeout is clamped to maxAckTimeoutMs: timeout 20 (4.3 s) with retryCnt 1 fails within ~2 clamps', async () => {
    const { a, b, ca } = await pair({ provider: { maxAckTimeoutMs: 5 }, connect: { timeout: 20, retryCnt: 1 } });
    b.qp.close();
    const t0 = performance.now();
    write(a, b, 1);
    assert.equal((await waitCompletions(a.scq, 1))[0]!.status, WcStatus.RETRY_EXC_ERR);
    const dt = performance.now() - t0;
    assert.ok(dt >= 9 && dt < 500, `took ${dt.toFixed(1)} ms`);
    assert.equal(ca.counters.completerRetryErr, 2);
    assert.equal(ca.counters.retryExceededErr, 1);
  });

  it('timeout 0 is infinite: the requester waits until the QP is moved to ERR', async () => {
    const { a, b } = await pair({ connect: { timeout: 0, retryCnt: 0 } });
    b.qp.close();
    write(a, b, 1);
    await sleep(30);
    assert.deepEqual(pollNow(a.scq), []);
    assert.equal(a.qp.state, QpState.RTS);
    a.qp.modify({ state: QpState.ERR });
    assert.equal((await waitCompletions(a.scq, 1))[0]!.status, WcStatus.WR_FLUSH_ERR);
  });
});

describe('mem: responder errors', () => {
  closeOpened();
  it('a message longer than the responder path MTU allows is an invalid request (both QPs to ERR)', async () => {
    const { a, b } = await pair({ connect: false });
    connectManual(a, b, { aMtu: 5, bMtu: 1 });
    b.qp.postRecv(recvWr(1, [sge(b.mr, 0, 4096)]));
    a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 1000)] }));
    assert.equal((await waitCompletions(a.scq, 1))[0]!.status, WcStatus.REM_INV_REQ_ERR);
    assert.equal((await waitCompletions(b.rcq, 1))[0]!.status, WcStatus.WR_FLUSH_ERR);
    assert.equal(b.qp.state, QpState.ERR);
  });

  it('a receive SGE with a bad lkey: LOC_PROT_ERR on the receive, REM_OP_ERR at the requester', async () => {
    const { a, b } = await pair();
    const stale = b.pd.registerMr(b.block, 0, 4096, ALL_ACCESS);
    stale.close();
    b.qp.postRecv(recvWr(1, [sge(stale, 0, 64)]));
    a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 16)] }));
    assert.equal((await waitCompletions(b.rcq, 1))[0]!.status, WcStatus.LOC_PROT_ERR);
    assert.equal((await waitCompletions(a.scq, 1))[0]!.status, WcStatus.REM_OP_ERR);
    assert.equal(a.qp.state, QpState.ERR);
    assert.equal(b.qp.state, QpState.ERR);
  });

  it('a receive without LOCAL_WRITE is a protection error too; an unused bad SGE is not checked', async () => {
    const { a, b } = await pair();
    const ro = b.pd.registerMr(b.block, 0, 4096, Access.REMOTE_READ);
    const stale = b.pd.registerMr(b.block, 0, 4096, ALL_ACCESS);
    stale.close();
    // 16 bytes fit in the first SGE: the stale second one is never touched.
    b.qp.postRecv(recvWr(1, [sge(b.mr, 100, 16), sge(stale, 0, 64)]));
    b.qp.postRecv(recvWr(2, [sge(ro, 0, 64)]));
    a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 16)] }));
    a.qp.postSend(sendWr({ wrId: 4, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 16)] }));
    const r = await waitCompletions(b.rcq, 2);
    assert.deepEqual(r.map((w) => [w.wrId, w.status]), [[1, WcStatus.SUCCESS], [2, WcStatus.LOC_PROT_ERR]]);
  });

  it('READ needs REMOTE_READ in the responder QP access flags and maxDestRdAtomic > 0', async () => {
    for (const o of [{ bAccess: Access.LOCAL_WRITE | Access.REMOTE_WRITE }, { bMaxDestRdAtomic: 0 }]) {
      const { a, b } = await pair({ connect: false });
      connectManual(a, b, o);
      a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_READ, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 } }));
      assert.equal((await waitCompletions(a.scq, 1))[0]!.status, WcStatus.REM_INV_REQ_ERR, JSON.stringify(o));
      assert.equal(b.qp.state, QpState.ERR);
    }
  });

  it('WRITE_WITH_IMM with a bad rkey completes the consumed receive with REM_ACCESS_ERR', async () => {
    const { a, b } = await pair();
    b.qp.postRecv(recvWr(1, []));
    b.qp.postRecv(recvWr(2, []));
    a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 }, rkey: 0x12345678 }));
    const r = await waitCompletions(b.rcq, 2);
    assert.deepEqual(r.map((w) => [w.wrId, w.status]), [[1, WcStatus.REM_ACCESS_ERR], [2, WcStatus.WR_FLUSH_ERR]]);
  });

  it('a zero-length RDMA WRITE needs no valid rkey (IBA 9.7.4.1.5)', async () => {
    const { a, b } = await pair();
    a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sges: [], raddr: { hi: 1, lo: 2 }, rkey: 0xdead }));
    b.qp.postRecv(recvWr(2, []));
    a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, sges: [], raddr: { hi: 1, lo: 2 }, rkey: 0xdead, immData: 7 }));
    assert.deepEqual((await waitCompletions(a.scq, 2)).map((w) => w.status), [WcStatus.SUCCESS, WcStatus.SUCCESS]);
    const [r] = await waitCompletions(b.rcq, 1);
    assert.deepEqual([r!.opcode, r!.byteLen, r!.immData], [WcOpcode.RECV_RDMA_WITH_IMM, 0, 7]);
  });
});

describe('mem: queues, PSNs, counters', () => {
  closeOpened();
  it('unsignaled WRs keep their slots until a later signaled WR completes (ENOMEM otherwise)', async () => {
    const { a, b, p } = await pair({ a: { cap: { maxSendWr: 2 } } });
    write(a, b, 1, 8, 0);
    write(a, b, 2, 8, 0);
    p.step();
    assertVerbsError(() => write(a, b, 3), 'post_send', Errno.ENOMEM);
    // RESET gives everything back; reconnect and go on.
    const b2 = makeSide(b.ctx, 0x300);
    a.qp.modify({ state: QpState.RESET });
    connectPair({ ...a, psn: 0x400 }, b2);
    write(a, b2, 4);
    write(a, b2, 5, 8, 0);
    assert.deepEqual((await waitCompletions(a.scq, 1)).map((w) => w.wrId), [4]);
    write(a, b2, 6); // 5 (done, unsignaled) still holds its slot; completing 6 releases both
    assert.deepEqual((await waitCompletions(a.scq, 1)).map((w) => w.wrId), [6]);
    write(a, b2, 7);
    write(a, b2, 8);
    assert.deepEqual((await waitCompletions(a.scq, 2)).map((w) => w.wrId), [7, 8]);
  });

  it('RESET discards queued WRs without completions', async () => {
    const { a, b } = await pair({ connect: { rnrRetry: 7 } });
    a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 8)] })); // RNR: b has no receive
    a.qp.postRecv(recvWr(2, [sge(a.mr, 0, 8)]));
    await sleep(5);
    a.qp.modify({ state: QpState.RESET });
    await sleep(5);
    assert.deepEqual(pollNow(a.scq), []);
    assert.deepEqual(pollNow(a.rcq), []);
    assert.deepEqual(a.qp.query().sqPsn, 0);
    void b;
  });

  it('both ends advance their PSN by the packets of each message, wrapping at 2^24', async () => {
    const { a, b } = await pair({ a: { bytes: 1 << 16 } });
    a.qp.modify({ state: QpState.RESET });
    b.qp.modify({ state: QpState.RESET });
    connectPair({ ...a, psn: 0xfffffe }, b);
    write(a, b, 1, 4096 * 3 + 1); // 4 packets at MTU 4096
    write(a, b, 2, 0); // 1 packet
    await waitCompletions(a.scq, 2);
    assert.equal(a.qp.query().sqPsn, (0xfffffe + 5) & 0xffffff);
    assert.equal(b.qp.query().rqPsn, 3);
  });

  it('a non-inline WR reads its buffer when it executes, not when it is posted', async () => {
    const { a, b } = await pair();
    a.block.buffer.fill(1, 0, 8);
    write(a, b, 1);
    a.block.buffer.fill(2, 0, 8); // too early on real hardware too: the HCA may not have read it yet
    await waitCompletions(a.scq, 1);
    assert.ok(b.block.buffer.subarray(0, 8).every((x) => x === 2));
  });

  it('step() runs the transport synchronously; handlers still wait for the event loop', async () => {
    const { a, b, p } = await pair();
    let calls = 0;
    a.scq.setHandler(() => calls++);
    a.scq.arm();
    write(a, b, 1);
    assert.deepEqual(pollNow(a.scq), [], 'nothing completes inside post_send');
    p.step();
    assert.equal(calls, 0);
    assert.deepEqual(pollNow(a.scq).map((w) => w.wrId), [1]);
    await turn();
    assert.equal(calls, 1);
  });

  it('counts sends, receives and RNR NAKs per device', async () => {
    const { a, b, ca, cb } = await pair({ connect: { minRnrTimer: 1 } });
    a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 8)] }));
    await sleep(5);
    b.qp.postRecv(recvWr(2, [sge(b.mr, 0, 8)]));
    await waitCompletions(a.scq, 1);
    write(a, b, 3);
    await waitCompletions(a.scq, 1);
    assert.equal(ca.counters.rdmaSends, 2);
    assert.equal(cb.counters.rdmaRecvs, 2);
    assert.ok(cb.counters.sendRnrErr >= 1 && cb.counters.sendRnrErr === ca.counters.rcvdRnrErr);
  });

  it('a destroyed QP leaves its completions in the CQ and loses its queued WRs silently', async () => {
    const { a, b, p } = await pair({ connect: { rnrRetry: 7 } });
    write(a, b, 1);
    p.step();
    a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 8)] })); // RNR
    p.step();
    a.qp.close();
    await sleep(5);
    assert.deepEqual(pollNow(a.scq).map((w) => w.wrId), [1]);
    assertVerbsError(() => a.qp.query(), 'query_qp', Errno.EINVAL);
  });
});

describe('mem: create_qp and CQ rules', () => {
  closeOpened();
  it('create_qp checks the type, the caps and the CQs', async () => {
    const p = new MemProvider();
    const ctx = await p.open('mem0');
    const other = await p.open('mem1');
    opened.push(ctx, other);
    const pd = ctx.allocPd();
    const cq = ctx.createCq(16);
    const cap = { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 };
    const bad: [string, unknown][] = [
      ['type', { type: 'UD', sendCq: cq, recvCq: cq, cap }],
      ['maxSendWr 0', { type: 'RC', sendCq: cq, recvCq: cq, cap: { ...cap, maxSendWr: 0 } }],
      ['maxRecvWr too big', { type: 'RC', sendCq: cq, recvCq: cq, cap: { ...cap, maxRecvWr: 1 << 20 } }],
      ['maxSendSge too big', { type: 'RC', sendCq: cq, recvCq: cq, cap: { ...cap, maxSendSge: 33 } }],
      ['maxInlineData too big', { type: 'RC', sendCq: cq, recvCq: cq, cap: { ...cap, maxInlineData: 257 } }],
      ['CQ of another context', { type: 'RC', sendCq: other.createCq(4), recvCq: cq, cap }],
    ];
    for (const [what, init] of bad) assertVerbsError(() => pd.createQp(init as Parameters<typeof pd.createQp>[0]), 'create_qp', Errno.EINVAL, (e) => assert.ok(e.message.length > 0, what));
    assertVerbsError(() => ctx.createCq(0), 'create_cq', Errno.EINVAL);
    const qp = pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap });
    assertVerbsError(() => cq.close(), 'destroy_cq', Errno.EBUSY);
    qp.close();
    cq.close();
    assertVerbsError(() => pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap }), 'create_qp', Errno.EINVAL);
  });

  it('post_send rejects INLINE READ and unknown opcodes', async () => {
    const { a, b } = await pair();
    assertVerbsError(() => a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_READ, flags: SendFlag.INLINE, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 } })), 'post_send', Errno.EINVAL);
    assertVerbsError(() => a.qp.postSend(sendWr({ wrId: 1, opcode: 9 as WrOpcode, sges: [] })), 'post_send', Errno.EINVAL);
    assertVerbsError(() => a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: [sge(a.mr, -1, 8)] })), 'post_send', Errno.EINVAL);
  });

  it('a CQ overrun counts the lost completion and moves the QPs using the CQ to ERR', async () => {
    const { a, b, p } = await pair({ a: { cqe: 2 } });
    write(a, b, 1);
    write(a, b, 2);
    write(a, b, 3);
    p.step();
    assert.equal(a.scq.overruns, 1);
    assert.equal(a.qp.state, QpState.ERR);
    assert.deepEqual(pollNow(a.scq).map((w) => [w.wrId, w.status]), [[1, WcStatus.SUCCESS], [2, WcStatus.SUCCESS]]);
  });

  it('arm(true) wakes only for solicited receives (or errors)', async () => {
    const { a, b } = await pair();
    let calls = 0;
    b.rcq.setHandler(() => calls++);
    b.rcq.arm(true);
    b.qp.postRecv(recvWr(1, [sge(b.mr, 0, 8)]));
    b.qp.postRecv(recvWr(2, [sge(b.mr, 0, 8)]));
    a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 8)] }));
    await waitCompletions(a.scq, 1);
    await sleep(2);
    assert.equal(calls, 0, 'an unsolicited receive does not wake a solicited-only arm');
    a.qp.postSend(sendWr({ wrId: 4, opcode: WrOpcode.SEND, flags: SendFlag.SIGNALED | SendFlag.SOLICITED, sges: [sge(a.mr, 0, 8)] }));
    await waitCompletions(a.scq, 1);
    await sleep(2);
    assert.equal(calls, 1);
  });

  it('an event raised while no handler is set is delivered when one is set', async () => {
    const { a, b } = await pair();
    a.scq.arm();
    write(a, b, 1);
    await turn(); // the completion and its event happen here, with no handler set
    let calls = 0;
    a.scq.setHandler(() => calls++);
    assert.equal(calls, 0);
    await turn();
    assert.equal(calls, 1);
  });
});
