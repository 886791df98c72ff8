/** @smc-r/core: the SMC-R engine. */
export * from './constants.js';
export * from './states.js';
export * from './errors.js';
export { CloseMachine, closeDrainTimeout, type CloseAction, type CloseMachineOptions, type CloseTcp, type CloseErrno, type SendErrno, type PeerConnFlags, type PendingClose, type CloseEventName } from './close.js';
