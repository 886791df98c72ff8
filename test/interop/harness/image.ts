/**
 * The guest image of the interop suite: Debian's Linux 6.1 kernel, fetched with `apt-get download`
 * and unpacked with `dpkg-deb -x` into a cache directory (never /boot, never the repository), the
 * rxe workaround module built against the unpacked headers, the static guest tools, and an
 * initramfs with busybox, the module closure of smc/smc_diag/rdma_rxe/virtio_net and /init.
 *
 * Cache: $SMCR_INTEROP_CACHE, else $XDG_CACHE_HOME/smc-r-interop, else ~/.cache/smc-r-interop.
 *   <cache>/<kernel package>_<version>/{debs,kernel,hdr}/ and a `.unpacked` stamp
 *   <cache>/<kernel package>_<version>/build-<hash of the guest sources>/{initramfs.gz,...}
 * A second run finds both and skips download, unpack and builds (a few apt-cache queries remain,
 * to notice a newer kernel package).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const GUEST_SRC = fileURLToPath(new URL('../guest/', import.meta.url));

/** Modules the guest needs; their dependency closure is added from each module's `depends=`. */
const ROOT_MODULES = ['crc32_generic', 'virtio_pci', 'virtio_net', 'rdma_rxe', 'smc', 'smc_diag'];
/** Kernel options the suite relies on (checked in the unpacked config). */
const REQUIRED_CONFIG = ['CONFIG_SMC=m', 'CONFIG_SMC_DIAG=m', 'CONFIG_RDMA_RXE=m', 'CONFIG_INFINIBAND=m', 'CONFIG_VIRTIO_NET=m', 'CONFIG_KPROBES=y'];

export interface KernelPackage {
  /** e.g. linux-image-6.1.0-56-amd64 */
  readonly image: string;
  /** e.g. 6.1.0-56-amd64 */
  readonly release: string;
  /** Debian version, e.g. 6.1.192-2 */
  readonly version: string;
}

export interface GuestImage {
  readonly kernel: KernelPackage;
  readonly vmlinuz: string;
  readonly initramfs: string;
  /** Steps done in this call with their wall time in ms (empty when everything came from the cache). */
  readonly timings: Record<string, number>;
}

export function cacheRoot(): string {
  const env = process.env['SMCR_INTEROP_CACHE'];
  if (env !== undefined && env !== '') return env;
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'smc-r-interop');
}

function sh(cmd: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args as string[], {
      encoding: 'utf8', cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr ?? '').trim().slice(-3000) || err.message}`);
  }
}

/** The newest linux-image-6.1.0-N-amd64 apt can download (highest ABI number with a candidate). */
export function pickKernelPackage(): KernelPackage {
  const names = sh('apt-cache', ['search', '--names-only', '^linux-image-6\\.1\\.0-[0-9]+-amd64$'])
    .split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => /^linux-image-6\.1\.0-\d+-amd64$/.test(n));
  const abi = (n: string): number => Number(/6\.1\.0-(\d+)-amd64/.exec(n)![1]);
  names.sort((a, b) => abi(b) - abi(a));
  for (const image of names.slice(0, 4)) {
    const m = /Candidate:\s*(\S+)/.exec(sh('apt-cache', ['policy', image]));
    if (m !== null && m[1] !== '(none)') return { image, release: image.slice('linux-image-'.length), version: m[1]! };
  }
  throw new Error(`no downloadable linux-image-6.1.*-amd64 package (apt-cache found: ${names.join(', ') || 'none'}); run apt-get update`);
}

function timed<T>(timings: Record<string, number>, name: string, f: () => T): T {
  const t0 = performance.now();
  const r = f();
  timings[name] = Math.round(performance.now() - t0);
  return r;
}

/** Downloads and unpacks the kernel image, headers and kbuild (once per package version). */
function unpackKernel(k: KernelPackage, dir: string, timings: Record<string, number>): void {
  if (existsSync(join(dir, '.unpacked'))) return;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'debs'), { recursive: true });
  const common = `linux-headers-${k.release.replace(/-amd64$/, '')}-common`;
  const pkgs = [k.image, `linux-headers-${k.release}`, common, 'linux-kbuild-6.1'];
  timed(timings, 'download', () => sh('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', ...pkgs], { cwd: join(tmp, 'debs'), timeoutMs: 600_000 }));
  timed(timings, 'unpack', () => {
    for (const deb of readdirSync(join(tmp, 'debs'))) {
      const into = deb.startsWith('linux-image-') ? 'kernel' : 'hdr';
      sh('dpkg-deb', ['-x', join(tmp, 'debs', deb), join(tmp, into)], { timeoutMs: 300_000 });
    }
  });
  const config = readFileSync(join(tmp, 'kernel', 'boot', `config-${k.release}`), 'utf8');
  const missing = REQUIRED_CONFIG.filter((c) => !config.split('\n').includes(c));
  if (missing.length > 0) throw new Error(`${k.image} lacks ${missing.join(', ')}`);
  // The arch headers' Makefile includes the common headers by absolute /usr/src path: point it at ours.
  const mk = join(tmp, 'hdr', 'usr', 'src', `linux-headers-${k.release}`, 'Makefile');
  writeFileSync(mk, readFileSync(mk, 'utf8').replace(/include \/usr\/src\//g, `include ${join(dir, 'hdr', 'usr', 'src')}/`));
  // The debs are not needed once unpacked.
  rmSync(join(tmp, 'debs'), { recursive: true, force: true });
  writeFileSync(join(tmp, '.unpacked'), `${k.image} ${k.version}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

/** `depends=` of a .ko file (from its .modinfo strings). */
function moduleDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const end = ko.indexOf(0, at + 1);
  const v = ko.subarray(at + 9, end).toString('latin1');
  return v === '' ? [] : v.split(',').map((s) => s.replace(/-/g, '_'));
}

