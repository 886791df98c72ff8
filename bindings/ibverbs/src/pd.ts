/** A protection domain: owns its MRs and QPs and closes them first. */
import { Errno, VerbsError, type MemoryBlock, type Pd, type QpInitAttr } from '@smc-r/verbs';
import type { PdPtr } from './handles.js';
import { errnoOf, type VerbsLib } from './native.js';
import { NativeMemoryBlock } from './memory.js';
import { IbvMr } from './mr.js';
import { IbvQp } from './qp.js';
import type { IbvContext } from './context.js';

export class IbvPd implements Pd {
  readonly context: IbvContext;
  readonly #lib: VerbsLib;
  #ptr: PdPtr | null;
  readonly #mrs = new Set<IbvMr>();
  readonly #qps = new Set<IbvQp>();

  constructor(lib: VerbsLib, context: IbvContext, ptr: PdPtr) {
    this.#lib = lib;
    this.context = context;
    this.#ptr = ptr;
  }

  get ptr(): PdPtr {
    if (this.#ptr === null) throw new VerbsError('alloc_pd', Errno.EINVAL, 'the PD is closed');
    return this.#ptr;
  }

  registerMr(block: MemoryBlock, offset: number, length: number, access: number): IbvMr {
    if (this.#ptr === null) throw new VerbsError('reg_mr', Errno.EINVAL, 'the PD is closed');
    if (!(block instanceof NativeMemoryBlock)) throw new VerbsError('reg_mr', Errno.EINVAL, 'the block was not allocated by an ibverbs context (use context.allocMemory)');
    const mr = new IbvMr(this.#lib, this, block, offset, length, access);
    this.#mrs.add(mr);
    return mr;
  }

  createQp(init: QpInitAttr): IbvQp {
    if (this.#ptr === null) throw new VerbsError('create_qp', Errno.EINVAL, 'the PD is closed');
    const qp = new IbvQp(this.#lib, this, init);
    this.#qps.add(qp);
    return qp;
  }

  /** @internal A child closed itself. */
  forget(child: IbvMr | IbvQp): void {
    if (child instanceof IbvMr) this.#mrs.delete(child);
    else this.#qps.delete(child);
  }

  close(): void {
    const p = this.#ptr;
    if (p === null) return;
    for (const qp of [...this.#qps]) qp.close();
    for (const mr of [...this.#mrs]) mr.close();
    const rc = this.#lib.dealloc_pd(p);
    if (rc !== 0) throw new VerbsError('dealloc_pd', errnoOf(rc), 'ibv_dealloc_pd failed');
    this.#ptr = null;
    this.context.forget(this);
  }
}
