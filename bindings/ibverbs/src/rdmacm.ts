/**
 * Connection setup through librdmacm for iWARP devices (upstream erdma, siw, cxgb4, irdma in
 * iWARP mode), where a QP reaches RTS only through the CM (TCP + MPA), never through
 * ibv_modify_qp with an exchanged QPN as on RoCE.
 *
 * SMC-R exchanges QP numbers in CLC before any connection exists, so each side creates its QP
 * itself with the ibverbs binding (on the device `deviceForAddress()` names) and brings it to
 * INIT, and the CM is used without a QP on the id: `rdma_connect`/`rdma_accept` carry
 * `conn_param.qp_num`, the kernel's iw_cm looks the QP up by number on the id's device
 * (iw_get_qp) and the provider moves it to RTS when MPA completes. MPA carries no QP number: the
 * passive side learns the peer's QPN only from the private data.
 *
 * One event channel per RdmaCm; its fd is non-blocking and watched by libuv (koffi.node.poll).
 * Every event is copied and acked at once (librdmacm's rdma_destroy_id waits for acks), then
 * dispatched to the object that owns the event's id.
 */
import { isIPv4, isIPv6 } from 'node:net';
import koffi, { type node as KoffiNode } from 'koffi';
import { VerbsErrorCode, type Transport } from '@smc-r/verbs';
import { IBV, OFF } from './layout.js';
import { lastErrno, loadLibc, nativeAlloc, nativeFree, readCString, readPtr, readU32, type NativeMem } from './native.js';
import { CM, CM_EVENT_NAME, CM_OFF } from './rdmacm-layout.js';
import {
  CmErrno, DEFAULT_RDMACM_LIBRARY, RdmaCmError, loadRdmacm,
  type CmChannelPtr, type CmEventPtr, type CmIdPtr, type CmLib, type CmVerb,
} from './rdmacm-native.js';
import type { MemPtr } from './handles.js';

export { RdmaCmError, CmErrno, DEFAULT_RDMACM_LIBRARY, loadRdmacm, type CmVerb, type CmLib } from './rdmacm-native.js';

/**
 * Private data limits. MPA (iWARP) allows 512 bytes, librdmacm's ABI 255 (a u8 length), the IB
 * CM with RDMA_PS_TCP 56 in a request (92 minus the 36-byte CMA header) and 196 in a reply. The
 * binding holds to the IB numbers so the same bytes fit every transport.
 */
export const CM_MAX_CONNECT_PRIVATE_DATA = 56;
export const CM_MAX_ACCEPT_PRIVATE_DATA = 196;
const DEFAULT_TIMEOUT_MS = 5000;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
/** Where in the scratch block the conn_param's private data lives. */
const PDATA_OFF = 64;

/** The device librdmacm bound an id to: open it with `new IbverbsProvider().open(name)`. */
export interface CmDevice {
  readonly name: string;
  readonly transport: Transport;
}

export interface CmEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface CmConnectOptions {
  readonly address: string;
  readonly port: number;
  /** The local QP (in INIT, on the device the CM resolves for `sourceAddress`). */
  readonly qpNum: number;
  /** At most CM_MAX_CONNECT_PRIVATE_DATA bytes, delivered with the listener's request. */
  readonly privateData: Uint8Array;
  /** The local address (device) to connect from; default: the route's choice. */
  readonly sourceAddress?: string;
  /** Fail with EXDEV before rdma_connect unless the CM resolved this device (the QP's). */
  readonly device?: string;
  /** For the whole setup (resolve, route, connect). Default 5000 ms. */
  readonly timeoutMs?: number;
}

export interface CmListener {
  readonly address: string;
  /** The bound port (the one asked for, or the one the CM chose for port 0). */
  readonly port: number;
  /** Requests arriving while no callback is set are rejected. */
  onRequest(cb: ((req: CmRequest) => void) | null): void;
  /** Stops listening; requests not yet accepted are rejected. */
  close(): void;
}

export interface CmRequest {
  /** The active side's private data (a copy). */
  readonly privateData: Buffer;
  readonly peer: CmEndpoint;
  readonly local: CmEndpoint;
  /** The device this request arrived on: the accepting QP must be on it. */
  readonly device: CmDevice | undefined;
  /** Accepts with the local QP (INIT, on `device`); resolves on ESTABLISHED. */
  accept(qpNum: number, privateData?: Uint8Array, timeoutMs?: number): Promise<CmConnection>;
  reject(privateData?: Uint8Array): void;
}

