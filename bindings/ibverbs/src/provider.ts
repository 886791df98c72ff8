/**
 * The ibverbs provider: device enumeration and opening through libibverbs (or, for tests, any
 * library exporting the same symbols, named by `libraryPath`).
 *
 * No device: ibv_get_device_list returns NULL (errno ENOSYS without /sys/class/infiniband_verbs)
 * or an empty list; listDevices() then returns [] and open() throws ERR_SMC_VERBS_NO_DEVICE.
 * A NULL list is never passed to ibv_free_device_list (rdma-core dereferences it).
 */
import { Errno, VerbsError, VerbsErrorCode, type DeviceInfo, type Provider, type Transport } from '@smc-r/verbs';
import type { DeviceListPtr, DevicePtr } from './handles.js';
import { IBV, OFF } from './layout.js';
import { DEFAULT_LIBRARY, lastErrno, loadVerbs, readPtr, readU32, type VerbsLib } from './native.js';
import { IbvContext, type IbvContextOptions } from './context.js';

export interface IbverbsProviderOptions extends IbvContextOptions {
  /** The verbs library to load. Default libibverbs.so.1. */
  readonly libraryPath?: string;
}

interface ListedDevice extends DeviceInfo {
  readonly ptr: DevicePtr;
  readonly guid: bigint;
}

export class IbverbsProvider implements Provider {
  readonly name = 'ibverbs';
  readonly #opts: IbverbsProviderOptions;
  #lib: VerbsLib | undefined;
  /** errno of the last enumeration that found no list (ENOSYS: no RDMA subsystem). */
  lastListErrno = 0;

  constructor(opts: IbverbsProviderOptions = {}) {
    this.#opts = opts;
  }

  /** Loads the library now (listDevices/open do it on first use); throws ERR_SMC_VERBS_UNAVAILABLE. */
  get lib(): VerbsLib {
    this.#lib ??= loadVerbs(this.#opts.libraryPath ?? DEFAULT_LIBRARY);
    return this.#lib;
  }

  async listDevices(): Promise<readonly DeviceInfo[]> {
    let lib: VerbsLib;
    try {
      lib = this.lib;
    } catch {
      return []; // "never throwing, when there are none"; open() reports why
    }
    return this.#withList(lib, (devs) => devs.map(({ name, provider, transport }) => ({ name, provider, transport })));
  }

  async open(deviceName: string): Promise<IbvContext> {
    const lib = this.lib;
    return this.#withList(lib, (devs) => {
      const d = devs.find((x) => x.name === deviceName);
      if (d === undefined) {
        const why = devs.length === 0
          ? `no RDMA device on this machine${this.lastListErrno ? ` (ibv_get_device_list: errno ${this.lastListErrno})` : ''}`
          : `no RDMA device "${deviceName}" (have: ${devs.map((x) => x.name).join(', ')})`;
        throw new VerbsError('open_device', Errno.ENODEV, why, { code: VerbsErrorCode.NO_DEVICE });
      }
      const ctx = lib.open_device(d.ptr);
      if (ctx === null) throw new VerbsError('open_device', lastErrno(), `ibv_open_device(${deviceName}) failed`);
      return new IbvContext(lib, ctx, { name: d.name, provider: d.provider, transport: d.transport }, d.guid, this.#opts);
    });
  }

  /** Runs `fn` over the current device list, then frees the list (devices opened in fn stay valid). */
  #withList<T>(lib: VerbsLib, fn: (devs: ListedDevice[]) => T): T {
    const n: [number] = [0];
    const list: DeviceListPtr | null = lib.get_device_list(n);
    if (list === null) {
      this.lastListErrno = lastErrno();
      return fn([]);
    }
    this.lastListErrno = 0;
    try {
      const devs: ListedDevice[] = [];
      for (let i = 0; i < n[0]; i++) {
        const ptr = readPtr<DevicePtr>(list, i * 8);
        if (ptr === null) break;
        const t = readU32(ptr, OFF.device_transport_type);
        const transport: Transport = t === IBV.TRANSPORT_IWARP ? 'iWARP' : 'RoCE';
        devs.push({ name: lib.get_device_name(ptr), provider: 'ibverbs', transport, ptr, guid: beToHost(BigInt(lib.get_device_guid(ptr))) });
      }
      return fn(devs);
    } finally {
      lib.free_device_list(list);
    }
  }
}

/** ibv_get_device_guid returns a __be64: the bytes in network order inside a host integer. */
function beToHost(x: bigint): bigint {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, x));
  return b.readBigUInt64BE();
}
