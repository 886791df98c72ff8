/**
 * tcpdump on one interface (optionally inside a namespace) with a capture filter, started and
 * stopped the way oracles.md 4 found reliable: `--immediate-mode -U`, wait for "listening on"
 * plus 0.5 s before traffic (the ring is live only then), and 0.5 s after the last packet before
 * SIGINT (packets still in the TPACKET_V3 ring would be lost otherwise). Needs root.
 * `stop()` is idempotent and signals only the tcpdump this object started.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Tcpdump {
  readonly file: string;
  readonly iface: string;
  readonly filter: string;
  readonly ns: string | undefined;
  #proc: ChildProcess | undefined;
  #exited: Promise<number | null> | undefined;
  #stderr = '';

  readonly snaplen: number;

  constructor(file: string, iface: string, filter: string, ns?: string, snaplen = 8192) {
    this.snaplen = snaplen;
    this.file = file;
    this.iface = iface;
    this.filter = filter;
    this.ns = ns;
  }

  async start(timeoutMs = 5000): Promise<void> {
    // In immediate mode libpcap uses a TPACKET_V2 ring whose slots are snaplen-sized: with the
    // default 262144-byte snaplen a 16 MiB buffer has 64 slots and bursts are lost ("N packets
    // dropped by kernel"). RoCEv2 datagrams are at most ~4.2 KB: 8 KiB slots, 32 MiB buffer.
    const args = ['-i', this.iface, '--immediate-mode', '-U', '-s', String(this.snaplen), '-n', '-B', '32768', '-w', this.file, this.filter];
    const proc = this.ns === undefined
      ? spawn('tcpdump', args, { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('ip', ['netns', 'exec', this.ns, 'tcpdump', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
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

  /** Waits 0.5 s for the last packets, SIGINT, waits (bounded) for exit. */
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

  /** tcpdump's stderr (packet counts, "dropped by kernel") after stop(). */
  get stderr(): string {
    return this.#stderr;
  }
}
