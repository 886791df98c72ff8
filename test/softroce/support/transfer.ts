/**
 * A verified bidirectional transfer over two RC QP pairs, written against the verbs interface
 * only (so it runs on any provider). Each side owns:
 *
 * - `out`: the QP it sends its data stream on. The peer answers each data message with a credit
 *   (an 8-byte inline SEND) on the same QP, and RDMA READs are issued on it.
 * - `in`: the QP it receives the peer's stream on (responder for WRITE/READ, REMOTE_WRITE and
 *   REMOTE_READ allowed); it sends the credits.
 *
 * Both sides derive the same message plan from a seed: for message n, a mode (SEND, SEND with
 * immediate, RDMA WRITE followed by a 16-byte header SEND carrying n/size/crc32, RDMA WRITE with
 * immediate) and a size (edge sizes around the path MTU and the maximum first, then log-uniform
 * from 1 B to the maximum). The payload of message n is an xorshift stream seeded by (seed, n), so
 * the receiver regenerates it and compares every byte. With K slots on each side, message n uses
 * slot n % K for the source, the receive buffer and the WRITE target; the sender reuses a slot
 * only after the credit for message n-K arrived AND its own send completion was polled.
 *
 * What the receiver checks, per message, in order: the receive completion's wrId is the next
 * expected n (receives are consumed in order, each exactly once), status SUCCESS, opcode (RECV or
 * RECV_RDMA_WITH_IMM), withImm/immData, byteLen, the header (WRITE + SEND), crc32 and every byte.
 * After the run, no further completion may arrive (nothing delivered twice).
 */
import { crc32 } from 'node:zlib';
import {
  Access, IbMtu, QpState, SendFlag, WcOpcode, WcStatus, WrOpcode, newRecvWr, newSendWr, newWorkCompletion, wcStatusName,
  type Context, type Cq, type IbMtu as IbMtuT, type MemoryBlock, type Mr, type Pd, type Qp, type RecvWr, type SendWr, type WorkCompletion,
} from './verbs.js';

export type Mode = 'send' | 'send_imm' | 'write_send' | 'write_imm';
export const ALL_MODES: readonly Mode[] = ['send', 'send_imm', 'write_send', 'write_imm'];

export interface PlanParams {
  readonly seed: number;
  /** Number of messages (an upper bound when totalBytes is given). */
  readonly count: number;
  /** Stop once the messages add up to at least this many bytes. */
  readonly totalBytes?: number;
  readonly maxSize: number;
  /** Path MTU in bytes (edge sizes are placed around it). */
  readonly mtuBytes: number;
  readonly modes?: readonly Mode[];
  /** Put the edge sizes first (default true). */
  readonly edges?: boolean;
}

export interface PlannedMsg {
  readonly n: number;
  readonly mode: Mode;
  readonly size: number;
}

/** mulberry32: a small seeded PRNG for plans (not for payloads). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makePlan(p: PlanParams): PlannedMsg[] {
  const modes = p.modes ?? ALL_MODES;
  const rnd = prng(p.seed ^ 0x5eed);
  const out: PlannedMsg[] = [];
  const edges = p.edges === false ? [] : [...new Set([1, p.mtuBytes - 1, p.mtuBytes, p.mtuBytes + 1, 2 * p.mtuBytes, 3 * p.mtuBytes + 7, p.maxSize])]
    .filter((s) => s >= 1 && s <= p.maxSize);
  const lnMax = Math.log(p.maxSize);
  let total = 0;
  for (let n = 0; n < p.count && (p.totalBytes === undefined || total < p.totalBytes); n++) {
    let size: number;
    let mode: Mode;
    if (n < edges.length * modes.length) {
      size = edges[Math.floor(n / modes.length)]!;
      mode = modes[n % modes.length]!;
    } else {
      size = Math.min(p.maxSize, Math.max(1, Math.floor(Math.exp(rnd() * lnMax))));
      mode = modes[Math.floor(rnd() * modes.length)]!;
    }
    out.push({ n, mode, size });
    total += size;
  }
  return out;
}

export function planBytes(plan: readonly PlannedMsg[]): number {
  return plan.reduce((a, m) => a + m.size, 0);
}

/** The immediate value of message n (distinct from n itself, so a swapped field is noticed). */
export function immOf(seed: number, n: number): number {
  return (Math.imul(n + 1, 0x9e3779b1) ^ seed) >>> 0;
}

