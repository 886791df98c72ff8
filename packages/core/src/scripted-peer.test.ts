/**
 * One engine against a crafted peer (testing/scripted-peer.ts): every CLC / LLC / CDC transition and
 * error the peer can provoke, with the engine's replies checked byte by byte where Linux's behaviour is
 * specified (spec 6.1 echo rule, 6.5.2 reject, 6.5.1 CONFIRM_LINK, 7.1 CDC).
 *
 * Most tests run an SMC-Rv1 link group (44-byte LLC messages, link-local RoCEv1 GID); the SMC-Rv2 ones
 * run with the engine as client so the peer can pick its GID entry after the engine's QP exists (see
 * the bug test on the GID type).
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { MemProvider, type Context } from '@smc-r/verbs';
import { SmcReason, type CdcMessage, type ClcAccept, type LlcMessage } from '@smc-r/wire';
import { SmcEngine, type SmcOutcome } from './engine.js';
import type { SmcConnection } from './connection.js';
import type { LinkGroup } from './lgr.js';
import { EngineErrorCode } from './errors.js';
import {
  ScriptedPeer, scriptClient, scriptServer, tcpPair, within, type ScriptedLink,
} from './testing/scripted-peer.js';

const R = SmcReason;
const TIMERS = { TEST_LINK_INTERVAL: 0, LLC_WAIT: 300, LLC_WAIT_FIRST_CLIENT: 400, CLC_WAIT: 1000, CLC_WAIT_SHORT: 150 } as const;
const WAIT = 1500;

interface Rig {
  provider: MemProvider;
  peerCtx: Context;
  engCtx: Context;
  engine: SmcEngine;
  peer: ScriptedPeer;
  engineSocket: Socket;
  outcome: Promise<SmcOutcome>;
  /** More engine-side sockets to destroy at the end. */
  extra: Socket[];
}

let rigs: Rig[] = [];

/** A fresh mem fabric, one engine on mem1 in `role`, one scripted peer on mem0, a TCP pair between them. */
async function rig(role: 'server' | 'client', link: 'v1' | 'v2'): Promise<Rig> {
  const provider = new MemProvider();
  const peerCtx = await provider.open('mem0');
  const engCtx = await provider.open('mem1');
  const engine = new SmcEngine({ context: engCtx, timers: TIMERS });
  const peer = new ScriptedPeer({ context: peerCtx, link });
  const { client, server } = await tcpPair();
  const engineSocket = role === 'server' ? server : client;
  peer.attach(role === 'server' ? client : server);
  engineSocket.on('error', () => {});
  const outcome = role === 'server' ? engine.accept(engineSocket, { peerSignalledSmc: true }) : engine.connect(engineSocket, { peerSignalledSmc: true });
  outcome.then((o) => { if (o.mode === 'smcr') o.conn.on('error', () => {}); }, () => {});
  const r: Rig = { provider, peerCtx, engCtx, engine, peer, engineSocket, outcome, extra: [] };
  rigs.push(r);
  return r;
}


/** The GID entry of the peer's GID with the type the engine's QP uses (read from the mem fabric). */
function engineGidType(r: Rig, engineQpn: number): string {
  const qp = r.provider.fabric.devices[1]!.qps.get(engineQpn);
  assert.ok(qp, `engine QP ${engineQpn} not found on mem1`);
  return qp.sgidType;
}
function matchingSgid(r: Rig): (engineQpn: number) => number {
  return (qpn) => {
    const t = engineGidType(r, qpn);
    const e = r.peerCtx.gidTable(1).find((g) => g.type === t && g.gid.equals(r.peer.gid));
    assert.ok(e);
    return e.index;
  };
}

async function smcr(r: Rig): Promise<SmcConnection> {
  const o = await within(r.outcome, WAIT, 'the engine outcome');
  assert.equal(o.mode, 'smcr', o.mode === 'tcp' ? `fell back: ${o.detail}` : '');
  return (o as Extract<SmcOutcome, { mode: 'smcr' }>).conn;
}

async function tcp(r: Rig): Promise<Extract<SmcOutcome, { mode: 'tcp' }>> {
  const o = await within(r.outcome, 3000, 'the engine outcome');
  assert.equal(o.mode, 'tcp');
  return o as Extract<SmcOutcome, { mode: 'tcp' }>;
}

function theLgr(engine: SmcEngine): LinkGroup {
  const [g] = [...engine.lgrs];
  assert.ok(g, 'the engine has no link group');
  return g;
}

