/**
 * The bpf(2) commands the loader uses, each filling its part of `union bpf_attr`
 * (linux/bpf.h; offsets are UAPI and never change). No libbpf: the generated artefact already
 * holds the instructions, the map parameters and the BTF blob. Fields are written little-endian:
 * the artefact is bpfel, and sockopsAvailability() refuses big-endian hosts.
 */
import { addressOf, bpf, nativeBuffer, SyscallError } from './libc.js';

/** bpf(2) commands (enum bpf_cmd). */
export const BpfCmd = {
  MAP_CREATE: 0,
  MAP_LOOKUP_ELEM: 1,
  MAP_UPDATE_ELEM: 2,
  MAP_DELETE_ELEM: 3,
  PROG_LOAD: 5,
  BTF_LOAD: 18,
  LINK_CREATE: 28,
} as const;

/** Larger than every attr we fill; the kernel accepts any size whose tail past its own is zero. */
const ATTR_SIZE = 128;
const OBJ_NAME_LEN = 16;

/** Flags of MAP_UPDATE_ELEM. */
export const BPF_ANY = 0;

/** Where the loader's log went when PROG_LOAD or BTF_LOAD failed. */
export class BpfLoadError extends SyscallError {
  readonly log: string;

  constructor(what: string, errno: number, log: string) {
    super(what, errno);
    this.log = log;
  }
}

function attr(): Buffer {
  return nativeBuffer(ATTR_SIZE);
}

function putU32(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v >>> 0, off);
}

function putPtr(buf: Buffer, off: number, p: Buffer): void {
  buf.writeBigUInt64LE(addressOf(p), off);
}

function putName(buf: Buffer, off: number, name: string): void {
  // Object names are at most 15 characters of [A-Za-z0-9_.]; the kernel refuses others.
  buf.write(name.slice(0, OBJ_NAME_LEN - 1), off, 'latin1');
}

/** Keeps buffers whose addresses went into an attr alive until after the call. */
function keep(..._bufs: Buffer[]): void {
  // Intentionally empty: being passed here keeps the references live past the syscall.
}

function logText(log: Buffer): string {
  const end = log.indexOf(0);
  return log.toString('utf8', 0, end < 0 ? log.length : end).trim();
}

/** BPF_BTF_LOAD; returns the BTF fd. On failure retries with a log and throws BpfLoadError. */
export function btfLoad(blob: Buffer): number {
  const data = nativeBuffer(blob.length);
  blob.copy(data);
  const a = attr();
  putPtr(a, 0, data);
  putU32(a, 16, data.length);
  try {
    return bpf(BpfCmd.BTF_LOAD, a, 'BPF_BTF_LOAD');
  } catch (e) {
    if (!(e instanceof SyscallError) || e.errnoName === 'EPERM') throw e;
    const log = nativeBuffer(64 * 1024);
    putPtr(a, 8, log);
    putU32(a, 20, log.length);
    putU32(a, 24, 1);
    try {
      bpf(BpfCmd.BTF_LOAD, a, 'BPF_BTF_LOAD');
    } catch {
      // the log is what we want
    }
    keep(data, log);
    throw new BpfLoadError('BPF_BTF_LOAD', e.errno, logText(log));
  } finally {
    keep(data);
  }
}

export interface MapCreateSpec {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly btfFd: number;
  readonly btfKeyTypeId: number;
  readonly btfValueTypeId: number;
}

/** BPF_MAP_CREATE; returns the map fd. */
export function mapCreate(spec: MapCreateSpec): number {
  const a = attr();
  putU32(a, 0, spec.type);
  putU32(a, 4, spec.keySize);
  putU32(a, 8, spec.valueSize);
  putU32(a, 12, spec.maxEntries);
  putU32(a, 16, spec.flags);
  putName(a, 28, spec.name);
  if (spec.btfKeyTypeId !== 0 || spec.btfValueTypeId !== 0) {
    putU32(a, 48, spec.btfFd);
    putU32(a, 52, spec.btfKeyTypeId);
    putU32(a, 56, spec.btfValueTypeId);
  }
  return bpf(BpfCmd.MAP_CREATE, a, `BPF_MAP_CREATE ${spec.name}`);
}