/**
 * Writes `len` bytes of the payload of message (seed, n) into `scratch` (an aligned buffer of at
 * least len + 3 bytes). xorshift32, 4 bytes per step.
 */
export function fillPayload(scratch: Buffer, len: number, seed: number, n: number): Buffer {
  const words = (len + 3) >>> 2;
  const u32 = new Uint32Array(scratch.buffer, scratch.byteOffset, words);
  let x = (Math.imul(seed ^ 0x3c6ef372, 0x85ebca6b) ^ Math.imul(n + 0x1234567, 0xc2b2ae35)) >>> 0;
  if (x === 0) x = 1;
  for (let i = 0; i < words; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    u32[i] = x;
  }
  return scratch.subarray(0, len);
}

/** An aligned scratch buffer (its own ArrayBuffer, so the Uint32Array view is aligned). */
export function scratchBuffer(len: number): Buffer {
  return Buffer.from(new ArrayBuffer(((len + 7) >>> 3) << 3));
}

/** (hi, lo) + off, 64-bit with carry. */
export function addAddr(hi: number, lo: number, off: number): [number, number] {
  const sum = lo + off;
  return [(hi + Math.floor(sum / 2 ** 32)) >>> 0, sum >>> 0];
}

const HEADER_MAGIC = 0x53525431; // "SRT1"
const HEADER_LEN = 16;
const CREDIT_LEN = 8;

export interface RemoteRegion {
  readonly hi: number;
  readonly lo: number;
  readonly rkey: number;
  readonly length: number;
}

/** What one side tells the other (JSON-safe). */
export interface EndpointInfo {
  /** 16-byte GID, hex. */
  readonly gid: string;
  readonly qpnOut: number;
  readonly qpnIn: number;
  readonly psnOut: number;
  readonly psnIn: number;
  readonly slots: number;
  readonly slotSize: number;
  /** WRITE targets of the peer's messages (slot i at offset i * slotSize). */
  readonly target: RemoteRegion;
  /** The region the peer may RDMA READ; its content is the payload (readSeed, 0xffffff). */
  readonly readRegion: RemoteRegion;
  readonly readSeed: number;
  readonly mtu: number;
}

export interface PeerOptions {
  readonly slots?: number;
  readonly slotSize: number;
  readonly readSize: number;
  readonly readSeed: number;
  readonly portNum?: number;
  readonly gidIndex?: number;
  /** Initial PSNs (random if omitted; tests pass them to get reproducible traces). */
  readonly psnOut?: number;
  readonly psnIn?: number;
  /**
   * Post the first data receives only this long after run() starts (default: at connect), so the
   * peer's first message meets an empty receive queue: the RNR NAK case.
   */
  readonly lateRecvMs?: number;
}

export interface ConnectOptions {
  readonly mtu?: IbMtuT;
  /** Local ACK timeout exponent (4.096 us * 2^t). */
  readonly timeout?: number;
  readonly retryCnt?: number;
  readonly rnrRetry?: number;
  readonly minRnrTimer?: number;
}

export interface RunParams {
  readonly tx: PlanParams;
  readonly rx: PlanParams;
  readonly timeoutMs: number;
}

export interface RunResult {
  readonly sentMessages: number;
  readonly sentBytes: number;
  readonly receivedMessages: number;
  readonly receivedBytes: number;
  /** Per mode: messages received. */
  readonly receivedByMode: Record<Mode, number>;
  readonly ms: number;
}

export interface ReadParams {
  readonly seed: number;
  readonly count: number;
  readonly maxLen: number;
  readonly timeoutMs: number;
}

