/**
 * Whether SmcOptionProgram.open() can work here, checked without creating anything: platform and
 * kernel version, koffi, the cgroup2 mount, the capabilities bpf(2) needs, and a writable cgroup.
 * open() runs the same checks first, so its error names the same missing piece.
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { locateCgroup, writable } from './cgroup.js';
import { SockopsError, SockopsErrorCode } from './errors.js';
import { bpfSyscallNumber, isLittleEndian, loadLibc } from './libc.js';

/** The header-option helpers arrived in 5.10 (bpf_load/store/reserve_hdr_opt). */
export const MIN_KERNEL: readonly [number, number] = [5, 10];

const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const CAP_BPF = 39n;

/** Parses "6.18.44-fc-v669" into [6, 18]; undefined when it does not start with two numbers. */
export function kernelVersion(rel: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m === null ? undefined : [Number(m[1]), Number(m[2])];
}

/** The effective capability mask from a /proc/self/status text (0 when absent). */
export function effectiveCaps(status: string): bigint {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
  return m === null ? 0n : BigInt(`0x${m[1]}`);
}

/** What bpf(2) lacks for loading a sock_ops program with these capabilities, or undefined. */
export function missingCaps(caps: bigint): string | undefined {
  const has = (bit: bigint): boolean => ((caps >> bit) & 1n) === 1n;
  if (has(CAP_SYS_ADMIN)) return undefined;
  const lack: string[] = [];
  if (!has(CAP_BPF)) lack.push('CAP_BPF');
  if (!has(CAP_NET_ADMIN)) lack.push('CAP_NET_ADMIN');
  return lack.length === 0 ? undefined : `${lack.join(' + ')} (or CAP_SYS_ADMIN)`;
}

/** Throws the SockopsError open() would throw for what is missing; returns when all is there. */
export function checkAvailability(): void {
  if (process.platform !== 'linux') {
    throw new SockopsError(SockopsErrorCode.BPF_UNSUPPORTED, `sock_ops programs need Linux; this is ${process.platform}`);
  }
  if (bpfSyscallNumber() === undefined || !isLittleEndian) {
    throw new SockopsError(SockopsErrorCode.BPF_UNSUPPORTED, `the loader supports little-endian x64 and arm64; this is ${process.arch}`);
  }
  const kv = kernelVersion(release());
  if (kv !== undefined && (kv[0] < MIN_KERNEL[0] || (kv[0] === MIN_KERNEL[0] && kv[1] < MIN_KERNEL[1]))) {
    throw new SockopsError(SockopsErrorCode.BPF_UNSUPPORTED, `kernel ${release()} is older than ${MIN_KERNEL.join('.')}, which added the TCP header-option helpers the program uses`);
  }
  loadLibc();
  const cg = locateCgroup();
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    // no /proc: locateCgroup() would have failed already
  }
  const lack = missingCaps(effectiveCaps(status));
  const uid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
  if (lack !== undefined) {
    if (uid !== 0) {
      throw new SockopsError(SockopsErrorCode.NOT_ROOT, `loading the sock_ops program needs root, or ${lack} plus a writable cgroup v2 subtree; running as uid ${uid}`);
    }
    throw new SockopsError(SockopsErrorCode.NO_CAP, `running as root but without ${lack} in the effective capability set (container, setpriv or systemd CapabilityBoundingSet?); grant them to load the sock_ops program`);
  }
  if (!writable(cg.dir)) {
    throw new SockopsError(
      uid === 0 ? SockopsErrorCode.CGROUP_ACCESS : SockopsErrorCode.NOT_ROOT,
      `the cgroup ${cg.dir} this process runs in is not writable (the program's child cgroup is created there); run as root or in a delegated subtree (systemd-run -p Delegate=yes)`,
    );
  }
}

export type SockopsAvailability = { ok: true } | { ok: false; code: SockopsErrorCode; missing: string };

/** Whether the sock_ops program can be loaded here; when not, the code and what is missing. */
export function sockopsAvailability(): SockopsAvailability {
  try {
    checkAvailability();
    return { ok: true };
  } catch (e) {
    if (e instanceof SockopsError) return { ok: false, code: e.code, missing: e.message };
    throw e;
  }
}
