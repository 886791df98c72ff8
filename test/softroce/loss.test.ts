/**
 * softroce under packet loss: every byte still arrives exactly once and in order (the verified
 * transfer of support/transfer.ts: regenerated payloads compared byte by byte, crc32 headers,
 * receive wrIds in order, nothing after the run), 8 MiB each way plus RDMA READs.
 *
 * - Test hook: both devices drop 1% / 10% of their outgoing datagrams (seeded PRNG), so both
 *   directions lose requests, ACKs, NAKs and READ responses. The counters must show the drops
 *   and the recovery (retransmissions).
 * - Real dropper: drop.bpf.c compiled with clang for 5%, attached with tc (clsact + cls_bpf
 *   direct-action) to the egress of BOTH veth ends between two namespaces. The clsact drop
 *   counters must show drops on both ends, softroce's hooks must have dropped nothing, and its
 *   retransmission counters must be non-zero.
 *
 * The local ACK timeout is clamped to 20 ms (provider option) so a lost tail costs little time.
 */
import assert from 'node:assert/strict';
import { NetnsPair } from '../support/netns.js';
import { buildDropper, TcDropper, type DropperBuild } from '../support/bpf/dropper.js';
import { requireOrSkip } from '../support/tools.js';
import { LocalAgent } from './support/agent-core.js';
import { agentArgs, killAllChildren, RpcChild, runChild } from './support/child.js';
import { softroceMissing } from './support/providers.js';
import { connectPair, describeResult, MiB, openArgs, transferBothWays, type ScenarioParams } from './support/scenario.js';

const TRANSFER: Omit<ScenarioParams, 'seedA' | 'seedB'> = {
  count: 10_000, totalBytes: 8 * MiB, maxSize: MiB, reads: 4, runTimeoutMs: 40_000,
};

function skipWithoutSoftroce(ctx: Mocha.Context): void {
  const why = softroceMissing();
  if (why !== undefined) {
    process.stdout.write(`      SKIP: ${why}\n`);
    ctx.skip();
  }
}

describe('softroce under loss: test-hook drops (both directions)', function () {
  this.timeout(60_000);
  let local: LocalAgent | undefined;

  before(function () {
    skipWithoutSoftroce(this);
  });

  afterEach(async () => {
    killAllChildren();
    await local?.close().catch(() => undefined);
    local = undefined;
  });

  for (const [p, seed] of [[0.01, 11], [0.1, 12]] as const) {
    it(`${p * 100}% of datagrams dropped each way: 8 MiB each way, every byte once and in order, READs`, async () => {
      const opts = (s: number): Record<string, unknown> => ({ testHooks: { dropOutgoing: p, seed: s }, maxAckTimeoutMs: 20 });
      local = new LocalAgent();
      const child = new RpcChild(runChild([process.execPath, agentArgs()], 55_000, 'agent@127.0.0.2'));
      const { mtuBytes } = await connectPair(
        local, child,
        openArgs('sr-loss-a', '127.0.0.1', seed * 10 + 1, MiB, opts(seed)),
        openArgs('sr-loss-b', '127.0.0.2', seed * 10 + 2, MiB, opts(seed + 1000)),
      );
      const r = await transferBothWays(local, child, mtuBytes, { seedA: seed, seedB: seed + 1, ...TRANSFER });
      process.stdout.write(describeResult(`${p * 100}% hook loss`, r));
      for (const [side, s] of [['A', r.statsA], ['B', r.statsB]] as const) {
        const sent = (s['txPackets'] ?? 0) + (s['hookDropsTx'] ?? 0);
        const drops = s['hookDropsTx'] ?? 0;
        assert.ok(drops > 0, `${side}: the hook dropped nothing`);
        // Binomial bounds, generous (6 sd + 5): the hook really drops about p of what is sent.
        const sd = Math.sqrt(sent * p * (1 - p));
        assert.ok(Math.abs(drops - sent * p) < 6 * sd + 5, `${side}: ${drops} drops of ${sent} datagrams is not about ${p}`);
        assert.ok((s['retransmissions'] ?? 0) > 0, `${side}: lost requests but no retransmission`);
      }
      await child.close();
    });
  }
});

describe('softroce under loss: tc cls_bpf dropper (5%) on both veth ends between namespaces', function () {
  this.timeout(60_000);
  let pair: NetnsPair | undefined;
  let build: DropperBuild | undefined;
  const droppers: TcDropper[] = [];

  before(function () {
    requireOrSkip(this, { tools: ['ip', 'tc', 'clang'], root: true });
    skipWithoutSoftroce(this);
  });

  after(() => {
    killAllChildren();
    for (const d of droppers) d.detach();
    pair?.destroy();
    build?.cleanup();
  });

  it('8 MiB each way through a real 5% dropper: every byte once and in order, READs; the dropper dropped', async () => {
    pair = NetnsPair.create();
    build = buildDropper(0.05);
    for (const end of [pair.a, pair.b]) {
      const d = new TcDropper(end.ns, end.dev);
      droppers.push(d);
      d.attach(build.object);
    }
    const a = new RpcChild(runChild(NetnsPair.execArgs(pair.a.ns, process.execPath, agentArgs()), 55_000, `agent@${pair.a.ip}`));
    const b = new RpcChild(runChild(NetnsPair.execArgs(pair.b.ns, process.execPath, agentArgs()), 55_000, `agent@${pair.b.ip}`));
    const opts = { maxAckTimeoutMs: 20 };
    const { mtuBytes } = await connectPair(a, b, openArgs('sr-a', pair.a.ip, 501, MiB, opts), openArgs('sr-b', pair.b.ip, 502, MiB, opts));
    const r = await transferBothWays(a, b, mtuBytes, { seedA: 21, seedB: 22, ...TRANSFER });
    process.stdout.write(describeResult('tc dropper 5%', r));
    const counts = droppers.map((d) => d.stats());
    process.stdout.write(`        clsact: ${pair.a.dev} ${JSON.stringify(counts[0])}, ${pair.b.dev} ${JSON.stringify(counts[1])}\n`);
    for (const [i, c] of counts.entries()) {
      assert.ok(c.drops > 0, `dropper on ${droppers[i]!.dev} dropped nothing`);
      const sd = Math.sqrt(c.packets * 0.05 * 0.95);
      assert.ok(Math.abs(c.drops - c.packets * 0.05) < 6 * sd + 5, `${droppers[i]!.dev}: ${c.drops} of ${c.packets} is not about 5%`);
    }
    for (const [side, s] of [['A', r.statsA], ['B', r.statsB]] as const) {
      assert.equal((s['hookDropsTx'] ?? 0) + (s['hookDropsRx'] ?? 0), 0, `${side}: no test-hook drops in this test`);
      assert.ok((s['retransmissions'] ?? 0) > 0, `${side}: packets were dropped on the wire but nothing was retransmitted`);
    }
    await Promise.all([a.close(), b.close()]);
  });
});
