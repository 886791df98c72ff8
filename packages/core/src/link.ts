/**
 * One SMC-R link: an RC QP with its CQ and work requests (cf. smc_ib.c for the QP attributes,
 * spec 5.1, and smc_core.h's struct smc_link). The link brings its QP from RESET to RTS with the
 * values exchanged in CLC, sends LLC and CDC messages through its WrQueue and hands received
 * messages to the link group.
 */
import { randomInt } from 'node:crypto';
import {
  Access, IbMtu, QpState,
  type Context, type Cq, type IbMtu as IbMtuValue, type Pd, type Qp, type QpConnection,
} from '@smc-r/verbs';
import { QpDefaults, Limits } from './constants.js';
import { WrQueue, WR_MSG_SIZE, type WrHandlers } from './wr.js';

/** Link states as the kernel names them (spec 5.3; shown by `smcr linkgroup link-show`). */
export const LinkState = {
  UNUSED: { value: 0, name: 'LINK_UNUSED' },
  INACTIVE: { value: 1, name: 'LINK_INACTIVE' },
  ACTIVATING: { value: 2, name: 'LINK_ACTIVATING' },
  ACTIVE: { value: 3, name: 'LINK_ACTIVE' },
} as const;
export type LinkStateName = keyof typeof LinkState;

/** Our side of a link, as it goes into CLC Accept/Confirm and CONFIRM_LINK. */
export interface LinkLocalInfo {
  readonly qpn: number;
  readonly psn: number;
  readonly gid: Buffer;
  readonly mac: Buffer;
  readonly mtu: IbMtuValue;
}

/** The peer's side, from its CLC Accept/Confirm. */
export interface LinkPeerInfo {
  readonly qpn: number;
  readonly psn: number;
  readonly gid: Buffer;
  readonly mac: Buffer;
  readonly mtu: number;
}

export interface LinkOptions {
  readonly ctx: Context;
  readonly pd: Pd;
  readonly portNum: number;
  readonly gidIndex: number;
  readonly gid: Buffer;
  readonly mac: Buffer;
  /** The port's active MTU (IB enum). */
  readonly mtu: IbMtuValue;
  /** SMC-Rv2 link groups use 8 KiB receive buffers for long LLC messages. */
  readonly v2: boolean;
  readonly handlers: WrHandlers;
  /** Hop limit of the GRH: 1 for directly attached peers (SMC-Rv2 without a gateway), 64 otherwise. */
  readonly hopLimit?: number;
  /** Shorter QP timeout/retries for tests; defaults are the kernel's (QpDefaults). */
  readonly qpTimeout?: number;
  readonly retryCnt?: number;
}

export class Link {
  readonly local: LinkLocalInfo;
  readonly cq: Cq;
  readonly qp: Qp;
  readonly wr: WrQueue;
  /** Link id (1..255) chosen by the server; the client learns it from CONFIRM_LINK. */
  linkId = 0;
  /** Our 4-byte link user id, and the peer's (CONFIRM_LINK bytes 30-33). */
  linkUid: Buffer = Buffer.alloc(4);
  peerLinkUid: Buffer = Buffer.alloc(4);
  state: LinkStateName = 'ACTIVATING';
  peer: LinkPeerInfo | undefined;
  /** iWARP: the connection manager's connection the QP rides on. */
  #cm: QpConnection | undefined;
  readonly #opts: LinkOptions;
  #closed = false;

  constructor(opts: LinkOptions) {
    this.#opts = opts;
    const slotSize = opts.v2 ? Limits.WR_BUF_V2_SIZE : WR_MSG_SIZE;
    this.cq = opts.ctx.createCq(Limits.SEND_WR + Limits.RECV_WR + 2 * Limits.SEND_WR);
    this.qp = opts.pd.createQp({
      type: 'RC', sendCq: this.cq, recvCq: this.cq,
      cap: { maxSendWr: 3 * Limits.SEND_WR, maxRecvWr: Limits.RECV_WR, maxSendSge: 2, maxRecvSge: 1, maxInlineData: 0 },
    });
    this.qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: opts.portNum, accessFlags: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
    this.wr = new WrQueue(opts.ctx, opts.pd, this.qp, this.cq, opts.handlers, {
      sendSlots: Limits.SEND_WR, recvSlots: Limits.RECV_WR, slotSize, writeSlots: 2 * Limits.SEND_WR,
    });
    // Receives are posted before RTR: the peer may SEND the moment it reaches RTS (spec 3.6.2 step 10).
    this.wr.postReceives();
    this.local = { qpn: this.qp.qpNum, psn: randomInt(0, 0x1000000), gid: opts.gid, mac: opts.mac, mtu: opts.mtu };
  }

  /** INIT -> RTR with the peer's values; path MTU = min(ours, peer's) (spec 5.1). */
  toRtr(peer: LinkPeerInfo): void {
    this.peer = peer;
    const mtu = Math.min(this.local.mtu, peer.mtu >= IbMtu.MTU_256 && peer.mtu <= IbMtu.MTU_4096 ? peer.mtu : this.local.mtu) as IbMtuValue;
    this.qp.modify({
      state: QpState.RTR, pathMtu: mtu, destQpNum: peer.qpn, rqPsn: peer.psn,
      ah: { dgid: peer.gid, sgidIndex: this.#opts.gidIndex, hopLimit: this.#opts.hopLimit ?? 1, portNum: this.#opts.portNum, dmac: peer.mac },
      maxDestRdAtomic: QpDefaults.maxDestRdAtomic, minRnrTimer: QpDefaults.minRnrTimer,
    });
    this.wr.start();
  }

  /** RTR -> RTS with our initial PSN. */
  toRts(): void {
    this.qp.modify({
      state: QpState.RTS, sqPsn: this.local.psn,
      timeout: this.#opts.qpTimeout ?? QpDefaults.timeout, retryCnt: this.#opts.retryCnt ?? QpDefaults.retryCnt,
      rnrRetry: QpDefaults.rnrRetry, maxRdAtomic: QpDefaults.maxRdAtomic,
    });
  }

  /**
   * iWARP: the peer as CLC described it, before the connection manager joins the QPs; the CQ is armed
   * so the first message is seen the moment the QP reaches RTS (there is no modify_qp to RTR here).
   */
  expectPeer(peer: LinkPeerInfo): void {
    this.peer = peer;
    this.wr.start();
  }

  /** iWARP: the QP is in RTS on `conn`; closing the link disconnects it. */
  attachCm(conn: QpConnection): void {
    this.#cm = conn;
    if (this.#closed) conn.disconnect();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Destroys the QP (flushing outstanding WRs), then the WR buffers and the CQ. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.state = 'INACTIVE';
    this.#cm?.disconnect();
    this.qp.close();
    this.wr.close();
    this.cq.close();
  }
}
