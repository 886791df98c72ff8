#!/usr/bin/env node
// Entry point of `npm run demo`, `npm test` and `npm run bench` on a fresh clone: brings pnpm and the
// workspace dependencies (npm registry only), the Debian tools the tests use (when root), builds,
// then runs the job. Plain JavaScript with no dependencies, because nothing is installed yet.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const job = process.argv[2];
const rest = process.argv.slice(3);
const jobs = ['demo', 'test', 'bench'];
if (!jobs.includes(job)) {
  console.error(`usage: node scripts/bootstrap.mjs ${jobs.join('|')} [args...]`);
  process.exit(2);
}

/** Debian packages the test suite uses, keyed by the command that shows they are present. */
const TEST_TOOLS = [
  { cmd: 'tshark', pkg: 'tshark', why: 'independent SMC/InfiniBand dissector used as the conformance oracle' },
  { cmd: 'tcpdump', pkg: 'tcpdump', why: 'captures real loopback traffic for the oracle tests' },
  { cmd: 'clang', pkg: 'clang', why: 'compiles the tc cls_bpf packet dropper of the loss tests, and rebuilds the sock_ops program to check the committed artefact' },
  { cmd: 'ip', pkg: 'iproute2', why: 'creates the network namespaces and veth pairs of the softroce tests' },
  { cmd: 'tc', pkg: 'iproute2', why: 'attaches the packet dropper to a veth' },
  { file: '/usr/include/infiniband/verbs.h', pkg: 'libibverbs-dev', why: 'the ibverbs binding is checked against the real verbs.h (layout and a C test device)' },
  { file: '/usr/lib/x86_64-linux-gnu/libibverbs.so.1', pkg: 'libibverbs1', why: 'device enumeration through the real libibverbs' },
  { file: '/usr/include/rdma/rdma_cma.h', pkg: 'librdmacm-dev', why: 'the librdmacm binding (iWARP connection setup) is checked against the real rdma_cma.h and a C test CM' },
  { cmd: 'bpftool', pkg: 'bpftool', why: 'verifies independently that the sock_ops link and program are gone after close (test/sockops)' },
  { cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86', why: 'boots a Linux guest with kernel SMC-R for the interop tests' },
  { cmd: 'busybox', pkg: 'busybox-static', why: 'the interop guest\'s initramfs userland' },
  { cmd: 'gcc', pkg: 'gcc', why: 'builds the C test device (ibverbs), the static guest tools and the rxe workaround module (interop)' },
  { cmd: 'make', pkg: 'make', why: 'builds the rxe workaround module against the guest kernel\'s headers (interop)' },
  { file: '/usr/lib/x86_64-linux-gnu/libc.a', pkg: 'libc6-dev', why: 'links the interop guest tools statically' },
  { cmd: 'nsenter', pkg: 'util-linux', why: 'runs test processes in a network namespace without hiding the cgroup2 mount' },
];

function log(msg) {
  process.stderr.write(`[bootstrap] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function must(cmd, args, opts) {
  const code = run(cmd, args, opts);
  if (code !== 0) {
    log(`failed (exit ${code}): ${cmd} ${args.join(' ')}`);
    process.exit(code);
  }
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** A tool is present when its command is on PATH, or for libraries and headers, when its file exists. */
function present(t) {
  return t.cmd ? have(t.cmd) : existsSync(t.file);
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function ensureDebianTools(tools) {
  const missing = tools.filter((t) => !present(t));
  if (missing.length === 0) return;
  if (!isRoot || !have('apt-get')) {
    for (const t of missing) log(`${t.cmd ?? t.file} missing and not root: tests that need it (${t.why}) will skip and say so`);
    return;
  }
  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  log(`installing Debian packages: ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // tshark's postinst asks whether non-root users may capture; answer before it asks.
  spawnSync('sh', ['-c', "echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections"], { stdio: 'ignore' });
  must('apt-get', ['update', '-qq'], { env });
  must('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env });
}

function pnpm(args) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const spec = pkg.packageManager; // pnpm@x.y.z, pinned
  // corepack would be the natural launcher, but its signature check fails against some registry
  // mirrors; npx fetches the same pinned version from the npm registry.
  must('npx', ['--yes', spec, ...args], { env: { ...process.env, npm_config_update_notifier: 'false' } });
}

if (job === 'test') ensureDebianTools(TEST_TOOLS);

log('installing workspace dependencies (pnpm, frozen lockfile)');
pnpm(['install', '--frozen-lockfile', '--reporter=silent']);

log('building (tsc -b)');
const tsc = join(root, 'node_modules', '.bin', 'tsc');
must(tsc, ['-b']);

const bin = (name) => join(root, 'node_modules', '.bin', name);

if (job === 'test') {
  log('type-checking tests');
  must(tsc, ['-p', 'tsconfig.tests.json']);
  process.exit(run(bin('mocha'), rest));
} else if (job === 'demo') {
  process.exit(run(process.execPath, [join(root, 'scripts', 'demo.mjs'), ...rest]));
} else if (job === 'bench') {
  const benchMain = join(root, 'bench', 'dist', 'index.js');
  if (!existsSync(benchMain)) {
    log('bench/dist/index.js missing after build');
    process.exit(1);
  }
  process.exit(run(process.execPath, [benchMain, ...rest]));
}