export interface CmConnection {
  readonly device: CmDevice | undefined;
  readonly qpNum: number;
  readonly local: CmEndpoint;
  readonly peer: CmEndpoint;
  /** What the peer sent: the accept's private data (active side) or the request's (passive side). */
  readonly privateData: Buffer;
  readonly state: 'established' | 'disconnected';
  /** Called once, when the stream closes (either side, or RdmaCm.close()); the QP is then in ERR. */
  onDisconnected(cb: () => void): void;
  /** rdma_disconnect; the id is freed when DISCONNECTED arrives. */
  disconnect(): void;
}

export interface RdmaCmOptions {
  /** The CM library to load. Default librdmacm.so.1. */
  readonly libraryPath?: string;
}

/** One decoded, already acked event. */
interface CmEvent {
  readonly type: number;
  readonly status: number;
  readonly id: CmIdPtr;
  readonly listenId: CmIdPtr | null;
  readonly privateData: Buffer;
}

/** Whoever owns an id: gets its events, and is aborted by RdmaCm.close(). */
interface Slot {
  onEvent(ev: CmEvent): void;
  abort(): void;
}

export class RdmaCm {
  readonly #lib: CmLib;
  #channel: CmChannelPtr | null;
  readonly #poller: KoffiNode.PollHandle;
  readonly #slots = new Map<CmIdPtr, Slot>();
  readonly #scratch: NativeMem;
  readonly #eventOut: [CmEventPtr | null] = [null];
  /** Operations and listeners that keep the event loop alive. */
  #holds = 0;

  /** Opens librdmacm and an event channel. No RDMA device: ERR_SMC_VERBS_NO_DEVICE (ENODEV). */
  static open(opts: RdmaCmOptions = {}): RdmaCm {
    const lib = loadRdmacm(opts.libraryPath ?? DEFAULT_RDMACM_LIBRARY);
    const ch = lib.create_event_channel();
    if (ch === null) {
      const e = lastErrno();
      const why = e === CmErrno.ENODEV
        ? 'no RDMA device (librdmacm found no device, or no /dev/infiniband/rdma_cm: the rdma_ucm module)'
        : 'rdma_create_event_channel failed';
      throw new RdmaCmError('rdma_create_event_channel', e, why, { code: e === CmErrno.ENODEV ? VerbsErrorCode.NO_DEVICE : VerbsErrorCode.VERB });
    }
    return new RdmaCm(lib, ch);
  }

