/**
 * Interop, step one: the guest itself. Debian's 6.1 kernel boots under TCG with the smc, smc_diag,
 * rdma_rxe and workaround modules, rxe0 sits on eth0 with the IPv4-mapped RoCEv2 GID, the UEID and
 * pnet entries are accepted over generic netlink, and a kernel AF_SMC echo server listens.
 *
 * A plain TCP client on the host (no SMC option in its SYN) gets its data echoed over TCP, and the
 * kernel's smc_diag reports the fallback with reason 0x03010000 (PEERNOSMC: the peer has no SMC
 * option), the code our engine uses for the same situation.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { SmcReason } from '@smc-r/wire';
import { hex32, parseResults, PNETID, UEID, useInteropGuest, waitFor } from './harness/suite.js';

const PORT = 5000;

describe('interop: the Linux 6.1 guest (qemu, rdma_rxe, kernel SMC)', function () {
  this.timeout(60_000);
  const env = useInteropGuest();

  it('boots with the modules loaded, rxe0 on eth0 and the workaround probes armed', async () => {
    const mods = await env.guest.run('cat /proc/modules');
    for (const m of ['smc', 'smc_diag', 'rdma_rxe', 'ib_core', 'rxe_smc_fix', 'virtio_net']) {
      assert.match(mods, new RegExp(`^${m} `, 'm'), `module ${m} loaded`);
    }
    assert.equal((await env.guest.run('ls /sys/class/infiniband')).trim(), 'rxe0');
    // GID index 1 is the RoCEv2 entry for the IPv4 address (rxe has no RoCEv1 GIDs: why SMC-Rv1 is untestable).
    assert.equal((await env.guest.run('cat /sys/class/infiniband/rxe0/ports/1/gids/1')).trim(), '0000:0000:0000:0000:0000:ffff:c000:0201');
    assert.equal((await env.guest.run('cat /sys/class/infiniband/rxe0/ports/1/gid_attrs/types/1')).trim(), 'RoCE v2');
    assert.match(await env.guest.run('dmesg'), /rxe_smc_fix: probes on rxe_query_qp and rxe_req_notify_cq armed/);
  });

  it('takes a UEID and a pnet entry over generic netlink', async () => {
    assert.match(await env.guest.run(`smc_nl ueid-add ${UEID}`), /OK ueid-add/);
    assert.match(await env.guest.run(`smc_nl pnet-add ${PNETID} eth0 rxe0 1`), /OK pnet-add/);
    assert.match(await env.guest.run('dmesg'), new RegExp(`ib device rxe0 ibport 1 applied user defined pnetid ${PNETID}`));
  });

  it('a host TCP client without the SMC option falls back: smc_diag says PEERNOSMC (0x03010000)', async () => {
    await env.guest.run(`smc_test server ${PORT} 0 > /tmp/smoke.log 2>&1 &`);
    await waitFor(() => env.guest.run('cat /tmp/smoke.log'), (s) => s.includes('LISTENING'), 10_000, 'the AF_SMC server');
    // A plain Node TCP client inside the namespace: the host kernel has no SMC, so no option in its SYN.
    const client = `const s=require('net').connect(${PORT},'${env.net.guestIp}',()=>{s.end('hello kernel smc')});let got='';s.on('data',d=>got+=d);s.on('end',()=>{process.stdout.write(got)});`;
    const [cmd, args] = env.net.wrap(process.execPath, ['-e', client]);
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.stdout, 'hello kernel smc', `echo over TCP (stderr: ${r.stderr})`);
    const log = await waitFor(() => env.guest.run('cat /tmp/smoke.log'), (s) => s.includes('RESULT'), 10_000, 'the server result');
    const [res] = parseResults(log);
    assert.ok(res !== undefined);
    assert.equal(res.mode, 'TCP', 'the kernel fell back to TCP');
    assert.equal(hex32(res.reason), hex32(SmcReason.PEERNOSMC.code), 'kernel fallback reason');
    assert.equal(res.rx, 16);
    assert.equal(res.err, '0');
  });
});
