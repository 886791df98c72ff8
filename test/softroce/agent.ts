/**
 * Child-process endpoint of the softroce tests (run as `node --import tsx agent.ts`, possibly
 * under `ip netns exec`). Reads one JSON request per line on stdin, `{id, cmd, args}`, handles
 * them one at a time, and answers `{id, ok, result}` or `{id, ok: false, error}` on stdout.
 * Diagnostics go to stderr. Exits 0 when stdin closes (after closing the device), 1 on an
 * uncaught error.
 */
import { createInterface } from 'node:readline';
import { Agent } from './support/agent-core.js';

const agent = new Agent();
let chain: Promise<void> = Promise.resolve();

function reply(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (line.trim() === '') return;
  chain = chain.then(async () => {
    let req: { id: number; cmd: string; args: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      reply({ id: -1, ok: false, error: `bad request line: ${line.slice(0, 200)}` });
      return;
    }
    try {
      reply({ id: req.id, ok: true, result: (await agent.handle(req.cmd, req.args)) ?? null });
    } catch (e) {
      reply({ id: req.id, ok: false, error: (e as Error).stack ?? String(e) });
    }
  });
});
rl.on('close', () => {
  chain
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
