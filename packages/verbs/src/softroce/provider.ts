/**
 * SoftRoceProvider: RC transport over UDP in the RoCEv2 wire format, in user space. Each device is
 * one IPv4 address (its GID is the IPv4-mapped GID of that address) with one UDP socket, so two
 * processes, or two network namespaces, or this process and a kernel rdma_rxe, can talk RoCEv2.
 *
 *   const p = new SoftRoceProvider({ devices: [{ name: 'sr0', ip: '127.0.0.1' }, { name: 'sr1', ip: '127.0.0.2' }] });
 *   const ctx = await p.open('sr0');
 */
import { Errno, VerbsError, VerbsErrorCode } from '../errors.js';
import type { Context, DeviceInfo, Provider } from '../types.js';
import { RealClock, type Clock } from './clock.js';
import { SoftRoceContext } from './context.js';
import {
  SoftRoceDevice, defaultDeviceList, resolveTransport,
  type ResolvedDeviceConfig, type SoftRoceTestHooks, type SoftRoceTransportOptions,
} from './device.js';
import { udpLinkFactory, type LinkFactory } from './link.js';
import { ipv4ToNumber } from './packet.js';

export interface SoftRoceDeviceOptions {
  readonly name: string;
  /** The device's IPv4 address (bound; its IPv4-mapped GID is the device's RoCEv2 GID). */
  readonly ip: string;
  /** UDP port to bind (default 4791, the RoCEv2 port). */
  readonly port?: number;
  /** UDP port of peers (default: the same as `port`). Kernel rxe peers listen on 4791. */
  readonly remotePort?: number;
  /** Path MTU cap in bytes: 256, 512, 1024 (default, rxe on a 1500-byte netdev), 2048 or 4096. */
  readonly mtu?: number;
  /**
   * An already created UDP socket descriptor (inherited from a launcher) to use instead of binding
   * `ip:port`; e.g. one with IP_MTU_DISCOVER = IP_PMTUDISC_DO, which makes Linux send IP ID 0 so
   * the ICRC is exact on the wire (see icrc.ts, README). `ip` and `port` must still say what it is bound to.
   */
  readonly fd?: number;
  /**
   * Set IP_MTU_DISCOVER = IP_PMTUDISC_DO on the socket the device binds (default true; ignored with
   * `fd`): Linux then sends DF + IP ID 0, the header the ICRC is computed over, which a kernel
   * rdma_rxe peer checks. Needs koffi; without it the device works as before (see native-socket.ts
   * and `SoftRoceDevice.ipHeader`).
   */
  readonly pmtuDiscoverDo?: boolean;
  /** Interface name shown in the GID table (default: looked up from the address, if found). */
  readonly netdev?: string;
  /** TEST-ONLY hooks for this device (override the provider's). */
  readonly testHooks?: SoftRoceTestHooks;
}

export interface SoftRoceProviderOptions extends SoftRoceTransportOptions {
  /** Devices; default one per non-internal IPv4 address plus softroce-lo (see defaultDeviceList). */
  readonly devices?: readonly SoftRoceDeviceOptions[];
  /** TEST-ONLY hooks for every device (drops by seeded PRNG, filter, observe). */
  readonly testHooks?: SoftRoceTestHooks;
  /** Unref the transport's timers (default true: only open sockets keep the process alive). */
  readonly unrefTimers?: boolean;
  /** TEST-ONLY clock seam (e.g. ManualClock). */
  readonly clock?: Clock;
  /** TEST-ONLY datagram link (e.g. MemNetwork.factory) instead of UDP sockets. */
  readonly linkFactory?: LinkFactory;
}

const MTUS = [256, 512, 1024, 2048, 4096];

function netdevOf(ip: string, list: readonly { ip: string; netdev: string }[]): string | undefined {
  return list.find((d) => d.ip === ip)?.netdev;
}

export class SoftRoceProvider implements Provider {
  readonly name = 'softroce';
  readonly clock: Clock;
  private readonly devs = new Map<string, SoftRoceDevice>();

  constructor(options: SoftRoceProviderOptions = {}) {
    const opts = resolveTransport(options);
    this.clock = options.clock ?? new RealClock(options.unrefTimers !== false);
    const link = options.linkFactory ?? udpLinkFactory;
    const known = defaultDeviceList();
    const list: readonly SoftRoceDeviceOptions[] = options.devices !== undefined && options.devices.length > 0 ? options.devices : known;
    for (const d of list) {
      const fail = (msg: string): never => {
        throw new VerbsError('get_device_list', Errno.EINVAL, `softroce device ${String(d?.name)}: ${msg}`);
      };
      if (d === null || typeof d !== 'object' || typeof d.name !== 'string' || d.name === '') fail('needs a name');
      if (this.devs.has(d.name)) fail('duplicate name');
      if (typeof d.ip !== 'string' || ipv4ToNumber(d.ip) < 0) fail(`ip ${String(d.ip)} is not an IPv4 address`);
      const port = d.port ?? 4791;
      if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`port ${String(d.port)} is not a UDP port`);
      const remotePort = d.remotePort ?? port;
      if (!Number.isInteger(remotePort) || remotePort < 1 || remotePort > 65535) fail(`remotePort ${String(d.remotePort)} is not a UDP port`);
      const mtu = d.mtu ?? 1024;
      if (!MTUS.includes(mtu)) fail(`mtu ${String(d.mtu)} is not one of ${MTUS.join(', ')}`);
      if (d.fd !== undefined && (!Number.isInteger(d.fd) || d.fd < 0)) fail(`fd ${String(d.fd)} is not a descriptor`);
      const cfg: ResolvedDeviceConfig = {
        name: d.name,
        ip: d.ip,
        port,
        remotePort,
        mtu,
        fd: d.fd,
        pmtuDiscoverDo: d.pmtuDiscoverDo,
        netdev: d.netdev ?? netdevOf(d.ip, known),
        testHooks: d.testHooks ?? options.testHooks,
      };
      this.devs.set(d.name, new SoftRoceDevice(cfg, opts, this.clock, link));
    }
  }

  listDevices(): Promise<readonly DeviceInfo[]> {
    return Promise.resolve([...this.devs.values()].map((d) => ({ ...d.info })));
  }

  /** The device object (for counters and tests); undefined for an unknown name. */
  device(name: string): SoftRoceDevice | undefined {
    return this.devs.get(name);
  }

  /** Opens a device: binds its UDP socket on first open (EADDRINUSE -> VerbsError('open_device', EADDRINUSE)). */
  async open(deviceName: string): Promise<Context> {
    const dev = this.devs.get(deviceName);
    if (dev === undefined) {
      throw new VerbsError('open_device', Errno.ENODEV, `no softroce device named ${JSON.stringify(deviceName)} (have: ${[...this.devs.keys()].join(', ')})`,
        { code: VerbsErrorCode.NO_DEVICE });
    }
    await dev.acquire();
    return new SoftRoceContext(dev);
  }
}
