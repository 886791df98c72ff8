/**
 * Memory of the softroce provider: blocks (ordinary Buffers with a synthetic RDMA address), the
 * protection domain and memory regions, and the translation of a remote (address, rkey, length)
 * into bytes of a registered region, with every bound checked before a byte moves.
 *
 * Synthetic addresses: block n gets address (0x7f00 + 2n) * 2^32 + 0x8000_0000, so addresses are
 * above 2^32, their low half is non-zero, and a region whose offset crosses 2^31 carries into the
 * high half. Blocks are 2^33 apart and smaller than 2^32, so they never overlap. All address math
 * is done in Number after checking that the high half is below 2^21, which keeps every value
 * below 2^53 (exact).
 *
 * Keys (as rxe): lkey == rkey == (index << 8) | variant, where index is the MR's slot in the
 * context's table and variant a per-registration byte, so a stale key of a closed MR whose slot
 * was reused does not match. Remote access also needs the MR to be in the QP's PD and to carry the
 * REMOTE_* flag of the operation.
 */
import { Errno, VerbsError } from '../errors.js';
import { Access, type Lkey, type MemoryBlock, type Mr, type Pd, type Qp, type QpInitAttr, type Rkey } from '../types.js';
import type { SoftRoceContext } from './context.js';
import { SrQp } from './qp.js';

const ADDR_BASE_HI = 0x7f00;
const ADDR_LO = 0x8000_0000;
const TWO32 = 4294967296;
/** High halves at or above this are outside anything handed out (and Number math stays exact). */
const MAX_HI = 1 << 21;
let blockCount = 0;

export class SrMemoryBlock implements MemoryBlock {
  readonly addrHi: number;
  readonly addrLo: number;
  /** Address of byte 0 as a Number (< 2^53). */
  readonly addr: number;
  freed = false;

  constructor(readonly buffer: Buffer, readonly length: number) {
    const n = blockCount++;
    const hi = ADDR_BASE_HI + 2 * n;
    if (hi >= MAX_HI) throw new VerbsError('alloc_memory', Errno.ENOMEM, 'synthetic address space exhausted');
    this.addrHi = hi;
    this.addrLo = ADDR_LO;
    this.addr = hi * TWO32 + ADDR_LO;
  }

  /** No native memory to free; marks the block so it cannot be registered again. */
  free(): void {
    this.freed = true;
  }
}

export class SrMr implements Mr {
  readonly lkey: Lkey;
  readonly rkey: Rkey;
  readonly addrHi: number;
  readonly addrLo: number;
  /** Address of the region's first byte as a Number. */
  readonly addr: number;
  /** The block's Buffer (bytes of the region: [offset, offset + length)). */
  readonly buf: Buffer;
  closed = false;

  constructor(
    readonly pd: SrPd,
    readonly block: SrMemoryBlock,
    readonly offset: number,
    readonly length: number,
    readonly access: number,
    key: number,
  ) {
    this.lkey = key as Lkey;
    this.rkey = key as Rkey;
    this.addr = block.addr + offset;
    this.addrHi = Math.floor(this.addr / TWO32);
    this.addrLo = this.addr % TWO32;
    this.buf = block.buffer;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pd.context.forgetMr(this);
    this.pd.mrs.delete(this);
  }
}

export class SrPd implements Pd {
  readonly mrs = new Set<SrMr>();
  readonly qps = new Set<SrQp>();
  closed = false;

  constructor(readonly context: SoftRoceContext) {}

  registerMr(block: MemoryBlock, offset: number, length: number, access: number): Mr {
    if (this.closed) throw new VerbsError('reg_mr', Errno.EINVAL, 'PD is deallocated');
    if (!(block instanceof SrMemoryBlock) || block.freed) throw new VerbsError('reg_mr', Errno.EINVAL, 'block was not allocated by this softroce context (or was freed)');
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > block.length) {
      throw new VerbsError('reg_mr', Errno.EINVAL, `region [${offset}, ${offset}+${length}) is outside the ${block.length}-byte block`);
    }
    if (length > this.context.dev.attr.maxMrSize) throw new VerbsError('reg_mr', Errno.EINVAL, `length ${length} exceeds maxMrSize`);
    if (!Number.isInteger(access) || (access & ~(Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ)) !== 0) {
      throw new VerbsError('reg_mr', Errno.EINVAL, `unsupported access flags 0x${access.toString(16)}`);
    }
    // libibverbs: remote write needs local write (IBV_ACCESS_REMOTE_WRITE without LOCAL_WRITE is EINVAL).
    if ((access & Access.REMOTE_WRITE) !== 0 && (access & Access.LOCAL_WRITE) === 0) {
      throw new VerbsError('reg_mr', Errno.EINVAL, 'REMOTE_WRITE requires LOCAL_WRITE');
    }
    const mr = this.context.newMr(this, block, offset, length, access);
    this.mrs.add(mr);
    return mr;
  }

  createQp(init: QpInitAttr): Qp {
    if (this.closed) throw new VerbsError('create_qp', Errno.EINVAL, 'PD is deallocated');
    const qp = new SrQp(this, init);
    this.qps.add(qp);
    return qp;
  }

  /** Closes the QPs and MRs of this PD, then the PD. Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const qp of [...this.qps]) qp.close();
    for (const mr of [...this.mrs]) mr.close();
    this.closed = true;
    this.context.forgetPd(this);
  }
}

/**
 * Resolves remote accesses of one context: `resolve` returns the MR and leaves the byte offset
 * inside `mr.buf` in `offset`, or returns undefined when the access must be refused.
 */
export class MrTable {
  private readonly slots: (SrMr | undefined)[] = [undefined];
  private readonly freeSlots: number[] = [];
  private variant = 0;
  /** Output of `resolve`: offset inside the MR's buffer. */
  offset = 0;

  add(make: (key: number) => SrMr, maxMr: number): SrMr {
    let idx = this.freeSlots.pop();
    if (idx === undefined) {
      idx = this.slots.length;
      if (idx > maxMr || idx > 0xffffff) throw new VerbsError('reg_mr', Errno.ENOMEM, 'too many memory regions');
      this.slots.push(undefined);
    }
    this.variant = (this.variant + 0x5b) & 0xff;
    const key = ((idx << 8) | this.variant) >>> 0;
    const mr = make(key);
    this.slots[idx] = mr;
    return mr;
  }

  remove(mr: SrMr): void {
    const idx = mr.rkey >>> 8;
    if (this.slots[idx] === mr) {
      this.slots[idx] = undefined;
      this.freeSlots.push(idx);
    }
  }

  get count(): number {
    return this.slots.length - 1 - this.freeSlots.length;
  }

  /** An rkey access of `len` bytes at (vaHi, vaLo) needing `access` by a QP of `pd`. */
  resolve(pd: SrPd, rkey: number, vaHi: number, vaLo: number, len: number, access: number): SrMr | undefined {
    const mr = this.slots[rkey >>> 8];
    if (mr === undefined || mr.rkey !== rkey || mr.closed || mr.pd !== pd) return undefined;
    if ((mr.access & access) !== access) return undefined;
    if (vaHi >= MAX_HI) return undefined;
    const off = vaHi * TWO32 + vaLo - mr.addr;
    if (off < 0 || off + len > mr.length) return undefined;
    this.offset = mr.offset + off;
    return mr;
  }
}
