/**
 * Incremental CLC reader for the TCP byte stream, in the style of pg-protocol's parser: `push(chunk)`
 * returns the complete messages and keeps any partial one (spec 3.2, style guide 5). No I/O, no timers.
 *
 * Bounds: a header announcing more than `maxLength` (or less than 12) bytes is refused with BAD_LENGTH
 * before anything of that message is buffered; a partial message is therefore never more than `maxLength`.
 *
 * Fallback support: bytes that are not CLC must reach the application. So the reader never drops bytes it
 * could not decode: when it throws (BAD_EYECATCHER for a peer not speaking CLC, or any decode error), the
 * offending bytes stay buffered and `takeRemaining()` returns them. Offsets in errors thrown by `push()`
 * are relative to the first byte `takeRemaining()` would return.
 *
 * A Decline ends the CLC exchange (both sides continue with plain TCP, spec 3.6.1), so after a Decline the
 * reader stops parsing: later bytes (even in the same chunk) are kept for `takeRemaining()`, and `done`
 * becomes true.
 */
import { WireError, WireErrorCode } from './errors.js';
import { CLC_MIN_LENGTH, ClcLength, peekClcHeader } from './clc-common.js';
import { type ClcMessage, decodeClc } from './clc.js';

/** Options of {@link ClcReader}. */
export interface ClcReaderOptions {
  /**
   * Largest message length accepted (12..65535). Default {@link ClcLength.PROPOSAL_MAX} (652), the largest
   * valid Proposal; SMC-R Accept/Confirm as sent by Linux are at most 196 bytes.
   */
  readonly maxLength?: number;
}

const EMPTY = Buffer.alloc(0);

/** Splits a TCP byte stream into CLC messages. */
export class ClcReader {
  /** Largest message length this reader buffers. */
  readonly maxLength: number;
  /** Unconsumed bytes (an owned copy, never the caller's chunk). */
  private pending: Buffer = EMPTY;
  private declined = false;

  constructor(options: ClcReaderOptions = {}) {
    const max = options.maxLength ?? ClcLength.PROPOSAL_MAX;
    if (!Number.isInteger(max) || max < CLC_MIN_LENGTH || max > 0xffff) {
      throw new WireError(WireErrorCode.BAD_VALUE, `maxLength = ${max} is not an integer in ${CLC_MIN_LENGTH}..65535`, 0, 'CLC reader');
    }
    this.maxLength = max;
  }

  /** True once a Decline was returned: later bytes are application data, left for takeRemaining(). */
  get done(): boolean {
    return this.declined;
  }

  /** Number of bytes buffered and not yet returned as messages. */
  get bufferedLength(): number {
    return this.pending.length;
  }

  /**
   * Adds `chunk` and returns every message now complete, in order. If a message fails to decode after
   * others in the same call succeeded, those are returned and the error is raised by the next `push()`
   * (an empty chunk re-examines the buffer). Throws WireError (see the module doc); the bytes stay buffered.
   */
  push(chunk: Buffer): ClcMessage[] {
    const data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.declined) {
      this.keep(data, 0, data !== chunk);
      return [];
    }
    const out: ClcMessage[] = [];
    let pos = 0;
    try {
      while (pos < data.length) {
        // Work on a view starting at the message, so error offsets are relative to takeRemaining().
        const view = data.subarray(pos);
        const h = peekClcHeader(view, 0, view.length);
        if (h === undefined) break;
        if (h.length < CLC_MIN_LENGTH || h.length > this.maxLength) {
          throw new WireError(WireErrorCode.BAD_LENGTH, `header announces ${h.length} bytes, accepted are ${CLC_MIN_LENGTH}..${this.maxLength}`, 5, 'CLC');
        }
        if (view.length < h.length) break;
        const msg = decodeClc(view, 0, h.length);
        out.push(msg);
        pos += h.length;
        if (msg.type === 'decline') {
          this.declined = true;
          break;
        }
      }
    } catch (err) {
      this.keep(data, pos, data !== chunk);
      if (out.length > 0 && err instanceof WireError) return out;
      throw err;
    }
    this.keep(data, pos, data !== chunk);
    return out;
  }

  /** Returns the bytes buffered after the last complete message and clears the buffer. */
  takeRemaining(): Buffer {
    const rest = this.pending;
    this.pending = EMPTY;
    return rest;
  }

  /** Keeps `data[pos..]`; copies unless `data` is already a private buffer. */
  private keep(data: Buffer, pos: number, owned: boolean): void {
    if (pos >= data.length) this.pending = EMPTY;
    else if (owned && pos === 0) this.pending = data;
    else this.pending = Buffer.from(data.subarray(pos));
  }
}
