/**
 * SmcOptionProgram: the loaded and attached sock_ops program, its maps, and the cgroup it owns.
 *
 * open():  BTF_LOAD -> MAP_CREATE x4 -> PROG_LOAD (nothing outside this process exists yet, so a
 *          failure here leaves nothing) -> mkdir smcr-<pid> -> LINK_CREATE on it -> move the
 *          process in. Nothing is pinned: the process holds the map and link fds, so a crash frees
 *          them (a bpf link detaches when its last fd closes) and leaves only an empty cgroup
 *          directory, which the next open() removes.
 * close(): move the process (and anything it spawned meanwhile) back, close the link (detach),
 *          rmdir the child, close the maps. Idempotent; never throws.
 */
import { closeSync, openSync, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { checkAvailability } from './availability.js';
import { BPF_ANY, BpfLoadError, btfLoad, linkCreate, mapCreate, mapDelete, mapLookup, mapUpdate, progLoad } from './bpf.js';
import { CGROUP_PREFIX, checkCgroupName, createChild, enter, leaveAndRemove, locateCgroup, removeStaleCgroups } from './cgroup.js';
import { SockopsError, SockopsErrorCode } from './errors.js';
import { socketFd } from './fd.js';
import { SMC_OPT_OBJECT } from './generated/program.js';
import { decodeRecord, encodeListenKey, encodeOfferKey, statName, type PeerState } from './keys.js';
import { isLittleEndian, nativeBuffer, SyscallError } from './libc.js';
import type { BpfMapSpec, BpfObject } from './object.js';

const BPF_MAP_TYPE_SK_STORAGE = 24;

export interface SmcOptionProgramOptions {
  /** Name of the child cgroup created under the process's own; default `smcr-<pid>`. */
  readonly cgroupName?: string;
}

/** The one program open in this process (it owns the process's cgroup membership). */
let current: SmcOptionProgram | undefined;

function mapSpec(obj: BpfObject, name: string): { spec: BpfMapSpec; index: number } {
  const index = obj.maps.findIndex((m) => m.name === name);
  if (index < 0) throw new Error(`generated program has no map ${name}: rebuild src/generated/program.ts`);
  return { spec: obj.maps[index]!, index };
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Maps a bpf(2) failure during open() to the SockopsError that says what to fix. */
export function loadError(e: unknown, step: string): SockopsError {
  if (e instanceof SockopsError) return e;
  if (!(e instanceof SyscallError)) return new SockopsError(SockopsErrorCode.LOAD_FAILED, `${step}: ${(e as Error).message}`, { cause: e });
  const errno = e.errnoName;
  if (errno === 'EPERM' || (errno === 'EACCES' && !(e instanceof BpfLoadError))) {
    const uid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
    return new SockopsError(
      uid === 0 ? SockopsErrorCode.NO_CAP : SockopsErrorCode.NOT_ROOT,
      `${step}: ${errno}: bpf(2) needs CAP_BPF + CAP_NET_ADMIN (or CAP_SYS_ADMIN)${uid === 0 ? ' in the effective set (a security module or container may also refuse it)' : `, running as uid ${uid}`}`,
      { cause: e, errno },
    );
  }
  if (errno === 'ENOSYS') {
    return new SockopsError(SockopsErrorCode.BPF_UNSUPPORTED, `${step}: ENOSYS: this kernel has no bpf(2) (CONFIG_BPF_SYSCALL)`, { cause: e, errno });
  }
  if (errno === 'EINVAL' && (step.startsWith('BPF_MAP_CREATE') || step === 'BPF_LINK_CREATE')) {
    return new SockopsError(
      SockopsErrorCode.BPF_UNSUPPORTED,
      `${step}: EINVAL: the kernel lacks ${step === 'BPF_LINK_CREATE' ? 'bpf links for cgroup sock_ops (5.7+) or CONFIG_CGROUP_BPF' : 'this map type (SK_STORAGE needs 5.2+ and BTF)'}`,
      { cause: e, errno },
    );
  }
  const log = e instanceof BpfLoadError && e.log !== '' ? `\n${e.log.split('\n').slice(-40).join('\n')}` : '';
  return new SockopsError(SockopsErrorCode.LOAD_FAILED, `${step}: ${errno}${log}`, { cause: e, errno });
}

export class SmcOptionProgram {
  /** Absolute path of the cgroup the program is attached to (and this process runs in). */
  readonly cgroupPath: string;
  readonly #parentPath: string;
  #linkFd: number;
  readonly #mapFds: number[];
  readonly #state: { fd: number; spec: BpfMapSpec };
  readonly #offer: { fd: number; spec: BpfMapSpec };
  readonly #listen: { fd: number; spec: BpfMapSpec };
  readonly #stats: { fd: number; spec: BpfMapSpec; names: [string, number][] };
  readonly #offers = new Map<string, number>();
  readonly #listens = new Map<number, number>();
  // Scratch buffers for map calls: allocated once, off-heap (their addresses go to the kernel).
  readonly #key: Buffer;
  readonly #value: Buffer;
  readonly #one: Buffer;
  #closed = false;

  private constructor(fields: { cgroupPath: string; parentPath: string; object: BpfObject; linkFd: number; mapFds: number[] }) {
    this.cgroupPath = fields.cgroupPath;
    this.#parentPath = fields.parentPath;
    this.#linkFd = fields.linkFd;
    this.#mapFds = fields.mapFds;
    const map = (name: string): { fd: number; spec: BpfMapSpec } => {
      const { spec, index } = mapSpec(fields.object, name);
      return { fd: fields.mapFds[index]!, spec };
    };
    this.#state = map('smcr_sk_state');
    this.#offer = map('smcr_offer');
    this.#listen = map('smcr_listen');
    const statEnum = fields.object.enums['smcr_stat'] ?? {};
    const names = Object.entries(statEnum).filter(([n]) => !n.endsWith('__COUNT')).map(([n, i]): [string, number] => [statName(n), i]);
    this.#stats = { ...map('smcr_stats'), names };
    const maxKey = Math.max(...fields.object.maps.map((m) => m.keySize));
    const maxValue = Math.max(...fields.object.maps.map((m) => m.valueSize));
    this.#key = nativeBuffer(maxKey);
    this.#value = nativeBuffer(maxValue);
    this.#one = nativeBuffer(4);
    this.#one.writeUInt32LE(1, 0);
  }

  /**
   * Loads the program, attaches it to a new child cgroup of this process's cgroup, and moves this
   * process there. Sockets made afterwards are covered; sockets made before are not. Throws
   * SockopsError naming what is missing (privilege, cgroup v2, kernel support).
   */
  static open(opts: SmcOptionProgramOptions = {}): SmcOptionProgram {
    if (current !== undefined) {
      throw new SockopsError(SockopsErrorCode.ALREADY_OPEN, `a program is already open in this process (cgroup ${current.cgroupPath}); share it, or close() it first`);
    }
    const name = opts.cgroupName ?? `${CGROUP_PREFIX}${process.pid}`;
    checkCgroupName(name);
    checkAvailability();
    const where = locateCgroup();
    removeStaleCgroups(where.dir);
    const obj = SMC_OPT_OBJECT;
    const fds: number[] = [];
    let btfFd = -1;
    let progFd = -1;
    let cgFd = -1;
    let created = false;
    let step = 'BPF_BTF_LOAD';
    const child = join(where.dir, name);
    try {
      btfFd = btfLoad(Buffer.from(obj.btf, 'base64'));
      for (const m of obj.maps) {
        step = `BPF_MAP_CREATE ${m.name}`;
        fds.push(mapCreate({ ...m, btfFd: m.type === BPF_MAP_TYPE_SK_STORAGE ? btfFd : 0 }));
      }
      step = 'BPF_PROG_LOAD';
      const insns = Buffer.from(obj.insns, 'base64');
      for (const r of obj.relocations) {
        const off = r.insn * 8;
        // ld_imm64 dst, map: src_reg = BPF_PSEUDO_MAP_FD (1) in the high nibble of byte 1.
        insns[off + 1] = (insns[off + 1]! & 0x0f) | (1 << 4);
        insns.writeInt32LE(fds[r.map]!, off + 4);
      }
      progFd = progLoad({ name: obj.progName, type: obj.progType, expectedAttachType: obj.expectedAttachType, insns, license: obj.license });
      step = `creating cgroup ${child}`;
      createChild(child);
      created = true;
      cgFd = openSync(child, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
      step = 'BPF_LINK_CREATE';
      const linkFd = linkCreate(progFd, cgFd, obj.expectedAttachType);
      // The link holds the program and the cgroup; their fds are no longer needed.
      closeQuietly(progFd);
      progFd = -1;
      closeQuietly(cgFd);
      cgFd = -1;
      closeQuietly(btfFd);
      btfFd = -1;
      const prog = new SmcOptionProgram({ cgroupPath: child, parentPath: where.dir, object: obj, linkFd, mapFds: fds });
      step = `moving into ${child}`;
      try {
        enter(child);
      } catch (e) {
        // close() owns every fd and the directory now: nothing is left for the handler below.
        prog.close();
        fds.length = 0;
        created = false;
        throw e;
      }
      current = prog;
      return prog;
    } catch (e) {
      for (const fd of [progFd, cgFd, btfFd, ...fds]) if (fd >= 0) closeQuietly(fd);
      if (created) leaveAndRemove(child, where.dir);
      throw loadError(e, step);
    }
  }

  #check(what: string): void {
    if (this.#closed) throw new SockopsError(SockopsErrorCode.CLOSED, `${what}: the program is closed`);
  }

  #mapError(e: unknown, what: string): never {
    if (e instanceof SyscallError) {
      if (e.errnoName === 'E2BIG' || e.errnoName === 'ENOMEM') {
        throw new SockopsError(SockopsErrorCode.MAP_FULL, `${what}: the map is full (${e.errnoName}); withdraw entries first`, { cause: e, errno: e.errnoName });
      }
      throw new SockopsError(SockopsErrorCode.LOAD_FAILED, `${what}: ${e.errnoName}`, { cause: e, errno: e.errnoName });
    }
    throw e;
  }

  /** SYNs to address:port carry the SMC option from now on. Refcounted: each call needs a withdrawOffer(). */
  offerTo(address: string, port: number): void {
    this.#check('offerTo');
    encodeOfferKey(this.#offer.spec.key, address, port, this.#key, isLittleEndian);
    const id = this.#key.toString('hex', 0, this.#offer.spec.keySize);
    const n = this.#offers.get(id) ?? 0;
    if (n === 0) {
      try {
        mapUpdate(this.#offer.fd, this.#key, this.#one, BPF_ANY, 'offerTo');
      } catch (e) {
        this.#mapError(e, `offerTo(${address}, ${port})`);
      }
    }
    this.#offers.set(id, n + 1);
  }

  /** Drops one offerTo() of address:port; the entry leaves the map with the last one. Unknown entries are ignored. */
  withdrawOffer(address: string, port: number): void {
    this.#check('withdrawOffer');
    encodeOfferKey(this.#offer.spec.key, address, port, this.#key, isLittleEndian);
    const id = this.#key.toString('hex', 0, this.#offer.spec.keySize);
    const n = this.#offers.get(id);
    if (n === undefined) return;
    if (n > 1) {
      this.#offers.set(id, n - 1);
      return;
    }
    this.#offers.delete(id);
    try {
      mapDelete(this.#offer.fd, this.#key, 'withdrawOffer');
    } catch (e) {
      this.#mapError(e, `withdrawOffer(${address}, ${port})`);
    }
  }

  /** SYN-ACKs from local port `port` echo the option when the SYN carried it. Refcounted. */
  listenOn(port: number): void {
    this.#check('listenOn');
    encodeListenKey(this.#listen.spec.key, port, this.#key, isLittleEndian);
    const n = this.#listens.get(port) ?? 0;
    if (n === 0) {
      try {
        mapUpdate(this.#listen.fd, this.#key, this.#one, BPF_ANY, 'listenOn');
      } catch (e) {
        this.#mapError(e, `listenOn(${port})`);
      }
    }
    this.#listens.set(port, n + 1);
  }

  /** Drops one listenOn(port). Unknown ports are ignored. */
  stopListening(port: number): void {
    this.#check('stopListening');
    encodeListenKey(this.#listen.spec.key, port, this.#key, isLittleEndian);
    const n = this.#listens.get(port);
    if (n === undefined) return;
    if (n > 1) {
      this.#listens.set(port, n - 1);
      return;
    }
    this.#listens.delete(port);
    try {
      mapDelete(this.#listen.fd, this.#key, 'stopListening');
    } catch (e) {
      this.#mapError(e, `stopListening(${port})`);
    }
  }

  /**
   * What the program recorded for a connected socket (or its fd): undefined when it recorded
   * nothing (a destination we did not offer to, a port we do not listen on, a socket made outside
   * the cgroup, or a handshake not finished yet).
   */
  peerState(socket: Socket | number): PeerState | undefined {
    this.#check('peerState');
    const fd = socketFd(socket, 'peerState');
    const key = this.#key;
    if (isLittleEndian) key.writeInt32LE(fd, 0);
    else key.writeInt32BE(fd, 0);
    let found: boolean;
    try {
      found = mapLookup(this.#state.fd, key, this.#value, 'peerState');
    } catch (e) {
      if (e instanceof SyscallError && (e.errnoName === 'EBADF' || e.errnoName === 'ENOTSOCK' || e.errnoName === 'EOPNOTSUPP' || e.errnoName === 'EINVAL')) {
        throw new SockopsError(SockopsErrorCode.BAD_SOCKET, `peerState: fd ${fd}: ${e.errnoName} (not a TCP socket of this process)`, { cause: e, errno: e.errnoName });
      }
      this.#mapError(e, 'peerState');
    }
    return found ? decodeRecord(this.#state.spec.value, this.#value, isLittleEndian) : undefined;
  }

  /** The program's counters (SYNs/SYN-ACKs written, options found, ENOSPC, syncookies...). */
  stats(): Readonly<Record<string, number>> {
    this.#check('stats');
    const out: Record<string, number> = {};
    for (const [name, index] of this.#stats.names) {
      this.#key.writeUInt32LE(index, 0);
      try {
        out[name] = mapLookup(this.#stats.fd, this.#key, this.#value, 'stats') ? Number(this.#value.readBigUInt64LE(0)) : 0;
      } catch (e) {
        this.#mapError(e, 'stats');
      }
    }
    return Object.freeze(out);
  }

  /** Detaches, moves the process back to its cgroup and removes the child cgroup. Idempotent; never throws. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (current === this) current = undefined;
    // Detach first, so nothing new is covered while the process moves back.
    if (this.#linkFd >= 0) closeQuietly(this.#linkFd);
    this.#linkFd = -1;
    const problems = leaveAndRemove(this.cgroupPath, this.#parentPath);
    for (const fd of this.#mapFds) closeQuietly(fd);
    this.#offers.clear();
    this.#listens.clear();
    if (problems.length > 0) {
      process.emitWarning(`@smc-r/sockops: close() left something behind: ${problems.join('; ')}`, { code: 'SMCR_SOCKOPS_CLEANUP' });
    }
  }
}
