/** Errors of the net layer: every one an SmcError with a stable code (docs/errors.md lists them). */
import { SmcError } from '@smc-r/wire';

export const NetErrorCode = {
  /** An address, prefix, port or policy rule that does not parse. */
  BAD_ADDRESS: 'ERR_SMC_NET_BAD_ADDRESS',
  /** A policy rule that is malformed (not an address problem). */
  BAD_POLICY: 'ERR_SMC_NET_BAD_POLICY',
  /** A negotiator option out of range or of the wrong type. */
  BAD_OPTION: 'ERR_SMC_NET_BAD_OPTION',
  /** The chosen negotiation mode cannot do what was asked (e.g. saved-syn on a client). */
  MODE: 'ERR_SMC_NET_MODE',
  /** The negotiator was used after close(). */
  CLOSED: 'ERR_SMC_NET_CLOSED',
} as const;
export type NetErrorCode = (typeof NetErrorCode)[keyof typeof NetErrorCode];

export class NetError extends SmcError {
  constructor(code: NetErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
