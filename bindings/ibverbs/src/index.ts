/**
 * @smc-r/ibverbs: the verbs interface of @smc-r/verbs over libibverbs through koffi, for real
 * RNICs (eRDMA, ConnectX RoCE, rxe). See README.md for what is verified and how.
 */
export { IbverbsProvider, type IbverbsProviderOptions } from './provider.js';
export { IbvContext, type IbvContextOptions } from './context.js';
export { IbvPd } from './pd.js';
export { IbvMr } from './mr.js';
export { IbvCq, POLL_BATCH } from './cq.js';
export { IbvQp } from './qp.js';
export { NativeMemoryBlock } from './memory.js';
export { DEFAULT_LIBRARY, loadVerbs, type VerbsLib, type ContextOps } from './native.js';
export { OFF, IBV, LAYOUT_C, layoutValues } from './layout.js';
export { buildTestDevice, testDeviceMissing, testRdmacmMissing, TEST_DEVICE_SOURCE, TEST_RDMACM_SOURCE, type TestDevice } from './test-device.js';
export {
  RdmaCm, RdmaCmError, CmErrno, CM_MAX_CONNECT_PRIVATE_DATA, CM_MAX_ACCEPT_PRIVATE_DATA, DEFAULT_RDMACM_LIBRARY,
  type CmVerb, type CmDevice, type CmEndpoint, type CmConnectOptions, type CmListener, type CmRequest, type CmConnection, type RdmaCmOptions,
} from './rdmacm.js';
export { CM_OFF, CM, CM_EVENT_NAME, CM_LAYOUT_C, cmLayoutValues } from './rdmacm-layout.js';
export type * from './handles.js';
export { CmQpConnector, type CmQpConnectorOptions } from './cm-connector.js';
