import assert from 'node:assert/strict';
import { formatGid } from '@smc-r/wire';
import { Errno, VerbsError, VerbsErrorCode } from '../errors.js';
import { Access, WcStatus, WrOpcode } from '../types.js';
import { addrAdd, ALL_ACCESS, assertVerbsError, connectPair, makeSide, pattern, sendWr, sge, waitCompletions } from '../testing/conformance.js';
import { MemProvider } from './provider.js';
import { addrOffset } from './memory.js';

describe('mem: provider, devices, GID tables', () => {
  it('lists mem0..mem(N-1) (default 2) and opens them; an unknown name is NO_DEVICE', async () => {
    assert.deepEqual((await new MemProvider().listDevices()).map((d) => d.name), ['mem0', 'mem1']);
    const p = new MemProvider({ devices: 3 });
    const list = await p.listDevices();
    assert.deepEqual(list, [0, 1, 2].map((i) => ({ name: `mem${i}`, provider: 'mem', transport: 'RoCE' })));
    const ctx = await p.open('mem2');
    assert.equal(ctx.device.name, 'mem2');
    assert.equal(ctx.provider, 'mem');
    await assert.rejects(p.open('mlx5_0'), (e: unknown) => e instanceof VerbsError && e.code === VerbsErrorCode.NO_DEVICE && e.errno === Errno.ENODEV && e.verb === 'open_device');
    assert.throws(() => new MemProvider({ devices: 0 }), RangeError);
  });

  it('lays out the GID table as Linux does for one IPv4 address: link-local v1/v2, then ::ffff:198.18.0.N v1/v2', async () => {
    const p = new MemProvider();
    for (const [i, name] of ['mem0', 'mem1'].entries()) {
      const ctx = await p.open(name);
      const t = ctx.gidTable(1);
      assert.deepEqual(t.map((e) => [e.index, formatGid(e.gid), e.type, e.ipv4]), [
        [0, `fe80::ff:fe00:${i + 1}`, 'RoCEv1', undefined],
        [1, `fe80::ff:fe00:${i + 1}`, 'RoCEv2', undefined],
        [2, `::ffff:198.18.0.${i + 1}`, 'RoCEv1', `198.18.0.${i + 1}`],
        [3, `::ffff:198.18.0.${i + 1}`, 'RoCEv2', `198.18.0.${i + 1}`],
      ]);
      assert.equal(ctx.queryPort(1).gidTblLen, 4);
      assert.equal(ctx.queryDevice().nodeGuid, 0xfffe000000n + BigInt(i + 1));
      // Entries are copies: mutating one does not change the table.
      t[3]!.gid.fill(0);
      assert.equal(formatGid(ctx.queryGid(1, 3).gid), `::ffff:198.18.0.${i + 1}`);
    }
  });

  it('port 1 is ACTIVE, Ethernet, MTU 4096; other ports and GID indexes are EINVAL; a closed context is ENODEV', async () => {
    const ctx = await new MemProvider().open('mem0');
    assert.deepEqual(ctx.queryPort(1), { portNum: 1, state: 'ACTIVE', activeMtu: 5, maxMtu: 5, gidTblLen: 4, linkLayer: 'Ethernet' });
    assertVerbsError(() => ctx.queryPort(0), 'query_port', Errno.EINVAL);
    assertVerbsError(() => ctx.queryGid(1, 4), 'query_gid', Errno.EINVAL);
    assertVerbsError(() => ctx.queryGid(2, 0), 'query_gid', Errno.EINVAL);
    await ctx.close();
    assertVerbsError(() => ctx.queryDevice(), 'query_device', Errno.ENODEV);
    assertVerbsError(() => ctx.allocMemory(10), 'alloc_memory', Errno.ENODEV);
  });
});

