/**
 * The SMC-R engine (cf. af_smc.c: __smc_connect / smc_listen_work): drives the CLC handshake on a
 * connected TCP socket with the decisions of clc.ts, creates or reuses link groups, brings links up
 * with CONFIRM_LINK, registers buffers, and returns either an SMC-R connection or the TCP socket as
 * a fallback with the reason codes, with every byte the peer already sent still readable.
 */
import { randomBytes } from 'node:crypto';
import { networkInterfaces, hostname as osHostname } from 'node:os';
import type { Socket } from 'node:net';
import { SmcReason, WireError, WireErrorCode, gidFromIpv4, type ClcMessage, type LlcConfirmLink, type LlcMessage } from '@smc-r/wire';
import { Access, type Context, type GidEntry, type IbMtu, type MemoryBlock, type Pd, type QpConnection, type QpConnector } from '@smc-r/verbs';
import { ClcChannel, type ClcWaitResult } from './clc-channel.js';
import {
  clientConfirm, clientOnAccept, clientPrecheck, clientProposal, clientRouteQuery, clcWaitFailure, clcReceiveFailure,
  handshakeFailure, serverAccept, serverOnConfirm, serverOnProposal, serverPrecheck, serverRouteQuery,
  type ClcFailure, type ClcRocePort, type ClientProposalOutcome, type ClcRoute, type ClcTcpInfo, type ClcPeerRmb,
} from './clc.js';
import { clcConfig, type ClcConfig, type ClcConfigInit } from './clc-config.js';
import type { ClcIfAddress } from './clc-ip.js';
import { Timers } from './constants.js';
import { SmcConnection, type ConnBuffers } from './connection.js';
import { EngineError, EngineErrorCode } from './errors.js';
import { LinkGroup } from './lgr.js';
import { Link } from './link.js';
import { encodeCmPrivateData, matchesCmPrivateData } from './iwarp.js';

/** How a connection ended up. */
export type SmcOutcome =
  | { readonly mode: 'smcr'; readonly conn: SmcConnection; readonly version: 1 | 2; readonly firstContact: boolean; readonly socket: Socket }
  | {
      readonly mode: 'tcp';
      /** The same TCP socket, paused, with every byte read during CLC put back in front. */
      readonly socket: Socket;
      /** This side's fallback reason (smcss's first code). */
      readonly reason: number;
      /** The peer's Decline code, when it declined. */
      readonly peerDiagnosis: number | undefined;
      readonly detail: string;
      /**
       * Set when the echo defence fell back: the peer's SMC option looked like an echo of ours (its
       * answer to our Proposal was not a CLC message, or was our Proposal). The negotiator learns from it.
       */
      readonly suspectedEcho?: true;
    };

export interface SmcEngineOptions {
  /**
   * An opened verbs device (mem, softroce or ibverbs), or null when this host has none: then every
   * connection falls back as the kernel's does without a device (0x03030000, NOSMCDEV: a client sends
   * no Proposal, a server declines the peer's).
   */
  readonly context: Context | null;
  readonly portNum?: number;
  /** CLC configuration (UEIDs, versions, buffer sizes...); systemId and hostname default sensibly. */
  readonly clc?: Partial<ClcConfigInit>;
  /**
   * IPv4 address whose RoCEv2 GID the links use. Default: the GID matching the TCP socket's local
   * address, else the first IPv4-mapped RoCEv2 GID of the port (software providers run on their own addresses).
   */
  readonly roceAddress?: string;
  /** Shorter protocol timers for tests. */
  readonly timers?: Partial<Record<keyof typeof Timers, number>>;
  /** Route lookup for SMC-Rv2 (default: every peer is directly attached). */
  readonly route?: (saddr: string, daddr: string) => ClcRoute;
  /** QP local ACK timeout exponent (default the kernel's 15). */
  readonly qpTimeout?: number;
  readonly retryCnt?: number;
  /**
   * iWARP devices: the connection manager that brings link QPs to RTS (modify_qp cannot). Without
   * one, an iWARP device offers no usable port and connections fall back with NOSMCDEV.
   */
  readonly connector?: QpConnector;
}