/** The bytes of `m` with byte 3 (LLC flags) ORed with `flags`. */
function withFlags(bytes: Buffer, flags: number): Buffer {
  const b = Buffer.from(bytes);
  b[3] = b[3]! | flags;
  return b;
}

/** Bytes delivered by a readable until `n` are there. */
function collect(conn: SmcConnection): { get: () => Buffer; until: (n: number, ms?: number) => Promise<Buffer> } {
  const parts: Buffer[] = [];
  let wake: (() => void) | null = null;
  conn.on('data', (c: Buffer) => { parts.push(c); wake?.(); });
  const get = (): Buffer => Buffer.concat(parts);
  return {
    get,
    until: (n, ms = WAIT) => within(new Promise<Buffer>((resolve) => {
      const check = (): void => { if (get().length >= n) resolve(get()); };
      wake = check;
      check();
    }), ms, `${n} bytes on the connection`),
  };
}

function cdc(o: Partial<CdcMessage> & Pick<CdcMessage, 'seqno' | 'token'>): CdcMessage {
  return {
    type: 'cdc', prod: { wrap: 0, count: 0 }, cons: { wrap: 0, count: 0 },
    writeBlocked: false, urgDataPending: false, urgDataPresent: false, consCursUpdReq: false, failoverValidation: false,
    peerDoneWriting: false, peerConnClosed: false, peerConnAbort: false, credits: 0, ...o,
  };
}

const once = <T>(emitter: NodeJS.EventEmitter, ev: string, ms = WAIT): Promise<T> =>
  within(new Promise<T>((resolve) => emitter.once(ev, resolve as (v: unknown) => void)), ms, `'${ev}'`);

/** Engine = server, peer = SMC-Rv1 client; the link is up. */
async function v1Server(): Promise<{ r: Rig; l: ScriptedLink; conn: SmcConnection }> {
  const r = await rig('server', 'v1');
  const l = await scriptClient(r.peer, r.peer.proposalV1(), 'ok', WAIT);
  const conn = await smcr(r);
  return { r, l, conn };
}

/** Engine = client, peer = SMC-Rv1 server; the link is up. */
async function v1Client(): Promise<{ r: Rig; l: ScriptedLink; conn: SmcConnection }> {
  const r = await rig('client', 'v1');
  const l = await scriptServer(r.peer, { accept: () => r.peer.accept(1), timeoutMs: WAIT });
  const conn = await smcr(r);
  return { r, l, conn };
}

/** Engine = client, peer = SMC-Rv2 server (GRH GID entry of the engine's type); the link is up. */
async function v2Client(): Promise<{ r: Rig; l: ScriptedLink; conn: SmcConnection }> {
  const r = await rig('client', 'v2');
  const l = await scriptServer(r.peer, { accept: () => r.peer.accept(2), timeoutMs: WAIT, sgidIndex: matchingSgid(r) });
  const conn = await smcr(r);
  return { r, l, conn };
}

// =====================================================================================================

