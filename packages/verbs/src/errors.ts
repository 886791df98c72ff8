/**
 * VerbsError: a verb failed. Like rust-ibverbs, the error names the verb (`modify_qp`,
 * `post_send`, ...) and carries the errno a libibverbs call would have returned, so the engine
 * treats every provider the same. Work-request failures are not errors: they are completions with
 * a status (WcStatus).
 */
import { SmcError } from '@smc-r/wire';

export const VerbsErrorCode = {
  /** A verb returned an errno. */
  VERB: 'ERR_SMC_VERBS',
  /** libibverbs (or another provider dependency) is not available on this machine. */
  UNAVAILABLE: 'ERR_SMC_VERBS_UNAVAILABLE',
  /** No such device. */
  NO_DEVICE: 'ERR_SMC_VERBS_NO_DEVICE',
} as const;
export type VerbsErrorCode = (typeof VerbsErrorCode)[keyof typeof VerbsErrorCode];

/** errno values the verbs use (Linux numbering). */
export const Errno = { EPERM: 1, ENOENT: 2, EIO: 5, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EINVAL: 22, ENOSPC: 28, EOPNOTSUPP: 95, EADDRINUSE: 98, ENODEV: 19 } as const;

export type VerbName =
  | 'get_device_list' | 'open_device' | 'close_device' | 'query_device' | 'query_port' | 'query_gid'
  | 'alloc_pd' | 'dealloc_pd' | 'reg_mr' | 'dereg_mr' | 'alloc_memory'
  | 'create_cq' | 'destroy_cq' | 'poll_cq' | 'req_notify_cq'
  | 'create_qp' | 'modify_qp' | 'query_qp' | 'destroy_qp' | 'post_send' | 'post_recv'
  // librdmacm (iWARP connection setup, bindings/ibverbs rdmacm.ts)
  | 'rdma_create_event_channel' | 'rdma_create_id' | 'rdma_bind_addr' | 'rdma_listen'
  | 'rdma_resolve_addr' | 'rdma_resolve_route' | 'rdma_connect' | 'rdma_accept' | 'rdma_reject'
  | 'rdma_disconnect' | 'rdma_get_cm_event' | 'rdma_destroy_id';

export class VerbsError extends SmcError {
  readonly verb: VerbName;
  readonly errno: number;

  constructor(verb: VerbName, errno: number, message: string, options?: { code?: VerbsErrorCode; cause?: unknown }) {
    super(options?.code ?? VerbsErrorCode.VERB, `${verb}: ${message} (errno ${errno})`, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.verb = verb;
    this.errno = errno;
  }
}
