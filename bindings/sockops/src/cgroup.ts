/**
 * The cgroup the sock_ops program is attached to. A cgroup sock_ops program applies to sockets
 * created by processes in that cgroup (or below it), and a socket keeps the cgroup it was created
 * in (bpf-eval.md 1.4 finding 5). So open() creates a child `smcr-<pid>` of the cgroup this
 * process runs in, attaches there, and moves the process in before the application makes its
 * sockets; close() moves everything back and removes the child.
 *
 * The cgroup2 mount is looked up in /proc/self/mounts (on hybrid systems it is
 * /sys/fs/cgroup/unified, not /sys/fs/cgroup). A child left by a crashed process is empty once that
 * process is gone, and the next open() removes it; the attachment itself is a bpf link that died
 * with the crashed process's fds.
 */
import { accessSync, constants as fsConstants, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SockopsError, SockopsErrorCode } from './errors.js';

/** Prefix of the cgroups this package creates; the rest is the creating process's pid. */
export const CGROUP_PREFIX = 'smcr-';
const OWN_NAME_RE = /^smcr-(\d+)$/;
const NAME_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,127}$/;

/** Decodes the octal escapes of /proc/self/mounts (`\040` for a space, `\011`, `\012`, `\134`). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mount point of the first cgroup2 file system in a /proc/self/mounts text, if any. */
export function findCgroup2Mount(mounts: string): string | undefined {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f.length >= 3 && f[2] === 'cgroup2') return unescapeMountField(f[1]!);
  }
  return undefined;
}

/** This process's cgroup v2 path (relative to the cgroup2 root) from /proc/self/cgroup: the `0::` line. */
export function ownCgroupPath(procSelfCgroup: string): string | undefined {
  for (const line of procSelfCgroup.split('\n')) {
    if (line.startsWith('0::')) {
      const p = line.slice(3).trim();
      // " (deleted)" marks a cgroup removed under us; it cannot take a child.
      if (p.startsWith('/') && !p.endsWith(' (deleted)')) return p;
    }
  }
  return undefined;
}

/** Validates a cgroup directory name given by the caller (one path component, no dots-only name). */
export function checkCgroupName(name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name === '.' || name === '..' || name.startsWith('cgroup.')) {
    throw new SockopsError(SockopsErrorCode.BAD_OPTION, `cgroupName ${JSON.stringify(name)} is not a plain directory name ([A-Za-z0-9_.-], at most 128 characters, not "cgroup.*")`);
  }
}

/** The pid in an `smcr-<pid>` name, or undefined for any other name. */
export function pidOfCgroupName(name: string): number | undefined {
  const m = OWN_NAME_RE.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Which of `entries` (the names in the parent cgroup directory) are stale `smcr-<pid>` children:
 * the pid is not ours and no longer alive. Whether they are empty is checked when removing.
 */
export function staleCandidates(entries: readonly string[], selfPid: number, alive: (pid: number) => boolean): string[] {
  const out: string[] = [];
  for (const name of entries) {
    const pid = pidOfCgroupName(name);
    if (pid === undefined || pid === selfPid) continue;
    if (!alive(pid)) out.push(name);
  }
  return out.sort();
}

/** Whether a process exists (EPERM means it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Where this process runs in cgroup v2: the mount, its own cgroup directory. Throws NO_CGROUP2. */
export interface CgroupLocation {
  readonly mount: string;
  /** Absolute directory of the cgroup this process is in now. */
  readonly dir: string;
}

export function locateCgroup(): CgroupLocation {
  let mounts: string;
  let self: string;
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
    self = readFileSync('/proc/self/cgroup', 'utf8');
  } catch (e) {
    throw new SockopsError(SockopsErrorCode.NO_CGROUP2, `cannot read /proc/self/mounts or /proc/self/cgroup (${(e as Error).message}); is /proc mounted?`, { cause: e });
  }
  const mount = findCgroup2Mount(mounts);
  if (mount === undefined) {
    throw new SockopsError(
      SockopsErrorCode.NO_CGROUP2,
      'no cgroup2 file system is mounted in this mount namespace (none in /proc/self/mounts); mount one (mount -t cgroup2 none /sys/fs/cgroup/unified), or do not start the process with `ip netns exec`, which remounts /sys and hides it (use nsenter --net=/run/netns/NAME)',
    );
  }
  const rel = ownCgroupPath(self);
  if (rel === undefined) {
    throw new SockopsError(SockopsErrorCode.NO_CGROUP2, 'this process is in no cgroup v2 hierarchy (no "0::" line in /proc/self/cgroup); the kernel needs cgroup v2 for sock_ops programs');
  }
  return { mount, dir: join(mount, rel) };
}

