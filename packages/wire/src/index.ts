/**
 * @smc-r/wire: pure codecs for every SMC-R message. No sockets, no timers, no global state.
 * Encoders write into a caller-provided buffer and return the new offset; decoders return
 * readonly typed messages or throw {@link WireError}.
 */
export * from './errors.js';
export * from './bytes.js';
export * from './tcp-option.js';
export * from './clc.js';
export * from './clc-reader.js';
export * from './llc.js';
export * from './cdc.js';
export * from './reasons.js';
export * from './bufsize.js';
export * from './roce.js';
export * from './link-message.js';
