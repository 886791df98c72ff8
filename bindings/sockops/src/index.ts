/**
 * @smc-r/sockops: the eBPF sock_ops program that writes the SMC TCP option (kind 254, ExID
 * E2D4C3D9) into SYN and SYN-ACK for the destinations and ports a process opts in, its loader
 * (raw bpf(2) through koffi: no libbpf, no clang at run time), the per-socket "peer signalled
 * SMC" record, and the BPF-free TCP_SAVE_SYN check for servers.
 */
export { SockopsError, SockopsErrorCode } from './errors.js';
export { sockopsAvailability, type SockopsAvailability } from './availability.js';
export { SmcOptionProgram, type SmcOptionProgramOptions } from './program.js';
export type { PeerState } from './keys.js';
export { saveSyn, savedSynOffersSmc } from './saved-syn.js';
