/**
 * Registrable memory of the mem provider: Buffers carved out of the fabric arena, each with a
 * synthetic 64-bit address.
 *
 * Addresses: block k of device d starts at hi = addrHiBase + (d << 12) + 2k (addrHiBase defaults
 * to 0x7f00, i.e. 0x7f00_xxxx_xxxx like user-space mappings), lo = 0x0010_0000 for even k and
 * 0xffff_0000 for odd k, so every odd block larger than 64 KiB straddles a 2^32 boundary and the
 * engine's (hi, lo) arithmetic must carry. With addrHiBase 0xffff8880 the addresses look like
 * kernel direct-map addresses (above 2^53), which no Number can hold. (k wraps at 2048 and hi at
 * 2^32; overlapping addresses of different blocks are harmless, since an address is always
 * resolved through the MR its rkey names.)
 */
import { Errno, VerbsError } from '../errors.js';
import type { MemoryBlock } from '../types.js';
import { Arena } from './arena.js';
import type { MemDevice } from './device.js';
import type { MemFabric } from './fabric.js';

const TWO_32 = 4294967296;

export class MemBlock implements MemoryBlock {
  readonly buffer: Buffer;
  readonly addrHi: number;
  readonly addrLo: number;
  /** @internal Offset of byte 0 in the fabric arena. */
  readonly arenaStart: number;
  /** @internal MRs registered on this block and not yet closed. */
  mrCount = 0;
  private readonly size: number;
  private freed = false;

  constructor(readonly fabric: MemFabric, device: MemDevice, readonly length: number) {
    this.size = Arena.roundUp(length);
    const start = fabric.arena.alloc(this.size);
    if (start < 0) throw new VerbsError('alloc_memory', Errno.ENOMEM, `arena full (${fabric.arena.bytesInUse} of ${fabric.arena.maxBytes} bytes in use)`);
    this.arenaStart = start;
    this.buffer = Buffer.from(fabric.arena.ab, start, length);
    const k = device.blockCount++ & 0x7ff;
    this.addrHi = (fabric.addrHiBase + (device.index << 12) + 2 * k) >>> 0;
    this.addrLo = k % 2 === 1 ? 0xffff0000 : 0x00100000;
  }

  get isFreed(): boolean {
    return this.freed;
  }

  /**
   * Returns the memory to the arena (it is zeroed; the Buffer must not be used afterwards, as
   * with freed native memory). Refuses (EBUSY) while MRs are registered on it. Idempotent.
   */
  free(): void {
    if (this.freed) return;
    if (this.mrCount > 0) throw new VerbsError('dereg_mr', Errno.EBUSY, `free(): ${this.mrCount} MR(s) still registered on this memory block`);
    this.freed = true;
    this.fabric.arena.free(this.arenaStart, this.size);
  }
}

/** (hi, lo) + offset, carrying into hi. */
export function addAddr(hi: number, lo: number, offset: number): { hi: number; lo: number } {
  const sum = lo + offset;
  return { hi: (hi + Math.floor(sum / TWO_32)) >>> 0, lo: sum % TWO_32 >>> 0 };
}

/**
 * Offset of (hi, lo) from (baseHi, baseLo), or -1 when the address lies below the base or 2^32 or
 * more above it. Exact: every intermediate value stays below 2^34.
 */
export function addrOffset(hi: number, lo: number, baseHi: number, baseLo: number): number {
  const dHi = (hi >>> 0) - (baseHi >>> 0);
  let off: number;
  if (dHi === 0) off = (lo >>> 0) - (baseLo >>> 0);
  else if (dHi === 1) off = (lo >>> 0) + TWO_32 - (baseLo >>> 0);
  else return -1;
  return off < 0 || off >= TWO_32 ? -1 : off;
}