describe('mem: memory blocks and MRs', () => {
  it('gives blocks synthetic addresses above 2^32; odd blocks straddle a 2^32 boundary; devices differ', async () => {
    const p = new MemProvider();
    const a = await p.open('mem0');
    const b = await p.open('mem1');
    const a0 = a.allocMemory(4096);
    const a1 = a.allocMemory(1 << 20);
    const b0 = b.allocMemory(4096);
    assert.deepEqual([a0.addrHi, a0.addrLo], [0x7f00, 0x00100000]);
    assert.deepEqual([a1.addrHi, a1.addrLo], [0x7f02, 0xffff0000]);
    assert.deepEqual([b0.addrHi, b0.addrLo], [0x8f00, 0x00100000]);
    assert.equal(a0.buffer.length, 4096);
    assert.ok(a0.buffer.every((x) => x === 0));
    // An MR starting past the boundary carries into hi.
    const pd = a.allocPd();
    const mr = pd.registerMr(a1, 0x20000, 4096, ALL_ACCESS);
    assert.deepEqual([mr.addrHi, mr.addrLo], [0x7f03, 0x00010000]);
  });

  it('translates (hi, lo) back to an offset exactly, across the carry and far away', () => {
    assert.equal(addrOffset(0x7f03, 0x10, 0x7f02, 0xffff0000), 0x10010);
    assert.equal(addrOffset(0x7f02, 0xffff0000, 0x7f02, 0xffff0000), 0);
    assert.equal(addrOffset(0x7f02, 0xfffeffff, 0x7f02, 0xffff0000), -1);
    assert.equal(addrOffset(0x7f04, 0, 0x7f02, 0), -1);
    assert.equal(addrOffset(0xffff8881, 5, 0xffff8880, 0xfffffffb), 10);
    assert.equal(addrOffset(0, 0, 0xffffffff, 0), -1);
  });

  it('an RDMA WRITE and READ across the 2^32 carry, with kernel-style addresses above 2^53', async () => {
    const p = new MemProvider({ addrHiBase: 0xffff8880 });
    const a = makeSide(await p.open('mem0'), 0x10, { bytes: 1 << 17 });
    const bctx = await p.open('mem1');
    bctx.allocMemory(4096); // block 0
    const b = makeSide(bctx, 0x20, { bytes: 1 << 17 }); // block 1: straddles the carry
    assert.equal(b.block.addrLo, 0xffff0000);
    assert.ok(b.block.addrHi * 2 ** 32 > 2 ** 53);
    connectPair(a, b);
    const data = pattern(4096, 1);
    data.copy(a.block.buffer, 0);
    const off = 0x10000 - 100; // the range runs 100 bytes below the carry, 3996 above
    const above = 0x10000 + 8; // this one starts above it: raddrHi = block hi + 1
    assert.equal(addrAdd(b.mr.addrHi, b.mr.addrLo, above).hi, b.mr.addrHi + 1);
    a.qp.postSend(sendWr({ wrId: 1, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, 0, 4096)], raddr: addrAdd(b.mr.addrHi, b.mr.addrLo, off), rkey: b.mr.rkey }));
    a.qp.postSend(sendWr({ wrId: 2, opcode: WrOpcode.RDMA_READ, sges: [sge(a.mr, 8192, 4096)], raddr: addrAdd(b.mr.addrHi, b.mr.addrLo, off), rkey: b.mr.rkey }));
    a.qp.postSend(sendWr({ wrId: 3, opcode: WrOpcode.RDMA_WRITE, sges: [sge(a.mr, 0, 4096)], raddr: addrAdd(b.mr.addrHi, b.mr.addrLo, above + 8192), rkey: b.mr.rkey }));
    const wcs = await waitCompletions(a.scq, 3);
    assert.deepEqual(wcs.map((w) => w.status), [WcStatus.SUCCESS, WcStatus.SUCCESS, WcStatus.SUCCESS]);
    assert.ok(b.block.buffer.subarray(off, off + 4096).equals(data));
    assert.ok(a.block.buffer.subarray(8192, 8192 + 4096).equals(data));
    assert.ok(b.block.buffer.subarray(above + 8192, above + 8192 + 4096).equals(data));
  });

  it('reg_mr checks the region, the access flags and the block', async () => {
    const p = new MemProvider();
    const ctx = await p.open('mem0');
    const pd = ctx.allocPd();
    const block = ctx.allocMemory(1000);
    assertVerbsError(() => pd.registerMr(block, 0, 1001, ALL_ACCESS), 'reg_mr', Errno.EINVAL);
    assertVerbsError(() => pd.registerMr(block, -1, 10, ALL_ACCESS), 'reg_mr', Errno.EINVAL);
    assertVerbsError(() => pd.registerMr(block, 0, 0, ALL_ACCESS), 'reg_mr', Errno.EINVAL);
    assertVerbsError(() => pd.registerMr(block, 0, 10, Access.REMOTE_WRITE), 'reg_mr', Errno.EINVAL);
    assertVerbsError(() => pd.registerMr(block, 0, 10, 0x100), 'reg_mr', Errno.EINVAL);
    const foreign = { buffer: Buffer.alloc(64), addrHi: 0, addrLo: 0, length: 64, free() {} };
    assertVerbsError(() => pd.registerMr(foreign, 0, 10, ALL_ACCESS), 'reg_mr', Errno.EINVAL);
    const other = await new MemProvider().open('mem0');
    assertVerbsError(() => pd.registerMr(other.allocMemory(64), 0, 10, ALL_ACCESS), 'reg_mr', Errno.EINVAL);
    const mr = pd.registerMr(block, 10, 100, Access.LOCAL_WRITE);
    assert.equal(mr.lkey, mr.rkey);
    assert.equal(mr.offset, 10);
    assert.equal(mr.length, 100);
  });

  it('a new registration never reuses the key of a deregistered MR', async () => {
    const ctx = await new MemProvider().open('mem0');
    const pd = ctx.allocPd();
    const block = ctx.allocMemory(4096);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const mr = pd.registerMr(block, 0, 64, ALL_ACCESS);
      assert.ok(!seen.has(mr.rkey), `rkey 0x${mr.rkey.toString(16)} reused after ${i} registrations`);
      seen.add(mr.rkey);
      mr.close();
    }
  });

  it('free() refuses while MRs are registered, then returns zeroed memory to the arena', async () => {
    const p = new MemProvider();
    const ctx = await p.open('mem0');
    const pd = ctx.allocPd();
    const block = ctx.allocMemory(8192);
    block.buffer.fill(0xab);
    const mr = pd.registerMr(block, 0, 8192, ALL_ACCESS);
    assertVerbsError(() => block.free(), 'dereg_mr', Errno.EBUSY);
    mr.close();
    block.free();
    block.free();
    assert.equal(p.fabric.arena.bytesInUse, 0);
    const again = ctx.allocMemory(8192);
    assert.ok(again.buffer.every((x) => x === 0), 'reused memory starts zeroed');
    assertVerbsError(() => pd.registerMr(block, 0, 10, ALL_ACCESS), 'reg_mr', Errno.EINVAL);
  });

  it('alloc_memory is ENOMEM when the arena is exhausted, EINVAL for a bad length', async () => {
    const ctx = await new MemProvider({ arenaMaxBytes: 1 << 16 }).open('mem0');
    const x = ctx.allocMemory(1 << 15);
    ctx.allocMemory(1 << 15);
    assertVerbsError(() => ctx.allocMemory(1), 'alloc_memory', Errno.ENOMEM);
    x.free();
    ctx.allocMemory(100);
    assertVerbsError(() => ctx.allocMemory(0), 'alloc_memory', Errno.EINVAL);
    assertVerbsError(() => ctx.allocMemory(1.5), 'alloc_memory', Errno.EINVAL);
  });
});
