/**
 * Error classes shared by every smc-r layer. Callers match on the stable string `code`
 * (never on the message text); the numeric SMC reason codes live in `reasons.ts`.
 */

/** Base of every error smc-r throws on purpose. */
export class SmcError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Stable codes of {@link WireError}. */
export const WireErrorCode = {
  /** Fewer bytes than the message (or one of its parts) needs. */
  TRUNCATED: 'ERR_SMC_WIRE_TRUNCATED',
  /** Leading CLC eyecatcher is neither "SMCR" nor "SMCD" in EBCDIC. */
  BAD_EYECATCHER: 'ERR_SMC_WIRE_BAD_EYECATCHER',
  /** Trailing CLC eyecatcher is wrong. */
  BAD_TRAILER: 'ERR_SMC_WIRE_BAD_TRAILER',
  /** A length field disagrees with the bytes or with the lengths the kernel accepts. */
  BAD_LENGTH: 'ERR_SMC_WIRE_BAD_LENGTH',
  /** Type byte names no message we know. */
  UNKNOWN_TYPE: 'ERR_SMC_WIRE_UNKNOWN_TYPE',
  /** Version field is not one we can decode. */
  BAD_VERSION: 'ERR_SMC_WIRE_BAD_VERSION',
  /** A field holds a value outside its legal range (decode) or cannot be represented (encode). */
  BAD_VALUE: 'ERR_SMC_WIRE_BAD_VALUE',
  /** Well-formed, but a part we do not implement (SMC-D parts, for example). */
  UNSUPPORTED: 'ERR_SMC_WIRE_UNSUPPORTED',
  /** The caller's output buffer is too small for the encoded message. */
  BUFFER_TOO_SMALL: 'ERR_SMC_WIRE_BUFFER_TOO_SMALL',
  /** A checksum (ICRC, IP header checksum) does not verify. */
  BAD_CHECKSUM: 'ERR_SMC_WIRE_BAD_CHECKSUM',
} as const;
export type WireErrorCode = (typeof WireErrorCode)[keyof typeof WireErrorCode];

/**
 * A codec refused bytes (decode) or a message (encode). `offset` is the absolute byte offset
 * in the buffer where the problem was found; `msgType` names the message being processed.
 */
export class WireError extends SmcError {
  declare readonly code: WireErrorCode;
  readonly offset: number;
  readonly msgType: string | undefined;

  constructor(code: WireErrorCode, message: string, offset: number, msgType?: string) {
    super(code, `${msgType ? `${msgType}: ` : ''}${message} (at byte ${offset})`);
    this.offset = offset;
    this.msgType = msgType;
  }
}

/** Throws TRUNCATED unless `[off, off + n)` lies inside `[0, end)`. */
export function need(end: number, off: number, n: number, msgType: string): void {
  if (off + n > end) {
    throw new WireError(WireErrorCode.TRUNCATED, `needs ${n} bytes, ${Math.max(0, end - off)} left`, off, msgType);
  }
}

/** Throws BUFFER_TOO_SMALL unless `n` bytes fit at `off` in `buf`. */
export function room(buf: Uint8Array, off: number, n: number, msgType: string): void {
  if (off < 0 || off + n > buf.length) {
    throw new WireError(WireErrorCode.BUFFER_TOO_SMALL, `needs ${n} bytes of output, buffer has ${Math.max(0, buf.length - off)}`, off, msgType);
  }
}

/** Throws BAD_VALUE unless `v` is an integer in `[0, max]`. */
export function checkUint(v: number, max: number, field: string, msgType: string, off: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new WireError(WireErrorCode.BAD_VALUE, `${field} = ${v} is not an integer in 0..${max}`, off, msgType);
  }
}
