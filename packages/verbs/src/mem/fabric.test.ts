// When the mem fabric runs its turns (fabric.ts): after the event loop was idle a turn waits for
// a setImmediate; the turns a turn causes run as microtasks, at most MICROTASK_BURST of them
// before the event loop gets its check phase again; a throwing handler stays an uncaught exception.
import assert from 'node:assert/strict';
import type { Context } from '../types.js';
import { WrOpcode } from '../types.js';
import type { Side } from '../testing/conformance.js';
import { connectPair, makeSide, pollNow, sendWr, sge, waitCompletions } from '../testing/conformance.js';
import { MICROTASK_BURST } from './fabric.js';
import { MemProvider } from './provider.js';

const opened: Context[] = [];

async function pair(): Promise<{ a: Side; b: Side }> {
  const p = new MemProvider();
  const ca = await p.open('mem0');
  const cb = await p.open('mem1');
  opened.push(ca, cb);
  const a = makeSide(ca, 0x100);
  const b = makeSide(cb, 0x200);
  connectPair(a, b);
  return { a, b };
}

const write = (s: Side, peer: Side, wrId: number): void =>
  s.qp.postSend(sendWr({ wrId, opcode: WrOpcode.RDMA_WRITE, sges: [sge(s.mr, 0, 8)], remote: { mr: peer.mr, offset: 0 } }));

const checkPhase = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Runs `fn` with mocha's uncaughtException listeners replaced by a collector; returns what was caught. */
async function catchingUncaught(fn: () => Promise<void>): Promise<unknown[]> {
  const saved = process.listeners('uncaughtException');
  const caught: unknown[] = [];
  const mine = (e: unknown): void => { caught.push(e); };
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', mine);
  try {
    await fn();
  } finally {
    process.off('uncaughtException', mine);
    for (const l of saved) process.on('uncaughtException', l);
  }
  return caught;
}

describe('mem fabric: when turns run', () => {
  afterEach(async () => {
    for (const c of opened.splice(0)) await c.close();
  });

  it('a post after an idle event loop completes on the check phase, not in a microtask', async () => {
    const { a, b } = await pair();
    let calls = 0;
    a.scq.setHandler(() => calls++);
    a.scq.arm();
    write(a, b, 1);
    for (let i = 0; i < 20; i++) await Promise.resolve();
    assert.equal(calls, 0, 'no completion while only microtasks ran');
    assert.deepEqual(pollNow(a.scq), []);
    await checkPhase();
    assert.equal(calls, 1);
    assert.deepEqual(pollNow(a.scq).map((w) => w.wrId), [1]);
  });

  it('a ping-pong chains its hops as microtasks and lets the event loop run every MICROTASK_BURST turns', async () => {
    const { a, b } = await pair();
    const total = 10 * MICROTASK_BURST;
    let hops = 0;
    let finish: () => void = () => {};
    const done = new Promise<void>((r) => { finish = r; });
    // Each completion posts the next WRITE from the handler: one fabric turn per hop.
    a.scq.setHandler(() => {
      hops += pollNow(a.scq).length;
      a.scq.arm();
      if (hops < total) write(a, b, hops);
      else finish();
    });
    a.scq.arm();
    // A self-renewing setImmediate samples the hop count at every check phase.
    const seen: number[] = [];
    let sampling = true;
    const sample = (): void => {
      seen.push(hops);
      if (sampling) setImmediate(sample);
    };
    write(a, b, 0);
    setImmediate(sample);
    await done;
    sampling = false;
    await checkPhase();
    assert.equal(hops, total);
    const steps = seen.slice(1).map((h, i) => h - seen[i]!).filter((d) => d > 0);
    assert.ok(steps.length >= total / (MICROTASK_BURST + 1) - 1, `only ${steps.length} check phases saw progress: ${seen.join(',')}`);
    for (const d of steps) assert.ok(d <= MICROTASK_BURST + 1, `${d} hops between two check phases: ${seen.join(',')}`);
    assert.ok(steps.some((d) => d > 1), `every hop waited for the event loop: ${seen.join(',')}`);
  });

  it('a handler that throws in a microtask turn is an uncaught exception; the fabric keeps running', async () => {
    const { a, b } = await pair();
    let hops = 0;
    const boom = new Error('handler bug');
    a.scq.setHandler(() => {
      hops += pollNow(a.scq).length;
      a.scq.arm();
      if (hops < 3) write(a, b, hops);
      if (hops === 2) throw boom; // hop 2 is a chained (microtask) turn
    });
    a.scq.arm();
    const caught = await catchingUncaught(async () => {
      write(a, b, 0);
      await checkPhase();
      await checkPhase();
    });
    assert.deepEqual(caught, [boom]);
    // The WRITE posted before the throw completed; the fabric still serves new work.
    assert.equal(hops, 3);
    a.scq.setHandler(null);
    write(a, b, 9);
    assert.deepEqual((await waitCompletions(a.scq, 1)).map((w) => w.wrId), [9]);
  });
});
