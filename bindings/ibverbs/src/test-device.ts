/**
 * Builds the C test device (test-device/fake_verbs.c) into a shared library: compiled by gcc
 * against the installed <infiniband/verbs.h> (libibverbs-dev), so its structs and prototypes are
 * the real ones. Tests and the benchmark load it with `new IbverbsProvider({ libraryPath })`.
 * Where <rdma/rdma_cma.h> is installed (librdmacm-dev), the same library also holds the test CM
 * (test-device/fake_rdmacm.c), for `RdmaCm.open({ libraryPath })`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TEST_DEVICE_SOURCE = fileURLToPath(new URL('../test-device/fake_verbs.c', import.meta.url));
export const TEST_RDMACM_SOURCE = fileURLToPath(new URL('../test-device/fake_rdmacm.c', import.meta.url));
const VERBS_H = '/usr/include/infiniband/verbs.h';
const RDMA_CMA_H = '/usr/include/rdma/rdma_cma.h';

export interface TestDevice {
  /** The .so to pass as `libraryPath`. */
  readonly path: string;
  /** The library also exports the test CM's rdma_* symbols (rdma_cma.h was found). */
  readonly rdmacm: boolean;
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

/** Why the test CM cannot be built into the test device here, or undefined when it can. */
export function testRdmacmMissing(): string | undefined {
  return testDeviceMissing() ?? (existsSync(RDMA_CMA_H) ? undefined : `${RDMA_CMA_H} missing: install the Debian package librdmacm-dev`);
}

/** Compiles the test device into a fresh temp directory (prefix smcr-ibv-<pid>-). */
export function buildTestDevice(opts: { optimize?: boolean } = {}): TestDevice {
  const why = testDeviceMissing();
  if (why !== undefined) throw new Error(`cannot build the ibverbs test device: ${why}`);
  const dir = mkdtempSync(join(tmpdir(), `smcr-ibv-${process.pid}-`));
  const path = join(dir, 'libfake_verbs.so');
  const rdmacm = testRdmacmMissing() === undefined;
  const sources = rdmacm ? [TEST_DEVICE_SOURCE, TEST_RDMACM_SOURCE] : [TEST_DEVICE_SOURCE];
  try {
    execFileSync('gcc', ['-std=gnu11', opts.optimize === false ? '-O0' : '-O2', '-g', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-o', path, ...sources, '-lpthread'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const err = e as { stderr?: Buffer };
    throw new Error(`gcc failed on ${sources.join(' ')}:\n${err.stderr?.toString() ?? String(e)}`);
  }
  return { path, rdmacm, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
