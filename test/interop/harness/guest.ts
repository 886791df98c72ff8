/**
 * One qemu guest running Debian's 6.1 kernel under TCG (this host's /dev/kvm is PVM and cannot run
 * stock kernels: qemu-eval.md 2), `-smp 1`, its virtio-net on the InteropNet tap.
 *
 *   ttyS0  console -> <dir>/console.log   (kernel log and /init's "INIT:" lines; printed on failure)
 *   ttyS1  control channel, a unix socket: "<id> <command>\n" in, output + "@@END <id> <rc>" out
 *
 * qemu is started with SIGKILL as its parent-death signal, killed by PID on every timeout (boot,
 * command, and a hard deadline for the whole guest) and by kill() in after() hooks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { GuestImage } from './image.js';
import type { InteropNet } from './net.js';

export interface GuestOptions {
  readonly image: GuestImage;
  readonly net: InteropNet;
  /** Directory for console.log and the control socket. */
  readonly dir: string;
  readonly memMiB?: number;
  /** Boot to ready within this time, or the guest is killed (default 90 s: TCG on a busy CI host). */
  readonly bootTimeoutMs?: number;
  /** Hard deadline for the guest's whole life (default 5 min). */
  readonly lifetimeMs?: number;
}

export interface ExecResult {
  readonly out: string;
  readonly rc: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Guest {
  readonly console: string;
  readonly net: InteropNet;
  readonly bootMs: number;
  readonly #proc: ChildProcess;
  readonly #ctl: Socket;
  #buf = '';
  #waiters: (() => void)[] = [];
  #nextId = 1;
  #exited = false;
  #deadline: NodeJS.Timeout;
  #chain: Promise<unknown> = Promise.resolve();
  qemuStderr = '';
  /** qemu's exit code or signal once it exited. */
  exitStatus: string | undefined;

  private constructor(proc: ChildProcess, ctl: Socket, consolePath: string, net: InteropNet, bootMs: number, deadline: NodeJS.Timeout) {
    this.#proc = proc;
    this.#ctl = ctl;
    this.console = consolePath;
    this.net = net;
    this.bootMs = bootMs;
    this.#deadline = deadline;
    ctl.setEncoding('utf8');
    ctl.on('data', (s: string) => {
      this.#buf += s;
      this.#wake();
    });
    ctl.on('error', () => {});
    ctl.on('close', () => this.#wake());
    proc.once('exit', (code, signal) => {
      this.exitStatus = signal ?? String(code);
      this.#exited = true;
      clearTimeout(this.#deadline);
      this.#wake();
    });
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  get alive(): boolean {
    return !this.#exited;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Waits until `re` matches the control-channel buffer; returns the match and consumes through it. */
  #waitFor(re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`guest: ${what} not done within ${timeoutMs} ms`)), timeoutMs);
      const check = (): void => {
        const m = re.exec(this.#buf);
        if (m !== null) {
          clearTimeout(timer);
          this.#buf = this.#buf.slice(m.index + m[0].length);
          resolve(m);
          return;
        }
        if (this.#exited) {
          clearTimeout(timer);
          reject(new Error(`guest: qemu exited (${this.exitStatus ?? '?'}) during ${what}; qemu stderr: ${this.qemuStderr.trim().slice(-500) || 'none'}`));
          return;
        }
        this.#waiters.push(check);
      };
      check();
    });
  }

  static async boot(o: GuestOptions): Promise<Guest> {
    const t0 = performance.now();
    const consolePath = join(o.dir, 'console.log');
    const sock = join(o.dir, 'ctl.sock');
    const args = [
      '-name', 'smcri-guest', '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
      '-accel', 'tcg,thread=multi', '-cpu', 'max', '-m', String(o.memMiB ?? 1024), '-smp', '1',
      '-kernel', o.image.vmlinuz, '-initrd', o.image.initramfs,
      '-append', `console=ttyS0 loglevel=${process.env['SMCR_INTEROP_LOGLEVEL'] ?? '4'} panic=-1 smcip=${o.net.guestIp}`,
      '-serial', `file:${consolePath}`,
      '-chardev', `socket,id=ctl,path=${sock},server=on,wait=off`, '-serial', 'chardev:ctl',
      '-netdev', `tap,id=n0,ifname=${o.net.tap},script=no,downscript=no`,
      '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,romfile=',
    ];
    const [cmd, argv] = o.net.wrap('qemu-system-x86_64', args);
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (s: string) => { stderr += s; });
    const killProc = (): void => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
        try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
      }
    };
    const deadline = setTimeout(killProc, o.lifetimeMs ?? 300_000);
    deadline.unref();
    // The control socket appears once qemu has parsed its arguments.
    let ctl: Socket | undefined;
    const bootTimeout = o.bootTimeoutMs ?? 90_000;
    while (ctl === undefined) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        clearTimeout(deadline);
        throw new Error(`qemu exited at start (${proc.exitCode ?? proc.signalCode}): ${stderr.trim()}`);
      }
      if (performance.now() - t0 > bootTimeout) {
        killProc();
        throw new Error(`qemu did not create ${sock} within ${bootTimeout} ms: ${stderr.trim()}`);
      }
      if (existsSync(sock)) {
        ctl = await new Promise<Socket | undefined>((resolve) => {
          const s = connect(sock);
          s.once('connect', () => resolve(s));
          s.once('error', () => resolve(undefined));
        });
      }
      if (ctl === undefined) await sleep(50);
    }
    const g = new Guest(proc, ctl, consolePath, o.net, 0, deadline);
    proc.stderr!.on('data', (s: string) => { g.qemuStderr += s; });
    try {
      await g.#waitFor(/@@READY\n/, Math.max(1000, bootTimeout - (performance.now() - t0)), 'boot');
    } catch (e) {
      g.kill();
      throw new Error(`${(e as Error).message}\nqemu stderr: ${stderr.trim()}\n--- console tail ---\n${g.consoleTail()}`);
    }
    (g as { bootMs: number }).bootMs = Math.round(performance.now() - t0);
    return g;
  }

  /**
   * Runs a shell command in the guest (sequentially: one at a time on the channel). Rejects on
   * timeout; the guest is then killed, since the channel's state is unknown.
   */
  exec(command: string, timeoutMs = 30_000): Promise<ExecResult> {
    if (command.includes('\n')) throw new Error('guest commands are single lines');
    const run = async (): Promise<ExecResult> => {
      if (this.#exited) throw new Error('guest is not running');
      const id = this.#nextId++;
      this.#ctl.write(`${id} ${command}\n`);
      try {
        const re = new RegExp(`([\\s\\S]*?)\\n@@END ${id} (\\d+)\\n`);
        const m = await this.#waitFor(re, timeoutMs, `command ${JSON.stringify(command)}`);
        return { out: m[1]!.replace(/^\n+/, ''), rc: Number(m[2]) };
      } catch (e) {
        this.kill();
        throw e;
      }
    };
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => {});
    return p;
  }

  /** Like exec, but throws unless the command exits 0. */
  async run(command: string, timeoutMs = 30_000): Promise<string> {
    const r = await this.exec(command, timeoutMs);
    if (r.rc !== 0) throw new Error(`guest: ${command} exited ${r.rc}: ${r.out}`);
    return r.out;
  }

  /** The last `lines` lines of the console log. */
  consoleTail(lines = 80): string {
    try {
      const all = readFileSync(this.console, 'utf8').split('\n');
      return all.slice(-lines).join('\n');
    } catch {
      return '(no console log)';
    }
  }

  /** SIGKILL to qemu by PID. Idempotent. */
  kill(): void {
    clearTimeout(this.#deadline);
    this.#ctl.destroy();
    const pid = this.#proc.pid;
    if (!this.#exited && pid !== undefined) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }

  /** Kills qemu and waits (bounded) until it is gone, so the tap is free. */
  async stop(): Promise<void> {
    this.kill();
    for (let i = 0; i < 100 && !this.#exited; i++) await sleep(20);
  }
}
