/**
 * Steady-state data-path operations over a connected mem QP pair, for allocation and speed
 * measurements (bench/, mem/alloc.test.ts). Each op posts, runs the transport synchronously
 * (MemProvider.step) and polls, so it can be repeated in a tight loop; everything it touches
 * (WRs, SGEs, completion array) is allocated once here.
 */
import type { RecvWr, SendWr, WorkCompletion } from '../types.js';
import { Access, IbMtu, newRecvWr, newSendWr, newWorkCompletion, QpState, SendFlag, WrOpcode } from '../types.js';
import type { MemContext } from './context.js';
import type { MemQp } from './qp.js';
import { MemProvider } from './provider.js';

export interface MemHotOps {
  readonly provider: MemProvider;
  /** name -> one complete operation (post, transport, poll). */
  readonly ops: Readonly<Record<string, () => void>>;
  close(): Promise<void>;
}

function connect(x: MemQp, y: MemQp, ys: MemContext, xPsn: number, yPsn: number): void {
  const access = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ;
  x.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: access });
  x.modify({
    state: QpState.RTR,
    pathMtu: IbMtu.MTU_4096,
    destQpNum: y.qpNum,
    rqPsn: yPsn,
    ah: { dgid: ys.queryGid(1, 3).gid, sgidIndex: 3, hopLimit: 1, portNum: 1 },
    maxDestRdAtomic: 1,
    minRnrTimer: 5,
  });
  x.modify({ state: QpState.RTS, sqPsn: xPsn, timeout: 15, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 });
}

export async function memHotOps(): Promise<MemHotOps> {
  const provider = new MemProvider();
  const ca = await provider.open('mem0');
  const cb = await provider.open('mem1');
  const cap = { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 2, maxRecvSge: 1, maxInlineData: 64 };
  const side = (ctx: MemContext) => {
    const pd = ctx.allocPd();
    const scq = ctx.createCq(256);
    const rcq = ctx.createCq(256);
    const qp = pd.createQp({ type: 'RC', sendCq: scq, recvCq: rcq, cap });
    const block = ctx.allocMemory(1 << 16);
    const mr = pd.registerMr(block, 0, block.length, Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ);
    return { pd, scq, rcq, qp, mr };
  };
  const a = side(ca);
  const b = side(cb);
  connect(a.qp, b.qp, cb, 0xfffff0, 0x123);
  connect(b.qp, a.qp, ca, 0x123, 0xfffff0);

  const out: WorkCompletion[] = [newWorkCompletion(), newWorkCompletion(), newWorkCompletion(), newWorkCompletion()];
  const recv: RecvWr = newRecvWr(1);
  recv.sgList[0] = { mr: b.mr, offset: 0, length: 4096 };
  recv.numSge = 1;
  const wr = (opcode: WrOpcode, flags: number, len: number, sges: 1 | 2): SendWr => {
    const w = newSendWr(2);
    w.opcode = opcode;
    w.flags = flags;
    w.sgList[0] = { mr: a.mr, offset: 0, length: sges === 2 ? len / 2 : len };
    w.sgList[1] = { mr: a.mr, offset: 8192, length: len / 2 };
    w.numSge = sges;
    w.raddrHi = b.mr.addrHi;
    w.raddrLo = b.mr.addrLo;
    w.rkey = b.mr.rkey;
    w.immData = 0x01020304;
    return w;
  };
  const sendSmall = wr(WrOpcode.SEND, SendFlag.SIGNALED, 64, 1);
  const sendInline = wr(WrOpcode.SEND, SendFlag.SIGNALED | SendFlag.INLINE, 44, 1);
  const write2 = wr(WrOpcode.RDMA_WRITE, SendFlag.SIGNALED, 4096, 2);
  const writeUns = wr(WrOpcode.RDMA_WRITE, 0, 1024, 2);
  const writeImm = wr(WrOpcode.RDMA_WRITE_WITH_IMM, SendFlag.SIGNALED, 1024, 1);
  const read = wr(WrOpcode.RDMA_READ, SendFlag.SIGNALED, 4096, 2);
  const step = (): void => provider.step();
  const drain = (): void => {
    while (a.scq.poll(out, 4) > 0);
    while (b.rcq.poll(out, 4) > 0);
  };

  const ops: Record<string, () => void> = {
    'SEND 64 B (post_recv, post_send, transport, 2 polls)': () => {
      b.qp.postRecv(recv);
      a.qp.postSend(sendSmall);
      step();
      drain();
    },
    'SEND inline 44 B (CDC-sized)': () => {
      b.qp.postRecv(recv);
      a.qp.postSend(sendInline);
      step();
      drain();
    },
    'RDMA_WRITE 4 KiB, 2 SGEs': () => {
      a.qp.postSend(write2);
      step();
      drain();
    },
    'RDMA_WRITE x3 unsignaled + 1 signaled': () => {
      a.qp.postSend(writeUns);
      a.qp.postSend(writeUns);
      a.qp.postSend(writeUns);
      a.qp.postSend(write2);
      step();
      drain();
    },
    'RDMA_WRITE_WITH_IMM 1 KiB': () => {
      b.qp.postRecv(recv);
      a.qp.postSend(writeImm);
      step();
      drain();
    },
    'RDMA_READ 4 KiB, 2 SGEs': () => {
      a.qp.postSend(read);
      step();
      drain();
    },
  };
  return {
    provider,
    ops,
    async close() {
      await ca.close();
      await cb.close();
    },
  };
}
