/**
 * Builds the C test device (test-device/fake_verbs.c) into a shared library: compiled by gcc
 * against the installed <infiniband/verbs.h> (libibverbs-dev), so its structs and prototypes are
 * the real ones. Tests and the benchmark load it with `new IbverbsProvider({ libraryPath })`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TEST_DEVICE_SOURCE = fileURLToPath(new URL('../test-device/fake_verbs.c', import.meta.url));
const VERBS_H = '/usr/include/infiniband/verbs.h';

export interface TestDevice {
  /** The .so to pass as `libraryPath`. */
  readonly path: string;
  /** Removes the build directory (the library stays mapped in this process). */
  cleanup(): void;
}

/** Why the test device cannot be built here, or undefined when it can. */
export function testDeviceMissing(): string | undefined {
  if (!existsSync(VERBS_H)) return `${VERBS_H} missing: install the Debian package libibverbs-dev`;
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'gcc not installed';
  }
  return undefined;
}

/** Compiles the test device into a fresh temp directory (prefix smcr-ibv-<pid>-). */
export function buildTestDevice(opts: { optimize?: boolean } = {}): TestDevice {
  const why = testDeviceMissing();
  if (why !== undefined) throw new Error(`cannot build the ibverbs test device: ${why}`);
  const dir = mkdtempSync(join(tmpdir(), `smcr-ibv-${process.pid}-`));
  const path = join(dir, 'libfake_verbs.so');
  try {
    execFileSync('gcc', ['-std=gnu11', opts.optimize === false ? '-O0' : '-O2', '-g', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-o', path, TEST_DEVICE_SOURCE, '-lpthread'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const err = e as { stderr?: Buffer };
    throw new Error(`gcc failed on ${TEST_DEVICE_SOURCE}:\n${err.stderr?.toString() ?? String(e)}`);
  }
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