export interface ProgLoadSpec {
  readonly name: string;
  readonly type: number;
  readonly expectedAttachType: number;
  readonly insns: Buffer;
  readonly license: string;
}

/** BPF_PROG_LOAD; returns the program fd. On failure reruns with the verifier log (BpfLoadError). */
export function progLoad(spec: ProgLoadSpec): number {
  const insns = nativeBuffer(spec.insns.length);
  spec.insns.copy(insns);
  const license = nativeBuffer(spec.license.length + 1);
  license.write(spec.license, 0, 'latin1');
  const a = attr();
  putU32(a, 0, spec.type);
  putU32(a, 4, insns.length / 8);
  putPtr(a, 8, insns);
  putPtr(a, 16, license);
  putName(a, 48, spec.name);
  putU32(a, 68, spec.expectedAttachType);
  try {
    return bpf(BpfCmd.PROG_LOAD, a, 'BPF_PROG_LOAD');
  } catch (e) {
    if (!(e instanceof SyscallError) || e.errnoName === 'EPERM') throw e;
    const log = nativeBuffer(1 << 20);
    putU32(a, 24, 1);
    putU32(a, 28, log.length);
    putPtr(a, 32, log);
    try {
      const fd = bpf(BpfCmd.PROG_LOAD, a, 'BPF_PROG_LOAD');
      return fd; // loaded the second time (a transient failure): keep it
    } catch {
      // the log explains the first failure
    }
    keep(insns, license, log);
    throw new BpfLoadError('BPF_PROG_LOAD', e.errno, logText(log));
  } finally {
    keep(insns, license);
  }
}

/** BPF_LINK_CREATE of `progFd` on `targetFd` (a cgroup directory fd); returns the link fd. */
export function linkCreate(progFd: number, targetFd: number, attachType: number): number {
  const a = attr();
  putU32(a, 0, progFd);
  putU32(a, 4, targetFd);
  putU32(a, 8, attachType);
  return bpf(BpfCmd.LINK_CREATE, a, 'BPF_LINK_CREATE');
}

/** BPF_MAP_LOOKUP_ELEM into `value`; false when the key is absent (ENOENT). */
export function mapLookup(mapFd: number, key: Buffer, value: Buffer, what: string): boolean {
  const a = attr();
  putU32(a, 0, mapFd);
  putPtr(a, 8, key);
  putPtr(a, 16, value);
  try {
    bpf(BpfCmd.MAP_LOOKUP_ELEM, a, what);
    return true;
  } catch (e) {
    if (e instanceof SyscallError && e.errnoName === 'ENOENT') return false;
    throw e;
  } finally {
    keep(key, value);
  }
}

/** BPF_MAP_UPDATE_ELEM. */
export function mapUpdate(mapFd: number, key: Buffer, value: Buffer, flags: number, what: string): void {
  const a = attr();
  putU32(a, 0, mapFd);
  putPtr(a, 8, key);
  putPtr(a, 16, value);
  a.writeBigUInt64LE(BigInt(flags), 24);
  try {
    bpf(BpfCmd.MAP_UPDATE_ELEM, a, what);
  } finally {
    keep(key, value);
  }
}

/** BPF_MAP_DELETE_ELEM; false when the key was absent. */
export function mapDelete(mapFd: number, key: Buffer, what: string): boolean {
  const a = attr();
  putU32(a, 0, mapFd);
  putPtr(a, 8, key);
  try {
    bpf(BpfCmd.MAP_DELETE_ELEM, a, what);
    return true;
  } catch (e) {
    if (e instanceof SyscallError && e.errnoName === 'ENOENT') return false;
    throw e;
  } finally {
    keep(key);
  }
}
