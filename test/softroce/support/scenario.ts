/**
 * The body shared by the two-process, namespace and loss tests: open a device on each endpoint,
 * exchange QPN/PSN/GID/rkey/addresses, bring the QPs up, run the verified transfer both ways at
 * once, RDMA READ both ways, and check that nothing arrived twice.
 */
import assert from 'node:assert/strict';
import { makePlan, planBytes, ALL_MODES, type ConnectOptions, type EndpointInfo, type Mode, type PlanParams, type RunResult } from './transfer.js';
import type { OpenArgs } from './agent-core.js';

/** An endpoint: the in-process LocalAgent or a child's RpcChild. */
export interface Endpoint {
  call<T = unknown>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T>;
}

export const MiB = 1024 * 1024;

export interface ScenarioParams {
  readonly seedA: number;
  readonly seedB: number;
  /** Messages per direction (upper bound when totalBytes is set). */
  readonly count: number;
  readonly totalBytes?: number;
  readonly maxSize: number;
  readonly modes?: readonly Mode[];
  readonly reads: number;
  /** Longest READ (default maxSize). */
  readonly readMaxLen?: number;
  readonly runTimeoutMs: number;
  readonly connect?: ConnectOptions;
}

export interface ScenarioResult {
  readonly a: RunResult;
  readonly b: RunResult;
  readonly planA: PlanParams;
  readonly planB: PlanParams;
  readonly mtuBytes: number;
  readonly statsA: Record<string, number>;
  readonly statsB: Record<string, number>;
  readonly readsA: { reads: number; bytes: number };
  readonly readsB: { reads: number; bytes: number };
}

export function openArgs(name: string, ip: string, readSeed: number, slotSize: number, providerOptions: Record<string, unknown> = {}, port?: number): OpenArgs {
  return {
    devices: [port === undefined ? { name, ip } : { name, ip, port }],
    device: name,
    providerOptions,
    peer: { slots: 2, slotSize, readSize: Math.min(slotSize, 4 * MiB), readSeed },
  };
}

/** Opens both endpoints and connects their QPs; returns the path MTU in bytes. */
export async function connectPair(a: Endpoint, b: Endpoint, openA: OpenArgs, openB: OpenArgs, connect: ConnectOptions = {}): Promise<{ infoA: EndpointInfo; infoB: EndpointInfo; mtuBytes: number }> {
  const infoA = await a.call<EndpointInfo>('open', openA);
  const infoB = await b.call<EndpointInfo>('open', openB);
  assert.equal(infoA.gid.length, 32);
  assert.notEqual(infoA.gid, infoB.gid);
  const ca = await a.call<{ mtuBytes: number }>('connect', { remote: infoB, options: connect });
  const cb = await b.call<{ mtuBytes: number }>('connect', { remote: infoA, options: connect });
  assert.equal(ca.mtuBytes, cb.mtuBytes, 'both sides agree on the path MTU');
  return { infoA, infoB, mtuBytes: ca.mtuBytes };
}

function checkRun(side: string, r: RunResult, sent: PlanParams, got: PlanParams, modes: readonly Mode[]): void {
  const txPlan = makePlan(sent);
  const rxPlan = makePlan(got);
  assert.equal(r.sentMessages, txPlan.length, `${side}: every message sent and credited`);
  assert.equal(r.sentBytes, planBytes(txPlan));
  assert.equal(r.receivedMessages, rxPlan.length, `${side}: every message received exactly once`);
  assert.equal(r.receivedBytes, planBytes(rxPlan), `${side}: every byte received`);
  for (const m of modes) assert.ok(r.receivedByMode[m] > 0, `${side}: no ${m} message received`);
}

/**
 * Runs the transfer both ways at once and then the READs. The endpoints must be connected.
 * Every byte is compared inside the endpoints (see transfer.ts); here the totals are checked.
 */
export async function transferBothWays(a: Endpoint, b: Endpoint, mtuBytes: number, p: ScenarioParams): Promise<ScenarioResult> {
  const modes = p.modes ?? ALL_MODES;
  const base = { count: p.count, maxSize: p.maxSize, mtuBytes, modes, ...(p.totalBytes !== undefined ? { totalBytes: p.totalBytes } : {}) };
  const planA: PlanParams = { seed: p.seedA, ...base };
  const planB: PlanParams = { seed: p.seedB, ...base };
  const rpcTimeout = p.runTimeoutMs + 5000;
  const [ra, rb] = await Promise.all([
    a.call<RunResult>('run', { tx: planA, rx: planB, timeoutMs: p.runTimeoutMs }, rpcTimeout),
    b.call<RunResult>('run', { tx: planB, rx: planA, timeoutMs: p.runTimeoutMs }, rpcTimeout),
  ]);
  checkRun('A', ra, planA, planB, modes);
  checkRun('B', rb, planB, planA, modes);
  const readArgs = (seed: number): unknown => ({ seed, count: p.reads, maxLen: p.readMaxLen ?? p.maxSize, timeoutMs: p.runTimeoutMs });
  const readsA = p.reads > 0 ? await a.call<{ reads: number; bytes: number }>('read', readArgs(p.seedA + 7), rpcTimeout) : { reads: 0, bytes: 0 };
  const readsB = p.reads > 0 ? await b.call<{ reads: number; bytes: number }>('read', readArgs(p.seedB + 7), rpcTimeout) : { reads: 0, bytes: 0 };
  if (p.reads > 0) {
    assert.equal(readsA.reads, Math.max(2, p.reads));
    assert.equal(readsB.reads, Math.max(2, p.reads));
  }
  // Nothing may arrive after the run: a late duplicate would show up as a stray completion.
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(await a.call<string[]>('stray'), [], 'A: completions after the run');
  assert.deepEqual(await b.call<string[]>('stray'), [], 'B: completions after the run');
  const statsA = await a.call<Record<string, number>>('stats');
  const statsB = await b.call<Record<string, number>>('stats');
  return { a: ra, b: rb, planA, planB, mtuBytes, statsA, statsB, readsA, readsB };
}

/** One line for the test log: volumes, time and the device counters. */
export function describeResult(label: string, r: ScenarioResult): string {
  const mb = (n: number): string => (n / MiB).toFixed(1);
  return `      ${label}: A->B ${r.b.receivedMessages} msgs ${mb(r.b.receivedBytes)} MiB, B->A ${r.a.receivedMessages} msgs ${mb(r.a.receivedBytes)} MiB in ${r.a.ms.toFixed(0)}/${r.b.ms.toFixed(0)} ms; ` +
    `READ ${mb(r.readsA.bytes)}/${mb(r.readsB.bytes)} MiB; MTU ${r.mtuBytes}\n        stats A ${JSON.stringify(r.statsA)}\n        stats B ${JSON.stringify(r.statsB)}\n`;
}
