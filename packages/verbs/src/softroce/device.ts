/**
 * A softroce device: one IPv4 address, one UDP socket (bound when the first context opens it),
 * the QP number space and the counters, shared by every context opened on it.
 *
 * Receive path, per datagram: test hooks -> parse (allocation-free, into one scratch object) ->
 * ICRC (see icrc.ts) -> P_Key (0xFFFF or 0x7FFF) -> demultiplex by BTH DestQP -> the QP. Every
 * drop is counted by reason in `stats`.
 *
 * Batching: QPs do not send ACKs, NAKs, read responses or new requests from inside the receive
 * handler; they mark themselves dirty and the device flushes all dirty QPs once per event-loop
 * turn (clock.defer = setImmediate, which runs after the I/O phase that delivered up to 32
 * datagrams). So one ACK covers every request of a turn, and WRs posted in one turn go out
 * together. Class C NAKs and RNR NAKs are sent at once.
 *
 * Transmit path: the QP encodes into `txBuf` (one preallocated buffer), the device appends the
 * ICRC and hands it to the socket. dgram sends synchronously here (IP-literal lookup), so the
 * buffer is reused at once; only when the socket queues a send (EAGAIN) is the buffer parked until
 * the queue drains and a spare one used.
 */
import { networkInterfaces } from 'node:os';
import { mtuEnumAtMost } from '@smc-r/wire';
import type { DeviceAttr, DeviceInfo, GidEntry, PortAttr } from '../types.js';
import type { Clock, TimerRef } from './clock.js';
import { IcrcChecker, fillIcrcUdp4 } from './icrc.js';
import type { DatagramLink, LinkFactory } from './link.js';
import { ParseError, RxPacket, TxTemplates, ipv4ToNumber, parseIbPacket } from './packet.js';
import type { SrQp } from './qp.js';
import { newStats, type SoftRoceStats } from './stats.js';

/** Largest datagram: BTH + RETH + ImmDt + 4096 payload + pad + ICRC. */
const TX_BUF_SIZE = 12 + 16 + 4 + 4096 + 3 + 4;

/**
 * TEST-ONLY hooks (provider-wide or per device). With none set the receive and transmit paths
 * skip them entirely.
 */
export interface SoftRoceTestHooks {
  /** Probability (0..1) of dropping each outgoing datagram, decided by a PRNG seeded with `seed`. */
  readonly dropOutgoing?: number;
  /** Probability (0..1) of dropping each incoming datagram (a second PRNG stream of `seed`). */
  readonly dropIncoming?: number;
  /** PRNG seed (default 1). Same seed, same traffic -> same drops. */
  readonly seed?: number;
  /**
   * Called for every datagram before the drop decision; return true to drop it. `packet[0, length)`
   * is the UDP payload (BTH .. ICRC), valid only during the call.
   */
  readonly filter?: (dir: 'out' | 'in', packet: Buffer, length: number, remoteIp: string, remotePort: number) => boolean;
  /**
   * Called for every datagram, after the drop decision (`dropped` tells). The local end is the
   * device's ip/port; for 'out' the remote end is the destination, for 'in' the source. The ICRC
   * of outgoing datagrams is computed over IP ID 0 with DF (see icrc.ts).
   */
  readonly observe?: (dir: 'out' | 'in', packet: Buffer, length: number, remoteIp: string, remotePort: number, dropped: boolean) => void;
}

