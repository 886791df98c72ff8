/**
 * Peers learned to be TCP-only. A server that reflects the SMC option without speaking CLC (a
 * middlebox, or a stack that echoes unknown options) makes every SMC attempt fail or cost a
 * timeout; after one such answer we stop offering SMC to that (address, port) for `ttlMs`, so later
 * connections are plain TCP from the SYN on. Bounded: the oldest entry goes when `maxEntries` is
 * reached, so a scan of many hosts cannot grow it without limit. Time comes from an injected clock.
 */
import { checkPort, formatIp, parseIp } from './address.js';
import { NetError, NetErrorCode } from './errors.js';

export interface BlockEntry {
  readonly address: string;
  readonly port: number;
  /** Why: the engine's detail, e.g. "the answer to our Proposal is not a CLC message". */
  readonly why: string;
  /** Clock time the block ends. */
  readonly until: number;
}

export interface BlockListOptions {
  /** How long a learned block lasts (ms); 0 disables learning. Default 10 minutes. */
  readonly ttlMs?: number;
  /** At most this many peers are remembered. Default 4096. */
  readonly maxEntries?: number;
  /** Milliseconds clock (default Date.now). */
  readonly now?: () => number;
}

export class LearnedBlockList {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly #now: () => number;
  /** Insertion-ordered: the first key is the oldest (Map keeps insertion order; re-learning moves a key to the end). */
  readonly #entries = new Map<string, BlockEntry>();

  constructor(opts: BlockListOptions = {}) {
    const ttl = opts.ttlMs ?? 10 * 60_000;
    const max = opts.maxEntries ?? 4096;
    if (!Number.isFinite(ttl) || ttl < 0) throw new NetError(NetErrorCode.BAD_OPTION, `block list ttlMs ${String(ttl)} must be a finite number >= 0`);
    if (!Number.isInteger(max) || max < 1) throw new NetError(NetErrorCode.BAD_OPTION, `block list maxEntries ${String(max)} must be an integer >= 1`);
    this.ttlMs = ttl;
    this.maxEntries = max;
    this.#now = opts.now ?? Date.now;
  }

  static #key(address: string, port: number): { key: string; address: string } {
    const a = formatIp(parseIp(address));
    return { key: `${a}|${checkPort(port)}`, address: a };
  }

  /** Marks (address, port) TCP-only for ttlMs. */
  learn(address: string, port: number, why: string): BlockEntry | undefined {
    const { key, address: a } = LearnedBlockList.#key(address, port);
    if (this.ttlMs === 0) return undefined;
    this.#entries.delete(key);
    while (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    const e: BlockEntry = { address: a, port, why, until: this.#now() + this.ttlMs };
    this.#entries.set(key, e);
    return e;
  }

  /** The live block for (address, port), if any (expired ones are dropped here). */
  blocked(address: string, port: number): BlockEntry | undefined {
    const { key } = LearnedBlockList.#key(address, port);
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (this.#now() >= e.until) {
      this.#entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** Forgets one peer (e.g. after it was upgraded), or everything. */
  forget(address?: string, port?: number): void {
    if (address === undefined) this.#entries.clear();
    else this.#entries.delete(LearnedBlockList.#key(address, port ?? 0).key);
  }

  /** Live entries, oldest first. */
  entries(): BlockEntry[] {
    const now = this.#now();
    const out: BlockEntry[] = [];
    for (const [k, e] of this.#entries) {
      if (now >= e.until) this.#entries.delete(k);
      else out.push(e);
    }
    return out;
  }
}
