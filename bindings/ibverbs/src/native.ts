/**
 * The native side: libibverbs' exported control-path symbols and a few libc calls, bound once per
 * library path through koffi (koffi, not ffi-napi: see the README). Everything is declared with
 * opaque `void *` arguments; structs are read and written by the callers through DataView/Buffer
 * at the offsets of layout.ts, so no koffi struct marshalling runs anywhere.
 *
 * The data-path verbs (ibv_post_send, ibv_post_recv, ibv_poll_cq, ibv_req_notify_cq) are static
 * inlines in verbs.h and not exported: `opsOf()` reads their function pointers from the context's
 * embedded ops table once, as the inlines do on every call.
 */
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';
import { Errno, VerbsError, VerbsErrorCode, type VerbName } from '@smc-r/verbs';
import { OFF } from './layout.js';
import type { ChannelPtr, ContextPtr, CqPtr, DeviceListPtr, DevicePtr, FnPtr, MemPtr, MrPtr, PdPtr, QpPtr } from './handles.js';

/** The default library: libibverbs1 ships libibverbs.so.1 (libibverbs-dev adds the .so link). */
export const DEFAULT_LIBRARY = 'libibverbs.so.1';

type Fn<A extends unknown[], R> = (...args: A) => R;
type Buf = Buffer | Uint8Array;

export interface VerbsLib {
  readonly path: string;
  get_device_list(n: [number]): DeviceListPtr | null;
  free_device_list(list: DeviceListPtr): void;
  get_device_name(dev: DevicePtr): string;
  get_device_guid(dev: DevicePtr): bigint | number;
  open_device(dev: DevicePtr): ContextPtr | null;
  close_device(ctx: ContextPtr): number;
  query_device(ctx: ContextPtr, attr: Buf): number;
  query_port(ctx: ContextPtr, port: number, attr: Buf): number;
  query_gid(ctx: ContextPtr, port: number, index: number, gid: Buf): number;
  /** rdma-core >= 32; undefined on older libraries. */
  query_gid_ex: Fn<[ContextPtr, number, number, Buf, number, number], number> | undefined;
  alloc_pd(ctx: ContextPtr): PdPtr | null;
  dealloc_pd(pd: PdPtr): number;
  reg_mr(pd: PdPtr, addr: bigint, length: number, access: number): MrPtr | null;
  dereg_mr(mr: MrPtr): number;
  create_comp_channel(ctx: ContextPtr): ChannelPtr | null;
  destroy_comp_channel(ch: ChannelPtr): number;
  create_cq(ctx: ContextPtr, cqe: number, cqContext: null, ch: ChannelPtr | null, vector: number): CqPtr | null;
  destroy_cq(cq: CqPtr): number;
  get_cq_event(ch: ChannelPtr, cqOut: Buf, ctxOut: Buf): number;
  ack_cq_events(cq: CqPtr, n: number): void;
  create_qp(pd: PdPtr, init: Buf): QpPtr | null;
  modify_qp(qp: QpPtr, attr: Buf, mask: number): number;
  query_qp(qp: QpPtr, attr: Buf, mask: number, init: Buf): number;
  destroy_qp(qp: QpPtr): number;
}

export interface LibC {
  posix_memalign(out: [MemPtr | null], align: number, size: number): number;
  free(p: MemPtr): void;
  /** fcntl(fd, cmd, int arg) */
  fcntl(fd: number, cmd: number, arg: number): number;
  if_indextoname(index: number, buf: Buf): string | null;
}

/** The data-path entry points of one context, resolved from ibv_context.ops. */
export interface ContextOps {
  post_send(qp: QpPtr, wr: MemPtr, bad: MemPtr): number;
  post_recv(qp: QpPtr, wr: MemPtr, bad: MemPtr): number;
  poll_cq(cq: CqPtr, n: number, wc: MemPtr): number;
  req_notify_cq(cq: CqPtr, solicitedOnly: number): number;
}

const libs = new Map<string, VerbsLib>();
let libc: LibC | undefined;