describe('scripted peer against one engine', () => {
  afterEach(async () => {
    for (const r of rigs) {
      await r.engine.close();
      r.peer.close();
      r.engineSocket.destroy();
      for (const x of r.extra) x.destroy();
      await r.peerCtx.close();
      await r.engCtx.close();
    }
    rigs = [];
  });

  describe('scripted peer: first contact, engine as server (SMC-Rv1)', () => {
    it('Proposal -> Accept (v1, 68 bytes, first contact) -> Confirm -> CONFIRM_LINK request as Linux builds it -> SMC-R', async () => {
      const { r, l, conn } = await v1Server();
      const acc = l.engineMsg as ClcAccept;
      assert.equal(acc.type, 'accept');
      assert.equal(acc.version, 1);
      assert.equal(acc.firstContact, true);
      assert.equal(acc.rmbeIdx, 1);
      assert.equal(acc.qpMtu, 5);
      assert.ok(acc.rmbeAlertToken !== 0);
      // CONFIRM_LINK request (spec 6.3, 6.5.1): 44 bytes, type 0x01, length 0x2C, flags 0x03, the server's
      // MAC / GID / QPN as in its Accept, link_num 1, its link UID.
      const b = l.confirmLink.bytes;
      assert.equal(b.length, 44);
      assert.deepEqual([b[0], b[1], b[2], b[3]], [0x01, 0x2c, 0x00, 0x03]);
      assert.deepEqual(b.subarray(4, 10), acc.mac);
      assert.deepEqual(b.subarray(10, 26), acc.gid);
      assert.equal(b.readUIntBE(26, 3), acc.qpn);
      assert.equal(b[29], 1);
      assert.notDeepEqual(b.subarray(30, 34), Buffer.alloc(4));
      assert.deepEqual(b.subarray(36, 44), Buffer.alloc(8));
      assert.equal(conn.role, 'server');
      assert.equal(theLgr(r.engine).version, 1);
      assert.equal(theLgr(r.engine).link.state, 'ACTIVE');
    });

    it('a CONFIRM_LINK response without the 0x03 flag: the server declines RMBE_EC (0x03050000) in version 1 and falls back', async () => {
      const r = await rig('server', 'v1');
      await scriptClient(r.peer, r.peer.proposalV1(), 'no-eyec', WAIT);
      const d = await r.peer.expectClc('decline', WAIT);
      assert.equal(d.peerDiagnosis, R.RMBE_EC.code);
      assert.equal(d.version, 1);
      const o = await tcp(r);
      assert.equal(o.reason, R.RMBE_EC.code);
      assert.equal(o.peerDiagnosis, undefined);
      assert.equal(r.engine.lgrs.size, 0);
    });

    it('no CONFIRM_LINK response: TIMEOUT_CL (0x02010000) after LLC_WAIT plus CLC_WAIT_SHORT for a Decline', async () => {
      const r = await rig('server', 'v1');
      await scriptClient(r.peer, r.peer.proposalV1(), 'none', WAIT);
      const t0 = Date.now();
      const d = await r.peer.expectClc('decline', WAIT);
      assert.ok(Date.now() - t0 >= TIMERS.LLC_WAIT + TIMERS.CLC_WAIT_SHORT - 60, `Decline came after ${Date.now() - t0} ms`);
      assert.equal(d.peerDiagnosis, R.TIMEOUT_CL.code);
      const o = await tcp(r);
      assert.equal(o.reason, R.TIMEOUT_CL.code);
    });

    it('no CONFIRM_LINK response but a Decline within CLC_WAIT_SHORT: PEERDECL with the peer\'s code, nothing sent back', async () => {
      const r = await rig('server', 'v1');
      await scriptClient(r.peer, r.peer.proposalV1(), 'none', WAIT);
      await new Promise((res) => setTimeout(res, TIMERS.LLC_WAIT + 20));
      await r.peer.sendClc(r.peer.decline(R.TIMEOUT_CL.code, 1));
      const o = await tcp(r);
      assert.equal(o.reason, R.PEERDECL.code);
      assert.equal(o.peerDiagnosis, R.TIMEOUT_CL.code);
      await assert.rejects(r.peer.nextClc(100), /no CLC message/);
    });
  });

  describe('scripted peer: first contact, engine as client', () => {
    it('SMC-Rv1: the CONFIRM_LINK response is the request with flags 0x83 and the client\'s own MAC / GID / QPN and link UID', async () => {
      const { r, l, conn } = await v1Client();
      const conf = l.engineMsg;
      assert.equal(conf.type, 'confirm');
      assert.equal(conf.version, 1);
      const b = l.confirmLink.bytes;
      assert.equal(b.length, 44);
      assert.deepEqual([b[0], b[1], b[2], b[3]], [0x01, 0x2c, 0x00, 0x83]);
      assert.deepEqual(b.subarray(4, 10), conf.mac);
      assert.deepEqual(b.subarray(10, 26), conf.gid);
      assert.equal(b.readUIntBE(26, 3), conf.qpn);
      assert.equal(b[29], 1, 'link_num echoed');
      assert.notDeepEqual(b.subarray(30, 34), Buffer.alloc(4));
      assert.equal(conn.role, 'client');
      assert.equal(theLgr(r.engine).link.linkId, 1);
    });

    it('SMC-Rv2: the Confirm echoes the FCE (release, max_conns, max_links), the response has the v2 header (0x21, length_v2 44 LE)', async () => {
      const { l } = await v2Client();
      const conf = l.engineMsg;
      assert.equal(conf.version, 2);
      assert.equal(conf.fce?.release, 1);
      assert.equal(conf.fce?.maxConns, 255);
      assert.equal(conf.fce?.maxLinks, 1);
      const b = l.confirmLink.bytes;
      assert.equal(b.length, 44);
      assert.deepEqual([b[0], b[1], b[2], b[3]], [0x21, 0x2c, 0x00, 0x83]);
      assert.equal(b[29], 1);
    });

    it('a CONFIRM_LINK request without the 0x03 flag: the client declines RMBE_EC', async () => {
      const r = await rig('client', 'v1');
      await scriptServer(r.peer, { accept: () => r.peer.accept(1), request: 'no-eyec', timeoutMs: WAIT });
      const d = await r.peer.expectClc('decline', WAIT);
      assert.equal(d.peerDiagnosis, R.RMBE_EC.code);
      const o = await tcp(r);
      assert.equal(o.reason, R.RMBE_EC.code);
      assert.equal(r.engine.lgrs.size, 0);
    });

    it('no CONFIRM_LINK request: the client declines TIMEOUT_CL after LLC_WAIT_FIRST_CLIENT plus CLC_WAIT_SHORT', async () => {
      const r = await rig('client', 'v1');
      await scriptServer(r.peer, { accept: () => r.peer.accept(1), request: 'none', timeoutMs: WAIT });
      const t0 = Date.now();
      const d = await r.peer.expectClc('decline', WAIT);
      assert.ok(Date.now() - t0 >= TIMERS.LLC_WAIT_FIRST_CLIENT + TIMERS.CLC_WAIT_SHORT - 80, `Decline came after ${Date.now() - t0} ms`);
      assert.equal(d.peerDiagnosis, R.TIMEOUT_CL.code);
      assert.equal((await tcp(r)).reason, R.TIMEOUT_CL.code);
    });
  });

  describe('scripted peer: link-group reuse (engine as server, SMC-Rv1)', () => {
    it('a second connection: CONFIRM_RKEY for the new RMB before the Accept, an Accept without first contact, no CONFIRM_LINK', async () => {
      const { r, l, conn: first } = await v1Server();
      const second = await tcpPair();
      second.server.on('error', () => {});
      r.extra.push(second.server);
      r.peer.attach(second.client);
      const out2 = r.engine.accept(second.server, { peerSignalledSmc: true });
      await r.peer.sendClc(r.peer.proposalV1());
      // spec 6.5.4: CONFIRM_RKEY (type 0x06, flags 0) with num_rkeys 0 and this link's rkey / RMB address.
      const req = await r.peer.nextLlc(WAIT);
      assert.equal(req.llc.type, 'confirm_rkey');
      assert.deepEqual([req.bytes[0], req.bytes[1], req.bytes[2], req.bytes[3], req.bytes[4]], [0x06, 0x2c, 0x00, 0x00, 0x00]);
      await r.peer.sendRaw(withFlags(req.bytes, 0x80));
      const acc = await r.peer.expectClc('accept', WAIT);
      assert.equal(acc.firstContact, false);
      assert.equal(acc.qpn, l.engine.qpn, 'the same link');
      assert.equal(acc.rmbRkey, req.bytes.readUInt32BE(5), 'the rkey CONFIRM_RKEY announced');
      assert.equal(acc.rmbVaddr, req.bytes.readBigUInt64BE(9));
      assert.notEqual(acc.rmbeAlertToken, l.engine.token);
      const token2 = r.peer.token;
      r.peer.token = token2 + 1;
      await r.peer.sendClc(r.peer.confirm(acc));
      const o2 = await within(out2, WAIT, 'the second outcome');
      assert.equal(o2.mode, 'smcr');
      if (o2.mode !== 'smcr') return;
      o2.conn.on('error', () => {});
      assert.equal(o2.firstContact, false);
      assert.equal(theLgr(r.engine).conns.size, 2);
      // Both connections work on the one link: data for each token lands in its own connection.
      const e2 = ScriptedPeer.engineSide(acc);
      const got1 = collect(first);
      const got2 = collect(o2.conn);
      await r.peer.rdmaWrite(Buffer.from('one'), l.engine.rmbeAddr, l.engine.rkey);
      await r.peer.sendCdc(cdc({ seqno: 1, token: l.engine.token, prod: { wrap: 0, count: 3 } }));
      await r.peer.rdmaWrite(Buffer.from('two'), e2.rmbeAddr, e2.rkey);
      await r.peer.sendCdc(cdc({ seqno: 1, token: e2.token, prod: { wrap: 0, count: 3 } }));
      assert.equal((await got1.until(3)).toString(), 'one');
      assert.equal((await got2.until(3)).toString(), 'two');
    });
  });

  describe('scripted peer: LLC on an established link', () => {
    it('TEST_LINK: the echo is the request with RESP set (byte-exact, user data kept)', async () => {
      const { r } = await v1Server();
      const req: LlcMessage = { type: 'test_link', v2: false, flags: 0, resp: false, userData: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex') };
      const bytes = ScriptedPeer.llcBytes(req);
      await r.peer.sendRaw(bytes);
      const resp = await r.peer.nextLlc(WAIT);
      assert.equal(resp.bytes.toString('hex'), withFlags(bytes, 0x80).toString('hex'));
      assert.equal(theLgr(r.engine).counters.testLinkAnswered, 1);
    });

    it('SMC-Rv1 ADD_LINK: rejected as the Linux client does (44 bytes, flags 0xC0, reason 1 = no alternate path)', async () => {
      const { r, l } = await v1Client();
      const req: LlcMessage = {
        type: 'add_link', v2: false, flags: 0, resp: false, reject: false, rejectReason: 0,
        senderMac: r.peer.mac, senderGid: r.peer.gid, senderQpn: 0x00a1b2, linkNum: 2, qpMtu: 5, initialPsn: 0x123456, initCredits: 0, ext: undefined,
      };
      const bytes = ScriptedPeer.llcBytes(req);
      await r.peer.sendRaw(bytes);
      const resp = await r.peer.nextLlc(WAIT);
      const want = Buffer.from(bytes);
      want[2] = 0x01; // add_link_rej_rsn = SMC_LLC_REJ_RSN_NO_ALT_PATH
      want[3] = 0xc0; // RESP | ADD_LNK_REJ
      assert.equal(resp.bytes.toString('hex'), want.toString('hex'));
      assert.equal(l.v2, false);
      assert.equal(theLgr(r.engine).counters.addLinkRejected, 1);
    });

    it('SMC-Rv2 ADD_LINK (88 bytes with rkeys): the reject echoes the first 44 bytes with length_v2 44 and flags 0xC0', async () => {
      const { r, l } = await v2Client();
      const req: LlcMessage = {
        type: 'add_link', v2: true, flags: 0, resp: false, reject: false, rejectReason: 0,
        senderMac: r.peer.mac, senderGid: r.peer.gid, senderQpn: 0x00a1b3, linkNum: 2, qpMtu: 5, initialPsn: 0x654321, initCredits: 0,
        ext: { v2Direct: true, clientTargetGid: l.engine.gid, rkeys: [{ rkey: l.engine.rkey, rkeyNew: 0x1234, vaddrNew: 0x7f0000001000n }] },
      };
      const bytes = ScriptedPeer.llcBytes(req);
      assert.equal(bytes.length, 88);
      await r.peer.sendRaw(bytes);
      const resp = await r.peer.nextLlc(WAIT);
      const want = Buffer.from(bytes.subarray(0, 44));
      want.writeUInt16LE(44, 1);
      want[3] = 0xc0;
      assert.equal(resp.bytes.toString('hex'), want.toString('hex'));
    });

    it('SMC-Rv2 DELETE_RKEY: the echo has RESP, num_rkeys kept and the rkey list zeroed', async () => {
      const { r } = await v2Client();
      const req: LlcMessage = { type: 'delete_rkey', v2: true, flags: 0, resp: false, negative: false, numRkeys: 1, errMask: 0, rkeys: [r.peer.rmbMr.rkey] };
      const bytes = ScriptedPeer.llcBytes(req);
      await r.peer.sendRaw(bytes);
      const resp = await r.peer.nextLlc(WAIT);
      const want = withFlags(bytes, 0x80);
      want.fill(0, 8, 12);
      assert.equal(resp.bytes.toString('hex'), want.toString('hex'));
      assert.equal(resp.bytes[4], 1, 'num_rkeys kept');
    });

    it('CONFIRM_RKEY: the echo is the request with RESP set (byte-exact)', async () => {
      const { r } = await v1Server();
      const req: LlcMessage = {
        type: 'confirm_rkey', v2: false, flags: 0, resp: false, negative: false, retry: false,
        numRkeys: 0, rkey: 0x00c0ffee, vaddr: 0x00007f1234560000n, others: [],
      };
      const bytes = ScriptedPeer.llcBytes(req);
      await r.peer.sendRaw(bytes);
      const resp = await r.peer.nextLlc(WAIT);
      assert.equal(resp.bytes.toString('hex'), withFlags(bytes, 0x80).toString('hex'));
    });

    it('DELETE_LINK ALL: the link group ends and its connections abort with ERR_SMC_ABORTED (ECONNABORTED)', async () => {
      const { r, conn } = await v1Server();
      const err = once<Error & { code: string }>(conn, 'error');
      await r.peer.sendLlc({ type: 'delete_link', v2: false, flags: 0x40, resp: false, all: true, orderly: false, linkNum: 0, reason: 0x00020000 });
      assert.equal((await err).code, EngineErrorCode.ABORTED);
      await within((async () => { while (r.engine.lgrs.size > 0) await new Promise((res) => setTimeout(res, 5)); })(), WAIT, 'the link group to go');
    });

    it('messages without a handler are dropped without a reply (LLC type 0x0B, a CDC whose length byte is not 44)', async () => {
      const { r, l } = await v1Server();
      const bad = ScriptedPeer.cdcBytes(cdc({ seqno: 1, token: l.engine.token }));
      bad[1] = 0x2b; // CDC length byte must be 44
      await r.peer.sendRaw(bad);
      await r.peer.sendRaw(Buffer.from('0b2c0000' + '00'.repeat(40), 'hex')); // type 0x0B: no handler
      await assert.rejects(r.peer.next(100), /no RDMA SEND/);
      assert.equal(theLgr(r.engine).link.state, 'ACTIVE');
    });
  });

  describe('scripted peer: CDC and the data path (engine as server, SMC-Rv1)', () => {
    it('RDMA WRITEs + CDCs of data: the connection delivers exactly those bytes, and a consumer update lets the ring wrap', async () => {
      const { r, l, conn } = await v1Server();
      const got = collect(conn);
      const size = l.engine.rmbeSize;
      assert.equal(size, 64 * 1024);
      const a = Buffer.alloc(40 * 1024, 0x61);
      for (let i = 0; i < a.length; i++) a[i] = (i * 7) & 0xff;
      await r.peer.rdmaWrite(a.subarray(0, 8192), l.engine.rmbeAddr, l.engine.rkey);
      await r.peer.rdmaWrite(a.subarray(8192, 16384), l.engine.rmbeAddr + 8192n, l.engine.rkey);
      await r.peer.rdmaWrite(a.subarray(16384), l.engine.rmbeAddr + 16384n, l.engine.rkey);
      await r.peer.sendCdc(cdc({ seqno: 1, token: l.engine.token, prod: { wrap: 0, count: a.length } }));
      assert.deepEqual(await got.until(a.length), a);
      // The reader consumed 40 KiB, more than the update limit with half the ring or less free at the
      // sender: a consumer-cursor update (spec 7.4), carrying our token.
      const upd = await r.peer.nextCdc(WAIT);
      assert.equal(upd.cdc.token, r.peer.token);
      assert.equal(upd.cdc.seqno, 1);
      assert.deepEqual(upd.cdc.cons, { wrap: 0, count: a.length });
      // The next 40 KiB wrap: 24 KiB to the ring's end, 16 KiB at its start.
      const b = Buffer.alloc(40 * 1024);
      for (let i = 0; i < b.length; i++) b[i] = (i * 13 + 5) & 0xff;
      const tail = size - a.length;
      for (let off = 0; off < b.length; off += 8192) {
        const piece = b.subarray(off, Math.min(off + 8192, b.length));
        const at = (a.length + off) % size;
        if (at + piece.length <= size) {
          await r.peer.rdmaWrite(piece, l.engine.rmbeAddr + BigInt(at), l.engine.rkey);
        } else {
          const cut = size - at;
          await r.peer.rdmaWrite(piece.subarray(0, cut), l.engine.rmbeAddr + BigInt(at), l.engine.rkey);
          await r.peer.rdmaWrite(piece.subarray(cut), l.engine.rmbeAddr, l.engine.rkey);
        }
      }
      await r.peer.sendCdc(cdc({ seqno: 2, token: l.engine.token, prod: { wrap: 1, count: b.length - tail } }));
      assert.deepEqual(await got.until(a.length + b.length), Buffer.concat([a, b]));
    });

    it('the engine writes into our RMBE and announces it with a CDC carrying our token and seqno 1', async () => {
      const { r, conn } = await v1Server();
      conn.write(Buffer.from('pong from the engine'));
      const m = await r.peer.nextCdc(WAIT + 500);
      assert.equal(m.cdc.token, r.peer.token);
      assert.equal(m.cdc.seqno, 1);
      assert.deepEqual(m.cdc.prod, { wrap: 0, count: 20 });
      assert.equal(r.peer.rmb.subarray(0, 20).toString(), 'pong from the engine');
      assert.equal(m.bytes.length, 44);
    });

    it('a CDC with an older sequence number is ignored (spec 7.2)', async () => {
      const { r, l, conn } = await v1Server();
      const got = collect(conn);
      await r.peer.rdmaWrite(Buffer.from('hello world'), l.engine.rmbeAddr, l.engine.rkey);
      await r.peer.sendCdc(cdc({ seqno: 5, token: l.engine.token, prod: { wrap: 0, count: 11 } }));
      assert.equal((await got.until(11)).toString(), 'hello world');
      // seqno 4 is before 5: its producer cursor (17) must not count.
      await r.peer.rdmaWrite(Buffer.from('GARBAG'), l.engine.rmbeAddr + 11n, l.engine.rkey);
      await r.peer.sendCdc(cdc({ seqno: 4, token: l.engine.token, prod: { wrap: 0, count: 17 } }));
      await r.peer.rdmaWrite(Buffer.from('!!'), l.engine.rmbeAddr + 11n, l.engine.rkey);
      await r.peer.sendCdc(cdc({ seqno: 6, token: l.engine.token, prod: { wrap: 0, count: 13 } }));
      assert.equal((await got.until(13)).toString(), 'hello world!!');
      await new Promise((res) => setTimeout(res, 30));
      assert.equal(got.get().toString(), 'hello world!!');
    });

    it('a CDC for an unknown token is dropped and counted', async () => {
      const { r, l, conn } = await v1Server();
      const got = collect(conn);
      await r.peer.rdmaWrite(Buffer.from('xyz'), l.engine.rmbeAddr, l.engine.rkey);
      await r.peer.sendCdc(cdc({ seqno: 1, token: (l.engine.token + 1) >>> 0 || 1, prod: { wrap: 0, count: 3 } }));
      await r.peer.sendCdc(cdc({ seqno: 1, token: l.engine.token, prod: { wrap: 0, count: 2 } }));
      assert.equal((await got.until(2)).toString(), 'xy');
      assert.equal(theLgr(r.engine).counters.cdcUnknownToken, 1);
    });

    it('peer_done_writing: EOF for the reader, the connection stays writable', async () => {
      const { r, l, conn } = await v1Server();
      const got = collect(conn);
      const ended = once(conn, 'end');
      await r.peer.rdmaWrite(Buffer.from('last words'), l.engine.rmbeAddr, l.engine.rkey);
      await r.peer.sendCdc(cdc({ seqno: 1, token: l.engine.token, prod: { wrap: 0, count: 10 }, peerDoneWriting: true }));
      await ended;
      assert.equal(got.get().toString(), 'last words');
      assert.equal(conn.writable, true);
      conn.write(Buffer.from('still here'));
      const m = await r.peer.nextCdc(WAIT);
      assert.deepEqual(m.cdc.prod, { wrap: 0, count: 10 });
      assert.equal(r.peer.rmb.subarray(0, 10).toString(), 'still here');
      assert.equal(m.cdc.peerDoneWriting || m.cdc.peerConnClosed || m.cdc.peerConnAbort, false);
    });

    it('peer_conn_closed: EOF; end() answers with peer_done_writing (shutdown in APPCLOSEWAIT1), the autoDestroy with peer_conn_closed', async () => {
      const { r, l, conn } = await v1Server();
      conn.resume();
      const ended = once(conn, 'end');
      await r.peer.sendCdc(cdc({ seqno: 1, token: l.engine.token, peerConnClosed: true }));
      await ended;
      assert.equal(conn.close.state, 'APPCLOSEWAIT1');
      const closed = once(conn, 'close');
      conn.end();
      // smc_close_shutdown_write in APPCLOSEWAIT1: smc_close_wr (peer_done_writing) -> APPCLOSEWAIT2; the
      // stream's destroy() after both ends finished is close(): smc_close_final (peer_conn_closed).
      const flags: number[] = [];
      while (!flags.some((f) => (f & 0x40) !== 0)) flags.push((await r.peer.nextCdc(WAIT)).bytes[25]!);
      assert.deepEqual(flags, [0x80, 0xc0]);
      await closed;
      assert.equal(conn.close.state, 'CLOSED');
    });

    it('peer_conn_abort: the connection fails with ERR_SMC_RESET (ECONNRESET)', async () => {
      const { r, l, conn } = await v1Server();
      const err = once<Error & { code: string }>(conn, 'error');
      await r.peer.sendCdc(cdc({ seqno: 1, token: l.engine.token, peerConnAbort: true }));
      assert.equal((await err).code, EngineErrorCode.RESET);
    });

    it('our end(): a CDC with peer_done_writing after the data', async () => {
      const { r, conn } = await v1Server();
      conn.end(Buffer.from('bye'));
      const seen: CdcMessage[] = [];
      while (!seen.some((c) => c.peerDoneWriting || c.peerConnClosed)) seen.push((await r.peer.nextCdc(WAIT)).cdc);
      const last = seen[seen.length - 1]!;
      assert.deepEqual(last.prod, { wrap: 0, count: 3 });
      assert.equal(last.peerDoneWriting, true);
      assert.equal(r.peer.rmb.subarray(0, 3).toString(), 'bye');
    });
  });

  // =====================================================================================================

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

  describe('regressions: engine bugs found by these tests, now fixed', () => {
    it('a single small write goes out at once, not after TX_CORK_DELAY (connection.ts _write passes more = writableLength > 0, which counts the chunk being written)', async () => {
      const { r, conn } = await v1Server();
      // Linux corks only with MSG_MORE / TCP_CORK or while CDCs are in flight (autocork, spec 7.4);
      // with nothing in flight a write is sent right away.
      const t0 = Date.now();
      conn.write(Buffer.from('ping'));
      await r.peer.nextCdc(WAIT);
      const ms = Date.now() - t0;
      assert.ok(ms < 100, `the CDC came after ${ms} ms (TX_CORK_DELAY is 250 ms)`);
    });

    it('an SMC-Rv2 link uses the RoCEv2 GID entry (engine.ts #gidIndexOf picks the first entry with that GID: RoCEv1)', async () => {
      const { r, l } = await v2Client();
      // Linux (spec 5.1, smc_ib_determine_gid): SMC-Rv2 uses the RoCEv2 (UDP-encapsulated) entry of the
      // IPv4-mapped GID; a RoCEv1 GRH cannot reach a kernel peer.
      assert.equal(engineGidType(r, l.engine.qpn), 'RoCEv2');
    });

    it('a peer that goes away makes the CQ handler poll a destroyed CQ (wr.ts #drain), an uncaught exception', async () => {
      const { r, conn } = await v1Server();
      const err = once<Error & { code: string }>(conn, 'error', 3000);
      const caught = await catchingUncaught(async () => {
        r.peer.qp.close(); // the peer's QP is gone: the engine's next send exhausts its retries
        conn.write(Buffer.from('into the void'));
        await err.catch(() => {});
        await new Promise((res) => setTimeout(res, 100));
      });
      assert.deepEqual(caught.map((e) => String(e)), []);
      assert.equal((await err).code, EngineErrorCode.ABORTED);
    });

    it('SMC-Rv1 DELETE_RKEY of a known rkey: Linux echoes the request with RESP and the rkeys unchanged (spec 6.1)', async () => {
      const { r } = await v1Server();
      // smc_llc_rmt_delete_rkey (v1 path): deletes each rtoken, sets NEG + err_mask only for unknown
      // rkeys, adds RESP, sends the request back; only the v2 path zeroes the rkey list.
      const req: LlcMessage = { type: 'delete_rkey', v2: false, flags: 0, resp: false, negative: false, numRkeys: 1, errMask: 0, rkeys: [r.peer.rmbMr.rkey] };
      const bytes = ScriptedPeer.llcBytes(req);
      await r.peer.sendRaw(bytes);
      const resp = await r.peer.nextLlc(WAIT);
      assert.equal(resp.bytes.toString('hex'), withFlags(bytes, 0x80).toString('hex'));
    });

    it('a server answers DELETE_LINK ALL with its own DELETE_LINK ALL|ORDERLY (0x60) and the same reason', async () => {
      const { r } = await v1Server();
      // smc_llc_process_srv_delete_link: smc_llc_send_link_delete_all(lgr, true, reason); rxe-interop
      // saw exactly this (0x60) from a kernel server after the client's DELETE_LINK ALL (0x40).
      await r.peer.sendLlc({ type: 'delete_link', v2: false, flags: 0x40, resp: false, all: true, orderly: false, linkNum: 0, reason: 0x00020000 });
      const m = await r.peer.nextLlc(WAIT);
      assert.equal(m.bytes.toString('hex'), '042c0060' + '00' + '00020000' + '00'.repeat(35));
    });
  });
});
