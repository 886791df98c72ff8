/**
 * The verbs conformance suite: one set of semantic tests (libibverbs / IBA RC semantics, as
 * types.ts defines them) that every provider must pass. A provider's test file calls
 *
 *   verbsConformance('mem', async () => { ...open two devices...; return { a, b, cleanup } }, options);
 *
 * `setup` runs before every test and must return two open contexts whose devices can reach each
 * other (two devices of one in-process fabric, two softroce devices on loopback, two ports of a
 * real adapter, ...); `cleanup` runs after every test and must close both (it is called even
 * when a test closed a context itself; Context.close is idempotent).
 *
 * Every test creates what it needs (PD, memory, MRs, CQs, RC QPs) and connects QPs with
 * `connectPair`, which does exactly what SMC-R does (smc_ib_modify_qp_init/rtr/rts): pick the
 * RoCEv2 IPv4-mapped GID, exchange QPN, PSN, GID and MTU, path MTU = min of both ends. Waits are
 * bounded and driven by CQ notification (`waitCompletions`), so a broken provider fails, never
 * hangs. The suite runs in a few seconds on a software provider.
 */
import assert from 'node:assert/strict';
import { Errno, VerbsError } from '../errors.js';
import type { Context, Cq, GidEntry, IbMtu, MemoryBlock, Mr, Pd, Qp, QpCap, RecvWr, SendWr, Sge, WorkCompletion } from '../types.js';
import { Access, newWorkCompletion, QpState, qpStateName, SendFlag, WcOpcode, WcStatus, wcStatusName, WrOpcode } from '../types.js';

// ------------------------------------------------------------------------------------------
// Options

/**
 * Points on which providers may legitimately differ. Defaults are what the IBA says and what mem
 * does; a provider that deviates passes the value it implements and says why in its README.
 */
export interface ConformanceOptions {
  /** Upper bound of every wait for completions, in ms. Default 2000. */
  readonly waitMs?: number;
  /** Bytes of the large RDMA WRITE / READ test (segmented by packet providers). Default 1 MiB. */
  readonly largeBytes?: number;
  /** Number of SENDs in the ordering test. Default 512. */
  readonly smallSends?: number;
  /**
   * State of the responder QP after a remote access error, a too-small receive or an invalid
   * request (IBA class C responder error: ERR on rxe and mem). null: not checked. Default ERR.
   */
  readonly responderStateAfterRemoteError?: QpState | null;
  /** Status of the responder's receive when a SEND does not fit. Default LOC_LEN_ERR (IBA, mlx5; rxe says REM_INV_REQ_ERR). */
  readonly lenErrResponderStatus?: number;
  /** Status of the requester's SEND when the receive is too small. Default REM_INV_REQ_ERR (NAK invalid request). */
  readonly lenErrRequesterStatus?: number;
  /** RTS `timeout` for the dead-peer test. Default 8 (4.096 us * 2^8 = 1.05 ms). */
  readonly deadPeerTimeout?: number;
  /** RTS `retryCnt` for the dead-peer test. Default 3. */
  readonly deadPeerRetryCnt?: number;
  /** Upper bound, in ms, for the dead peer to be detected. Default 3000. */
  readonly deadPeerBudgetMs?: number;
}

export interface ConformancePair {
  readonly a: Context;
  readonly b: Context;
  cleanup(): Promise<void>;
}

// ------------------------------------------------------------------------------------------
// Helpers (exported: engine tests reuse them)

const PORT = 1;

/** The RoCEv2 IPv4-mapped GID of `port`, as SMC-R selects it (smc_ib_determine_gid). */
export function findRoceV2Ipv4Gid(ctx: Context, portNum = PORT): GidEntry {
  for (const e of ctx.gidTable(portNum)) {
    if (e.type === 'RoCEv2' && e.ipv4 !== undefined && isIpv4Mapped(e.gid)) return e;
  }
  throw new Error(`${ctx.device.name} port ${portNum} has no RoCEv2 IPv4-mapped GID`);
}

function isIpv4Mapped(gid: Uint8Array): boolean {
  if (gid.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (gid[i] !== 0) return false;
  return gid[10] === 0xff && gid[11] === 0xff;
}

/** One end of an RC connection, as SMC-R exchanges it in CLC (QPN, PSN, GID, MTU). */
export interface Endpoint {
  readonly ctx: Context;
  readonly qp: Qp;
  /** Initial send PSN of this end (24 bits). */
  readonly psn: number;
  readonly portNum?: number;
}

export interface ConnectOptions {
  /** QP access flags (INIT). SMC-R: LOCAL_WRITE | REMOTE_WRITE. Default also REMOTE_READ. */
  readonly accessFlags?: number;
  readonly timeout?: number;
  readonly retryCnt?: number;
  readonly rnrRetry?: number;
  readonly minRnrTimer?: number;
  /** Stop after RTR (both ends) instead of RTS. */
  readonly onlyRtr?: boolean;
}

/** The attributes SMC-R uses (smc_ib.c): min RNR timer 5, timeout 15, retry 7, RNR retry 7. */
export const SMC_QP_ATTRS = { minRnrTimer: 5, timeout: 15, retryCnt: 7, rnrRetry: 7 } as const;

/**
 * Connects two fresh (RESET) RC QPs to each other through INIT, RTR and RTS, as SMC-R does:
 * each end uses the peer's QPN, PSN and RoCEv2 GID, and path MTU = min(local active MTU, peer MTU).
 */
export function connectPair(x: Endpoint, y: Endpoint, options: ConnectOptions = {}): void {
  const access = options.accessFlags ?? Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ;
  const info = (e: Endpoint) => {
    const port = e.portNum ?? PORT;
    return { port, gid: findRoceV2Ipv4Gid(e.ctx, port), mtu: e.ctx.queryPort(port).activeMtu };
  };
  const ix = info(x);
  const iy = info(y);
  const mtu = Math.min(ix.mtu, iy.mtu) as IbMtu;
  for (const [self, me, peer, them] of [[x, ix, y, iy], [y, iy, x, ix]] as const) {
    self.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: me.port, accessFlags: access });
    self.qp.modify({
      state: QpState.RTR,
      pathMtu: mtu,
      destQpNum: peer.qp.qpNum,
      rqPsn: peer.psn,
      ah: { dgid: them.gid.gid, sgidIndex: me.gid.index, hopLimit: 1, portNum: me.port },
      maxDestRdAtomic: 1,
      minRnrTimer: options.minRnrTimer ?? SMC_QP_ATTRS.minRnrTimer,
    });
  }
  if (options.onlyRtr === true) return;
  for (const self of [x, y]) {
    self.qp.modify({
      state: QpState.RTS,
      sqPsn: self.psn,
      timeout: options.timeout ?? SMC_QP_ATTRS.timeout,
      retryCnt: options.retryCnt ?? SMC_QP_ATTRS.retryCnt,
      rnrRetry: options.rnrRetry ?? SMC_QP_ATTRS.rnrRetry,
      maxRdAtomic: 1,
    });
  }
}

/** A completion copied out of the reusable poll array. */
export type Completion = Readonly<WorkCompletion>;

export function describeCompletions(wcs: readonly Completion[]): string {
  return wcs.map((w) => `{wrId ${w.wrId}, ${wcStatusName(w.status)}, opcode ${w.opcode}, byteLen ${w.byteLen}}`).join(', ') || 'none';
}

