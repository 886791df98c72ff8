/** A memory region: ibv_reg_mr over [offset, offset+length) of a NativeMemoryBlock. */
import { Errno, VerbsError, type Lkey, type Mr, type Rkey } from '@smc-r/verbs';
import type { MrPtr } from './handles.js';
import { OFF } from './layout.js';
import { errnoOf, lastErrno, readU32, type VerbsLib } from './native.js';
import type { NativeMemoryBlock } from './memory.js';
import type { IbvPd } from './pd.js';

export class IbvMr implements Mr {
  readonly pd: IbvPd;
  readonly block: NativeMemoryBlock;
  readonly offset: number;
  readonly length: number;
  readonly lkey: Lkey;
  readonly rkey: Rkey;
  readonly addrHi: number;
  readonly addrLo: number;
  readonly access: number;
  readonly #lib: VerbsLib;
  #ptr: MrPtr | null;

  constructor(lib: VerbsLib, pd: IbvPd, block: NativeMemoryBlock, offset: number, length: number, access: number) {
    if (block.freed) throw new VerbsError('reg_mr', Errno.EINVAL, 'the memory block was freed');
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || offset + length > block.length) {
      throw new VerbsError('reg_mr', Errno.EINVAL, `[${offset}, ${offset + length}) is not inside the ${block.length}-byte block`);
    }
    const addr = block.ptr + BigInt(offset);
    const ptr = lib.reg_mr(pd.ptr, addr, length, access);
    if (ptr === null) throw new VerbsError('reg_mr', lastErrno(), `ibv_reg_mr(${length} bytes, access 0x${access.toString(16)}) failed`);
    this.#lib = lib;
    this.#ptr = ptr;
    this.pd = pd;
    this.block = block;
    this.offset = offset;
    this.length = length;
    this.access = access;
    this.lkey = readU32(ptr, OFF.mr_lkey) as Lkey;
    this.rkey = readU32(ptr, OFF.mr_rkey) as Rkey;
    this.addrHi = Number(addr >> 32n);
    this.addrLo = Number(addr & 0xffffffffn);
    block.mrs++;
  }

  get closed(): boolean {
    return this.#ptr === null;
  }

  close(): void {
    const p = this.#ptr;
    if (p === null) return;
    const rc = this.#lib.dereg_mr(p);
    if (rc !== 0) throw new VerbsError('dereg_mr', errnoOf(rc), 'ibv_dereg_mr failed');
    this.#ptr = null;
    this.block.mrs--;
    this.pd.forget(this);
  }
}
