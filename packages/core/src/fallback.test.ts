/**
 * Fallback end to end (spec 3.2, 3.6, 4): any failure before SMC data flows leaves the connection
 * working as plain TCP on the same socket, the application loses no byte (also bytes the peer sent
 * while we were still in CLC), and each side keeps (local reason, peer diagnosis) as smcss shows it.
 * Failures the kernel does not fall back on (negative errno: garbage, CLC timeout, EOF) fail the
 * handshake with an EngineError and destroy the socket.
 *
 * Real TCP loopback sockets; two engines on the mem provider, or one engine and a plain TCP peer, or
 * one engine and the scripted peer (testing/scripted-peer.ts) for codes only a crafted peer provokes.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import {
  MemProvider, VerbsError, Errno,
  type Context, type GidEntry, type MemoryBlock, type Pd, type QpInitAttr, type Qp,
} from '@smc-r/verbs';
import { REASON_LIST, SmcReason, formatFallback, type ClcProposal } from '@smc-r/wire';
import { SmcEngine, type HandshakeOptions, type SmcEngineOptions, type SmcOutcome } from './engine.js';
import { EngineError, EngineErrorCode } from './errors.js';
import { ScriptedPeer, scriptClient, tcpPair, within } from './testing/scripted-peer.js';

const R = SmcReason;
const TIMERS = { TEST_LINK_INTERVAL: 0, LLC_WAIT: 300, LLC_WAIT_FIRST_CLIENT: 400, CLC_WAIT: 800, CLC_WAIT_SHORT: 150 } as const;
const WAIT = 2000;
const SMC: HandshakeOptions = { peerSignalledSmc: true };

type Tcp = Extract<SmcOutcome, { mode: 'tcp' }>;

// ---------------------------------------------------------------------------------------------------
// fixtures

/** A Context that delegates to `ctx` with some verbs replaced (a device without a RoCEv2 GID, failing allocations). */
function wrapContext(ctx: Context, o: {
  gidTable?: (t: readonly GidEntry[]) => readonly GidEntry[];
  allocMemory?: (length: number) => void;
  createQp?: (init: QpInitAttr) => void;
}): Context {
  const wrapped: Context = {
    get provider() { return ctx.provider; },
    get device() { return ctx.device; },
    queryDevice: () => ctx.queryDevice(),
    queryPort: (p) => ctx.queryPort(p),
    queryGid: (p, i) => ctx.queryGid(p, i),
    gidTable: (p) => (o.gidTable ? o.gidTable(ctx.gidTable(p)) : ctx.gidTable(p)),
    allocMemory: (length): MemoryBlock => {
      o.allocMemory?.(length);
      return ctx.allocMemory(length);
    },
    allocPd: (): Pd => {
      const pd = ctx.allocPd();
      return {
        get context() { return wrapped; },
        registerMr: (b, off, len, acc) => pd.registerMr(b, off, len, acc),
        createQp: (init): Qp => {
          o.createQp?.(init);
          return pd.createQp(init);
        },
        close: () => pd.close(),
      };
    },
    createCq: (n) => ctx.createCq(n),
    close: () => ctx.close(),
  };
  return wrapped;
}

const noRoceV2 = (t: readonly GidEntry[]): readonly GidEntry[] => t.filter((g) => g.type !== 'RoCEv2');
const noGids = (): readonly GidEntry[] => [];
const enomem = (size: number) => (length: number): void => {
  if (length === size) throw new VerbsError('alloc_memory', Errno.ENOMEM, `no ${length} bytes for you`);
};

interface World {
  provider: MemProvider;
  contexts: Context[];
  engines: SmcEngine[];
  sockets: Socket[];
  peers: ScriptedPeer[];
}
let world: World;


let nextDev = 0;
async function device(): Promise<Context> {
  const c = await world.provider.open(`mem${nextDev++ % 3}`);
  world.contexts.push(c);
  return c;
}

async function engine(o: Partial<SmcEngineOptions> & { wrap?: Parameters<typeof wrapContext>[1] } = {}): Promise<SmcEngine> {
  const raw = await device();
  const { wrap, ...rest } = o;
  const e = new SmcEngine({ context: wrap ? wrapContext(raw, wrap) : raw, ...rest, timers: { ...TIMERS, ...(rest.timers ?? {}) } });
  world.engines.push(e);
  return e;
}

async function peer(link: 'v1' | 'v2' = 'v1'): Promise<ScriptedPeer> {
  const p = new ScriptedPeer({ context: await device(), link });
  world.peers.push(p);
  return p;
}

async function pair(): Promise<{ client: Socket; server: Socket }> {
  const p = await tcpPair();
  for (const s of [p.client, p.server]) {
    s.on('error', () => {});
    world.sockets.push(s);
  }
  return p;
}