/** The verbs library at `path`; throws VerbsError ERR_SMC_VERBS_UNAVAILABLE naming the Debian package. */
export function loadVerbs(path: string = DEFAULT_LIBRARY): VerbsLib {
  const cached = libs.get(path);
  if (cached !== undefined) return cached;
  let h: LibraryHandle;
  try {
    h = koffi.load(path);
  } catch (cause) {
    const hint = path === DEFAULT_LIBRARY
      ? 'install the Debian package libibverbs1 (apt-get install libibverbs1 ibverbs-providers; ibverbs-providers holds the device drivers: mlx5, rxe, erdma, ...)'
      : 'check the libraryPath option';
    throw new VerbsError('get_device_list', Errno.ENOENT, `cannot load ${path}: ${hint}`, { code: VerbsErrorCode.UNAVAILABLE, cause });
  }
  const f = (decl: string): ((...a: unknown[]) => unknown) => h.func(decl) as (...a: unknown[]) => unknown;
  const opt = (decl: string): ((...a: unknown[]) => unknown) | undefined => {
    try {
      return f(decl);
    } catch {
      return undefined;
    }
  };
  const lib = {
    path,
    get_device_list: f('void *ibv_get_device_list(_Out_ int *num)'),
    free_device_list: f('void ibv_free_device_list(void *list)'),
    get_device_name: f('const char *ibv_get_device_name(void *dev)'),
    get_device_guid: f('uint64_t ibv_get_device_guid(void *dev)'),
    open_device: f('void *ibv_open_device(void *dev)'),
    close_device: f('int ibv_close_device(void *ctx)'),
    query_device: f('int ibv_query_device(void *ctx, void *attr)'),
    // The exported symbol (IBVERBS_1.1) behind verbs.h's ___ibv_query_port inline: compat layout.
    query_port: f('int ibv_query_port(void *ctx, uint8_t port, void *attr)'),
    query_gid: f('int ibv_query_gid(void *ctx, uint8_t port, int index, void *gid)'),
    query_gid_ex: opt('int _ibv_query_gid_ex(void *ctx, uint32_t port, uint32_t index, void *entry, uint32_t flags, size_t size)'),
    alloc_pd: f('void *ibv_alloc_pd(void *ctx)'),
    dealloc_pd: f('int ibv_dealloc_pd(void *pd)'),
    // The exported symbol behind the ibv_reg_mr macro (right for access flags without OPTIONAL_RANGE).
    reg_mr: f('void *ibv_reg_mr(void *pd, void *addr, size_t length, int access)'),
    dereg_mr: f('int ibv_dereg_mr(void *mr)'),
    create_comp_channel: f('void *ibv_create_comp_channel(void *ctx)'),
    destroy_comp_channel: f('int ibv_destroy_comp_channel(void *ch)'),
    create_cq: f('void *ibv_create_cq(void *ctx, int cqe, void *cq_context, void *channel, int comp_vector)'),
    destroy_cq: f('int ibv_destroy_cq(void *cq)'),
    get_cq_event: f('int ibv_get_cq_event(void *channel, void *cq_out, void *ctx_out)'),
    ack_cq_events: f('void ibv_ack_cq_events(void *cq, unsigned int n)'),
    create_qp: f('void *ibv_create_qp(void *pd, void *init_attr)'),
    modify_qp: f('int ibv_modify_qp(void *qp, void *attr, int mask)'),
    query_qp: f('int ibv_query_qp(void *qp, void *attr, int mask, void *init_attr)'),
    destroy_qp: f('int ibv_destroy_qp(void *qp)'),
  } as unknown as VerbsLib;
  libs.set(path, lib);
  return lib;
}

export function loadLibc(): LibC {
  if (libc !== undefined) return libc;
  const h = koffi.load('libc.so.6');
  const fcntl = h.func('int fcntl(int fd, int cmd, ...)') as (...a: unknown[]) => number;
  libc = {
    posix_memalign: h.func('int posix_memalign(_Out_ void **p, size_t align, size_t size)') as LibC['posix_memalign'],
    free: h.func('void free(void *p)') as LibC['free'],
    fcntl: (fd, cmd, arg) => fcntl(fd, cmd, 'int', arg),
    if_indextoname: h.func('const char *if_indextoname(unsigned int index, void *buf)') as LibC['if_indextoname'],
  };
  return libc;
}

