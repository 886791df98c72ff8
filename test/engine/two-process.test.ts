/**
 * The SMC-R engine between two processes over softroce: each child (`node --import tsx agent.ts`)
 * runs one SmcEngine on its own softroce device (server 127.0.0.1, client 127.0.0.2, both on one
 * random UDP port); the CLC handshake runs on a TCP connection over 127.0.0.1. The test process only
 * drives them (JSON lines) and checks what they report:
 *
 * 1. handshake: SMC-Rv2, first contact, on both sides;
 * 2. 64 MiB each way at once, every byte compared with the sender's keystream, sha256 equal on both
 *    ends, then the orderly close (both end(), both see 'close' without an error);
 * 3. a second connection reuses the link group (first contact false, same link group id, the
 *    cached buffers), 8 MiB each way;
 * 4. orderly shutdown: no connection left, the server's link group goes when the client's engine
 *    closes, both children exit 0.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { killAllChildren, RpcChild, runChild } from '../softroce/support/child.js';
import { softroceMissing } from '../softroce/support/providers.js';
import type { EngineState, Outcome, TransferResult } from './agent.js';

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));
const MiB = 1024 * 1024;

function agent(name: string): RpcChild {
  return new RpcChild(runChild([process.execPath, ['--import', 'tsx', AGENT]], 60_000, name));
}

function mbps(bytes: number, ms: number): string {
  return `${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`;
}

/** Runs both directions of one connection at once and checks every byte and both digests. */
async function bothWays(srv: RpcChild, cli: RpcChild, sConn: number, cConn: number, bytes: number, seed: number): Promise<[TransferResult, TransferResult]> {
  const up = seed;
  const down = seed + 1;
  const [rs, rc] = await Promise.all([
    srv.call<TransferResult>('transfer', { conn: sConn, sendBytes: bytes, sendSeed: down, recvSeed: up, chunk: 1 * MiB }, 25_000),
    cli.call<TransferResult>('transfer', { conn: cConn, sendBytes: bytes, sendSeed: up, recvSeed: down, chunk: 1 * MiB }, 25_000),
  ]);
  for (const [name, r] of [['server', rs], ['client', rc]] as const) {
    assert.deepEqual(r.errors, [], `${name}: stream errors`);
    assert.equal(r.sent, bytes, `${name}: bytes sent`);
    assert.equal(r.received, bytes, `${name}: bytes received`);
    assert.equal(r.firstMismatch, -1, `${name}: byte ${r.firstMismatch} differs from the peer's keystream`);
  }
  assert.equal(rs.sha256Received, rc.sha256Sent, 'client -> server sha256');
  assert.equal(rc.sha256Received, rs.sha256Sent, 'server -> client sha256');
  return [rs, rc];
}

