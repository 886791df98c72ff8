/**
 * Link groups (cf. smc_core.c): the peer a set of connections shares, its link (we run one), the
 * connection table by alert token, and the LLC handling that keeps the link alive (spec 5.3, 6).
 * A LinkGroup is also the read-only view the CLC decisions match against (LgrView).
 */
import { randomBytes } from 'node:crypto';
import {
  decodeCdcInto, decodeLlc, encodeLlc, llcLength, newCdcFields, LlcDeleteLinkReason,
  type CdcFields, type LlcMessage,
} from '@smc-r/wire';
import { Limits, Timers } from './constants.js';
import { EngineError, EngineErrorCode } from './errors.js';
import type { Link } from './link.js';
import type { LgrRole, LgrView, LinkView } from './lgr-match.js';
import type { ConnBuffers, SmcConnection } from './connection.js';

/** Per-link-group counters (named after the kernel's where it has them). */
export interface LgrCounters {
  llcReceived: number;
  llcSent: number;
  testLinkSent: number;
  testLinkAnswered: number;
  addLinkRejected: number;
  cdcUnknownToken: number;
}

/** The link as LgrView wants it. */
class LinkViewOf implements LinkView {
  constructor(private readonly l: Link) {}
  get active(): boolean { return this.l.state === 'ACTIVE' && !this.l.closed && !this.l.wr.failed; }
  get qpn(): number { return this.l.local.qpn; }
  get psn(): number { return this.l.local.psn; }
  get gid(): Buffer { return this.l.local.gid; }
  get mac(): Buffer { return this.l.local.mac; }
  get pathMtu(): number { return this.l.local.mtu; }
  get peerQpn(): number { return this.l.peer?.qpn ?? -1; }
  get peerGid(): Buffer { return this.l.peer?.gid ?? Buffer.alloc(16); }
  get peerMac(): Buffer { return this.l.peer?.mac ?? Buffer.alloc(6); }
  get peerMtu(): number { return this.l.peer?.mtu ?? 0; }
  get link(): Link { return this.l; }
}

let lgrIdCounter = 0;

/** Send-completion tags: connection index times this, plus the ring mark (marks are < 2^30). */
export const SEND_TAG_SCALE = 2 ** 30;

export interface LinkGroupOptions {
  readonly role: LgrRole;
  readonly peerId: Buffer;
  readonly version: 1 | 2;
  readonly vlanId: number;
  readonly maxConns: number;
  readonly maxLinks: number;
  /** Called when the link group is gone (all its connections aborted or closed). */
  readonly onTerminated: (lgr: LinkGroup) => void;
  /** TEST_LINK after this much receive silence (0 = off). */
  readonly testLinkInterval?: number;
  readonly llcWait?: number;
}

