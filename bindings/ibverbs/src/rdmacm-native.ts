/**
 * librdmacm's exported symbols, bound once per library path through koffi, with opaque `void *`
 * arguments (structs are read and written at the offsets of rdmacm-layout.ts), and the error
 * class of the CM verbs.
 */
import koffi, { type LibraryHandle } from 'koffi';
import { VerbsError, VerbsErrorCode, type VerbName } from '@smc-r/verbs';
import type { MemPtr, NativePtr } from './handles.js';

/** The default library: the Debian package librdmacm1 ships librdmacm.so.1. */
export const DEFAULT_RDMACM_LIBRARY = 'librdmacm.so.1';

export type CmChannelPtr = NativePtr<'struct rdma_event_channel *'>;
export type CmIdPtr = NativePtr<'struct rdma_cm_id *'>;
export type CmEventPtr = NativePtr<'struct rdma_cm_event *'>;

/** errno values of the CM paths (Linux numbering). */
export const CmErrno = {
  EXDEV: 18, ENODEV: 19, EINVAL: 22, EPROTO: 71, EAFNOSUPPORT: 97, EADDRINUSE: 98, ECONNRESET: 104,
  ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTUNREACH: 113, ECANCELED: 125, EOPNOTSUPP: 95, EAGAIN: 11, EBUSY: 16,
} as const;

/** The librdmacm calls (VerbName lists them too). */
export type CmVerb = Extract<VerbName, `rdma_${string}`>;

/**
 * A CM verb failed, or a connection attempt ended in a CM event other than ESTABLISHED
 * (`event`: 'REJECTED', 'UNREACHABLE', 'ADDR_ERROR', ...). `verb` holds the CM verb's name.
 */
export class RdmaCmError extends VerbsError {
  readonly cmVerb: CmVerb;
  readonly event: string | undefined;

  constructor(verb: CmVerb, errno: number, message: string, options?: { code?: VerbsErrorCode; cause?: unknown; event?: string }) {
    super(verb, errno, message, options);
    this.cmVerb = verb;
    this.event = options?.event;
  }
}

type Buf = Buffer | Uint8Array;

export interface CmLib {
  readonly path: string;
  create_event_channel(): CmChannelPtr | null;
  destroy_event_channel(ch: CmChannelPtr): void;
  create_id(ch: CmChannelPtr, out: [CmIdPtr | null], context: null, ps: number): number;
  destroy_id(id: CmIdPtr): number;
  bind_addr(id: CmIdPtr, addr: Buf): number;
  listen(id: CmIdPtr, backlog: number): number;
  resolve_addr(id: CmIdPtr, src: Buf | null, dst: Buf, timeoutMs: number): number;
  resolve_route(id: CmIdPtr, timeoutMs: number): number;
  connect(id: CmIdPtr, param: MemPtr): number;
  accept(id: CmIdPtr, param: MemPtr): number;
  reject(id: CmIdPtr, privateData: Buf | null, len: number): number;
  disconnect(id: CmIdPtr): number;
  get_cm_event(ch: CmChannelPtr, out: [CmEventPtr | null]): number;
  ack_cm_event(ev: CmEventPtr): number;
  /** __be16 in a host integer. */
  get_src_port(id: CmIdPtr): number;
}

const libs = new Map<string, CmLib>();

/** librdmacm at `path`; throws RdmaCmError ERR_SMC_VERBS_UNAVAILABLE naming the Debian package. */
export function loadRdmacm(path: string = DEFAULT_RDMACM_LIBRARY): CmLib {
  const cached = libs.get(path);
  if (cached !== undefined) return cached;
  let h: LibraryHandle;
  try {
    h = koffi.load(path);
  } catch (cause) {
    const hint = path === DEFAULT_RDMACM_LIBRARY
      ? 'install the Debian package librdmacm1 (apt-get install librdmacm1 ibverbs-providers)'
      : 'check the libraryPath option';
    throw new RdmaCmError('rdma_create_event_channel', 2, `cannot load ${path}: ${hint}`, { code: VerbsErrorCode.UNAVAILABLE, cause });
  }
  const f = (decl: string): unknown => h.func(decl);
  const lib = {
    path,
    create_event_channel: f('void *rdma_create_event_channel(void)'),
    destroy_event_channel: f('void rdma_destroy_event_channel(void *ch)'),
    create_id: f('int rdma_create_id(void *ch, _Out_ void **id, void *context, int ps)'),
    destroy_id: f('int rdma_destroy_id(void *id)'),
    bind_addr: f('int rdma_bind_addr(void *id, void *addr)'),
    listen: f('int rdma_listen(void *id, int backlog)'),
    resolve_addr: f('int rdma_resolve_addr(void *id, void *src, void *dst, int timeout_ms)'),
    resolve_route: f('int rdma_resolve_route(void *id, int timeout_ms)'),
    connect: f('int rdma_connect(void *id, void *param)'),
    accept: f('int rdma_accept(void *id, void *param)'),
    reject: f('int rdma_reject(void *id, void *private_data, uint8_t len)'),
    disconnect: f('int rdma_disconnect(void *id)'),
    get_cm_event: f('int rdma_get_cm_event(void *ch, _Out_ void **event)'),
    ack_cm_event: f('int rdma_ack_cm_event(void *event)'),
    get_src_port: f('uint16_t rdma_get_src_port(void *id)'),
  } as CmLib;
  libs.set(path, lib);
  return lib;
}