// Anonymous prototypes: koffi's type names are process-wide, so named ones would make a second
// instance of this module (two copies of the package, or source and dist in one test run) throw.
const PostSendProto = koffi.proto('int (void *qp, void *wr, void *bad_wr)');
const PostRecvProto = koffi.proto('int (void *qp, void *wr, void *bad_wr)');
const PollCqProto = koffi.proto('int (void *cq, int num_entries, void *wc)');
const ReqNotifyProto = koffi.proto('int (void *cq, int solicited_only)');

/** Reads ctx->ops.{post_send, post_recv, poll_cq, req_notify_cq} once and wraps them as calls. */
export function opsOf(ctx: ContextPtr): ContextOps {
  const fn = (off: number, proto: TypeObject, verb: VerbName): ((...a: unknown[]) => number) => {
    const p = koffi.decode(ctx, off, 'void *') as FnPtr | null;
    if (p === null) throw new VerbsError(verb, Errno.EOPNOTSUPP, 'the provider has no such operation in ibv_context.ops');
    return koffi.decode(p, proto) as (...a: unknown[]) => number;
  };
  return {
    post_send: fn(OFF.ctx_ops_post_send, PostSendProto, 'post_send'),
    post_recv: fn(OFF.ctx_ops_post_recv, PostRecvProto, 'post_recv'),
    poll_cq: fn(OFF.ctx_ops_poll_cq, PollCqProto, 'poll_cq'),
    req_notify_cq: fn(OFF.ctx_ops_req_notify_cq, ReqNotifyProto, 'req_notify_cq'),
  } as ContextOps;
}

/** errno after a failed call that returned NULL or -1 (EIO when the library left it 0). */
export function lastErrno(): number {
  return koffi.errno() || Errno.EIO;
}

/** A verbs return value: 0 is success; positive (libibverbs) or negative (erdma) errno otherwise. */
export function errnoOf(rc: number): number {
  return Math.abs(rc);
}

// ---------------------------------------------------------------------------------------------
// Native memory

/** Page-aligned native memory: a pointer and a Buffer over it (koffi.view, no copy). */
export interface NativeMem {
  readonly ptr: MemPtr;
  readonly buffer: Buffer;
  readonly view: DataView;
}

export const PAGE = 4096;

/** posix_memalign(PAGE, length rounded up to pages), zeroed. Throws VerbsError('alloc_memory', ENOMEM). */
export function nativeAlloc(length: number): NativeMem {
  if (!Number.isSafeInteger(length) || length <= 0) throw new VerbsError('alloc_memory', Errno.EINVAL, `bad length ${length}`);
  const c = loadLibc();
  const size = Math.ceil(length / PAGE) * PAGE;
  const out: [MemPtr | null] = [null];
  const rc = c.posix_memalign(out, PAGE, size);
  if (rc !== 0 || out[0] === null) throw new VerbsError('alloc_memory', rc || Errno.ENOMEM, `posix_memalign(${size}) failed`);
  const ab = koffi.view(out[0], size);
  const buffer = Buffer.from(ab, 0, length);
  buffer.fill(0);
  return { ptr: out[0], buffer, view: new DataView(ab, 0, length) };
}

export function nativeFree(p: MemPtr): void {
  loadLibc().free(p);
}

/** Reads a pointer stored at `ptr + off`. */
export function readPtr<T extends bigint>(ptr: bigint, off: number): T | null {
  return koffi.decode(ptr, off, 'void *') as T | null;
}

export function readCString(ptr: bigint, off: number, max: number): string {
  const b = Buffer.from(koffi.view(ptr + BigInt(off), max));
  const end = b.indexOf(0);
  return b.toString('latin1', 0, end < 0 ? max : end);
}

export function readU32(ptr: bigint, off: number): number {
  return koffi.decode(ptr, off, 'uint32_t') as number;
}
