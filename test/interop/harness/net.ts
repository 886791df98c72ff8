/**
 * The interop network: one namespace `smcri-<pid>` holding a tap `smcri<pid>t` with the host side's
 * address (192.0.2.254/24, TEST-NET-1). The guest's virtio-net is that tap; nothing is bridged to
 * the host's own interfaces, and IPv6 is off so captures hold only IPv4/ARP.
 *
 * Processes that must live in the namespace (qemu, tcpdump, our agent) are started with
 * `nsenter --net=/run/netns/<ns>` (it does not remount /sys as `ip netns exec` does, so cgroup
 * paths stay visible for the sock_ops program) and `setpriv --pdeathsig KILL`, so they die with
 * the test process even if it is killed without running its hooks.
 *
 * Stale namespaces of crashed runs (their pid is gone) are deleted before a new one is made; the
 * tap lives inside the namespace and goes with it.
 */
import { execFileSync } from 'node:child_process';

export const HOST_IP = '192.0.2.254';
export const GUEST_IP = '192.0.2.1';
const NS_RE = /^smcri-(\d+)(?:-\d+)?$/;
const live = new Set<InteropNet>();
let hooked = false;
let counter = 0;

function run(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, args as string[], { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

function tryRun(cmd: string, args: readonly string[]): boolean {
  try {
    execFileSync(cmd, args as string[], { stdio: 'ignore', timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes `smcri-<pid>` namespaces whose process is gone; returns their names. */
export function removeStaleInteropNetns(): string[] {
  const removed: string[] = [];
  const list = run('ip', ['netns', 'list']).split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '');
  for (const name of list) {
    const m = NS_RE.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    if (tryRun('ip', ['netns', 'delete', name])) removed.push(name);
  }
  return removed;
}

export class InteropNet {
  readonly ns: string;
  readonly tap: string;
  readonly hostIp = HOST_IP;
  readonly guestIp = GUEST_IP;
  #destroyed = false;

  private constructor(ns: string, tap: string) {
    this.ns = ns;
    this.tap = tap;
  }

  static create(): InteropNet {
    if (!hooked) {
      hooked = true;
      process.once('exit', () => { for (const n of [...live]) n.destroy(); });
    }
    removeStaleInteropNetns();
    const k = counter++;
    const ns = k === 0 ? `smcri-${process.pid}` : `smcri-${process.pid}-${k}`;
    const tap = `smcri${process.pid}t${k === 0 ? '' : k}`;
    if (tap.length > 15) throw new Error(`tap name ${tap} exceeds IFNAMSIZ`);
    const net = new InteropNet(ns, tap);
    live.add(net);
    try {
      run('ip', ['netns', 'add', ns]);
      net.exec('sh', ['-c', 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6']);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
      run('ip', ['-n', ns, 'addr', 'add', `${HOST_IP}/24`, 'dev', tap]);
      run('ip', ['-n', ns, 'link', 'set', tap, 'up']);
    } catch (e) {
      net.destroy();
      throw e;
    }
    return net;
  }

  /** `[cmd, args]` that runs a program inside the namespace and dies with this process. */
  wrap(cmd: string, args: readonly string[]): [string, string[]] {
    return ['nsenter', [`--net=/run/netns/${this.ns}`, '--', 'setpriv', '--pdeathsig', 'KILL', cmd, ...args]];
  }

  /** Runs a command in the namespace synchronously (bounded). */
  exec(cmd: string, args: readonly string[]): string {
    return run('nsenter', [`--net=/run/netns/${this.ns}`, '--', cmd, ...args]);
  }

  /** The tap's MAC address (the host side of the guest's link). */
  mac(): string {
    const j = JSON.parse(run('ip', ['-n', this.ns, '-j', 'link', 'show', 'dev', this.tap])) as { address: string }[];
    return j[0]!.address;
  }

  /** Deletes the namespace (and the tap in it). Idempotent, never throws. Kill qemu first. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    tryRun('ip', ['netns', 'delete', this.ns]);
  }
}
