/** @smc-r/core: the SMC-R engine. */
export * from './constants.js';
export * from './states.js';
export * from './errors.js';