/** Polls an agent's state until `pred` holds (bounded). */
async function stateUntil(a: RpcChild, pred: (s: EngineState) => boolean, what: string, ms = 5000): Promise<EngineState> {
  const end = Date.now() + ms;
  for (;;) {
    const st = await a.call<EngineState>('state');
    if (pred(st)) return st;
    if (Date.now() > end) throw new Error(`${a.child.name}: ${what} not reached within ${ms} ms: ${JSON.stringify(st.lgrs)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const released = (st: EngineState): boolean => st.lgrs.length === 1 && st.lgrs[0]!.conns === 0;

describe('engine: two processes over softroce (devices 127.0.0.1 / 127.0.0.2, CLC over TCP 127.0.0.1)', function () {
  this.timeout(30_000);
  let srv: RpcChild | undefined;
  let cli: RpcChild | undefined;
  let port = 0;
  let first: { s: Outcome; c: Outcome } | undefined;

  before(async function () {
    const why = softroceMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
    const udpPort = 20000 + Math.floor(Math.random() * 40000);
    srv = agent('engine@127.0.0.1');
    cli = agent('engine@127.0.0.2');
    const clc = { rmbSize: 1 * MiB, sndbufSize: 1 * MiB };
    await Promise.all([
      srv.call('open', { device: { name: 'sr-srv', ip: '127.0.0.1', port: udpPort, mtu: 4096 }, clc }),
      cli.call('open', { device: { name: 'sr-cli', ip: '127.0.0.2', port: udpPort, mtu: 4096 }, clc }),
    ]);
    ({ port } = await srv.call<{ port: number }>('listen', { host: '127.0.0.1' }));
  });

  after(() => {
    killAllChildren();
  });

  it('handshake: SMC-Rv2 with first contact on both sides', async () => {
    const [c, s] = await Promise.all([
      cli!.call<Outcome>('connect', { host: '127.0.0.1', port }),
      srv!.call<Outcome>('accepted', {}),
    ]);
    assert.equal(c.mode, 'smcr', `client: ${c.detail ?? ''}`);
    assert.equal(s.mode, 'smcr', `server: ${s.detail ?? ''}`);
    assert.equal(c.version, 2);
    assert.equal(s.version, 2);
    assert.equal(c.firstContact, true);
    assert.equal(s.firstContact, true);
    first = { s, c };
    const [ss, cs] = await Promise.all([srv!.call<EngineState>('state'), cli!.call<EngineState>('state')]);
    assert.equal(ss.lgrs.length, 1);
    assert.equal(cs.lgrs.length, 1);
    assert.equal(ss.lgrs[0]!.role, 'server');
    assert.equal(cs.lgrs[0]!.role, 'client');
    assert.equal(ss.lgrs[0]!.conns, 1);
  });

  it('64 MiB each way at once with checksums, then an orderly close', async () => {
    assert.ok(first, 'needs the handshake');
    const [rs, rc] = await bothWays(srv!, cli!, first.s.conn, first.c.conn, 64 * MiB, 1000);
    process.stdout.write(`      64 MiB each way: server ${rs.ms.toFixed(0)} ms (${mbps(2 * 64 * MiB, rs.ms)} total), client ${rc.ms.toFixed(0)} ms\n`);
    // Both ended their writing and saw 'close': the connections are released on both sides,
    // their buffers cached in the link group that stays up.
    const [ss, cs] = await Promise.all([stateUntil(srv!, released, 'release'), stateUntil(cli!, released, 'release')]);
    assert.equal(ss.lgrs[0]!.bufCache, 1);
    assert.equal(cs.lgrs[0]!.bufCache, 1);
    assert.equal(ss.lgrs[0]!.terminating, false);
  });

  it('a second connection reuses the link group and its cached buffers', async () => {
    assert.ok(first, 'needs the handshake');
    const [c, s] = await Promise.all([
      cli!.call<Outcome>('connect', { host: '127.0.0.1', port }),
      srv!.call<Outcome>('accepted', {}),
    ]);
    assert.equal(c.mode, 'smcr', `client: ${c.detail ?? ''}`);
    assert.equal(s.mode, 'smcr', `server: ${s.detail ?? ''}`);
    assert.equal(c.firstContact, false);
    assert.equal(s.firstContact, false);
    assert.equal(c.lgrId, first.c.lgrId, 'client: same link group');
    assert.equal(s.lgrId, first.s.lgrId, 'server: same link group');
    const [ss, cs] = await Promise.all([srv!.call<EngineState>('state'), cli!.call<EngineState>('state')]);
    assert.equal(ss.lgrs.length, 1);
    assert.equal(cs.lgrs.length, 1);
    assert.equal(ss.lgrs[0]!.bufCache, 0, 'server took the cached buffers');
    assert.equal(cs.lgrs[0]!.bufCache, 0, 'client took the cached buffers');
    await bothWays(srv!, cli!, s.conn, c.conn, 8 * MiB, 2000);
  });

  it('orderly shutdown: the client engine closes, the server drops the link group, both exit 0', async () => {
    assert.ok(first, 'needs the handshake');
    const [ss0, cs0] = await Promise.all([stateUntil(srv!, released, 'release'), stateUntil(cli!, released, 'release')]);
    assert.equal(ss0.lgrs[0]!.bufCache, 1);
    assert.equal(cs0.lgrs[0]!.bufCache, 1);
    // Nothing was lost or malformed on the wire.
    for (const d of [ss0.device, cs0.device]) {
      for (const k of ['dropBadIcrc', 'dropMalformed', 'dropUnknownQpn', 'dropWrongSource']) {
        if (k in d) assert.equal(d[k], 0, `device counter ${k}`);
      }
    }
    await cli!.call('shutdown');
    // The client's DELETE_LINK ends the server's link group.
    await stateUntil(srv!, (st) => st.lgrs.length === 0, 'the server dropping its link group');
    await srv!.call('shutdown');
    await Promise.all([srv!.close(), cli!.close()]);
  });
});
