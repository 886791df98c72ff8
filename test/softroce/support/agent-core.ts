/**
 * The command handler behind a transfer endpoint: the same object answers JSON-lines requests in
 * a child process (agent.ts) and direct calls in the test process (LocalAgent), so a test drives
 * "the parent side" and "the child side" through one interface.
 *
 * Commands: open {devices, device, providerOptions?, peer} -> EndpointInfo; connect {remote,
 * options?}; run RunParams -> RunResult; read ReadParams; stats -> device counters; stray ->
 * completions that arrived outside run/read; close.
 */
import type { Context, Provider } from './verbs.js';
import { TransferPeer, type ConnectOptions, type EndpointInfo, type PeerOptions, type ReadParams, type RunParams } from './transfer.js';
import { createSoftRoce, deviceStats, type SoftRoceDeviceConfig } from './providers.js';

export interface OpenArgs {
  readonly devices: readonly SoftRoceDeviceConfig[];
  readonly device: string;
  readonly providerOptions?: Record<string, unknown>;
  readonly peer: PeerOptions;
}

export class Agent {
  provider: Provider | undefined;
  ctx: Context | undefined;
  peer: TransferPeer | undefined;

  async handle(cmd: string, args: unknown): Promise<unknown> {
    switch (cmd) {
      case 'open': {
        const a = args as OpenArgs;
        const provider = createSoftRoce(a.devices, a.providerOptions ?? {});
        this.provider = provider;
        this.ctx = await provider.open(a.device);
        this.peer = new TransferPeer(this.ctx, a.peer);
        return this.peer.info();
      }
      case 'connect': {
        const a = args as { remote: EndpointInfo; options?: ConnectOptions };
        this.#peer().connect(a.remote, a.options ?? {});
        return { mtuBytes: this.#peer().mtuBytes };
      }
      case 'run':
        return this.#peer().run(args as RunParams);
      case 'read':
        return this.#peer().read(args as ReadParams);
      case 'stats':
        return this.ctx === undefined ? {} : deviceStats(this.ctx);
      case 'stray':
        return this.#peer().stray;
      case 'close':
        await this.close();
        return {};
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  }

  #peer(): TransferPeer {
    if (this.peer === undefined) throw new Error('not open');
    return this.peer;
  }

  async close(): Promise<void> {
    const peer = this.peer;
    const ctx = this.ctx;
    this.peer = undefined;
    this.ctx = undefined;
    try {
      peer?.close();
    } finally {
      await ctx?.close();
    }
  }
}

/** The in-process endpoint, with the same call() as RpcChild. */
export class LocalAgent {
  readonly agent = new Agent();
  async call<T = unknown>(cmd: string, args: unknown = {}, timeoutMs = 20_000): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`local ${cmd} timed out after ${timeoutMs} ms`)), timeoutMs); });
    try {
      return (await Promise.race([this.agent.handle(cmd, args), t])) as T;
    } finally {
      clearTimeout(timer);
    }
  }
  async close(): Promise<void> {
    await this.agent.close();
  }
}
