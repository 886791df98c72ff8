/**
 * softroce between two network namespaces joined by a veth pair (192.0.2.1/24 <-> 192.0.2.2/24,
 * TEST-NET-1, inside the namespaces only). Both endpoints are children started with
 * `ip netns exec`; the transfer and its checks are those of the two-process test. The
 * namespaces are removed in the after hook (and on process exit) whatever happened.
 */
import { NetnsPair } from '../support/netns.js';
import { requireOrSkip } from '../support/tools.js';
import { agentArgs, killAllChildren, RpcChild, runChild } from './support/child.js';
import { softroceMissing } from './support/providers.js';
import { connectPair, describeResult, MiB, openArgs, transferBothWays } from './support/scenario.js';

describe('softroce: two network namespaces over a veth pair', function () {
  this.timeout(60_000);
  let pair: NetnsPair | undefined;

  before(function () {
    requireOrSkip(this, { tools: ['ip'], root: true });
    const why = softroceMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
  });

  after(() => {
    killAllChildren();
    pair?.destroy();
  });

  it('RC over a veth: WRITE/SEND/IMM both ways, every byte once and in order, then RDMA READ', async () => {
    pair = NetnsPair.create();
    const a = new RpcChild(runChild(NetnsPair.execArgs(pair.a.ns, process.execPath, agentArgs()), 55_000, `agent@${pair.a.ip}`));
    const b = new RpcChild(runChild(NetnsPair.execArgs(pair.b.ns, process.execPath, agentArgs()), 55_000, `agent@${pair.b.ip}`));
    const { mtuBytes } = await connectPair(a, b, openArgs('sr-a', pair.a.ip, 303, 4 * MiB), openArgs('sr-b', pair.b.ip, 404, 4 * MiB));
    const r = await transferBothWays(a, b, mtuBytes, { seedA: 3, seedB: 4, count: 32, maxSize: 4 * MiB, reads: 8, runTimeoutMs: 30_000 });
    process.stdout.write(describeResult('netns', r));
    await Promise.all([a.close(), b.close()]);
  });
});
