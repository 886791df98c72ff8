import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { MemProvider, type Context } from '@smc-r/verbs';
import { SmcEngine, type SmcOutcome } from './engine.js';

async function pair(server: SmcEngine, client: SmcEngine, hs = { peerSignalledSmc: true }): Promise<{ s: SmcOutcome; c: SmcOutcome; srv: Server }> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const accepted = new Promise<SmcOutcome>((resolve, reject) => {
    srv.once('connection', (sock: Socket) => { server.accept(sock, hs).then(resolve, reject); });
  });
  const sock = connect(port, '127.0.0.1');
  await once(sock, 'connect');
  const [c, s] = await Promise.all([client.connect(sock, hs), accepted]);
  return { s, c, srv };
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Everything a stream delivers until 'end' ('for await' would destroy the duplex, aborting its write side). */
function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.once('end', () => resolve(Buffer.concat(parts)));
    stream.once('error', reject);
  });
}

describe('engine over mem: client and server on real TCP loopback', () => {
  let provider: MemProvider;
  let ctxA: Context;
  let ctxB: Context;
  let a: SmcEngine;
  let b: SmcEngine;
  beforeEach(async () => {
    provider = new MemProvider();
    ctxA = await provider.open('mem0');
    ctxB = await provider.open('mem1');
    a = new SmcEngine({ context: ctxA, timers: { TEST_LINK_INTERVAL: 0 } });
    b = new SmcEngine({ context: ctxB, timers: { TEST_LINK_INTERVAL: 0 } });
  });
  afterEach(async () => {
    await a.close();
    await b.close();
    await ctxA.close();
    await ctxB.close();
  });

  it('first contact over SMC-Rv2, then data both ways and an orderly close', async () => {
    const { s, c, srv } = await pair(a, b);
    try {
      assert.equal(c.mode, 'smcr', c.mode === 'tcp' ? c.detail : '');
      assert.equal(s.mode, 'smcr', s.mode === 'tcp' ? s.detail : '');
      if (c.mode !== 'smcr' || s.mode !== 'smcr') return;
      assert.equal(c.version, 2);
      assert.equal(c.firstContact, true);
      const up = randomBytes(3 * 1024 * 1024 + 17);
      const down = randomBytes(1024 * 1024 + 5);
      const gotUp = readAll(s.conn);
      const gotDown = readAll(c.conn);
      c.conn.end(up);
      s.conn.end(down);
      assert.equal(sha(await gotUp), sha(up));
      assert.equal(sha(await gotDown), sha(down));
    } finally {
      srv.close();
    }
  });

  it('urgent data: the last byte of sendUrgent() arrives as an urgent event, the rest in order in the stream', async () => {
    const { s, c, srv } = await pair(a, b);
    try {
      if (s.mode !== 'smcr' || c.mode !== 'smcr') throw new Error('expected SMC-R');
      const urgent = new Promise<number>((resolve) => s.conn.once('urgent', resolve));
      const got = readAll(s.conn);
      c.conn.write(Buffer.from('before-'));
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(c.conn.sendUrgent(Buffer.from('oob!')), true);
      assert.equal(c.conn.sendUrgent(Buffer.from('x')), false, 'a second urgent send waits for the first to be consumed');
      assert.equal(await urgent, '!'.charCodeAt(0));
      c.conn.end(Buffer.from('-after'));
      s.conn.end();
      c.conn.resume();
      assert.equal((await got).toString(), 'before-oob-after');
    } finally {
      srv.close();
    }
  });

  describe('TEST_LINK keepalive (spec 6.4)', () => {
    it('an idle link is tested and stays up while the peer answers', async () => {
      await a.close();
      await b.close();
      a = new SmcEngine({ context: ctxA, timers: { TEST_LINK_INTERVAL: 100, LLC_WAIT: 200 } });
      b = new SmcEngine({ context: ctxB, timers: { TEST_LINK_INTERVAL: 100, LLC_WAIT: 200 } });
      const { s, c, srv } = await pair(a, b);
      try {
        if (s.mode !== 'smcr' || c.mode !== 'smcr') throw new Error('expected SMC-R');
        // engine.close() in afterEach aborts the still-open connections.
        s.conn.on('error', () => {});
        c.conn.on('error', () => {});
        await new Promise((r) => setTimeout(r, 450));
        const la = [...a.lgrs][0]!;
        const lb = [...b.lgrs][0]!;
        assert.ok(la.counters.testLinkSent >= 2, `server sent ${la.counters.testLinkSent} TEST_LINKs`);
        assert.ok(lb.counters.testLinkAnswered >= 2, `client answered ${lb.counters.testLinkAnswered}`);
        assert.equal(la.terminating, false);
        assert.equal(lb.terminating, false);
      } finally {
        srv.close();
      }
    });

    it('a peer that stops answering takes the link down and aborts its connections', async () => {
      await a.close();
      await b.close();
      a = new SmcEngine({ context: ctxA, timers: { TEST_LINK_INTERVAL: 100, LLC_WAIT: 150 }, qpTimeout: 8, retryCnt: 1 });
      b = new SmcEngine({ context: ctxB, timers: { TEST_LINK_INTERVAL: 0 } });
      const { s, c, srv } = await pair(a, b);
      try {
        if (s.mode !== 'smcr' || c.mode !== 'smcr') throw new Error('expected SMC-R');
        const aborted = new Promise<Error>((resolve) => s.conn.once('error', resolve));
        c.conn.on('error', () => {});
        // The client's side vanishes without a word: its QP is destroyed, nothing answers any more.
        [...b.lgrs][0]!.link.close();
        const err = await aborted;
        assert.equal((err as { code?: string }).code, 'ERR_SMC_ABORTED');
        assert.equal(a.lgrs.size, 0, 'the server dropped the link group');
      } finally {
        srv.close();
      }
    });
  });
});
