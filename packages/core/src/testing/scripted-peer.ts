/**
 * A crafted SMC-R peer for engine tests: it speaks to ONE SmcEngine over a real TCP socket (CLC) and
 * over its own queue pair on a mem device (LLC, CDC, RDMA WRITE), and every message it sends is built
 * by hand from the @smc-r/wire codecs, so a test can send exactly the bytes a transition or an error
 * needs (a CONFIRM_LINK without the 0x03 flag, an old CDC sequence number, a CDC for an unknown
 * token...) and look at the engine's replies byte by byte.
 *
 * Nothing here uses the engine's own modules: the peer is an independent implementation of the
 * peer side of spec sections 3 (CLC), 5.1 (QP setup), 6 (LLC) and 7 (CDC), small and explicit, with
 * bounded waits everywhere (every wait takes a timeout and rejects when it runs out).
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  Access, QpState, SendFlag, WcOpcode, WcStatus, WrOpcode, newRecvWr, newSendWr, newWorkCompletion, wcStatusName,
  type Context, type Cq, type GidEntry, type MemoryBlock, type Mr, type Pd, type Qp, type RecvWr, type SendWr, type WorkCompletion,
} from '@smc-r/verbs';
import {
  ClcOsType, ClcReader, clcToBuffer, decodeCdc, decodeLlc, encodeCdc, encodeLlc, llcLength,
  type ClcAccept, type ClcConfirm, type ClcDecline, type ClcMessage, type ClcProposal, type CdcMessage,
  type LlcConfirmLink, type LlcMessage,
} from '@smc-r/wire';

/** The UEID both our engine (default table) and the Anolis kernel start with (spec 3.3.4). */
export const PEER_UEID = 'SMCV2-DEFAULT-UEID';

/** Bytes per send / receive slot: big enough for any SMC-Rv2 LLC message (SMC_WR_BUF_V2_SIZE). */
const SLOT = 8192;
const SEND_SLOTS = 16;
const RECV_SLOTS = 32;

export interface ScriptedPeerOptions {
  /** An opened mem device that is not the engine's. */
  readonly context: Context;
  /**
   * Which GID the link uses: 'v1' = the port's link-local RoCEv1 GID (an SMC-Rv1 link), 'v2' = the
   * IPv4-mapped GID (an SMC-Rv2 link).
   */
  readonly link: 'v1' | 'v2';
  /**
   * GID table entry type the QP's GRH uses for the mapped GID. Linux uses the RoCEv2 entry for SMC-Rv2
   * (spec 5.1); default 'RoCEv2'.
   */
  readonly v2GidType?: 'RoCEv1' | 'RoCEv2';
  /** RMB size (16 KiB << n); default 64 KiB. */
  readonly rmbSize?: number;
  /** System ID (8 bytes); default 2 random bytes + our MAC. */
  readonly systemId?: Buffer;
}

/** What the engine told us about its side of the link and its RMBE (from its Accept or Confirm). */
export interface EngineSide {
  readonly qpn: number;
  readonly psn: number;
  readonly gid: Buffer;
  readonly mac: Buffer;
  readonly mtu: number;
  readonly rkey: number;
  /** Address of the engine's RMBE for this connection. */
  readonly rmbeAddr: bigint;
  readonly rmbeSize: number;
  /** The engine's alert token: every CDC we send carries it. */
  readonly token: number;
}

/** One received SEND: the raw bytes (a copy) and, when it decodes, the message. */
export interface Received {
  readonly bytes: Buffer;
  readonly llc?: LlcMessage;
  readonly cdc?: CdcMessage;
}

