/** The mem provider (in-process fabric). */
export { MemProvider } from './provider.js';
export type { MemProviderOptions } from './provider.js';
export { MemContext } from './context.js';
export type { MemCounters } from './device.js';
export { MEM_DEVICE_LIMITS } from './device.js';
export { RNR_TIMER_US, ackTimeoutMs, rnrDelayMs } from './timing.js';
