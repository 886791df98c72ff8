/**
 * Errors and the no-device path: the real libibverbs on this machine (no RDMA device), a missing
 * library, the test device with no device and its errno conventions, and handles that must not
 * mix (compile-time, checked by `tsc -p tsconfig.tests.json`).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import koffi from 'koffi';
import { SmcEngine } from '@smc-r/core';
import { IbverbsProvider, type CqPtr, type QpPtr } from '@smc-r/ibverbs';
import { Errno, VerbsError, VerbsErrorCode, WrOpcode, newSendWr } from '@smc-r/verbs';
import { testDeviceOrSkip } from './support/device.js';

const REAL_LIB = ['/usr/lib/x86_64-linux-gnu/libibverbs.so.1', '/lib/x86_64-linux-gnu/libibverbs.so.1'];

function isVerbsError(e: unknown, code: string, errno?: number): boolean {
  assert.ok(e instanceof VerbsError, `expected a VerbsError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (errno !== undefined) assert.equal(e.errno, errno, e.message);
  return true;
}

describe('ibverbs: no device, missing library, errno conventions', function () {
  this.timeout(20_000);

  describe('the real libibverbs on a machine without RDMA devices', () => {
    before(function () {
      if (!REAL_LIB.some((p) => existsSync(p))) {
        process.stdout.write('      SKIP: libibverbs.so.1 not installed (Debian package libibverbs1)\n');
        this.skip();
      }
    });

    it('listDevices() is empty and open() is ERR_SMC_VERBS_NO_DEVICE (ibv_free_device_list never gets NULL)', async function () {
      const p = new IbverbsProvider();
      const devs = await p.listDevices();
      if (devs.length > 0) {
        process.stdout.write(`      SKIP: this machine has RDMA devices (${devs.map((d) => d.name).join(', ')})\n`);
        this.skip();
      }
      // rdma-core returns NULL with ENOSYS without /sys/class/infiniband_verbs; a NULL list passed
      // to ibv_free_device_list would have crashed this process already.
      await assert.rejects(p.open('mlx5_0'), (e) => isVerbsError(e, VerbsErrorCode.NO_DEVICE, Errno.ENODEV));
    });

    it('no device, end to end: the engine gets no context and the connection falls back with 0x03030000, as the kernel does', async function () {
      const devs = await new IbverbsProvider().listDevices();
      if (devs.length > 0) this.skip();
      // What an application does with an empty device list: an engine without a device. The peer is
      // a host with no device either; both record NOSMCDEV (client) / the client's Decline (server).
      const client = new SmcEngine({ context: null });
      const server = new SmcEngine({ context: null });
      const srv = createServer();
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
      try {
        const accepted = once(srv, 'connection').then(([s]) => server.accept(s as Socket, { peerSignalledSmc: true }));
        const sock = connect((srv.address() as { port: number }).port, '127.0.0.1');
        await once(sock, 'connect');
        const c = await client.connect(sock, { peerSignalledSmc: true });
        const s = await accepted;
        assert.equal(c.mode === 'tcp' && c.reason, 0x03030000);
        assert.equal(s.mode === 'tcp' && s.peerDiagnosis, 0x03030000);
        c.socket.destroy();
        s.socket.destroy();
      } finally {
        srv.close();
        await client.close();
        await server.close();
      }
    });
  });

  it('a library that cannot be loaded is ERR_SMC_VERBS_UNAVAILABLE naming the Debian package', async () => {
    const p = new IbverbsProvider({ libraryPath: 'libibverbs-does-not-exist.so.1' });
    assert.deepEqual(await p.listDevices(), []);
    await assert.rejects(p.open('x'), (e) => isVerbsError(e, VerbsErrorCode.UNAVAILABLE));
    try {
      void new IbverbsProvider().lib;
    } catch (e) {
      // Only reached where libibverbs1 is missing: the message must say what to install.
      assert.match((e as Error).message, /libibverbs1/);
    }
  });

  describe('the C test device', () => {
    let libraryPath = '';
    const saved = process.env.FAKE_VERBS_DEVICES;
    before(function () {
      libraryPath = testDeviceOrSkip(this);
    });
    afterEach(() => {
      if (saved === undefined) delete process.env.FAKE_VERBS_DEVICES;
      else process.env.FAKE_VERBS_DEVICES = saved;
    });

    it('no device (NULL list, ENOSYS): empty list, NO_DEVICE naming the errno, and no ibv_free_device_list(NULL)', async () => {
      process.env.FAKE_VERBS_DEVICES = '0';
      const p = new IbverbsProvider({ libraryPath });
      assert.deepEqual(await p.listDevices(), []);
      await assert.rejects(p.open('fake0'), (e) => isVerbsError(e, VerbsErrorCode.NO_DEVICE, Errno.ENODEV) && /errno 38/.test((e as Error).message));
      assert.equal(p.lastListErrno, 38);
      const nullFrees = koffi.load(libraryPath).func('int fake_verbs_null_frees(void)') as () => number;
      assert.equal(nullFrees(), 0);
    });

    it('lists the devices with their transport, and names the ones it has when asked for another', async () => {
      const p = new IbverbsProvider({ libraryPath });
      assert.deepEqual(await p.listDevices(), [
        { name: 'fake0', provider: 'ibverbs', transport: 'RoCE' },
        { name: 'fake1', provider: 'ibverbs', transport: 'RoCE' },
      ]);
      await assert.rejects(p.open('mlx5_0'), (e) => isVerbsError(e, VerbsErrorCode.NO_DEVICE) && /fake0, fake1/.test((e as Error).message));
    });

    it('a negative errno from a provider op (erdma style) and a positive one from a control verb both become VerbsError errnos', async () => {
      const p = new IbverbsProvider({ libraryPath });
      const ctx = await p.open('fake0');
      try {
        const pd = ctx.allocPd();
        const cq = ctx.createCq(16);
        const qp = pd.createQp({ type: 'RC', sendCq: cq, recvCq: cq, cap: { maxSendWr: 4, maxRecvWr: 4, maxSendSge: 1, maxRecvSge: 1, maxInlineData: 0 } });
        // The test device's post_send returns -EINVAL for a QP in RESET.
        const wr = newSendWr(1);
        wr.opcode = WrOpcode.SEND;
        assert.throws(() => qp.postSend(wr), (e) => isVerbsError(e, VerbsErrorCode.VERB, Errno.EINVAL) && (e as VerbsError).verb === 'post_send');
        // ibv_modify_qp returns a positive EINVAL for port 2 (the device has one port).
        assert.throws(() => qp.modify({ state: 1, pkeyIndex: 0, portNum: 2, accessFlags: 0 }), (e) => isVerbsError(e, VerbsErrorCode.VERB, Errno.EINVAL) && (e as VerbsError).verb === 'modify_qp');
        // ibv_reg_mr returns NULL + errno: REMOTE_WRITE without LOCAL_WRITE is EINVAL (IBA).
        const block = ctx.allocMemory(4096);
        assert.throws(() => pd.registerMr(block, 0, 4096, 2), (e) => isVerbsError(e, VerbsErrorCode.VERB, Errno.EINVAL) && (e as VerbsError).verb === 'reg_mr');
        // A block of memory is page-aligned native memory at the address it reports.
        assert.equal(block.addrLo % 4096, 0);
        assert.equal(koffi.address(block.buffer), (BigInt(block.addrHi) << 32n) | BigInt(block.addrLo));
        qp.close();
        block.free();
      } finally {
        await ctx.close();
      }
    });
  });

  it('handles are branded: a QP pointer is not a CQ pointer (compile-time)', () => {
    const asQp = (x: bigint): QpPtr => x as QpPtr;
    const takesCq = (c: CqPtr): bigint => c;
    // @ts-expect-error an ibv_qp* where an ibv_cq* is expected must not compile
    assert.equal(takesCq(asQp(1n)), 1n);
  });
});
