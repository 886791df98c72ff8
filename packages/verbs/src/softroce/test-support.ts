/**
 * Small helpers for tests of verbs providers (used by the softroce tests; they use only the verbs
 * interface, so they work on any provider): connecting two RC QPs, and waiting for completions
 * through CQ notification.
 */
import {
  Access, IbMtu, QpState, newWorkCompletion,
  type Context, type Cq, type GidEntry, type IbMtu as IbMtuT, type Pd, type Qp, type WorkCompletion,
} from '../types.js';

export interface Endpoint {
  readonly ctx: Context;
  readonly pd: Pd;
  readonly sendCq: Cq;
  readonly recvCq: Cq;
  readonly qp: Qp;
  readonly gid: GidEntry;
}

export interface EndpointOptions {
  readonly maxSendWr?: number;
  readonly maxRecvWr?: number;
  readonly maxSge?: number;
  readonly maxInlineData?: number;
  readonly cqe?: number;
  readonly access?: number;
  readonly sqSigAll?: boolean;
}

/** The RoCEv2 IPv4 GID entry of port 1. */
export function rocev2Gid(ctx: Context): GidEntry {
  const g = ctx.gidTable(1).find((e) => e.type === 'RoCEv2' && e.ipv4 !== undefined);
  if (g === undefined) throw new Error(`${ctx.device.name} has no RoCEv2 IPv4 GID`);
  return g;
}

export function makeEndpoint(ctx: Context, o: EndpointOptions = {}): Endpoint {
  const pd = ctx.allocPd();
  const cqe = o.cqe ?? 4096;
  const sendCq = ctx.createCq(cqe);
  const recvCq = ctx.createCq(cqe);
  const qp = pd.createQp({
    type: 'RC',
    sendCq,
    recvCq,
    cap: { maxSendWr: o.maxSendWr ?? 256, maxRecvWr: o.maxRecvWr ?? 256, maxSendSge: o.maxSge ?? 4, maxRecvSge: o.maxSge ?? 4, maxInlineData: o.maxInlineData ?? 64 },
    sqSigAll: o.sqSigAll ?? false,
  });
  qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: o.access ?? (Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ) });
  return { ctx, pd, sendCq, recvCq, qp, gid: rocev2Gid(ctx) };
}

export interface ConnectOptions {
  readonly mtu?: IbMtuT;
  readonly timeout?: number;
  readonly retryCnt?: number;
  readonly rnrRetry?: number;
  readonly minRnrTimer?: number;
  readonly psnA?: number;
  readonly psnB?: number;
}

/** Brings `a` and `b` (both in INIT) to RTS, connected to each other. */
export function connect(a: Endpoint, b: Endpoint, o: ConnectOptions = {}): void {
  const psnA = o.psnA ?? 0x100;
  const psnB = o.psnB ?? 0x200;
  const rtr = (self: Endpoint, peer: Endpoint, rqPsn: number): void => {
    self.qp.modify({
      state: QpState.RTR,
      pathMtu: o.mtu ?? IbMtu.MTU_1024,
      destQpNum: peer.qp.qpNum,
      rqPsn,
      ah: { dgid: peer.gid.gid, sgidIndex: self.gid.index, hopLimit: 64, portNum: 1 },
      maxDestRdAtomic: 16,
      minRnrTimer: o.minRnrTimer ?? 1,
    });
  };
  const rts = (self: Endpoint, sqPsn: number): void => {
    self.qp.modify({ state: QpState.RTS, sqPsn, timeout: o.timeout ?? 14, retryCnt: o.retryCnt ?? 7, rnrRetry: o.rnrRetry ?? 7, maxRdAtomic: 16 });
  };
  rtr(a, b, psnB);
  rtr(b, a, psnA);
  rts(a, psnA);
  rts(b, psnB);
}

/**
 * Polls `cq` until `n` completions arrived (waiting through arm + handler), or rejects after
 * `timeoutMs` with what it has.
 */
export function waitCompletions(cq: Cq, n: number, timeoutMs = 5000): Promise<WorkCompletion[]> {
  const got: WorkCompletion[] = [];
  const buf = [newWorkCompletion(), newWorkCompletion(), newWorkCompletion(), newWorkCompletion()];
  return new Promise((resolve, reject) => {
    const drain = (): boolean => {
      for (;;) {
        const k = cq.poll(buf, Math.min(buf.length, n - got.length));
        for (let i = 0; i < k; i++) got.push({ ...buf[i]! });
        if (got.length >= n) return true;
        if (k === 0) return false;
      }
    };
    const timer = setTimeout(() => {
      cq.setHandler(null);
      reject(new Error(`timed out after ${timeoutMs} ms with ${got.length}/${n} completions: ${JSON.stringify(got.slice(-3))}`));
    }, timeoutMs);
    const onEvent = (): void => {
      if (drain()) {
        clearTimeout(timer);
        cq.setHandler(null);
        resolve(got);
        return;
      }
      cq.arm();
      if (drain()) {
        clearTimeout(timer);
        cq.setHandler(null);
        resolve(got);
      }
    };
    cq.setHandler(onEvent);
    if (drain()) {
      clearTimeout(timer);
      cq.setHandler(null);
      resolve(got);
      return;
    }
    cq.arm();
  });
}
