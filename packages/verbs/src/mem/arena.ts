/**
 * The fabric's memory arena: every MemoryBlock the mem provider hands out (and the inline-data
 * area of every QP) is a view into one resizable ArrayBuffer. A copy between two registered
 * regions is then `Uint8Array.prototype.copyWithin` over the whole arena: a memmove that creates
 * no view object (Buffer.prototype.copy with a sub-range allocates a Uint8Array per call on
 * Node 20), so the data path allocates nothing.
 *
 * Allocation is page-granular (4096 bytes, like the page-aligned memory the libibverbs binding
 * registers) and first-fit over a sorted free list; freed ranges are zeroed and coalesced, so a
 * new block always starts zeroed. The ArrayBuffer reserves `maxBytes` of address space and commits
 * only what is used.
 */

export const PAGE_SIZE = 4096;

interface ResizableArrayBufferConstructor {
  new (byteLength: number, options: { maxByteLength: number }): ArrayBuffer;
}
interface ResizableArrayBuffer extends ArrayBuffer {
  resize(newByteLength: number): void;
  readonly maxByteLength: number;
}

export class Arena {
  readonly ab: ResizableArrayBuffer;
  /** Length-tracking view over the whole arena. */
  readonly u8: Uint8Array;
  /** End of the highest allocation. */
  private top = 0;
  /** Free ranges below `top`, sorted by start, never adjacent. */
  private readonly freeStart: number[] = [];
  private readonly freeEnd: number[] = [];
  private used = 0;

  constructor(readonly maxBytes: number) {
    const Ctor = ArrayBuffer as unknown as ResizableArrayBufferConstructor;
    this.ab = new Ctor(0, { maxByteLength: maxBytes }) as ResizableArrayBuffer;
    this.u8 = new Uint8Array(this.ab);
  }

  /** Bytes currently allocated (page-rounded). */
  get bytesInUse(): number {
    return this.used;
  }

  /** Page-rounded size for `length` bytes (at least one page). */
  static roundUp(length: number): number {
    return Math.max(PAGE_SIZE, Math.ceil(length / PAGE_SIZE) * PAGE_SIZE);
  }

  /** Reserves `size` bytes (a multiple of PAGE_SIZE); returns the start offset, or -1 when the arena is full. */
  alloc(size: number): number {
    for (let i = 0; i < this.freeStart.length; i++) {
      const s = this.freeStart[i]!;
      const e = this.freeEnd[i]!;
      if (e - s < size) continue;
      if (e - s === size) {
        this.freeStart.splice(i, 1);
        this.freeEnd.splice(i, 1);
      } else {
        this.freeStart[i] = s + size;
      }
      this.used += size;
      return s;
    }
    const start = this.top;
    const end = start + size;
    if (end > this.ab.maxByteLength) return -1;
    if (end > this.ab.byteLength) {
      const grown = Math.min(this.ab.maxByteLength, Math.max(end, this.ab.byteLength * 2));
      try {
        this.ab.resize(grown);
      } catch {
        return -1;
      }
    }
    this.top = end;
    this.used += size;
    return start;
  }

  /** Returns `[start, start+size)`, zeroed, to the free list. */
  free(start: number, size: number): void {
    this.u8.fill(0, start, start + size);
    this.used -= size;
    let end = start + size;
    let s = start;
    // Find the insertion point and merge with neighbours.
    let i = 0;
    while (i < this.freeStart.length && this.freeStart[i]! < s) i++;
    if (i > 0 && this.freeEnd[i - 1] === s) {
      s = this.freeStart[i - 1]!;
      this.freeStart.splice(i - 1, 1);
      this.freeEnd.splice(i - 1, 1);
      i--;
    }
    if (i < this.freeStart.length && this.freeStart[i] === end) {
      end = this.freeEnd[i]!;
      this.freeStart.splice(i, 1);
      this.freeEnd.splice(i, 1);
    }
    if (end === this.top) {
      this.top = s;
      return;
    }
    this.freeStart.splice(i, 0, s);
    this.freeEnd.splice(i, 0, end);
  }
}
