/**
 * SockopsError: every failure of the sock_ops binding, with a stable code. The message names what
 * is missing and how to fix it, so a caller can show it as is.
 */
import { SmcError } from '@smc-r/wire';

/** Stable codes of {@link SockopsError}. */
export const SockopsErrorCode = {
  /** Not root, and without CAP_BPF + CAP_NET_ADMIN (or CAP_SYS_ADMIN). */
  NOT_ROOT: 'ERR_SMC_SOCKOPS_NOT_ROOT',
  /** Root, but the capability set lacks what bpf(2) needs (a container, setpriv, systemd). */
  NO_CAP: 'ERR_SMC_SOCKOPS_NO_CAP',
  /** No cgroup v2 mount visible to this process, or the process is in no v2 hierarchy. */
  NO_CGROUP2: 'ERR_SMC_SOCKOPS_NO_CGROUP2',
  /** The cgroup cannot take a child with processes (EBUSY/EOPNOTSUPP: "no internal processes"). */
  CGROUP_BUSY: 'ERR_SMC_SOCKOPS_CGROUP_BUSY',
  /** The cgroup tree is not writable here (EACCES/EPERM/EROFS on mkdir or cgroup.procs). */
  CGROUP_ACCESS: 'ERR_SMC_SOCKOPS_CGROUP_ACCESS',
  /** The kernel or platform lacks what the program needs (Linux >= 5.10 with BPF, x64/arm64). */
  BPF_UNSUPPORTED: 'ERR_SMC_SOCKOPS_BPF_UNSUPPORTED',
  /** BTF, a map, the program or the attachment was refused; the message has the verifier log. */
  LOAD_FAILED: 'ERR_SMC_SOCKOPS_LOAD_FAILED',
  /** The koffi module (FFI to libc) could not be loaded. */
  NO_KOFFI: 'ERR_SMC_SOCKOPS_NO_KOFFI',
  /** An address that is not a literal IPv4 or IPv6 address. */
  BAD_ADDRESS: 'ERR_SMC_SOCKOPS_BAD_ADDRESS',
  /** A port that is not an integer in 1..65535. */
  BAD_PORT: 'ERR_SMC_SOCKOPS_BAD_PORT',
  /** An option of open() that is not valid (cgroupName). */
  BAD_OPTION: 'ERR_SMC_SOCKOPS_BAD_OPTION',
  /** Not a connected/listening TCP socket with an fd (or the fd is not a socket). */
  BAD_SOCKET: 'ERR_SMC_SOCKOPS_BAD_SOCKET',
  /** The offer or listen map is full. */
  MAP_FULL: 'ERR_SMC_SOCKOPS_MAP_FULL',
  /** A program is already open in this process (one per process: it owns the process's cgroup). */
  ALREADY_OPEN: 'ERR_SMC_SOCKOPS_ALREADY_OPEN',
  /** The program was closed. */
  CLOSED: 'ERR_SMC_SOCKOPS_CLOSED',
} as const;
export type SockopsErrorCode = (typeof SockopsErrorCode)[keyof typeof SockopsErrorCode];

export class SockopsError extends SmcError {
  declare readonly code: SockopsErrorCode;
  /** The errno name (EPERM, EBUSY, ...) of the system call that failed, if one did. */
  readonly errno: string | undefined;

  constructor(code: SockopsErrorCode, message: string, options?: { cause?: unknown; errno?: string }) {
    super(code, message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.errno = options?.errno;
  }
}