/** Exactly `n` bytes from `s` (resumes it: a fallback socket comes back paused). */
function readExactly(s: Socket, n: number, ms = WAIT): Promise<Buffer> {
  return within(new Promise<Buffer>((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      if (got.length >= n) {
        s.off('data', onData);
        s.pause();
        const extra = got.subarray(n);
        if (extra.length > 0) s.unshift(extra);
        resolve(got.subarray(0, n));
      }
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`socket closed after ${got.length} of ${n} bytes`)));
    s.resume();
  }), ms, `${n} bytes`);
}

function write(s: Socket, b: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => s.write(b, (e) => (e ? reject(e) : resolve())));
}

/** The handshake fails with an EngineError of `code`. */
async function fails(p: Promise<SmcOutcome>, code: string): Promise<void> {
  const err = await within(p.then(() => null, (e: unknown) => e), 3000, 'the handshake to fail');
  assert.ok(err instanceof EngineError, `expected an EngineError, got ${String(err)}`);
  assert.equal((err as EngineError).code, code);
}

function closed(s: Socket, ms = WAIT): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  return within(new Promise<void>((resolve) => s.once('close', () => resolve())), ms, 'the socket to close');
}

/** The engine's fallback socket and the scripted peer talk plain TCP, both ways. */
async function assertPeerTcp(p: ScriptedPeer, engineSocket: Socket): Promise<void> {
  await write(engineSocket, 'from the engine application');
  assert.equal((await p.readRaw(27, WAIT)).toString(), 'from the engine application');
  const back = readExactly(engineSocket, 25);
  await p.writeRaw(Buffer.from('from the peer application'));
  assert.equal((await back).toString(), 'from the peer application');
}

const smcss = (o: SmcOutcome): string => (o.mode === 'tcp' ? formatFallback(o.reason, o.peerDiagnosis) : `SMCR v${o.version}`);

function asTcp(o: SmcOutcome): Tcp {
  assert.equal(o.mode, 'tcp', `expected a fallback, got ${smcss(o)}`);
  return o as Tcp;
}

const PRE_S = Buffer.from('S1: the server application spoke right after its handshake;');
const PRE_C = Buffer.from('C1: the client application spoke right after its handshake;');
const POST_S = Buffer.from('S2: and once more later.');
const POST_C = Buffer.from('C2: and once more later.');

/**
 * Two engines (or `null` for a plain TCP application on that side) handshake on one TCP connection.
 * Each side's application writes PRE the moment its own handshake is done (so the other side may
 * still be in CLC when those bytes arrive) and, once both are done, POST; each must read exactly the
 * other's PRE + POST, in order.
 */
async function handshake(
  server: SmcEngine | null, client: SmcEngine | null,
  hs: { server?: HandshakeOptions; client?: HandshakeOptions } = {},
): Promise<{ s: SmcOutcome | null; c: SmcOutcome | null; ss: Socket; cs: Socket }> {
  const { client: cs, server: ss } = await pair();
  const run = async (e: SmcEngine | null, sock: Socket, role: 'server' | 'client', pre: Buffer): Promise<SmcOutcome | null> => {
    if (e === null) {
      await write(sock, pre);
      return null;
    }
    const o = role === 'server' ? await e.accept(sock, hs.server ?? SMC) : await e.connect(sock, hs.client ?? SMC);
    if (o.mode === 'tcp') await write(o.socket, pre);
    else o.conn.on('error', () => {});
    return o;
  };
  const [s, c] = await within(Promise.all([run(server, ss, 'server', PRE_S), run(client, cs, 'client', PRE_C)]), 4000, 'both handshakes');
  return { s, c, ss, cs };
}

/** Both sockets carry the applications' bytes both ways, nothing lost, nothing reordered. */
async function assertTcpWorks(ss: Socket, cs: Socket): Promise<void> {
  const atClient = readExactly(cs, PRE_S.length + POST_S.length);
  const atServer = readExactly(ss, PRE_C.length + POST_C.length);
  await write(ss, POST_S);
  await write(cs, POST_C);
  assert.equal((await atClient).toString(), Buffer.concat([PRE_S, POST_S]).toString());
  assert.equal((await atServer).toString(), Buffer.concat([PRE_C, POST_C]).toString());
}

/** The engines fall back with these smcss strings, and TCP then works both ways. */
async function expectFallback(server: SmcEngine | null, client: SmcEngine | null, want: { s?: string; c?: string }, hs: { server?: HandshakeOptions; client?: HandshakeOptions } = {}): Promise<{ s: Tcp | null; c: Tcp | null }> {
  const r = await handshake(server, client, hs);
  const s = r.s === null ? null : asTcp(r.s);
  const c = r.c === null ? null : asTcp(r.c);
  if (want.s !== undefined) assert.equal(smcss(s!), want.s, s?.detail);
  if (want.c !== undefined) assert.equal(smcss(c!), want.c, c?.detail);
  if (s) assert.equal(s.socket, r.ss, 'the server falls back on the same socket');
  if (c) assert.equal(c.socket, r.cs, 'the client falls back on the same socket');
  await assertTcpWorks(r.ss, r.cs);
  return { s, c };
}

