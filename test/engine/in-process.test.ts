/**
 * Two SmcEngines in this process over softroce devices on 127.0.0.1 and 127.0.0.2 (real UDP on
 * loopback), CLC over TCP 127.0.0.1: the engine's use of a real RoCE GID table (softroce builds it
 * as Linux does: 0/1 link-local RoCEv1/RoCEv2, 2/3 ::ffff:<ip> RoCEv1/RoCEv2).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { SmcEngine, type SmcOutcome } from '@smc-r/core';
import type { Context } from '@smc-r/verbs';
import { createSoftRoce, softroceMissing } from '../softroce/support/providers.js';

describe('engine over softroce in one process (127.0.0.1 <-> 127.0.0.2)', function () {
  this.timeout(20_000);
  const contexts: Context[] = [];
  const engines: SmcEngine[] = [];

  before(function () {
    const why = softroceMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
  });

  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
    for (const c of contexts.splice(0)) await c.close();
  });

  it('the link uses the RoCEv2 GID index of ::ffff:<ip>, not the RoCEv1 entry with the same bytes', async () => {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const provider = createSoftRoce([{ name: 'sr-a', ip: '127.0.0.1', port, mtu: 4096 }, { name: 'sr-b', ip: '127.0.0.2', port, mtu: 4096 }]);
    const ctxS = await provider.open('sr-a');
    contexts.push(ctxS);
    const ctxC = await provider.open('sr-b');
    contexts.push(ctxC);
    // The GID table has the same 16 bytes twice: RoCEv1 and RoCEv2 (index 2 and 3).
    const mapped = ctxC.gidTable(1).filter((g) => g.ipv4 === '127.0.0.2');
    assert.deepEqual(mapped.map((g) => g.type).sort(), ['RoCEv1', 'RoCEv2']);
    const server = new SmcEngine({ context: ctxS, timers: { TEST_LINK_INTERVAL: 0 } });
    engines.push(server);
    const client = new SmcEngine({ context: ctxC, timers: { TEST_LINK_INTERVAL: 0 } });
    engines.push(client);
    const srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    try {
      const accepted = new Promise<SmcOutcome>((resolve, reject) => {
        srv.once('connection', (sock: Socket) => { server.accept(sock, { peerSignalledSmc: true }).then(resolve, reject); });
      });
      const sock = connect((srv.address() as { port: number }).port, '127.0.0.1');
      await once(sock, 'connect');
      const [c, s] = await Promise.all([client.connect(sock, { peerSignalledSmc: true }), accepted]);
      // With the RoCEv1 index (2) modify_qp refuses the RTR and both fall back with 0x09990002 (ERR_RDYLNK).
      assert.equal(c.mode, 'smcr', c.mode === 'tcp' ? `client fell back: ${c.detail}` : '');
      assert.equal(s.mode, 'smcr', s.mode === 'tcp' ? `server fell back: ${s.detail}` : '');
      if (c.mode !== 'smcr' || s.mode !== 'smcr') return;
      const data = randomBytes(2 * 1024 * 1024 + 5);
      const got: Buffer[] = [];
      s.conn.on('data', (d: Buffer) => got.push(d));
      const ended = once(s.conn, 'end');
      c.conn.end(data);
      await ended;
      assert.ok(Buffer.concat(got).equals(data));
      c.conn.resume();
      s.conn.end();
      await Promise.all([once(c.conn, 'close'), once(s.conn, 'close')]);
    } finally {
      srv.close();
    }
  });
});
