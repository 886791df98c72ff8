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
import { removeStaleNetnsMatching, run as runBounded, tryRun } from '../../support/netns.js';

export const HOST_IP = '192.0.2.254';
export const GUEST_IP = '192.0.2.1';
const NS_RE = /^smcri-(\d+)(?:-\d+)?$/;
const live = new Set<InteropNet>();
let hooked = false;
let counter = 0;

const run = (cmd: string, args: readonly string[]): string => runBounded(cmd, args, 15_000);

/** Deletes `smcri-<pid>` namespaces whose process is gone; returns their names. */
export function removeStaleInteropNetns(): string[] {
  return removeStaleNetnsMatching(NS_RE);
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
    tryRun('ip', ['netns', 'delete', this.ns], 15_000);
  }
}
