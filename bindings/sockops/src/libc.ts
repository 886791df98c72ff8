/**
 * The few libc calls this package makes, through koffi: syscall(2) for bpf(2), and
 * setsockopt/getsockopt for TCP_SAVE_SYN. koffi is loaded on first use, so importing the package
 * works (and sockopsAvailability() can say what is missing) on a machine without it.
 *
 * Memory handed to the kernel by address lives in ArrayBuffer-backed Buffers: their backing store
 * is off the V8 heap and never moves (a small `Buffer.alloc` may live on the heap), and callers
 * keep them referenced until the call returns.
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import type * as KoffiModule from 'koffi';
import { SockopsError, SockopsErrorCode } from './errors.js';

type Koffi = typeof KoffiModule;
type NativeFn = (...args: unknown[]) => unknown;

interface Libc {
  readonly koffi: Koffi;
  readonly syscall: NativeFn;
  readonly setsockopt: NativeFn;
  readonly getsockopt: NativeFn;
}

/** Whether native integers are little-endian here (every Linux platform Node supports today). */
export const isLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

let libc: Libc | undefined;
let loadError: Error | undefined;

/** `bpf` syscall numbers of the architectures we know; the program itself is arch-neutral. */
const BPF_SYSCALL: Readonly<Record<string, number>> = { x64: 321, arm64: 280 };

/** The bpf(2) syscall number on this machine, or undefined when we do not know it. */
export function bpfSyscallNumber(): number | undefined {
  return BPF_SYSCALL[process.arch];
}

/** Loads koffi and libc once; throws NO_KOFFI with the reason when that fails. */
export function loadLibc(): Libc {
  if (libc !== undefined) return libc;
  if (loadError === undefined) {
    try {
      const require = createRequire(import.meta.url);
      const koffi = require('koffi') as Koffi;
      const lib = koffi.load('libc.so.6');
      libc = {
        koffi,
        syscall: lib.func('long syscall(long nr, ...)') as NativeFn,
        setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)') as NativeFn,
        getsockopt: lib.func('int getsockopt(int fd, int level, int name, void *val, void *len)') as NativeFn,
      };
      return libc;
    } catch (e) {
      loadError = e as Error;
    }
  }
  throw new SockopsError(
    SockopsErrorCode.NO_KOFFI,
    `koffi (FFI to libc) could not be loaded: ${loadError!.message}; install the koffi package (a dependency of @smc-r/sockops) for this platform`,
    { cause: loadError },
  );
}

/** An off-heap, zeroed Buffer whose address is stable (see the module comment). */
export function nativeBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}

/** The address of a Buffer's first byte, for pointer fields inside bpf_attr. */
export function addressOf(buf: Buffer): bigint {
  return loadLibc().koffi.address(buf);
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** "EPERM" for 1, "errno 999" for an unknown number. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** A failed system call: the errno and what was being done. Mapped to SockopsError by callers. */
export class SyscallError extends Error {
  readonly errno: number;
  readonly errnoName: string;

  constructor(what: string, errno: number) {
    super(`${what} failed: ${errnoName(errno)}`);
    this.errno = errno;
    this.errnoName = errnoName(errno);
  }
}

/** bpf(cmd, attr, attr.length); returns the result (an fd or 0) or throws SyscallError. */
export function bpf(cmd: number, attr: Buffer, what: string): number {
  const nr = bpfSyscallNumber();
  if (nr === undefined) {
    throw new SockopsError(SockopsErrorCode.BPF_UNSUPPORTED, `no bpf(2) syscall number known for architecture ${process.arch} (supported: ${Object.keys(BPF_SYSCALL).join(', ')})`);
  }
  const c = loadLibc();
  const ret = Number(c.syscall(nr, 'int', cmd, 'void *', attr, 'unsigned int', attr.length));
  if (ret < 0) throw new SyscallError(what, c.koffi.errno());
  return ret;
}

/** setsockopt(fd, level, name, &int, 4); throws SyscallError. */
export function setsockoptInt(fd: number, level: number, name: number, value: number, what: string): void {
  const c = loadLibc();
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) throw new RangeError(`setsockopt value ${value} is not a 32-bit integer`);
  // The kernel reads an int in host byte order.
  const v = nativeBuffer(4);
  if (isLittleEndian) v.writeInt32LE(value, 0);
  else v.writeInt32BE(value, 0);
  const ret = Number(c.setsockopt(fd, level, name, v, 4));
  if (ret < 0) throw new SyscallError(what, c.koffi.errno());
}

/**
 * getsockopt(fd, level, name, buf, &len): fills `buf` and returns the length the kernel wrote.
 * Throws SyscallError; on EINVAL `errno` holds EINVAL and the caller may retry with more room.
 */
export function getsockoptBytes(fd: number, level: number, name: number, buf: Buffer, what: string): number {
  const c = loadLibc();
  const len = nativeBuffer(4);
  if (isLittleEndian) len.writeUInt32LE(buf.length, 0);
  else len.writeUInt32BE(buf.length, 0);
  const ret = Number(c.getsockopt(fd, level, name, buf, len));
  if (ret < 0) throw new SyscallError(what, c.koffi.errno());
  return isLittleEndian ? len.readUInt32LE(0) : len.readUInt32BE(0);
}
