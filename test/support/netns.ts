/**
 * Two network namespaces joined by a veth pair, for tests that need real IP traffic between
 * processes that do not share `lo` (softroce between namespaces, the tc packet dropper).
 *
 * Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2. Names carry the test process's pid
 * (`smcv<pid>n<k>a`), so parallel runs never collide, and a pair left behind by a crashed run is
 * recognised and removed by the next run (its pid is dead). The addresses are TEST-NET-1
 * (RFC 5737, 192.0.2.0/24) and live only inside the two namespaces: nothing here routes to the
 * host's networks, and the host's own namespace is never modified.
 *
 * Cleanup: `destroy()` is idempotent; every pair also registers itself for removal on process
 * exit, so a test that throws half-way (or a mocha run killed by SIGINT/SIGTERM) leaves nothing.
 * Deleting a namespace deletes its veth end, and with it the peer end and any qdisc on them.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/** Namespaces created by this process and not yet destroyed. */
const live = new Set<NetnsPair>();
let counter = 0;
let exitHooked = false;

const PREFIX = 'smcv';
const NAME_RE = /^smcv(\d+)n\d+[ab]$/;

/** Runs a command synchronously with a bounded timeout; throws with its stderr on failure. */
export function run(cmd: string, args: readonly string[], timeoutMs = 10_000): string {
  try {
    return execFileSync(cmd, args as string[], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

/** Like run() but never throws (cleanup paths). Returns true on success. */
export function tryRun(cmd: string, args: readonly string[], timeoutMs = 10_000): boolean {
  try {
    execFileSync(cmd, args as string[], { stdio: 'ignore', timeout: timeoutMs });
    return true;
  } catch {
    return false;
  }
}

/** Whether a process exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Names of every namespace on the host (`ip netns list` prints "name (id: N)"). */
export function listNetns(): string[] {
  return run('ip', ['netns', 'list']).split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n !== '');
}

/** Deletes namespaces of ours whose creating process is gone (a crashed earlier run). */
export function removeStaleNetns(): string[] {
  return removeStaleNetnsMatching(NAME_RE);
}

/**
 * Deletes the namespaces whose name `re` matches with the creating process's pid as group 1, when
 * that process is gone (and is not this one). Returns their names.
 */
export function removeStaleNetnsMatching(re: RegExp): string[] {
  const removed: string[] = [];
  for (const name of listNetns()) {
    const m = re.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    if (tryRun('ip', ['netns', 'delete', name])) removed.push(name);
  }
  return removed;
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => {
    for (const p of [...live]) p.destroy();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const p of [...live]) p.destroy();
      process.kill(process.pid, sig);
    });
  }
}

export interface NetnsPairOptions {
  /** Addresses with prefix length; defaults to TEST-NET-1 192.0.2.1/24 and 192.0.2.2/24. */
  readonly cidrA?: string;
  readonly cidrB?: string;
  readonly mtu?: number;
}

/** One namespace of the pair: its name, veth end and address. */
export interface NetnsEnd {
  readonly ns: string;
  readonly dev: string;
  readonly ip: string;
}

export class NetnsPair {
  readonly a: NetnsEnd;
  readonly b: NetnsEnd;
  #destroyed = false;

  private constructor(a: NetnsEnd, b: NetnsEnd) {
    this.a = a;
    this.b = b;
  }

  /**
   * Creates both namespaces, the veth pair (one end in each), brings `lo` and the veth up and
   * assigns the addresses. On any failure everything created so far is removed before throwing.
   */
  static create(opts: NetnsPairOptions = {}): NetnsPair {
    hookExit();
    removeStaleNetns();
    const k = counter++;
    const base = `${PREFIX}${process.pid}n${k}`;
    if (base.length + 1 > 15) throw new Error(`interface name ${base}a exceeds IFNAMSIZ`);
    const cidrA = opts.cidrA ?? '192.0.2.1/24';
    const cidrB = opts.cidrB ?? '192.0.2.2/24';
    const pair = new NetnsPair(
      { ns: `${base}a`, dev: `${base}a`, ip: cidrA.split('/')[0]! },
      { ns: `${base}b`, dev: `${base}b`, ip: cidrB.split('/')[0]! },
    );
    live.add(pair);
    try {
      run('ip', ['netns', 'add', pair.a.ns]);
      run('ip', ['netns', 'add', pair.b.ns]);
      // Create the veth inside namespace A directly, with its peer placed into B: the host
      // namespace never sees either end.
      run('ip', ['-n', pair.a.ns, 'link', 'add', pair.a.dev, 'type', 'veth', 'peer', 'name', pair.b.dev, 'netns', pair.b.ns]);
      for (const [end, cidr] of [[pair.a, cidrA], [pair.b, cidrB]] as const) {
        run('ip', ['-n', end.ns, 'link', 'set', 'lo', 'up']);
        if (opts.mtu !== undefined) run('ip', ['-n', end.ns, 'link', 'set', end.dev, 'mtu', String(opts.mtu)]);
        run('ip', ['-n', end.ns, 'addr', 'add', cidr, 'dev', end.dev]);
        run('ip', ['-n', end.ns, 'link', 'set', end.dev, 'up']);
      }
      // Permanent neighbour entries: without them the first packets of a burst wait for ARP,
      // and those beyond the unresolved-queue limit are dropped, which a loss test would count
      // against the transport (or the dropper).
      const macA = pair.mac(pair.a);
      const macB = pair.mac(pair.b);
      run('ip', ['-n', pair.a.ns, 'neigh', 'replace', pair.b.ip, 'lladdr', macB, 'dev', pair.a.dev, 'nud', 'permanent']);
      run('ip', ['-n', pair.b.ns, 'neigh', 'replace', pair.a.ip, 'lladdr', macA, 'dev', pair.b.dev, 'nud', 'permanent']);
    } catch (e) {
      pair.destroy();
      throw e;
    }
    return pair;
  }

  /** `ip netns exec <ns> cmd args...` as a [command, args] pair for spawn(). */
  static execArgs(ns: string, cmd: string, args: readonly string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', ns, cmd, ...args]];
  }

  /** Runs a command inside namespace `ns` (synchronously, bounded). */
  static exec(ns: string, cmd: string, args: readonly string[], timeoutMs = 10_000): string {
    const [c, a] = NetnsPair.execArgs(ns, cmd, args);
    return run(c, a, timeoutMs);
  }

  /** Spawns a long-running process inside namespace `ns`. */
  static spawn(ns: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const [c, a] = NetnsPair.execArgs(ns, cmd, args);
    return spawn(c, a, opts);
  }

  /** The MAC address of a veth end. */
  mac(end: NetnsEnd): string {
    const j = JSON.parse(run('ip', ['-n', end.ns, '-j', 'link', 'show', 'dev', end.dev])) as { address: string }[];
    return j[0]!.address;
  }

  /** Interface counters of a veth end (`ip -s -j link`). */
  linkStats(end: NetnsEnd): { txPackets: number; rxPackets: number; txDropped: number; rxDropped: number } {
    const j = JSON.parse(run('ip', ['-n', end.ns, '-s', '-j', 'link', 'show', 'dev', end.dev])) as
      { stats64: { tx: { packets: number; dropped: number }; rx: { packets: number; dropped: number } } }[];
    const s = j[0]!.stats64;
    return { txPackets: s.tx.packets, rxPackets: s.rx.packets, txDropped: s.tx.dropped, rxDropped: s.rx.dropped };
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Deletes both namespaces (and so the veth). Idempotent, never throws. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    for (const ns of [this.a.ns, this.b.ns]) tryRun('ip', ['netns', 'delete', ns]);
  }
}
