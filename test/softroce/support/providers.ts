/**
 * The software providers for the softroce tests, looked up by name: from @smc-r/verbs when its
 * index exports them, else from the provider's own built module (packages/verbs/dist/<name>/).
 * Looking them up at run time keeps these tests type-checking while a provider is still being
 * written; a missing provider makes the tests skip with the reason.
 */
import * as verbs from './verbs.js';
import type { Context, Provider } from './verbs.js';

export interface SoftRoceDeviceConfig {
  readonly name: string;
  readonly ip: string;
  readonly port?: number;
  /** Path MTU cap in bytes (softroce: 256..4096, default 1024). */
  readonly mtu?: number;
  /** An inherited, already bound UDP socket descriptor (pmtu-launcher). */
  readonly fd?: number;
}

type SoftRoceCtor = new (opts: Record<string, unknown>) => Provider;
type MemCtor = new (opts?: Record<string, unknown>) => Provider;

const DIST = new URL('../../../packages/verbs/dist/', import.meta.url);

async function lookup<T>(exportName: string, dir: string): Promise<T | undefined> {
  const fromIndex = (verbs as unknown as Record<string, unknown>)[exportName];
  if (fromIndex !== undefined) return fromIndex as T;
  try {
    const mod = (await import(new URL(`${dir}/index.js`, DIST).href)) as Record<string, unknown>;
    return mod[exportName] as T | undefined;
  } catch {
    return undefined;
  }
}

export const SoftRoceProvider = await lookup<SoftRoceCtor>('SoftRoceProvider', 'softroce');
export const MemProvider = await lookup<MemCtor>('MemProvider', 'mem');

/** Why the softroce tests cannot run here, or undefined when they can. */
export function softroceMissing(): string | undefined {
  return SoftRoceProvider === undefined ? 'SoftRoceProvider is not built (packages/verbs/dist/softroce) nor exported by @smc-r/verbs' : undefined;
}

export function createSoftRoce(devices: readonly SoftRoceDeviceConfig[], options: Record<string, unknown> = {}): Provider {
  if (SoftRoceProvider === undefined) throw new Error(softroceMissing());
  return new SoftRoceProvider({ ...options, devices: devices.map((d) => ({ ...d })) });
}

/** The device's counters as plain numbers (whatever numeric fields `stats` exposes), {} if none. */
export function deviceStats(ctx: Context): Record<string, number> {
  const c = ctx as unknown as { stats?: unknown };
  let s = c.stats;
  if (typeof s === 'function') s = (s as () => unknown).call(ctx);
  const out: Record<string, number> = {};
  if (s === null || typeof s !== 'object') return out;
  for (const [k, v] of Object.entries(s as Record<string, unknown>)) {
    if (typeof v === 'number') out[k] = v;
    else if (typeof v === 'bigint') out[k] = Number(v);
  }
  return out;
}
