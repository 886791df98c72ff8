import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkCgroupName, findCgroup2Mount, ownCgroupPath, pidOfCgroupName, removeStaleCgroups, staleCandidates } from './cgroup.js';
import { SockopsError, SockopsErrorCode } from './errors.js';

// /proc/self/mounts of this kind of machine (hybrid: cgroup2 under /sys/fs/cgroup/unified).
const HYBRID = [
  'proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0',
  'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
  'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0',
  'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
].join('\n');

describe('cgroup location', () => {
  it('finds the cgroup2 mount wherever it is, and decodes escapes', () => {
    assert.equal(findCgroup2Mount(HYBRID), '/sys/fs/cgroup/unified');
    assert.equal(findCgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n'), '/sys/fs/cgroup');
    assert.equal(findCgroup2Mount('none /mnt/my\\040cgroups cgroup2 rw 0 0\n'), '/mnt/my cgroups');
    assert.equal(findCgroup2Mount('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n'), undefined);
    assert.equal(findCgroup2Mount(''), undefined);
  });

  it('reads the v2 line of /proc/self/cgroup', () => {
    assert.equal(ownCgroupPath('4:memory:/x\n0::/\n'), '/');
    assert.equal(ownCgroupPath('0::/system.slice/app.service\n'), '/system.slice/app.service');
    assert.equal(ownCgroupPath('4:memory:/x\n1:cpu:/\n'), undefined);
    assert.equal(ownCgroupPath('0::/gone (deleted)\n'), undefined);
  });

  it('accepts only plain directory names for cgroupName', () => {
    for (const ok of ['smcr-1', 'app.smc', 'a_b']) checkCgroupName(ok);
    for (const bad of ['', '.', '..', 'a/b', '../x', 'cgroup.procs', 'x'.repeat(200), 'a b']) {
      assert.throws(() => checkCgroupName(bad), (e: unknown) => e instanceof SockopsError && e.code === SockopsErrorCode.BAD_OPTION, bad);
    }
  });

  it('picks stale smcr-<pid> children only: dead pid, not ours, our prefix', () => {
    assert.equal(pidOfCgroupName('smcr-42'), 42);
    assert.equal(pidOfCgroupName('smcr-x'), undefined);
    const alive = new Set([10, 11]);
    assert.deepEqual(staleCandidates(['smcr-10', 'smcr-12', 'smcr-13', 'smcr-11', 'other-14', 'smcr-99x', 'cgroup.procs'], 11, (p) => alive.has(p)), ['smcr-12', 'smcr-13']);
  });

  it('removes stale directories and leaves live, foreign and own ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'smcr-cgtest-'));
    try {
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // exited: its pid is dead
      for (const n of [`smcr-${dead}`, `smcr-${process.pid}`, `smcr-${process.ppid}`, 'unrelated']) mkdirSync(join(dir, n));
      assert.deepEqual(removeStaleCgroups(dir), [`smcr-${dead}`]);
      assert.equal(existsSync(join(dir, `smcr-${dead}`)), false);
      for (const n of [`smcr-${process.pid}`, `smcr-${process.ppid}`, 'unrelated']) assert.ok(existsSync(join(dir, n)), n);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