function indexModules(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) out.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  walk(root);
  return out;
}

/** Module names in load order (dependencies first) and their files. */
function moduleClosure(modRoot: string): { name: string; path: string }[] {
  const idx = indexModules(modRoot);
  const order: { name: string; path: string }[] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const path = idx.get(name);
    if (path === undefined) throw new Error(`kernel module ${name} not found under ${modRoot}`);
    for (const d of moduleDepends(readFileSync(path))) visit(d);
    order.push({ name, path });
  };
  for (const m of ROOT_MODULES) visit(m);
  return order;
}

function sourcesHash(k: KernelPackage): string {
  const h = createHash('sha256').update(`${k.image} ${k.version}\n`);
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else h.update(`${p.slice(GUEST_SRC.length)}\n`).update(readFileSync(p));
    }
  };
  walk(GUEST_SRC);
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  return h.digest('hex').slice(0, 16);
}

/** Builds tools, module and initramfs into `out` (atomically: a temp dir renamed at the end). */
function buildGuest(k: KernelPackage, kdir: string, out: string, timings: Record<string, number>): void {
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const stage = join(tmp, 'stage');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'modules', 'etc']) mkdirSync(join(stage, d), { recursive: true });

  timed(timings, 'build-tools', () => {
    for (const tool of ['smc_test', 'smc_nl']) {
      sh('gcc', ['-static', '-O2', '-Wall', '-o', join(stage, 'bin', tool), join(GUEST_SRC, `${tool}.c`)]);
    }
  });
  const modDir = join(tmp, 'rxe_smc_fix');
  timed(timings, 'build-module', () => {
    mkdirSync(modDir);
    for (const f of ['rxe_smc_fix.c', 'Kbuild']) copyFileSync(join(GUEST_SRC, 'rxe_smc_fix', f), join(modDir, f));
    sh('make', ['-s', '-C', join(kdir, 'hdr', 'usr', 'src', `linux-headers-${k.release}`), `M=${modDir}`, 'modules'], { timeoutMs: 300_000 });
  });

  timed(timings, 'initramfs', () => {
    copyFileSync('/bin/busybox', join(stage, 'bin', 'busybox'));
    chmodSync(join(stage, 'bin', 'busybox'), 0o755);
    for (const line of sh('/bin/busybox', ['--list-full']).split('\n')) {
      const applet = line.trim();
      if (applet === '' || applet === 'bin/busybox') continue;
      const dst = join(stage, applet);
      if (existsSync(dst)) continue;
      mkdirSync(dirname(dst), { recursive: true });
      symlinkSync('/bin/busybox', dst);
    }
    const mods = moduleClosure(join(kdir, 'kernel', 'lib', 'modules', k.release, 'kernel'));
    for (const m of mods) copyFileSync(m.path, join(stage, 'modules', `${m.name}.ko`));
    copyFileSync(join(modDir, 'rxe_smc_fix.ko'), join(stage, 'modules', 'rxe_smc_fix.ko'));
    writeFileSync(join(stage, 'modules', 'order'), `${[...mods.map((m) => m.name), 'rxe_smc_fix'].join('\n')}\n`);
    copyFileSync(join(GUEST_SRC, 'init.sh'), join(stage, 'init'));
    chmodSync(join(stage, 'init'), 0o755);
    // The kernel opens /dev/console for /init before anything is mounted.
    sh('mknod', ['-m', '600', join(stage, 'dev', 'console'), 'c', '5', '1']);
    sh('sh', ['-c', 'cd "$1" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$2"', 'sh', stage, join(tmp, 'initramfs.gz')]);
  });
  rmSync(stage, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
}

/** Everything the guest needs, from the cache when possible. */
export function prepareGuestImage(): GuestImage {
  const timings: Record<string, number> = {};
  const kernel = timed(timings, 'apt-cache', () => pickKernelPackage());
  const kdir = join(cacheRoot(), `${kernel.image}_${kernel.version}`);
  mkdirSync(dirname(kdir), { recursive: true });
  unpackKernel(kernel, kdir, timings);
  const out = join(kdir, `build-${sourcesHash(kernel)}`);
  if (!existsSync(join(out, 'initramfs.gz'))) buildGuest(kernel, kdir, out, timings);
  return { kernel, vmlinuz: join(kdir, 'kernel', 'boot', `vmlinuz-${kernel.release}`), initramfs: join(out, 'initramfs.gz'), timings };
}

/** Why the interop suite cannot run here (root, tools), or undefined. */
export function interopMissing(): string | undefined {
  const why: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) why.push('needs root (network namespace, tap, mknod)');
  const have = (c: string): boolean => {
    try {
      execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  for (const [cmd, pkg] of [
    ['qemu-system-x86_64', 'qemu-system-x86'], ['apt-get', 'apt'], ['dpkg-deb', 'dpkg'], ['gcc', 'gcc'], ['make', 'make'],
    ['ip', 'iproute2'], ['nsenter', 'util-linux'], ['setpriv', 'util-linux'], ['tcpdump', 'tcpdump'],
  ] as const) {
    if (!have(cmd)) why.push(`${cmd} not installed (Debian package ${pkg})`);
  }
  if (!existsSync('/bin/busybox')) why.push('/bin/busybox missing (Debian package busybox-static)');
  if (!existsSync('/dev/net/tun')) why.push('/dev/net/tun missing (no TUN/TAP)');
  if (!existsSync('/usr/include/x86_64-linux-gnu/sys/socket.h') && !existsSync('/usr/include/sys/socket.h')) why.push('libc6-dev missing (static guest tools)');
  return why.length > 0 ? why.join('; ') : undefined;
}
