/**
 * The full SMC-R engine on both ends over the ibverbs binding and the C test device (fake0 for
 * the server, fake1 for the client), CLC over TCP on 127.0.0.1: handshake, 64 MiB with SHA-256 on
 * both sides, close. Every RDMA WRITE, CDC SEND, LLC message, completion and CQ event passes
 * through koffi, the exported ibv_* symbols and the context's ops table.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { SmcEngine, type SmcOutcome } from '@smc-r/core';
import { IbverbsProvider } from '@smc-r/ibverbs';
import type { Context } from '@smc-r/verbs';
import { testDeviceOrSkip } from './support/device.js';

describe('SMC-R engine over the ibverbs binding (C test device)', function () {
  this.timeout(60_000);
  let libraryPath = '';
  const contexts: Context[] = [];
  const engines: SmcEngine[] = [];
  const sockets: Socket[] = [];
  let srv: Server | undefined;
  const savedEnv = process.env.FAKE_VERBS_NO_IPV4;

  before(function () {
    libraryPath = testDeviceOrSkip(this);
  });

  afterEach(async () => {
    if (savedEnv === undefined) delete process.env.FAKE_VERBS_NO_IPV4;
    else process.env.FAKE_VERBS_NO_IPV4 = savedEnv;
    for (const s of sockets.splice(0)) s.destroy();
    srv?.close();
    srv = undefined;
    for (const e of engines.splice(0)) await e.close();
    for (const c of contexts.splice(0)) await c.close();
  });

  /** Server engine on fake0, client engine on fake1, one TCP connection, both handshakes. */
  async function handshake(): Promise<{ c: SmcOutcome; s: SmcOutcome }> {
    const provider = new IbverbsProvider({ libraryPath });
    const ctxS = await provider.open('fake0');
    contexts.push(ctxS);
    const ctxC = await provider.open('fake1');
    contexts.push(ctxC);
    const server = new SmcEngine({ context: ctxS, timers: { TEST_LINK_INTERVAL: 0 } });
    engines.push(server);
    const client = new SmcEngine({ context: ctxC, timers: { TEST_LINK_INTERVAL: 0 } });
    engines.push(client);
    srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const accepted = new Promise<SmcOutcome>((resolve, reject) => {
      srv!.once('connection', (sock: Socket) => {
        sockets.push(sock);
        server.accept(sock, { peerSignalledSmc: true }).then(resolve, reject);
      });
    });
    const sock = connect((srv.address() as { port: number }).port, '127.0.0.1');
    sockets.push(sock);
    await once(sock, 'connect');
    const [c, s] = await Promise.all([client.connect(sock, { peerSignalledSmc: true }), accepted]);
    return { c, s };
  }

  it('handshake, 64 MiB client -> server with matching SHA-256, 1 MiB back, close', async () => {
    const { c, s } = await handshake();
    assert.equal(c.mode, 'smcr', c.mode === 'tcp' ? `client fell back: ${c.detail}` : '');
    assert.equal(s.mode, 'smcr', s.mode === 'tcp' ? `server fell back: ${s.detail}` : '');
    if (c.mode !== 'smcr' || s.mode !== 'smcr') return;
    const closed = Promise.all([once(c.conn, 'close'), once(s.conn, 'close')]);

    const total = 64 * 1024 * 1024;
    const chunk = randomBytes(1024 * 1024 + 7);
    const sent = createHash('sha256');
    const recv = createHash('sha256');
    let got = 0;
    s.conn.on('data', (d: Buffer) => {
      recv.update(d);
      got += d.length;
    });
    const ended = once(s.conn, 'end');
    // Write with backpressure: odd-sized chunks so ring wraps fall anywhere.
    let left = total;
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      const part = chunk.subarray(0, n);
      sent.update(part);
      left -= n;
      if (!c.conn.write(part)) await once(c.conn, 'drain');
    }
    c.conn.end();
    await ended;
    assert.equal(got, total);
    assert.equal(recv.digest('hex'), sent.digest('hex'), 'SHA-256 of what arrived');

    // The other direction, then both closes.
    const back = randomBytes(1024 * 1024);
    const gotBack: Buffer[] = [];
    c.conn.on('data', (d: Buffer) => gotBack.push(d));
    const endedBack = once(c.conn, 'end');
    s.conn.end(back);
    await endedBack;
    assert.equal(createHash('sha256').update(Buffer.concat(gotBack)).digest('hex'), createHash('sha256').update(back).digest('hex'));
    await closed;
  });

  it('a client whose port has no IPv4-mapped RoCEv2 GID falls back with NOSMCDEV (0x03030000)', async () => {
    process.env.FAKE_VERBS_NO_IPV4 = 'fake1';
    const { c, s } = await handshake();
    assert.equal(c.mode, 'tcp');
    assert.equal(s.mode, 'tcp');
    if (c.mode !== 'tcp' || s.mode !== 'tcp') return;
    assert.equal(c.reason, 0x03030000, c.detail);
    assert.equal(s.peerDiagnosis, 0x03030000, s.detail);
  });
});