/** Transport tuning (provider options). */
export interface SoftRoceTransportOptions {
  /** Window: PSNs a QP may have unacknowledged (default 128; one WR is always allowed). */
  readonly maxInflightPackets?: number;
  /** Requester sets AckReq at least every N packets, besides the last packet of each message (default 16). */
  readonly ackReqInterval?: number;
  /** Responder ACKs after N unacknowledged requests even without AckReq (default 32). */
  readonly ackCoalesce?: number;
  /** Responder ACKs requests that asked for none after this idle time (ms, default 1). */
  readonly ackIdleMs?: number;
  /** Clamp of the local ACK timeout (4.096 us * 2^timeout), for tests (default: none). 0 = infinite stays infinite. */
  readonly minAckTimeoutMs?: number;
  readonly maxAckTimeoutMs?: number;
  /** Clamp of the RNR NAK delay (IBA Table 45), for tests (default: none). */
  readonly minRnrDelayMs?: number;
  readonly maxRnrDelayMs?: number;
  /** READ response packets a QP sends per event-loop turn (default 64). */
  readonly readBurst?: number;
  /** Treat retryCnt 7 as infinite, as rxe does (default false: IBA, 7 retries). */
  readonly infiniteRetry7?: boolean;
  /**
   * Set SE on the last packet of every SEND (default true): what the kernel SMC-R peer needs
   * (it arms its receive CQ for solicited events only). false: only with SendFlag.SOLICITED.
   */
  readonly solicitAllSends?: boolean;
  /** Socket buffer sizes (default 4 MiB / 1 MiB; the kernel caps them at rmem_max / wmem_max). */
  readonly recvBufferSize?: number;
  readonly sendBufferSize?: number;
}

export interface ResolvedTransport {
  readonly maxInflightPackets: number;
  readonly ackReqInterval: number;
  readonly ackCoalesce: number;
  readonly ackIdleMs: number;
  readonly minAckTimeoutMs: number;
  readonly maxAckTimeoutMs: number;
  readonly minRnrDelayMs: number;
  readonly maxRnrDelayMs: number;
  readonly readBurst: number;
  readonly infiniteRetry7: boolean;
  readonly solicitAllSends: boolean;
  readonly recvBufferSize: number;
  readonly sendBufferSize: number;
}

export function resolveTransport(o: SoftRoceTransportOptions): ResolvedTransport {
  const pos = (v: number | undefined, d: number): number => (typeof v === 'number' && v > 0 && Number.isFinite(v) ? v : d);
  return {
    maxInflightPackets: Math.floor(pos(o.maxInflightPackets, 128)),
    ackReqInterval: Math.floor(pos(o.ackReqInterval, 16)),
    ackCoalesce: Math.floor(pos(o.ackCoalesce, 32)),
    ackIdleMs: pos(o.ackIdleMs, 1),
    minAckTimeoutMs: typeof o.minAckTimeoutMs === 'number' && o.minAckTimeoutMs > 0 ? o.minAckTimeoutMs : 0,
    maxAckTimeoutMs: pos(o.maxAckTimeoutMs, Infinity),
    minRnrDelayMs: typeof o.minRnrDelayMs === 'number' && o.minRnrDelayMs > 0 ? o.minRnrDelayMs : 0,
    maxRnrDelayMs: pos(o.maxRnrDelayMs, Infinity),
    readBurst: Math.floor(pos(o.readBurst, 64)),
    infiniteRetry7: o.infiniteRetry7 === true,
    solicitAllSends: o.solicitAllSends !== false,
    recvBufferSize: Math.floor(pos(o.recvBufferSize, 4 << 20)),
    sendBufferSize: Math.floor(pos(o.sendBufferSize, 1 << 20)),
  };
}

export interface ResolvedDeviceConfig {
  readonly name: string;
  readonly ip: string;
  readonly port: number;
  readonly remotePort: number;
  readonly mtu: number;
  readonly fd: number | undefined;
  /** IP_PMTUDISC_DO on the socket the device creates (default true; see native-socket.ts). */
  readonly pmtuDiscoverDo?: boolean | undefined;
  readonly netdev: string | undefined;
  readonly testHooks: SoftRoceTestHooks | undefined;
}

/** mulberry32: a small seeded PRNG for the drop hooks. */
class Prng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export class SoftRoceDevice {
  readonly name: string;
  readonly ip: string;
  readonly ipNum: number;
  readonly port: number;
  readonly mtuBytes: number;
  readonly info: DeviceInfo;
  readonly attr: DeviceAttr;
  readonly portAttr: PortAttr;
  /** GID table of port 1, laid out as Linux builds it for a RoCE port with one IPv4 address. */
  readonly gids: readonly GidEntry[];
  readonly rocev2GidIndex = 3;
  readonly maxQpRdAtom = 16;
  readonly stats: SoftRoceStats = newStats();
  /** @internal */ readonly tpl = new TxTemplates();
  /** @internal current transmit buffer */ txBuf: Buffer = Buffer.alloc(TX_BUF_SIZE);

