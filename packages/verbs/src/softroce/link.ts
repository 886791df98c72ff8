/**
 * The datagram link under a softroce device: one unconnected UDP socket bound to the device's
 * address and port (rxe-interop.md 2.1: the receive socket must be bound to 4791 and must not be
 * connected). A `DatagramLink` is all the device needs, so unit tests can run the transport over
 * an in-memory network with a manual clock instead (`MemNetwork`, test-only).
 */
import dgram from 'node:dgram';
import { Errno, VerbsError, VerbsErrorCode } from '../errors.js';
import type { Clock } from './clock.js';
import { setPmtuDiscoverDo } from './native-socket.js';

/** Called for every datagram received: `buf[0, len)` is the UDP payload, valid during the call. */
export type DatagramReceiver = (buf: Buffer, len: number, srcIp: string, srcPort: number) => void;

export interface DatagramLink {
  /** Sends `buf[0, len)`. Returns true when `buf` may be reused at once (the data left the process). */
  send(buf: Buffer, len: number, ip: string, port: number): boolean;
  /** Sends still queued in the link (their buffers are still in use). */
  readonly queued: number;
  /**
   * How the IPv4 header of our datagrams is known (the ICRC covers its ID and flags): 'id0-df' when
   * the link made Linux send DF + ID 0 itself, undefined when unknown (an inherited fd: the launcher's
   * business; in-memory links: no IP header).
   */
  readonly ipHeader?: 'id0-df' | 'kernel-id' | undefined;
  /** Why `ipHeader` is 'kernel-id' (the socket option could not be set). */
  readonly ipHeaderNote?: string | undefined;
  close(): Promise<void>;
}

export interface LinkConfig {
  readonly deviceName: string;
  readonly ip: string;
  readonly port: number;
  /** An already created UDP socket descriptor to use instead of binding a new one. */
  readonly fd?: number | undefined;
  /**
   * Set IP_MTU_DISCOVER = IP_PMTUDISC_DO on a socket the link creates itself (default true), so
   * Linux sends DF + IP ID 0, the header the ICRC is computed over (native-socket.ts).
   */
  readonly pmtuDiscoverDo?: boolean | undefined;
  readonly recvBufferSize: number;
  readonly sendBufferSize: number;
  /** Called with errors the socket reports after open (send failures). */
  readonly onError: (err: Error) => void;
}

export type LinkFactory = (cfg: LinkConfig, receiver: DatagramReceiver) => Promise<DatagramLink>;

/** dgram resolves the destination through `lookup`; an IP literal resolves synchronously here, so send() is synchronous. */
function literalLookup(hostname: string, _options: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, hostname, 4);
}

class UdpLink implements DatagramLink {
  constructor(
    private readonly socket: dgram.Socket,
    readonly ipHeader: 'id0-df' | 'kernel-id' | undefined,
    readonly ipHeaderNote: string | undefined,
  ) {}

  send(buf: Buffer, len: number, ip: string, port: number): boolean {
    this.socket.send(buf, 0, len, port, ip);
    return this.socket.getSendQueueCount() === 0;
  }

  get queued(): number {
    return this.socket.getSendQueueCount();
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

/** Opens the UDP socket of a device. EADDRINUSE and friends become VerbsError('open_device'). */
export const udpLinkFactory: LinkFactory = (cfg, receiver) => {
  return new Promise<DatagramLink>((resolve, reject) => {
    const socket = dgram.createSocket({
      type: 'udp4',
      lookup: literalLookup as never,
      recvBufferSize: cfg.recvBufferSize,
      sendBufferSize: cfg.sendBufferSize,
    });
    let opened = false;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (opened) {
        cfg.onError(err);
        return;
      }
      try {
        socket.close();
      } catch {
        // not bound
      }
      const where = cfg.fd !== undefined ? `fd ${cfg.fd}` : `UDP ${cfg.ip}:${cfg.port}`;
      if (err.code === 'EADDRINUSE') {
        reject(new VerbsError('open_device', Errno.EADDRINUSE,
          `softroce device ${cfg.deviceName}: ${where} is already in use (another softroce device, process or a kernel rdma_rxe on this port)`,
          { cause: err }));
      } else if (err.code === 'EADDRNOTAVAIL') {
        reject(new VerbsError('open_device', Errno.ENODEV, `softroce device ${cfg.deviceName}: ${cfg.ip} is not an address of this host`,
          { code: VerbsErrorCode.NO_DEVICE, cause: err }));
      } else {
        reject(new VerbsError('open_device', Errno.EIO, `softroce device ${cfg.deviceName}: cannot bind ${where}: ${err.message}`, { cause: err }));
      }
    });
    socket.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      receiver(msg, msg.length, rinfo.address, rinfo.port);
    });
    const onBound = (): void => {
      opened = true;
      if (cfg.fd !== undefined || cfg.pmtuDiscoverDo === false) {
        resolve(new UdpLink(socket, cfg.fd !== undefined ? undefined : 'kernel-id', cfg.fd !== undefined ? undefined : 'pmtuDiscoverDo is off'));
        return;
      }
      // Before the first send: from here on Linux puts DF + ID 0 on every datagram.
      void setPmtuDiscoverDo(socket).then((r) => {
        resolve(r.applied ? new UdpLink(socket, 'id0-df', undefined) : new UdpLink(socket, 'kernel-id', r.reason));
      });
    };
    if (cfg.fd !== undefined) socket.bind({ fd: cfg.fd }, onBound);
    else socket.bind({ address: cfg.ip, port: cfg.port, exclusive: true }, onBound);
  });
};

// ---------------------------------------------------------------------------------------------
// Test-only in-memory network

interface InFlight {
  data: Buffer;
  srcIp: string;
  srcPort: number;
  dst: string;
}

/**
 * TEST-ONLY: an in-memory datagram network driven by a Clock (use with ManualClock). Datagrams are
 * copied on send and delivered in FIFO order on a later `clock.defer` turn. Pass `factory` as the
 * provider's `linkFactory`.
 */
export class MemNetwork {
  private readonly endpoints = new Map<string, DatagramReceiver>();
  private readonly queue: InFlight[] = [];
  private scheduled = false;
  /** Datagrams delivered / sent to an address nobody is bound to. */
  delivered = 0;
  unreachable = 0;

  constructor(private readonly clock: Clock) {}

  readonly factory: LinkFactory = async (cfg, receiver) => {
    const key = `${cfg.ip}:${cfg.port}`;
    if (this.endpoints.has(key)) {
      throw new VerbsError('open_device', Errno.EADDRINUSE, `softroce device ${cfg.deviceName}: UDP ${key} is already in use`);
    }
    this.endpoints.set(key, receiver);
    const net = this;
    return {
      send(buf: Buffer, len: number, ip: string, port: number): boolean {
        net.queue.push({ data: Buffer.from(buf.subarray(0, len)), srcIp: cfg.ip, srcPort: cfg.port, dst: `${ip}:${port}` });
        net.schedule();
        return true;
      },
      queued: 0,
      close(): Promise<void> {
        net.endpoints.delete(key);
        return Promise.resolve();
      },
    };
  };

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.clock.defer(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    const batch = this.queue.splice(0, this.queue.length);
    for (const d of batch) {
      const r = this.endpoints.get(d.dst);
      if (r === undefined) {
        this.unreachable++;
        continue;
      }
      this.delivered++;
      r(d.data, d.data.length, d.srcIp, d.srcPort);
    }
  }
}
