/**
 * Child-process endpoint of the engine tests: one SmcEngine over one softroce device, driven by
 * JSON-lines requests on stdin (`{id, cmd, args}` -> `{id, ok, result|error}` on stdout, as RpcChild
 * of test/softroce/support/child.ts speaks it). Diagnostics go to stderr.
 * Exits 0 when stdin closes (after closing the engine and the device), 1 on an uncaught error.
 *
 * Commands:
 *   open {device: {name, ip, port?, mtu?}, clc?, timers?}     -> {gids}
 *   listen {host}                                             -> {port}  (accepted sockets go to engine.accept)
 *   connect {host, port}                                      -> Outcome (client handshake)
 *   accepted {}                                               -> Outcome of the next accepted socket (in accept order)
 *   transfer {conn, sendBytes, sendSeed, recvSeed, chunk}
 *       sends sendBytes of the keystream of sendSeed in chunk-sized writes, then end(); at the same
 *       time reads until 'end', comparing every byte with the keystream of recvSeed; waits for 'close'
 *       -> TransferResult
 *   state {}                                                  -> EngineState (link groups, connections, caches)
 *   shutdown {}                                               -> engine.close(), device closed
 *
 * Requests are handled concurrently (each answer carries its id), so both directions of a transfer
 * and several connections can run at once.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { SmcEngine, type SmcConnection, type SmcOutcome } from '@smc-r/core';
import type { Context } from '@smc-r/verbs';
import { createSoftRoce, deviceStats, type SoftRoceDeviceConfig } from '../softroce/support/providers.js';
import { serveRpc } from '../support/rpc-serve.js';
import { Keystream } from './support/keystream.js';

export interface Outcome {
  /** Connection id for transfer (SMC-R only). */
  readonly conn: number;
  readonly mode: 'smcr' | 'tcp';
  readonly version?: number;
  readonly firstContact?: boolean;
  readonly reason?: number;
  readonly peerDiagnosis?: number;
  readonly detail?: string;
  /** Our alert token and link group id (SMC-R). */
  readonly token?: number;
  readonly lgrId?: number;
}

export interface TransferResult {
  readonly sent: number;
  readonly received: number;
  readonly sha256Sent: string;
  readonly sha256Received: string;
  /** First byte offset that differed from the expected keystream, -1 if none. */
  readonly firstMismatch: number;
  readonly ms: number;
  readonly writeFalse: number;
  readonly errors: readonly string[];
}

export interface EngineState {
  readonly lgrs: readonly { id: number; role: string; version: number; conns: number; bufCache: number; terminating: boolean; peerHostname: string | undefined }[];
  readonly device: Record<string, number>;
}

class EngineAgent {
  ctx: Context | undefined;
  engine: SmcEngine | undefined;
  server: Server | undefined;
  readonly conns = new Map<number, SmcConnection>();
  readonly accepted: Promise<Outcome>[] = [];
  readonly #acceptWaiters: ((p: Promise<Outcome>) => void)[] = [];
  #nextConn = 1;

