import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { effectiveCaps, kernelVersion, missingCaps, sockopsAvailability } from './availability.js';
import { BpfLoadError } from './bpf.js';
import { SockopsError, SockopsErrorCode } from './errors.js';
import { SyscallError } from './libc.js';
import { loadError } from './program.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PROBE = fileURLToPath(new URL('./testing/probe.ts', import.meta.url));
const isRoot = process.getuid?.() === 0;
const haveSetpriv = spawnSync('sh', ['-c', 'command -v setpriv'], { stdio: 'ignore' }).status === 0;

interface Probe {
  uid: number;
  availability: { ok: boolean; code?: string; missing?: string };
  openError?: { code: string; message: string };
  savedSyn: { first: boolean | null; second: boolean | null } | string;
}

/** Runs the probe under `setpriv args...`; returns its JSON line. */
function probe(setprivArgs: string[]): Probe {
  const r = spawnSync('setpriv', [...setprivArgs, process.execPath, '--import', 'tsx', PROBE], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `probe failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
}

/**
 * Why uid 65534 cannot run the probe from this checkout, if it cannot: a clone inside a private
 * directory (mktemp -d makes 0700 ones) is unreadable to it, which says nothing about sockops.
 */
function unreadableToNobody(): string | undefined {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', 'test -r "$1" && test -r "$2"', '_', PROBE, `${REPO_ROOT}node_modules/tsx/package.json`], { stdio: 'ignore' });
  return r.status === 0 ? undefined : `uid 65534 cannot read this checkout (${REPO_ROOT}): it sits in a directory closed to other users`;
}

describe('availability checks', () => {
  it('parses kernel versions and capability masks', () => {
    assert.deepEqual(kernelVersion('6.18.44-fc-v669'), [6, 18]);
    assert.deepEqual(kernelVersion('5.10.0-28-amd64'), [5, 10]);
    assert.equal(kernelVersion('weird'), undefined);
    assert.equal(effectiveCaps('Name:\tnode\nCapEff:\t000001ffffffffff\n'), 0x1ffffffffffn);
    assert.equal(effectiveCaps('Name:\tnode\n'), 0n);
    assert.equal(missingCaps(1n << 21n), undefined, 'CAP_SYS_ADMIN alone is enough');
    assert.equal(missingCaps((1n << 39n) | (1n << 12n)), undefined, 'CAP_BPF + CAP_NET_ADMIN');
    assert.match(missingCaps(1n << 39n)!, /CAP_NET_ADMIN/);
    assert.match(missingCaps(1n << 12n)!, /^CAP_BPF /);
    assert.match(missingCaps(0n)!, /CAP_BPF \+ CAP_NET_ADMIN/);
  });

  it('maps bpf(2) failures during open() to codes that say what to fix', () => {
    const cases: [unknown, string, string][] = [
      [new SyscallError('x', 1), 'BPF_PROG_LOAD', isRoot ? SockopsErrorCode.NO_CAP : SockopsErrorCode.NOT_ROOT],
      [new SyscallError('x', 38), 'BPF_BTF_LOAD', SockopsErrorCode.BPF_UNSUPPORTED],
      [new SyscallError('x', 22), 'BPF_MAP_CREATE smcr_sk_state', SockopsErrorCode.BPF_UNSUPPORTED],
      [new SyscallError('x', 22), 'BPF_LINK_CREATE', SockopsErrorCode.BPF_UNSUPPORTED],
      [new BpfLoadError('x', 13, 'R1 invalid mem access'), 'BPF_PROG_LOAD', SockopsErrorCode.LOAD_FAILED],
      [new SyscallError('x', 7), 'BPF_PROG_LOAD', SockopsErrorCode.LOAD_FAILED],
      [new Error('boom'), 'BPF_PROG_LOAD', SockopsErrorCode.LOAD_FAILED],
    ];
    for (const [err, step, want] of cases) {
      const e = loadError(err, step);
      assert.ok(e instanceof SockopsError);
      assert.equal(e.code, want, `${step}: ${(err as Error).message}`);
      assert.ok(e.message.startsWith(step), e.message);
    }
    assert.match(loadError(new BpfLoadError('x', 13, 'line 1\nR1 invalid mem access'), 'BPF_PROG_LOAD').message, /R1 invalid mem access/);
  });

  it('is available here when root (this machine has cgroup2, BPF and koffi)', function () {
    if (!isRoot) {
      process.stdout.write('      SKIP: needs root\n');
      this.skip();
    }
    assert.deepEqual(sockopsAvailability(), { ok: true });
  });

  it('says NOT_ROOT as uid 65534, and TCP_SAVE_SYN still works there', function () {
    if (!isRoot || !haveSetpriv) {
      process.stdout.write('      SKIP: needs root and setpriv to drop to uid 65534\n');
      this.skip();
    }
    const unreadable = unreadableToNobody();
    if (unreadable !== undefined) {
      process.stdout.write(`      SKIP: ${unreadable}\n`);
      this.skip();
    }
    const p = probe(['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all']);
    assert.equal(p.uid, 65534);
    assert.equal(p.availability.ok, false);
    assert.equal(p.availability.code, SockopsErrorCode.NOT_ROOT);
    assert.match(p.availability.missing!, /root.*CAP_BPF/);
    assert.equal(p.openError?.code, SockopsErrorCode.NOT_ROOT);
    assert.deepEqual(p.savedSyn, { first: false, second: null });
  });

  it('says NO_CGROUP2 in a mount namespace without the cgroup2 mount', function () {
    const haveUnshare = spawnSync('sh', ['-c', 'command -v unshare && command -v findmnt'], { stdio: 'ignore' }).status === 0;
    if (!isRoot || !haveUnshare) {
      process.stdout.write('      SKIP: needs root, unshare and findmnt\n');
      this.skip();
    }
    // A private mount namespace whose cgroup2 mounts are lazily unmounted: what `ip netns exec` does
    // to /sys. Nothing changes outside that namespace.
    const script = 'for m in $(findmnt -rn -t cgroup2 -o TARGET); do umount -l "$m"; done; exec "$@"';
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, '--import', 'tsx', PROBE], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const p = JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
    assert.equal(p.availability.code, SockopsErrorCode.NO_CGROUP2);
    assert.match(p.availability.missing!, /no cgroup2 file system is mounted.*nsenter/);
    assert.equal(p.openError?.code, SockopsErrorCode.NO_CGROUP2);
  });

  it('says NO_CAP as root with an empty capability set', function () {
    if (!isRoot || !haveSetpriv) {
      process.stdout.write('      SKIP: needs root and setpriv\n');
      this.skip();
    }
    const p = probe(['--bounding-set=-all', '--inh-caps=-all']);
    assert.equal(p.uid, 0);
    assert.equal(p.availability.code, SockopsErrorCode.NO_CAP);
    assert.match(p.availability.missing!, /CAP_BPF \+ CAP_NET_ADMIN/);
    assert.equal(p.openError?.code, SockopsErrorCode.NO_CAP);
    assert.deepEqual(p.savedSyn, { first: false, second: null });
  });
});