export interface HandshakeOptions {
  /** The peer signalled SMC in its SYN / SYN-ACK (the negotiator's answer; spec 2.2). */
  readonly peerSignalledSmc: boolean;
  /** A fallback reason set before the handshake (policy: 0x03010001, TCP Fast Open: 0x03060000). */
  readonly presetFallback?: number;
  /**
   * Client: a non-SMC server can reflect the SMC option (a middlebox or a stack that echoes
   * unknown options), and then answers our Proposal with its own protocol's bytes, or with our
   * Proposal when it echoes data. The kernel fails such a connection (EPROTO / ETIMEDOUT); with this
   * set, an answer that does not start with a CLC eyecatcher, or that is a Proposal, falls back to
   * TCP instead (PEERNOSMC, `suspectedEcho`), and those bytes reach the application as TCP data.
   * Server: when the SYN-ACK could not carry the option (TCP_SAVE_SYN detection), a client that
   * offered SMC goes on as TCP; its first bytes, not a CLC eyecatcher, make us fall back the same way.
   */
  readonly echoDefence?: boolean;
}

/** Whether a failed CLC read means "this is not CLC at all" (first bytes are no eyecatcher). */
function notClc(w: ClcWaitResult): boolean {
  if (w.kind !== 'garbage') return false;
  const e = w.error;
  return e instanceof WireError && e.code === WireErrorCode.BAD_EYECATCHER;
}

const R = SmcReason;

function macFromGid(gid: Buffer): Buffer {
  // Software providers have no Ethernet port: a stable, locally administered MAC from the GID.
  return Buffer.from([0x02, gid[11]!, gid[12]!, gid[13]!, gid[14]!, gid[15]!]);
}

/** Addresses (with prefix lengths) of the interface that owns `local`. */
function ifAddressesFor(local: string): ClcIfAddress[] {
  const addr = local.startsWith('::ffff:') ? local.slice(7) : local;
  for (const list of Object.values(networkInterfaces())) {
    if (!list || !list.some((a) => a.address === addr)) continue;
    return list.map((a) => ({ address: a.address, prefixLen: Number(a.cidr?.split('/')[1] ?? (a.family === 'IPv4' ? 32 : 128)) }));
  }
  return [];
}

