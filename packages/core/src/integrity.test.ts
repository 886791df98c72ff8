/**
 * Data integrity and lifecycle of the SMC-R engine over the mem provider: two SmcEngines in this
 * process, the CLC handshake on real TCP loopback, the data on mem RC QPs.
 *
 * - Random messages (1 B .. 8 MiB, each framed as [u32 length][payload][sha256]) both directions at
 *   once, written in random chunk sizes while the reader pauses at random: every message must arrive
 *   whole and in order, the producer cursor must equal the bytes sent (mod the 16-bit wrap counter),
 *   and the bytes accepted by write() but not yet read must stay bounded by the buffers between writer
 *   and reader (backpressure reaches the writer: write() returns false, 'drain' follows).
 *   16 KiB, 64 KiB and 1 MiB RMBEs / send buffers.
 * - Link-group reuse (firstContact false, one LinkGroup, buffers from the link group's cache).
 * - 20 connections on one link group with interleaved traffic.
 * - Close variants: half-close each way, destroy() mid-transfer (peer: ERR_SMC_RESET), destroy with
 *   unread data (peer sees the abort), engine.close() with live connections (ERR_SMC_ABORTED).
 *
 * Reading never uses `for await` (it destroys the duplex when the loop ends, aborting the write side).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { MemProvider, type Context } from '@smc-r/verbs';
import { SmcEngine, type SmcOutcome } from './engine.js';
import type { SmcConnection } from './connection.js';
import type { LinkGroup } from './lgr.js';
import { EngineErrorCode } from './errors.js';

const KiB = 1024;
const MiB = 1024 * 1024;

// ------------------------------------------------------------------------------------------------
// Deterministic randomness (sizes, chunking, pauses); payload bytes come from randomBytes and are
// checked through the sha256 that travels with each message.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Log-uniform integer in [lo, hi]: small and large sizes equally likely per octave. */
function logUniform(rnd: () => number, lo: number, hi: number): number {
  const v = Math.floor(Math.exp(Math.log(lo) + rnd() * (Math.log(hi + 1) - Math.log(lo))));
  return Math.min(hi, Math.max(lo, v));
}

const SEED = Number(process.env.SMC_TEST_SEED ?? 0x5eed);

// ------------------------------------------------------------------------------------------------
// Two engines over mem, CLC over TCP loopback.

interface Pair {
  readonly c: SmcConnection;
  readonly s: SmcConnection;
  readonly co: Extract<SmcOutcome, { mode: 'smcr' }>;
  readonly so: Extract<SmcOutcome, { mode: 'smcr' }>;
}

class Bench {
  readonly provider = new MemProvider();
  ctxS!: Context;
  ctxC!: Context;
  /** Server engine (accepts) and client engine (connects). */
  server!: SmcEngine;
  client!: SmcEngine;
  srv!: Server;
  port = 0;
  /** Errors each connection emitted, so that none is uncaught and tests can check them. */
  readonly errors = new Map<SmcConnection, Error[]>();
  readonly #accepted: Promise<SmcOutcome>[] = [];
  readonly #acceptWaiters: ((p: Promise<SmcOutcome>) => void)[] = [];
  #closed = false;

  static async create(clc: { rmbSize?: number; sndbufSize?: number } = {}): Promise<Bench> {
    const b = new Bench();
    b.ctxS = await b.provider.open('mem0');
    b.ctxC = await b.provider.open('mem1');
    const opts = { clc, timers: { TEST_LINK_INTERVAL: 0 } };
    b.server = new SmcEngine({ context: b.ctxS, ...opts });
    b.client = new SmcEngine({ context: b.ctxC, ...opts });
    b.srv = createServer();
    b.srv.on('connection', (sock: Socket) => {
      const p = b.server.accept(sock, { peerSignalledSmc: true });
      p.catch(() => {});
      const w = b.#acceptWaiters.shift();
      if (w) w(p);
      else b.#accepted.push(p);
    });
    b.srv.listen(0, '127.0.0.1');
    await once(b.srv, 'listening');
    b.port = (b.srv.address() as { port: number }).port;
    return b;
  }