/**
 * Waits, through arm() and the CQ handler (no busy polling), until `n` completions have been
 * polled from `cq`; rejects after `timeoutMs` with what arrived. Polls at most `n`, so later
 * completions stay in the CQ. Leaves no handler set.
 */
export function waitCompletions(cq: Cq, n: number, timeoutMs = 2000): Promise<Completion[]> {
  return new Promise((resolve, reject) => {
    const got: Completion[] = [];
    const out: WorkCompletion[] = [];
    for (let i = 0; i < 16; i++) out.push(newWorkCompletion());
    let done = false;
    const drain = (): void => {
      while (got.length < n) {
        const k = cq.poll(out, Math.min(out.length, n - got.length));
        if (k === 0) return;
        for (let i = 0; i < k; i++) got.push({ ...out[i]! });
      }
    };
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cq.setHandler(null);
      if (err !== undefined) reject(err);
      else resolve(got);
    };
    const check = (): boolean => {
      drain();
      if (got.length < n) return false;
      finish();
      return true;
    };
    const onEvent = (): void => {
      if (done || check()) return;
      cq.arm();
      check();
    };
    const timer = setTimeout(() => {
      if (check()) return;
      finish(new Error(`timed out after ${timeoutMs} ms waiting for ${n} completion(s); got ${got.length}: ${describeCompletions(got)}`));
    }, timeoutMs);
    cq.setHandler(onEvent);
    if (check()) return;
    cq.arm();
    check();
  });
}

/** Resolves after `ms` (lets a provider run; never used to wait for a result). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cq` once and returns what it held. */
export function pollNow(cq: Cq, max = 64): Completion[] {
  const out: WorkCompletion[] = [];
  for (let i = 0; i < max; i++) out.push(newWorkCompletion());
  const n = cq.poll(out, max);
  return out.slice(0, n).map((w) => ({ ...w }));
}

/** (hi, lo) + off with carry. */
export function addrAdd(hi: number, lo: number, off: number): { hi: number; lo: number } {
  const sum = lo + off;
  return { hi: (hi + Math.floor(sum / 4294967296)) >>> 0, lo: sum % 4294967296 >>> 0 };
}

export function sge(mr: Mr, offset: number, length: number): Sge {
  return { mr, offset, length };
}

export interface WrSpec {
  readonly wrId: number;
  readonly opcode: WrOpcode;
  readonly sges?: readonly Sge[];
  readonly flags?: number;
  /** Remote target: an MR of the peer plus an offset (address and rkey taken from it). */
  readonly remote?: { readonly mr: Mr; readonly offset: number };
  /** Explicit remote address / rkey (override `remote`). */
  readonly raddr?: { readonly hi: number; readonly lo: number };
  readonly rkey?: number;
  readonly immData?: number;
}

export function sendWr(spec: WrSpec): SendWr {
  const sges = spec.sges ?? [];
  let raddr = spec.raddr ?? { hi: 0, lo: 0 };
  let rkey = spec.rkey ?? 0;
  if (spec.remote !== undefined) {
    if (spec.raddr === undefined) raddr = addrAdd(spec.remote.mr.addrHi, spec.remote.mr.addrLo, spec.remote.offset);
    if (spec.rkey === undefined) rkey = spec.remote.mr.rkey;
  }
  return {
    wrId: spec.wrId,
    opcode: spec.opcode,
    flags: spec.flags ?? SendFlag.SIGNALED,
    sgList: [...sges],
    numSge: sges.length,
    raddrHi: raddr.hi,
    raddrLo: raddr.lo,
    rkey,
    immData: spec.immData ?? 0,
  };
}

export function recvWr(wrId: number, sges: readonly Sge[]): RecvWr {
  return { wrId, sgList: [...sges], numSge: sges.length };
}

/** Deterministic, position-dependent bytes (so a shifted copy is detected). */
export function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * Whether `e` is a VerbsError. By name, not instanceof: this suite is source, and a provider in
 * another package (bindings/ibverbs) throws the class of @smc-r/verbs' built dist, a second copy.
 */
function isVerbsError(e: unknown): e is VerbsError {
  return e instanceof Error && e.name === 'VerbsError' && typeof (e as VerbsError).verb === 'string' && typeof (e as VerbsError).errno === 'number';
}

/** Asserts `fn` throws a VerbsError for `verb` with `errno`. */
export function assertVerbsError(fn: () => unknown, verb: string, errno: number, also?: (e: VerbsError) => void): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isVerbsError(e), `expected a VerbsError, got ${String(e)}`);
    assert.equal(e.verb, verb, `verb of: ${e.message}`);
    assert.equal(e.errno, errno, `errno of: ${e.message}`);
    also?.(e);
    return true;
  });
}

// ------------------------------------------------------------------------------------------
// Fixtures

/** One side of a test connection: PD, send and receive CQs, an RC QP, and one MR over a block. */
export interface Side {
  readonly ctx: Context;
  readonly pd: Pd;
  readonly scq: Cq;
  readonly rcq: Cq;
  readonly qp: Qp;
  readonly block: MemoryBlock;
  /** MR over the whole block, LOCAL_WRITE | REMOTE_WRITE | REMOTE_READ. */
  readonly mr: Mr;
  readonly psn: number;
}

export interface SideOptions {
  readonly cap?: Partial<QpCap>;
  readonly bytes?: number;
  readonly cqe?: number;
  readonly sqSigAll?: boolean;
}

export const ALL_ACCESS = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ;

/** Creates a Side on `ctx` (QP in RESET; connect it with connectPair). */
export function makeSide(ctx: Context, psn: number, o: SideOptions = {}): Side {
  const pd = ctx.allocPd();
  const cqe = o.cqe ?? 1024;
  const scq = ctx.createCq(cqe);
  const rcq = ctx.createCq(cqe);
  const maxInline = Math.min(64, ctx.queryDevice().maxInlineData);
  const cap: QpCap = { maxSendWr: 64, maxRecvWr: 64, maxSendSge: 4, maxRecvSge: 4, maxInlineData: maxInline, ...o.cap };
  const qp = pd.createQp({ type: 'RC', sendCq: scq, recvCq: rcq, cap, sqSigAll: o.sqSigAll ?? false });
  const block = ctx.allocMemory(o.bytes ?? 65536);
  const mr = pd.registerMr(block, 0, block.length, ALL_ACCESS);
  return { ctx, pd, scq, rcq, qp, block, mr, psn };
}

/** PSNs: one end starts just below the 24-bit wrap so that traffic crosses it. */
const PSN_A = 0xfffff0;
const PSN_B = 0x000123;

// ------------------------------------------------------------------------------------------
// The suite

