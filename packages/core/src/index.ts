/** @smc-r/core: the SMC-R engine. */
export * from './constants.js';
export * from './states.js';
export * from './errors.js';
export { CloseMachine, closeDrainTimeout, type CloseAction, type CloseMachineOptions, type CloseTcp, type CloseErrno, type SendErrno, type PeerConnFlags, type PendingClose, type CloseEventName } from './close.js';
export * from './clc-config.js';
export * from './clc.js';
export * from './lgr-match.js';
export * from './iwarp.js';
export {
  ConnState, UrgState, rmbeUpdateLimit, isRingSize, SOCK_MIN_SNDBUF_HALF, RING_SIZE_MIN, RING_SIZE_MAX, cursorDiffLarge,
  cursorWithinRing, cursorDistance, ringMark, markDistance, cursorCopy, type ConnStateOptions, type UrgStateValue,
} from './conn-state.js';
export { SmcTx, TxFlush, newTxTransfer, type TxTransfer, type TxWrite, type TxSge, type TxFlushValue, type SmcTxOptions } from './tx.js';
export { SmcRx, type CdcRxResult, type CdcVerdict, type SmcRxOptions } from './rx.js';
export { SmcEngine, type SmcEngineOptions, type SmcOutcome, type HandshakeOptions } from './engine.js';
export { SmcConnection, type ConnBuffers, type ConnPeer, type ConnCounters, type SmcConnectionOptions } from './connection.js';
export { LinkGroup, type LgrCounters, type LinkGroupOptions } from './lgr.js';
export { Link, LinkState, type LinkLocalInfo, type LinkPeerInfo, type LinkOptions } from './link.js';
export { WrQueue, WR_MSG_SIZE, type WrHandlers, type WrQueueOptions } from './wr.js';
export { ClcChannel, type ClcWaitResult } from './clc-channel.js';