function cgroupError(e: unknown, action: string): SockopsError {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  if (code === 'EBUSY' || code === 'EOPNOTSUPP' || code === 'ENOTSUP') {
    return new SockopsError(
      SockopsErrorCode.CGROUP_BUSY,
      `${action}: ${code}: the cgroup cannot hold processes in a child ("no internal processes": it has domain controllers enabled in cgroup.subtree_control, or is threaded); run the process in a leaf cgroup with no controllers enabled below it`,
      { cause: e, errno: code },
    );
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
    return new SockopsError(
      uid === 0 ? SockopsErrorCode.CGROUP_ACCESS : SockopsErrorCode.NOT_ROOT,
      `${action}: ${code}: the cgroup tree is not writable here; run as root or in a delegated cgroup subtree (systemd-run -p Delegate=yes), with write access to the common ancestor`,
      { cause: e, errno: code },
    );
  }
  return new SockopsError(SockopsErrorCode.CGROUP_ACCESS, `${action}: ${(e as Error).message}`, { cause: e, errno: code || undefined });
}

/** The pids listed in a cgroup's cgroup.procs (empty when unreadable). */
export function cgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter((l) => l !== '').map(Number);
  } catch {
    return [];
  }
}

/** Removes stale `smcr-<pid>` children of `parent` (dead pid, no processes). Returns the names removed. */
export function removeStaleCgroups(parent: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of staleCandidates(entries, process.pid, pidAlive)) {
    const dir = join(parent, name);
    if (cgroupProcs(dir).length > 0) continue; // a child process of the dead one still runs there
    try {
      rmdirSync(dir);
      removed.push(name);
    } catch {
      // it has children cgroups or went away: not ours to force
    }
  }
  return removed;
}

/** Writes `pid` into `dir`/cgroup.procs (moves the whole thread group). */
export function moveProcess(dir: string, pid: number): void {
  writeFileSync(join(dir, 'cgroup.procs'), `${pid}\n`);
}

/**
 * Creates the child cgroup `dir`. A leftover with that name is reused only when it is empty;
 * throws CGROUP_BUSY when other processes are in it.
 */
export function createChild(dir: string): void {
  try {
    mkdirSync(dir);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw cgroupError(e, `mkdir ${dir}`);
  }
  const procs = cgroupProcs(dir).filter((p) => p !== process.pid);
  if (procs.length > 0) {
    throw new SockopsError(SockopsErrorCode.CGROUP_BUSY, `cgroup ${dir} already exists and holds processes ${procs.slice(0, 5).join(', ')}: another program uses that name; pick another cgroupName`);
  }
}

/** Moves this process into `dir`; maps the errno to a SockopsError. */
export function enter(dir: string): void {
  try {
    moveProcess(dir, process.pid);
  } catch (e) {
    throw cgroupError(e, `moving pid ${process.pid} into ${dir}`);
  }
}

/**
 * Moves every process of `child` (this one and any it spawned while inside) back to `parent` and
 * removes `child`. Never throws; returns the problems met, for a warning.
 */
export function leaveAndRemove(child: string, parent: string): string[] {
  const problems: string[] = [];
  for (let round = 0; round < 3; round++) {
    const procs = cgroupProcs(child);
    if (procs.length === 0) break;
    for (const pid of procs) {
      try {
        moveProcess(parent, pid);
      } catch (e) {
        if (round === 2) problems.push(`moving pid ${pid} back to ${parent}: ${(e as Error).message}`);
      }
    }
  }
  try {
    rmdirSync(child);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`rmdir ${child}: ${(e as Error).message}`);
  }
  return problems;
}

/** Whether `dir` is writable by this process (mkdir and cgroup.procs need it). */
export function writable(dir: string): boolean {
  try {
    accessSync(dir, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}