export function verbsConformance(name: string, setup: () => Promise<ConformancePair>, options: ConformanceOptions = {}): void {
  const waitMs = options.waitMs ?? 2000;
  const largeBytes = options.largeBytes ?? 1 << 20;
  const smallSends = options.smallSends ?? 512;
  const responderErrState = options.responderStateAfterRemoteError === undefined ? QpState.ERR : options.responderStateAfterRemoteError;
  const lenErrResponder = options.lenErrResponderStatus ?? WcStatus.LOC_LEN_ERR;
  const lenErrRequester = options.lenErrRequesterStatus ?? WcStatus.REM_INV_REQ_ERR;
  // Every provider runs every test: differences are options above, never skips.
  const test = (title: string, fn: (this: Mocha.Context) => Promise<void> | void): void => {
    it(title, fn);
  };

  describe(`verbs conformance: ${name}`, function () {
    this.timeout(Math.max(10_000, waitMs * 4));
    let env: ConformancePair;
    beforeEach(async () => {
      env = await setup();
    });
    afterEach(async () => {
      await env.cleanup();
    });

    /** Two connected sides. */
    const connected = (o: { a?: SideOptions; b?: SideOptions; connect?: ConnectOptions } = {}): { a: Side; b: Side } => {
      const a = makeSide(env.a, PSN_A, o.a);
      const b = makeSide(env.b, PSN_B, o.b);
      connectPair(a, b, o.connect);
      return { a, b };
    };
    const wait = (cq: Cq, n: number) => waitCompletions(cq, n, waitMs);
    const expectOne = async (cq: Cq, want: Partial<WorkCompletion>): Promise<Completion> => {
      const [wc] = await wait(cq, 1);
      for (const [k, v] of Object.entries(want)) {
        const got = wc![k as keyof WorkCompletion];
        const show = k === 'status' ? `${wcStatusName(got as number)} (want ${wcStatusName(v as number)})` : `${String(got)} (want ${String(v)})`;
        assert.equal(got, v, `completion ${k}: ${show}; completion ${describeCompletions([wc!])}`);
      }
      return wc!;
    };

    // ----------------------------------------------------------------------------------------
    describe('device, port and GID table', () => {
      test('reports device attributes and an ACTIVE Ethernet port', () => {
        for (const ctx of [env.a, env.b]) {
          const d = ctx.queryDevice();
          assert.equal(d.name, ctx.device.name);
          assert.equal(d.provider, ctx.provider);
          assert.equal(d.transport, 'RoCE');
          assert.ok(d.physPortCnt >= 1);
          assert.ok(d.maxQpWr >= 64 && d.maxSge >= 2 && d.maxRecvSge >= 2 && d.maxCqe >= 1024 && d.maxMrSize >= largeBytes, JSON.stringify(d, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
          const p = ctx.queryPort(PORT);
          assert.equal(p.portNum, PORT);
          assert.equal(p.state, 'ACTIVE');
          assert.equal(p.linkLayer, 'Ethernet');
          assert.ok(p.activeMtu >= 1 && p.activeMtu <= p.maxMtu && p.maxMtu <= 5, `MTUs ${p.activeMtu}/${p.maxMtu}`);
          assert.ok(p.gidTblLen >= 1);
        }
      });

      test('has a RoCEv2 IPv4-mapped GID, the same through gidTable and queryGid', () => {
        const gids: string[] = [];
        for (const ctx of [env.a, env.b]) {
          const table = ctx.gidTable(PORT);
          assert.ok(table.length >= 1 && table.length <= ctx.queryPort(PORT).gidTblLen);
          const e = findRoceV2Ipv4Gid(ctx);
          assert.equal(e.gid.length, 16);
          assert.deepEqual([...e.gid.subarray(12)], e.ipv4!.split('.').map(Number), `GID ${e.gid.toString('hex')} vs ${e.ipv4}`);
          const q = ctx.queryGid(PORT, e.index);
          assert.deepEqual(q, e);
          for (const t of table) assert.deepEqual(ctx.queryGid(PORT, t.index), t);
          gids.push(e.gid.toString('hex'));
        }
        assert.notEqual(gids[0], gids[1], 'the two devices must have different GIDs');
      });

      test('rejects a port or a GID index that does not exist', () => {
        const ctx = env.a;
        assertVerbsError(() => ctx.queryPort(ctx.queryDevice().physPortCnt + 1), 'query_port', Errno.EINVAL);
        assertVerbsError(() => ctx.queryGid(PORT, ctx.queryPort(PORT).gidTblLen), 'query_gid', Errno.EINVAL);
      });
    });

    // ----------------------------------------------------------------------------------------
    describe('QP state machine', () => {
      const S = QpState;
      const states = [S.RESET, S.INIT, S.RTR, S.RTS, S.ERR] as const;
      const targets = [S.RESET, S.INIT, S.RTR, S.RTS, S.ERR, S.SQD, S.SQE] as const;
      const LEGAL: Record<number, readonly number[]> = {
        [S.RESET]: [S.RESET, S.INIT, S.ERR],
        [S.INIT]: [S.RESET, S.RTR, S.ERR],
        [S.RTR]: [S.RESET, S.RTS, S.ERR],
        [S.RTS]: [S.RESET, S.ERR],
        [S.ERR]: [S.RESET, S.ERR],
      };

      const fixture = () => {
        const s = makeSide(env.a, PSN_A);
        const peer = makeSide(env.b, PSN_B);
        const mine = findRoceV2Ipv4Gid(env.a);
        const theirs = findRoceV2Ipv4Gid(env.b);
        const mtu = Math.min(env.a.queryPort(PORT).activeMtu, env.b.queryPort(PORT).activeMtu) as IbMtu;
        const attrs = (to: number): Parameters<Qp['modify']>[0] => {
          switch (to) {
            case S.INIT:
              return { state: S.INIT, pkeyIndex: 0, portNum: PORT, accessFlags: ALL_ACCESS };
            case S.RTR:
              return { state: S.RTR, pathMtu: mtu, destQpNum: peer.qp.qpNum, rqPsn: PSN_B, ah: { dgid: theirs.gid, sgidIndex: mine.index, hopLimit: 1, portNum: PORT }, maxDestRdAtomic: 1, minRnrTimer: 5 };
            case S.RTS:
              return { state: S.RTS, sqPsn: PSN_A, timeout: 15, retryCnt: 7, rnrRetry: 7, maxRdAtomic: 1 };
            default:
              return { state: to } as Parameters<Qp['modify']>[0];
          }
        };
        const driveTo = (state: number): void => {
          const path = state === S.ERR ? [S.INIT, S.ERR] : [S.INIT, S.RTR, S.RTS].filter((x) => x <= state);
          for (const st of path) s.qp.modify(attrs(st));
          assert.equal(s.qp.state, state);
        };
        return { qp: s.qp, attrs, driveTo };
      };

      for (const from of states) {
        for (const to of targets) {
          const ok = LEGAL[from]!.includes(to);
          test(`${qpStateName(from)} -> ${qpStateName(to)}: ${ok ? 'legal' : 'EINVAL'}`, () => {
            const f = fixture();
            f.driveTo(from);
            if (ok) {
              f.qp.modify(f.attrs(to));
              assert.equal(f.qp.state, to);
              assert.equal(f.qp.query().state, to);
            } else {
              assertVerbsError(() => f.qp.modify(f.attrs(to)), 'modify_qp', Errno.EINVAL, (e) => {
                assert.ok(e.message.includes(qpStateName(from)) && e.message.includes(qpStateName(to)), `message should name both states: ${e.message}`);
              });
              assert.equal(f.qp.state, from, 'a refused transition leaves the state alone');
            }
          });
        }
      }

      test('a transition with an out-of-range attribute is EINVAL and changes nothing', () => {
        const f = fixture();
        assertVerbsError(() => f.qp.modify({ state: S.INIT, pkeyIndex: 0, portNum: 99, accessFlags: 0 }), 'modify_qp', Errno.EINVAL);
        assert.equal(f.qp.state, S.RESET);
        f.driveTo(S.INIT);
        const rtr = f.attrs(S.RTR) as Extract<Parameters<Qp['modify']>[0], { state: typeof S.RTR }>;
        assertVerbsError(() => f.qp.modify({ ...rtr, pathMtu: 9 as IbMtu }), 'modify_qp', Errno.EINVAL);
        assertVerbsError(() => f.qp.modify({ ...rtr, ah: { ...rtr.ah, dgid: Buffer.alloc(4) } }), 'modify_qp', Errno.EINVAL);
        assert.equal(f.qp.state, S.INIT);
        f.qp.modify(rtr);
        const rts = f.attrs(S.RTS) as Extract<Parameters<Qp['modify']>[0], { state: typeof S.RTS }>;
        assertVerbsError(() => f.qp.modify({ ...rts, retryCnt: 8 }), 'modify_qp', Errno.EINVAL);
        assertVerbsError(() => f.qp.modify({ ...rts, sqPsn: 1 << 24 }), 'modify_qp', Errno.EINVAL);
        assert.equal(f.qp.state, S.RTR);
      });

      test('query() reports the attributes connectPair set', () => {
        const { a, b } = connected();
        const q = a.qp.query();
        assert.equal(q.state, S.RTS);
        assert.equal(q.qpNum, a.qp.qpNum);
        assert.equal(q.destQpNum, b.qp.qpNum);
        assert.equal(q.pathMtu, Math.min(env.a.queryPort(PORT).activeMtu, env.b.queryPort(PORT).activeMtu));
        assert.equal(q.sqPsn, PSN_A);
        assert.equal(q.rqPsn, PSN_B);
        assert.equal(q.timeout, SMC_QP_ATTRS.timeout);
        assert.equal(q.retryCnt, SMC_QP_ATTRS.retryCnt);
        assert.equal(q.rnrRetry, SMC_QP_ATTRS.rnrRetry);
        assert.equal(q.minRnrTimer, SMC_QP_ATTRS.minRnrTimer);
        assert.equal(q.accessFlags, ALL_ACCESS);
        assert.ok(q.cap.maxSendWr >= 64 && q.cap.maxRecvWr >= 64 && q.cap.maxSendSge >= 4 && q.cap.maxRecvSge >= 4);
      });
    });

    // ----------------------------------------------------------------------------------------
    describe('posting', () => {
      test('post_send is EINVAL before RTS; post_recv is EINVAL in RESET and accepted from INIT', () => {
        const a = makeSide(env.a, PSN_A);
        const b = makeSide(env.b, PSN_B);
        const wr = sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 8)] });
        const rwr = recvWr(2, [sge(a.mr, 0, 8)]);
        assertVerbsError(() => a.qp.postSend(wr), 'post_send', Errno.EINVAL);
        assertVerbsError(() => a.qp.postRecv(rwr), 'post_recv', Errno.EINVAL);
        a.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: PORT, accessFlags: ALL_ACCESS });
        assertVerbsError(() => a.qp.postSend(wr), 'post_send', Errno.EINVAL);
        a.qp.postRecv(rwr);
        a.qp.modify({ state: QpState.RESET });
        connectPair(a, b, { onlyRtr: true });
        assert.equal(a.qp.state, QpState.RTR);
        assertVerbsError(() => a.qp.postSend(wr), 'post_send', Errno.EINVAL);
        a.qp.postRecv(rwr);
      });

      test('a full send queue and a full receive queue refuse with ENOMEM', async () => {
        const { a, b } = connected({ a: { cap: { maxSendWr: 4, maxRecvWr: 4 } } });
        const wr = (i: number) => sendWr({ wrId: i, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, i * 8, 8)], remote: { mr: b.mr, offset: i * 8 } });
        for (let i = 0; i < 4; i++) a.qp.postSend(wr(i));
        assertVerbsError(() => a.qp.postSend(wr(4)), 'post_send', Errno.ENOMEM);
        const wcs = await wait(a.scq, 4);
        assert.deepEqual(wcs.map((w) => [w.wrId, w.status]), [0, 1, 2, 3].map((i) => [i, WcStatus.SUCCESS]));
        a.qp.postSend(wr(5)); // slots are back once the completions are polled
        await expectOne(a.scq, { wrId: 5, status: WcStatus.SUCCESS });
        for (let i = 0; i < 4; i++) a.qp.postRecv(recvWr(100 + i, [sge(a.mr, 0, 8)]));
        assertVerbsError(() => a.qp.postRecv(recvWr(104, [sge(a.mr, 0, 8)])), 'post_recv', Errno.ENOMEM);
      });

      test('numSge above the cap, or INLINE above maxInlineData, is EINVAL', () => {
        const { a, b } = connected({ a: { cap: { maxSendSge: 2, maxRecvSge: 1, maxInlineData: 16 } } });
        const three = [sge(a.mr, 0, 4), sge(a.mr, 4, 4), sge(a.mr, 8, 4)];
        assertVerbsError(() => a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: three })), 'post_send', Errno.EINVAL);
        assertVerbsError(() => a.qp.postRecv(recvWr(2, three.slice(0, 2))), 'post_recv', Errno.EINVAL);
        const cap = a.qp.query().cap.maxInlineData;
        assertVerbsError(
          () => a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.RDMA_WRITE, flags: SendFlag.SIGNALED | SendFlag.INLINE, sges: [sge(a.mr, 0, cap + 1)], remote: { mr: b.mr, offset: 0 } })),
          'post_send',
          Errno.EINVAL,
        );
      });
    });

    // ----------------------------------------------------------------------------------------
    describe('data path', () => {
      test('SEND gathers two SGEs into a receive scattered over three SGEs', async () => {
        const { a, b } = connected();
        const data = pattern(300, 1);
        data.copy(a.block.buffer, 1000, 0, 100);
        data.copy(a.block.buffer, 5000, 100, 300);
        b.qp.postRecv(recvWr(77, [sge(b.mr, 100, 50), sge(b.mr, 2000, 200), sge(b.mr, 9000, 400)]));
        a.qp.postSend(sendWr({ wrId: 11, opcode: WrOpcode.SEND, sges: [sge(a.mr, 1000, 100), sge(a.mr, 5000, 200)] }));
        await expectOne(a.scq, { wrId: 11, status: WcStatus.SUCCESS, opcode: WcOpcode.SEND, qpNum: a.qp.qpNum });
        await expectOne(b.rcq, { wrId: 77, status: WcStatus.SUCCESS, opcode: WcOpcode.RECV, byteLen: 300, withImm: false, qpNum: b.qp.qpNum });
        const got = Buffer.concat([b.block.buffer.subarray(100, 150), b.block.buffer.subarray(2000, 2200), b.block.buffer.subarray(9000, 9050)]);
        assert.deepEqual(got, data);
        assert.ok(b.block.buffer.subarray(9050, 9400).every((x) => x === 0), 'bytes after the message stay untouched');
      });

      test('SEND_WITH_IMM delivers the immediate data', async () => {
        const { a, b } = connected();
        b.qp.postRecv(recvWr(5, [sge(b.mr, 0, 64)]));
        a.block.buffer.write('hello', 0);
        a.qp.postSend(sendWr({ wrId: 6, opcode: WrOpcode.SEND_WITH_IMM, sges: [sge(a.mr, 0, 5)], immData: 0xdeadbeef }));
        await expectOne(a.scq, { wrId: 6, status: WcStatus.SUCCESS, opcode: WcOpcode.SEND });
        await expectOne(b.rcq, { wrId: 5, status: WcStatus.SUCCESS, opcode: WcOpcode.RECV, byteLen: 5, withImm: true, immData: 0xdeadbeef });
        assert.equal(b.block.buffer.toString('latin1', 0, 5), 'hello');
      });

      test('a zero-length SEND completes a receive with byteLen 0', async () => {
        const { a, b } = connected();
        b.qp.postRecv(recvWr(1, [sge(b.mr, 0, 64)]));
        a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.SEND, sges: [] }));
        await expectOne(a.scq, { wrId: 2, status: WcStatus.SUCCESS });
        await expectOne(b.rcq, { wrId: 1, status: WcStatus.SUCCESS, byteLen: 0 });
      });

      test('RDMA_WRITE gathers two SGEs into one remote range and consumes no receive', async () => {
        const { a, b } = connected();
        const data = pattern(3000, 2);
        data.copy(a.block.buffer, 100, 0, 1000);
        data.copy(a.block.buffer, 20000, 1000, 3000);
        b.qp.postRecv(recvWr(50, [sge(b.mr, 60000, 64)]));
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, 100, 1000), sge(a.mr, 20000, 2000)], remote: { mr: b.mr, offset: 4097 } }));
        await expectOne(a.scq, { wrId: 1, status: WcStatus.SUCCESS, opcode: WcOpcode.RDMA_WRITE });
        assert.deepEqual(b.block.buffer.subarray(4097, 4097 + 3000), data);
        assert.equal(b.block.buffer[4096], 0);
        assert.equal(b.block.buffer[4097 + 3000], 0);
        assert.deepEqual(pollNow(b.rcq), [], 'RDMA WRITE must not consume a receive');
        // The receive is still there: the next SEND lands in it.
        a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.SEND, sges: [sge(a.mr, 100, 8)] }));
        await expectOne(b.rcq, { wrId: 50, status: WcStatus.SUCCESS, byteLen: 8 });
      });

      test('RDMA_WRITE_WITH_IMM writes the data and consumes a receive (RECV_RDMA_WITH_IMM, byteLen, immData)', async () => {
        const { a, b } = connected();
        const data = pattern(777, 3);
        data.copy(a.block.buffer, 0);
        b.qp.postRecv(recvWr(9, [sge(b.mr, 60000, 16)]));
        a.qp.postSend(sendWr({ wrId: 8, opcode: WrOpcode.RDMA_WRITE_WITH_IMM, sges: [sge(a.mr, 0, 777)], remote: { mr: b.mr, offset: 123 }, immData: 0x01020304 }));
        await expectOne(a.scq, { wrId: 8, status: WcStatus.SUCCESS, opcode: WcOpcode.RDMA_WRITE });
        await expectOne(b.rcq, { wrId: 9, status: WcStatus.SUCCESS, opcode: WcOpcode.RECV_RDMA_WITH_IMM, byteLen: 777, withImm: true, immData: 0x01020304 });
        assert.deepEqual(b.block.buffer.subarray(123, 900), data);
        assert.ok(b.block.buffer.subarray(60000, 60016).every((x) => x === 0), 'the receive buffer is not written by WRITE_WITH_IMM');
      });

      test('RDMA_READ copies remote memory into two local SGEs', async () => {
        const { a, b } = connected();
        const data = pattern(5000, 4);
        data.copy(b.block.buffer, 333);
        a.qp.postSend(sendWr({ wrId: 4, opcode: WrOpcode.RDMA_READ, sges: [sge(a.mr, 10, 1000), sge(a.mr, 30000, 4000)], remote: { mr: b.mr, offset: 333 } }));
        await expectOne(a.scq, { wrId: 4, status: WcStatus.SUCCESS, opcode: WcOpcode.RDMA_READ });
        assert.deepEqual(Buffer.concat([a.block.buffer.subarray(10, 1010), a.block.buffer.subarray(30000, 34000)]), data);
        assert.deepEqual(pollNow(b.rcq), []);
      });

      test('INLINE data is captured at post time: the buffer may be reused at once', async () => {
        const { a, b } = connected();
        const n = Math.min(32, a.qp.query().cap.maxInlineData);
        assert.ok(n >= 8, 'the provider must support some inline data');
        b.qp.postRecv(recvWr(1, [sge(b.mr, 0, 64)]));
        a.block.buffer.fill(0x41, 0, n);
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, flags: SendFlag.SIGNALED | SendFlag.INLINE, sges: [sge(a.mr, 0, n)] }));
        a.block.buffer.fill(0x42, 0, n);
        a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.RDMA_WRITE, flags: SendFlag.SIGNALED | SendFlag.INLINE, sges: [sge(a.mr, 0, n)], remote: { mr: b.mr, offset: 1000 } }));
        a.block.buffer.fill(0x43, 0, n);
        const wcs = await wait(a.scq, 2);
        assert.deepEqual(wcs.map((w) => [w.wrId, w.status]), [[1, WcStatus.SUCCESS], [2, WcStatus.SUCCESS]]);
        await expectOne(b.rcq, { wrId: 1, byteLen: n });
        assert.ok(b.block.buffer.subarray(0, n).every((x) => x === 0x41), 'SEND carried the bytes present at post time');
        assert.ok(b.block.buffer.subarray(1000, 1000 + n).every((x) => x === 0x42), 'WRITE carried the bytes present at post time');
      });

      test('unsignaled WRs complete silently; the next signaled one completes; sqSigAll signals all', async () => {
        const { a, b } = connected();
        a.block.buffer.fill(7, 0, 16);
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, flags: 0, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 } }));
        a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.RDMA_WRITE, flags: 0, sges: [sge(a.mr, 8, 8)], remote: { mr: b.mr, offset: 8 } }));
        a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.RDMA_WRITE, flags: SendFlag.SIGNALED, sges: [sge(a.mr, 0, 1)], remote: { mr: b.mr, offset: 100 } }));
        await expectOne(a.scq, { wrId: 3, status: WcStatus.SUCCESS });
        assert.deepEqual(pollNow(a.scq), []);
        assert.ok(b.block.buffer.subarray(0, 16).every((x) => x === 7), 'unsignaled WRITEs did execute');

        const all = connected({ a: { sqSigAll: true } });
        all.a.qp.postSend(sendWr({ wrId: 10, opcode: WrOpcode.RDMA_WRITE, flags: 0, sges: [sge(all.a.mr, 0, 8)], remote: { mr: all.b.mr, offset: 0 } }));
        await expectOne(all.a.scq, { wrId: 10, status: WcStatus.SUCCESS });
      });

      test('an unsignaled WR that fails still completes, with its error', async () => {
        const { a, b } = connected();
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, flags: 0, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 }, rkey: (b.mr.rkey ^ 0x5a5a5a00) >>> 0 }));
        await expectOne(a.scq, { wrId: 1, status: WcStatus.REM_ACCESS_ERR });
      });

      test(`a large RDMA WRITE and READ back (${largeBytes} bytes)`, async () => {
        const { a, b } = connected({ a: { bytes: 2 * largeBytes }, b: { bytes: largeBytes + 8192 } });
        const data = pattern(largeBytes, 5);
        data.copy(a.block.buffer, 0);
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, 0, largeBytes)], remote: { mr: b.mr, offset: 4096 } }));
        await expectOne(a.scq, { wrId: 1, status: WcStatus.SUCCESS });
        assert.ok(b.block.buffer.subarray(4096, 4096 + largeBytes).equals(data), 'remote memory holds the data');
        a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.RDMA_READ, sges: [sge(a.mr, largeBytes, largeBytes)], remote: { mr: b.mr, offset: 4096 } }));
        await expectOne(a.scq, { wrId: 2, status: WcStatus.SUCCESS, opcode: WcOpcode.RDMA_READ });
        assert.ok(a.block.buffer.subarray(largeBytes, 2 * largeBytes).equals(data), 'READ brought the data back');
      });

      test(`many small SENDs arrive in order, send completions in post order (${smallSends})`, async () => {
        const n = smallSends;
        const { a, b } = connected({ a: { cap: { maxSendWr: n }, cqe: 2 * n }, b: { cap: { maxRecvWr: n }, cqe: 2 * n, bytes: Math.max(65536, n * 16) } });
        for (let i = 0; i < n; i++) b.qp.postRecv(recvWr(1000 + i, [sge(b.mr, i * 16, 16)]));
        for (let i = 0; i < n; i++) {
          a.block.buffer.writeUInt32BE(i, i * 8);
          a.qp.postSend(sendWr({ wrId: i, opcode: WrOpcode.SEND, sges: [sge(a.mr, i * 8, 4)] }));
        }
        const sent = await wait(a.scq, n);
        assert.deepEqual(sent.map((w) => w.wrId), [...Array(n).keys()]);
        assert.ok(sent.every((w) => w.status === WcStatus.SUCCESS));
        const got = await wait(b.rcq, n);
        assert.deepEqual(got.map((w) => w.wrId), [...Array(n).keys()].map((i) => 1000 + i));
        for (let i = 0; i < n; i++) assert.equal(b.block.buffer.readUInt32BE(i * 16), i, `receive ${i} holds SEND ${i}`);
      });

      test('a SEND posted after an RDMA WRITE is delivered after the WRITE data is visible', async () => {
        const len = 256 * 1024;
        const { a, b } = connected({ a: { bytes: len + 4096 }, b: { bytes: len + 4096 } });
        const data = pattern(len, 6);
        data.copy(a.block.buffer, 0);
        b.qp.postRecv(recvWr(1, [sge(b.mr, len, 64)]));
        let seenOnArrival: boolean | undefined;
        const arrived = new Promise<void>((resolve) => {
          b.rcq.setHandler(() => {
            seenOnArrival = b.block.buffer.subarray(0, len).equals(data);
            resolve();
          });
          b.rcq.arm();
        });
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, flags: 0, sges: [sge(a.mr, 0, len)], remote: { mr: b.mr, offset: 0 } }));
        a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 4)] }));
        await Promise.race([arrived, sleep(waitMs).then(() => assert.fail('the SEND never arrived'))]);
        b.rcq.setHandler(null);
        assert.equal(seenOnArrival, true, 'when the receive completion is visible, the WRITE data must be too');
        await expectOne(a.scq, { wrId: 2, status: WcStatus.SUCCESS });
      });
    });

    // ----------------------------------------------------------------------------------------
    describe('RNR', () => {
      test('a SEND before the receive is posted succeeds once the receive arrives (rnrRetry 7)', async () => {
        const { a, b } = connected({ connect: { rnrRetry: 7, minRnrTimer: 1 } });
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 16)] }));
        await sleep(30);
        assert.deepEqual(pollNow(a.scq), [], 'no completion while the responder has no receive');
        assert.equal(a.qp.state, QpState.RTS);
        b.qp.postRecv(recvWr(2, [sge(b.mr, 0, 16)]));
        await expectOne(a.scq, { wrId: 1, status: WcStatus.SUCCESS });
        await expectOne(b.rcq, { wrId: 2, status: WcStatus.SUCCESS, byteLen: 16 });
      });

      test('with rnrRetry 0 a SEND without a receive fails with RNR_RETRY_EXC_ERR and the QP goes to ERR', async () => {
        const { a, b } = connected({ connect: { rnrRetry: 0 } });
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 16)] }));
        await expectOne(a.scq, { wrId: 1, status: WcStatus.RNR_RETRY_EXC_ERR });
        assert.equal(a.qp.state, QpState.ERR);
        assert.equal(b.qp.state, QpState.RTS, 'an RNR NAK leaves the responder alone');
      });
    });

    // ----------------------------------------------------------------------------------------
    describe('errors', () => {
      /** b's MR covers [G, G+M) of a larger block filled with a guard pattern. */
      const guarded = (access: number) => {
        const s = connected();
        const G = 4096;
        const M = 8192;
        const block = env.b.allocMemory(G + M + G);
        const guard = pattern(block.length, 99);
        guard.copy(block.buffer);
        const mr = s.b.pd.registerMr(block, G, M, access);
        const intact = (): void => {
          assert.ok(block.buffer.subarray(0, G).equals(guard.subarray(0, G)), 'guard bytes before the MR were written');
          assert.ok(block.buffer.subarray(G + M).equals(guard.subarray(G + M)), 'guard bytes after the MR were written');
        };
        const unchanged = (): void => assert.ok(block.buffer.equals(guard), 'nothing in the block may change');
        return { ...s, block, mr, G, M, intact, unchanged };
      };

      type Case = { title: string; access: number; op: WrOpcode; target: (g: ReturnType<typeof guarded>) => { raddr: { hi: number; lo: number }; rkey: number; len: number } };
      const at = (mr: Mr, off: number) => addrAdd(mr.addrHi, mr.addrLo, off);
      const cases: Case[] = [
        { title: 'wrong rkey', access: ALL_ACCESS, op: WrOpcode.RDMA_WRITE, target: (g) => ({ raddr: at(g.mr, 0), rkey: (g.mr.rkey + 0x100) >>> 0, len: 64 }) },
        { title: 'target starting before the MR', access: ALL_ACCESS, op: WrOpcode.RDMA_WRITE, target: (g) => ({ raddr: addrAdd(at(g.mr, 0).hi, at(g.mr, 0).lo, -8), rkey: g.mr.rkey, len: 64 }) },
        { title: 'target running past the end of the MR', access: ALL_ACCESS, op: WrOpcode.RDMA_WRITE, target: (g) => ({ raddr: at(g.mr, g.M - 8), rkey: g.mr.rkey, len: 64 }) },
        { title: 'target 4 GiB above the MR (address arithmetic)', access: ALL_ACCESS, op: WrOpcode.RDMA_WRITE, target: (g) => ({ raddr: { hi: (g.mr.addrHi + 1) >>> 0, lo: g.mr.addrLo }, rkey: g.mr.rkey, len: 64 }) },
        { title: 'MR without REMOTE_WRITE', access: Access.LOCAL_WRITE | Access.REMOTE_READ, op: WrOpcode.RDMA_WRITE, target: (g) => ({ raddr: at(g.mr, 0), rkey: g.mr.rkey, len: 64 }) },
        { title: 'WRITE_WITH_IMM with a wrong rkey', access: ALL_ACCESS, op: WrOpcode.RDMA_WRITE_WITH_IMM, target: (g) => ({ raddr: at(g.mr, 0), rkey: (g.mr.rkey ^ 0xff) >>> 0, len: 64 }) },
        { title: 'READ from an MR without REMOTE_READ', access: Access.LOCAL_WRITE | Access.REMOTE_WRITE, op: WrOpcode.RDMA_READ, target: (g) => ({ raddr: at(g.mr, 0), rkey: g.mr.rkey, len: 64 }) },
        { title: 'READ running past the end of the MR', access: ALL_ACCESS, op: WrOpcode.RDMA_READ, target: (g) => ({ raddr: at(g.mr, g.M - 1), rkey: g.mr.rkey, len: 2 }) },
      ];
      for (const c of cases) {
        test(`REM_ACCESS_ERR: ${c.title}; the requester goes to ERR and later WRs are flushed`, async () => {
          const g = guarded(c.access);
          const t = c.target(g);
          g.a.block.buffer.fill(0xee, 100, 100 + t.len);
          if (c.op === WrOpcode.RDMA_WRITE_WITH_IMM) g.b.qp.postRecv(recvWr(70, [sge(g.b.mr, 0, 8)]));
          g.a.qp.postSend(sendWr({ wrId: 1, opcode: c.op, sges: [sge(g.a.mr, 100, t.len)], raddr: t.raddr, rkey: t.rkey, immData: 5 }));
          g.a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.RDMA_WRITE, flags: 0, sges: [sge(g.a.mr, 0, 8)], remote: { mr: g.b.mr, offset: 0 } }));
          await expectOne(g.a.scq, { wrId: 1, status: WcStatus.REM_ACCESS_ERR });
          await expectOne(g.a.scq, { wrId: 2, status: WcStatus.WR_FLUSH_ERR });
          assert.equal(g.a.qp.state, QpState.ERR);
          g.a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.SEND, sges: [sge(g.a.mr, 0, 8)] }));
          await expectOne(g.a.scq, { wrId: 3, status: WcStatus.WR_FLUSH_ERR });
          g.unchanged();
          assert.ok(g.b.block.buffer.subarray(0, 8).every((x) => x === 0), 'the WR after the failure did not execute');
          if (c.op === WrOpcode.RDMA_READ) assert.ok(g.a.block.buffer.subarray(100, 100 + t.len).every((x) => x === 0xee), 'READ brought nothing');
          if (responderErrState !== null) {
            await sleep(5);
            assert.equal(g.b.qp.state, responderErrState, 'responder state after a remote access error');
          }
        });
      }

      test('a responder QP without REMOTE_WRITE access answers a WRITE with REM_INV_REQ_ERR', async () => {
        const { a, b } = connected({ connect: { accessFlags: Access.LOCAL_WRITE } });
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 } }));
        const wc = (await wait(a.scq, 1))[0]!;
        assert.ok(wc.status === WcStatus.REM_INV_REQ_ERR || wc.status === WcStatus.REM_ACCESS_ERR, `got ${wcStatusName(wc.status)}`);
        assert.equal(a.qp.state, QpState.ERR);
        assert.ok(b.block.buffer.subarray(0, 8).every((x) => x === 0));
      });

      const locCases: { title: string; make: (a: Side) => { op: WrOpcode; sges: Sge[] } }[] = [
        { title: 'local SGE running past its MR', make: (a) => ({ op: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, a.mr.length - 4, 8)] }) },
        { title: 'deregistered local MR', make: (a) => {
          const mr = a.pd.registerMr(a.block, 0, 4096, ALL_ACCESS);
          mr.close();
          return { op: WrOpcode.SEND, sges: [sge(mr, 0, 8)] };
        } },
        { title: 'local MR of another PD', make: (a) => {
          const pd = a.ctx.allocPd();
          return { op: WrOpcode.RDMA_WRITE, sges: [sge(pd.registerMr(a.block, 0, 4096, ALL_ACCESS), 0, 8)] };
        } },
        { title: 'READ into a local MR without LOCAL_WRITE', make: (a) => ({ op: WrOpcode.RDMA_READ, sges: [sge(a.pd.registerMr(a.block, 0, 4096, Access.REMOTE_READ), 0, 8)] }) },
      ];
      for (const c of locCases) {
        test(`LOC_PROT_ERR: ${c.title}; the requester goes to ERR, remote memory untouched`, async () => {
          const { a, b } = connected();
          a.block.buffer.fill(0x11);
          const { op, sges } = c.make(a);
          b.qp.postRecv(recvWr(9, [sge(b.mr, 0, 64)]));
          a.qp.postSend(sendWr({ wrId: 1, opcode: op, sges, remote: { mr: b.mr, offset: 0 } }));
          await expectOne(a.scq, { wrId: 1, status: WcStatus.LOC_PROT_ERR });
          assert.equal(a.qp.state, QpState.ERR);
          assert.ok(b.block.buffer.every((x) => x === 0), 'the remote side saw nothing');
          if (op === WrOpcode.RDMA_READ) assert.ok(a.block.buffer.every((x) => x === 0x11), 'no READ data landed');
        });
      }

      test('a SEND larger than the receive: LOC_LEN_ERR at the responder, both QPs in ERR', async () => {
        const { a, b } = connected();
        b.qp.postRecv(recvWr(1, [sge(b.mr, 0, 64)]));
        b.qp.postRecv(recvWr(2, [sge(b.mr, 64, 64)]));
        a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 100)] }));
        await expectOne(b.rcq, { wrId: 1, status: lenErrResponder });
        await expectOne(b.rcq, { wrId: 2, status: WcStatus.WR_FLUSH_ERR });
        await expectOne(a.scq, { wrId: 3, status: lenErrRequester });
        assert.equal(a.qp.state, QpState.ERR);
        if (responderErrState !== null) assert.equal(b.qp.state, responderErrState);
        assert.ok(b.block.buffer.subarray(64).every((x) => x === 0), 'nothing beyond the receive buffer');
      });

      test('exact-fit transfers at both edges of an MR leave the guard bytes around it untouched', async () => {
        const g = guarded(ALL_ACCESS);
        const data = pattern(g.M, 7);
        data.copy(g.a.block.buffer, 0);
        // WRITE covering exactly the MR, READ it back, SEND into a receive covering exactly the MR.
        g.a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sges: [sge(g.a.mr, 0, g.M)], remote: { mr: g.mr, offset: 0 } }));
        await expectOne(g.a.scq, { wrId: 1, status: WcStatus.SUCCESS });
        assert.ok(g.block.buffer.subarray(g.G, g.G + g.M).equals(data));
        g.intact();
        g.a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.RDMA_READ, sges: [sge(g.a.mr, 20000, g.M)], remote: { mr: g.mr, offset: 0 } }));
        await expectOne(g.a.scq, { wrId: 2, status: WcStatus.SUCCESS });
        assert.ok(g.a.block.buffer.subarray(20000, 20000 + g.M).equals(data));
        const rev = Buffer.from(data).reverse();
        rev.copy(g.a.block.buffer, 40000);
        g.b.qp.postRecv(recvWr(3, [sge(g.mr, 0, g.M)]));
        g.a.qp.postSend(sendWr({ wrId: 4, opcode: WrOpcode.SEND, sges: [sge(g.a.mr, 40000, g.M)] }));
        await expectOne(g.b.rcq, { wrId: 3, status: WcStatus.SUCCESS, byteLen: g.M });
        assert.ok(g.block.buffer.subarray(g.G, g.G + g.M).equals(rev));
        g.intact();
      });

      test('modify to ERR flushes every outstanding WR, signaled or not; later posts are flushed too', async () => {
        const { a, b } = connected({ connect: { rnrRetry: 7 } });
        // b has no receive: the SENDs stay outstanding (RNR) until a goes to ERR.
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: [sge(a.mr, 0, 8)] }));
        a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.SEND, flags: 0, sges: [sge(a.mr, 0, 8)] }));
        a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.RDMA_WRITE, flags: 0, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 } }));
        for (let i = 0; i < 3; i++) a.qp.postRecv(recvWr(10 + i, [sge(a.mr, 100, 8)]));
        await sleep(10);
        assert.deepEqual(pollNow(a.scq), []);
        a.qp.modify({ state: QpState.ERR });
        const sends = await wait(a.scq, 3);
        assert.deepEqual(sends.map((w) => [w.wrId, w.status]), [1, 2, 3].map((i) => [i, WcStatus.WR_FLUSH_ERR]));
        const recvs = await wait(a.rcq, 3);
        assert.deepEqual(recvs.map((w) => [w.wrId, w.status]), [10, 11, 12].map((i) => [i, WcStatus.WR_FLUSH_ERR]));
        a.qp.postSend(sendWr({ wrId: 4, opcode: WrOpcode.SEND, flags: 0, sges: [sge(a.mr, 0, 8)] }));
        a.qp.postRecv(recvWr(13, [sge(a.mr, 0, 8)]));
        await expectOne(a.scq, { wrId: 4, status: WcStatus.WR_FLUSH_ERR });
        await expectOne(a.rcq, { wrId: 13, status: WcStatus.WR_FLUSH_ERR });
        assert.ok(b.block.buffer.subarray(0, 8).every((x) => x === 0), 'the flushed WRITE never executed');
      });

      test('a destroyed peer QP makes the requester fail with RETRY_EXC_ERR within its retry budget', async () => {
        const timeout = options.deadPeerTimeout ?? 8;
        const retryCnt = options.deadPeerRetryCnt ?? 3;
        const budget = options.deadPeerBudgetMs ?? 3000;
        const { a, b } = connected({ connect: { timeout, retryCnt } });
        b.qp.close();
        const t0 = performance.now();
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 } }));
        const [wc] = await waitCompletions(a.scq, 1, budget);
        const elapsed = performance.now() - t0;
        assert.equal(wc!.status, WcStatus.RETRY_EXC_ERR, describeCompletions([wc!]));
        assert.equal(a.qp.state, QpState.ERR);
        const minimum = 0.9 * (retryCnt + 1) * 4.096e-3 * 2 ** timeout;
        assert.ok(elapsed >= minimum, `failed after ${elapsed.toFixed(2)} ms, before ${retryCnt} retries of ${(4.096e-3 * 2 ** timeout).toFixed(2)} ms`);
      });
    });

    // ----------------------------------------------------------------------------------------
    describe('CQ notification', () => {
      test('the handler runs from the event loop, once per arm; arm() on a non-empty CQ fires on a later turn', async () => {
        const { a, b } = connected();
        let calls = 0;
        let wake: (() => void) | null = null;
        a.scq.setHandler(() => {
          calls++;
          wake?.();
        });
        const nextCall = () => new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('handler not called')), waitMs);
          wake = () => {
            clearTimeout(t);
            wake = null;
            resolve();
          };
        });
        const write = (id: number) => a.qp.postSend(sendWr({ wrId: id, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, 0, 8)], remote: { mr: b.mr, offset: 0 } }));
        a.scq.arm();
        let p = nextCall();
        write(1);
        assert.equal(calls, 0, 'no handler call inside post_send');
        await p;
        assert.equal(calls, 1);
        // Not re-armed: another completion calls nothing.
        write(2);
        await sleep(50); // bounded: lets the second completion arrive (it stays in the CQ)
        assert.equal(calls, 1, 'one call per arm');
        // Two completions wait in the CQ; arming now fires, but not synchronously.
        p = nextCall();
        a.scq.arm();
        assert.equal(calls, 1, 'no handler call inside arm()');
        await p;
        assert.equal(calls, 2);
        assert.deepEqual(pollNow(a.scq).map((w) => w.wrId), [1, 2]);
        a.scq.setHandler(null);
      });
    });

    // ----------------------------------------------------------------------------------------
    describe('lifecycle', () => {
      test('close() is idempotent on every object', async () => {
        const { a } = connected();
        a.mr.close();
        a.mr.close();
        a.qp.close();
        a.qp.close();
        a.scq.close();
        a.scq.close();
        a.pd.close();
        a.pd.close();
        a.block.free();
        a.block.free();
        await a.ctx.close();
        await a.ctx.close();
      });

      test('closing a PD destroys its QPs and MRs', () => {
        const { a } = connected();
        a.pd.close();
        assertVerbsError(() => a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.SEND, sges: [] })), 'post_send', Errno.EINVAL);
        assertVerbsError(() => a.qp.modify({ state: QpState.RESET }), 'modify_qp', Errno.EINVAL);
        assert.throws(() => a.pd.createQp({ type: 'RC', sendCq: a.scq, recvCq: a.rcq, cap: { maxSendWr: 1, maxRecvWr: 1, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } }), isVerbsError);
        assert.throws(() => a.pd.registerMr(a.block, 0, 64, ALL_ACCESS), isVerbsError);
        a.mr.close(); // already closed by the PD: still fine
        a.block.free(); // no MR left on the block
        a.scq.close(); // the QP is gone, so its CQs can go
        a.rcq.close();
      });

      test('closing the context closes its children', async () => {
        const { a } = connected();
        await a.ctx.close();
        assert.throws(() => a.ctx.allocPd(), isVerbsError);
        assertVerbsError(() => a.qp.postRecv(recvWr(1, [])), 'post_recv', Errno.EINVAL);
        assert.throws(() => a.scq.poll([newWorkCompletion()], 1), isVerbsError);
        assert.throws(() => a.pd.registerMr(a.block, 0, 64, ALL_ACCESS), isVerbsError);
      });

      test('a WRITE with the rkey of a deregistered MR fails with REM_ACCESS_ERR', async () => {
        const { a, b } = connected();
        const mr = b.pd.registerMr(b.block, 0, 4096, ALL_ACCESS);
        const raddr = addrAdd(mr.addrHi, mr.addrLo, 0);
        const rkey = mr.rkey;
        mr.close();
        b.mr.close();
        a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, 0, 8)], raddr, rkey }));
        await expectOne(a.scq, { wrId: 1, status: WcStatus.REM_ACCESS_ERR });
      });
    });
  });
}
