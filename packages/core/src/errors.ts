/** Engine errors: every one an SmcError with a stable code (docs/errors.md lists them). */
import { SmcError } from '@smc-r/wire';

export const EngineErrorCode = {
  /** An event that the state machine does not allow in the current state. */
  STATE: 'ERR_SMC_STATE',
  /** The peer broke the protocol (unexpected CLC/LLC message, bad value). */
  PROTOCOL: 'ERR_SMC_PROTOCOL',
  /** A CLC or LLC wait ran out. */
  TIMEOUT: 'ERR_SMC_TIMEOUT',
  /** The connection was aborted locally (link down, link group terminated). */
  ABORTED: 'ERR_SMC_ABORTED',
  /** The peer aborted the connection (CDC peer_conn_abort). */
  RESET: 'ERR_SMC_RESET',
  /** A bounded queue is full. */
  QUEUE_FULL: 'ERR_SMC_QUEUE_FULL',
} as const;
export type EngineErrorCode = (typeof EngineErrorCode)[keyof typeof EngineErrorCode];

export class EngineError extends SmcError {
  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** An illegal (state, event) pair: names both, per the style guide. */
export class StateError extends EngineError {
  readonly state: string;
  readonly event: string;
  constructor(state: string, event: string) {
    super(EngineErrorCode.STATE, `event ${event} is not allowed in state ${state}`);
    this.state = state;
    this.event = event;
  }
}
