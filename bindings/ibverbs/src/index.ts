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
export { buildTestDevice, testDeviceMissing, TEST_DEVICE_SOURCE, type TestDevice } from './test-device.js';
export type * from './handles.js';
