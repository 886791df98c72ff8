/**
 * The verbs interface's QpConnector over librdmacm: what the SMC-R engine uses to bring a link's QP
 * up on an iWARP device. One listener on (address, port) serves every expected link; a request
 * whose private data no pending expectation accepts is rejected, and an expectation that sees no
 * request in time fails with ETIMEDOUT. The active side connects to the same port on the peer.
 */
import type { QpConnection, QpConnector } from '@smc-r/verbs';
import { CmErrno, RdmaCm, RdmaCmError, type CmListener, type CmRequest } from './rdmacm.js';

export interface CmQpConnectorOptions {
  /** The CM to use (one per process is enough). */
  readonly cm: RdmaCm;
  /** Local address to listen on: the iWARP device's IPv4 address. */
  readonly address: string;
  /**
   * The port both hosts listen on. iWARP shares the host's TCP port space: not the SMC service's
   * TCP port, and not 65500-65515 (Anolis reserves them for eRDMA's own out-of-band use).
   */
  readonly port: number;
}

interface Expectation {
  readonly match: (privateData: Buffer) => boolean;
  readonly qpNum: number;
  readonly resolve: (c: QpConnection) => void;
  readonly reject: (e: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

export class CmQpConnector implements QpConnector {
  readonly port: number;
  readonly #cm: RdmaCm;
  readonly #listener: CmListener;
  readonly #pending = new Set<Expectation>();
  #closed = false;

  constructor(opts: CmQpConnectorOptions) {
    this.#cm = opts.cm;
    this.#listener = opts.cm.listen(opts.address, opts.port);
    this.port = this.#listener.port;
    this.#listener.onRequest((req) => this.#onRequest(req));
  }

  #onRequest(req: CmRequest): void {
    for (const x of this.#pending) {
      if (!x.match(req.privateData)) continue;
      this.#pending.delete(x);
      clearTimeout(x.timer);
      req.accept(x.qpNum).then(x.resolve, x.reject);
      return;
    }
    req.reject();
  }

  connect(o: { address: string; sourceAddress?: string; qpNum: number; privateData: Uint8Array; timeoutMs: number }): Promise<QpConnection> {
    if (this.#closed) return Promise.reject(new RdmaCmError('rdma_connect', CmErrno.ECANCELED, 'the connector is closed'));
    return this.#cm.connect({
      address: o.address, port: this.port, qpNum: o.qpNum, privateData: o.privateData, timeoutMs: o.timeoutMs,
      ...(o.sourceAddress !== undefined ? { sourceAddress: o.sourceAddress } : {}),
    });
  }

  expect(o: { match: (privateData: Buffer) => boolean; qpNum: number; timeoutMs: number }): Promise<QpConnection> {
    if (this.#closed) return Promise.reject(new RdmaCmError('rdma_accept', CmErrno.ECANCELED, 'the connector is closed'));
    return new Promise((resolve, reject) => {
      const x: Expectation = {
        match: o.match, qpNum: o.qpNum, resolve, reject,
        timer: setTimeout(() => {
          this.#pending.delete(x);
          reject(new RdmaCmError('rdma_accept', CmErrno.ETIMEDOUT, `no connect request for QP ${o.qpNum} within ${o.timeoutMs} ms`));
        }, o.timeoutMs),
      };
      this.#pending.add(x);
    });
  }

  /** Stops listening; pending expectations fail with ECANCELED. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const x of this.#pending) {
      clearTimeout(x.timer);
      x.reject(new RdmaCmError('rdma_accept', CmErrno.ECANCELED, 'the connector was closed'));
    }
    this.#pending.clear();
  }
}