  private readonly qps = new Map<number, SrQp>();
  private nextQpn = 0x11;
  private link: DatagramLink | undefined;
  private opening: Promise<void> | undefined;
  private openCount = 0;
  private readonly rx = new RxPacket();
  private readonly icrc = new IcrcChecker();
  /** QPs to flush this turn: a grow-only array and a count (never shrunk, so marking allocates nothing). */
  private dirtyList: (SrQp | undefined)[] = [];
  private dirtyCount = 0;
  private flushing: (SrQp | undefined)[] = [];
  private flushScheduled = false;
  private readonly flushBound = (): void => this.flush();
  private readonly pinned: Buffer[] = [];
  private readonly freeTx: Buffer[] = [];
  private pinTimer: TimerRef | undefined;
  private readonly pinCheckBound = (): void => this.pinCheck();
  private readonly hooks: SoftRoceTestHooks | undefined;
  private readonly rngOut: Prng;
  private readonly rngIn: Prng;

  constructor(
    private readonly cfg: ResolvedDeviceConfig,
    readonly opts: ResolvedTransport,
    readonly clock: Clock,
    private readonly linkFactory: LinkFactory,
  ) {
    this.name = cfg.name;
    this.ip = cfg.ip;
    this.ipNum = ipv4ToNumber(cfg.ip);
    this.port = cfg.port;
    this.mtuBytes = cfg.mtu;
    this.hooks = cfg.testHooks;
    const seed = cfg.testHooks?.seed ?? 1;
    this.rngOut = new Prng(seed);
    this.rngIn = new Prng((seed ^ 0x9e3779b9) >>> 0);
    const [a, b, c, d] = cfg.ip.split('.').map(Number) as [number, number, number, number];
    // Synthetic locally administered MAC 02:00:a:b:c:d; node GUID = its EUI-64 (as rxe derives it from the MAC).
    const eui = [0x00, 0x00, a, 0xff, 0xfe, b, c, d];
    let guid = 0n;
    for (const x of eui) guid = (guid << 8n) | BigInt(x);
    this.info = { name: cfg.name, provider: 'softroce', transport: 'RoCE' };
    this.attr = {
      name: cfg.name,
      provider: 'softroce',
      transport: 'RoCE',
      vendorId: 0xffffff, // rxe reports 0xFFFFFF
      vendorPartId: 0,
      nodeGuid: guid,
      physPortCnt: 1,
      maxQp: 65536,
      maxQpWr: 16384,
      maxSge: 32,
      maxRecvSge: 32,
      maxCq: 16384,
      maxCqe: 65536,
      maxMr: 65536,
      maxMrSize: 2 ** 31,
      maxInlineData: 256,
    };
    const active = mtuEnumAtMost(cfg.mtu);
    this.portAttr = { portNum: 1, state: 'ACTIVE', activeMtu: active, maxMtu: active, gidTblLen: 4, linkLayer: 'Ethernet' };
    const ll = Buffer.alloc(16);
    ll[0] = 0xfe;
    ll[1] = 0x80;
    Buffer.from(eui).copy(ll, 8);
    const v4 = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]);
    const netdev = cfg.netdev !== undefined ? { netdev: cfg.netdev } : {};
    this.gids = [
      { index: 0, gid: ll, type: 'RoCEv1', ...netdev },
      { index: 1, gid: Buffer.from(ll), type: 'RoCEv2', ...netdev },
      { index: 2, gid: v4, type: 'RoCEv1', ipv4: cfg.ip, ...netdev },
      { index: 3, gid: Buffer.from(v4), type: 'RoCEv2', ipv4: cfg.ip, ...netdev },
    ];
  }

  /**
   * What the device knows of the IPv4 header Linux puts on its datagrams while open: 'id0-df' (its
   * own socket with IP_PMTUDISC_DO: the ICRC is exact on the wire, a kernel rdma_rxe accepts it),
   * 'kernel-id' (the option could not be set: only softroce peers accept our packets; see
   * `ipHeaderNote`), undefined (closed, an inherited fd, or an in-memory link).
   */
  get ipHeader(): 'id0-df' | 'kernel-id' | undefined {
    return this.link?.ipHeader;
  }

  /** Why `ipHeader` is 'kernel-id'. */
  get ipHeaderNote(): string | undefined {
    return this.link?.ipHeaderNote;
  }

  /** True while a context has the device open (socket bound). */
  get isOpen(): boolean {
    return this.link !== undefined;
  }

  /** Number of live QPs. */
  get qpCount(): number {
    return this.qps.size;
  }

  /** @internal First open binds the socket; later opens share it. */
  async acquire(): Promise<void> {
    this.openCount++;
    try {
      if (this.link !== undefined) return;
      if (this.opening === undefined) {
        this.opening = this.linkFactory(
          {
            deviceName: this.name,
            ip: this.ip,
            port: this.port,
            fd: this.cfg.fd,
            pmtuDiscoverDo: this.cfg.pmtuDiscoverDo,
            recvBufferSize: this.opts.recvBufferSize,
            sendBufferSize: this.opts.sendBufferSize,
            onError: () => {
              this.stats.txErrors++;
            },
          },
          (buf, len, srcIp, srcPort) => this.onDatagram(buf, len, srcIp, srcPort),
        ).then((l) => {
          this.link = l;
        });
        this.opening.catch(() => undefined).finally(() => {
          this.opening = undefined;
        });
      }
      await this.opening;
    } catch (e) {
      this.openCount--;
      throw e;
    }
  }

  /** @internal Last close unbinds the socket. */
  async release(): Promise<void> {
    if (this.openCount === 0) return;
    if (--this.openCount > 0) return;
    const l = this.link;
    this.link = undefined;
    if (this.pinTimer !== undefined) this.clock.clearTimer(this.pinTimer);
    this.pinTimer = undefined;
    this.pinned.length = 0;
    if (l !== undefined) await l.close();
  }

  /** @internal Registers a QP; returns its number (24-bit, never 0 or 1, not reused until wrap). */
  addQp(qp: SrQp): number {
    for (let tries = 0; tries < 0x1000000; tries++) {
      const n = this.nextQpn;
      this.nextQpn = this.nextQpn >= 0xffffff ? 0x11 : this.nextQpn + 1;
      if (!this.qps.has(n)) {
        this.qps.set(n, qp);
        return n;
      }
    }
    throw new Error('QP numbers exhausted');
  }

  /** @internal */
  removeQp(qp: SrQp): void {
    if (this.qps.get(qp.qpNum) === qp) this.qps.delete(qp.qpNum);
  }

  /** @internal UDP port the device sends to for a peer address. */
  remotePortFor(_ip: string): number {
    return this.cfg.remotePort;
  }

  /** @internal */
  clampAckTimeout(ms: number): number {
    if (ms === Infinity) return ms;
    return Math.min(Math.max(ms, this.opts.minAckTimeoutMs), this.opts.maxAckTimeoutMs);
  }

  /** @internal */
  clampRnrDelay(ms: number): number {
    return Math.min(Math.max(ms, this.opts.minRnrDelayMs), this.opts.maxRnrDelayMs);
  }

  /** @internal Asks for `qp.flush()` at the end of this event-loop turn. */
  markDirty(qp: SrQp): void {
    if (qp.dirty) return;
    qp.dirty = true;
    if (this.dirtyCount === this.dirtyList.length) this.dirtyList.push(qp);
    else this.dirtyList[this.dirtyCount] = qp;
    this.dirtyCount++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.clock.defer(this.flushBound);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const list = this.dirtyList;
    const n = this.dirtyCount;
    this.dirtyList = this.flushing;
    this.dirtyCount = 0;
    this.flushing = list;
    for (let i = 0; i < n; i++) {
      const qp = list[i]!;
      list[i] = undefined;
      qp.dirty = false;
      if (!qp.destroyed) qp.flush();
    }
  }

  /** @internal Sends `txBuf[0, len)` (ICRC slot included) to the QP's peer. */
  transmit(qp: SrQp, len: number): void {
    const buf = this.txBuf;
    fillIcrcUdp4(buf, len, this.ipNum, qp.peerIpNum, this.port, qp.peerPort);
    if (this.hooks !== undefined && this.hookDrops('out', buf, len, qp.peerIp, qp.peerPort)) return;
    const link = this.link;
    if (link === undefined) return;
    const st = this.stats;
    st.txPackets++;
    st.txBytes += len;
    if (!link.send(buf, len, qp.peerIp, qp.peerPort)) {
      st.txQueued++;
      this.pinned.push(buf);
      this.txBuf = this.freeTx.pop() ?? Buffer.alloc(TX_BUF_SIZE);
      if (this.pinTimer === undefined) this.pinTimer = this.clock.setTimer(this.pinCheckBound, 1);
    }
  }

  private pinCheck(): void {
    this.pinTimer = undefined;
    if (this.link !== undefined && this.link.queued > 0) {
      this.pinTimer = this.clock.setTimer(this.pinCheckBound, 1);
      return;
    }
    while (this.pinned.length > 0) this.freeTx.push(this.pinned.pop()!);
  }

  /** Runs the test hooks for one datagram; true when it is dropped. */
  private hookDrops(dir: 'out' | 'in', buf: Buffer, len: number, ip: string, port: number): boolean {
    const h = this.hooks!;
    let drop = h.filter !== undefined && h.filter(dir, buf, len, ip, port) === true;
    if (dir === 'out') {
      if (h.dropOutgoing !== undefined && h.dropOutgoing > 0 && this.rngOut.next() < h.dropOutgoing) drop = true;
    } else if (h.dropIncoming !== undefined && h.dropIncoming > 0 && this.rngIn.next() < h.dropIncoming) {
      drop = true;
    }
    h.observe?.(dir, buf, len, ip, port, drop);
    if (drop) {
      if (dir === 'out') this.stats.hookDropsTx++;
      else this.stats.hookDropsRx++;
    }
    return drop;
  }

  private onDatagram(buf: Buffer, len: number, srcIp: string, srcPort: number): void {
    if (this.hooks !== undefined && this.hookDrops('in', buf, len, srcIp, srcPort)) return;
    const st = this.stats;
    st.rxPackets++;
    st.rxBytes += len;
    const rx = this.rx;
    if (parseIbPacket(buf, len, rx) !== ParseError.OK) {
      st.dropMalformed++;
      return;
    }
    const src = ipv4ToNumber(srcIp);
    if (src < 0 || !this.icrc.check(buf, len, src, this.ipNum, srcPort, this.port)) {
      st.dropBadIcrc++;
      return;
    }
    if (this.icrc.lastId !== 0) st.icrcIpIdRecovered++;
    // P_Key: the default partition, full (0xFFFF) or limited (0x7FFF) member (IBA 10.9.3; rxe pkey_match).
    if ((rx.pkey & 0x7fff) !== 0x7fff) {
      st.dropMalformed++;
      return;
    }
    const qp = this.qps.get(rx.destQp);
    if (qp === undefined) {
      st.dropUnknownQpn++;
      return;
    }
    qp.receive(rx, buf, srcIp);
  }
}

/**
 * The devices used when the provider is given none: one per non-internal IPv4 address of
 * os.networkInterfaces(), named `softroce-<interface>` (a second address on the same interface
 * gets `softroce-<interface>-1`, ...), plus `softroce-lo` on 127.0.0.1. All on UDP 4791, MTU 1024.
 */
export function defaultDeviceList(): { name: string; ip: string; netdev: string }[] {
  const out: { name: string; ip: string; netdev: string }[] = [];
  let ifs: ReturnType<typeof networkInterfaces> = {};
  try {
    ifs = networkInterfaces();
  } catch {
    ifs = {};
  }
  let loName = 'lo';
  for (const [ifname, addrs] of Object.entries(ifs)) {
    let n = 0;
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4') continue;
      if (a.internal) {
        if (a.address === '127.0.0.1') loName = ifname;
        continue;
      }
      out.push({ name: n === 0 ? `softroce-${ifname}` : `softroce-${ifname}-${n}`, ip: a.address, netdev: ifname });
      n++;
    }
  }
  out.push({ name: 'softroce-lo', ip: '127.0.0.1', netdev: loName });
  return out;
}
