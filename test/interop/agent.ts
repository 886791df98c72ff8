/**
 * Our side of the interop suite, run inside the interop namespace: one SmcEngine over one softroce
 * device on the namespace's address, SMC-Rv2 with the guest's UEID, speaking RoCEv2 to the guest
 * kernel's rdma_rxe. JSON-lines RPC on stdin/stdout (`{id, cmd, args}` -> `{id, ok, result|error}`,
 * as RpcChild speaks it).
 *
 * The SMC TCP option goes through the product's negotiator (@smc-r/net, mode bpf): dial() offers it
 * on our SYN, serve() makes our listener's SYN-ACK answer it, and each side reads from the kernel
 * whether the guest sent it. The kernel falls back without it (PEERNOSMC), so this is checked too.
 *
 * Commands:
 *   open {ip, ueid, hostname?}                     -> {negotiator, ipHeader}
 *   connect {host, port}                           -> Outcome (client handshake)
 *   listen {host, port}                            -> {}   (accepted sockets go to engine.accept)
 *   accepted {}                                    -> Outcome of the next accepted socket
 *   transfer {conn, bytes, seed, chunk}            send a keystream, read its echo at the same time,
 *                                                  end(), wait for the peer's end and close -> TransferResult
 *   echo {conn}                                    echo until the peer ends, then end -> EchoResult
 *   fallbackClose {conn}                           TCP fallback: end our side, drain, wait close -> {}
 *   state {}                                       link groups and device counters
 *   shutdown {}                                    engine.close() (DELETE_LINK ALL), device closed
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { SmcEngine, type SmcOutcome } from '@smc-r/core';
import { Negotiator, answer, dial } from '@smc-r/net';
import { SoftRoceProvider, type Context } from '@smc-r/verbs';
import { Keystream } from '../engine/support/keystream.js';
import { serveRpc } from '../support/rpc-serve.js';

export interface Outcome {
  readonly conn: number;
  readonly mode: 'smcr' | 'tcp';
  readonly version?: number;
  readonly firstContact?: boolean;
  readonly reason?: number;
  readonly peerDiagnosis?: number;
  readonly detail?: string;
  readonly lgrId?: number;
  /** What the negotiator saw (sockops only). */
  readonly peerSmc?: boolean;
}

export interface TransferResult {
  readonly sent: number;
  readonly received: number;
  readonly sha256Sent: string;
  readonly sha256Received: string;
  readonly firstMismatch: number;
  readonly ms: number;
  readonly errors: readonly string[];
}

export interface EchoResult {
  readonly received: number;
  readonly sha256: string;
  readonly ms: number;
  readonly errors: readonly string[];
}

class Agent {
  ctx: Context | undefined;
  provider: SoftRoceProvider | undefined;
  engine: SmcEngine | undefined;
  negotiator: Negotiator | undefined;
  server: Server | undefined;
  readonly conns = new Map<number, Duplex>();
  readonly accepted: Promise<Outcome>[] = [];
  readonly #waiters: ((p: Promise<Outcome>) => void)[] = [];
  #next = 1;

  async handle(cmd: string, a: Record<string, unknown>): Promise<unknown> {
    switch (cmd) {
      case 'open': {
        const ip = String(a['ip']);
        this.provider = new SoftRoceProvider({ devices: [{ name: 'sr0', ip, mtu: 1024 }] });
        this.ctx = await this.provider.open('sr0');
        this.engine = new SmcEngine({
          context: this.ctx,
          roceAddress: ip,
          clc: { ueids: [String(a['ueid'])], versions: [2], hostname: String(a['hostname'] ?? 'smcri-host') },
        });
        this.negotiator = Negotiator.open({ mode: 'bpf' });
        const dev = this.provider.device('sr0')!;
        return { negotiator: this.negotiator.mode, ipHeader: dev.ipHeader ?? 'unknown', ipHeaderNote: dev.ipHeaderNote };
      }
      case 'connect': {
        const neg = this.#negotiator();
        const signalled = neg.stats.peerSignalled;
        const { outcome } = await dial({ engine: this.#engine(), negotiator: neg, host: String(a['host']), port: Number(a['port']) });
        return { ...this.#register(outcome), peerSmc: neg.stats.peerSignalled > signalled };
      }
      case 'listen': {
        const port = Number(a['port']);
        const neg = this.#negotiator();
        const srv = createServer();
        this.server = srv;
        srv.on('connection', (sock: Socket) => {
          const signalled = neg.stats.peerSignalled;
          const p = answer(this.#engine(), neg, sock).then((o) => ({ ...this.#register(o), peerSmc: neg.stats.peerSignalled > signalled }));
          p.catch(() => {});
          const w = this.#waiters.shift();
          if (w) w(p);
          else this.accepted.push(p);
        });
        srv.listen(port, String(a['host']));
        await once(srv, 'listening');
        neg.serve(srv);
        return {};
      }
      case 'accepted':
        return this.accepted.shift() ?? new Promise<Promise<Outcome>>((r) => this.#waiters.push(r)).then((x) => x);
      case 'transfer':
        return this.#transfer(Number(a['conn']), Number(a['bytes']), Number(a['seed']), Number(a['chunk'] ?? 65536));
      case 'echo':
        return this.#echo(Number(a['conn']));
      case 'fallbackClose': {
        const s = this.#conn(Number(a['conn']));
        s.resume();
        s.end();
        await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, 10_000))]);
        this.conns.delete(Number(a['conn']));
        return {};
      }
      case 'state':
        return {
          lgrs: [...(this.engine?.lgrs ?? [])].map((g) => ({ id: g.id, role: g.role, version: g.version, conns: g.conns.size, peerHostname: g.peerHostname })),
          stats: this.ctx ? { ...(this.ctx as unknown as { stats: Record<string, number> }).stats } : {},
        };
      case 'shutdown':
        await this.close();
        return {};
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  }

  #negotiator(): Negotiator {
    if (this.negotiator === undefined) throw new Error('not open');
    return this.negotiator;
  }

  #engine(): SmcEngine {
    if (this.engine === undefined) throw new Error('not open');
    return this.engine;
  }

