/**
 * The real packet dropper of the loss tests: compiles drop.bpf.c with clang at test time (the
 * drop probability is a compile-time constant) and attaches it with tc as a cls_bpf
 * direct-action classifier on a clsact qdisc, on the egress of a device inside a namespace.
 *
 * Needs root, clang and tc (iproute2 built with libbpf, as Debian's is). Evidence the program
 * really dropped: the clsact qdisc counts every TC_ACT_SHOT in its "drops" statistic
 * (`tc -s -j qdisc show`), read by {@link TcDropper.stats}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run } from '../netns.js';

export const DROP_SOURCE = fileURLToPath(new URL('./drop.bpf.c', import.meta.url));

/** Multiarch include directory with asm/types.h, which linux/bpf.h needs (not on the BPF target's path). */
function multiarchInclude(): string[] {
  const triple = arch() === 'arm64' ? 'aarch64-linux-gnu' : arch() === 'x64' ? 'x86_64-linux-gnu' : `${arch()}-linux-gnu`;
  const dir = `/usr/include/${triple}`;
  return existsSync(dir) ? [`-I${dir}`] : [];
}

export interface DropperBuild {
  /** The compiled object. */
  readonly object: string;
  readonly probability: number;
  readonly threshold: number;
  /** Removes the build directory. Idempotent. */
  cleanup(): void;
}

/**
 * Compiles the dropper for drop probability `probability` (0..1) on UDP port `port` (source or
 * destination). Returns the object path; the caller removes it with cleanup().
 */
export function buildDropper(probability: number, port = 4791): DropperBuild {
  if (!(probability >= 0 && probability < 1)) throw new RangeError(`drop probability ${probability} not in [0, 1)`);
  const threshold = Math.min(0xffffffff, Math.round(probability * 2 ** 32));
  const dir = mkdtempSync(join(tmpdir(), 'smcr-drop-'));
  const object = join(dir, 'drop.o');
  try {
    run('clang', ['-O2', '-target', 'bpf', ...multiarchInclude(), `-DDROP_THRESHOLD=${threshold}U`, `-DROCE_PORT=${port}`, '-c', DROP_SOURCE, '-o', object], 30_000);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let done = false;
  return {
    object,
    probability,
    threshold,
    cleanup: () => {
      if (done) return;
      done = true;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** tc arguments that address namespace `ns` (none for the current one). */
function tcNs(ns: string | undefined): string[] {
  return ns === undefined ? [] : ['-n', ns];
}

/** The dropper attached to one device's egress. */
export class TcDropper {
  readonly ns: string | undefined;
  readonly dev: string;
  #attached = false;

  constructor(ns: string | undefined, dev: string) {
    this.ns = ns;
    this.dev = dev;
  }

  /** `tc qdisc add dev X clsact` + `tc filter add dev X egress bpf da obj O sec tc`. */
  attach(object: string): void {
    run('tc', [...tcNs(this.ns), 'qdisc', 'add', 'dev', this.dev, 'clsact']);
    this.#attached = true;
    run('tc', [...tcNs(this.ns), 'filter', 'add', 'dev', this.dev, 'egress', 'bpf', 'da', 'obj', object, 'sec', 'tc']);
    const shown = run('tc', [...tcNs(this.ns), 'filter', 'show', 'dev', this.dev, 'egress']);
    if (!/direct-action/.test(shown) || !/drop_roce/.test(shown)) throw new Error(`dropper not attached to ${this.dev}: ${shown}`);
  }

  /** clsact counters: packets seen by the hook (dropped ones included) and packets dropped (TC_ACT_SHOT). */
  stats(): { packets: number; drops: number } {
    const q = JSON.parse(run('tc', [...tcNs(this.ns), '-s', '-j', 'qdisc', 'show', 'dev', this.dev])) as
      { kind: string; packets?: number; drops?: number }[];
    const c = q.find((x) => x.kind === 'clsact');
    if (c === undefined) throw new Error(`no clsact qdisc on ${this.dev}`);
    return { packets: c.packets ?? 0, drops: c.drops ?? 0 };
  }

  /** Removes the clsact qdisc (and the filter with it). Idempotent; never throws. */
  detach(): void {
    if (!this.#attached) return;
    this.#attached = false;
    try {
      run('tc', [...tcNs(this.ns), 'qdisc', 'del', 'dev', this.dev, 'clsact']);
    } catch {
      // The namespace may already be gone, which removed the qdisc too.
    }
  }
}