/** A FIFO async mutex: lock() resolves to the unlock function. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  lock(): Promise<() => void> {
    let unlock!: () => void;
    const next = new Promise<void>((r) => { unlock = r; });
    const prev = this.#tail;
    this.#tail = prev.then(() => next);
    return prev.then(() => unlock);
  }
}

interface Buffers extends ConnBuffers {
  readonly rmbSize: number;
}

export class SmcEngine {
  readonly context: Context | null;
  readonly pd: Pd | null;
  readonly cfg: ClcConfig;
  readonly lgrs = new Set<LinkGroup>();
  readonly #opts: SmcEngineOptions;
  readonly #portNum: number;
  readonly #timers: typeof Timers;
  readonly #gids: readonly GidEntry[];
  readonly #mtu: IbMtu;
  #closed = false;
  readonly #clientLgrPending = new Mutex();
  readonly #serverLgrPending = new Mutex();

  constructor(opts: SmcEngineOptions) {
    this.#opts = opts;
    this.context = opts.context;
    this.#portNum = opts.portNum ?? 1;
    this.#timers = { ...Timers, ...(opts.timers ?? {}) } as typeof Timers;
    // Without a device the GID table is empty, so no RoCE port is ever found (spec 3.3.6) and the CLC
    // decisions fall back with NOSMCDEV before anything below needs the PD.
    this.pd = this.context?.allocPd() ?? null;
    this.#mtu = this.context?.queryPort(this.#portNum).activeMtu ?? 3;
    this.#gids = this.context?.gidTable(this.#portNum) ?? [];
    const v2 = this.#v2Gid(undefined);
    const mac = v2 ? macFromGid(v2.gid) : Buffer.alloc(6);
    this.cfg = clcConfig({
      systemId: Buffer.concat([randomBytes(2), mac]),
      hostname: osHostname().slice(0, 32),
      ...(opts.clc ?? {}),
    });
  }

  /** The device, where one is needed (never reached without one: no port means no link, no buffers). */
  #device(): Context {
    if (this.context === null) throw new EngineError(EngineErrorCode.STATE, 'this engine has no RDMA device');
    return this.context;
  }

  #v2Gid(localAddress: string | undefined): GidEntry | undefined {
    const want = this.#opts.roceAddress ?? localAddress;
    const v2 = this.#gids.filter((g) => g.type === 'RoCEv2' && g.ipv4 !== undefined);
    return v2.find((g) => g.ipv4 === want) ?? v2[0];
  }

  /** The RoCE port for a TCP connection from `localAddress` (spec 3.3.6), or undefined. */
  #port(localAddress: string): { port: ClcRocePort; gidIndex: number } | undefined {
    if (this.#iwarp) return this.#iwarpPort(localAddress);
    const v2 = this.#v2Gid(localAddress);
    if (v2 === undefined) return undefined;
    const v1 = this.#gids.find((g) => g.type === 'RoCEv1') ?? v2;
    return { port: { mac: macFromGid(v2.gid), activeMtu: this.#mtu, gidV1: v1.gid, gidV2: v2.gid }, gidIndex: v2.index };
  }

  get #iwarp(): boolean {
    return this.context?.device.transport === 'iWARP';
  }

  /**
   * iWARP (iwarp.ts): the QPs are joined by the connection manager over IP, so the CLC GID is the
   * IPv4-mapped TCP address (the v2 GID must be one) and the MAC the first 6 bytes of the device's
   * MAC-based GID. Needs a connector and an IPv4 address.
   */
  #iwarpPort(localAddress: string): { port: ClcRocePort; gidIndex: number } | undefined {
    const ip = localAddress.startsWith('::ffff:') ? localAddress.slice(7) : localAddress;
    const g = this.#gids[0];
    if (this.#opts.connector === undefined || g === undefined || !/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return undefined;
    const gid = gidFromIpv4(ip);
    return { port: { mac: Buffer.from(g.gid.subarray(0, 6)), activeMtu: this.#mtu, gidV1: gid, gidV2: gid }, gidIndex: g.index };
  }

  #tcpInfo(socket: Socket): ClcTcpInfo {
    const local = socket.localAddress ?? '0.0.0.0';
    return { localAddress: local, ifAddresses: ifAddressesFor(local), vlanId: 0 };
  }

  #route(q: { saddr: string; daddr: string } | undefined): ClcRoute | undefined {
    if (q === undefined) return undefined;
    return this.#opts.route ? this.#opts.route(q.saddr, q.daddr) : { found: true, viaGateway: false, nexthopMac: Buffer.alloc(6) };
  }

  /**
   * The GID table index for `gid` in a link group of `version`: IPv4-mapped GIDs appear twice in a
   * Linux GID table (RoCE v1 and v2 entries); SMC-Rv2 must use the RoCEv2 one, or a peer cannot reach us.
   */
  #gidIndexOf(gid: Buffer, version: 1 | 2): number {
    const same = this.#gids.filter((g) => g.gid.equals(gid));
    const want = version === 2 ? 'RoCEv2' : 'RoCEv1';
    return (same.find((g) => g.type === want) ?? same.find((g) => g.type === 'RoCEv2') ?? same[0])?.index ?? 0;
  }

  #newLink(lgr: LinkGroup, gid: Buffer, mac: Buffer): Link {
    const link = new Link({
      ctx: this.#device(), pd: this.pd!, portNum: this.#portNum, gidIndex: this.#gidIndexOf(gid, lgr.version), gid, mac, mtu: this.#mtu,
      v2: lgr.version === 2,
      handlers: {
        onReceive: (buf, off, len) => lgr.onReceive(buf, off, len),
        onSendDone: (tag) => lgr.onSendDone(tag),
        onError: () => lgr.onLinkError(),
      },
      ...(this.#opts.qpTimeout !== undefined ? { qpTimeout: this.#opts.qpTimeout } : {}),
      ...(this.#opts.retryCnt !== undefined ? { retryCnt: this.#opts.retryCnt } : {}),
    });
    lgr.attach(link);
    return link;
  }

  #newLgr(role: 'client' | 'server', peerId: Buffer, version: 1 | 2, vlanId: number, maxConns: number, maxLinks: number): LinkGroup {
    const lgr = new LinkGroup({
      role, peerId, version, vlanId, maxConns, maxLinks,
      testLinkInterval: this.#timers.TEST_LINK_INTERVAL, llcWait: this.#timers.LLC_WAIT,
      onTerminated: (g) => {
        this.lgrs.delete(g);
        for (const b of g.bufCache.splice(0)) this.#freeBuffers(b as Buffers);
      },
    });
    this.lgrs.add(lgr);
    return lgr;
  }

  /** Buffers for a new connection: from the link group's cache when it has some (cached = true). */
  #buffersFor(lgr: LinkGroup | undefined): { bufs: Buffers; cached: boolean } {
    const c = lgr?.bufCache.pop();
    if (c !== undefined) return { bufs: c as Buffers, cached: true };
    return { bufs: this.#allocBuffers(), cached: false };
  }

  /**
   * RMB and send buffer for a new connection (spec 3.6.2 steps 9-10, 3.6.3 step 7): on a reused link
   * group from its cache, else newly registered, and then announced with CONFIRM_RKEY. Returns the
   * failure's name when allocation (MEM) or the rkey exchange (ERR_REGBUF) fails.
   */
  async #connBuffers(lgr: LinkGroup, reuse: boolean): Promise<Buffers | 'BUF_ALLOC' | 'BUF_REGISTER'> {
    let got: { bufs: Buffers; cached: boolean };
    try {
      got = this.#buffersFor(reuse ? lgr : undefined);
    } catch {
      return 'BUF_ALLOC';
    }
    if (reuse && !got.cached && !(await this.#confirmRkey(lgr, got.bufs))) {
      this.#freeBuffers(got.bufs);
      return 'BUF_REGISTER';
    }
    return got.bufs;
  }

  #allocBuffers(): Buffers {
    const blocks: MemoryBlock[] = [];
    try {
      const ctx = this.#device();
      const rmbBlock = ctx.allocMemory(this.cfg.rmbSize);
      blocks.push(rmbBlock);
      const rmbMr = this.pd!.registerMr(rmbBlock, 0, this.cfg.rmbSize, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
      const sndBlock = ctx.allocMemory(this.cfg.sndbufSize);
      blocks.push(sndBlock);
      const sndMr = this.pd!.registerMr(sndBlock, 0, this.cfg.sndbufSize, Access.LOCAL_WRITE);
      return { rmbBlock, rmbMr, sndBlock, sndMr, rmbSize: this.cfg.rmbSize };
    } catch (e) {
      for (const b of blocks) b.free();
      throw e;
    }
  }

  #freeBuffers(b: Buffers): void {
    b.rmbMr.close();
    b.sndMr.close();
    b.rmbBlock.free();
    b.sndBlock.free();
  }

  #rmbOf(b: Buffers, token: number): { rkey: number; vaddr: bigint; size: number; alertToken: number } {
    return { rkey: b.rmbMr.rkey, vaddr: (BigInt(b.rmbMr.addrHi) << 32n) | BigInt(b.rmbMr.addrLo), size: b.rmbSize, alertToken: token };
  }

  #connection(lgr: LinkGroup, token: number, b: Buffers, peer: ClcPeerRmb, role: 'client' | 'server'): SmcConnection {
    const conn = new SmcConnection({
      link: lgr.link, token, buffers: b, role,
      peer: {
        token: peer.alertToken, rkey: peer.rkey, rmbeSize: peer.rmbeSize,
        rmbeAddrHi: Number(peer.rmbeAddr >> 32n), rmbeAddrLo: Number(peer.rmbeAddr & 0xffffffffn),
      },
      onRelease: (c) => {
        lgr.removeConn(c);
        if (lgr.terminating) this.#freeBuffers(b);
        else lgr.bufCache.push(b);
      },
    });
    lgr.addConn(conn);
    lgr.peerRkeys.add(peer.rkey);
    return conn;
  }

  /** Why creating a link failed: no memory is MEM, anything else INTERR (as smc_lgr_create). */
  #linkCreateFailure(e: unknown): 'BUF_ALLOC' | 'QP_CREATE' {
    return (e as { errno?: number }).errno === 12 /* ENOMEM */ ? 'BUF_ALLOC' : 'QP_CREATE';
  }

  /**
   * Maps a handshake failure to an outcome: send the Decline (if any), give the socket back. A
   * Decline with the out-of-sync bit names `lgr` (the link group this connection was to use): it is
   * marked and terminated (spec 3.2 step 6).
   */
  async #fail(ch: ClcChannel, f: ClcFailure, lgr?: LinkGroup): Promise<SmcOutcome> {
    if (f.kind === 'peer-declined' && f.outOfSync && lgr !== undefined) {
      lgr.syncErr = true;
      void lgr.deleteAll(0, false, false);
    }
    if (f.kind === 'error') {
      ch.release();
      ch.socket.destroy();
      throw new EngineError(f.code, `SMC handshake failed: ${f.detail}`);
    }
    if (f.kind === 'decline') {
      try {
        await ch.send(f.message);
      } catch {
        // the peer is gone; the socket error surfaces to the application
      }
    }
    ch.release();
    return {
      mode: 'tcp', socket: ch.socket, reason: f.reason,
      peerDiagnosis: f.kind === 'peer-declined' ? f.peerDiagnosis : undefined, detail: f.detail,
    };
  }

  #waitFailure(cfg: ClcConfig, role: 'client' | 'server', w: Exclude<ClcWaitResult, { kind: 'message' }>): ClcFailure {
    if (w.kind === 'garbage') return clcReceiveFailure(cfg, role, w.error);
    return clcWaitFailure(w.kind === 'timeout' ? 'timeout' : 'eof');
  }

  /** After an LLC timeout: a Decline may be on its way (CLC_WAIT_SHORT); else decline TIMEOUT_CL (spec 3.6.1). */
  async #llcTimeout(ch: ClcChannel, version: 1 | 2): Promise<ClcFailure> {
    const w = await ch.next(this.#timers.CLC_WAIT_SHORT);
    if (w.kind === 'message' && w.msg.type === 'decline') {
      return { kind: 'peer-declined', reason: R.PEERDECL.code, peerDiagnosis: w.msg.peerDiagnosis, outOfSync: w.msg.outOfSync, detail: 'peer declined after an LLC timeout' };
    }
    return handshakeFailure(this.cfg, 'CONFIRM_LINK_TIMEOUT', version);
  }

  #confirmLink(lgr: LinkGroup, link: Link, resp: boolean, linkNum: number): LlcConfirmLink {
    return {
      type: 'confirm_link', v2: lgr.version === 2, flags: resp ? 0x83 : 0x03, resp, noRmbeEyec: true,
      senderMac: link.local.mac, senderGid: link.local.gid, senderQpn: link.local.qpn, linkNum, linkUid: link.linkUid,
      maxLinks: lgr.maxLinks, maxConns: lgr.version === 2 ? lgr.maxConns : 0,
    };
  }

  #setLinkUid(lgr: LinkGroup, link: Link, linkId: number): void {
    link.linkId = linkId;
    link.linkUid = Buffer.alloc(4);
    link.linkUid.writeUInt32BE(((lgr.id + linkId) >>> 0));
  }

  // ================================================================== client

  /** Runs the client side of the handshake on a connected socket (spec 3.6.2). */
  async connect(socket: Socket, hs: HandshakeOptions): Promise<SmcOutcome> {
    this.#checkOpen();
    const cfg = this.cfg;
    const ch = new ClcChannel(socket);
    const pre = clientPrecheck(cfg, { peerSignalledSmc: hs.peerSignalledSmc, ...(hs.presetFallback !== undefined ? { presetFallback: hs.presetFallback } : {}) });
    if (pre.kind !== 'proceed') return this.#fail(ch, pre);
    const tcp = this.#tcpInfo(socket);
    const dev = this.#port(tcp.localAddress);
    const prop = clientProposal(cfg, dev?.port, tcp);
    if (prop.kind !== 'proposal') return this.#fail(ch, prop);
    await ch.send(prop.proposal);

    const w = await ch.next(this.#timers.CLC_WAIT);
    if (hs.echoDefence === true && (notClc(w) || (w.kind === 'message' && w.msg.type === 'proposal'))) {
      if (w.kind === 'message') ch.putBack(w.msg);
      ch.release();
      return {
        mode: 'tcp', socket, reason: R.PEERNOSMC.code, peerDiagnosis: undefined, suspectedEcho: true,
        detail: w.kind === 'message'
          ? 'the peer answered our Proposal with a Proposal: it echoes data, and its SMC option was an echo of ours'
          : 'the answer to our Proposal is not a CLC message: the SMC option was echoed by a non-SMC peer',
      };
    }
    if (w.kind !== 'message') return this.#fail(ch, this.#waitFailure(cfg, 'client', w));
    // Like smc_client_lgr_pending: one first contact at a time, so concurrent connects to the same
    // peer end up in one link group (the later ones see it when they get the lock).
    const unlock = await this.#clientLgrPending.lock();
    try {
      return await this.#connectLocked(ch, socket, prop, w.msg);
    } finally {
      unlock();
    }
  }

  async #connectLocked(ch: ClcChannel, socket: Socket, prop: ClientProposalOutcome, msg: ClcMessage): Promise<SmcOutcome> {
    const cfg = this.cfg;
    const route = msg.type === 'accept' ? this.#route(clientRouteQuery(prop.offer, msg)) : undefined;
    const acc = clientOnAccept(cfg, prop.offer, msg, { lgrs: this.lgrs, ...(route ? { route } : {}) });
    if (acc.kind !== 'accepted') return this.#fail(ch, acc);

    let lgr: LinkGroup;
    let link: Link;
    let cmWait: Promise<QpConnection> | undefined;
    if (acc.reuse) {
      lgr = acc.reuse.lgr as unknown as LinkGroup;
      link = lgr.link;
    } else {
      lgr = this.#newLgr('client', acc.peer.peerId, acc.version, acc.vlanId, acc.maxConns, acc.maxLinks);
      lgr.peerHostname = acc.peerHostname;
      try {
        link = this.#newLink(lgr, acc.localGid, acc.localMac);
      } catch (e) {
        void lgr.deleteAll(0, false, false);
        return this.#fail(ch, handshakeFailure(cfg, this.#linkCreateFailure(e), acc.declineVersion));
      }
      try {
        const peer = { qpn: acc.peer.qpn, psn: acc.peer.psn, gid: acc.peer.gid, mac: acc.nexthopMac, mtu: acc.pathMtu };
        if (this.#iwarp) {
          // The server connects once it has our Confirm; accept only the request naming both QPNs.
          const serverId = acc.peer.peerId;
          const mine = link.local.qpn;
          cmWait = this.#opts.connector!.expect({
            match: (pd) => matchesCmPrivateData(pd, peer.qpn, mine, serverId), qpNum: mine, timeoutMs: this.#timers.LLC_WAIT_FIRST_CLIENT,
          });
          cmWait.catch(() => {});
          link.expectPeer(peer);
        } else {
          link.toRtr(peer);
        }
      } catch {
        void lgr.deleteAll(0, false, false);
        return this.#fail(ch, handshakeFailure(cfg, 'LINK_READY', acc.declineVersion));
      }
    }
    const got = await this.#connBuffers(lgr, acc.reuse !== undefined);
    if (typeof got === 'string') {
      if (!acc.reuse) void lgr.deleteAll(0, false, false);
      return this.#fail(ch, handshakeFailure(cfg, got, acc.declineVersion));
    }
    const bufs = got;
    const token = lgr.newToken();
    // Wait for CONFIRM_LINK from before sending Confirm: the server fires it right after the Confirm.
    const confirmLinkWait = acc.reuse ? undefined : lgr.waitLlc('confirm_link', this.#timers.LLC_WAIT_FIRST_CLIENT);
    confirmLinkWait?.catch(() => {});
    const confirm = clientConfirm(cfg, acc, { qpn: link.local.qpn, psn: link.local.psn, gid: link.local.gid, mac: link.local.mac, pathMtu: link.local.mtu, ...(acc.reuse ? { peerMtu: acc.reuse.link.peerMtu } : {}) }, this.#rmbOf(bufs, token));
    await ch.send(confirm);

    if (confirmLinkWait) {
      let req: LlcMessage;
      try {
        req = await confirmLinkWait;
        if (cmWait) link.attachCm(await cmWait);
      } catch {
        this.#freeBuffers(bufs);
        void lgr.deleteAll(0, false, false);
        return this.#fail(ch, await this.#llcTimeout(ch, acc.declineVersion));
      }
      if (req.type !== 'confirm_link' || !req.noRmbeEyec) {
        this.#freeBuffers(bufs);
        void lgr.deleteAll(0, false, false);
        return this.#fail(ch, handshakeFailure(cfg, 'RMBE_EYECATCHER', acc.declineVersion));
      }
      this.#setLinkUid(lgr, link, req.linkNum);
      link.peerLinkUid = Buffer.from(req.linkUid);
      if (!cmWait) link.toRts();
      await lgr.sendLlc(this.#confirmLink(lgr, link, true, req.linkNum));
      link.state = 'ACTIVE';
      lgr.startKeepalive();
    }
    ch.release();
    const conn = this.#connection(lgr, token, bufs, acc.peerRmb, 'client');
    conn.once('close', () => { if (!socket.destroyed) socket.end(); });
    return { mode: 'smcr', conn, version: acc.version, firstContact: acc.firstContact, socket };
  }

  /** CONFIRM_RKEY for a new RMB on an existing link group (spec 6.5.4). */
  async #confirmRkey(lgr: LinkGroup, b: Buffers): Promise<boolean> {
    const vaddr = (BigInt(b.rmbMr.addrHi) << 32n) | BigInt(b.rmbMr.addrLo);
    const wait = lgr.waitLlc('confirm_rkey', this.#timers.LLC_WAIT);
    wait.catch(() => {});
    try {
      // One link: rtoken[0] is this link's rkey/address and no other links follow (num_rkeys 0).
      await lgr.sendLlc({
        type: 'confirm_rkey', v2: lgr.version === 2, flags: 0, resp: false, negative: false, retry: false,
        numRkeys: 0, rkey: b.rmbMr.rkey, vaddr, others: [],
      });
      const r = await wait;
      return r.type === 'confirm_rkey' && !r.negative;
    } catch {
      return false;
    }
  }

  // ================================================================== server

  /** Runs the server side of the handshake on an accepted socket (spec 3.6.3). */
  async accept(socket: Socket, hs: HandshakeOptions): Promise<SmcOutcome> {
    this.#checkOpen();
    const cfg = this.cfg;
    const ch = new ClcChannel(socket);
    const pre = serverPrecheck({ peerSignalledSmc: hs.peerSignalledSmc, ...(hs.presetFallback !== undefined ? { presetFallback: hs.presetFallback } : {}) });
    if (pre.kind !== 'proceed') return this.#fail(ch, pre);
    const w = await ch.next(this.#timers.CLC_WAIT);
    if (hs.echoDefence === true && notClc(w)) {
      ch.release();
      return {
        mode: 'tcp', socket, reason: R.PEERNOSMC.code, peerDiagnosis: undefined,
        detail: 'the client sent data instead of a Proposal: it saw no SMC option in our SYN-ACK and went on as TCP',
      };
    }
    if (w.kind !== 'message') return this.#fail(ch, this.#waitFailure(cfg, 'server', w));
    // Like smc_server_lgr_pending: link-group choice and first-contact bring-up are serialized.
    const unlock = await this.#serverLgrPending.lock();
    try {
      return await this.#acceptLocked(ch, socket, w.msg);
    } finally {
      unlock();
    }
  }

  async #acceptLocked(ch: ClcChannel, socket: Socket, msg: ClcMessage): Promise<SmcOutcome> {
    const cfg = this.cfg;
    const tcp = this.#tcpInfo(socket);
    const dev = this.#port(tcp.localAddress);
    const route = msg.type === 'proposal' ? this.#route(serverRouteQuery(cfg, msg, tcp)) : undefined;
    const acc = serverOnProposal(cfg, msg, { port: dev?.port, tcp, lgrs: this.lgrs, ...(route ? { route } : {}) });
    if (acc.kind !== 'accepting') return this.#fail(ch, acc);

    let lgr: LinkGroup;
    let link: Link;
    let cmWait: Promise<QpConnection> | undefined;
    if (acc.reuse) {
      lgr = acc.reuse.lgr as unknown as LinkGroup;
      link = lgr.link;
    } else {
      lgr = this.#newLgr('server', acc.peerId, acc.version, acc.vlanId, acc.maxConns, acc.maxLinks);
      try {
        link = this.#newLink(lgr, acc.localGid, acc.localMac);
      } catch (e) {
        void lgr.deleteAll(0, false, false);
        return this.#fail(ch, handshakeFailure(cfg, this.#linkCreateFailure(e), acc.declineVersion));
      }
      this.#setLinkUid(lgr, link, 1); // the server picks the link id: the first free one
    }
    const got = await this.#connBuffers(lgr, acc.reuse !== undefined);
    if (typeof got === 'string') {
      if (!acc.reuse) void lgr.deleteAll(0, false, false);
      return this.#fail(ch, handshakeFailure(cfg, got, acc.declineVersion));
    }
    const bufs = got;
    const token = lgr.newToken();
    await ch.send(serverAccept(cfg, acc, { qpn: link.local.qpn, psn: link.local.psn, gid: link.local.gid, mac: link.local.mac, pathMtu: link.local.mtu, ...(acc.reuse ? { peerMtu: acc.reuse.link.peerMtu } : {}) }, this.#rmbOf(bufs, token)));

    const cw = await ch.next(this.#timers.CLC_WAIT);
    const abandon = (): void => {
      this.#freeBuffers(bufs);
      if (!acc.reuse) void lgr.deleteAll(0, false, false);
    };
    if (cw.kind !== 'message') {
      abandon();
      return this.#fail(ch, this.#waitFailure(cfg, 'server', cw));
    }
    const conf = serverOnConfirm(cfg, acc, cw.msg as ClcMessage);
    if (conf.kind !== 'confirmed') {
      abandon();
      return this.#fail(ch, conf, lgr);
    }
    if (!acc.reuse) {
      lgr.peerHostname = conf.peerHostname;
      const respWait = lgr.waitLlc('confirm_link', this.#timers.LLC_WAIT);
      respWait.catch(() => {});
      try {
        const peer = { qpn: conf.peer.qpn, psn: conf.peer.psn, gid: conf.peer.gid, mac: conf.peer.mac, mtu: conf.pathMtu };
        if (this.#iwarp) {
          // iwarp.ts: we are the active side (we send the first message, CONFIRM_LINK).
          link.expectPeer(peer);
          const unmapped = (a: string | undefined): string => (a ?? '').replace(/^::ffff:/, '');
          link.attachCm(await this.#opts.connector!.connect({
            address: unmapped(socket.remoteAddress), sourceAddress: unmapped(socket.localAddress), qpNum: link.local.qpn,
            privateData: encodeCmPrivateData(link.local.qpn, peer.qpn, cfg.systemId), timeoutMs: this.#timers.LLC_WAIT,
          }));
        } else {
          link.toRtr(peer);
          link.toRts();
        }
        await lgr.sendLlc(this.#confirmLink(lgr, link, false, link.linkId));
      } catch {
        abandon();
        return this.#fail(ch, handshakeFailure(cfg, 'LINK_READY', acc.declineVersion));
      }
      let resp: LlcMessage;
      try {
        resp = await respWait;
      } catch {
        abandon();
        return this.#fail(ch, await this.#llcTimeout(ch, acc.declineVersion));
      }
      if (resp.type !== 'confirm_link' || !resp.noRmbeEyec) {
        abandon();
        return this.#fail(ch, handshakeFailure(cfg, 'RMBE_EYECATCHER', acc.declineVersion));
      }
      link.peerLinkUid = Buffer.from(resp.linkUid);
      link.state = 'ACTIVE';
      lgr.startKeepalive();
    }
    ch.release();
    const conn = this.#connection(lgr, token, bufs, conf.peerRmb, 'server');
    conn.once('close', () => { if (!socket.destroyed) socket.end(); });
    return { mode: 'smcr', conn, version: acc.version, firstContact: !acc.reuse, socket };
  }

  #checkOpen(): void {
    if (this.#closed) throw new EngineError(EngineErrorCode.STATE, 'engine is closed');
  }

  /** Tears every link group down (DELETE_LINK ALL, operator initiated) and frees the PD. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.lgrs].map((g) => g.deleteAll(0x00020000, false)));
    this.pd?.close();
  }
}
