/**
 * Mocha glue for the interop test files: one guest per file (image from the cache, namespace + tap,
 * boot), skipped with the reason when root or a tool is missing, torn down in after() whatever
 * happened. When a test fails, the guest's console tail and the capture path are printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guest } from './guest.js';
import { interopMissing, prepareGuestImage, type GuestImage } from './image.js';
import { InteropNet } from './net.js';

/** The guest's kernel-side configuration, as the suite sets it through the control channel. */
export const UEID = 'SMCRI-INTEROP-UEID';
export const PNETID = 'SMCRI';

export interface InteropEnv {
  image: GuestImage;
  net: InteropNet;
  guest: Guest;
  dir: string;
  /** Capture files of this file's tests (printed on failure). */
  captures: string[];
  /** Extra text printed when a test fails (e.g. the agent's stderr). */
  onFailure: (() => string)[];
}

/** One parsed `RESULT ...` line of smc_test. */
export interface GuestResult {
  readonly role: string;
  readonly mode: string;
  readonly reason: number;
  readonly peer: number;
  readonly lgrRole: string;
  readonly ibdev: string;
  readonly rx: number;
  readonly tx: number;
  readonly rxSha256: string;
  readonly txSha256: string;
  readonly mismatch: number;
  readonly err: string;
}

export function parseResults(text: string): GuestResult[] {
  const out: GuestResult[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('RESULT ')) continue;
    const kv = new Map(line.slice(7).trim().split(/\s+/).map((p) => { const i = p.indexOf('='); return [p.slice(0, i), p.slice(i + 1)] as const; }));
    const get = (k: string): string => kv.get(k) ?? '';
    out.push({
      role: get('role'), mode: get('mode'), reason: Number(get('reason')), peer: Number(get('peer')), lgrRole: get('lgr_role'),
      ibdev: get('ibdev'), rx: Number(get('rx')), tx: Number(get('tx')), rxSha256: get('rx_sha256'), txSha256: get('tx_sha256'),
      mismatch: Number(get('mismatch')), err: get('err'),
    });
  }
  return out;
}

export const hex32 = (n: number | undefined): string => (n === undefined ? 'undefined' : `0x${(n >>> 0).toString(16).padStart(8, '0')}`);

/**
 * Registers before/afterEach/after hooks on the current describe block and returns the environment
 * (filled in by `before`). `configure` runs once after boot (UEID, pnet, servers...).
 */
export function useInteropGuest(configure?: (env: InteropEnv) => Promise<void>): InteropEnv {
  const env = { captures: [], onFailure: [] } as unknown as InteropEnv;
  let net: InteropNet | undefined;
  let guest: Guest | undefined;
  let dir: string | undefined;
  let failed = false;

  before(async function () {
    // Cold cache: download + unpack + builds take ~20-60 s here; allow a slow mirror.
    this.timeout(15 * 60_000);
    const why = interopMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
    let image: GuestImage;
    try {
      image = prepareGuestImage();
    } catch (e) {
      // No Debian mirror (offline machine): nothing to test against. CI reaches Debian's mirror.
      if (/apt-get download|apt-cache|no downloadable/.test((e as Error).message)) {
        process.stdout.write(`      SKIP: cannot fetch the Debian 6.1 kernel: ${(e as Error).message.slice(0, 300)}\n`);
        this.skip();
      }
      throw e;
    }
    if (Object.keys(image.timings).length > 1) process.stdout.write(`      guest image prepared: ${JSON.stringify(image.timings)} ms\n`);
    dir = mkdtempSync(join(tmpdir(), 'smcri-'));
    net = InteropNet.create();
    guest = await Guest.boot({ image, net, dir });
    Object.assign(env, { image, net, guest, dir });
    process.stdout.write(`      guest ${image.kernel.image} ${image.kernel.version} ready in ${guest.bootMs} ms\n`);
    if (configure) await configure(env);
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    failed = true;
    const parts = [`--- guest console (tail) ---\n${guest?.consoleTail(60) ?? '(no guest)'}`];
    if (env.captures.length > 0) parts.push(`--- captures (kept) ---\n${env.captures.join('\n')}`);
    for (const f of env.onFailure) {
      try { parts.push(f()); } catch { /* best effort */ }
    }
    process.stdout.write(`${parts.join('\n')}\n`);
  });

  after(async () => {
    await guest?.stop();
    net?.destroy();
    // Keep the directory (console log, captures) when something failed or SMCR_KEEP_CAPTURE=1.
    if (dir !== undefined && !failed && process.env['SMCR_KEEP_CAPTURE'] !== '1') rmSync(dir, { recursive: true, force: true });
    else if (dir !== undefined) process.stdout.write(`      interop files kept in ${dir}\n`);
  });
  return env;
}

/** Polls `read` until `pred` holds on its result (bounded). */
export async function waitFor<T>(read: () => Promise<T>, pred: (v: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
