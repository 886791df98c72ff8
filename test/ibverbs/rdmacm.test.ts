/**
 * iWARP connection setup through librdmacm (bindings/ibverbs/src/rdmacm.ts).
 *
 * On the C test device presenting iWARP devices (FAKE_VERBS_IWARP=1) with the C test CM
 * (fake_rdmacm.c, built from the real rdma_cma.h): QPs created and brought to INIT through the
 * ibverbs binding cannot reach RTR/RTS with modify_qp, and reach RTS only when the CM connects
 * them by number (conn_param.qp_num); the binding's normal data path then runs over them.
 * Then the real librdmacm on this machine, which has no RDMA device.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import koffi from 'koffi';
import { IbverbsProvider, type IbvContext, type IbvCq, type IbvMr, type IbvQp, type NativeMemoryBlock } from '@smc-r/ibverbs';
import {
  Access, QpState, SendFlag, VerbsError, VerbsErrorCode, WcOpcode, WcStatus, WrOpcode,
  newRecvWr, newSendWr, newWorkCompletion, type WorkCompletion,
} from '@smc-r/verbs';
import { CmErrno, RdmaCm, RdmaCmError, type CmConnection, type CmRequest } from '@smc-r/ibverbs';
import { testRdmacmMissing } from '@smc-r/ibverbs';
import { testDeviceOrSkip } from './support/device.js';

const REAL_LIB = ['/usr/lib/x86_64-linux-gnu/librdmacm.so.1', '/lib/x86_64-linux-gnu/librdmacm.so.1'];

function cmError(e: unknown, verb: string, errno: number, event?: string): boolean {
  assert.ok(e instanceof RdmaCmError, `expected an RdmaCmError, got ${String(e)}`);
  assert.ok(e instanceof VerbsError);
  assert.equal(e.cmVerb, verb, e.message);
  assert.equal(e.errno, errno, e.message);
  if (event !== undefined) assert.equal(e.event, event, e.message);
  return true;
}

interface Side {
  ctx: IbvContext;
  cq: IbvCq;
  qp: IbvQp;
  block: NativeMemoryBlock;
  mr: IbvMr;
}

describe('librdmacm binding: iWARP connection setup (C test CM, iWARP test devices)', function () {
  this.timeout(20_000);
  let libraryPath = '';
  let fakeLiveIds: () => number = () => 0;
  let fakeLiveChannels: () => number = () => 0;
  const savedIwarp = process.env.FAKE_VERBS_IWARP;
  const savedDevices = process.env.FAKE_VERBS_DEVICES;
  const cms: RdmaCm[] = [];
  const contexts: IbvContext[] = [];

  before(function () {
    libraryPath = testDeviceOrSkip(this);
    const why = testRdmacmMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
    const h = koffi.load(libraryPath);
    try {
      fakeLiveIds = h.func('int fake_rdmacm_live_ids(void)') as () => number;
      fakeLiveChannels = h.func('int fake_rdmacm_live_channels(void)') as () => number;
    } catch {
      process.stdout.write('      SKIP: the shared test device was built without the test CM\n');
      this.skip();
    }
    process.env.FAKE_VERBS_IWARP = '1';
  });

  after(() => {
    if (savedIwarp === undefined) delete process.env.FAKE_VERBS_IWARP;
    else process.env.FAKE_VERBS_IWARP = savedIwarp;
  });

  afterEach(async () => {
    if (savedDevices === undefined) delete process.env.FAKE_VERBS_DEVICES;
    else process.env.FAKE_VERBS_DEVICES = savedDevices;
    for (const cm of cms.splice(0)) cm.close();
    for (const c of contexts.splice(0)) await c.close();
    assert.equal(fakeLiveIds(), 0, 'CM ids leaked');
    assert.equal(fakeLiveChannels(), 0, 'event channels leaked');
  });

  function openCm(): RdmaCm {
    const cm = RdmaCm.open({ libraryPath });
    cms.push(cm);
    return cm;
  }

  /** A QP in INIT with a 64 KiB registered block on `device`, the way SMC-R prepares a link. */
  async function side(device: string): Promise<Side> {
    const ctx = await new IbverbsProvider({ libraryPath }).open(device);
    contexts.push(ctx);
    const pd = ctx.allocPd();
    const cq = ctx.createCq(64);
    const qp = pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap: { maxSendWr: 16, maxRecvWr: 16, maxSendSge: 2, maxRecvSge: 1, maxInlineData: 0 } });
    qp.modify({ state: QpState.INIT, pkeyIndex: 0, portNum: 1, accessFlags: Access.LOCAL_WRITE | Access.REMOTE_WRITE });
    const block = ctx.allocMemory(65536);
    const mr = pd.registerMr(block, 0, 65536, Access.LOCAL_WRITE | Access.REMOTE_WRITE);
    return { ctx, cq, qp, block, mr };
  }

  /** Server on fake0 (127.0.0.1) listening, client on fake1 (127.0.0.2) connecting. */
  async function connectPair(opts: { onRequest?: (r: CmRequest, accept: () => Promise<CmConnection>) => void; timeoutMs?: number } = {}) {
    const s = await side('fake0');
    const c = await side('fake1');
    const cmS = openCm();
    const cmC = openCm();
    const listener = cmS.listen('127.0.0.1', 0);
    const clientData = randomBytes(32);
    const serverData = randomBytes(16);
    const requests: CmRequest[] = [];
    const accepted = new Promise<CmConnection>((resolve, reject) => {
      listener.onRequest((r) => {
        requests.push(r);
        const accept = (): Promise<CmConnection> => r.accept(s.qp.qpNum, serverData);
        if (opts.onRequest) opts.onRequest(r, accept);
        else accept().then(resolve, reject);
      });
    });
    const conn = cmC.connect({ address: '127.0.0.1', port: listener.port, qpNum: c.qp.qpNum, privateData: clientData, sourceAddress: '127.0.0.2', device: 'fake1', ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
    return { s, c, cmS, cmC, listener, clientData, serverData, requests, accepted, conn };
  }

  function pollAll(cq: IbvCq, n: number): WorkCompletion[] {
    const out = Array.from({ length: 8 }, newWorkCompletion);
    const got = cq.poll(out, out.length);
    assert.equal(got, n, `expected ${n} completions, got ${got}: ${JSON.stringify(out.slice(0, got))}`);
    return out.slice(0, got);
  }

  it('the test devices are iWARP like erdma, and modify_qp cannot bring a QP to RTR (EINVAL)', async () => {
    const p = new IbverbsProvider({ libraryPath });
    assert.deepEqual((await p.listDevices()).map((d) => d.transport), ['iWARP', 'iWARP']);
    const s = await side('fake0');
    const attr = s.ctx.queryDevice();
    assert.equal(attr.vendorId, 0x1ded);
    assert.equal(attr.vendorPartId, 0x107f);
    assert.equal(attr.maxRecvSge, 1);
    const gids = s.ctx.gidTable(1);
    assert.equal(gids.length, 1);
    assert.equal(gids[0]!.gid.toString('hex'), '02000000000100000000000000000000');
    assert.throws(
      () => s.qp.modify({ state: QpState.RTR, pathMtu: 3, destQpNum: 0x12, rqPsn: 0, maxDestRdAtomic: 1, minRnrTimer: 5, ah: { dgid: gids[0]!.gid, sgidIndex: 0, hopLimit: 1, portNum: 1 } }),
      (e) => e instanceof VerbsError && e.verb === 'modify_qp' && e.errno === CmErrno.EINVAL,
    );
    assert.equal(s.qp.state, QpState.INIT);
    const cm = openCm();
    assert.deepEqual(cm.deviceForAddress('127.0.0.1'), { name: 'fake0', transport: 'iWARP' });
    assert.deepEqual(cm.deviceForAddress('127.0.0.2'), { name: 'fake1', transport: 'iWARP' });
    assert.throws(() => cm.deviceForAddress('10.9.9.9'), (e) => cmError(e, 'rdma_bind_addr', CmErrno.ENODEV));
    assert.equal(cm.liveIds, 0);
  });

  it('listen, connect with qp_num + 32 bytes of private data, accept: both QPs reach RTS through the CM; RDMA WRITE and SEND then run through the binding', async () => {
    const t = await connectPair();
    const [conn, acc] = await Promise.all([t.conn, t.accepted]);
    // the listener saw exactly the client's 32 bytes, from the client's address, on fake0
    assert.equal(t.requests.length, 1);
    const req = t.requests[0]!;
    assert.deepEqual(req.privateData, t.clientData);
    assert.equal(req.peer.address, '127.0.0.2');
    assert.equal(req.local.port, t.listener.port);
    assert.equal(req.device?.name, 'fake0');
    // the client got the accept's private data; each side's CM id sits on its QP's device
    assert.deepEqual(conn.privateData, t.serverData);
    assert.deepEqual(conn.device, { name: 'fake1', transport: 'iWARP' });
    assert.deepEqual(acc.device, { name: 'fake0', transport: 'iWARP' });
    assert.deepEqual(conn.peer, { address: '127.0.0.1', port: t.listener.port });
    assert.equal(conn.state, 'established');
    // the CM, not modify_qp, brought both QPs to RTS, pointed at each other
    const qs = t.s.qp.query();
    const qc = t.c.qp.query();
    assert.equal(qs.state, QpState.RTS);
    assert.equal(qc.state, QpState.RTS);
    assert.equal(qs.destQpNum, t.c.qp.qpNum);
    assert.equal(qc.destQpNum, t.s.qp.qpNum);
    // listener + one id per side, on both sides of the fake and in the binding's books
    assert.equal(fakeLiveIds(), 3);
    assert.equal(t.cmS.liveIds + t.cmC.liveIds, 3);

    // data path: RDMA WRITE 4 KiB into the server's block, then a 44-byte SEND
    const payload = randomBytes(4096);
    payload.copy(t.c.block.buffer, 0);
    const msg = randomBytes(44);
    msg.copy(t.c.block.buffer, 8192);
    const rwr = newRecvWr(1);
    rwr.wrId = 7;
    rwr.sgList[0] = { mr: t.s.mr, offset: 16384, length: 64 };
    rwr.numSge = 1;
    t.s.qp.postRecv(rwr);
    const wr = newSendWr(1);
    wr.wrId = 1;
    wr.opcode = WrOpcode.RDMA_WRITE;
    wr.flags = SendFlag.SIGNALED;
    wr.sgList[0] = { mr: t.c.mr, offset: 0, length: 4096 };
    wr.numSge = 1;
    wr.raddrHi = t.s.mr.addrHi;
    wr.raddrLo = t.s.mr.addrLo + 1024;
    wr.rkey = t.s.mr.rkey;
    t.c.qp.postSend(wr);
    wr.wrId = 2;
    wr.opcode = WrOpcode.SEND;
    wr.sgList[0] = { mr: t.c.mr, offset: 8192, length: 44 };
    t.c.qp.postSend(wr);
    const sent = pollAll(t.c.cq, 2);
    assert.deepEqual(sent.map((w) => [w.wrId, w.status, w.opcode]), [[1, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE], [2, WcStatus.SUCCESS, WcOpcode.SEND]]);
    const got = pollAll(t.s.cq, 1);
    assert.deepEqual([got[0]!.wrId, got[0]!.status, got[0]!.byteLen, got[0]!.qpNum], [7, WcStatus.SUCCESS, 44, t.s.qp.qpNum]);
    assert.deepEqual(t.s.block.buffer.subarray(1024, 1024 + 4096), payload);
    assert.deepEqual(t.s.block.buffer.subarray(16384, 16384 + 44), msg);
  });

  it('a SEND with no receive posted ends the connection at once (iWARP has no RNR retry)', async () => {
    const t = await connectPair();
    await Promise.all([t.conn, t.accepted]);
    const wr = newSendWr(1);
    wr.wrId = 9;
    wr.opcode = WrOpcode.SEND;
    wr.flags = SendFlag.SIGNALED;
    wr.sgList[0] = { mr: t.c.mr, offset: 0, length: 44 };
    wr.numSge = 1;
    t.c.qp.postSend(wr);
    const [wc] = pollAll(t.c.cq, 1);
    assert.equal(wc!.status, WcStatus.RNR_RETRY_EXC_ERR);
    assert.equal(t.c.qp.state, QpState.ERR);
  });

  it('reject: the connect fails with rdma_connect ECONNREFUSED (REJECTED) and the request id is freed', async () => {
    const t = await connectPair({ onRequest: (r) => r.reject() });
    await assert.rejects(t.conn, (e) => cmError(e, 'rdma_connect', CmErrno.ECONNREFUSED, 'REJECTED'));
    assert.equal(t.requests.length, 1);
    assert.equal(t.c.qp.state, QpState.INIT);
    assert.equal(fakeLiveIds(), 1); // the listener only
    // no callback: requests are refused the same way
    t.listener.onRequest(null);
    await assert.rejects(
      t.cmC.connect({ address: '127.0.0.1', port: t.listener.port, qpNum: t.c.qp.qpNum, privateData: t.clientData, sourceAddress: '127.0.0.2' }),
      (e) => cmError(e, 'rdma_connect', CmErrno.ECONNREFUSED, 'REJECTED'),
    );
  });

  it('a port nobody listens on is REJECTED/ECONNREFUSED (iWARP: a TCP RST); an address no device owns is ADDR_ERROR/EHOSTUNREACH', async () => {
    const c = await side('fake1');
    const cm = openCm();
    const base = { qpNum: c.qp.qpNum, privateData: Buffer.alloc(32), sourceAddress: '127.0.0.2' };
    await assert.rejects(cm.connect({ ...base, address: '127.0.0.1', port: 4791 }), (e) => cmError(e, 'rdma_connect', CmErrno.ECONNREFUSED, 'REJECTED'));
    await assert.rejects(cm.connect({ ...base, address: '192.0.2.1', port: 4791 }), (e) => cmError(e, 'rdma_resolve_addr', CmErrno.EHOSTUNREACH, 'ADDR_ERROR'));
    assert.equal(cm.liveIds, 0);
  });

  it('bad input is refused before or by the CM: a QP not in INIT or on another device (EINVAL, EXDEV), too much private data, a bad address', async () => {
    const s = await side('fake0');
    const c = await side('fake1');
    const cmS = openCm();
    const cmC = openCm();
    const l = cmS.listen('0.0.0.0', 0);
    l.onRequest((r) => void r.accept(s.qp.qpNum).catch(() => undefined));
    const base = { address: '127.0.0.1', port: l.port, privateData: Buffer.alloc(32), sourceAddress: '127.0.0.2' };
    // the QP is on fake0 but the CM resolved fake1 for 127.0.0.2: iw_get_qp finds nothing
    await assert.rejects(cmC.connect({ ...base, qpNum: s.qp.qpNum }), (e) => cmError(e, 'rdma_connect', CmErrno.EINVAL) && /fake1/.test((e as Error).message));
    await assert.rejects(cmC.connect({ ...base, qpNum: c.qp.qpNum, device: 'fake0' }), (e) => cmError(e, 'rdma_resolve_addr', CmErrno.EXDEV));
    c.qp.modify({ state: QpState.RESET });
    await assert.rejects(cmC.connect({ ...base, qpNum: c.qp.qpNum }), (e) => cmError(e, 'rdma_connect', CmErrno.EINVAL));
    await assert.rejects(cmC.connect({ ...base, qpNum: c.qp.qpNum, privateData: Buffer.alloc(57) }), (e) => cmError(e, 'rdma_connect', CmErrno.EINVAL));
    await assert.rejects(cmC.connect({ ...base, qpNum: 1 << 24 }), (e) => cmError(e, 'rdma_connect', CmErrno.EINVAL));
    await assert.rejects(cmC.connect({ ...base, qpNum: c.qp.qpNum, address: 'host.example' }), (e) => cmError(e, 'rdma_resolve_addr', CmErrno.EAFNOSUPPORT));
    assert.throws(() => cmS.listen('127.0.0.1', l.port), (e) => cmError(e, 'rdma_bind_addr', CmErrno.EADDRINUSE));
    assert.equal(cmC.liveIds, 0);
    assert.equal(fakeLiveIds(), 1);
  });

  it('a listener that never answers: the connect times out (ETIMEDOUT), and accepting afterwards is ECONNRESET', async () => {
    let pending: (() => Promise<CmConnection>) | undefined;
    const t = await connectPair({ onRequest: (_r, accept) => { pending = accept; }, timeoutMs: 100 });
    await assert.rejects(t.conn, (e) => cmError(e, 'rdma_connect', CmErrno.ETIMEDOUT));
    assert.ok(pending);
    await assert.rejects(pending(), (e) => cmError(e, 'rdma_accept', CmErrno.ECONNRESET));
    assert.equal(t.s.qp.state, QpState.INIT);
    assert.equal(t.cmC.liveIds, 0);
  });

  it('disconnect: both sides are told, both QPs go to ERR and flush, and every id is freed', async () => {
    const t = await connectPair();
    const [conn, acc] = await Promise.all([t.conn, t.accepted]);
    const rwr = newRecvWr(1);
    rwr.wrId = 3;
    rwr.sgList[0] = { mr: t.s.mr, offset: 0, length: 64 };
    rwr.numSge = 1;
    t.s.qp.postRecv(rwr);
    const downC = new Promise<void>((r) => conn.onDisconnected(r));
    const downS = new Promise<void>((r) => acc.onDisconnected(r));
    conn.disconnect();
    await Promise.all([downC, downS]);
    assert.equal(conn.state, 'disconnected');
    assert.equal(acc.state, 'disconnected');
    assert.equal(t.s.qp.state, QpState.ERR);
    assert.equal(t.c.qp.state, QpState.ERR);
    const [wc] = pollAll(t.s.cq, 1);
    assert.deepEqual([wc!.wrId, wc!.status], [3, WcStatus.WR_FLUSH_ERR]);
    assert.equal(t.cmC.liveIds, 0);
    assert.equal(t.cmS.liveIds, 1);
    conn.disconnect(); // idempotent
    t.listener.close();
    assert.equal(fakeLiveIds(), 0);
  });

  it('close(): connections end (onDisconnected), pending connects fail with ECANCELED, and nothing leaks', async () => {
    const t = await connectPair();
    const [conn, acc] = await Promise.all([t.conn, t.accepted]);
    const down = new Promise<void>((r) => acc.onDisconnected(r));
    const hanging = t.cmC.connect({ address: '127.0.0.1', port: 1, qpNum: t.c.qp.qpNum, privateData: Buffer.alloc(0), sourceAddress: '127.0.0.2' });
    t.cmC.close();
    await assert.rejects(hanging, (e) => cmError(e, 'rdma_connect', CmErrno.ECANCELED));
    assert.equal(conn.state, 'disconnected');
    await down; // the peer's stream closed too
    assert.equal(t.s.qp.state, QpState.ERR);
    t.cmS.close();
    t.cmS.close(); // idempotent
    assert.throws(() => t.cmS.listen('127.0.0.1', 0), (e) => cmError(e, 'rdma_create_id', CmErrno.EINVAL));
    assert.equal(fakeLiveIds(), 0);
    assert.equal(fakeLiveChannels(), 0);
  });

  it('no device: RdmaCm.open() is ERR_SMC_VERBS_NO_DEVICE (ENODEV), as librdmacm says without devices', () => {
    process.env.FAKE_VERBS_DEVICES = '0';
    assert.throws(() => RdmaCm.open({ libraryPath }), (e) => cmError(e, 'rdma_create_event_channel', CmErrno.ENODEV) && (e as RdmaCmError).code === VerbsErrorCode.NO_DEVICE);
  });
});

describe('librdmacm binding: the real librdmacm on this machine', function () {
  before(function () {
    if (!REAL_LIB.some((p) => existsSync(p))) {
      process.stdout.write('      SKIP: librdmacm.so.1 not installed (Debian package librdmacm1)\n');
      this.skip();
    }
  });

  it('without an RDMA device RdmaCm.open() throws ERR_SMC_VERBS_NO_DEVICE (ENODEV), without crashing', async function () {
    if ((await new IbverbsProvider().listDevices()).length > 0) {
      process.stdout.write('      SKIP: this machine has RDMA devices\n');
      this.skip();
    }
    assert.throws(() => RdmaCm.open(), (e) => cmError(e, 'rdma_create_event_channel', CmErrno.ENODEV) && (e as RdmaCmError).code === VerbsErrorCode.NO_DEVICE);
  });

  it('a library that cannot be loaded is ERR_SMC_VERBS_UNAVAILABLE', () => {
    assert.throws(() => RdmaCm.open({ libraryPath: 'librdmacm-does-not-exist.so.1' }), (e) => e instanceof RdmaCmError && e.code === VerbsErrorCode.UNAVAILABLE);
  });
});
