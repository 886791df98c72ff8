/**
 * Helpers for tests that drive real tools (tshark, tcpdump): presence checks that explain a skip,
 * and tshark's JSON output as plain objects.
 */
import { execFileSync, spawnSync } from 'node:child_process';

/** True when `cmd` is on PATH. */
export function haveTool(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Skips the current test (or suite, from a `before` hook) unless every requirement holds, and
 * prints why, so a skip is never silent. Returns nothing; mocha stops the test on skip.
 */
export function requireOrSkip(ctx: Mocha.Context, reqs: { tools?: string[]; root?: boolean }): void {
  const missing: string[] = [];
  for (const t of reqs.tools ?? []) if (!haveTool(t)) missing.push(`${t} not installed (npm test installs it when run as root)`);
  if (reqs.root && !isRoot) missing.push('needs root (packet capture on lo)');
  if (missing.length > 0) {
    const why = `SKIP: ${missing.join('; ')}`;
    process.stdout.write(`      ${why}\n`);
    ctx.skip();
  }
}

/** tshark's version string, e.g. "4.0.17". */
export function tsharkVersion(): string {
  const out = execFileSync('tshark', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const m = /TShark \(Wireshark\) (\d+\.\d+\.\d+)/.exec(out);
  return m ? m[1]! : 'unknown';
}

/** One decoded frame from `tshark -T json --no-duplicate-keys`: layer name -> fields. */
export type TsharkFrame = Record<string, unknown> & { _source: { layers: Record<string, unknown> } };

/** Runs tshark on a pcap and returns its JSON frames. `extra` holds extra options (-o, -d, -Y). */
export function tsharkJson(pcapPath: string, extra: string[] = []): TsharkFrame[] {
  const out = execFileSync('tshark', ['-n', '-r', pcapPath, '-T', 'json', '--no-duplicate-keys', '-x', ...extra], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return JSON.parse(out) as TsharkFrame[];
}

/**
 * Collects every value of field `name` anywhere under `node` (tshark nests fields in `*_tree`
 * objects and turns repeated fields into arrays), in document order.
 */
export function fieldValues(node: unknown, name: string): string[] {
  const out: string[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) { for (const x of n) walk(x); return; }
    if (n === null || typeof n !== 'object') return;
    for (const [k, v] of Object.entries(n as Record<string, unknown>)) {
      if (k === name) {
        if (Array.isArray(v)) for (const x of v) out.push(typeof x === 'string' ? x : JSON.stringify(x));
        else out.push(typeof v === 'string' ? v : JSON.stringify(v));
      }
      if (typeof v === 'object') walk(v);
    }
  };
  walk(node);
  return out;
}

/** The single value of `name` under `node`; throws (failing the test) when absent or repeated. */
export function field(node: unknown, name: string): string {
  const vs = fieldValues(node, name);
  if (vs.length !== 1) throw new Error(`tshark field ${name}: expected one value, got ${vs.length} (${vs.slice(0, 4).join(', ')})`);
  return vs[0]!;
}
