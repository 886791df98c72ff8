/**
 * mem memory region: a registered window of a MemBlock with an lkey/rkey. As on rxe and mlx5 the
 * two keys are equal: (table index << 8) | an 8-bit variant that changes with every registration,
 * so a stale key of a deregistered MR does not name its successor. Keys are per device.
 */
import { Errno, VerbsError } from '../errors.js';
import type { Lkey, Mr, Rkey } from '../types.js';
import { Access } from '../types.js';
import type { MemDevice } from './device.js';
import { MEM_DEVICE_LIMITS } from './device.js';
import { addAddr, MemBlock } from './memory.js';
import type { MemPd } from './pd.js';

const ALL_ACCESS = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ;

export class MemMr implements Mr {
  readonly lkey: Lkey;
  readonly rkey: Rkey;
  readonly addrHi: number;
  readonly addrLo: number;
  /** @internal Offset of the region's first byte in the fabric arena. */
  readonly abs: number;
  /** @internal False once deregistered. */
  registered = true;

  constructor(
    readonly pd: MemPd,
    private readonly device: MemDevice,
    readonly block: MemBlock,
    readonly offset: number,
    readonly length: number,
    readonly access: number,
  ) {
    const key = device.allocMrKey(this);
    this.lkey = key as Lkey;
    this.rkey = key as Rkey;
    const a = addAddr(block.addrHi, block.addrLo, offset);
    this.addrHi = a.hi;
    this.addrLo = a.lo;
    this.abs = block.arenaStart + offset;
    block.mrCount++;
  }

  /** Argument checks of ibv_reg_mr (EINVAL), before anything is reserved. */
  static validate(pd: MemPd, block: unknown, offset: number, length: number, access: number): MemBlock {
    if (!(block instanceof MemBlock) || block.fabric !== pd.fabric) throw new VerbsError('reg_mr', Errno.EINVAL, 'the memory block was not allocated by this mem provider');
    if (block.isFreed) throw new VerbsError('reg_mr', Errno.EINVAL, 'the memory block is freed');
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 1 || offset + length > block.length) {
      throw new VerbsError('reg_mr', Errno.EINVAL, `region [${offset}, ${offset}+${length}) is not inside the ${block.length}-byte block`);
    }
    if (length > MEM_DEVICE_LIMITS.maxMrSize) throw new VerbsError('reg_mr', Errno.EINVAL, `length ${length} exceeds maxMrSize`);
    if (!Number.isInteger(access) || (access & ~ALL_ACCESS) !== 0) throw new VerbsError('reg_mr', Errno.EINVAL, `unknown access flags 0x${access.toString(16)}`);
    // ibv_reg_mr(3): remote write requires local write.
    if ((access & Access.REMOTE_WRITE) !== 0 && (access & Access.LOCAL_WRITE) === 0) {
      throw new VerbsError('reg_mr', Errno.EINVAL, 'REMOTE_WRITE requires LOCAL_WRITE');
    }
    return block;
  }

  close(): void {
    if (!this.registered) return;
    this.registered = false;
    this.device.freeMrKey(this.lkey);
    this.block.mrCount--;
    this.pd.forgetMr(this);
  }
}
