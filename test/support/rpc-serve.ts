/**
 * The child side of the JSON-lines RPC that RpcChild (test/softroce/support/child.ts) speaks: one
 * request per line on stdin, `{id, cmd, args}`, answered `{id, ok, result}` or `{id, ok: false,
 * error}` on stdout; diagnostics go to stderr. When stdin closes, the agent is closed after every
 * request has settled and the process exits 0 (1 if closing failed or anything went uncaught).
 */
import { createInterface } from 'node:readline';

export interface RpcAgent {
  handle(cmd: string, args: Record<string, unknown>): Promise<unknown>;
  close(): Promise<unknown> | unknown;
}

export interface ServeRpcOptions {
  /**
   * true: requests run as they arrive, so a long call (a transfer) does not hold back another (an
   * echo on the same agent); false: one at a time, in order.
   */
  readonly concurrent: boolean;
}

function reply(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

export function serveRpc(agent: RpcAgent, opts: ServeRpcOptions): void {
  const inflight = new Set<Promise<void>>();
  let chain: Promise<void> = Promise.resolve();
  const run = async (line: string): Promise<void> => {
    let req: { id: number; cmd: string; args?: Record<string, unknown> };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      reply({ id: -1, ok: false, error: `bad request line: ${line.slice(0, 200)}` });
      return;
    }
    try {
      reply({ id: req.id, ok: true, result: (await agent.handle(req.cmd, req.args ?? {})) ?? null });
    } catch (e) {
      reply({ id: req.id, ok: false, error: (e as Error).stack ?? String(e) });
    }
  };
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    if (!opts.concurrent) {
      chain = chain.then(() => run(line));
      return;
    }
    const p = run(line);
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  });
  rl.on('close', () => {
    Promise.allSettled([chain, ...inflight])
      .then(() => agent.close())
      .then(() => process.exit(0))
      .catch((e: unknown) => {
        process.stderr.write(`close failed: ${(e as Error).stack ?? String(e)}\n`);
        process.exit(1);
      });
  });
  process.on('uncaughtException', (e) => {
    process.stderr.write(`uncaught: ${e.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