  #nextAccepted(): Promise<SmcOutcome> {
    const p = this.#accepted.shift();
    if (p) return p;
    return new Promise<Promise<SmcOutcome>>((r) => this.#acceptWaiters.push(r)).then((x) => x);
  }

  /** One TCP connection, both handshakes; both sides must end up on SMC-R. */
  async pair(): Promise<Pair> {
    const sock = connect(this.port, '127.0.0.1');
    await once(sock, 'connect');
    const [co, so] = await Promise.all([this.client.connect(sock, { peerSignalledSmc: true }), this.#nextAccepted()]);
    assert.equal(co.mode, 'smcr', co.mode === 'tcp' ? `client fell back: ${co.detail}` : '');
    assert.equal(so.mode, 'smcr', so.mode === 'tcp' ? `server fell back: ${so.detail}` : '');
    if (co.mode !== 'smcr' || so.mode !== 'smcr') throw new Error('unreachable');
    for (const conn of [co.conn, so.conn]) {
      this.errors.set(conn, []);
      conn.on('error', (e: Error) => this.errors.get(conn)!.push(e));
    }
    return { c: co.conn, s: so.conn, co, so };
  }

  lgrOf(engine: SmcEngine): LinkGroup {
    assert.equal(engine.lgrs.size, 1, `expected one link group, found ${engine.lgrs.size}`);
    return [...engine.lgrs][0]!;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.srv.close();
    await this.client.close();
    await this.server.close();
    await this.ctxC.close();
    await this.ctxS.close();
  }
}

/** Resolves when `pred()` holds, polling every few ms; rejects after `ms`. */
async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function closed(stream: SmcConnection): Promise<void> {
  return stream.closed ? Promise.resolve() : once(stream, 'close').then(() => undefined);
}

// ------------------------------------------------------------------------------------------------
// Framed messages: [u32 length][payload][sha256(payload)].

interface SendPlan {
  /** Message sizes in order. */
  readonly sizes: readonly number[];
  /** Largest single write() (chunks are log-uniform in 1..maxChunk). */
  readonly maxChunk: number;
  /** Half-close after the last message. */
  readonly end: boolean;
}

interface SendStats {
  bytes: number;
  writes: number;
  writeFalse: number;
  drains: number;
  /** Largest (accepted by write() - read by the peer's reader) seen after a write. */
  maxInFlight: number;
}

/** Progress shared by a writer and the reader of the same direction. */
interface Flow {
  written: number;
  read: number;
}

function frame(size: number): Buffer {
  const payload = randomBytes(size);
  const out = Buffer.allocUnsafe(4 + size + 32);
  out.writeUInt32BE(size, 0);
  payload.copy(out, 4);
  createHash('sha256').update(payload).digest().copy(out, 4 + size);
  return out;
}

async function sendMessages(conn: SmcConnection, plan: SendPlan, rnd: () => number, flow: Flow): Promise<SendStats> {
  const st: SendStats = { bytes: 0, writes: 0, writeFalse: 0, drains: 0, maxInFlight: 0 };
  conn.on('drain', () => { st.drains++; });
  for (const size of plan.sizes) {
    const f = frame(size);
    for (let off = 0; off < f.length;) {
      const n = Math.min(f.length - off, logUniform(rnd, 1, plan.maxChunk));
      const ok = conn.write(f.subarray(off, off + n));
      off += n;
      st.bytes += n;
      st.writes++;
      flow.written += n;
      st.maxInFlight = Math.max(st.maxInFlight, flow.written - flow.read);
      if (!ok) {
        st.writeFalse++;
        await once(conn, 'drain');
      }
    }
  }
  if (plan.end) conn.end();
  return st;
}

interface RecvStats {
  messages: number;
  bytes: number;
  pauses: number;
}

/**
 * Parses framed messages until 'end', checking each sha256 and the expected sizes; pauses the
 * stream at random (probability `pauseP` per chunk, 0..maxPauseMs) so that backpressure builds up.
 */
function receiveMessages(conn: SmcConnection, sizes: readonly number[], rnd: () => number, flow: Flow, pauseP: number, maxPauseMs: number): Promise<RecvStats> {
  return new Promise((resolve, reject) => {
    const st: RecvStats = { messages: 0, bytes: 0, pauses: 0 };
    let parts: Buffer[] = [];
    let have = 0;
    let want = -1; // payload size of the message being collected, -1 = header next
    const take = (n: number): Buffer => {
      const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
      const head = all.subarray(0, n);
      const rest = all.subarray(n);
      parts = rest.length > 0 ? [rest] : [];
      have = rest.length;
      return head;
    };
    const fail = (msg: string): void => {
      conn.removeAllListeners('data');
      reject(new Error(msg));
    };
    conn.on('data', (d: Buffer) => {
      flow.read += d.length;
      st.bytes += d.length;
      parts.push(d);
      have += d.length;
      for (;;) {
        if (want < 0) {
          if (have < 4) break;
          want = take(4).readUInt32BE(0);
          const exp = sizes[st.messages];
          if (exp === undefined) return fail(`message ${st.messages}: unexpected extra message of ${want} B`);
          if (want !== exp) return fail(`message ${st.messages}: length ${want}, expected ${exp}`);
        }
        if (have < want + 32) break;
        const m = take(want + 32);
        const digest = createHash('sha256').update(m.subarray(0, want)).digest();
        if (!digest.equals(m.subarray(want))) return fail(`message ${st.messages} (${want} B): sha256 mismatch`);
        st.messages++;
        want = -1;
      }
      if (rnd() < pauseP) {
        st.pauses++;
        conn.pause();
        setTimeout(() => conn.resume(), Math.floor(rnd() * maxPauseMs));
      }
    });
    conn.once('end', () => {
      if (want >= 0 || have > 0) reject(new Error(`stream ended inside message ${st.messages} (${have} B pending)`));
      else if (st.messages !== sizes.length) reject(new Error(`got ${st.messages} messages, expected ${sizes.length}`));
      else resolve(st);
    });
    conn.once('error', reject);
  });
}

/** Sizes: log-uniform in 1 B .. 8 MiB, plus the edge cases around the ring size, 1 B and 8 MiB. */
function messageSizes(rnd: () => number, count: number, ring: number): number[] {
  const edges = [1, ring - 36 - 1, ring - 36, ring - 36 + 1, ring, 2 * ring + 3, 8 * MiB];
  const out = [...edges];
  while (out.length < count) out.push(logUniform(rnd, 1, 8 * MiB));
  // Shuffle (Fisher-Yates) so the edges are spread through the run.
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Bytes a connection's stream can hold between write() accepting them and the reader seeing them. */
function inFlightBound(writer: SmcConnection, reader: SmcConnection, maxChunk: number): number {
  // writer: its Writable buffer (< HWM + one chunk) and its send ring; the peer's RMBE; the reader's
  // Readable buffer (pushes stop at HWM, the last push is at most 64 KiB).
  return writer.writableHighWaterMark + maxChunk + writer.state.sndbufSize + reader.state.rmbeSize + reader.readableHighWaterMark + 64 * KiB;
}

/** Total position of a cursor, modulo the 16-bit wrap counter. */
function cursorPos(c: { wrap: number; count: number }, size: number): number {
  return c.wrap * size + c.count;
}

function expectWireBytes(sizes: readonly number[]): number {
  return sizes.reduce((a, s) => a + 4 + s + 32, 0);
}

// ------------------------------------------------------------------------------------------------

describe('engine integrity over mem (TCP loopback for CLC)', function () {
  this.timeout(120_000);
  let bench: Bench | undefined;
  afterEach(async () => {
    await bench?.close();
    bench = undefined;
  });

  for (const [ring, count] of [[16 * KiB, 40], [64 * KiB, 40], [1 * MiB, 30]] as const) {
    const label = ring >= MiB ? `${ring / MiB} MiB` : `${ring / KiB} KiB`;
    it(`random sizes from 1 B to 8 MiB with checksums, both ways at once, across ring wraps, with ${label} RMBEs`, async () => {
      bench = await Bench.create({ rmbSize: ring, sndbufSize: ring });
      const { c, s } = await bench.pair();
      assert.equal(c.state.rmbeSize, ring);
      assert.equal(c.state.peerRmbeSize, ring);
      assert.equal(c.state.sndbufSize, ring);
      const rnd = mulberry32(SEED ^ ring);
      const upSizes = messageSizes(rnd, count, ring);
      const downSizes = messageSizes(rnd, count, ring);
      const maxChunk = 256 * KiB;
      const up: Flow = { written: 0, read: 0 };
      const down: Flow = { written: 0, read: 0 };
      const [ru, rd, su, sd] = await Promise.all([
        receiveMessages(s, upSizes, mulberry32(SEED + 1), up, 0.02, 8),
        receiveMessages(c, downSizes, mulberry32(SEED + 2), down, 0.02, 8),
        sendMessages(c, { sizes: upSizes, maxChunk, end: true }, mulberry32(SEED + 3), up),
        sendMessages(s, { sizes: downSizes, maxChunk, end: true }, mulberry32(SEED + 4), down),
      ]);
      assert.equal(ru.messages, upSizes.length);
      assert.equal(rd.messages, downSizes.length);
      const upBytes = expectWireBytes(upSizes);
      const downBytes = expectWireBytes(downSizes);
      assert.equal(ru.bytes, upBytes);
      assert.equal(rd.bytes, downBytes);
      assert.equal(su.bytes, upBytes);
      assert.equal(sd.bytes, downBytes);
      // Ring positions: producer cursor into the peer's RMBE = every byte sent (mod 2^16 wraps).
      const mod = 0x10000 * ring;
      assert.equal(cursorPos(c.state.prod, ring), upBytes % mod, 'client producer cursor');
      assert.equal(cursorPos(s.state.prod, ring), downBytes % mod, 'server producer cursor');
      assert.equal(cursorPos(s.state.cons, ring), upBytes % mod, 'server consumer cursor');
      assert.equal(cursorPos(c.state.cons, ring), downBytes % mod, 'client consumer cursor');
      assert.ok(Math.floor(upBytes / ring) >= 10, 'the rings wrapped many times');
      // Backpressure: write() said no, a 'drain' followed every no, and the bytes in flight stayed bounded.
      for (const [st, w, r] of [[su, c, s], [sd, s, c]] as const) {
        assert.ok(st.writeFalse > 0, 'write() returned false at least once');
        assert.ok(st.drains >= st.writeFalse, `${st.drains} drains for ${st.writeFalse} false writes`);
        const bound = inFlightBound(w, r, maxChunk);
        assert.ok(st.maxInFlight <= bound, `in flight ${st.maxInFlight} B > bound ${bound} B: backpressure did not reach the writer`);
      }
      assert.ok(ru.pauses + rd.pauses > 0, 'the readers paused');
      // Both ended their writing: the connections close in order, without errors.
      await Promise.all([closed(c), closed(s)]);
      assert.deepEqual(bench.errors.get(c), []);
      assert.deepEqual(bench.errors.get(s), []);
      await until(() => bench!.lgrOf(bench!.server).conns.size === 0 && bench!.lgrOf(bench!.client).conns.size === 0, 'both connections released');
    });
  }

  it('many sequential small messages (1..2000 B, 3000 each way) with checksums', async () => {
    bench = await Bench.create({ rmbSize: 16 * KiB, sndbufSize: 16 * KiB });
    const { c, s } = await bench.pair();
    const rnd = mulberry32(SEED + 7);
    const sizes = Array.from({ length: 3000 }, () => logUniform(rnd, 1, 2000));
    const sizes2 = Array.from({ length: 3000 }, () => logUniform(rnd, 1, 2000));
    const up: Flow = { written: 0, read: 0 };
    const down: Flow = { written: 0, read: 0 };
    const [ru, rd] = await Promise.all([
      receiveMessages(s, sizes, mulberry32(1), up, 0.001, 3),
      receiveMessages(c, sizes2, mulberry32(2), down, 0.001, 3),
      sendMessages(c, { sizes, maxChunk: 4 * KiB, end: true }, mulberry32(3), up),
      sendMessages(s, { sizes: sizes2, maxChunk: 4 * KiB, end: true }, mulberry32(4), down),
    ]);
    assert.equal(ru.messages, 3000);
    assert.equal(rd.messages, 3000);
    assert.ok(c.counters.cdcSent > 100, `CDCs sent: ${c.counters.cdcSent}`);
    await Promise.all([closed(c), closed(s)]);
  });

  it('request/response: 500 round trips of 64 B, each answer checked', async () => {
    bench = await Bench.create();
    const { c, s } = await bench.pair();
    s.on('data', (d: Buffer) => {
      // Echo every byte back with each byte incremented.
      const out = Buffer.allocUnsafe(d.length);
      for (let i = 0; i < d.length; i++) out[i] = (d[i]! + 1) & 0xff;
      s.write(out);
    });
    let pending: Buffer[] = [];
    let have = 0;
    let wake: (() => void) | null = null;
    c.on('data', (d: Buffer) => { pending.push(d); have += d.length; wake?.(); });
    for (let i = 0; i < 500; i++) {
      const req = randomBytes(64);
      c.write(req);
      while (have < 64) await new Promise<void>((r) => { wake = r; });
      wake = null;
      const all = Buffer.concat(pending);
      const resp = all.subarray(0, 64);
      pending = all.length > 64 ? [all.subarray(64)] : [];
      have -= 64;
      for (let k = 0; k < 64; k++) assert.equal(resp[k], (req[k]! + 1) & 0xff, `round trip ${i} byte ${k}`);
    }
    assert.equal(have, 0);
    c.end();
    s.end();
    await Promise.all([closed(c), closed(s)]);
  });

  it('a lone small write with no CDC in flight is pushed at once, not held for the 250 ms cork timer', async () => {
    bench = await Bench.create();
    const p = await bench.pair();
    p.s.resume();
    assert.equal(p.c.state.cdcInFlight, 0);
    p.c.write(Buffer.alloc(64, 0x61));
    // _write runs synchronously inside write(): the data is on its way (prepared 0), not corked.
    assert.equal(p.c.tx.prepared, 0, 'the 64 B write sits in the send ring waiting for the cork timer');
  });

  it('link-group reuse: the second and third connection reuse the link group and cached buffers', async () => {
    bench = await Bench.create({ rmbSize: 16 * KiB, sndbufSize: 16 * KiB });
    const b = bench;
    const p1 = await b.pair();
    assert.equal(p1.co.firstContact, true);
    assert.equal(p1.so.firstContact, true);
    const lgrC = b.lgrOf(b.client);
    const lgrS = b.lgrOf(b.server);
    assert.equal(lgrC.conns.size, 1);
    assert.equal(lgrS.conns.size, 1);
    await exchange(p1, 300 * KiB, 200 * KiB);
    await Promise.all([closed(p1.c), closed(p1.s)]);
    await until(() => lgrC.conns.size === 0 && lgrS.conns.size === 0, 'first connection released');
    // The released connection's RMB and send buffer stay registered in the link group's cache.
    assert.equal(lgrC.bufCache.length, 1);
    assert.equal(lgrS.bufCache.length, 1);
    const cachedC = lgrC.bufCache[0]!;
    const cachedS = lgrS.bufCache[0]!;
    const llcBefore = { c: lgrC.counters.llcSent, s: lgrS.counters.llcSent };

    const p2 = await b.pair();
    assert.equal(p2.co.firstContact, false);
    assert.equal(p2.so.firstContact, false);
    assert.equal(b.lgrOf(b.client), lgrC, 'client: same link group');
    assert.equal(b.lgrOf(b.server), lgrS, 'server: same link group');
    assert.equal(lgrC.bufCache.length, 0, 'client took the cached buffers');
    assert.equal(lgrS.bufCache.length, 0, 'server took the cached buffers');
    assert.equal(p2.c.link, p1.c.link, 'same link');
    // Cached RMBs are known to the peer: no CONFIRM_RKEY went out.
    assert.deepEqual({ c: lgrC.counters.llcSent, s: lgrS.counters.llcSent }, llcBefore);

    // A third one while the second is open: fresh buffers (the cache is empty), confirmed with CONFIRM_RKEY.
    const p3 = await b.pair();
    assert.equal(p3.co.firstContact, false);
    assert.equal(p3.so.firstContact, false);
    assert.equal(b.lgrOf(b.client), lgrC);
    assert.equal(b.lgrOf(b.server), lgrS);
    assert.equal(lgrC.conns.size, 2);
    assert.equal(lgrS.conns.size, 2);
    assert.ok(lgrC.counters.llcSent > llcBefore.c || lgrS.counters.llcSent > llcBefore.s, 'CONFIRM_RKEY for the new RMB');
    assert.notEqual(p2.c.token, p3.c.token);
    await Promise.all([exchange(p2, 1 * MiB, 700 * KiB), exchange(p3, 900 * KiB, 1 * MiB)]);
    await Promise.all([closed(p2.c), closed(p2.s), closed(p3.c), closed(p3.s)]);
    await until(() => lgrC.conns.size === 0 && lgrS.conns.size === 0, 'all connections released');
    // Both sets of buffers are back in the caches, the first one among them; the link group stays up.
    assert.equal(lgrC.bufCache.length, 2);
    assert.equal(lgrS.bufCache.length, 2);
    assert.ok(lgrC.bufCache.includes(cachedC), 'client: the first connection\'s buffers came back');
    assert.ok(lgrS.bufCache.includes(cachedS), 'server: the first connection\'s buffers came back');
    assert.equal(b.client.lgrs.size, 1);
    assert.equal(b.server.lgrs.size, 1);
    assert.equal(lgrC.terminating, false);
    for (const p of [p1, p2, p3]) {
      assert.deepEqual(b.errors.get(p.c), []);
      assert.deepEqual(b.errors.get(p.s), []);
    }
  });

  it('20 connections on one link group with interleaved traffic both ways', async () => {
    bench = await Bench.create({ rmbSize: 16 * KiB, sndbufSize: 16 * KiB });
    const b = bench;
    const first = await b.pair();
    const rest = await Promise.all(Array.from({ length: 19 }, () => b.pair()));
    const pairs = [first, ...rest];
    assert.equal(first.co.firstContact, true);
    for (const p of rest) assert.equal(p.co.firstContact, false);
    const lgrC = b.lgrOf(b.client);
    const lgrS = b.lgrOf(b.server);
    assert.equal(lgrC.conns.size, 20);
    assert.equal(lgrS.conns.size, 20);
    assert.equal(new Set(pairs.map((p) => p.c.token)).size, 20, 'distinct alert tokens');
    const rnd = mulberry32(SEED + 20);
    const work = pairs.map((p, i) => {
      const upSizes = Array.from({ length: 6 }, () => logUniform(rnd, 1, 512 * KiB));
      const downSizes = Array.from({ length: 6 }, () => logUniform(rnd, 1, 512 * KiB));
      const up: Flow = { written: 0, read: 0 };
      const down: Flow = { written: 0, read: 0 };
      return Promise.all([
        receiveMessages(p.s, upSizes, mulberry32(i * 4 + 1), up, 0.01, 4),
        receiveMessages(p.c, downSizes, mulberry32(i * 4 + 2), down, 0.01, 4),
        sendMessages(p.c, { sizes: upSizes, maxChunk: 64 * KiB, end: true }, mulberry32(i * 4 + 3), up),
        sendMessages(p.s, { sizes: downSizes, maxChunk: 64 * KiB, end: true }, mulberry32(i * 4 + 4), down),
      ]);
    });
    const results = await within(Promise.all(work), 30_000, () => {
      const stuck = pairs.flatMap((p, i) => [[i, 'client', p.c], [i, 'server', p.s]] as const)
        .filter(([, , x]) => !x.readableEnded)
        .map(([i, side, x]) => `#${i} ${side} (${x.close.state}, peer done writing: ${x.state.peerDoneWriting})`);
      return `not every stream ended (a close CDC was lost? see engine bugs): ${stuck.join(', ')}`;
    });
    for (const [ru, rd] of results) {
      assert.equal(ru.messages, 6);
      assert.equal(rd.messages, 6);
    }
    await Promise.all(pairs.flatMap((p) => [closed(p.c), closed(p.s)]));
    await until(() => lgrC.conns.size === 0 && lgrS.conns.size === 0, 'all 20 released');
    assert.equal(lgrC.bufCache.length, 20);
    assert.equal(lgrS.bufCache.length, 20);
    for (const p of pairs) {
      assert.deepEqual(b.errors.get(p.c), []);
      assert.deepEqual(b.errors.get(p.s), []);
    }
  });

  describe('close variants', () => {
    for (const who of ['client', 'server'] as const) {
      it(`half-close by the ${who}: end() while the peer keeps writing 4 MiB`, async () => {
        bench = await Bench.create({ rmbSize: 16 * KiB, sndbufSize: 16 * KiB });
        const p = await bench.pair();
        const closer = who === 'client' ? p.c : p.s;
        const other = who === 'client' ? p.s : p.c;
        const closerData = randomBytes(100 * KiB + 3);
        const otherData = randomBytes(4 * MiB + 11);
        const gotAtOther = readAll(other);
        const gotAtCloser = readAll(closer);
        closer.end(closerData);
        // The peer sees our EOF while it still has most of its data to write.
        const otherEnded = once(other, 'end');
        let otherWrote = 0;
        let sawEofWhileWriting = false;
        void otherEnded.then(() => { if (otherWrote < otherData.length) sawEofWhileWriting = true; });
        for (let off = 0; off < otherData.length; off += 64 * KiB) {
          const chunk = otherData.subarray(off, Math.min(otherData.length, off + 64 * KiB));
          otherWrote += chunk.length;
          if (!other.write(chunk)) await once(other, 'drain');
        }
        assert.ok(sawEofWhileWriting, 'EOF arrived at the peer while it was still writing');
        assert.equal(closer.writableFinished, true);
        assert.equal(closer.destroyed, false, 'the half-closed side still reads');
        other.end();
        assert.ok((await gotAtOther).equals(closerData));
        assert.ok((await gotAtCloser).equals(otherData));
        await Promise.all([closed(p.c), closed(p.s)]);
        assert.deepEqual(bench.errors.get(p.c), []);
        assert.deepEqual(bench.errors.get(p.s), []);
        await until(() => bench!.lgrOf(bench!.client).conns.size === 0 && bench!.lgrOf(bench!.server).conns.size === 0, 'released');
      });
    }

    it('destroy() mid-transfer: the peer gets ERR_SMC_RESET, both are released', async () => {
      bench = await Bench.create({ rmbSize: 16 * KiB, sndbufSize: 16 * KiB });
      const p = await bench.pair();
      let received = 0;
      p.s.on('data', (d: Buffer) => { received += d.length; });
      const sErr = once(p.s, 'error');
      const big = randomBytes(256 * KiB);
      let stop = false;
      const writer = (async () => {
        while (!stop && !p.c.destroyed) {
          if (!p.c.write(big)) await drainOrClose(p.c);
        }
      })();
      await until(() => received > 2 * MiB, '2 MiB received');
      p.c.destroy();
      stop = true;
      const [err] = (await sErr) as [Error & { code?: string }];
      assert.equal(err.code, EngineErrorCode.RESET);
      await writer;
      await Promise.all([closed(p.c), closed(p.s)]);
      assert.deepEqual(bench.errors.get(p.c), [], 'destroy() without an error emits none locally');
      // A write after the reset fails on the peer.
      await until(() => bench!.lgrOf(bench!.client).conns.size === 0 && bench!.lgrOf(bench!.server).conns.size === 0, 'released');
      assert.equal(bench.client.lgrs.size, 1, 'the link group survives a connection abort');
    });

    it('destroy() with unread data: the peer sees the abort (ERR_SMC_RESET)', async () => {
      bench = await Bench.create({ rmbSize: 64 * KiB, sndbufSize: 64 * KiB });
      const p = await bench.pair();
      const cErr = once(p.c, 'error');
      // The client sends data the server never reads (the server stream stays paused).
      p.s.pause();
      p.c.write(randomBytes(20 * KiB));
      await until(() => p.s.rx.readable > 0 || p.s.readableLength > 0, 'data arrived at the server');
      p.s.destroy();
      const [err] = (await cErr) as [Error & { code?: string }];
      assert.equal(err.code, EngineErrorCode.RESET);
      assert.equal(p.c.state.peerConnAbort, true, 'peer_conn_abort received');
      await Promise.all([closed(p.c), closed(p.s)]);
      await until(() => bench!.lgrOf(bench!.client).conns.size === 0 && bench!.lgrOf(bench!.server).conns.size === 0, 'released');
    });

    it('engine.close() aborts live connections on both sides with ERR_SMC_ABORTED', async () => {
      bench = await Bench.create({ rmbSize: 16 * KiB, sndbufSize: 16 * KiB });
      const b = bench;
      const pairs = [await b.pair(), await b.pair(), await b.pair()];
      // Traffic in flight on the first pair.
      pairs[0]!.s.resume();
      pairs[0]!.c.write(randomBytes(1 * MiB));
      const errs = pairs.flatMap((p) => [once(p.c, 'error'), once(p.s, 'error')]);
      await b.client.close();
      const got = (await Promise.all(errs)).map(([e]) => (e as { code?: string }).code);
      assert.deepEqual(got, Array(6).fill(EngineErrorCode.ABORTED));
      await Promise.all(pairs.flatMap((p) => [closed(p.c), closed(p.s)]));
      assert.equal(b.client.lgrs.size, 0);
      await until(() => b.server.lgrs.size === 0, 'the server tore its link group down on DELETE_LINK');
      // A closed engine refuses new handshakes.
      const sock = connect(b.port, '127.0.0.1');
      await once(sock, 'connect');
      await assert.rejects(b.client.connect(sock, { peerSignalledSmc: true }), (e: { code?: string }) => e.code === EngineErrorCode.STATE);
      sock.destroy();
    });
  });

  describe('regressions: engine bugs found by these tests, now fixed', () => {
    it('concurrent first contacts to the same peer end up in one link group (as the kernel serializes them)', async () => {
      bench = await Bench.create();
      const b = bench;
      const pairs = await Promise.all(Array.from({ length: 5 }, () => b.pair()));
      assert.equal(pairs.filter((p) => p.co.firstContact).length, 1, 'exactly one first contact');
      assert.equal(b.client.lgrs.size, 1, `client link groups: ${b.client.lgrs.size}`);
      assert.equal(b.server.lgrs.size, 1, `server link groups: ${b.server.lgrs.size}`);
    });

    it('a close CDC (end()) that finds every send slot busy is sent once a slot frees', async () => {
      bench = await Bench.create({ rmbSize: 16 * KiB, sndbufSize: 16 * KiB });
      const b = bench;
      // Connections that each post data CDCs (a 20 KiB write is pushed at once) until the link's 16
      // send slots are all in flight; then the last connection ends its writing.
      const pairs = await Promise.all(Array.from({ length: 24 }, () => b.pair()));
      for (const p of pairs) p.s.resume();
      const last = pairs[pairs.length - 1]!;
      const ended = once(last.s, 'end');
      for (const p of pairs.slice(0, -1)) {
        if (last.c.link.wr.freeSendSlots === 0) break;
        p.c.write(randomBytes(20 * KiB));
      }
      assert.equal(last.c.link.wr.freeSendSlots, 0, 'all send slots in flight');
      last.c.end();
      await within(ended, 3000, () => `the server never saw the client's peer_done_writing (client ${last.c.close.state}, ` +
        `localDoneWriting ${last.c.state.localDoneWriting}; server ${last.s.close.state}, peerDoneWriting ${last.s.state.peerDoneWriting})`);
    });
  });
});

/** Rejects with `why()` when `p` has not settled after `ms`. */
async function within<T>(p: Promise<T>, ms: number, why: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(why())), ms); });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves on 'drain' or 'close', whichever comes first, and removes both listeners. */
function drainOrClose(s: SmcConnection): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

/** Everything a stream delivers until 'end'. */
function readAll(stream: SmcConnection): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.once('end', () => resolve(Buffer.concat(parts)));
    stream.once('error', reject);
  });
}

/** Sends `up` bytes client->server and `down` bytes server->client at once, ends both, checks the bytes. */
async function exchange(p: Pair, up: number, down: number): Promise<void> {
  const a = randomBytes(up);
  const b = randomBytes(down);
  const gotUp = readAll(p.s);
  const gotDown = readAll(p.c);
  p.c.end(a);
  p.s.end(b);
  assert.ok((await gotUp).equals(a), 'client -> server bytes');
  assert.ok((await gotDown).equals(b), 'server -> client bytes');
}