  async handle(cmd: string, args: Record<string, unknown>): Promise<unknown> {
    switch (cmd) {
      case 'open': {
        const a = args as { device: SoftRoceDeviceConfig; clc?: Record<string, number>; timers?: Record<string, number> };
        const provider = createSoftRoce([a.device]);
        this.ctx = await provider.open(a.device.name);
        this.engine = new SmcEngine({ context: this.ctx, clc: a.clc ?? {}, timers: { TEST_LINK_INTERVAL: 0, ...(a.timers ?? {}) } });
        return { gids: this.ctx.gidTable(1).map((g) => ({ index: g.index, type: g.type, ipv4: g.ipv4 })) };
      }
      case 'listen': {
        const srv = createServer();
        this.server = srv;
        srv.on('connection', (sock: Socket) => {
          const p = this.#engine().accept(sock, { peerSignalledSmc: true }).then((o) => this.#register(o));
          p.catch(() => {});
          const w = this.#acceptWaiters.shift();
          if (w) w(p);
          else this.accepted.push(p);
        });
        srv.listen(0, String(args.host ?? '127.0.0.1'));
        await once(srv, 'listening');
        return { port: (srv.address() as { port: number }).port };
      }
      case 'connect': {
        const sock = tcpConnect(Number(args.port), String(args.host ?? '127.0.0.1'));
        await once(sock, 'connect');
        return this.#register(await this.#engine().connect(sock, { peerSignalledSmc: true }));
      }
      case 'accepted': {
        const p = this.accepted.shift() ?? new Promise<Promise<Outcome>>((r) => this.#acceptWaiters.push(r)).then((x) => x);
        return p;
      }
      case 'transfer':
        return this.#transfer(args as unknown as TransferArgs);
      case 'state':
        return this.state();
      case 'shutdown':
        await this.close();
        return {};
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  }

  #engine(): SmcEngine {
    if (this.engine === undefined) throw new Error('not open');
    return this.engine;
  }

  #register(o: SmcOutcome): Outcome {
    if (o.mode === 'tcp') {
      o.socket.destroy();
      return { conn: 0, mode: 'tcp', reason: o.reason, ...(o.peerDiagnosis !== undefined ? { peerDiagnosis: o.peerDiagnosis } : {}), detail: o.detail };
    }
    const id = this.#nextConn++;
    this.conns.set(id, o.conn);
    const lgr = [...this.#engine().lgrs].find((g) => g.conns.get(o.conn.token) === o.conn);
    return { conn: id, mode: 'smcr', version: o.version, firstContact: o.firstContact, token: o.conn.token, ...(lgr ? { lgrId: lgr.id } : {}) };
  }

  #transfer(a: TransferArgs): Promise<TransferResult> {
    const conn = this.conns.get(a.conn);
    if (conn === undefined) throw new Error(`no connection ${a.conn}`);
    const t0 = performance.now();
    const errors: string[] = [];
    conn.on('error', (e: Error & { code?: string }) => errors.push(`${e.code ?? ''} ${e.message}`));
    const hashIn = createHash('sha256');
    const expect = new Keystream(a.recvSeed);
    let received = 0;
    let firstMismatch = -1;
    const reading = new Promise<void>((resolve) => {
      conn.on('data', (d: Buffer) => {
        hashIn.update(d);
        if (firstMismatch < 0) {
          const e = expect.next(d.length);
          if (!e.equals(d)) {
            let k = 0;
            while (k < d.length && d[k] === e[k]) k++;
            firstMismatch = received + k;
          }
        }
        received += d.length;
      });
      conn.once('end', () => resolve());
      conn.once('error', () => resolve());
    });
    const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
    const writing = (async () => {
      const src = new Keystream(a.sendSeed);
      const hashOut = createHash('sha256');
      let sent = 0;
      let writeFalse = 0;
      while (sent < a.sendBytes && !conn.destroyed) {
        const n = Math.min(a.chunk, a.sendBytes - sent);
        const b = src.next(n);
        hashOut.update(b);
        sent += n;
        if (!conn.write(b)) {
          writeFalse++;
          await new Promise<void>((r) => {
            const done = (): void => { conn.off('drain', done); conn.off('close', done); r(); };
            conn.on('drain', done);
            conn.on('close', done);
          });
        }
      }
      conn.end();
      return { sent, writeFalse, sha256Sent: hashOut.digest('hex') };
    })();
    return Promise.all([writing, reading, closed]).then(([w]) => {
      this.conns.delete(a.conn);
      return {
        sent: w.sent, received, sha256Sent: w.sha256Sent, sha256Received: hashIn.digest('hex'), firstMismatch,
        ms: performance.now() - t0, writeFalse: w.writeFalse, errors,
      };
    });
  }

  state(): EngineState {
    const lgrs = [...(this.engine?.lgrs ?? [])].map((g) => ({
      id: g.id, role: g.role, version: g.version, conns: g.conns.size, bufCache: g.bufCache.length,
      terminating: g.terminating, peerHostname: g.peerHostname,
    }));
    return { lgrs, device: this.ctx ? deviceStats(this.ctx) : {} };
  }

  async close(): Promise<void> {
    this.server?.close();
    this.server = undefined;
    const engine = this.engine;
    const ctx = this.ctx;
    this.engine = undefined;
    this.ctx = undefined;
    for (const c of this.conns.values()) c.on('error', () => {});
    await engine?.close();
    await ctx?.close();
  }
}

interface TransferArgs {
  readonly conn: number;
  readonly sendBytes: number;
  readonly sendSeed: number;
  readonly recvSeed: number;
  readonly chunk: number;
}

serveRpc(new EngineAgent(), { concurrent: true });
