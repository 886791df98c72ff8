/**
 * The one error class of @smc-r/capture. Callers match on the stable `code`; `offset` is the
 * absolute byte offset (in the capture file for the readers, in the frame for the dissector).
 */
import { SmcError } from '@smc-r/wire';

/** Stable codes of {@link CaptureError}. */
export const CaptureErrorCode = {
  /** The file starts with neither a pcap magic number nor a pcapng Section Header Block. */
  BAD_MAGIC: 'ERR_SMC_CAPTURE_BAD_MAGIC',
  /** The file (or a frame) ends inside a header, record or block. */
  TRUNCATED: 'ERR_SMC_CAPTURE_TRUNCATED',
  /** A record or block length disagrees with the bytes (pcapng trailer length, caplen > origlen, ...). */
  BAD_RECORD: 'ERR_SMC_CAPTURE_BAD_RECORD',
  /** A pcap major version other than 2 or a pcapng major version other than 1. */
  BAD_VERSION: 'ERR_SMC_CAPTURE_BAD_VERSION',
  /** A pcapng packet refers to an interface no Interface Description Block defined. */
  BAD_INTERFACE: 'ERR_SMC_CAPTURE_BAD_INTERFACE',
  /** The dissector has no decoder for this link type. */
  UNSUPPORTED_LINK_TYPE: 'ERR_SMC_CAPTURE_UNSUPPORTED_LINK_TYPE',
  /** A packet header holds impossible values (IPv4 IHL < 5, TCP data offset < 5, lengths that do not fit). */
  MALFORMED: 'ERR_SMC_CAPTURE_MALFORMED',
  /** A builder or writer was given a value it cannot put on the wire. */
  BAD_VALUE: 'ERR_SMC_CAPTURE_BAD_VALUE',
} as const;
export type CaptureErrorCode = (typeof CaptureErrorCode)[keyof typeof CaptureErrorCode];

export class CaptureError extends SmcError {
  declare readonly code: CaptureErrorCode;
  readonly offset: number;
  /** What was being read: `pcap`, `pcapng`, `ethernet`, `ipv4`, `tcp`, ... */
  readonly layer: string;

  constructor(code: CaptureErrorCode, message: string, offset: number, layer: string) {
    super(code, `${layer}: ${message} (at byte ${offset})`);
    this.offset = offset;
    this.layer = layer;
  }
}

/** Throws TRUNCATED unless `[off, off + n)` lies inside `[0, end)`. */
export function needBytes(end: number, off: number, n: number, layer: string): void {
  if (off + n > end) {
    throw new CaptureError(CaptureErrorCode.TRUNCATED, `needs ${n} bytes, ${Math.max(0, end - off)} left`, off, layer);
  }
}

/** Throws BAD_VALUE unless `v` is an integer in `[0, max]`. */
export function checkRange(v: number, max: number, field: string, layer: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new CaptureError(CaptureErrorCode.BAD_VALUE, `${field} = ${v} is not an integer in 0..${max}`, 0, layer);
  }
}
