/**
 * softroce between two processes over loopback: the test process opens a device on 127.0.0.1,
 * a child (`node --import tsx agent.ts`) one on 127.0.0.2. They exchange QPN, PSN, GID, rkey and
 * addresses over the child's stdin/stdout (JSON lines), bring two RC QP pairs up and move data
 * both ways at once with SEND, SEND with immediate, RDMA WRITE + header SEND and RDMA WRITE with
 * immediate (sizes 1 B .. 4 MiB, edge sizes around the MTU first), then RDMA READ both ways.
 * Every byte is compared with the regenerated payload, every message is checked to arrive once
 * and in order (receive wrIds, immediates, headers with crc32), and nothing may arrive afterwards.
 */
import { LocalAgent } from './support/agent-core.js';
import { agentArgs, killAllChildren, RpcChild, runChild } from './support/child.js';
import { softroceMissing } from './support/providers.js';
import { connectPair, describeResult, MiB, openArgs, transferBothWays } from './support/scenario.js';

describe('softroce: two processes over loopback (127.0.0.1 <-> 127.0.0.2)', function () {
  this.timeout(60_000);
  let local: LocalAgent | undefined;
  let child: RpcChild | undefined;

  before(function () {
    const why = softroceMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
  });

  after(async () => {
    killAllChildren();
    await local?.close().catch(() => undefined);
  });

  it('RC: WRITE/SEND/IMM both ways (1 B..4 MiB, every byte once and in order), then RDMA READ both ways', async () => {
    local = new LocalAgent();
    child = new RpcChild(runChild([process.execPath, agentArgs()], 55_000, 'agent@127.0.0.2'));
    const { mtuBytes } = await connectPair(
      local, child,
      openArgs('sr-parent', '127.0.0.1', 101, 4 * MiB),
      openArgs('sr-child', '127.0.0.2', 202, 4 * MiB),
    );
    const r = await transferBothWays(local, child, mtuBytes, {
      seedA: 1, seedB: 2, count: 40, maxSize: 4 * MiB, reads: 12, runTimeoutMs: 30_000,
    });
    process.stdout.write(describeResult('loopback', r));
    await child.close();
  });
});