type Waiter<T> = { resolve: (v: T) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

/** Rejects after `ms` unless `p` settles first; clears its timer either way. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export class ScriptedPeer {
  readonly context: Context;
  readonly pd: Pd;
  readonly cq: Cq;
  readonly qp: Qp;
  readonly psn = randomInt(0, 0x1000000);
  readonly gidEntry: GidEntry;
  readonly mac: Buffer;
  readonly systemId: Buffer;
  readonly mtu: number;
  readonly rmbBlock: MemoryBlock;
  readonly rmbMr: Mr;
  readonly rmbSize: number;
  /** Our connection token (the engine puts it into its CDCs). */
  token = randomInt(1, 0x7fffffff);
  /** Every SEND the engine made to us, in order (also the ones a test consumed). */
  readonly log: Received[] = [];
  /** Error completions seen (status names). */
  readonly wcErrors: string[] = [];

  readonly #sendBlock: MemoryBlock;
  readonly #sendMr: Mr;
  readonly #recvBlock: MemoryBlock;
  readonly #recvMr: Mr;
  readonly #sendWrs: SendWr[] = [];
  readonly #recvWrs: RecvWr[] = [];
  readonly #wcs: WorkCompletion[] = [];
  readonly #sendWaiters = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #nextSend = 0;
  readonly #rxQueue: Received[] = [];
  readonly #rxWaiters: Waiter<Received>[] = [];
  #closed = false;

  // CLC side
  #socket: Socket | null = null;
  readonly #oldSockets: Socket[] = [];
  #reader = new ClcReader();
  #clcMode = true;
  readonly #clcQueue: ClcMessage[] = [];
  #clcError: Error | null = null;
  #raw: Buffer = Buffer.alloc(0);
  #eof = false;
  #wake: (() => void) | null = null;

  constructor(opts: ScriptedPeerOptions) {
    this.context = opts.context;
    const gids = this.context.gidTable(1);
    const v2Type = opts.v2GidType ?? 'RoCEv2';
    const entry = opts.link === 'v1'
      ? gids.find((g) => g.type === 'RoCEv1' && g.ipv4 === undefined)
      : gids.find((g) => g.type === v2Type && g.ipv4 !== undefined);
    if (entry === undefined) throw new Error(`no GID for a ${opts.link} link on ${this.context.device.name}`);
    this.gidEntry = entry;
    this.mac = Buffer.from([0x02, 0x5c, 0x00, entry.gid[13]!, entry.gid[14]!, entry.gid[15]!]);
    this.systemId = opts.systemId ?? Buffer.concat([randomBytes(2), this.mac]);
    this.mtu = this.context.queryPort(1).activeMtu;
    this.rmbSize = opts.rmbSize ?? 64 * 1024;
    this.pd = this.context.allocPd();
    this.cq = this.context.createCq(2 * (SEND_SLOTS + RECV_SLOTS));
    this.qp = this.pd.createQp({
      type: 'RC', sendCq: this.cq, recvCq: this.cq,
      cap: { maxSendWr: SEND_SLOTS, maxRecvWr: RECV_SLOTS, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 },
    });
    this.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
    this.rmbBlock = this.context.allocMemory(this.rmbSize);
    this.rmbMr = this.pd.registerMr(this.rmbBlock, 0, this.rmbSize, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
    this.#sendBlock = this.context.allocMemory(SEND_SLOTS * SLOT);
    this.#sendMr = this.pd.registerMr(this.#sendBlock, 0, SEND_SLOTS * SLOT, Access.LOCAL_WRITE);
    this.#recvBlock = this.context.allocMemory(RECV_SLOTS * SLOT);
    this.#recvMr = this.pd.registerMr(this.#recvBlock, 0, RECV_SLOTS * SLOT, Access.LOCAL_WRITE);
    for (let i = 0; i < SEND_SLOTS; i++) {
      const wr = newSendWr(1);
      wr.wrId = i;
      wr.sgList[0] = { mr: this.#sendMr, offset: i * SLOT, length: 0 };
      wr.numSge = 1;
      this.#sendWrs.push(wr);
    }
    for (let i = 0; i < RECV_SLOTS; i++) {
      const wr = newRecvWr(1);
      wr.wrId = 0x10000 + i;
      wr.sgList[0] = { mr: this.#recvMr, offset: i * SLOT, length: SLOT };
      wr.numSge = 1;
      this.#recvWrs.push(wr);
      this.qp.postRecv(wr);
    }
    for (let i = 0; i < 16; i++) this.#wcs.push(newWorkCompletion());
    this.cq.setHandler(() => this.#drain());
    this.cq.arm();
  }

  get qpn(): number {
    return this.qp.qpNum;
  }

  get gid(): Buffer {
    return this.gidEntry.gid;
  }

  /** Our RMB's address as announced in CLC (RMBE index 1 starts here). */
  get rmbVaddr(): bigint {
    return (BigInt(this.rmbMr.addrHi) << 32n) | BigInt(this.rmbMr.addrLo);
  }

  /** Our RMB's bytes (what the engine RDMA-WRITEs into). */
  get rmb(): Buffer {
    return this.rmbBlock.buffer.subarray(0, this.rmbSize);
  }

  // ================================================================== CLC over TCP

  /**
   * Starts reading CLC from `socket` (the peer's end of the TCP connection). Attaching a new socket
   * (the next connection of the same peer, e.g. to reuse the link group) starts a fresh CLC exchange.
   */
  attach(socket: Socket): void {
    if (this.#socket !== null) this.#oldSockets.push(this.#socket);
    this.#socket = socket;
    this.#reader = new ClcReader();
    this.#clcMode = true;
    this.#clcQueue.length = 0;
    this.#clcError = null;
    this.#raw = Buffer.alloc(0);
    this.#eof = false;
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket !== socket) return;
      if (this.#clcMode && this.#clcError === null) {
        try {
          for (const m of this.#reader.push(chunk)) this.#clcQueue.push(m);
        } catch (e) {
          this.#clcError = e as Error;
        }
      } else {
        this.#raw = Buffer.concat([this.#raw, chunk]);
      }
      this.#wake?.();
    });
    const onEnd = (): void => {
      if (this.#socket !== socket) return;
      this.#eof = true;
      this.#wake?.();
    };
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', () => {});
  }

  get socket(): Socket {
    if (this.#socket === null) throw new Error('scripted peer: no socket attached');
    return this.#socket;
  }

  /** Writes one CLC message (encoded by the wire codec); resolves once the socket took it. */
  sendClc(msg: ClcMessage, appended?: Buffer): Promise<void> {
    const bytes = appended ? Buffer.concat([clcToBuffer(msg), appended]) : clcToBuffer(msg);
    return this.writeRaw(bytes);
  }

  writeRaw(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, (e) => (e ? reject(e) : resolve())));
  }

  #until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const first = check();
      if (first !== undefined) {
        resolve(first);
        return;
      }
      const timer = setTimeout(() => {
        this.#wake = null;
        reject(new Error(`scripted peer: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#wake = () => {
        let v: T | undefined;
        try {
          v = check();
        } catch (e) {
          clearTimeout(timer);
          this.#wake = null;
          reject(e as Error);
          return;
        }
        if (v !== undefined) {
          clearTimeout(timer);
          this.#wake = null;
          resolve(v);
        }
      };
    });
  }

  /** The next CLC message from the engine; rejects on timeout, EOF or undecodable bytes. */
  nextClc(timeoutMs: number): Promise<ClcMessage> {
    return this.#until(() => {
      const m = this.#clcQueue.shift();
      if (m !== undefined) return m;
      if (this.#clcError !== null) throw this.#clcError;
      if (this.#eof) throw new Error('scripted peer: EOF while waiting for CLC');
      return undefined;
    }, timeoutMs, 'CLC message');
  }

  /** The next CLC message, which must be of `type`. */
  async expectClc<T extends ClcMessage['type']>(type: T, timeoutMs: number): Promise<Extract<ClcMessage, { type: T }>> {
    const m = await this.nextClc(timeoutMs);
    if (m.type !== type) {
      const why = m.type === 'decline' ? ` (peer diagnosis 0x${m.peerDiagnosis.toString(16).padStart(8, '0')})` : '';
      throw new Error(`scripted peer: expected CLC ${type}, got ${m.type}${why}`);
    }
    return m as Extract<ClcMessage, { type: T }>;
  }

  /** Ends the CLC phase: every later byte (and what the reader still holds) is application data. */
  endClc(): void {
    if (!this.#clcMode) return;
    this.#clcMode = false;
    this.#raw = Buffer.concat([this.#reader.takeRemaining(), this.#raw]);
  }

  /** Exactly `n` application bytes (after endClc()). */
  readRaw(n: number, timeoutMs: number): Promise<Buffer> {
    this.endClc();
    return this.#until(() => {
      if (this.#raw.length >= n) {
        const out = this.#raw.subarray(0, n);
        this.#raw = this.#raw.subarray(n);
        return Buffer.from(out);
      }
      if (this.#eof) throw new Error(`scripted peer: EOF after ${this.#raw.length} of ${n} bytes`);
      return undefined;
    }, timeoutMs, `${n} application bytes`);
  }

  /** Resolves when the engine closed or reset the TCP connection. */
  tcpClosed(timeoutMs: number): Promise<true> {
    return this.#until(() => (this.#eof ? true : undefined), timeoutMs, 'TCP close');
  }

  // ---------------------------------------------------------------- CLC builders

  /** An SMC-Rv2-only Proposal as Linux sends it (typev1 N, zero v1 fields, spec 3.3.2, 12 row 18). */
  proposalV2(o: { ueids?: string[]; release?: number; maxConns?: number; maxLinks?: number; featureMask?: number } = {}): ClcProposal {
    return {
      type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'N', typev2: 'R',
      peerId: Buffer.alloc(8), gid: Buffer.alloc(16), mac: Buffer.alloc(6), ipAreaOffset: 0,
      smcdArea: { ismGid: 0n, ismChid: 0, vendorOui: 0, vendorOptions: Buffer.alloc(5) },
      v2Ext: {
        release: o.release ?? 1, seid: false, roceGid: Buffer.from(this.gid),
        maxConns: o.maxConns ?? 255, maxLinks: o.maxLinks ?? 1, featureMask: o.featureMask ?? 0,
        ueids: o.ueids ?? [PEER_UEID],
      },
    };
  }

  /** An SMC-Rv1 Proposal in the RFC 7609 layout (version 1), with `subnet/prefixLen` (default 127.0.0.0/8). */
  proposalV1(subnet = [127, 0, 0, 0], prefixLen = 8): ClcProposal {
    return {
      type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'R', typev2: 'N',
      peerId: Buffer.from(this.systemId), gid: Buffer.from(this.gid), mac: Buffer.from(this.mac), ipAreaOffset: 0,
      ipPrefix: { subnet: Buffer.from(subnet), prefixLen, ipv6Prefixes: [] },
    };
  }

  #acceptConfirmBase(version: 1 | 2, firstContact: boolean, mtu: number) {
    return {
      eyecatcher: 'SMCR' as const, version, firstContact,
      peerId: Buffer.from(this.systemId), gid: Buffer.from(this.gid), mac: Buffer.from(this.mac), qpn: this.qpn,
      rmbRkey: this.rmbMr.rkey, rmbeIdx: 1, rmbeAlertToken: this.token,
      // compressed size: 16 KiB << n (spec 8.1)
      rmbeSizeCode: Math.log2(this.rmbSize / 16384), qpMtu: mtu, initCredits: 0,
      rmbVaddr: this.rmbVaddr, psn: this.psn,
    };
  }

  /**
   * The server's Accept (spec 3.4). v2 first contact carries the FCE (OS Linux, release 1, max_conns,
   * max_links, v2_direct); `over` replaces any field (crafted values).
   */
  accept(version: 1 | 2, o: { firstContact?: boolean; eid?: string; maxConns?: number; maxLinks?: number; release?: number; v2Direct?: boolean } = {}, over: Partial<ClcAccept> = {}): ClcAccept {
    const fc = o.firstContact ?? true;
    const base = { type: 'accept' as const, ...this.#acceptConfirmBase(version, fc, this.mtu) };
    if (version === 1) return { ...base, ...over };
    const fce = fc
      ? { fce: { v2Direct: o.v2Direct ?? true, osType: ClcOsType.LINUX.value, release: o.release ?? 1, hostname: 'scripted-srv', maxConns: o.maxConns ?? 255, maxLinks: o.maxLinks ?? 1, featureMask: 0, vendorOptions: 0 } }
      : {};
    return { ...base, eid: o.eid ?? PEER_UEID, ...fce, ...over };
  }

  /** The client's Confirm answering `acc` (spec 3.4): echoes the FCE's release / max_conns / max_links. */
  confirm(acc: ClcAccept, over: Partial<ClcConfirm> = {}): ClcConfirm {
    const version = acc.version >= 2 ? 2 : 1;
    const base = { type: 'confirm' as const, ...this.#acceptConfirmBase(version, acc.firstContact, Math.min(this.mtu, acc.qpMtu)) };
    if (version === 1) return { ...base, ...over };
    if (!acc.firstContact) return { ...base, eid: acc.eid ?? '', ...over };
    const f = acc.fce!;
    return {
      ...base, eid: acc.eid ?? '',
      fce: { v2Direct: true, osType: ClcOsType.LINUX.value, release: f.release, hostname: 'scripted-cli', maxConns: f.maxConns ?? 0, maxLinks: f.maxLinks ?? 0, featureMask: f.featureMask ?? 0, vendorOptions: 0 },
      gidList: [Buffer.from(this.gid)],
      ...over,
    };
  }

  /** A Decline as Linux sends it (spec 3.5). */
  decline(code: number, version: 1 | 2, outOfSync = false): ClcDecline {
    const base = { type: 'decline' as const, eyecatcher: 'SMCR' as const, version, typev1: 'R' as const, outOfSync, peerId: Buffer.from(this.systemId), peerDiagnosis: code, osType: version === 1 ? 0 : ClcOsType.LINUX.value, trailerOk: true };
    return version === 1 ? base : { ...base, diagnosisV2: [0, 0, 0, 0] };
  }

  /** The engine's link and RMBE from its Accept (we are the client) or Confirm (we are the server). */
  static engineSide(m: ClcAccept | ClcConfirm): EngineSide {
    const size = 16384 * 2 ** m.rmbeSizeCode;
    return {
      qpn: m.qpn, psn: m.psn, gid: m.gid, mac: m.mac, mtu: m.qpMtu, rkey: m.rmbRkey,
      rmbeAddr: m.rmbVaddr + BigInt(m.rmbeIdx - 1) * BigInt(size), rmbeSize: size, token: m.rmbeAlertToken,
    };
  }

  // ================================================================== the RDMA side

  /** QP INIT -> RTR toward the engine's QP (spec 5.1: min MTU, hop limit 1, min RNR timer 5). */
  toRtr(e: Pick<EngineSide, 'qpn' | 'psn' | 'gid' | 'mac' | 'mtu'>, sgidIndex = this.gidEntry.index): void {
    this.qp.modify({
      state: QpState.RTR, pathMtu: Math.min(this.mtu, e.mtu) as 1 | 2 | 3 | 4 | 5, destQpNum: e.qpn, rqPsn: e.psn,
      ah: { dgid: e.gid, sgidIndex, hopLimit: 1, portNum: 1, dmac: e.mac },
      maxDestRdAtomic: 1, minRnrTimer: 5,
    });
  }

  /** RTR -> RTS with our PSN; a short ACK timeout so a dead engine shows quickly. */
  toRts(): void {
    this.qp.modify({ state: QpState.RTS, sqPsn: this.psn, timeout: 8, retryCnt: 3, rnrRetry: 7, maxRdAtomic: 1 });
  }

  #drain(): void {
    if (this.#closed) return;
    for (;;) {
      const n = this.cq.poll(this.#wcs, this.#wcs.length);
      for (let i = 0; i < n; i++) this.#complete(this.#wcs[i]!);
      if (n < this.#wcs.length) {
        this.cq.arm();
        const m = this.cq.poll(this.#wcs, this.#wcs.length);
        for (let i = 0; i < m; i++) this.#complete(this.#wcs[i]!);
        if (m === 0) return;
      }
    }
  }

  #complete(wc: WorkCompletion): void {
    if (wc.status !== WcStatus.SUCCESS) {
      this.wcErrors.push(wcStatusName(wc.status));
      const w = this.#sendWaiters.get(wc.wrId);
      if (w) {
        this.#sendWaiters.delete(wc.wrId);
        w.reject(new Error(`scripted peer: send completed with ${wcStatusName(wc.status)}`));
      }
      return;
    }
    if (wc.wrId >= 0x10000) {
      const i = wc.wrId - 0x10000;
      if (wc.opcode === WcOpcode.RECV) {
        const bytes = Buffer.from(this.#recvBlock.buffer.subarray(i * SLOT, i * SLOT + wc.byteLen));
        const r = ScriptedPeer.#parse(bytes);
        this.log.push(r);
        const w = this.#rxWaiters.shift();
        if (w) {
          clearTimeout(w.timer);
          w.resolve(r);
        } else {
          this.#rxQueue.push(r);
        }
      }
      if (!this.#closed) this.qp.postRecv(this.#recvWrs[i]!);
      return;
    }
    const w = this.#sendWaiters.get(wc.wrId);
    if (w) {
      this.#sendWaiters.delete(wc.wrId);
      w.resolve();
    }
  }

  static #parse(bytes: Buffer): Received {
    if (bytes[0] === 0xfe) {
      try {
        return { bytes, cdc: decodeCdc(bytes) };
      } catch {
        return { bytes };
      }
    }
    try {
      return { bytes, llc: decodeLlc(bytes) };
    } catch {
      return { bytes };
    }
  }

  /** The next SEND the engine made to us (LLC or CDC), in arrival order. */
  next(timeoutMs: number): Promise<Received> {
    const r = this.#rxQueue.shift();
    if (r !== undefined) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      const w: Waiter<Received> = {
        resolve, reject,
        timer: setTimeout(() => {
          const i = this.#rxWaiters.indexOf(w);
          if (i >= 0) this.#rxWaiters.splice(i, 1);
          reject(new Error(`scripted peer: no RDMA SEND from the engine within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#rxWaiters.push(w);
    });
  }

  /** The next LLC message (CDCs in between are skipped but stay in `log`). */
  async nextLlc(timeoutMs: number): Promise<Received & { llc: LlcMessage }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.next(Math.max(1, end - Date.now()));
      if (r.llc !== undefined) return r as Received & { llc: LlcMessage };
    }
  }

  /** The next CDC (LLC messages in between are skipped but stay in `log`). */
  async nextCdc(timeoutMs: number): Promise<Received & { cdc: CdcMessage }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.next(Math.max(1, end - Date.now()));
      if (r.cdc !== undefined) return r as Received & { cdc: CdcMessage };
    }
  }

  /** Messages already received and not consumed. */
  get pending(): readonly Received[] {
    return this.#rxQueue;
  }

  #post(wr: SendWr, slot: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#sendWaiters.set(slot, { resolve, reject });
      try {
        this.qp.postSend(wr);
      } catch (e) {
        this.#sendWaiters.delete(slot);
        reject(e as Error);
      }
    });
  }

  #slot(): number {
    const s = this.#nextSend;
    this.#nextSend = (this.#nextSend + 1) % SEND_SLOTS;
    if (this.#sendWaiters.has(s)) throw new Error('scripted peer: all send slots busy');
    return s;
  }

  /** Sends `bytes` as one RDMA SEND (signaled); resolves on its successful completion. */
  sendRaw(bytes: Buffer): Promise<void> {
    const s = this.#slot();
    bytes.copy(this.#sendBlock.buffer, s * SLOT);
    const wr = this.#sendWrs[s]!;
    wr.opcode = WrOpcode.SEND;
    wr.flags = SendFlag.SIGNALED | SendFlag.SOLICITED;
    wr.sgList[0]!.offset = s * SLOT;
    wr.sgList[0]!.length = bytes.length;
    return this.#post(wr, s);
  }

  /** The bytes of an LLC message as the wire codec encodes it. */
  static llcBytes(m: LlcMessage): Buffer {
    const b = Buffer.alloc(llcLength(m));
    encodeLlc(m, b, 0);
    return b;
  }

  sendLlc(m: LlcMessage): Promise<void> {
    return this.sendRaw(ScriptedPeer.llcBytes(m));
  }

  static cdcBytes(m: CdcMessage): Buffer {
    const b = Buffer.alloc(44);
    encodeCdc(m, b, 0);
    return b;
  }

  sendCdc(m: CdcMessage): Promise<void> {
    return this.sendRaw(ScriptedPeer.cdcBytes(m));
  }

  /** RDMA WRITE of `data` to the engine's address `raddr` with `rkey` (signaled; resolves on completion). */
  rdmaWrite(data: Buffer, raddr: bigint, rkey: number): Promise<void> {
    const s = this.#slot();
    data.copy(this.#sendBlock.buffer, s * SLOT);
    const wr = this.#sendWrs[s]!;
    wr.opcode = WrOpcode.RDMA_WRITE;
    wr.flags = SendFlag.SIGNALED;
    wr.sgList[0]!.offset = s * SLOT;
    wr.sgList[0]!.length = data.length;
    wr.raddrHi = Number(raddr >> 32n);
    wr.raddrLo = Number(raddr & 0xffffffffn);
    wr.rkey = rkey;
    return this.#post(wr, s);
  }

  /** A CONFIRM_LINK carrying our link values (spec 6.3); flags default 0x03 (no RMBE eyecatchers). */
  confirmLink(v2: boolean, o: { resp: boolean; linkNum: number; flags?: number; maxLinks?: number; maxConns?: number }): LlcConfirmLink {
    const flags = o.flags ?? ((o.resp ? 0x80 : 0) | 0x03);
    return {
      type: 'confirm_link', v2, flags, resp: (flags & 0x80) !== 0, noRmbeEyec: (flags & 0x03) === 0x03,
      senderMac: Buffer.from(this.mac), senderGid: Buffer.from(this.gid), senderQpn: this.qpn, linkNum: o.linkNum,
      linkUid: Buffer.from([0x00, 0x00, 0x5c, o.linkNum]), maxLinks: o.maxLinks ?? 1, maxConns: o.maxConns ?? (v2 ? 255 : 0),
    };
  }

  /** Tears the peer down (QP first, then memory). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.cq.setHandler(null);
    for (const w of this.#rxWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error('scripted peer closed'));
    }
    for (const w of this.#sendWaiters.values()) w.reject(new Error('scripted peer closed'));
    this.#sendWaiters.clear();
    this.qp.close();
    this.rmbMr.close();
    this.#sendMr.close();
    this.#recvMr.close();
    this.rmbBlock.free();
    this.#sendBlock.free();
    this.#recvBlock.free();
    this.cq.close();
    this.pd.close();
    this.#socket?.destroy();
    for (const s of this.#oldSockets) s.destroy();
  }
}

// ==================================================================== sockets and scripted flows

/** A connected TCP pair on loopback: `client` (connect side) and `server` (accept side). */
export async function tcpPair(): Promise<{ client: Socket; server: Socket }> {
  const { createServer, connect } = await import('node:net');
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  const accepted = new Promise<Socket>((resolve) => srv.once('connection', resolve));
  const client = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  const server = await within(accepted, 2000, 'TCP accept');
  srv.close();
  return { client, server };
}

/** What a scripted handshake learned. */
export interface ScriptedLink {
  /** The engine's Accept (peer = client) or Confirm (peer = server). */
  readonly engineMsg: ClcAccept | ClcConfirm;
  readonly engine: EngineSide;
  /** The CONFIRM_LINK the engine sent (request on the server, response on the client), raw and decoded. */
  readonly confirmLink: Received & { llc: LlcMessage };
  readonly v2: boolean;
  readonly linkNum: number;
}

/**
 * The peer plays an SMC-R client against an engine server up to (and including) the engine's
 * CONFIRM_LINK request (spec 3.6.1): Proposal, Accept, QP to RTR, Confirm, wait for the request.
 * Then `answer` decides: 'ok' sends the response (flags 0x83), 'no-eyec' a response without the 0x03
 * flag, 'none' nothing at all.
 */
export async function scriptClient(peer: ScriptedPeer, proposal: ClcProposal, answer: 'ok' | 'no-eyec' | 'none' = 'ok', timeoutMs = 2000): Promise<ScriptedLink> {
  await peer.sendClc(proposal);
  const acc = await peer.expectClc('accept', timeoutMs);
  const engine = ScriptedPeer.engineSide(acc);
  peer.toRtr(engine);
  await peer.sendClc(peer.confirm(acc));
  const req = await peer.nextLlc(timeoutMs);
  if (req.llc.type !== 'confirm_link') throw new Error(`scripted client: expected CONFIRM_LINK, got ${req.llc.type}`);
  const v2 = req.llc.v2;
  peer.toRts();
  if (answer !== 'none') {
    const flags = answer === 'ok' ? 0x83 : 0x80;
    await peer.sendLlc(peer.confirmLink(v2, { resp: true, linkNum: req.llc.linkNum, flags }));
  }
  return { engineMsg: acc, engine, confirmLink: req, v2, linkNum: req.llc.linkNum };
}

/** Options of {@link scriptServer}. */
export interface ScriptServerOptions {
  /** The Accept to answer the engine's Proposal with. */
  readonly accept: (p: ClcProposal) => ClcAccept;
  /** CONFIRM_LINK request: 'ok' flags 0x03, 'no-eyec' flags 0x00, 'none' never sent. Default 'ok'. */
  readonly request?: 'ok' | 'no-eyec' | 'none';
  readonly timeoutMs?: number;
  /** The GID table index our QP's GRH uses, chosen once the engine's QP exists (default: ours). */
  readonly sgidIndex?: (engineQpn: number) => number;
}

/**
 * The peer plays an SMC-R server against an engine client: waits for the Proposal, answers with
 * `o.accept(proposal)`, waits for the Confirm, brings its QP up and sends the CONFIRM_LINK request
 * (spec 6.5.1), then waits for the engine's response (unless no valid request went out).
 */
export async function scriptServer(peer: ScriptedPeer, o: ScriptServerOptions): Promise<ScriptedLink & { proposal: ClcProposal }> {
  const timeoutMs = o.timeoutMs ?? 2000;
  const request = o.request ?? 'ok';
  const proposal = await peer.expectClc('proposal', timeoutMs);
  const acc = o.accept(proposal);
  await peer.sendClc(acc);
  const conf = await peer.expectClc('confirm', timeoutMs);
  const engine = ScriptedPeer.engineSide(conf);
  peer.toRtr(engine, o.sgidIndex?.(engine.qpn));
  peer.toRts();
  const v2 = acc.version >= 2;
  const none = { bytes: Buffer.alloc(0), llc: peer.confirmLink(v2, { resp: false, linkNum: 1 }) };
  if (request === 'none') return { proposal, engineMsg: conf, engine, confirmLink: none, v2, linkNum: 1 };
  await peer.sendLlc(peer.confirmLink(v2, { resp: false, linkNum: 1, flags: request === 'ok' ? 0x03 : 0x00 }));
  if (request === 'no-eyec') return { proposal, engineMsg: conf, engine, confirmLink: none, v2, linkNum: 1 };
  const resp = await peer.nextLlc(timeoutMs);
  return { proposal, engineMsg: conf, engine, confirmLink: resp, v2, linkNum: 1 };
}