  #conn(id: number): Duplex {
    const c = this.conns.get(id);
    if (c === undefined) throw new Error(`no connection ${id}`);
    return c;
  }

  #register(o: SmcOutcome): Outcome {
    const id = this.#next++;
    if (o.mode === 'tcp') {
      this.conns.set(id, o.socket);
      return { conn: id, mode: 'tcp', reason: o.reason, ...(o.peerDiagnosis !== undefined ? { peerDiagnosis: o.peerDiagnosis } : {}), detail: o.detail };
    }
    this.conns.set(id, o.conn);
    const lgr = [...this.#engine().lgrs].find((g) => g.conns.get(o.conn.token) === o.conn);
    return { conn: id, mode: 'smcr', version: o.version, firstContact: o.firstContact, ...(lgr ? { lgrId: lgr.id } : {}) };
  }

  #transfer(id: number, bytes: number, seed: number, chunk: number): Promise<TransferResult> {
    const conn = this.#conn(id);
    const t0 = performance.now();
    const errors: string[] = [];
    conn.on('error', (e: Error & { code?: string }) => errors.push(`${e.code ?? ''} ${e.message}`));
    const hashIn = createHash('sha256');
    const expect = new Keystream(seed);
    let received = 0;
    let firstMismatch = -1;
    const reading = new Promise<void>((resolve) => {
      conn.on('data', (d: Buffer) => {
        hashIn.update(d);
        const e = expect.next(d.length);
        if (firstMismatch < 0 && !e.equals(d)) {
          let k = 0;
          while (k < d.length && d[k] === e[k]) k++;
          firstMismatch = received + k;
        }
        received += d.length;
      });
      conn.once('end', () => resolve());
      conn.once('error', () => resolve());
    });
    const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
    const writing = (async () => {
      const src = new Keystream(seed);
      const h = createHash('sha256');
      let sent = 0;
      while (sent < bytes && !conn.destroyed) {
        const n = Math.min(chunk, bytes - sent);
        const b = src.next(n);
        h.update(b);
        sent += n;
        if (!conn.write(b)) {
          await new Promise<void>((r) => {
            const done = (): void => { conn.off('drain', done); conn.off('close', done); r(); };
            conn.on('drain', done);
            conn.on('close', done);
          });
        }
      }
      conn.end();
      return { sent, sha: h.digest('hex') };
    })();
    return Promise.all([writing, reading, closed]).then(([w]) => {
      this.conns.delete(id);
      return { sent: w.sent, received, sha256Sent: w.sha, sha256Received: hashIn.digest('hex'), firstMismatch, ms: Math.round(performance.now() - t0), errors };
    });
  }

  #echo(id: number): Promise<EchoResult> {
    const conn = this.#conn(id);
    const t0 = performance.now();
    const errors: string[] = [];
    const h = createHash('sha256');
    let received = 0;
    conn.on('error', (e: Error & { code?: string }) => errors.push(`${e.code ?? ''} ${e.message}`));
    conn.on('data', (d: Buffer) => {
      h.update(d);
      received += d.length;
      if (!conn.write(d)) {
        conn.pause();
        conn.once('drain', () => conn.resume());
      }
    });
    conn.once('end', () => conn.end());
    conn.resume();
    return new Promise((resolve) => {
      conn.once('close', () => {
        this.conns.delete(id);
        resolve({ received, sha256: h.digest('hex'), ms: Math.round(performance.now() - t0), errors });
      });
    });
  }

  async close(): Promise<void> {
    this.server?.close();
    this.server = undefined;
    for (const c of this.conns.values()) {
      c.on('error', () => {});
      c.destroy();
    }
    this.conns.clear();
    const engine = this.engine;
    const ctx = this.ctx;
    this.engine = undefined;
    this.ctx = undefined;
    await engine?.close();
    await ctx?.close();
    this.negotiator?.close();
    this.negotiator = undefined;
  }
}

serveRpc(new Agent(), { concurrent: true });