  private constructor(lib: CmLib, ch: CmChannelPtr) {
    this.#lib = lib;
    this.#channel = ch;
    this.#scratch = nativeAlloc(PDATA_OFF + 256);
    const fd = koffi.decode(ch, CM_OFF.channel_fd, 'int') as number;
    const libc = loadLibc();
    libc.fcntl(fd, F_SETFL, libc.fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    this.#poller = koffi.node.poll(fd, { readable: true }, (() => this.#onReadable()) as (ev: KoffiNode.PollEvents) => void);
    this.#poller.unref();
  }

  get closed(): boolean {
    return this.#channel === null;
  }

  /** Ids this RdmaCm owns (listeners, requests, connections, attempts in progress). */
  get liveIds(): number {
    return this.#slots.size;
  }

  /**
   * The RDMA device that owns `address` (rdma_bind_addr on a throwaway id): the device to create
   * the QP on before connecting or accepting from that address. ENODEV when no device has it.
   */
  deviceForAddress(address: string): CmDevice {
    const id = this.#createId();
    try {
      this.#check('rdma_bind_addr', this.#lib.bind_addr(id, sockaddr('rdma_bind_addr', address, 0)), `bind ${address}`);
      const d = deviceOf(id);
      if (d === undefined) throw new RdmaCmError('rdma_bind_addr', CmErrno.ENODEV, `no RDMA device owns ${address}`);
      return d;
    } finally {
      this.#destroyId(id);
    }
  }

  /** Listens on address:port (address '0.0.0.0' or '::' for every device) with RDMA_PS_TCP. */
  listen(address: string, port: number, opts: { backlog?: number } = {}): CmListener {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RdmaCmError('rdma_bind_addr', CmErrno.EINVAL, `port ${port}`);
    const id = this.#createId();
    try {
      this.#check('rdma_bind_addr', this.#lib.bind_addr(id, sockaddr('rdma_bind_addr', address, port)), `bind ${address}:${port}`);
      this.#check('rdma_listen', this.#lib.listen(id, opts.backlog ?? 64), `listen on ${address}:${port}`);
    } catch (e) {
      this.#destroyId(id);
      throw e;
    }
    const bound = this.#lib.get_src_port(id);
    return new Listener(this, id, address, ((bound & 0xff) << 8) | (bound >> 8));
  }

  /** Resolves the address and route, then rdma_connect with the QP number; resolves on ESTABLISHED. */
  connect(o: CmConnectOptions): Promise<CmConnection> {
    let dst: Buffer;
    let src: Buffer | null;
    try {
      checkQpn('rdma_connect', o.qpNum);
      checkPrivateData('rdma_connect', o.privateData, CM_MAX_CONNECT_PRIVATE_DATA);
      dst = sockaddr('rdma_resolve_addr', o.address, o.port);
      src = o.sourceAddress !== undefined ? sockaddr('rdma_resolve_addr', o.sourceAddress, 0) : null;
    } catch (e) {
      return Promise.reject(e);
    }
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const id = this.#createId();
    return new Promise<CmConnection>((resolve, reject) => {
      const target = `${o.address}:${o.port}`;
      let done = false;
      const end = (): void => {
        done = true;
        clearTimeout(timer);
        this.#release();
      };
      const fail = (verb: CmVerb, errno: number, why: string, event?: string): void => {
        if (done) return;
        end();
        this.#destroyId(id);
        reject(new RdmaCmError(verb, errno, `${target}: ${why}`, event !== undefined ? { event } : undefined));
      };
      const timer = setTimeout(() => fail('rdma_connect', CmErrno.ETIMEDOUT, `no answer in ${timeoutMs} ms`), timeoutMs);
      this.#hold();
      this.#slots.set(id, {
        abort: () => fail('rdma_connect', CmErrno.ECANCELED, 'the RdmaCm was closed'),
        onEvent: (ev) => {
          const name = CM_EVENT_NAME[ev.type] ?? String(ev.type);
          const errno = (dflt: number): number => (ev.status < 0 ? -ev.status : dflt);
          switch (ev.type) {
            case CM.EVENT_ADDR_RESOLVED: {
              const rc = this.#lib.resolve_route(id, timeoutMs);
              if (rc !== 0) fail('rdma_resolve_route', lastErrno(), 'rdma_resolve_route failed');
              return;
            }
            case CM.EVENT_ROUTE_RESOLVED: {
              const dev = deviceOf(id);
              if (o.device !== undefined && dev?.name !== o.device) {
                fail('rdma_resolve_addr', CmErrno.EXDEV, `the CM resolved device ${dev?.name ?? '(none)'}, the QP is on ${o.device}`);
                return;
              }
              const param = this.#connParam(o.qpNum, o.privateData);
              if (this.#lib.connect(id, param) !== 0) {
                const e = lastErrno();
                fail('rdma_connect', e, e === CmErrno.EINVAL
                  ? `rdma_connect refused QP ${o.qpNum} (it must exist on ${dev?.name ?? 'the resolved device'} and be in INIT)`
                  : e === CmErrno.EOPNOTSUPP ? `${dev?.name ?? 'the device'} is not an iWARP device` : 'rdma_connect failed');
              }
              return;
            }
            case CM.EVENT_ESTABLISHED: {
              end();
              const c = new Connection(this, id, o.qpNum, ev.privateData);
              this.#slots.set(id, c);
              resolve(c);
              return;
            }
            case CM.EVENT_ADDR_ERROR:
              return fail('rdma_resolve_addr', errno(CmErrno.EHOSTUNREACH), 'address resolution failed', name);
            case CM.EVENT_ROUTE_ERROR:
              return fail('rdma_resolve_route', errno(CmErrno.EHOSTUNREACH), 'route resolution failed', name);
            case CM.EVENT_REJECTED:
              // iWARP: status -ECONNREFUSED (RST, nobody listening, or an MPA reject) or
              // -ECONNRESET; IB: a positive CM reject reason.
              return fail('rdma_connect', errno(CmErrno.ECONNREFUSED), `rejected${ev.status > 0 ? ` (IB CM reason ${ev.status})` : ''}`, name);
            case CM.EVENT_UNREACHABLE:
              return fail('rdma_connect', errno(CmErrno.ETIMEDOUT), 'peer unreachable', name);
            case CM.EVENT_CONNECT_RESPONSE:
              // The IB CM hands an id without a QP this event and waits for rdma_establish after the
              // application moved its QP to RTR/RTS itself: on RoCE, use modify_qp, not this CM path.
              return fail('rdma_connect', CmErrno.EOPNOTSUPP, `${deviceOf(id)?.name ?? 'the device'} is not iWARP (IB CM CONNECT_RESPONSE)`, name);
            default:
              return fail('rdma_connect', errno(CmErrno.EPROTO), `connection failed (${name})`, name);
          }
        },
      });
      if (this.#lib.resolve_addr(id, src, dst, timeoutMs) !== 0) fail('rdma_resolve_addr', lastErrno(), 'rdma_resolve_addr failed');
    });
  }