/** Both ends end() an SMC-R connection; resolves when the server's RMB is back in its link group's cache. */
async function closeInOrder(s: SmcOutcome, c: SmcOutcome, server: SmcEngine): Promise<void> {
  assert.equal(s.mode, 'smcr');
  assert.equal(c.mode, 'smcr');
  for (const o of [s, c]) if (o.mode === 'smcr') { o.conn.resume(); o.conn.end(); }
  const lgr = [...server.lgrs][0]!;
  await within((async () => { while (lgr.bufCache.length === 0) await new Promise((res) => setTimeout(res, 2)); })(), WAIT, 'the first connection to be released');
  assert.equal(server.lgrs.size, 1);
}

// ===================================================================================================

describe('fallback (end to end)', () => {
  beforeEach(() => {
    world = { provider: new MemProvider({ devices: 3 }), contexts: [], engines: [], sockets: [], peers: [] };
  });

  afterEach(async () => {
    for (const e of world.engines) await e.close();
    for (const p of world.peers) p.close();
    for (const s of world.sockets) s.destroy();
    for (const c of world.contexts) await c.close();
  });

  describe('fallback: nothing is sent, TCP as is (PEERNOSMC, ACTIVE, OPTUNSUPP)', () => {
    it('PEERNOSMC on the client: a SYN-ACK without the option; the plain server\'s greeting reaches the application', async () => {
      const { c } = await expectFallback(null, await engine(), { c: 'TCP 0x03010000' }, { client: { peerSignalledSmc: false } });
      assert.equal(c!.peerDiagnosis, undefined);
    });

    it('PEERNOSMC on the server: a SYN without the option; the plain client\'s request reaches the application', async () => {
      await expectFallback(await engine(), null, { s: 'TCP 0x03010000' }, { server: { peerSignalledSmc: false } });
    });

    it('PEERNOSMC on both engines: no CLC byte goes either way', async () => {
      await expectFallback(await engine(), await engine(), { s: 'TCP 0x03010000', c: 'TCP 0x03010000' }, {
        server: { peerSignalledSmc: false }, client: { peerSignalledSmc: false },
      });
    });

    it('ACTIVE (0x03010001) preset by policy on the client: no option, so the server sees PEERNOSMC', async () => {
      await expectFallback(await engine(), await engine(), { s: 'TCP 0x03010000', c: 'TCP 0x03010001' }, {
        server: { peerSignalledSmc: false }, client: { peerSignalledSmc: true, presetFallback: R.ACTIVE.code },
      });
    });

    it('OPTUNSUPP (0x03060000) preset by TCP Fast Open, on the client and on a listening socket', async () => {
      await expectFallback(await engine(), await engine(), { s: 'TCP 0x03010000', c: 'TCP 0x03060000' }, {
        server: { peerSignalledSmc: false }, client: { peerSignalledSmc: true, presetFallback: R.OPTUNSUPP.code },
      });
      await expectFallback(await engine(), await engine(), { s: 'TCP 0x03060000', c: 'TCP 0x03010000' }, {
        server: { peerSignalledSmc: true, presetFallback: R.OPTUNSUPP.code }, client: { peerSignalledSmc: false },
      });
    });
  });

  describe('fallback: one engine declines, the other records PEERDECL with its code (both as smcss shows them)', () => {
    it('NOSMCDEV (0x03030000): a client whose device has no RoCEv2 GID declines before any Proposal', async () => {
      await expectFallback(await engine(), await engine({ wrap: { gidTable: noRoceV2 } }), { c: 'TCP 0x03030000', s: 'TCP 0x05000000/0x03030000' });
    });

    it('NOSMCDEV (0x03030000): a host with no RDMA device at all (context null), as client and as server', async () => {
      const none = (): SmcEngine => {
        const e = new SmcEngine({ context: null, timers: TIMERS });
        world.engines.push(e);
        return e;
      };
      assert.equal(none().pd, null);
      await expectFallback(await engine(), none(), { c: 'TCP 0x03030000', s: 'TCP 0x05000000/0x03030000' });
      await expectFallback(none(), await engine({ clc: { versions: [1] } }), { s: 'TCP 0x03030000', c: 'TCP 0x05000000/0x03030000' });
    });

    it('NOSMCDEV: a client with SMC-Rv2 only and no UEID offers nothing (Linux: smc_find_proposal_devices drops v2 without UEIDs)', async () => {
      await expectFallback(await engine(), await engine({ clc: { ueids: [], versions: [2] } }), { c: 'TCP 0x03030000', s: 'TCP 0x05000000/0x03030000' });
    });

    it('NOSMCRDEV (0x03030002): a server without a RoCE GID answers an SMC-Rv1+v2 Proposal', async () => {
      await expectFallback(await engine({ wrap: { gidTable: noGids } }), await engine(), { s: 'TCP 0x03030002', c: 'TCP 0x05000000/0x03030002' });
    });

    it('NOSMCDEV (0x03030000): a server without a RoCE GID answers an SMC-Rv1-only Proposal', async () => {
      await expectFallback(await engine({ wrap: { gidTable: noGids } }), await engine({ clc: { versions: [1] } }), { s: 'TCP 0x03030000', c: 'TCP 0x05000000/0x03030000' });
    });

    it('VERSMISMAT (0x030c0000): client SMC-Rv1 only, server SMC-Rv2 only', async () => {
      await expectFallback(await engine({ clc: { versions: [2] } }), await engine({ clc: { versions: [1] } }), { s: 'TCP 0x030c0000', c: 'TCP 0x05000000/0x030c0000' });
    });

    it('NOROUTE (0x030e0000): the server is behind a gateway, the client has no route to its RoCEv2 address', async () => {
      const gw = Buffer.from('02005e0000fe', 'hex');
      await expectFallback(
        await engine({ route: () => ({ found: true, viaGateway: true, nexthopMac: gw }) }),
        await engine({ route: () => ({ found: false }) }),
        { c: 'TCP 0x030e0000', s: 'TCP 0x05000000/0x030e0000' },
      );
    });

    it('NOINDIRECT (0x030f0000): the server says "via gateway", the client\'s route is direct', async () => {
      const gw = Buffer.from('02005e0000fe', 'hex');
      await expectFallback(
        await engine({ route: () => ({ found: true, viaGateway: true, nexthopMac: gw }) }),
        await engine(),
        { c: 'TCP 0x030f0000', s: 'TCP 0x05000000/0x030f0000' },
      );
    });

    it('MEM (0x01010000): the client cannot allocate its RMB', async () => {
      await expectFallback(await engine(), await engine({ wrap: { allocMemory: enomem(64 * 1024) } }), { c: 'TCP 0x01010000', s: 'TCP 0x05000000/0x01010000' });
    });

    it('MEM (0x01010000): the server cannot allocate its RMB', async () => {
      await expectFallback(await engine({ wrap: { allocMemory: enomem(64 * 1024) } }), await engine(), { s: 'TCP 0x01010000', c: 'TCP 0x05000000/0x01010000' });
    });

    it('SYNCERR (0x04000000): the server reuses a link group the client no longer has; the Decline carries the out-of-sync bit', async () => {
      const a = await engine();
      const b = await engine();
      const first = await handshake(a, b);
      assert.equal(first.s?.mode, 'smcr');
      assert.equal(first.c?.mode, 'smcr');
      // Close the first connection in order, so the server's link group stays with a cached RMB...
      await closeInOrder(first.s!, first.c!, a);
      // ...and the client loses its link group without telling anyone.
      await [...b.lgrs][0]!.deleteAll(0, false, false);
      assert.equal(b.lgrs.size, 0);
      await expectFallback(a, b, { c: 'TCP 0x04000000', s: 'TCP 0x05000000/0x04000000' });
    });
  });

  describe('fallback: declines provoked by a crafted peer', () => {
    /** The engine is the server; the scripted client sends `proposal` and gets a Decline with `code`. */
    async function serverDeclines(proposal: (p: ScriptedPeer) => ClcProposal, code: number, version: 1 | 2): Promise<void> {
      const e = await engine();
      const p = await peer('v2');
      const { client, server } = await pair();
      p.attach(client);
      const out = e.accept(server, SMC);
      await p.sendClc(proposal(p));
      const d = await p.expectClc('decline', WAIT);
      assert.equal(formatFallback(R.PEERDECL.code, d.peerDiagnosis), `TCP 0x05000000/${formatFallback(code).slice(4)}`);
      assert.equal(d.version, version);
      assert.equal(d.outOfSync, false);
      const o = asTcp(await within(out, WAIT, 'the outcome'));
      assert.equal(smcss(o), formatFallback(code));
      await assertPeerTcp(p, o.socket);
    }

    it('PEERNOSMC sent by a server (0x03010000): a version-2 Proposal that offers neither SMCv1 nor SMCv2', async () => {
      await serverDeclines((p) => {
        const { v2Ext: _x, ...rest } = p.proposalV2();
        return { ...rest, typev2: 'N' };
      }, R.PEERNOSMC.code, 2);
    });

    it('NOUEID (0x03030008): an SMC-Rv2 Proposal without UEIDs', async () => {
      await serverDeclines((p) => p.proposalV2({ ueids: [] }), R.NOUEID.code, 2);
    });

    it('MAXCONNERR (0x0303000a): a v2.1 Proposal with max_conns 8', async () => {
      await serverDeclines((p) => p.proposalV2({ maxConns: 8 }), R.MAXCONNERR.code, 2);
    });

    it('MAXLINKERR (0x0303000b): a v2.1 Proposal with max_links 0', async () => {
      await serverDeclines((p) => p.proposalV2({ maxLinks: 0 }), R.MAXLINKERR.code, 2);
    });

    it('NOSMCDDEV (0x03030001): an SMC-D-only Proposal', async () => {
      await serverDeclines(() => ({
        type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'D', typev2: 'N', peerId: Buffer.alloc(8), gid: Buffer.alloc(16), mac: Buffer.alloc(6),
        ipAreaOffset: 40, smcdArea: { ismGid: 0x0123456789abcdefn, ismChid: 0x0400, vendorOui: 0, vendorOptions: Buffer.alloc(5) },
        ipPrefix: { subnet: Buffer.from([127, 0, 0, 0]), prefixLen: 8, ipv6Prefixes: [] },
      }), R.NOSMCDDEV.code, 2);
    });

    it('NOISM2SUPP (0x03030003): an SMC-Dv2-only Proposal', async () => {
      await serverDeclines(() => ({
        type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'N', typev2: 'D', peerId: Buffer.alloc(8), gid: Buffer.alloc(16), mac: Buffer.alloc(6),
        ipAreaOffset: 0, smcdArea: { ismGid: 0n, ismChid: 0, vendorOui: 0, vendorOptions: Buffer.alloc(5) },
        v2Ext: { release: 1, seid: true, roceGid: Buffer.alloc(16), maxConns: 0, maxLinks: 0, featureMask: 0, ueids: [] },
        smcdV2Ext: { supported: false, systemEid: 'IBM-SYSZ-ISMSEID00000000DEADBEEF', gidChids: [{ gid: 0x0123456789abcdefn, chid: 0x0400 }] },
      }), R.NOISM2SUPP.code, 2);
    });

    it('DIFFPREFIX (0x03070000): an SMC-Rv1 Proposal from another subnet', async () => {
      await serverDeclines((p) => p.proposalV1([10, 9, 8, 0], 24), R.DIFFPREFIX.code, 1);
    });

    it('RELEASEERR (0x03030009) and MAXCONNERR: a first-contact Confirm that does not echo the Accept\'s FCE', async () => {
      for (const [fce, code] of [[{ release: 0 }, R.RELEASEERR.code], [{ maxConns: 200 }, R.MAXCONNERR.code], [{ maxLinks: 2 }, R.MAXLINKERR.code]] as const) {
        const e = await engine();
        const p = await peer('v2');
        const { client, server } = await pair();
        p.attach(client);
        const out = e.accept(server, SMC);
        await p.sendClc(p.proposalV2());
        const acc = await p.expectClc('accept', WAIT);
        const good = p.confirm(acc);
        await p.sendClc({ ...good, fce: { ...good.fce!, ...fce } });
        const d = await p.expectClc('decline', WAIT);
        assert.equal(d.peerDiagnosis, code);
        const o = asTcp(await within(out, WAIT, 'the outcome'));
        assert.equal(smcss(o), formatFallback(code));
        assert.equal(e.lgrs.size, 0, 'the new link group is gone');
        await assertPeerTcp(p, o.socket);
      }
    });

    it('ERR_REGBUF (0x09990003): on link-group reuse the client refuses CONFIRM_RKEY', async () => {
      const e = await engine();
      const p = await peer('v1');
      const first = await pair();
      p.attach(first.client);
      const out1 = e.accept(first.server, SMC);
      await scriptClient(p, p.proposalV1(), 'ok', WAIT);
      const o1 = await out1;
      assert.equal(o1.mode, 'smcr');
      if (o1.mode === 'smcr') o1.conn.on('error', () => {});
      // A second connection from the same peer: the server reuses the link group and, the first RMB being
      // in use, confirms a new one with CONFIRM_RKEY before its Accept (spec 6.5.4).
      const second = await pair();
      p.attach(second.client);
      const out2 = e.accept(second.server, SMC);
      await p.sendClc(p.proposalV1());
      const req = await p.nextLlc(WAIT);
      assert.equal(req.llc.type, 'confirm_rkey');
      const neg = Buffer.from(req.bytes);
      neg[3] = neg[3]! | 0x80 | 0x20 | 0x10; // RESP | NEG | RETRY: "could not store the rtoken"
      await p.sendRaw(neg);
      const d = await p.expectClc('decline', WAIT);
      assert.equal(d.peerDiagnosis, R.ERR_REGBUF.code);
      const o2 = asTcp(await within(out2, WAIT, 'the outcome'));
      assert.equal(smcss(o2), 'TCP 0x09990003');
      await assertPeerTcp(p, o2.socket);
    });

    /** The engine is the client; the scripted server answers its Proposal with `accept(p)`. */
    async function clientDeclines(makeAccept: (p: ScriptedPeer) => Parameters<ScriptedPeer['sendClc']>[0], code: number, version: 1 | 2, clc: SmcEngineOptions['clc'] = {}): Promise<void> {
      const e = await engine({ clc });
      const p = await peer('v2');
      const { client, server } = await pair();
      p.attach(server);
      const out = e.connect(client, SMC);
      await p.expectClc('proposal', WAIT);
      await p.sendClc(makeAccept(p));
      const d = await p.expectClc('decline', WAIT);
      assert.equal(d.peerDiagnosis, code, `got 0x${d.peerDiagnosis.toString(16)}`);
      assert.equal(d.version, version);
      assert.equal(d.outOfSync, code === R.SYNCERR.code);
      const o = asTcp(await within(out, WAIT, 'the outcome'));
      assert.equal(smcss(o), formatFallback(code));
      assert.equal(e.lgrs.size, 0);
      await assertPeerTcp(p, o.socket);
    }

    it('MODEUNSUPP (0x03040000): we offered SMC-Rv1 only, the server chose SMC-Rv2', async () => {
      await clientDeclines((p) => p.accept(2), R.MODEUNSUPP.code, 2, { versions: [1] });
    });

    it('MAXCONNERR / MAXLINKERR: a first-contact Accept with max_conns 8, or max_links 3', async () => {
      await clientDeclines((p) => p.accept(2, { maxConns: 8 }), R.MAXCONNERR.code, 2);
      await clientDeclines((p) => p.accept(2, { maxLinks: 3 }), R.MAXLINKERR.code, 2);
    });

    it('SYNCERR (0x04000000, out-of-sync bit): an Accept without first contact for a link group we do not have', async () => {
      await clientDeclines((p) => p.accept(2, { firstContact: false }), R.SYNCERR.code, 2);
    });

    it('ERR_RTOK (0x09990001): an Accept with RMBE index 0', async () => {
      await clientDeclines((p) => p.accept(2, {}, { rmbeIdx: 0 }), R.ERR_RTOK.code, 2);
    });

    it('ERR_RDYLNK (0x09990002): an Accept whose QP MTU is not an IB MTU', async () => {
      await clientDeclines((p) => p.accept(1, {}, { qpMtu: 0 }), R.ERR_RDYLNK.code, 1);
    });
  });

  describe('fallback: link-layer failures during the handshake', () => {
    it('TIMEOUT_CL (0x02010000): the client never answers CONFIRM_LINK; the server declines and the TCP connection carries on', async () => {
      const e = await engine();
      const p = await peer('v1');
      const { client, server } = await pair();
      p.attach(client);
      const out = e.accept(server, SMC);
      await scriptClient(p, p.proposalV1(), 'none', WAIT);
      const d = await p.expectClc('decline', WAIT);
      assert.equal(d.peerDiagnosis, R.TIMEOUT_CL.code);
      const o = asTcp(await within(out, WAIT, 'the outcome'));
      assert.equal(smcss(o), 'TCP 0x02010000');
      // The client, which got the Decline, is plain TCP too.
      await assertPeerTcp(p, o.socket);
    });
  });

  describe('fallback: every byte the peer sent during CLC reaches the application', () => {
    it('a Decline and the peer\'s first application bytes in one segment: PEERDECL, the bytes come first on the socket', async () => {
      const e = await engine();
      const p = await peer('v2');
      const { client, server } = await pair();
      p.attach(server);
      const out = e.connect(client, SMC);
      await p.expectClc('proposal', WAIT);
      await p.sendClc(p.decline(R.NOSMCRDEV.code, 2), Buffer.from('220 hello after my decline\r\n'));
      const o = asTcp(await within(out, WAIT, 'the outcome'));
      assert.equal(smcss(o), 'TCP 0x05000000/0x03030002');
      assert.equal((await readExactly(o.socket, 28)).toString(), '220 hello after my decline\r\n');
      await assertPeerTcp(p, o.socket);
    });

    it('application bytes pipelined behind a Proposal the server declines are given to the server application', async () => {
      const e = await engine();
      const p = await peer('v2');
      const { client, server } = await pair();
      p.attach(client);
      const out = e.accept(server, SMC);
      await p.sendClc(p.proposalV2({ ueids: [] }), Buffer.from('EARLY DATA'));
      const o = asTcp(await within(out, WAIT, 'the outcome'));
      assert.equal(smcss(o), 'TCP 0x03030008');
      assert.equal((await readExactly(o.socket, 10)).toString(), 'EARLY DATA');
      assert.equal((await p.expectClc('decline', WAIT)).peerDiagnosis, R.NOUEID.code);
      await assertPeerTcp(p, o.socket);
    });
  });

  describe('no fallback: the handshake fails and the socket is destroyed (negative errno, spec 3.2, 4.1)', () => {
    it('a server that gets garbage instead of a Proposal: ERR_SMC_PROTOCOL (EPROTO), connection dropped', async () => {
      const e = await engine();
      const { client, server } = await pair();
      const out = e.accept(server, SMC);
      await write(client, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await fails(out, EngineErrorCode.PROTOCOL);
      assert.equal(server.destroyed, true);
      await closed(client);
    });

    it('a client that gets no Accept within CLC_WAIT: ERR_SMC_TIMEOUT (ETIMEDOUT), socket destroyed', async () => {
      const e = await engine();
      const { client, server } = await pair();
      server.resume(); // a server that reads the Proposal and says nothing
      const t0 = Date.now();
      await fails(e.connect(client, SMC), EngineErrorCode.TIMEOUT);
      assert.ok(Date.now() - t0 >= TIMERS.CLC_WAIT - 20);
      assert.equal(client.destroyed, true);
      await closed(server);
    });

    it('a server that closes during CLC: ERR_SMC_RESET (ECONNRESET)', async () => {
      const e = await engine();
      const { client, server } = await pair();
      server.resume();
      const out = e.connect(client, SMC);
      server.end();
      await fails(out, EngineErrorCode.RESET);
    });

    it('a non-SMC server that greets first, although the SYN-ACK seemed to carry the option, without the echo defence: EPROTO, as in the kernel', async () => {
      // The kernel reads the banner where it expects an Accept, finds no CLC header, fails connect()
      // with EPROTO (smc_clc_wait_msg, spec 3.2); it cannot fall back. A middlebox that echoes the
      // option (spec 2.3) is the negotiator's problem: it must not report peerSignalledSmc then.
      const e = await engine();
      const { client, server } = await pair();
      server.resume();
      await write(server, '220 smtp.example.com ESMTP ready\r\n');
      await fails(e.connect(client, SMC), EngineErrorCode.PROTOCOL);
      assert.equal(client.destroyed, true);
    });
  });

  describe('echo defence (HandshakeOptions.echoDefence, set by the negotiator): a reflected SMC option', () => {
    const ECHO: HandshakeOptions = { peerSignalledSmc: true, echoDefence: true };

    it('a server that greets first: TCP PEERNOSMC, suspectedEcho, and the greeting reaches the application', async () => {
      const e = await engine();
      const { client, server } = await pair();
      let seen = Buffer.alloc(0);
      server.on('data', (c: Buffer) => { seen = Buffer.concat([seen, c]); });
      const banner = '220 smtp.example.com ESMTP ready\r\n';
      await write(server, banner);
      const out = await within(e.connect(client, ECHO), WAIT, 'the fallback');
      assert.equal(out.mode, 'tcp');
      const t = out as Tcp;
      assert.equal(t.reason, R.PEERNOSMC.code);
      assert.equal(t.suspectedEcho, true);
      assert.equal((await readExactly(t.socket, banner.length)).toString(), banner);
      // The same socket still carries data both ways: the server got our Proposal (garbage to it), then QUIT.
      await write(t.socket, 'QUIT');
      await within((async () => { while (!seen.toString('latin1').endsWith('QUIT')) await new Promise((r) => setTimeout(r, 5)); })(), WAIT, 'QUIT at the server');
      assert.equal(seen.subarray(0, 4).toString('hex'), 'e2d4c3d9');
    });

    it('a server that echoes data: our own Proposal comes back, reaches the application as TCP data', async () => {
      const e = await engine();
      const { client, server } = await pair();
      server.on('data', (c: Buffer) => server.write(c));
      const out = await within(e.connect(client, ECHO), WAIT, 'the fallback');
      assert.equal(out.mode, 'tcp');
      const t = out as Tcp;
      assert.equal(t.reason, R.PEERNOSMC.code);
      assert.equal(t.suspectedEcho, true);
      const head = await readExactly(t.socket, 8);
      assert.equal(head.subarray(0, 4).toString('latin1'), '\xe2\xd4\xc3\xd9', 'the echoed bytes start with the CLC eyecatcher');
      assert.equal(head[4], 1, 'the echoed message is a Proposal (type 1)');
      const len = head.readUInt16BE(5);
      await readExactly(t.socket, len - 8);
      const echoed = readExactly(t.socket, 5);
      await write(t.socket, 'hello');
      assert.equal((await echoed).toString(), 'hello');
    });

    it('a real CLC message that does not decode is still EPROTO: the defence never hides an SMC peer\'s error', async () => {
      const e = await engine();
      const { client, server } = await pair();
      server.resume();
      // eyecatcher SMCR, type 2 (Accept), length 4: shorter than any header
      await write(server, Buffer.from('e2d4c3d902000412', 'hex'));
      await fails(e.connect(client, ECHO), EngineErrorCode.PROTOCOL);
    });

    it('server: a client that sends data instead of a Proposal falls back to TCP (PEERNOSMC), its bytes kept', async () => {
      const e = await engine();
      const { client, server } = await pair();
      const out = e.accept(server, ECHO);
      await write(client, 'GET / HTTP/1.1\r\n\r\n');
      const o = await within(out, WAIT, 'the fallback');
      assert.equal(o.mode, 'tcp');
      assert.equal((o as Tcp).reason, R.PEERNOSMC.code);
      assert.equal((await readExactly(o.socket, 18)).toString(), 'GET / HTTP/1.1\r\n\r\n');
    });

    it('silence after our Proposal is still ETIMEDOUT (the negotiator learns from the error)', async () => {
      const e = await engine();
      const { client, server } = await pair();
      server.resume();
      await fails(e.connect(client, ECHO), EngineErrorCode.TIMEOUT);
    });
  });

  describe('regressions: engine bugs found by these tests, now fixed', () => {
    it('INTERR (0x09990000): a failed QP creation is declined INTERR as smc_lgr_create does, not ERR_RDYLNK (engine.ts #newLink catch -> LINK_READY)', async () => {
      const failQp = (): void => { throw new VerbsError('create_qp', Errno.EINVAL, 'no QP for you'); };
      await expectFallback(await engine(), await engine({ wrap: { createQp: failQp } }), { c: 'TCP 0x09990000', s: 'TCP 0x05000000/0x09990000' });
    });

    it('a Decline with the out-of-sync bit terminates the link group it names (spec 3.2 step 6; engine.ts #fail ignores outOfSync)', async () => {
      const a = await engine();
      const b = await engine();
      const first = await handshake(a, b);
      await closeInOrder(first.s!, first.c!, a);
      await [...b.lgrs][0]!.deleteAll(0, false, false);
      await expectFallback(a, b, { c: 'TCP 0x04000000', s: 'TCP 0x05000000/0x04000000' });
      assert.equal(a.lgrs.size, 0, 'the server still holds the link group the client declared out of sync');
    });
  });

  /**
   * Where each code a userspace stack can hit (reasons.ts `userspace`) is provoked end to end, or why it
   * cannot be over loopback with this engine (those are covered by clc.test.ts on the pure decisions).
   * packages/core/README.md carries the same list.
   */
  const E2E: Record<string, string> = {
    MEM: 'fallback: MEM (client, server)',
    TIMEOUT_CL: 'fallback: TIMEOUT_CL; scripted-peer: no CONFIRM_LINK request / response',
    PEERNOSMC: 'fallback: PEERNOSMC (client, server, both; sent by a server)',
    ACTIVE: 'fallback: ACTIVE',
    NOSMCDEV: 'fallback: NOSMCDEV (client without RoCEv2 GID, client without UEID, server without GID)',
    NOSMCDDEV: 'fallback: NOSMCDDEV (crafted SMC-D Proposal)',
    NOSMCRDEV: 'fallback: NOSMCRDEV',
    NOISM2SUPP: 'fallback: NOISM2SUPP (crafted SMC-Dv2 Proposal)',
    NOUEID: 'fallback: NOUEID (crafted Proposal)',
    RELEASEERR: 'fallback: RELEASEERR (crafted Confirm)',
    MAXCONNERR: 'fallback: MAXCONNERR (crafted Proposal, Confirm, Accept)',
    MAXLINKERR: 'fallback: MAXLINKERR (crafted Proposal, Confirm, Accept)',
    MODEUNSUPP: 'fallback: MODEUNSUPP (crafted Accept)',
    RMBE_EC: 'scripted-peer: CONFIRM_LINK without the 0x03 flag (server, client)',
    OPTUNSUPP: 'fallback: OPTUNSUPP',
    DIFFPREFIX: 'fallback: DIFFPREFIX (crafted Proposal)',
    VERSMISMAT: 'fallback: VERSMISMAT',
    NOROUTE: 'fallback: NOROUTE',
    NOINDIRECT: 'fallback: NOINDIRECT',
    SYNCERR: 'fallback: SYNCERR (two engines; crafted Accept)',
    PEERDECL: 'fallback: every decline, on the other side',
    INTERR: 'fallback: engine bugs / INTERR (fails today: declined ERR_RDYLNK)',
    ERR_RTOK: 'fallback: ERR_RTOK (crafted Accept)',
    ERR_RDYLNK: 'fallback: ERR_RDYLNK (crafted Accept)',
    ERR_REGBUF: 'fallback: ERR_REGBUF (CONFIRM_RKEY refused)',
  };
  const NOT_E2E: Record<string, string> = {
    CNFERR: 'needs a TCP source address outside every interface subnet (no IP prefix for SMC-Rv1); on loopback 127.0.0.1 always lies in lo\'s 127.0.0.0/8',
    NOV2EXT: 'a v2 Proposal offering SMC-Rv2 without the extension does not decode (v2_ext_offset 0): the server sees EPROTO, not a Proposal',
    GETVLANERR: 'the engine does not look VLANs up yet: #tcpInfo always reports VLAN 0, so the lookup cannot fail',
    NOACTLINK: 'one link per group: reuse only matches a group whose link is active, and the engine never reports NO_ACTIVE_LINK',
    NOSRVLINK: 'one link per group: a client match already requires the named link (else SYNCERR); the engine does not call clientRecheckLink',
  };

  describe('fallback: every userspace reason code of spec 4', () => {
    it('is provoked end to end above, or listed with the reason it cannot be', () => {
      for (const e of REASON_LIST.filter((x) => x.userspace)) {
        const k = e.name.replace('SMC_CLC_DECL_', '');
        assert.ok((k in E2E) !== (k in NOT_E2E), `${k}: listed ${k in E2E ? 'twice' : 'nowhere'}`);
      }
      for (const k of [...Object.keys(E2E), ...Object.keys(NOT_E2E)]) {
        assert.ok(REASON_LIST.some((x) => x.userspace && x.name === `SMC_CLC_DECL_${k}`), `${k} is not a userspace code`);
      }
    });
  });
});
