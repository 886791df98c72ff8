/**
 * Child-process endpoint of the softroce tests (run as `node --import tsx agent.ts`, possibly
 * under `ip netns exec`). Reads one JSON request per line on stdin, `{id, cmd, args}`, handles
 * them one at a time, and answers `{id, ok, result}` or `{id, ok: false, error}` on stdout.
 * Diagnostics go to stderr. Exits 0 when stdin closes (after closing the device), 1 on an
 * uncaught error.
 */
import { serveRpc } from '../support/rpc-serve.js';
import { Agent } from './support/agent-core.js';

serveRpc(new Agent(), { concurrent: false });
