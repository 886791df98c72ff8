import assert from 'node:assert/strict';
import { type ClientLgrQuery, type LgrView, type LinkView, findClientLgr, findServerLgr, selectServerLink } from './lgr-match.js';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const PEER = h('9c3e b8cef6123456');
const GID_A = h('00000000000000000000ffff0a000002');
const GID_B = h('00000000000000000000ffff0a000102');
const MAC_A = h('b8cef6123456');
const MAC_B = h('b8cef6123457');

function lnk(o: Partial<LinkView> = {}): LinkView {
  return {
    active: true, qpn: 0x107, psn: 0x7a1b2c, gid: h('00000000000000000000ffff0a000001'), mac: h('b8cef6abcdef'), pathMtu: 4,
    peerQpn: 0x108, peerGid: GID_A, peerMac: MAC_A, peerMtu: 3, ...o,
  };
}
function lgr(o: Partial<LgrView & { name: string }> = {}): LgrView & { name: string } {
  return { name: 'x', role: 'server', peerId: PEER, vlanId: 0, syncErr: false, terminating: false, connsNum: 1, maxConns: 255, rtokensFull: false, links: [lnk()], ...o };
}

describe('lgr-match: server reuse (spec 5.3)', () => {
  it('returns the caller\'s own objects: the first usable link group and its matching active link', () => {
    const full = lgr({ name: 'full', connsNum: 255 });
    const second = lgr({ name: 'second', links: [lnk({ active: false }), lnk({ qpn: 0x200 })] });
    const m = findServerLgr([full, second], { peerId: PEER, peerGid: GID_A, peerMac: MAC_A, version: 2, vlanId: 0 });
    assert.equal(m?.lgr, second);
    assert.equal(m?.lgr.name, 'second');
    assert.equal(m?.link, second.links[1]);
  });

  it('works on any iterable (a Map of link groups)', () => {
    const map = new Map([[1, lgr()]]);
    assert.ok(findServerLgr(map.values(), { peerId: PEER, peerGid: GID_A, peerMac: MAC_B, version: 2, vlanId: 0 }));
    assert.equal(findServerLgr(map.values(), { peerId: PEER, peerGid: GID_A, peerMac: MAC_B, version: 1, vlanId: 0 }), undefined, 'v1 compares the MAC');
    assert.equal(findServerLgr(map.values(), { peerId: PEER, peerGid: GID_B, peerMac: MAC_A, version: 2, vlanId: 0 }), undefined);
  });
});

describe('lgr-match: client reuse and the assigned link (spec 3.6.2 steps 7-8)', () => {
  const q: ClientLgrQuery = { peerId: PEER, peerQpn: 0x108, peerGid: GID_A, peerMac: MAC_A, version: 1, vlanId: 0 };

  it('needs an active link with the QPN, GID and (v1) MAC of the Accept', () => {
    const mine = lgr({ role: 'client' });
    assert.equal(findClientLgr([mine], q), mine);
    assert.equal(findClientLgr([mine], { ...q, peerQpn: 0x109 }), undefined);
    assert.equal(findClientLgr([mine], { ...q, peerMac: MAC_B }), undefined);
    assert.equal(findClientLgr([mine], { ...q, peerMac: MAC_B, version: 2 }), mine);
    assert.equal(findClientLgr([lgr({ role: 'client', links: [lnk({ active: false })] })], q), undefined);
  });

  it('does not look at the connection limit (the server decided)', () => {
    const mine = lgr({ role: 'client', connsNum: 255, rtokensFull: true });
    assert.equal(findClientLgr([mine], q), mine);
  });

  it('selectServerLink looks at every slot, active or not, and finds nothing once the link is gone', () => {
    const inactive = lgr({ role: 'client', links: [lnk({ peerQpn: 0x300 }), lnk({ active: false })] });
    assert.equal(selectServerLink(inactive, q), inactive.links[1]);
    assert.equal(selectServerLink(lgr({ role: 'client', links: [] }), q), undefined);
  });
});
