/**
 * @smc-r/verbs: the verbs interface every RDMA provider implements, and the software providers.
 */
export * from './types.js';
export * from './errors.js';
export * from './mem/index.js';
export * from './softroce/index.js';
