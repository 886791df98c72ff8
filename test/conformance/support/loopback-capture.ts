/**
 * A tcpdump capture on `lo` for one TCP port, started and stopped the way oracles.md 4 found
 * reliable: `--immediate-mode -U`, wait for "listening on" plus 0.5 s before sending (the ring is
 * live only then), and 0.5 s after the last packet before SIGINT (otherwise packets still in the
 * TPACKET_V3 ring are lost). Needs root (CAP_NET_RAW).
 *
 * `stop()` is idempotent and safe to call from an `after` hook when the test failed half-way: it
 * signals only the tcpdump process this object started.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class LoopbackCapture {
  readonly file: string;
  readonly port: number;
  #proc: ChildProcess | undefined;
  #exited: Promise<number | null> | undefined;
  #stderr = '';

  constructor(file: string, port: number) {
    this.file = file;
    this.port = port;
  }

  /** Starts tcpdump and resolves once it is really capturing. */
  async start(timeoutMs = 5000): Promise<void> {
    const proc = spawn('tcpdump', ['-i', 'lo', '--immediate-mode', '-U', '-s', '0', '-n', '-w', this.file, `tcp port ${this.port}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start within ${timeoutMs} ms: ${this.#stderr}`)), timeoutMs);
      proc.once('error', (e) => { clearTimeout(timer); reject(e); });
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`tcpdump exited (${code}) before capturing: ${this.#stderr}`)); });
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (s: string) => {
        this.#stderr += s;
        if (this.#stderr.includes('listening on')) { clearTimeout(timer); resolve(); }
      });
    });
    await sleep(500);
  }

  /** Waits 0.5 s for the last packets, stops tcpdump with SIGINT and waits for it to exit. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    if (proc === undefined) return;
    this.#proc = undefined;
    if (proc.exitCode === null && proc.signalCode === null) {
      await sleep(500);
      proc.kill('SIGINT');
      const done = await Promise.race([this.#exited!.then(() => true), sleep(3000).then(() => false)]);
      if (!done) {
        proc.kill('SIGKILL');
        await this.#exited;
      }
    }
  }

  /** tcpdump's stderr so far (its packet counts after stop()). */
  get stderr(): string {
    return this.#stderr;
  }
}
