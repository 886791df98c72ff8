/**
 * Builds pmtu-launcher (C, compiled with clang at test time): it runs a program with a UDP socket
 * bound to ip:port with IP_PMTUDISC_DO on an inherited descriptor, which a softroce device takes
 * as its `fd`, so that Linux sends IP ID 0 + DF and the ICRC verifies on the wire.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../support/netns.js';

export const LAUNCHER_SOURCE = fileURLToPath(new URL('../pmtu-launcher.c', import.meta.url));
/** The descriptor the launcher puts the socket on. */
export const LAUNCHER_FD = 3;

export interface Launcher {
  readonly path: string;
  /** [cmd, args] that run `program args` with the socket on LAUNCHER_FD. */
  argv(ip: string, port: number, program: string, args: readonly string[]): [string, string[]];
  cleanup(): void;
}

export function buildLauncher(): Launcher {
  const dir = mkdtempSync(join(tmpdir(), 'smcr-launcher-'));
  const path = join(dir, 'pmtu-launcher');
  try {
    run('clang', ['-O2', '-Wall', '-Werror', '-o', path, LAUNCHER_SOURCE], 60_000);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let done = false;
  return {
    path,
    argv: (ip, port, program, args) => [path, [ip, String(port), String(LAUNCHER_FD), program, ...args]],
    cleanup: () => {
      if (done) return;
      done = true;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
