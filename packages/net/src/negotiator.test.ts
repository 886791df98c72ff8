/**
 * The negotiator in the modes that need no privilege (assume, saved-syn, off), end to end with real
 * TCP sockets and two engines on the mem provider. Mode bpf runs as root in test/negotiator/.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { SmcReason } from '@smc-r/wire';
import { LearnedBlockList } from './blocklist.js';
import { dial } from './dial.js';
import { NetError, NetErrorCode } from './errors.js';
import { Negotiator } from './negotiator.js';
import { NegotiatorWorld } from './testing/world.js';

const TIMERS = { TEST_LINK_INTERVAL: 0, CLC_WAIT: 600, CLC_WAIT_SHORT: 150, LLC_WAIT: 400, LLC_WAIT_FIRST_CLIENT: 500 } as const;

describe('negotiator (unprivileged modes, real sockets, mem engines)', function () {
  this.timeout(10_000);
  let w: NegotiatorWorld;
  beforeEach(() => {
    w = new NegotiatorWorld(TIMERS);
  });
  afterEach(() => w.cleanup());

  it('assume <-> assume: SMC-R, and data flows', async () => {
    const srv = await w.smcServer(w.negotiator({ mode: 'assume' }));
    const client = w.negotiator({ mode: 'assume' });
    const { outcome, plan } = await dial({ engine: await w.engine('mem1'), negotiator: client, host: '127.0.0.1', port: srv.port });
    w.track(outcome);
    assert.equal(plan.offer, true);
    assert.equal(outcome.mode, 'smcr', outcome.mode === 'tcp' ? outcome.detail : '');
    const s = w.track(await srv.outcomes[0]!);
    assert.equal(s.mode, 'smcr');
    if (outcome.mode !== 'smcr' || s.mode !== 'smcr') return;
    const got = once(s.conn, 'data');
    outcome.conn.write('ping');
    assert.equal(String((await got)[0]), 'ping');
    assert.equal(client.stats.peerSignalled, 1);
  });

  it('off: no SMC attempt, plain TCP with 0x03010001 (local policy) on both sides', async () => {
    const srv = await w.smcServer(w.negotiator({ mode: 'off' }));
    const { outcome, plan } = await dial({ engine: await w.engine('mem1'), negotiator: w.negotiator({ mode: 'off' }), host: '127.0.0.1', port: srv.port });
    w.track(outcome);
    assert.equal(plan.offer, false);
    assert.equal(outcome.mode, 'tcp');
    assert.equal(outcome.mode === 'tcp' && outcome.reason, SmcReason.ACTIVE.code);
    const s = w.track(await srv.outcomes[0]!);
    assert.equal(s.mode === 'tcp' && s.reason, SmcReason.ACTIVE.code);
  });

  it('policy off for the peer: TCP 0x03010001, the rule named in the plan; other ports still get SMC', async () => {
    const srv = await w.smcServer(w.negotiator({ mode: 'assume' }));
    const client = w.negotiator({ mode: 'assume', policy: { rules: [`127.0.0.1:${srv.port} off`] } });
    const { outcome, plan } = await dial({ engine: await w.engine('mem1'), negotiator: client, host: '127.0.0.1', port: srv.port });
    w.track(outcome);
    assert.equal(outcome.mode === 'tcp' && outcome.reason, SmcReason.ACTIVE.code);
    assert.match(plan.why, new RegExp(`127\\.0\\.0\\.1/32 port ${srv.port} off`));
    assert.equal(client.stats.skippedByPolicy, 1);
    assert.equal(client.planConnect('127.0.0.1', srv.port + 1 === 65536 ? 1 : srv.port + 1).offer, true);
  });

  it('an echoing server: the first connection falls back (suspectedEcho) keeping its bytes, the peer is learned, the next skips SMC', async () => {
    // A plain TCP echo service whose stack (or a middlebox) reflects the SMC option: in assume mode the
    // client believes it, exactly as it would after a reflected SYN-ACK option in bpf mode.
    const { port } = await w.listen((s) => s.on('data', (c) => s.write(c)));
    let now = 0;
    const client = w.negotiator({ mode: 'assume', blockList: new LearnedBlockList({ ttlMs: 60_000, now: () => now }) });
    const e = await w.engine('mem1');
    const first = await dial({ engine: e, negotiator: client, host: '127.0.0.1', port });
    w.track(first.outcome);
    assert.equal(first.outcome.mode, 'tcp');
    if (first.outcome.mode !== 'tcp') return;
    assert.equal(first.outcome.reason, SmcReason.PEERNOSMC.code);
    assert.equal(first.outcome.suspectedEcho, true);
    // What the echo server sent (our Proposal, reflected) reaches the application as TCP data.
    first.outcome.socket.resume();
    const [chunk] = (await once(first.outcome.socket, 'data')) as [Buffer];
    assert.equal(chunk.subarray(0, 4).toString('hex'), 'e2d4c3d9');
    assert.deepEqual(client.blockList.entries().map((b) => [b.address, b.port]), [['127.0.0.1', port]]);

    const second = await dial({ engine: e, negotiator: client, host: '127.0.0.1', port });
    w.track(second.outcome);
    assert.equal(second.plan.offer, false);
    assert.match(second.plan.why, /learned TCP-only/);
    assert.equal(second.outcome.mode === 'tcp' && second.outcome.reason, SmcReason.ACTIVE.code);
    // Plain TCP from the first byte: the echo service just echoes.
    second.outcome.socket.resume();
    second.outcome.socket.write('hello');
    const [echo] = (await once(second.outcome.socket, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'hello');
    assert.equal(client.stats.learnedBlocks, 1);

    now = 60_000; // the block expires: SMC is tried again
    assert.equal(client.planConnect('127.0.0.1', port).offer, true);
  });

  it('a silent server (reads our Proposal, never answers): ERR_SMC_TIMEOUT as the kernel, and the peer is learned', async () => {
    const { port } = await w.listen((s) => s.resume());
    const client = w.negotiator({ mode: 'assume' });
    await assert.rejects(dial({ engine: await w.engine('mem1'), negotiator: client, host: '127.0.0.1', port }), { code: 'ERR_SMC_TIMEOUT' });
    assert.match(client.blockList.blocked('127.0.0.1', port)?.why ?? '', /timeout/);
  });

  it('saved-syn: a server learns from the kernel that a plain client did not offer SMC (0x03010000); clients are refused', async () => {
    const srv = await w.smcServer(w.negotiator({ mode: 'saved-syn' }));
    const { outcome } = await dial({ engine: await w.engine('mem1'), negotiator: w.negotiator({ mode: 'off' }), host: '127.0.0.1', port: srv.port });
    w.track(outcome);
    const s = w.track(await srv.outcomes[0]!);
    assert.equal(s.mode === 'tcp' && s.reason, SmcReason.PEERNOSMC.code);
    assert.throws(() => w.negotiator({ mode: 'saved-syn' }).planConnect('127.0.0.1', 1), (e: unknown) => e instanceof NetError && e.code === NetErrorCode.MODE);
  });

  it('bad input: unknown mode, bad address, use after close are typed errors', () => {
    assert.throws(() => Negotiator.open({ mode: 'maybe' as 'off' }), (e: unknown) => e instanceof NetError && e.code === NetErrorCode.BAD_OPTION);
    const n = w.negotiator({ mode: 'assume' });
    assert.throws(() => n.planConnect('example.com', 80), (e: unknown) => e instanceof NetError && e.code === NetErrorCode.BAD_ADDRESS);
    n.close();
    assert.throws(() => n.planConnect('127.0.0.1', 80), (e: unknown) => e instanceof NetError && e.code === NetErrorCode.CLOSED);
    n.close(); // idempotent
  });
});
