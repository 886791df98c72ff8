/**
 * The loss tests' real dropper, checked on its own with plain UDP between two namespaces: it drops
 * RoCEv2 (UDP 4791) packets with the compiled-in probability, counts every drop in the clsact
 * qdisc statistics, and leaves other UDP ports alone.
 */
import assert from 'node:assert/strict';
import { requireOrSkip } from '../support/tools.js';
import { NetnsPair } from '../support/netns.js';
import { buildDropper, TcDropper, type DropperBuild } from '../support/bpf/dropper.js';
import { runChild } from './support/child.js';

const SENDER = `
import dgram from 'node:dgram';
const [dst, n1, n2] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
s.bind(0, () => {
  const b = Buffer.alloc(64);
  let i = 0;
  const total = Number(n1) + Number(n2);
  const next = () => {
    if (i === total) { s.close(); return; }
    const port = i < Number(n1) ? 4791 : 4792;
    b.writeUInt32BE(i++, 0);
    // Paced (a pause every 32 packets) so the receiver's socket buffer never overflows.
    s.send(b, port, dst, i % 32 === 0 ? () => setTimeout(next, 1) : next);
  };
  next();
});
`;

const RECEIVER = `
import dgram from 'node:dgram';
const [ip, quietMs] = process.argv.slice(1);
const counts = { 4791: 0, 4792: 0 };
let timer;
const arm = () => { clearTimeout(timer); timer = setTimeout(done, Number(quietMs)); };
const socks = [4791, 4792].map((port) => {
  const s = dgram.createSocket('udp4');
  s.on('message', () => { counts[port]++; arm(); });
  s.bind(port, ip);
  return s;
});
let ready = 0;
for (const s of socks) s.on('listening', () => { if (++ready === 2) { process.stdout.write('ready\\n'); arm(); } });
function done() { for (const s of socks) s.close(); process.stdout.write(JSON.stringify(counts) + '\\n'); }
`;

describe('softroce: tc cls_bpf dropper on a veth (plain UDP)', function () {
  this.timeout(30_000);
  let pair: NetnsPair | undefined;
  let build: DropperBuild | undefined;
  let dropper: TcDropper | undefined;

  before(function () {
    requireOrSkip(this, { tools: ['ip', 'tc', 'clang'], root: true });
  });

  after(() => {
    dropper?.detach();
    pair?.destroy();
    build?.cleanup();
  });

  it('drops UDP 4791 with the compiled probability, counts the drops, and passes other ports', async () => {
    const p = 0.2;
    const n1 = 3000;
    const n2 = 500;
    pair = NetnsPair.create();
    build = buildDropper(p);
    dropper = new TcDropper(pair.a.ns, pair.a.dev);
    dropper.attach(build.object);
    const before = dropper.stats();
    assert.equal(before.drops, 0);

    const receiver = runChild(NetnsPair.execArgs(pair.b.ns, process.execPath, ['--input-type=module', '-e', RECEIVER, '--', pair.b.ip, '1500']), 20_000);
    await receiver.waitLine((l) => l === 'ready');
    const sender = runChild(NetnsPair.execArgs(pair.a.ns, process.execPath, ['--input-type=module', '-e', SENDER, '--', pair.b.ip, String(n1), String(n2)]), 20_000);
    await sender.exited();
    const counts = JSON.parse(await receiver.waitLine((l) => l.startsWith('{'))) as Record<string, number>;
    await receiver.exited();

    const after = dropper.stats();
    const drops = after.drops - before.drops;
    // Binomial(3000, 0.2): mean 600, sd 21.9; +-6 sd never fails by chance.
    assert.ok(drops > 600 - 132 && drops < 600 + 132, `drops ${drops} not near ${n1 * p}`);
    assert.equal(counts['4791'], n1 - drops, 'every 4791 packet not dropped arrives');
    assert.equal(counts['4792'], n2, 'other ports are never dropped');
    assert.ok(after.packets - before.packets >= n1 + n2, 'the hook saw every packet');
  });
});
