/**
 * native-socket: IP_MTU_DISCOVER = IP_PMTUDISC_DO on dgram sockets, read back with getsockopt, and
 * the softroce device doing it by default on the socket it binds. (What this does to the packets on
 * the wire, IP ID 0 + DF + an exact ICRC, is checked with a capture in test/interop/softroce-ip-id.test.ts.)
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { dgramFd, getPmtuDiscover, IP_PMTUDISC_DO, IP_PMTUDISC_WANT, setPmtuDiscoverDo } from './native-socket.js';
import { SoftRoceProvider } from './provider.js';
import type { SoftRoceContext } from './context.js';

async function bound(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.bind({ address: '127.0.0.1', port: 0 });
  await once(s, 'listening');
  return s;
}

describe('softroce native socket options (koffi)', function () {
  let koffiMissing: string | undefined;
  before(async function () {
    if (process.platform !== 'linux') {
      process.stdout.write('      SKIP: IP_MTU_DISCOVER is Linux-only\n');
      this.skip();
    }
    try {
      await import('koffi');
    } catch (e) {
      koffiMissing = (e as Error).message;
    }
  });

  it('finds the descriptor of a bound dgram socket (none before bind)', async () => {
    const fresh = dgram.createSocket('udp4');
    assert.equal(dgramFd(fresh), undefined);
    fresh.close();
    const s = await bound();
    try {
      const fd = dgramFd(s);
      assert.ok(fd !== undefined && fd > 2, `fd ${fd}`);
    } finally {
      s.close();
    }
  });

  it('sets IP_PMTUDISC_DO where Node leaves IP_PMTUDISC_WANT', async function () {
    if (koffiMissing !== undefined) {
      process.stdout.write(`      SKIP: koffi not loadable: ${koffiMissing}\n`);
      this.skip();
    }
    const s = await bound();
    try {
      const fd = dgramFd(s)!;
      assert.equal(await getPmtuDiscover(fd), IP_PMTUDISC_WANT, "Node's default");
      const r = await setPmtuDiscoverDo(s);
      assert.deepEqual(r, { applied: true, fd });
      assert.equal(await getPmtuDiscover(fd), IP_PMTUDISC_DO);
    } finally {
      s.close();
    }
  });

  it('reports why when the socket is not bound, and leaves it alone', async () => {
    const s = dgram.createSocket('udp4');
    const r = await setPmtuDiscoverDo(s);
    assert.equal(r.applied, false);
    assert.match((r as { reason: string }).reason, koffiMissing !== undefined ? /koffi/ : /no descriptor/);
    s.close();
  });

  it('a softroce device sets it on the socket it binds by default, not with pmtuDiscoverDo: false', async function () {
    if (koffiMissing !== undefined) {
      process.stdout.write(`      SKIP: koffi not loadable: ${koffiMissing}\n`);
      this.skip();
    }
    const p = new SoftRoceProvider({
      devices: [
        { name: 'on', ip: '127.0.0.1', port: 24811 },
        { name: 'off', ip: '127.0.0.1', port: 24812, pmtuDiscoverDo: false },
      ],
    });
    const on = (await p.open('on')) as SoftRoceContext;
    const off = (await p.open('off')) as SoftRoceContext;
    try {
      assert.equal(p.device('on')!.ipHeader, 'id0-df');
      assert.equal(p.device('off')!.ipHeader, 'kernel-id');
      assert.equal(p.device('off')!.ipHeaderNote, 'pmtuDiscoverDo is off');
    } finally {
      await on.close();
      await off.close();
    }
    assert.equal(p.device('on')!.ipHeader, undefined, 'closed: nothing known');
  });
});
