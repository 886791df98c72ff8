/**
 * The software providers, looked up by name so that the benchmark builds (and says "not
 * available") whatever @smc-r/verbs exports: from the package index when it exports them, else
 * from the provider's own module next to it in the package's dist (`<dist>/softroce/index.js`,
 * `<dist>/mem/index.js`).
 */
import * as verbs from '@smc-r/verbs';
import type { Context, Provider } from '@smc-r/verbs';

export interface SoftRoceDevice {
  name: string;
  ip: string;
  port?: number;
  /** Path MTU cap in bytes (256 .. 4096). */
  mtu?: number;
}

type SoftRoceCtor = new (opts: { devices: SoftRoceDevice[] } & Record<string, unknown>) => Provider;
type MemCtor = new () => Provider;

async function lookup<T>(name: string, dir: string): Promise<T | undefined> {
  const fromIndex = (verbs as unknown as Record<string, unknown>)[name];
  if (fromIndex !== undefined) return fromIndex as T;
  try {
    const url = new URL(`./${dir}/index.js`, import.meta.resolve('@smc-r/verbs'));
    return ((await import(url.href)) as Record<string, unknown>)[name] as T | undefined;
  } catch {
    return undefined;
  }
}

export const SoftRoceProvider = await lookup<SoftRoceCtor>('SoftRoceProvider', 'softroce');
export const MemProvider = await lookup<MemCtor>('MemProvider', 'mem');

/**
 * The device's packet counters as plain numbers: whatever numeric fields the context's `stats`
 * (property or method) exposes. Null when the provider has none.
 */
export function stats(ctx: Context, _provider?: unknown): Record<string, number> | null {
  const c = ctx as unknown as { stats?: unknown };
  let s = c.stats;
  if (typeof s === 'function') s = (s as () => unknown).call(ctx);
  if (s === null || typeof s !== 'object') return null;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(s as Record<string, unknown>)) {
    if (typeof v === 'number') out[k] = v;
    else if (typeof v === 'bigint') out[k] = Number(v);
  }
  return out;
}
