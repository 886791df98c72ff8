/**
 * Branded native pointers. koffi hands pointers over as bare BigInts, so an ibv_qp* and an ibv_cq*
 * are the same type to TypeScript and a mix-up crashes the process instead of failing to compile.
 * Each handle type carries the C struct it points to; only `native.ts` mints them.
 */
declare const pointee: unique symbol;

export type NativePtr<T extends string> = bigint & { readonly [pointee]: T };

export type DeviceListPtr = NativePtr<'struct ibv_device **'>;
export type DevicePtr = NativePtr<'struct ibv_device *'>;
export type ContextPtr = NativePtr<'struct ibv_context *'>;
export type PdPtr = NativePtr<'struct ibv_pd *'>;
export type MrPtr = NativePtr<'struct ibv_mr *'>;
export type CqPtr = NativePtr<'struct ibv_cq *'>;
export type ChannelPtr = NativePtr<'struct ibv_comp_channel *'>;
export type QpPtr = NativePtr<'struct ibv_qp *'>;
/** Memory this binding allocated (posix_memalign): registrable blocks and WR/WC scratch. */
export type MemPtr = NativePtr<'void * (posix_memalign)'>;
/** A function pointer read from ibv_context.ops. */
export type FnPtr = NativePtr<'ops function'>;