type LlcWaiter = { type: LlcMessage['type']; resolve: (m: LlcMessage) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class LinkGroup implements LgrView {
  readonly id: number;
  readonly role: LgrRole;
  readonly peerId: Buffer;
  readonly version: 1 | 2;
  readonly vlanId: number;
  readonly maxConns: number;
  readonly maxLinks: number;
  syncErr = false;
  terminating = false;
  readonly rtokensFull = false;
  readonly conns = new Map<number, SmcConnection>();
  /**
   * Buffers of closed connections, kept registered for reuse by the next connection (their rkeys are
   * known to the peer already, so no CONFIRM_RKEY), as the kernel caches RMBs per link group.
   */
  readonly bufCache: ConnBuffers[] = [];
  /** The peer's RMB rkeys we hold (from CLC Accept/Confirm), as the kernel's rtoken table. */
  readonly peerRkeys = new Set<number>();
  /** Connections by their small index (1..255), which send-completion tags carry. */
  readonly #byIndex: (SmcConnection | undefined)[] = [undefined];
  readonly counters: LgrCounters = { llcReceived: 0, llcSent: 0, testLinkSent: 0, testLinkAnswered: 0, addLinkRejected: 0, cdcUnknownToken: 0 };
  peerHostname: string | undefined;
  link!: Link;
  #linkView!: LinkViewOf;
  readonly #opts: LinkGroupOptions;
  readonly #cdc: CdcFields = newCdcFields();
  readonly #waiters: LlcWaiter[] = [];
  #lastRx = Date.now();
  #keepalive: NodeJS.Timeout | null = null;
  #freeTimer: NodeJS.Timeout | null = null;

  constructor(opts: LinkGroupOptions) {
    this.#opts = opts;
    lgrIdCounter += 256; // SMC_LGR_NUM_INCR
    this.id = lgrIdCounter;
    this.role = opts.role;
    this.peerId = Buffer.from(opts.peerId);
    this.version = opts.version;
    this.vlanId = opts.vlanId;
    this.maxConns = opts.maxConns;
    this.maxLinks = opts.maxLinks;
  }

  /** Attaches the (single) link; its WR handlers must call onReceive/onSendDone/onLinkError. */
  attach(link: Link): void {
    this.link = link;
    this.#linkView = new LinkViewOf(link);
  }

  get links(): readonly LinkView[] {
    return this.#linkView ? [this.#linkView] : [];
  }

  get connsNum(): number {
    return this.conns.size;
  }

  /** A fresh alert token: non-zero, unique in this link group (spec 5.3). */
  newToken(): number {
    for (;;) {
      const t = randomBytes(4).readUInt32BE(0);
      if (t !== 0 && !this.conns.has(t)) return t;
    }
  }

  addConn(conn: SmcConnection): void {
    if (this.conns.size >= this.maxConns) throw new EngineError(EngineErrorCode.QUEUE_FULL, `link group ${this.id} already has ${this.maxConns} connections`);
    this.conns.set(conn.token, conn);
    let i = this.#byIndex.indexOf(undefined, 1);
    if (i < 0) i = this.#byIndex.push(undefined) - 1;
    this.#byIndex[i] = conn;
    conn.index = i;
    if (this.#freeTimer !== null) {
      clearTimeout(this.#freeTimer);
      this.#freeTimer = null;
    }
  }

  removeConn(conn: SmcConnection): void {
    if (this.conns.get(conn.token) !== conn) return;
    this.conns.delete(conn.token);
    if (this.#byIndex[conn.index] === conn) this.#byIndex[conn.index] = undefined;
    if (this.conns.size === 0 && !this.terminating) {
      // An idle link group stays for reuse, then the server tears it down (spec 5.3 "Idle teardown").
      const delay = this.role === 'server' ? Timers.LGR_FREE_DELAY_SERVER : Timers.LGR_FREE_DELAY_CLIENT;
      this.#freeTimer = setTimeout(() => { void this.deleteAll(LlcDeleteLinkReason.PROG_INIT_TERM.value, true); }, delay);
      this.#freeTimer.unref();
    }
  }

  /** A signaled SEND completed: tags of CDCs are `index * 2^30 + mark` (LLC sends use -1). */
  onSendDone(tag: number): void {
    if (tag < 0) return;
    const conn = this.#byIndex[Math.floor(tag / SEND_TAG_SCALE)];
    conn?.onSendDone(tag % SEND_TAG_SCALE);
  }

  // ------------------------------------------------------------------ receive

  /** Everything the link receives. */
  onReceive(buf: Uint8Array, off: number, len: number): void {
    this.#lastRx = Date.now();
    if (buf[off] === 0xfe) {
      try {
        decodeCdcInto(buf, off, off + len, this.#cdc);
      } catch {
        return; // the kernel drops malformed CDCs (smc_cdc_rx_handler)
      }
      const conn = this.conns.get(this.#cdc.token);
      if (conn === undefined) {
        this.counters.cdcUnknownToken++;
        return;
      }
      conn.onCdc(this.#cdc);
      return;
    }
    let msg: LlcMessage;
    try {
      msg = decodeLlc(buf, off, off + len);
    } catch {
      return; // unknown or malformed LLC: dropped, as at the kernel's WR demultiplexer
    }
    this.counters.llcReceived++;
    this.#onLlc(msg);
  }

  #onLlc(m: LlcMessage): void {
    if (m.resp) {
      const i = this.#waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) {
        const [w] = this.#waiters.splice(i, 1);
        clearTimeout(w!.timer);
        w!.resolve(m);
      }
      return;
    }
    switch (m.type) {
      case 'confirm_link': {
        // The client waits for this request (handshake); deliver it like a response.
        const i = this.#waiters.findIndex((w) => w.type === 'confirm_link');
        if (i >= 0) {
          const [w] = this.#waiters.splice(i, 1);
          clearTimeout(w!.timer);
          w!.resolve(m);
        }
        return;
      }
      case 'test_link':
        this.counters.testLinkAnswered++;
        void this.sendLlc({ ...m, flags: m.flags | 0x80, resp: true });
        return;
      case 'add_link':
        // We are a single-link peer: reject as the Linux client does (spec 6.5.2 step 3, 13 item 5):
        // echo the request's first 44 bytes with RESP|REJ; v1 carries reason 1 (no alternate path).
        this.counters.addLinkRejected++;
        void this.sendLlc({ ...m, flags: 0xc0, resp: true, reject: true, rejectReason: m.v2 ? 0 : 1, ext: undefined });
        return;
      case 'confirm_rkey':
      case 'confirm_rkey_cont':
        // One link: the rkey of every RMB travels in CLC; further links' rkeys have nowhere to go, so we
        // confirm (echo with RESP) as a peer that stored them would.
        void this.sendLlc({ ...m, flags: m.flags | 0x80, resp: true });
        return;
      case 'delete_rkey': {
        // smc_llc_rmt_delete_rkey: forget each rtoken; unknown ones are reported. v1 echoes the request
        // with RESP, and NEG plus err_mask bit (7 - i) for unknown rkeys; v2 keeps num_rkeys, zeroes the
        // list and puts the number of unknown rkeys in byte 5 (rxe-interop 2.2).
        let mask = 0;
        let invalid = 0;
        m.rkeys.forEach((k, i) => {
          if (!this.peerRkeys.delete(k)) {
            invalid++;
            if (i < 8) mask |= 0x80 >> i;
          }
        });
        const resp = m.v2
          ? { ...m, flags: (m.flags | 0x80) & ~0x20, resp: true, negative: false, errMask: invalid, rkeys: m.rkeys.map(() => 0) }
          : { ...m, flags: m.flags | 0x80 | (mask !== 0 ? 0x20 : 0), resp: true, negative: mask !== 0, errMask: mask };
        void this.sendLlc(resp);
        return;
      }
      case 'delete_link':
        // A single link: deleting it, or ALL, ends the link group (spec 6.5.3). A server answers with
        // its own DELETE_LINK ALL|ORDERLY and the same reason (smc_llc_process_srv_delete_link).
        void this.deleteAll(m.reason, this.role === 'server' || m.orderly, m.all && !this.terminating);
        return;
      case 'request_add_link':
      case 'add_link_cont':
      case 'announce_credits':
        return;
      default: {
        const never: never = m;
        return never;
      }
    }
  }

  // ------------------------------------------------------------------ send

  /** Sends an LLC message, waiting for a free slot when all are busy. */
  sendLlc(m: LlcMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      const go = (): void => {
        if (this.link.closed || this.link.wr.failed) {
          reject(new EngineError(EngineErrorCode.ABORTED, 'link is down'));
          return;
        }
        const slot = this.link.wr.getSlot();
        if (slot < 0) {
          this.link.wr.whenSlotFree(go);
          return;
        }
        const buf = this.link.wr.slotBuffer(slot);
        const len = llcLength(m);
        encodeLlc(m, buf, 0);
        this.link.wr.postMessage(slot, len, -1);
        this.counters.llcSent++;
        resolve();
      };
      go();
    });
  }

  /** Waits for an LLC message of `type` (a response, or CONFIRM_LINK's request on the client). */
  waitLlc(type: LlcMessage['type'], timeoutMs: number): Promise<LlcMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new EngineError(EngineErrorCode.TIMEOUT, `no LLC ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push({ type, resolve, reject, timer });
    });
  }

  /** Starts TEST_LINK keepalive (spec 6.4): after receive silence, a request; no answer takes the link down. */
  startKeepalive(): void {
    const interval = this.#opts.testLinkInterval ?? Timers.TEST_LINK_INTERVAL;
    if (interval <= 0 || this.#keepalive !== null) return;
    const tick = (): void => {
      this.#keepalive = null;
      if (this.terminating) return;
      const idle = Date.now() - this.#lastRx;
      if (idle < interval) {
        this.#keepalive = setTimeout(tick, interval - idle);
        this.#keepalive.unref();
        return;
      }
      this.counters.testLinkSent++;
      const wait = this.waitLlc('test_link', this.#opts.llcWait ?? Timers.LLC_WAIT);
      this.sendLlc({ type: 'test_link', v2: this.version === 2, flags: 0, resp: false, userData: Buffer.alloc(16) }).catch(() => {});
      wait.then(
        () => { this.#keepalive = setTimeout(tick, interval); this.#keepalive.unref(); },
        () => { void this.deleteAll(LlcDeleteLinkReason.LOST_PATH.value, false); },
      );
    };
    this.#keepalive = setTimeout(tick, interval);
    this.#keepalive.unref();
  }

  /** The link reported an error completion: it is unusable, so the link group ends. */
  onLinkError(): void {
    void this.deleteAll(LlcDeleteLinkReason.LOST_PATH.value, false, false);
  }

  /**
   * Ends the link group: optionally tells the peer (DELETE_LINK ALL [+ORDERLY]), aborts every
   * connection, closes the link. Idempotent.
   */
  async deleteAll(reason: number, orderly: boolean, tellPeer = true): Promise<void> {
    if (this.terminating) return;
    this.terminating = true;
    if (this.#keepalive !== null) clearTimeout(this.#keepalive);
    if (this.#freeTimer !== null) clearTimeout(this.#freeTimer);
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new EngineError(EngineErrorCode.ABORTED, 'link group terminated'));
    }
    if (tellPeer && this.link && !this.link.closed && !this.link.wr.failed) {
      const flags = 0x40 | (orderly ? 0x20 : 0);
      try {
        await this.sendLlc({ type: 'delete_link', v2: this.version === 2, flags, resp: false, all: true, orderly, linkNum: 0, reason } as LlcMessage);
        // Give the SEND a moment to leave before the QP is destroyed (its completion).
        await new Promise((r) => setTimeout(r, 20));
      } catch {
        // the link is already gone
      }
    }
    for (const c of [...this.conns.values()]) c.abortLocal();
    this.conns.clear();
    this.link?.close();
    this.#opts.onTerminated(this);
  }
}

/** Maximum connections per link group we accept when nothing was negotiated (v1, v2.0). */
export const DEFAULT_MAX_CONNS = Limits.CONNS_PER_LGR_MAX;
