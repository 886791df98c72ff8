/**
 * Child processes for the softroce tests: line-oriented stdout, a JSON-lines RPC over
 * stdin/stdout, bounded waits everywhere, and a hard deadline after which the child is killed.
 * Every child is registered so that an `after` hook (or process exit) kills whatever is left.
 *
 * A child started through `ip netns exec` keeps the pid (ip execs the command after setns), so
 * killing the pid we spawned kills the program itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: children run there so that `--import tsx` resolves. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const children = new Set<Child>();
let exitHooked = false;

/** Kills every child still running (for `after` hooks). */
export function killAllChildren(): void {
  for (const c of [...children]) c.kill();
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', killAllChildren);
}

export class Child {
  readonly proc: ChildProcess;
  readonly name: string;
  readonly lines: string[] = [];
  stderr = '';
  #partial = '';
  #waiters: (() => void)[] = [];
  #exit: Promise<number | null>;
  #exitCode: number | null | undefined;
  #deadline: NodeJS.Timeout;

  constructor(cmd: string, args: readonly string[], deadlineMs: number, name = args.join(' ').slice(0, 60)) {
    hookExit();
    this.name = name;
    this.proc = spawn(cmd, args as string[], { stdio: ['pipe', 'pipe', 'pipe'], cwd: REPO_ROOT });
    children.add(this);
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stdout!.on('data', (s: string) => {
      const parts = (this.#partial + s).split('\n');
      this.#partial = parts.pop()!;
      this.lines.push(...parts);
      this.#wake();
    });
    this.proc.stderr!.on('data', (s: string) => {
      this.stderr += s;
      if (this.stderr.length > 200_000) this.stderr = this.stderr.slice(-100_000);
    });
    this.proc.stdin!.on('error', () => { /* the child died; the exit promise reports it */ });
    this.#exit = new Promise((resolve) => {
      this.proc.once('error', (e) => {
        this.stderr += `\nspawn error: ${e.message}`;
        this.#exitCode = null;
        children.delete(this);
        this.#wake();
        resolve(null);
      });
      this.proc.once('close', (code) => {
        if (this.#partial !== '') this.lines.push(this.#partial);
        this.#partial = '';
        this.#exitCode = code;
        children.delete(this);
        clearTimeout(this.#deadline);
        this.#wake();
        resolve(code);
      });
    });
    this.#deadline = setTimeout(() => {
      this.stderr += `\n[killed after the ${deadlineMs} ms deadline]`;
      this.kill();
    }, deadlineMs);
    this.#deadline.unref();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  get exitCode(): number | null | undefined {
    return this.#exitCode;
  }

  /** Resolves with the first line (from index `from` on) that satisfies `pred`; bounded. */
  waitLine(pred: (line: string) => boolean, timeoutMs = 10_000, from = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      let i = from;
      const timer = setTimeout(() => { cleanup(); reject(new Error(`${this.name}: no matching line within ${timeoutMs} ms; stderr: ${this.stderr.slice(-2000)}`)); }, timeoutMs);
      const cleanup = (): void => clearTimeout(timer);
      const check = (): void => {
        for (; i < this.lines.length; i++) {
          if (pred(this.lines[i]!)) { cleanup(); resolve(this.lines[i]!); return; }
        }
        if (this.#exitCode !== undefined) {
          cleanup();
          reject(new Error(`${this.name} exited (${this.#exitCode}) before a matching line; stderr: ${this.stderr.slice(-2000)}`));
          return;
        }
        this.#waiters.push(check);
      };
      check();
    });
  }

  /** Waits for exit (bounded; kills on timeout) and returns the exit code. */
  async exited(timeoutMs = 10_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), timeoutMs); });
    const r = await Promise.race([this.#exit, t]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.kill();
      throw new Error(`${this.name} did not exit within ${timeoutMs} ms; stderr: ${this.stderr.slice(-2000)}`);
    }
    return r;
  }

  write(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  /** Closes stdin (the agents exit on EOF). */
  end(): void {
    this.proc.stdin!.end();
  }

  /** SIGKILL if still running. Idempotent. */
  kill(): void {
    if (this.#exitCode === undefined && this.proc.exitCode === null && this.proc.signalCode === null) {
      try {
        this.proc.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** Starts `[cmd, args]` with a hard deadline. */
export function runChild([cmd, args]: readonly [string, readonly string[]], deadlineMs: number, name?: string): Child {
  return new Child(cmd, args, deadlineMs, name);
}

/** A JSON-lines request/response channel to an agent child (see agent.ts). */
export class RpcChild {
  readonly child: Child;
  #nextId = 1;

  constructor(child: Child) {
    this.child = child;
  }

  /** Sends `{id, cmd, args}` and waits (bounded) for `{id, ok, result|error}`. */
  async call<T = unknown>(cmd: string, args: unknown = {}, timeoutMs = 20_000): Promise<T> {
    const id = this.#nextId++;
    this.child.write(JSON.stringify({ id, cmd, args }));
    const line = await this.child.waitLine((l) => {
      if (!l.startsWith('{')) return false;
      try {
        return (JSON.parse(l) as { id?: number }).id === id;
      } catch {
        return false;
      }
    }, timeoutMs);
    const msg = JSON.parse(line) as { ok: boolean; result?: T; error?: string };
    if (!msg.ok) throw new Error(`${this.child.name}: ${cmd} failed: ${msg.error}`);
    return msg.result as T;
  }

  /** Closes stdin and waits for a clean exit. */
  async close(timeoutMs = 10_000): Promise<void> {
    this.child.end();
    const code = await this.child.exited(timeoutMs);
    if (code !== 0) throw new Error(`${this.child.name} exited with ${code}; stderr: ${this.child.stderr.slice(-2000)}`);
  }
}

/** The agent script and the node arguments that run it (TypeScript through tsx). */
export const AGENT_SCRIPT = fileURLToPath(new URL('../agent.ts', import.meta.url));
export function agentArgs(): string[] {
  return ['--import', 'tsx', AGENT_SCRIPT];
}
