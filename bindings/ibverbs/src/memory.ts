/**
 * Registrable memory: page-aligned native memory (posix_memalign) seen from JS as a Buffer over a
 * koffi.view, with its real virtual address split into 32-bit halves for the engine (an RDMA
 * peer writes to exactly this address). The memory is freed by free() or, as a safety net, when
 * the Buffer is garbage-collected; a block with registered MRs refuses free() (EBUSY), because
 * the adapter may still DMA into it.
 */
import { Errno, VerbsError, type MemoryBlock } from '@smc-r/verbs';
import type { MemPtr } from './handles.js';
import { nativeAlloc, nativeFree } from './native.js';

/** Frees native memory whose Buffer was collected without free(). */
const orphans = new FinalizationRegistry<MemPtr>((ptr) => nativeFree(ptr));

export class NativeMemoryBlock implements MemoryBlock {
  readonly buffer: Buffer;
  readonly addrHi: number;
  readonly addrLo: number;
  readonly length: number;
  readonly ptr: MemPtr;
  /** MRs registered on this block and not yet deregistered. */
  mrs = 0;
  #freed = false;
  readonly #token = {};

  constructor(length: number) {
    const m = nativeAlloc(length);
    this.ptr = m.ptr;
    this.buffer = m.buffer;
    this.length = length;
    this.addrHi = Number(m.ptr >> 32n);
    this.addrLo = Number(m.ptr & 0xffffffffn);
    orphans.register(this.buffer, m.ptr, this.#token);
  }

  get freed(): boolean {
    return this.#freed;
  }

  free(): void {
    if (this.#freed) return;
    if (this.mrs > 0) throw new VerbsError('alloc_memory', Errno.EBUSY, `${this.mrs} MR(s) still registered on this block`);
    this.#freed = true;
    orphans.unregister(this.#token);
    // JS views cannot be detached (koffi.view makes an external ArrayBuffer): reading the Buffer
    // after free() is a use-after-free, exactly as in C.
    nativeFree(this.ptr);
  }
}
