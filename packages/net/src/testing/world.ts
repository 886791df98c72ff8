/**
 * Fixtures for negotiator tests (packages/net and test/negotiator): engines on the mem provider,
 * negotiators, TCP listeners on 127.0.0.1 and the SMC outcomes they produce, all released by
 * cleanup(). Not part of the build.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { SmcEngine, type SmcEngineOptions, type SmcOutcome } from '@smc-r/core';
import { MemProvider, type Context } from '@smc-r/verbs';
import { answer } from '../dial.js';
import { Negotiator, type NegotiatorOptions } from '../negotiator.js';

export class NegotiatorWorld {
  readonly #timers: SmcEngineOptions['timers'];
  readonly #provider = new MemProvider({ devices: 2 });
  readonly #contexts: Context[] = [];
  readonly #engines: SmcEngine[] = [];
  readonly #servers: Server[] = [];
  readonly #sockets: Socket[] = [];
  readonly #negotiators: Negotiator[] = [];

  constructor(timers: SmcEngineOptions['timers']) {
    this.#timers = timers;
  }

  /** An engine on mem device `dev` ('mem0' or 'mem1'). */
  async engine(dev: string): Promise<SmcEngine> {
    const c = await this.#provider.open(dev);
    this.#contexts.push(c);
    const e = new SmcEngine({ context: c, ...(this.#timers !== undefined ? { timers: this.#timers } : {}) });
    this.#engines.push(e);
    return e;
  }

  negotiator(o: NegotiatorOptions): Negotiator {
    const n = Negotiator.open(o);
    this.#negotiators.push(n);
    return n;
  }

  /** A TCP listener on 127.0.0.1; every accepted socket goes to `onSocket`. */
  async listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
    const server = createServer((s) => {
      this.#sockets.push(s);
      s.on('error', () => {});
      onSocket(s);
    });
    this.#servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { server, port: (server.address() as { port: number }).port };
  }

  /** An SMC server on mem0: every accepted socket goes through `n` and the engine. */
  async smcServer(n: Negotiator): Promise<{ port: number; outcomes: Promise<SmcOutcome>[] }> {
    const e = await this.engine('mem0');
    const outcomes: Promise<SmcOutcome>[] = [];
    const { server, port } = await this.listen((s) => outcomes.push(answer(e, n, s)));
    n.serve(server);
    return { port, outcomes };
  }

  /** Registers an outcome's socket (and connection) for cleanup; errors after the test are ignored. */
  track(o: SmcOutcome): SmcOutcome {
    this.#sockets.push(o.socket);
    o.socket.on('error', () => {});
    if (o.mode === 'smcr') o.conn.on('error', () => {});
    return o;
  }

  async cleanup(): Promise<void> {
    for (const s of this.#sockets.splice(0)) s.destroy();
    for (const s of this.#servers.splice(0)) s.close();
    for (const n of this.#negotiators.splice(0)) n.close();
    for (const e of this.#engines.splice(0)) await e.close();
    for (const c of this.#contexts.splice(0)) await c.close();
  }
}