  /** Destroys every id (connections are disconnected, pending operations fail with ECANCELED) and the channel. */
  close(): void {
    const ch = this.#channel;
    if (ch === null) return;
    for (const [, slot] of [...this.#slots]) slot.abort();
    for (const id of [...this.#slots.keys()]) this.#destroyId(id);
    this.#poller.close();
    this.#channel = null;
    this.#lib.destroy_event_channel(ch);
    nativeFree(this.#scratch.ptr);
  }

  // ---- internals shared with Listener / Request / Connection --------------------------------

  /** @internal */
  get lib(): CmLib {
    return this.#lib;
  }

  /** @internal */
  setSlot(id: CmIdPtr, slot: Slot): void {
    this.#slots.set(id, slot);
  }

  /** @internal rdma_destroy_id, once. */
  destroyId(id: CmIdPtr): void {
    this.#destroyId(id);
  }

  /** @internal */
  hold(): void {
    this.#hold();
  }

  /** @internal */
  release(): void {
    this.#release();
  }

  /** @internal conn_param in native scratch memory: qp_num, private data, one RDMA READ each way. */
  connParam(qpNum: number, privateData: Uint8Array | undefined): MemPtr {
    return this.#connParam(qpNum, privateData);
  }

  #connParam(qpNum: number, privateData: Uint8Array | undefined): MemPtr {
    const b = this.#scratch.buffer.fill(0, 0, PDATA_OFF + 256);
    const n = privateData?.length ?? 0;
    if (n > 0) {
      b.set(privateData!, PDATA_OFF);
      b.writeBigUInt64LE(this.#scratch.ptr + BigInt(PDATA_OFF), CM_OFF.cp_private_data);
    }
    b.writeUInt8(n, CM_OFF.cp_private_data_len);
    // ird/ord 1: SMC-R issues no RDMA READ, but MPA peer-to-peer modes may use one as their RTR.
    b.writeUInt8(1, CM_OFF.cp_responder_resources);
    b.writeUInt8(1, CM_OFF.cp_initiator_depth);
    b.writeUInt8(7, CM_OFF.cp_retry_count);
    b.writeUInt8(7, CM_OFF.cp_rnr_retry_count);
    b.writeUInt32LE(qpNum, CM_OFF.cp_qp_num);
    return this.#scratch.ptr;
  }

  #createId(): CmIdPtr {
    const ch = this.#channel;
    if (ch === null) throw new RdmaCmError('rdma_create_id', CmErrno.EINVAL, 'the RdmaCm is closed');
    const out: [CmIdPtr | null] = [null];
    const rc = this.#lib.create_id(ch, out, null, CM.PS_TCP);
    if (rc !== 0 || out[0] === null) throw new RdmaCmError('rdma_create_id', lastErrno(), 'rdma_create_id(RDMA_PS_TCP) failed');
    return out[0];
  }

  #destroyId(id: CmIdPtr): void {
    this.#slots.delete(id);
    // Every event was acked when read, so librdmacm does not wait here.
    if (this.#lib.destroy_id(id) !== 0) throw new RdmaCmError('rdma_destroy_id', lastErrno(), 'rdma_destroy_id failed');
  }

  #check(verb: CmVerb, rc: number, what: string): void {
    if (rc !== 0) {
      const e = lastErrno();
      const hint = e === CmErrno.ENODEV ? ' (no RDMA device owns that address)' : e === CmErrno.EADDRINUSE ? ' (port in use)' : '';
      throw new RdmaCmError(verb, e, `${what} failed${hint}`);
    }
  }

  #hold(): void {
    if (this.#holds++ === 0) this.#poller.ref();
  }

  #release(): void {
    if (--this.#holds === 0 && this.#channel !== null) this.#poller.unref();
  }

  /** Reads, copies and acks every queued event, then dispatches them. */
  #onReadable(): void {
    const ch = this.#channel;
    if (ch === null) return;
    const events: CmEvent[] = [];
    while (this.#lib.get_cm_event(ch, this.#eventOut) === 0) {
      const ev = this.#eventOut[0]!;
      const len = koffi.decode(ev, CM_OFF.event_private_data_len, 'uint8_t') as number;
      const pd = readPtr<bigint>(ev, CM_OFF.event_private_data);
      events.push({
        id: readPtr<CmIdPtr>(ev, CM_OFF.event_id)!,
        listenId: readPtr<CmIdPtr>(ev, CM_OFF.event_listen_id),
        type: readU32(ev, CM_OFF.event_event),
        status: koffi.decode(ev, CM_OFF.event_status, 'int') as number,
        // a copy: the event's memory is freed by the ack below
        privateData: len > 0 && pd !== null ? Buffer.from(new Uint8Array(koffi.view(pd, len))) : Buffer.alloc(0),
      });
      this.#lib.ack_cm_event(ev);
    }
    for (const ev of events) {
      if (this.#channel === null) return;
      if (ev.type === CM.EVENT_CONNECT_REQUEST) {
        const l = ev.listenId !== null ? this.#slots.get(ev.listenId) : undefined;
        if (l instanceof Listener) l.request(ev);
        else this.#lib.destroy_id(ev.id); // a listener closed meanwhile: refuse
        continue;
      }
      this.#slots.get(ev.id)?.onEvent(ev);
    }
  }
}

class Listener implements CmListener, Slot {
  readonly address: string;
  readonly port: number;
  readonly #cm: RdmaCm;
  readonly #id: CmIdPtr;
  #cb: ((req: CmRequest) => void) | null = null;
  readonly #pending = new Set<Request>();
  #open = true;

  constructor(cm: RdmaCm, id: CmIdPtr, address: string, port: number) {
    this.#cm = cm;
    this.#id = id;
    this.address = address;
    this.port = port;
    cm.setSlot(id, this);
    cm.hold();
  }

  onRequest(cb: ((req: CmRequest) => void) | null): void {
    this.#cb = cb;
  }

  /** @internal A CONNECT_REQUEST on this listener. */
  request(ev: CmEvent): void {
    const req = new Request(this.#cm, ev.id, ev.privateData, this.#pending);
    const cb = this.#cb;
    if (cb === null) {
      req.reject();
      return;
    }
    cb(req);
  }

  onEvent(): void {
    // a listening id gets nothing but requests (DEVICE_REMOVAL aside)
  }

  abort(): void {
    this.close();
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    for (const r of [...this.#pending]) r.reject();
    this.#cm.destroyId(this.#id);
    this.#cm.release();
  }
}

class Request implements CmRequest, Slot {
  readonly privateData: Buffer;
  readonly peer: CmEndpoint;
  readonly local: CmEndpoint;
  readonly device: CmDevice | undefined;
  readonly #cm: RdmaCm;
  readonly #id: CmIdPtr;
  readonly #pending: Set<Request>;
  #state: 'new' | 'accepting' | 'done' = 'new';
  #waiter: ((ev: CmEvent | null) => void) | null = null;

  constructor(cm: RdmaCm, id: CmIdPtr, privateData: Buffer, pending: Set<Request>) {
    this.#cm = cm;
    this.#id = id;
    this.#pending = pending;
    this.privateData = privateData;
    this.peer = endpointAt(id, CM_OFF.id_dst_addr);
    this.local = endpointAt(id, CM_OFF.id_src_addr);
    this.device = deviceOf(id);
    pending.add(this);
    cm.setSlot(id, this);
  }

  accept(qpNum: number, privateData?: Uint8Array, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<CmConnection> {
    if (this.#state !== 'new') return Promise.reject(new RdmaCmError('rdma_accept', CmErrno.EINVAL, `the request was already ${this.#state === 'done' ? 'answered' : 'accepted'}`));
    try {
      checkQpn('rdma_accept', qpNum);
      if (privateData !== undefined) checkPrivateData('rdma_accept', privateData, CM_MAX_ACCEPT_PRIVATE_DATA);
    } catch (e) {
      return Promise.reject(e);
    }
    const cm = this.#cm;
    if (cm.lib.accept(this.#id, cm.connParam(qpNum, privateData)) !== 0) {
      const e = lastErrno();
      this.#finish();
      return Promise.reject(new RdmaCmError('rdma_accept', e, e === CmErrno.EINVAL
        ? `rdma_accept refused QP ${qpNum} (it must exist on ${this.device?.name ?? 'the request\'s device'} and be in INIT)`
        : e === CmErrno.ECONNRESET ? 'the peer gave up the connection' : 'rdma_accept failed'));
    }
    this.#state = 'accepting';
    cm.hold();
    return new Promise<CmConnection>((resolve, reject) => {
      const timer = setTimeout(() => this.#waiter?.(null), timeoutMs);
      this.#waiter = (ev) => {
        clearTimeout(timer);
        this.#waiter = null;
        cm.release();
        if (ev !== null && ev.type === CM.EVENT_ESTABLISHED) {
          this.#state = 'done';
          this.#pending.delete(this);
          const c = new Connection(cm, this.#id, qpNum, this.privateData);
          cm.setSlot(this.#id, c);
          resolve(c);
          return;
        }
        this.#finish();
        const name = ev === null ? undefined : CM_EVENT_NAME[ev.type];
        const errno = ev === null ? CmErrno.ETIMEDOUT : ev.status < 0 ? -ev.status : ev.type === -1 ? CmErrno.ECANCELED : CmErrno.ECONNRESET;
        const why = ev === null ? `no ESTABLISHED in ${timeoutMs} ms` : ev.type === -1 ? 'the RdmaCm was closed' : `the connection ended (${name})`;
        reject(new RdmaCmError('rdma_accept', errno, why, name !== undefined ? { event: name } : undefined));
      };
    });
  }

  reject(privateData?: Uint8Array): void {
    if (this.#state !== 'new') return;
    const n = privateData?.length ?? 0;
    if (n > CM_MAX_ACCEPT_PRIVATE_DATA) throw new RdmaCmError('rdma_reject', CmErrno.EINVAL, `${n} bytes of private data (at most ${CM_MAX_ACCEPT_PRIVATE_DATA})`);
    const rc = this.#cm.lib.reject(this.#id, n > 0 ? privateData! : null, n);
    const e = rc !== 0 ? lastErrno() : 0;
    this.#finish();
    if (rc !== 0) throw new RdmaCmError('rdma_reject', e, 'rdma_reject failed');
  }

  onEvent(ev: CmEvent): void {
    this.#waiter?.(ev);
  }

  abort(): void {
    if (this.#waiter !== null) this.#waiter({ type: -1, status: 0, id: this.#id, listenId: null, privateData: Buffer.alloc(0) });
    else this.reject();
  }

  /** Frees the id (the kernel answers the peer: REJECTED, or a closed stream). */
  #finish(): void {
    this.#state = 'done';
    this.#pending.delete(this);
    this.#cm.destroyId(this.#id);
  }
}

class Connection implements CmConnection, Slot {
  readonly device: CmDevice | undefined;
  readonly qpNum: number;
  readonly local: CmEndpoint;
  readonly peer: CmEndpoint;
  readonly privateData: Buffer;
  #state: 'established' | 'disconnected' = 'established';
  readonly #cm: RdmaCm;
  readonly #id: CmIdPtr;
  readonly #cbs: (() => void)[] = [];
  #disconnecting = false;

  constructor(cm: RdmaCm, id: CmIdPtr, qpNum: number, privateData: Buffer) {
    this.#cm = cm;
    this.#id = id;
    this.qpNum = qpNum;
    this.privateData = privateData;
    this.device = deviceOf(id);
    this.local = endpointAt(id, CM_OFF.id_src_addr);
    this.peer = endpointAt(id, CM_OFF.id_dst_addr);
  }

  get state(): 'established' | 'disconnected' {
    return this.#state;
  }

  onDisconnected(cb: () => void): void {
    if (this.#state === 'disconnected') queueMicrotask(cb);
    else this.#cbs.push(cb);
  }

  disconnect(): void {
    if (this.#state !== 'established' || this.#disconnecting) return;
    this.#disconnecting = true;
    if (this.#cm.lib.disconnect(this.#id) !== 0) {
      // Already closing from the other side: DISCONNECTED is on its way. Anything else: end here.
      const e = lastErrno();
      if (e !== CmErrno.EINVAL) this.#ended();
    }
  }

  onEvent(ev: CmEvent): void {
    if (ev.type === CM.EVENT_DISCONNECTED || ev.type === CM.EVENT_DEVICE_REMOVAL) this.#ended();
  }

  abort(): void {
    this.#ended();
  }

  #ended(): void {
    if (this.#state === 'disconnected') return;
    this.#state = 'disconnected';
    this.#cm.destroyId(this.#id);
    for (const cb of this.#cbs.splice(0)) cb();
  }
}

// ---- helpers ----------------------------------------------------------------------------------

function checkQpn(verb: CmVerb, qpNum: number): void {
  if (!Number.isInteger(qpNum) || qpNum < 0 || qpNum > 0xffffff) throw new RdmaCmError(verb, CmErrno.EINVAL, `qpNum ${qpNum} (0..0xffffff)`);
}

function checkPrivateData(verb: CmVerb, pd: Uint8Array, max: number): void {
  if (!(pd instanceof Uint8Array) || pd.length > max) throw new RdmaCmError(verb, CmErrno.EINVAL, `${pd?.length} bytes of private data (at most ${max})`);
}

/** The device behind id->verbs (librdmacm's own context of it), or undefined before binding. */
function deviceOf(id: CmIdPtr): CmDevice | undefined {
  const verbs = readPtr<bigint>(id, CM_OFF.id_verbs);
  if (verbs === null) return undefined;
  const dev = readPtr<bigint>(verbs, CM_OFF.ctx_device);
  if (dev === null) return undefined;
  return {
    name: readCString(dev, OFF.device_name, OFF.device_name_len),
    transport: readU32(dev, OFF.device_transport_type) === IBV.TRANSPORT_IWARP ? 'iWARP' : 'RoCE',
  };
}

/** A sockaddr (in or in6) for address:port, in a sockaddr_storage-sized Buffer. */
function sockaddr(verb: CmVerb, address: string, port: number): Buffer {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RdmaCmError(verb, CmErrno.EINVAL, `port ${port}`);
  const b = Buffer.alloc(CM_OFF.sockaddr_storage_size);
  if (isIPv4(address)) {
    b.writeUInt16LE(CM.AF_INET, CM_OFF.sin_family);
    b.writeUInt16BE(port, CM_OFF.sin_port);
    address.split('.').forEach((x, i) => b.writeUInt8(Number(x), CM_OFF.sin_addr + i));
    return b;
  }
  if (isIPv6(address)) {
    b.writeUInt16LE(CM.AF_INET6, CM_OFF.sin_family);
    b.writeUInt16BE(port, CM_OFF.sin6_port);
    ipv6Bytes(address).copy(b, CM_OFF.sin6_addr);
    return b;
  }
  throw new RdmaCmError(verb, CmErrno.EAFNOSUPPORT, `"${address}" is not an IPv4 or IPv6 address`);
}

/** The 16 bytes of a valid IPv6 literal (net.isIPv6 checked it), embedded IPv4 included. */
function ipv6Bytes(a: string): Buffer {
  const out = Buffer.alloc(16);
  const s = a.split('%')[0]!;
  const groups = (part: string): number[] => {
    if (part === '') return [];
    const out2: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const v = g.split('.').map(Number);
        out2.push((v[0]! << 8) | v[1]!, (v[2]! << 8) | v[3]!);
      } else {
        out2.push(parseInt(g, 16));
      }
    }
    return out2;
  };
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, undefined];
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** The sockaddr stored in the id at `off` as address + port. */
function endpointAt(id: CmIdPtr, off: number): CmEndpoint {
  const b = Buffer.from(new Uint8Array(koffi.view(id + BigInt(off), CM_OFF.sin6_size)));
  const family = b.readUInt16LE(CM_OFF.sin_family);
  if (family === CM.AF_INET) {
    return { address: [0, 1, 2, 3].map((i) => b[CM_OFF.sin_addr + i]).join('.'), port: b.readUInt16BE(CM_OFF.sin_port) };
  }
  if (family === CM.AF_INET6) {
    const g: string[] = [];
    for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(CM_OFF.sin6_addr + i * 2).toString(16));
    return { address: g.join(':'), port: b.readUInt16BE(CM_OFF.sin6_port) };
  }
  return { address: '', port: 0 };
}