/** The (offset, length) of each READ of read(): the whole (capped) region, its last byte, then random ranges. */
export function readRanges(seed: number, count: number, maxLen: number, regionLen: number): [number, number][] {
  const rnd = prng(seed);
  const cap = Math.min(maxLen, regionLen);
  const ranges: [number, number][] = [[0, cap], [regionLen - 1, 1]];
  while (ranges.length < count) {
    const l = Math.min(regionLen, Math.max(1, Math.floor(Math.exp(rnd() * Math.log(cap)))));
    ranges.push([Math.floor(rnd() * (regionLen - l + 1)), l]);
  }
  return ranges;
}

const RECV_OPCODE: Record<Mode, number> = { send: WcOpcode.RECV, send_imm: WcOpcode.RECV, write_send: WcOpcode.RECV, write_imm: WcOpcode.RECV_RDMA_WITH_IMM };

export const MTU_BYTES: Record<number, number> = { 1: 256, 2: 512, 3: 1024, 4: 2048, 5: 4096 };

function hex(b: Buffer): string {
  return b.toString('hex');
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** The GID table entry a RoCEv2 peer is addressed by: RoCEv2 with an IPv4-mapped GID (as rxe lists it, index 3 on Linux); else 0. */
export function roceV2Ipv4GidIndex(ctx: Context, port: number): number {
  const e = ctx.gidTable(port).find((g) => g.type === 'RoCEv2' && g.ipv4 !== undefined);
  return e?.index ?? 0;
}

export class TransferPeer {
  readonly ctx: Context;
  readonly opts: Required<PeerOptions>;
  readonly pd: Pd;
  readonly cq: Cq;
  readonly out: Qp;
  readonly in: Qp;
  readonly blocks: MemoryBlock[] = [];
  readonly src: Mr;
  readonly target: Mr;
  readonly recv: Mr;
  readonly creditRecv: Mr;
  readonly readRegion: Mr;
  readonly readDst: Mr;
  #remote: EndpointInfo | undefined;
  #mtu: IbMtuT = IbMtu.MTU_1024;
  readonly #wcs: WorkCompletion[];
  readonly #swr: SendWr = newSendWr(1);
  readonly #rwr: RecvWr = newRecvWr(1);
  readonly #scratch: Buffer;
  #onEvent: (() => void) | null = null;
  /** Completions seen outside of run()/read(): must stay zero (nothing delivered twice). */
  stray: string[] = [];

  constructor(ctx: Context, opts: PeerOptions) {
    this.ctx = ctx;
    const rnd = prng((Date.now() ^ (process.pid << 8)) >>> 0);
    this.opts = {
      slots: opts.slots ?? 2,
      slotSize: opts.slotSize,
      readSize: opts.readSize,
      readSeed: opts.readSeed,
      portNum: opts.portNum ?? 1,
      gidIndex: opts.gidIndex ?? roceV2Ipv4GidIndex(ctx, opts.portNum ?? 1),
      psnOut: opts.psnOut ?? Math.floor(rnd() * 0xffffff),
      psnIn: opts.psnIn ?? Math.floor(rnd() * 0xffffff),
      lateRecvMs: opts.lateRecvMs ?? -1,
    };
    const K = this.opts.slots;
    this.pd = ctx.allocPd();
    this.cq = ctx.createCq(1024);
    const cap = { maxSendWr: 4 * K + 16, maxRecvWr: 2 * K + 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 64 };
    this.out = this.pd.createQp({ type: 'RC', sendCq: this.cq, recvCq: this.cq, cap });
    this.in = this.pd.createQp({ type: 'RC', sendCq: this.cq, recvCq: this.cq, cap });
    const reg = (len: number, access: number): Mr => {
      const b = ctx.allocMemory(len);
      this.blocks.push(b);
      return this.pd.registerMr(b, 0, len, access);
    };
    const S = this.opts.slotSize;
    this.src = reg(K * S, Access.LOCAL_WRITE);
    this.target = reg(K * S, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
    this.recv = reg(K * S, Access.LOCAL_WRITE);
    this.creditRecv = reg(K * 16, Access.LOCAL_WRITE);
    this.readRegion = reg(this.opts.readSize, Access.LOCAL_WRITE | Access.REMOTE_READ);
    this.readDst = reg(this.opts.readSize, Access.LOCAL_WRITE);
    this.#scratch = scratchBuffer(Math.max(S, this.opts.readSize) + 8);
    fillPayload(this.#scratch, this.opts.readSize, this.opts.readSeed, 0xffffff).copy(this.readRegion.block.buffer, this.readRegion.offset);
    this.#wcs = Array.from({ length: 64 }, () => newWorkCompletion());
    this.cq.setHandler(() => this.#cqEvent());
    this.cq.arm();
  }

  /** This side's endpoint description for the peer. */
  info(): EndpointInfo {
    const gid = this.ctx.queryGid(this.opts.portNum, this.opts.gidIndex).gid;
    const port = this.ctx.queryPort(this.opts.portNum);
    return {
      gid: hex(gid),
      qpnOut: this.out.qpNum,
      qpnIn: this.in.qpNum,
      psnOut: this.opts.psnOut,
      psnIn: this.opts.psnIn,
      slots: this.opts.slots,
      slotSize: this.opts.slotSize,
      target: { hi: this.target.addrHi, lo: this.target.addrLo, rkey: this.target.rkey, length: this.target.length },
      readRegion: { hi: this.readRegion.addrHi, lo: this.readRegion.addrLo, rkey: this.readRegion.rkey, length: this.readRegion.length },
      readSeed: this.opts.readSeed,
      mtu: port.activeMtu,
    };
  }

  /** RESET -> INIT -> RTR -> RTS on both QPs, then posts the receives of the first K messages and credits. */
  connect(remote: EndpointInfo, o: ConnectOptions = {}): void {
    this.#remote = remote;
    const mtu = Math.min(o.mtu ?? IbMtu.MTU_4096, remote.mtu, this.ctx.queryPort(this.opts.portNum).activeMtu) as IbMtuT;
    this.#mtu = mtu;
    const dgid = Buffer.from(remote.gid, 'hex');
    const ah = { dgid, sgidIndex: this.opts.gidIndex, hopLimit: 64, portNum: this.opts.portNum };
    const pairs: [Qp, number, number, number, number][] = [
      // [qp, access, destQpn, rqPsn (= the peer QP's sqPsn), sqPsn]
      [this.out, 0, remote.qpnIn, remote.psnIn, this.opts.psnOut],
      [this.in, Access.REMOTE_WRITE | Access.REMOTE_READ, remote.qpnOut, remote.psnOut, this.opts.psnIn],
    ];
    for (const [qp, access, destQpNum, rqPsn, sqPsn] of pairs) {
      qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: this.opts.portNum, accessFlags: access });
      qp.modify({ state: QpState.RTR, pathMtu: mtu, destQpNum, rqPsn, ah, maxDestRdAtomic: 16, minRnrTimer: o.minRnrTimer ?? 12 });
      qp.modify({ state: QpState.RTS, sqPsn, timeout: o.timeout ?? 14, retryCnt: o.retryCnt ?? 7, rnrRetry: o.rnrRetry ?? 7, maxRdAtomic: 16 });
    }
    for (let n = 0; n < this.opts.slots; n++) {
      if (this.opts.lateRecvMs < 0) this.#postDataRecv(n);
      this.#postCreditRecv(n);
    }
  }

  get mtuBytes(): number {
    return MTU_BYTES[this.#mtu]!;
  }

  #postDataRecv(n: number): void {
    const w = this.#rwr;
    w.wrId = n;
    w.sgList[0] = { mr: this.recv, offset: (n % this.opts.slots) * this.opts.slotSize, length: this.opts.slotSize };
    w.numSge = 1;
    this.in.postRecv(w);
  }

  #postCreditRecv(n: number): void {
    const w = this.#rwr;
    w.wrId = n;
    w.sgList[0] = { mr: this.creditRecv, offset: (n % this.opts.slots) * 16, length: 16 };
    w.numSge = 1;
    this.out.postRecv(w);
  }

  #cqEvent(): void {
    const f = this.#onEvent;
    if (f !== null) f();
    else this.#drainStray();
    this.cq.arm();
    if (this.#onEvent !== null) this.#onEvent();
    else this.#drainStray();
  }

  #drainStray(): void {
    let k: number;
    while ((k = this.cq.poll(this.#wcs, this.#wcs.length)) > 0) {
      for (let i = 0; i < k; i++) {
        const wc = this.#wcs[i]!;
        this.stray.push(`qp ${wc.qpNum} wrId ${wc.wrId} opcode ${wc.opcode} status ${wcStatusName(wc.status)} len ${wc.byteLen}`);
      }
    }
  }

  /** Runs both directions at once; resolves when this side's stream is fully credited and the peer's fully verified. */
  run(p: RunParams): Promise<RunResult> {
    const remote = this.#remote;
    if (remote === undefined) return Promise.reject(new Error('run before connect'));
    const K = this.opts.slots;
    const S = this.opts.slotSize;
    const txPlan = makePlan(p.tx);
    const rxPlan = makePlan(p.rx);
    for (const m of [...txPlan, ...rxPlan]) if (m.size > S) return Promise.reject(new Error(`message size ${m.size} > slot ${S}`));
    const scratch = this.#scratch;
    const hdr = Buffer.alloc(HEADER_LEN);
    const credit = Buffer.alloc(CREDIT_LEN);
    const srcBuf = this.src.block.buffer;
    const t0 = performance.now();
    let next = 0; // next message to post
    let sendDone = 0; // send completions of data messages (one signaled WR per message)
    let creditsIn = 0; // credits received
    let received = 0;
    let receivedBytes = 0;
    let creditSendsDone = 0;
    const byMode: Record<Mode, number> = { send: 0, send_imm: 0, write_send: 0, write_imm: 0 };
    const w = this.#swr;

    return new Promise<RunResult>((resolve, reject) => {
      let finished = false;
      const state = (): string => `next=${next}/${txPlan.length} sendDone=${sendDone} creditsIn=${creditsIn} received=${received}/${rxPlan.length} creditSendsDone=${creditSendsDone}`;
      const fail = (msg: string): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.#onEvent = null;
        reject(new Error(`${msg} [${state()}]`));
      };
      const timer = setTimeout(() => fail(`run timed out after ${p.timeoutMs} ms`), p.timeoutMs);
      if (this.opts.lateRecvMs >= 0) {
        setTimeout(() => {
          if (finished) return;
          try {
            for (let n = 0; n < K && n < rxPlan.length; n++) this.#postDataRecv(n);
          } catch (e) {
            fail(`late post_recv: ${(e as Error).message}`);
          }
        }, this.opts.lateRecvMs);
      }

      const postSend = (qp: Qp, opcode: number, flags: number, wrId: number, mrOff: number, len: number, raddrOff: number, imm: number): void => {
        w.wrId = wrId;
        w.opcode = opcode as SendWr['opcode'];
        w.flags = flags;
        w.sgList[0] = { mr: this.src, offset: mrOff, length: len };
        w.numSge = len === 0 ? 0 : 1;
        const [hi, lo] = addAddr(remote.target.hi, remote.target.lo, raddrOff);
        w.raddrHi = hi;
        w.raddrLo = lo;
        w.rkey = remote.target.rkey;
        w.immData = imm;
        qp.postSend(w);
      };
      const postInline = (qp: Qp, wrId: number, data: Buffer): void => {
        // Inline: copied at post time, so `data` is reused at once.
        const tmp = this.#inlineMr(data);
        w.wrId = wrId;
        w.opcode = WrOpcode.SEND;
        w.flags = SendFlag.SIGNALED | SendFlag.INLINE;
        w.sgList[0] = { mr: tmp.mr, offset: tmp.offset, length: data.length };
        w.numSge = 1;
        qp.postSend(w);
      };

      const pump = (): void => {
        while (next < txPlan.length && next < K + Math.min(creditsIn, sendDone)) {
          const m = txPlan[next]!;
          const slot = m.n % K;
          const off = slot * S;
          const data = fillPayload(scratch, m.size, p.tx.seed, m.n);
          data.copy(srcBuf, this.src.offset + off);
          const imm = immOf(p.tx.seed, m.n);
          switch (m.mode) {
            case 'send':
              postSend(this.out, WrOpcode.SEND, SendFlag.SIGNALED, m.n, off, m.size, 0, 0);
              break;
            case 'send_imm':
              postSend(this.out, WrOpcode.SEND_WITH_IMM, SendFlag.SIGNALED, m.n, off, m.size, 0, imm);
              break;
            case 'write_imm':
              postSend(this.out, WrOpcode.RDMA_WRITE_WITH_IMM, SendFlag.SIGNALED, m.n, off, m.size, off, imm);
              break;
            case 'write_send': {
              postSend(this.out, WrOpcode.RDMA_WRITE, 0, 0x7fff0000 + m.n, off, m.size, off, 0);
              hdr.writeUInt32BE(HEADER_MAGIC, 0);
              hdr.writeUInt32BE(m.n, 4);
              hdr.writeUInt32BE(m.size, 8);
              hdr.writeUInt32BE(crc32(data), 12);
              postInline(this.out, m.n, hdr);
              break;
            }
          }
          next++;
        }
      };

      const onData = (wc: WorkCompletion): string | null => {
        const n = received;
        const m = rxPlan[n];
        if (m === undefined) return `unexpected data completion wrId ${wc.wrId} after all ${rxPlan.length} messages`;
        if (wc.wrId !== n) return `receive completed out of order: wrId ${wc.wrId}, expected ${n}`;
        if (wc.opcode !== RECV_OPCODE[m.mode]) return `message ${n} (${m.mode}): opcode ${wc.opcode}, expected ${RECV_OPCODE[m.mode]}`;
        const withImm = m.mode === 'send_imm' || m.mode === 'write_imm';
        if (wc.withImm !== withImm) return `message ${n} (${m.mode}): withImm ${wc.withImm}`;
        if (withImm && wc.immData >>> 0 !== immOf(p.rx.seed, n)) return `message ${n} (${m.mode}): immData 0x${(wc.immData >>> 0).toString(16)}, expected 0x${immOf(p.rx.seed, n).toString(16)}`;
        const slot = n % K;
        const expected = fillPayload(scratch, m.size, p.rx.seed, n);
        let got: Buffer;
        if (m.mode === 'write_send') {
          if (wc.byteLen !== HEADER_LEN) return `message ${n} (write_send): header byteLen ${wc.byteLen}`;
          const h = this.recv.block.buffer.subarray(this.recv.offset + slot * S, this.recv.offset + slot * S + HEADER_LEN);
          if (h.readUInt32BE(0) !== HEADER_MAGIC || h.readUInt32BE(4) !== n || h.readUInt32BE(8) !== m.size) return `message ${n}: bad header ${hex(h)}`;
          got = this.target.block.buffer.subarray(this.target.offset + slot * S, this.target.offset + slot * S + m.size);
          if (crc32(got) !== h.readUInt32BE(12)) return `message ${n} (write_send, ${m.size} B): crc32 0x${crc32(got).toString(16)} != header 0x${h.readUInt32BE(12).toString(16)}`;
        } else {
          if (wc.byteLen !== m.size) return `message ${n} (${m.mode}): byteLen ${wc.byteLen}, expected ${m.size}`;
          const base = m.mode === 'write_imm' ? this.target : this.recv;
          got = base.block.buffer.subarray(base.offset + slot * S, base.offset + slot * S + m.size);
        }
        if (!got.equals(expected)) return `message ${n} (${m.mode}, ${m.size} B): payload differs at byte ${firstDiff(got, expected)}`;
        received++;
        receivedBytes += m.size;
        byMode[m.mode]++;
        // Scribble over the slot so that stale data can never pass for the next message's.
        got.fill(0xee);
        if (n + K < rxPlan.length) this.#postDataRecv(n + K);
        credit.writeUInt32BE(0xc0ffee00, 0);
        credit.writeUInt32BE(n, 4);
        postInline(this.in, n, credit);
        return null;
      };

      const onCredit = (wc: WorkCompletion): string | null => {
        const n = creditsIn;
        if (wc.wrId !== n) return `credit receive out of order: wrId ${wc.wrId}, expected ${n}`;
        if (wc.opcode !== WcOpcode.RECV || wc.byteLen !== CREDIT_LEN) return `credit ${n}: opcode ${wc.opcode} len ${wc.byteLen}`;
        const b = this.creditRecv.block.buffer.subarray(this.creditRecv.offset + (n % K) * 16, this.creditRecv.offset + (n % K) * 16 + CREDIT_LEN);
        if (b.readUInt32BE(0) !== 0xc0ffee00 || b.readUInt32BE(4) !== n) return `credit ${n}: bad content ${hex(b)}`;
        creditsIn++;
        if (n + K < txPlan.length) this.#postCreditRecv(n + K);
        return null;
      };

      const handle = (wc: WorkCompletion): string | null => {
        if (wc.status !== WcStatus.SUCCESS) {
          return `completion error on ${wc.qpNum === this.out.qpNum ? 'out' : 'in'} QP: ${wcStatusName(wc.status)} wrId ${wc.wrId} opcode ${wc.opcode}`;
        }
        if (wc.qpNum === this.out.qpNum) {
          if (wc.opcode === WcOpcode.RECV) return onCredit(wc);
          if (wc.wrId !== sendDone) return `send completion out of order: wrId ${wc.wrId}, expected ${sendDone}`;
          sendDone++;
          return null;
        }
        if (wc.qpNum === this.in.qpNum) {
          if (wc.opcode === WcOpcode.RECV || wc.opcode === WcOpcode.RECV_RDMA_WITH_IMM) return onData(wc);
          if (wc.opcode !== WcOpcode.SEND) return `unexpected opcode ${wc.opcode} on the in QP`;
          if (wc.wrId !== creditSendsDone) return `credit send completion out of order: wrId ${wc.wrId}, expected ${creditSendsDone}`;
          creditSendsDone++;
          return null;
        }
        return `completion for unknown QP ${wc.qpNum}`;
      };

      this.#onEvent = () => {
        if (finished) return;
        try {
          let k: number;
          while ((k = this.cq.poll(this.#wcs, this.#wcs.length)) > 0) {
            for (let i = 0; i < k; i++) {
              const err = handle(this.#wcs[i]!);
              if (err !== null) { fail(err); return; }
            }
          }
          pump();
        } catch (e) {
          fail(`exception: ${(e as Error).stack ?? String(e)}`);
          return;
        }
        if (sendDone === txPlan.length && creditsIn === txPlan.length && received === rxPlan.length && creditSendsDone === rxPlan.length) {
          finished = true;
          clearTimeout(timer);
          this.#onEvent = null;
          resolve({
            sentMessages: sendDone,
            sentBytes: planBytes(txPlan),
            receivedMessages: received,
            receivedBytes,
            receivedByMode: byMode,
            ms: performance.now() - t0,
          });
        }
      };
      this.#onEvent();
    });
  }

  /** `count` RDMA READs of random ranges of the peer's read region, each compared byte by byte. */
  read(p: ReadParams): Promise<{ reads: number; bytes: number; ms: number }> {
    const remote = this.#remote;
    if (remote === undefined) return Promise.reject(new Error('read before connect'));
    const len = remote.readRegion.length;
    const expected = Buffer.from(fillPayload(this.#scratch, len, remote.readSeed, 0xffffff));
    const ranges = readRanges(p.seed, p.count, p.maxLen, len);
    const dst = this.readDst.block.buffer.subarray(this.readDst.offset, this.readDst.offset + this.readDst.length);
    const t0 = performance.now();
    let i = 0;
    let bytes = 0;
    return new Promise((resolve, reject) => {
      let finished = false;
      const fail = (msg: string): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.#onEvent = null;
        reject(new Error(`${msg} [read ${i}/${ranges.length}]`));
      };
      const timer = setTimeout(() => fail(`read timed out after ${p.timeoutMs} ms`), p.timeoutMs);
      const post = (): void => {
        const [off, l] = ranges[i]!;
        dst.fill(0x5a, 0, l + 1 <= dst.length ? l + 1 : l);
        const w = this.#swr;
        w.wrId = 0x40000000 + i;
        w.opcode = WrOpcode.RDMA_READ;
        w.flags = SendFlag.SIGNALED;
        w.sgList[0] = { mr: this.readDst, offset: 0, length: l };
        w.numSge = 1;
        const [hi, lo] = addAddr(remote.readRegion.hi, remote.readRegion.lo, off);
        w.raddrHi = hi;
        w.raddrLo = lo;
        w.rkey = remote.readRegion.rkey;
        w.immData = 0;
        this.out.postSend(w);
      };
      this.#onEvent = () => {
        if (finished) return;
        let k: number;
        while ((k = this.cq.poll(this.#wcs, this.#wcs.length)) > 0) {
          for (let j = 0; j < k; j++) {
            const wc = this.#wcs[j]!;
            if (wc.status !== WcStatus.SUCCESS) { fail(`READ ${i}: ${wcStatusName(wc.status)}`); return; }
            if (wc.qpNum !== this.out.qpNum || wc.opcode !== WcOpcode.RDMA_READ || wc.wrId !== 0x40000000 + i) {
              fail(`unexpected completion qp ${wc.qpNum} opcode ${wc.opcode} wrId ${wc.wrId}`);
              return;
            }
            const [off, l] = ranges[i]!;
            const got = dst.subarray(0, l);
            const exp = expected.subarray(off, off + l);
            if (!got.equals(exp)) { fail(`READ ${i} (offset ${off}, ${l} B): differs at byte ${firstDiff(got, exp)}`); return; }
            if (l < dst.length && dst[l] !== 0x5a) { fail(`READ ${i} wrote past its ${l} bytes`); return; }
            bytes += l;
            i++;
            if (i === ranges.length) {
              finished = true;
              clearTimeout(timer);
              this.#onEvent = null;
              resolve({ reads: i, bytes, ms: performance.now() - t0 });
              return;
            }
            post();
          }
        }
      };
      try {
        post();
      } catch (e) {
        fail(`post READ: ${(e as Error).message}`);
      }
    });
  }

  #inlineScratch: { mr: Mr; offset: number } | undefined;
  /**
   * The SGE of an inline SEND must name an MR in this interface; the bytes are copied at post
   * time, so one small staging area (re-filled before every post) is enough.
   */
  #inlineMr(data: Buffer): { mr: Mr; offset: number } {
    if (this.#inlineScratch === undefined) {
      const b = this.ctx.allocMemory(64);
      this.blocks.push(b);
      this.#inlineScratch = { mr: this.pd.registerMr(b, 0, 64, Access.LOCAL_WRITE), offset: 0 };
    }
    const s = this.#inlineScratch;
    data.copy(s.mr.block.buffer, s.mr.offset + s.offset);
    return s;
  }

  /** Polls whatever is left (must be nothing) and closes the QPs, CQ, MRs, PD. */
  close(): void {
    this.#onEvent = null;
    this.#drainStray();
    this.cq.setHandler(null);
    this.out.close();
    this.in.close();
    this.cq.close();
    this.pd.close();
    for (const b of this.blocks) b.free();
  }
}
