/**
 * MemProvider: a verbs provider whose devices all live in this process and are connected by an
 * in-memory fabric. RDMA WRITE / READ are bounds-, key- and access-checked copies between
 * registered regions; SEND consumes the responder's next receive; RC semantics (ordering, RNR,
 * retries, error states, flush) follow the IBA and rxe. For unit tests of the engine and for
 * measuring the engine's own cost without a network.
 */
import { Errno, VerbsError, VerbsErrorCode } from '../errors.js';
import type { DeviceInfo, Provider } from '../types.js';
import { MemContext } from './context.js';
import { MemFabric } from './fabric.js';
import { DEFAULT_MAX_ACK_TIMEOUT_MS, DEFAULT_MAX_RNR_DELAY_MS } from './timing.js';

export interface MemProviderOptions {
  /** Number of devices (mem0, mem1, ...). Default 2. */
  readonly devices?: number;
  /**
   * Upper bound of one local ACK timeout, in ms (default 10). The QP's `timeout` attribute
   * (4.096 us * 2^timeout) is used when shorter: timeout 8 = 1.05 ms; SMC-R's 15 (134 ms) becomes
   * 10 ms, so a dead peer is detected after (retryCnt + 1) * 10 ms. 0 stays infinite.
   */
  readonly maxAckTimeoutMs?: number;
  /** Upper bound of one RNR wait, in ms (default 1; Node timers do not go below 1 ms anyway). */
  readonly maxRnrDelayMs?: number;
  /** Address space reserved for the memory arena (all MemoryBlocks and inline areas). Default 1 GiB. */
  readonly arenaMaxBytes?: number;
  /**
   * High 32 bits of the first block address (default 0x7f00, user-space style). 0xffff8880 makes
   * addresses look like kernel direct-map addresses, above 2^53.
   */
  readonly addrHiBase?: number;
}

export class MemProvider implements Provider {
  readonly name = 'mem';
  readonly fabric: MemFabric;

  constructor(options: MemProviderOptions = {}) {
    const devices = options.devices ?? 2;
    if (!Number.isInteger(devices) || devices < 1 || devices > 255) throw new RangeError(`devices must be 1..255, got ${devices}`);
    const maxAck = options.maxAckTimeoutMs ?? DEFAULT_MAX_ACK_TIMEOUT_MS;
    const maxRnr = options.maxRnrDelayMs ?? DEFAULT_MAX_RNR_DELAY_MS;
    if (!(maxAck > 0) || !(maxRnr > 0)) throw new RangeError('maxAckTimeoutMs and maxRnrDelayMs must be positive');
    this.fabric = new MemFabric({
      devices,
      maxAckTimeoutMs: maxAck,
      maxRnrDelayMs: maxRnr,
      arenaMaxBytes: options.arenaMaxBytes ?? 2 ** 30,
      addrHiBase: options.addrHiBase ?? 0x7f00,
    });
  }

  listDevices(): Promise<readonly DeviceInfo[]> {
    return Promise.resolve(this.fabric.devices.map((d) => d.info));
  }

  open(deviceName: string): Promise<MemContext> {
    const dev = this.fabric.devices.find((d) => d.info.name === deviceName);
    if (dev === undefined) {
      return Promise.reject(new VerbsError('open_device', Errno.ENODEV, `no mem device named ${JSON.stringify(deviceName)}`, { code: VerbsErrorCode.NO_DEVICE }));
    }
    return Promise.resolve(new MemContext(this.fabric, dev));
  }

  /**
   * Runs now, synchronously, the transport work the next event-loop turn would run (copies,
   * receive consumption, completions), but not the CQ handlers, which still run from the event
   * loop. For benchmarks and allocation measurements that drive the provider in a tight loop.
   */
  step(): void {
    this.fabric.runWork();
  }
}
