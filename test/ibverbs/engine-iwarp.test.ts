/**
 * The SMC-R engine on iWARP devices: the C test device presents erdma-like iWARP devices
 * (FAKE_VERBS_IWARP=1: modify_qp to RTR/RTS fails, as on upstream iWARP), so the links' QPs can
 * only reach RTS through the connection manager: the C test CM behind librdmacm's API, driven by
 * the binding's RdmaCm through CmQpConnector. Server on fake0 (127.0.0.1), client on fake1
 * (127.0.0.2); CLC over TCP between those addresses. Handshake, 16 MiB each way with SHA-256,
 * a second connection on the same link group, close; and no connector -> NOSMCDEV.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import koffi from 'koffi';
import { SmcEngine, type SmcOutcome } from '@smc-r/core';
import { CmQpConnector, IbverbsProvider, RdmaCm, testRdmacmMissing } from '@smc-r/ibverbs';
import type { Context } from '@smc-r/verbs';
import { testDeviceOrSkip } from './support/device.js';

describe('SMC-R engine on iWARP devices: links brought up by the connection manager (C test device + CM)', function () {
  this.timeout(60_000);
  let libraryPath = '';
  let liveIds: () => number = () => 0;
  const saved = process.env.FAKE_VERBS_IWARP;
  const contexts: Context[] = [];
  const engines: SmcEngine[] = [];
  const sockets: Socket[] = [];
  const connectors: CmQpConnector[] = [];
  const cms: RdmaCm[] = [];
  let srv: Server | undefined;

  before(function () {
    libraryPath = testDeviceOrSkip(this);
    const why = testRdmacmMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
    liveIds = koffi.load(libraryPath).func('int fake_rdmacm_live_ids(void)') as () => number;
    process.env.FAKE_VERBS_IWARP = '1';
  });

  after(() => {
    if (saved === undefined) delete process.env.FAKE_VERBS_IWARP;
    else process.env.FAKE_VERBS_IWARP = saved;
  });

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    srv?.close();
    srv = undefined;
    for (const e of engines.splice(0)) await e.close();
    for (const c of connectors.splice(0)) c.close();
    for (const cm of cms.splice(0)) cm.close();
    for (const c of contexts.splice(0)) await c.close();
    assert.equal(liveIds(), 0, 'CM ids leaked');
  });

  async function engines2(withConnector: boolean): Promise<{ server: SmcEngine; client: SmcEngine }> {
    const provider = new IbverbsProvider({ libraryPath });
    const port = randomInt(20000, 60000);
    const make = async (dev: string, ip: string): Promise<SmcEngine> => {
      const ctx = await provider.open(dev);
      contexts.push(ctx);
      assert.equal(ctx.device.transport, 'iWARP');
      let connector: CmQpConnector | undefined;
      if (withConnector) {
        const cm = RdmaCm.open({ libraryPath });
        cms.push(cm);
        connector = new CmQpConnector({ cm, address: ip, port });
        connectors.push(connector);
      }
      const e = new SmcEngine({ context: ctx, timers: { TEST_LINK_INTERVAL: 0 }, ...(connector ? { connector } : {}) });
      engines.push(e);
      return e;
    };
    return { server: await make('fake0', '127.0.0.1'), client: await make('fake1', '127.0.0.2') };
  }

  async function handshake(server: SmcEngine, client: SmcEngine): Promise<{ c: SmcOutcome; s: SmcOutcome }> {
    if (srv === undefined) {
      srv = createServer();
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
    }
    const accepted = new Promise<SmcOutcome>((resolve, reject) => {
      srv!.once('connection', (sock: Socket) => {
        sockets.push(sock);
        server.accept(sock, { peerSignalledSmc: true }).then(resolve, reject);
      });
    });
    const sock = connect({ port: (srv.address() as { port: number }).port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    sockets.push(sock);
    await once(sock, 'connect');
    const [c, s] = await Promise.all([client.connect(sock, { peerSignalledSmc: true }), accepted]);
    return { c, s };
  }

  async function exchange(c: SmcOutcome, s: SmcOutcome, bytes: number): Promise<void> {
    assert.ok(c.mode === 'smcr' && s.mode === 'smcr');
    const up = randomBytes(bytes);
    const down = randomBytes(bytes);
    const collect = (stream: NodeJS.ReadableStream): Promise<Buffer> => new Promise((resolve) => {
      const parts: Buffer[] = [];
      stream.on('data', (d: Buffer) => parts.push(d));
      stream.once('end', () => resolve(Buffer.concat(parts)));
    });
    const [atServer, atClient] = [collect(s.conn), collect(c.conn)];
    c.conn.end(up);
    s.conn.end(down);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(await atServer), sha(up));
    assert.equal(sha(await atClient), sha(down));
  }

  it('first contact: CLC, then the server connects its QP to the client\'s through the CM, CONFIRM_LINK, 16 MiB each way; a second connection reuses the link group', async () => {
    const { server, client } = await engines2(true);
    const first = await handshake(server, client);
    assert.equal(first.c.mode, 'smcr', first.c.mode === 'tcp' ? `client fell back: ${first.c.detail}` : '');
    assert.equal(first.s.mode, 'smcr', first.s.mode === 'tcp' ? `server fell back: ${first.s.detail}` : '');
    assert.equal(first.c.mode === 'smcr' && first.c.firstContact, true);
    assert.equal(liveIds() >= 2, true, 'the link rides on CM ids (listeners and the connection)');
    await exchange(first.c, first.s, 16 * 1024 * 1024);
    const second = await handshake(server, client);
    assert.equal(second.c.mode === 'smcr' && second.c.firstContact, false, 'the second connection joins the link group');
    await exchange(second.c, second.s, 1024 * 1024);
    assert.equal(client.lgrs.size, 1);
  });

  it('an iWARP device without a connector offers no usable port: both sides fall back with NOSMCDEV', async () => {
    const { server, client } = await engines2(false);
    const { c, s } = await handshake(server, client);
    assert.equal(c.mode === 'tcp' && c.reason, 0x03030000, c.mode === 'tcp' ? c.detail : '');
    assert.equal(s.mode === 'tcp' && s.peerDiagnosis, 0x03030000);
  });
});
