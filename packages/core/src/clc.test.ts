import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  type ClcAccept,
  type ClcConfirm,
  type ClcDecline,
  type ClcMessage,
  type ClcProposal,
  REASON_LIST,
  SmcReason,
  SmcReasonError,
  SmcReasonErrorCode,
  WireError,
  clcToBuffer,
  decodeClc,
  peekClcHeader,
} from '@smc-r/wire';
import { CLIENT, SERVER, UEID } from '../../wire/src/testing/clc-samples.js';
import { EngineError, EngineErrorCode } from './errors.js';
import { type ClcConfig, ClcConfigError, DEFAULT_UEID, clcConfig, isValidUeid, systemIdFrom } from './clc-config.js';
import type { LgrView, LinkView } from './lgr-match.js';
import {
  type ClcFailure,
  type ClcLocalLink,
  type ClcLocalRmb,
  type ClcRocePort,
  type ClcRoute,
  type ClcTcpInfo,
  type ClientAccepted,
  type ClientOffer,
  type ServerAccepting,
  type ServerConfirmed,
  HandshakeFailure,
  clcReceiveFailure,
  clcWaitFailure,
  clientConfirm,
  clientOnAccept,
  clientPrecheck,
  clientProposal,
  clientRecheckLink,
  clientRouteQuery,
  declineMessage,
  handshakeFailure,
  onDecline,
  outcomeError,
  serverAccept,
  serverOnConfirm,
  serverOnProposal,
  serverPrecheck,
  serverRouteQuery,
} from './clc.js';

const h = (...parts: string[]): Buffer => Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
const R = SmcReason;

// ---------------------------------------------------------------------------------------------------
// fixtures: client 10.0.0.2, server 10.0.0.1 on 10.0.0.0/24 (the wire samples' hosts)

const ccfg = clcConfig({ systemId: CLIENT.peerId, hostname: 'client01' });
const scfg = clcConfig({ systemId: SERVER.peerId, hostname: 'server01' });
const cport: ClcRocePort = { mac: CLIENT.mac, activeMtu: 3, gidV1: CLIENT.gidV1, gidV2: CLIENT.gidV2 };
const sport: ClcRocePort = { mac: SERVER.mac, activeMtu: 4, gidV1: SERVER.gidV1, gidV2: SERVER.gidV2 };
const ctcp: ClcTcpInfo = { localAddress: '10.0.0.2', ifAddresses: [{ address: '10.0.0.2', prefixLen: 24 }], vlanId: 0 };
const stcp: ClcTcpInfo = { localAddress: '10.0.0.1', ifAddresses: [{ address: '10.0.0.1', prefixLen: 24 }], vlanId: 0 };
const TO_SERVER_DIRECT: ClcRoute = { found: true, viaGateway: false, nexthopMac: SERVER.mac };
const TO_CLIENT_DIRECT: ClcRoute = { found: true, viaGateway: false, nexthopMac: CLIENT.mac };
const GATEWAY_MAC = h('02005e0000fe');
const SRMB: ClcLocalRmb = { rkey: 0x0012ab34, vaddr: 0x000000012a3b4000n, size: 65536, alertToken: 5 };
const CRMB: ClcLocalRmb = { rkey: 0x0034cd56, vaddr: 0x000000012a3c8000n, size: 65536, alertToken: 6 };

/** decode(encode(m)) deep-equals m; returns the decoded copy (what the peer sees). */
function roundtrip<T extends ClcMessage>(m: T): T {
  const bytes = clcToBuffer(m);
  const back = decodeClc(bytes);
  assert.deepEqual(back, m);
  return back as T;
}

function must<T extends { kind: string }, K extends T['kind']>(o: T, kind: K): Extract<T, { kind: K }> {
  assert.equal(o.kind, kind, 'detail' in o ? String(o.detail) : undefined);
  return o as Extract<T, { kind: K }>;
}

interface Side {
  cfg: ClcConfig;
  port: ClcRocePort | undefined;
  tcp: ClcTcpInfo;
  lgrs: LgrView[];
  route?: ClcRoute;
}

const clientSide = (o: Partial<Side> = {}): Side => ({ cfg: ccfg, port: cport, tcp: ctcp, lgrs: [], route: TO_SERVER_DIRECT, ...o });
const serverSide = (o: Partial<Side> = {}): Side => ({ cfg: scfg, port: sport, tcp: stcp, lgrs: [], route: TO_CLIENT_DIRECT, ...o });

function newServerLink(d: ServerAccepting): ClcLocalLink {
  return { qpn: 0x000107, psn: 0x7a1b2c, gid: d.localGid, mac: d.localMac, pathMtu: d.pathMtu };
}
function newClientLink(d: ClientAccepted, port: ClcRocePort): ClcLocalLink {
  return { qpn: 0x000108, psn: 0x0d89a4, gid: d.localGid, mac: d.localMac, pathMtu: port.activeMtu };
}

/** Client offer + server decision for the given sides, messages through the codec. */
function proposeAndDecide(client: Side, server: Side) {
  const cp = must(clientProposal(client.cfg, client.port, client.tcp), 'proposal');
  const proposal = roundtrip(cp.proposal);
  const sq = serverRouteQuery(server.cfg, proposal, server.tcp);
  const sp = serverOnProposal(server.cfg, proposal, { port: server.port, tcp: server.tcp, lgrs: server.lgrs, ...(sq ? { route: server.route } : {}) });
  return { offer: cp.offer, proposal, sp };
}

/** The whole handshake; every step must succeed. */
function handshake(client: Side = clientSide(), server: Side = serverSide()) {
  const { offer, proposal, sp: spr } = proposeAndDecide(client, server);
  const sp = must(spr, 'accepting');
  const slink = sp.reuse?.link ?? newServerLink(sp);
  const accept = roundtrip(serverAccept(server.cfg, sp, slink, SRMB));
  const cq = clientRouteQuery(offer, accept);
  const ca = must(clientOnAccept(client.cfg, offer, accept, { lgrs: client.lgrs, ...(cq ? { route: client.route } : {}) }), 'accepted');
  const clink = ca.reuse?.link ?? newClientLink(ca, client.port!);
  const confirm = roundtrip(clientConfirm(client.cfg, ca, clink, CRMB));
  const sc = must(serverOnConfirm(server.cfg, sp, confirm), 'confirmed');
  return { offer, proposal, sp, slink, accept, ca, clink, confirm, sc };
}
type Handshake = ReturnType<typeof handshake>;

function link(local: ClcLocalLink, peer: { qpn: number; gid: Buffer; mac: Buffer; mtu: number }, active = true): LinkView {
  return { active, qpn: local.qpn, psn: local.psn, gid: local.gid, mac: local.mac, pathMtu: local.pathMtu, peerQpn: peer.qpn, peerGid: peer.gid, peerMac: peer.mac, peerMtu: peer.mtu };
}
/** The link groups both sides hold after a first-contact handshake. */
function lgrsAfter(r: Handshake): { server: LgrView; client: LgrView } {
  const server: LgrView = {
    role: 'server', peerId: r.sp.peerId, vlanId: r.sp.vlanId, syncErr: false, terminating: false,
    connsNum: 1, maxConns: r.sp.maxConns, rtokensFull: false, links: [link(r.slink, r.sc.peer)],
  };
  const client: LgrView = {
    role: 'client', peerId: r.ca.peer.peerId, vlanId: r.ca.vlanId, syncErr: false, terminating: false,
    connsNum: 1, maxConns: r.ca.maxConns, rtokensFull: false, links: [link(r.clink, r.ca.peer)],
  };
  return { server, client };
}

/** The server's first-contact Accept for the default sides (decoded), and the client's offer. */
function defaultAccept(server: Side = serverSide(), client: Side = clientSide()): { offer: ClientOffer; accept: ClcAccept; sp: ServerAccepting } {
  const { offer, sp: spr } = proposeAndDecide(client, server);
  const sp = must(spr, 'accepting');
  return { offer, sp, accept: roundtrip(serverAccept(server.cfg, sp, newServerLink(sp), SRMB)) };
}

/** A default proposal (decoded) from the given client side. */
function defaultProposal(client: Side = clientSide()): ClcProposal {
  return roundtrip(must(clientProposal(client.cfg, client.port, client.tcp), 'proposal').proposal);
}

function onProposal(p: ClcProposal, server: Side = serverSide()) {
  const sq = serverRouteQuery(server.cfg, p, server.tcp);
  return serverOnProposal(server.cfg, p, { port: server.port, tcp: server.tcp, lgrs: server.lgrs, ...(sq ? { route: server.route } : {}) });
}

function onAccept(accept: ClcMessage, offer: ClientOffer, client: Side = clientSide()) {
  const q = accept.type === 'accept' ? clientRouteQuery(offer, accept) : undefined;
  return clientOnAccept(client.cfg, offer, accept, { lgrs: client.lgrs, ...(q ? { route: client.route } : {}) });
}

/** Asserts a decline outcome with this code and Decline version, and that the Decline is what Linux sends. */
function assertDecline(o: ClcFailure | { kind: string }, code: number, version: 1 | 2): void {
  const d = must(o as ClcFailure, 'decline');
  assert.equal(d.reason, code, d.detail);
  assert.equal(d.version, version);
  assert.equal(d.outOfSync, code === R.SYNCERR.code);
  const m = roundtrip(d.message);
  assert.equal(m.peerDiagnosis, code);
  assert.equal(m.version, version);
  assert.equal(m.typev1, 'R');
  assert.equal(m.osType, version === 1 ? 0 : 2);
  const bytes = clcToBuffer(m);
  assert.equal(bytes.length, version === 1 ? 28 : 44);
  assert.equal(bytes[7], (version << 4) | (code === R.SYNCERR.code ? 0x08 : 0));
}

// ---------------------------------------------------------------------------------------------------

describe('clc: successful handshakes (client and server chained through the codec)', () => {
  it('SMC-Rv2 first contact: Proposal 164, Accept 160 with FCE, Confirm 180 echoing it', () => {
    const r = handshake();
    // Proposal: v2 header, SMC-Rv1 and v2 offered, one UEID: 164 bytes, flags 0x20 (spec 3.3.5).
    const pb = clcToBuffer(r.proposal);
    assert.equal(pb.length, 164);
    assert.equal(pb[7], 0x20);
    assert.deepEqual(r.proposal.peerId, CLIENT.peerId);
    assert.deepEqual(r.proposal.smcdArea, { ismGid: 0n, ismChid: 0, vendorOui: 0, vendorOptions: Buffer.alloc(5) }, 'no vendor options (spec 12 rows 8, 9)');
    assert.deepEqual(r.proposal.v2Ext, { release: 1, seid: false, roceGid: CLIENT.gidV2, maxConns: 255, maxLinks: 1, featureMask: 0, ueids: [UEID] });

    assert.equal(r.sp.version, 2);
    assert.equal(r.sp.firstContact, true);
    assert.equal(r.sp.eid, UEID);
    const ab = clcToBuffer(r.accept);
    assert.equal(ab.length, 160);
    assert.equal(ab[7], 0x28, 'version 2, first contact');
    assert.deepEqual(r.accept.fce, { v2Direct: true, osType: 2, release: 1, hostname: 'server01', maxConns: 255, maxLinks: 1, featureMask: 0, vendorOptions: 0 });
    assert.equal(r.accept.qpMtu, 4);
    assert.equal(r.accept.rmbeSizeCode, 2, '64 KiB');
    assert.equal(r.accept.rmbeIdx, 1);

    assert.equal(r.ca.version, 2);
    assert.equal(r.ca.firstContact, true);
    assert.equal(r.ca.reuse, undefined);
    assert.equal(r.ca.eid, UEID);
    assert.equal(r.ca.pathMtu, 3, 'min(3, 4)');
    assert.deepEqual(r.ca.localGid, CLIENT.gidV2);
    assert.deepEqual(r.ca.peer, { peerId: SERVER.peerId, gid: SERVER.gidV2, mac: SERVER.mac, qpn: 0x107, psn: 0x7a1b2c, mtu: 4 });
    assert.deepEqual(r.ca.peerRmb, { rkey: 0x0012ab34, vaddr: 0x12a3b4000n, rmbeIdx: 1, rmbeSize: 65536, rmbeAddr: 0x12a3b4000n, alertToken: 5 });
    assert.equal(r.ca.peerHostname, 'server01');
    assert.equal(r.ca.usesGateway, false);
    assert.deepEqual(r.ca.nexthopMac, SERVER.mac);

    const cb = clcToBuffer(r.confirm);
    assert.equal(cb.length, 180);
    assert.equal(cb[7], 0x28);
    assert.equal(r.confirm.qpMtu, 3);
    assert.equal(r.confirm.eid, UEID);
    assert.deepEqual(r.confirm.fce, { v2Direct: true, osType: 2, release: 1, hostname: 'client01', maxConns: 255, maxLinks: 1, featureMask: 0, vendorOptions: 0 });
    assert.deepEqual(r.confirm.gidList, [CLIENT.gidV2]);

    assert.deepEqual(r.sc.gidList, [CLIENT.gidV2]);
    assert.equal(r.sc.pathMtu, 3);
    assert.deepEqual(r.sc.peer, { peerId: CLIENT.peerId, gid: CLIENT.gidV2, mac: CLIENT.mac, qpn: 0x108, psn: 0x0d89a4, mtu: 3 });
    assert.equal(r.sc.peerRmb.alertToken, 6);
    assert.equal(r.sc.peerHostname, 'client01');
  });

  it('SMC-Rv1 only on both sides: RFC 7609 Proposal (52), Accept and Confirm 68 bytes', () => {
    const c = clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'client01', versions: [1] }) });
    const s = serverSide({ cfg: clcConfig({ systemId: SERVER.peerId, hostname: 'server01', versions: [1] }) });
    const r = handshake(c, s);
    const pb = clcToBuffer(r.proposal);
    assert.equal(pb.length, 52);
    assert.equal(pb[7], 0x10, 'version 1, typev1 R (as the captured Linux v1 Proposal)');
    assert.deepEqual(r.proposal.ipPrefix, { subnet: h('0a000000'), prefixLen: 24, ipv6Prefixes: [] });
    const ab = clcToBuffer(r.accept);
    assert.equal(ab.length, 68);
    assert.equal(ab[7], 0x18, 'version 1 + first contact (as the captured Linux Accept)');
    assert.deepEqual(r.accept.gid, SERVER.gidV1);
    assert.equal(r.ca.version, 1);
    assert.equal(r.ca.eid, '');
    assert.equal(r.ca.release, 0);
    assert.equal(r.ca.maxConns, 255);
    const cb = clcToBuffer(r.confirm);
    assert.equal(cb.length, 68);
    assert.equal(cb[7], 0x18);
    assert.deepEqual(r.confirm.gid, CLIENT.gidV1);
    assert.deepEqual(r.sc.gidList, []);
  });

  it('SMC-Rv1 over IPv6 (SMC-Rv2 needs IPv4): the prefix area carries the IPv6 prefixes', () => {
    const c = clientSide({ tcp: { localAddress: '2001:db8:1::2', ifAddresses: [{ address: 'fe80::bace:f6ff:fe12:3456', prefixLen: 64 }, { address: '2001:db8:1::2', prefixLen: 64 }], vlanId: 0 } });
    const s = serverSide({ tcp: { localAddress: '2001:db8:1::1', ifAddresses: [{ address: '2001:db8:1::1', prefixLen: 64 }], vlanId: 0 } });
    const r = handshake(c, s);
    assert.equal(r.proposal.typev2, 'N');
    assert.deepEqual(r.proposal.ipPrefix, { subnet: Buffer.alloc(4), prefixLen: 0, ipv6Prefixes: [{ prefix: h('20010db8000100000000000000000000'), prefixLen: 64 }] });
    assert.equal(r.sp.version, 1);
    assert.equal(clcToBuffer(r.proposal).length, 40 + 40 + 8 + 17 + 4);
  });

  it('SMC-Rv2 through an IP gateway: v2_direct 0 both ways, next hop = gateway MAC', () => {
    const gw: ClcRoute = { found: true, viaGateway: true, nexthopMac: GATEWAY_MAC };
    const c = clientSide({ tcp: { ...ctcp, localAddress: '10.1.0.2', ifAddresses: [{ address: '10.1.0.2', prefixLen: 24 }] }, cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'client01', versions: [2] }), port: { ...cport, gidV2: h('00000000000000000000ffff0a010002') }, route: gw });
    const r = handshake(c, serverSide({ route: gw }));
    assert.equal(r.proposal.typev1, 'N');
    assert.deepEqual(r.proposal.peerId, Buffer.alloc(8), 'v2-only Proposal: zero peer ID (spec 12 row 18)');
    assert.equal(clcToBuffer(r.proposal).length, 156);
    assert.equal(r.sp.usesGateway, true);
    assert.deepEqual(r.sp.nexthopMac, GATEWAY_MAC);
    assert.equal(r.accept.fce?.v2Direct, false);
    assert.deepEqual(clientRouteQuery(r.offer, r.accept), { saddr: '10.1.0.2', daddr: '10.0.0.1' });
    assert.equal(r.ca.usesGateway, true);
    assert.deepEqual(r.ca.nexthopMac, GATEWAY_MAC);
    assert.equal(r.confirm.fce?.v2Direct, false);
  });

  it('honours an RMBE index above 1 from non-Linux peers (spec 3.4.1)', () => {
    const { offer, accept } = defaultAccept();
    const ca = must(onAccept(roundtrip({ ...accept, rmbeIdx: 3, rmbeSizeCode: 1 }), offer), 'accepted');
    assert.equal(ca.peerRmb.rmbeSize, 32768);
    assert.equal(ca.peerRmb.rmbeAddr, 0x12a3b4000n + 2n * 32768n);
  });
});

describe('clc: version negotiation', () => {
  const v1only = (id: Buffer, host: string): ClcConfig => clcConfig({ systemId: id, hostname: host, versions: [1] });
  const v2only = (id: Buffer, host: string): ClcConfig => clcConfig({ systemId: id, hostname: host, versions: [2] });

  it('a v1+v2 client and a v1-only server settle on SMC-Rv1', () => {
    const r = handshake(clientSide(), serverSide({ cfg: v1only(SERVER.peerId, 'server01') }));
    assert.equal(r.proposal.version, 2);
    assert.equal(r.sp.version, 1);
    assert.equal(r.sp.declineVersion, 2, 'declines answer the Proposal version');
    assert.equal(r.accept.version, 1);
    assert.equal(r.ca.declineVersion, 1, "the client's declines follow the Accept");
    assert.equal(r.confirm.version, 1);
  });

  it('a v1-only client (version-1 Proposal) and a v1+v2 server settle on SMC-Rv1', () => {
    const r = handshake(clientSide({ cfg: v1only(CLIENT.peerId, 'client01') }), serverSide());
    assert.equal(r.proposal.version, 1);
    assert.equal(r.sp.version, 1);
    assert.equal(r.sp.declineVersion, 1);
  });

  it('a v2-only client and a v1-only server: VERSMISMAT, Decline version 2', () => {
    const p = defaultProposal(clientSide({ cfg: v2only(CLIENT.peerId, 'client01') }));
    assert.equal(p.typev1, 'N');
    assertDecline(onProposal(p, serverSide({ cfg: v1only(SERVER.peerId, 'server01') })), R.VERSMISMAT.code, 2);
  });

  it('a v1-only client and a v2-only server: VERSMISMAT, Decline version 1', () => {
    const p = defaultProposal(clientSide({ cfg: v1only(CLIENT.peerId, 'client01') }));
    assertDecline(onProposal(p, serverSide({ cfg: v2only(SERVER.peerId, 'server01') })), R.VERSMISMAT.code, 1);
  });

  it('SMCv2 offered without a common UEID falls back to SMC-Rv1', () => {
    const s = serverSide({ cfg: clcConfig({ systemId: SERVER.peerId, hostname: 'server01', ueids: ['OTHER-UEID'] }) });
    const r = handshake(clientSide(), s);
    assert.equal(r.sp.version, 1);
    assert.equal(serverRouteQuery(s.cfg, r.proposal, s.tcp), undefined, 'no route lookup without a common UEID');
  });

  it('SMC-Rv2 only without a common UEID: NOSMCDEV (the kernel records nothing for the UEID miss)', () => {
    const p = defaultProposal(clientSide({ cfg: v2only(CLIENT.peerId, 'client01') }));
    const s = serverSide({ cfg: clcConfig({ systemId: SERVER.peerId, hostname: 'server01', ueids: ['OTHER-UEID'] }) });
    assertDecline(onProposal(p, s), R.NOSMCDEV.code, 2);
  });

  it('a client without UEIDs offers SMC-Rv1 only', () => {
    const p = defaultProposal(clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'client01', ueids: [] }) }));
    assert.equal(p.typev2, 'N');
    assert.equal(clcToBuffer(p).length, 92, 'SMC-R v1 only, IPv4, version-2 header (spec 3.3.5)');
    assert.equal(clcToBuffer(p)[7], 0x28);
  });

  it('release: a v2.0 client (release 0) gets release 0 and no v2.1 values, echoed as zeros', () => {
    const c = clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'client01', release: 0 }) });
    const r = handshake(c, serverSide());
    assert.equal(r.sp.release, 0);
    assert.deepEqual(r.accept.fce, { v2Direct: true, osType: 2, release: 0, hostname: 'server01', maxConns: 0, maxLinks: 0, featureMask: 0, vendorOptions: 0 });
    assert.equal(r.ca.release, 0);
    assert.equal(r.confirm.fce?.release, 0);
    assert.equal(r.confirm.fce?.maxConns, 0);
  });

  it('release: a Proposal newer than us (release 3) negotiates our release 1', () => {
    const p = defaultProposal();
    const sp = must(onProposal(roundtrip({ ...p, v2Ext: { ...p.v2Ext!, release: 3 } })), 'accepting');
    assert.equal(sp.release, 1);
  });

  it('release: an Accept with a release newer than ours is VERSMISMAT', () => {
    const { offer, accept } = defaultAccept();
    assertDecline(onAccept(roundtrip({ ...accept, fce: { ...accept.fce!, release: 2 } }), offer), R.VERSMISMAT.code, 2);
    const c0 = clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'client01', release: 0 }) });
    assertDecline(onAccept(accept, offer, c0), R.VERSMISMAT.code, 2);
  });
});

describe('clc: UEID matching (spec 3.6.3 step 6)', () => {
  it('the negotiated EID is the first client UEID the server also has', () => {
    const c = clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'client01', ueids: ['ALPHA', 'BRAVO.1', 'CHARLIE-2'] }) });
    const s = serverSide({ cfg: clcConfig({ systemId: SERVER.peerId, hostname: 'server01', ueids: ['CHARLIE-2', 'BRAVO.1'] }) });
    const r = handshake(c, s);
    assert.equal(r.sp.eid, 'BRAVO.1');
    assert.equal(r.accept.eid, 'BRAVO.1');
    assert.equal(r.confirm.eid, 'BRAVO.1', 'the Confirm echoes the Accept EID');
  });

  it('the v2 extension lists every configured UEID in table order', () => {
    const ueids = ['U1', 'U2', 'U3', 'U4', 'U5', 'U6', 'U7', 'U8'];
    const p = defaultProposal(clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', ueids }) }));
    assert.deepEqual(p.v2Ext?.ueids, ueids);
    assert.equal(clcToBuffer(p).length, 92 + 40 + 32 * 8);
  });
});

describe('clc: max_conns / max_links negotiation (v2.1)', () => {
  const cfgWith = (id: Buffer, host: string, maxConns: number, maxLinks: number): ClcConfig => clcConfig({ systemId: id, hostname: host, maxConns, maxLinks });

  it('server takes min(client, own) and the client echoes it', () => {
    const r = handshake(clientSide({ cfg: cfgWith(CLIENT.peerId, 'c', 255, 1) }), serverSide({ cfg: cfgWith(SERVER.peerId, 's', 32, 2) }));
    assert.equal(r.sp.maxConns, 32);
    assert.equal(r.sp.maxLinks, 1);
    assert.equal(r.accept.fce?.maxConns, 32);
    assert.equal(r.ca.maxConns, 32);
    assert.equal(r.confirm.fce?.maxConns, 32);
    assert.equal(r.confirm.fce?.maxLinks, 1);
  });

  it('16 is allowed, both links 2 negotiate 2', () => {
    const r = handshake(clientSide({ cfg: cfgWith(CLIENT.peerId, 'c', 16, 2) }), serverSide({ cfg: cfgWith(SERVER.peerId, 's', 200, 2) }));
    assert.equal(r.ca.maxConns, 16);
    assert.equal(r.ca.maxLinks, 2);
  });

  it('server: a Proposal with max_conns < 16 or max_links 0 is declined', () => {
    const p = defaultProposal();
    assertDecline(onProposal(roundtrip({ ...p, v2Ext: { ...p.v2Ext!, maxConns: 15 } })), R.MAXCONNERR.code, 2);
    must(onProposal(roundtrip({ ...p, v2Ext: { ...p.v2Ext!, maxConns: 16 } })), 'accepting');
    assertDecline(onProposal(roundtrip({ ...p, v2Ext: { ...p.v2Ext!, maxLinks: 0 } })), R.MAXLINKERR.code, 2);
    // Release 0 carries no v2.1 values: zeros are fine.
    must(onProposal(roundtrip({ ...p, v2Ext: { ...p.v2Ext!, release: 0, maxConns: 0, maxLinks: 0 } })), 'accepting');
  });

  it('client: an Accept with max_conns < 16 or max_links outside 1..2 is declined', () => {
    const { offer, accept } = defaultAccept();
    assertDecline(onAccept(roundtrip({ ...accept, fce: { ...accept.fce!, maxConns: 15 } }), offer), R.MAXCONNERR.code, 2);
    assertDecline(onAccept(roundtrip({ ...accept, fce: { ...accept.fce!, maxLinks: 0 } }), offer), R.MAXLINKERR.code, 2);
    assertDecline(onAccept(roundtrip({ ...accept, fce: { ...accept.fce!, maxLinks: 3 } }), offer), R.MAXLINKERR.code, 2);
    const ok = must(onAccept(roundtrip({ ...accept, fce: { ...accept.fce!, maxLinks: 2, maxConns: 16 } }), offer), 'accepted');
    assert.equal(ok.maxLinks, 2, 'the kernel accepts 2 even if we offered 1; we must echo it');
  });

  it('server: the Confirm must echo release, max_conns and max_links exactly', () => {
    const r = handshake();
    const fce = r.confirm.fce!;
    assertDecline(serverOnConfirm(scfg, r.sp, roundtrip({ ...r.confirm, fce: { ...fce, release: 0 } })), R.RELEASEERR.code, 2);
    assertDecline(serverOnConfirm(scfg, r.sp, roundtrip({ ...r.confirm, fce: { ...fce, maxConns: 254 } })), R.MAXCONNERR.code, 2);
    assertDecline(serverOnConfirm(scfg, r.sp, roundtrip({ ...r.confirm, fce: { ...fce, maxLinks: 2 } })), R.MAXLINKERR.code, 2);
  });

  it('feature mask: the server sends its own, the client ANDs, the server adopts the echo', () => {
    const c = clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', featureMask: 0x0003 }) });
    const s = serverSide({ cfg: clcConfig({ systemId: SERVER.peerId, hostname: 's', featureMask: 0x0001 }) });
    const r = handshake(c, s);
    assert.equal(r.proposal.v2Ext?.featureMask, 3);
    assert.equal(r.accept.fce?.featureMask, 1);
    assert.equal(r.ca.featureMask, 1);
    assert.equal(r.sc.featureMask, 1);
    const r0 = handshake(c, serverSide());
    assert.equal(r0.ca.featureMask, 0);
  });
});

describe('clc: first contact and link-group reuse (spec 5.3)', () => {
  for (const versions of [[2], [1]] as const) {
    it(`SMC-Rv${versions[0]}: a second connection reuses both link groups`, () => {
      const c = clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [...versions] }) });
      const s = serverSide();
      const first = handshake(c, s);
      const { server, client } = lgrsAfter(first);
      const r = handshake({ ...c, lgrs: [client] }, { ...s, lgrs: [server] });
      assert.equal(r.sp.firstContact, false);
      assert.equal(r.sp.reuse?.lgr, server);
      assert.equal(r.sp.reuse?.link, server.links[0]);
      assert.equal(r.ca.firstContact, false);
      assert.equal(r.ca.reuse?.lgr, client);
      assert.equal(r.ca.reuse?.link, client.links[0]);
      const len = versions[0] === 2 ? 108 : 68;
      assert.equal(clcToBuffer(r.accept).length, len);
      assert.equal(clcToBuffer(r.confirm).length, len);
      assert.equal(r.accept.fce, undefined);
      assert.equal(r.confirm.qpn, first.confirm.qpn, 'same link, same QP');
      assert.equal(must(clientRecheckLink(ccfg, r.ca, client), 'proceed').kind, 'proceed');
    });
  }

  it('server: a link group is not reused when it cannot take the connection', () => {
    const first = handshake();
    const { server } = lgrsAfter(first);
    const cases: [string, LgrView][] = [
      ['full (conns_num == max_conns)', { ...server, connsNum: server.maxConns }],
      ['rtokens full', { ...server, rtokensFull: true }],
      ['out of sync', { ...server, syncErr: true }],
      ['terminating', { ...server, terminating: true }],
      ['other VLAN', { ...server, vlanId: 7 }],
      ['link not active', { ...server, links: [{ ...server.links[0]!, active: false }] }],
      ['other peer GID', { ...server, links: [{ ...server.links[0]!, peerGid: h('00000000000000000000ffff0a000063') }] }],
      ['other peer system ID', { ...server, peerId: h('0000b8cef6999999') }],
      ['client role', { ...server, role: 'client' }],
    ];
    for (const [why, lgr] of cases) {
      const sp = must(onProposal(first.proposal, serverSide({ lgrs: [lgr] })), 'accepting');
      assert.equal(sp.firstContact, true, why);
    }
    const sp = must(onProposal(first.proposal, serverSide({ lgrs: [{ ...server, connsNum: server.maxConns - 1 }] })), 'accepting');
    assert.equal(sp.firstContact, false, 'one slot left');
  });

  it('server: SMC-Rv1 reuse also needs the peer MAC, SMC-Rv2 does not', () => {
    const c1 = clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [1] }) });
    const first1 = handshake(c1);
    const s1 = lgrsAfter(first1).server;
    const otherMac = { ...s1, links: [{ ...s1.links[0]!, peerMac: h('b8cef6000001') }] };
    assert.equal(must(onProposal(first1.proposal, serverSide({ lgrs: [otherMac] })), 'accepting').firstContact, true);
    const first2 = handshake();
    const s2 = lgrsAfter(first2).server;
    const otherMac2 = { ...s2, links: [{ ...s2.links[0]!, peerMac: h('b8cef6000001') }] };
    assert.equal(must(onProposal(first2.proposal, serverSide({ lgrs: [otherMac2] })), 'accepting').firstContact, false);
  });

  it('client: a reused link group we do not have is SYNCERR with the out-of-sync bit', () => {
    const first = handshake();
    const { server, client } = lgrsAfter(first);
    const { offer, sp: spr } = proposeAndDecide(clientSide(), serverSide({ lgrs: [server] }));
    const sp = must(spr, 'accepting');
    const accept = roundtrip(serverAccept(scfg, sp, sp.reuse!.link, SRMB));
    const cases: [string, LgrView[]][] = [
      ['no link groups', []],
      ['out of sync', [{ ...client, syncErr: true }]],
      ['terminating', [{ ...client, terminating: true }]],
      ['server role', [{ ...client, role: 'server' }]],
      ['other peer QPN', [{ ...client, links: [{ ...client.links[0]!, peerQpn: 0x999 }] }]],
      ['link not active', [{ ...client, links: [{ ...client.links[0]!, active: false }] }]],
      ['other VLAN', [{ ...client, vlanId: 3 }]],
    ];
    for (const [why, lgrs] of cases) {
      const o = onAccept(accept, offer, clientSide({ lgrs }));
      assert.equal(o.kind, 'decline', why);
      assertDecline(o, R.SYNCERR.code, 2);
    }
    must(onAccept(accept, offer, clientSide({ lgrs: [client] })), 'accepted');
  });

  it('client: a first-contact Accept never reuses, even if a matching link group exists', () => {
    const first = handshake();
    const { client } = lgrsAfter(first);
    const r = handshake(clientSide({ lgrs: [client] }), serverSide());
    assert.equal(r.ca.reuse, undefined);
    assert.equal(r.ca.firstContact, true);
  });
});

// ---------------------------------------------------------------------------------------------------
// every reason code

/** A realistic SMC-D Accept (v1, 48 bytes, "SMCD"): we never offer SMC-D. */
const SMCD_ACCEPT = h(
  'e2d4c3c4 02 0030 11', // eyecatcher SMCD, Accept, length 48, version 1 + first contact, typev1 D
  '0123456789abcdef', // ISM GID
  '0000000000000ab0', // DMB token
  '01 20 0000', // DMBE index, size, reserved
  '00000100', // link id
  '000000000000000000000000', // reserved
  'e2d4c3c4',
);

interface Provoked {
  outcome: ClcFailure | { kind: string };
  /** Decline version expected, for codes that go on the wire. */
  version?: 1 | 2;
}

/** One realistic way to reach each code a userspace SMC-R stack can hit (reasons.ts `userspace`). */
const PROVOKE: Record<string, () => Provoked> = {
  MEM: () => ({ outcome: handshakeFailure(ccfg, 'BUF_ALLOC', 2), version: 2 }),
  TIMEOUT_CL: () => ({ outcome: handshakeFailure(scfg, 'CONFIRM_LINK_TIMEOUT', 2), version: 2 }),
  CNFERR: () => {
    // SMC-Rv1 only (no RoCEv2 GID) and the socket address lies in no device subnet: no prefix area.
    const tcp = { ...ctcp, ifAddresses: [{ address: '192.168.1.5', prefixLen: 24 }] };
    return { outcome: clientProposal(ccfg, { ...cport, gidV2: undefined }, tcp), version: 1 };
  },
  PEERNOSMC: () => {
    // A version-2 Proposal that offers nothing (typev1 N, typev2 N): the one PEERNOSMC a server sends.
    const p = defaultProposal(clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [2] }) }));
    const { v2Ext: _x, ...noV2 } = p;
    return { outcome: onProposal(roundtrip({ ...noV2, typev2: 'N' })), version: 2 };
  },
  ACTIVE: () => ({ outcome: clientPrecheck(ccfg, { peerSignalledSmc: true, presetFallback: R.ACTIVE.code }) }),
  NOSMCDEV: () => ({ outcome: clientProposal(ccfg, undefined, ctcp), version: 1 }),
  NOSMCDDEV: () => {
    // An SMC-D-only client (s390): typev1 D with its ISM GID / CHID.
    const p: ClcProposal = {
      type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'D', typev2: 'N', peerId: Buffer.alloc(8), gid: Buffer.alloc(16), mac: Buffer.alloc(6),
      ipAreaOffset: 40, smcdArea: { ismGid: 0x0123456789abcdefn, ismChid: 0x0400, vendorOui: 0, vendorOptions: Buffer.alloc(5) },
      ipPrefix: { subnet: h('0a000000'), prefixLen: 24, ipv6Prefixes: [] },
    };
    return { outcome: onProposal(roundtrip(p)), version: 2 };
  },
  NOISM2SUPP: () => {
    // An SMC-Dv2-only client: we have no ISMv2 device.
    const p: ClcProposal = {
      type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'N', typev2: 'D', peerId: Buffer.alloc(8), gid: Buffer.alloc(16), mac: Buffer.alloc(6),
      ipAreaOffset: 0, smcdArea: { ismGid: 0n, ismChid: 0, vendorOui: 0, vendorOptions: Buffer.alloc(5) },
      v2Ext: { release: 1, seid: true, roceGid: Buffer.alloc(16), maxConns: 0, maxLinks: 0, featureMask: 0, ueids: [] },
      smcdV2Ext: { supported: false, systemEid: 'IBM-SYSZ-ISMSEID00000000DEADBEEF', gidChids: [{ gid: 0x0123456789abcdefn, chid: 0x0400 }] },
    };
    return { outcome: onProposal(roundtrip(p)), version: 2 };
  },
  NOSMCRDEV: () => {
    // SMC-Rv1 and v2 offered, the server's port has no GID at all: the v2 miss is recorded first.
    return { outcome: onProposal(defaultProposal(), serverSide({ port: { mac: SERVER.mac, activeMtu: 4 } })), version: 2 };
  },
  NOV2EXT: () => {
    // typev2 offers SMC-Rv2 but the extension is missing. Our decoder already refuses such bytes
    // (v2_ext_offset 0), so this Proposal is hand-built, as a peer-side object would be.
    const p = defaultProposal(clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [2] }) }));
    const { v2Ext: _x, ...noExt } = p;
    return { outcome: onProposal(noExt), version: 2 };
  },
  NOUEID: () => {
    const p = defaultProposal(clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [2] }) }));
    return { outcome: onProposal(roundtrip({ ...p, v2Ext: { ...p.v2Ext!, ueids: [] } })), version: 2 };
  },
  RELEASEERR: () => {
    const r = handshake();
    return { outcome: serverOnConfirm(scfg, r.sp, roundtrip({ ...r.confirm, fce: { ...r.confirm.fce!, release: 0 } })), version: 2 };
  },
  MAXCONNERR: () => {
    const p = defaultProposal();
    return { outcome: onProposal(roundtrip({ ...p, v2Ext: { ...p.v2Ext!, maxConns: 8 } })), version: 2 };
  },
  MAXLINKERR: () => {
    const { offer, accept } = defaultAccept();
    return { outcome: onAccept(roundtrip({ ...accept, fce: { ...accept.fce!, maxLinks: 3 } }), offer), version: 2 };
  },
  MODEUNSUPP: () => {
    // We offered SMC-Rv1 only (no RoCEv2 GID); the server answers with a version-2 Accept.
    const c = clientSide({ port: { ...cport, gidV2: undefined } });
    const offer = must(clientProposal(c.cfg, c.port, c.tcp), 'proposal').offer;
    const { accept } = defaultAccept();
    return { outcome: onAccept(accept, offer, c), version: 2 };
  },
  RMBE_EC: () => ({ outcome: handshakeFailure(ccfg, 'RMBE_EYECATCHER', 1), version: 1 }),
  OPTUNSUPP: () => ({ outcome: clientPrecheck(ccfg, { peerSignalledSmc: true, presetFallback: R.OPTUNSUPP.code }) }),
  DIFFPREFIX: () => {
    const p = defaultProposal(clientSide({ port: { ...cport, gidV2: undefined } }));
    const s = serverSide({ tcp: { ...stcp, localAddress: '10.0.1.1', ifAddresses: [{ address: '10.0.1.1', prefixLen: 24 }] } });
    return { outcome: onProposal(p, s), version: 2 };
  },
  GETVLANERR: () => ({ outcome: clientProposal(ccfg, cport, { ...ctcp, vlanId: null }), version: 1 }),
  NOACTLINK: () => ({ outcome: handshakeFailure(scfg, 'NO_ACTIVE_LINK', 2), version: 2 }),
  NOSRVLINK: () => {
    // Reuse, then the assigned link disappears (DELETE_LINK) while the driver registers the RMB.
    const first = handshake();
    const { server, client } = lgrsAfter(first);
    const r = handshake(clientSide({ lgrs: [client] }), serverSide({ lgrs: [server] }));
    return { outcome: clientRecheckLink(ccfg, r.ca, { ...client, links: [] }), version: 2 };
  },
  VERSMISMAT: () => {
    const p = defaultProposal(clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [2] }) }));
    return { outcome: onProposal(p, serverSide({ cfg: clcConfig({ systemId: SERVER.peerId, hostname: 's', versions: [1] }) })), version: 2 };
  },
  NOROUTE: () => {
    const { offer, accept } = defaultAccept(serverSide({ route: { found: true, viaGateway: true, nexthopMac: GATEWAY_MAC } }));
    return { outcome: onAccept(accept, offer, clientSide({ route: { found: false } })), version: 2 };
  },
  NOINDIRECT: () => {
    const { offer, accept } = defaultAccept(serverSide({ route: { found: true, viaGateway: true, nexthopMac: GATEWAY_MAC } }));
    return { outcome: onAccept(accept, offer, clientSide({ route: TO_SERVER_DIRECT })), version: 2 };
  },
  SYNCERR: () => {
    const first = handshake();
    const { server } = lgrsAfter(first);
    const { offer, sp } = proposeAndDecide(clientSide(), serverSide({ lgrs: [server] }));
    const acc = must(sp, 'accepting');
    const accept = roundtrip(serverAccept(scfg, acc, acc.reuse!.link, SRMB));
    return { outcome: onAccept(accept, offer, clientSide({ lgrs: [] })), version: 2 };
  },
  PEERDECL: () => {
    const { offer } = defaultAccept();
    const decline = roundtrip(declineMessage(R.NOSMCRDEV.code, 2, SERVER.peerId));
    return { outcome: onAccept(decline, offer) };
  },
  INTERR: () => ({ outcome: handshakeFailure(scfg, 'QP_CREATE', 1), version: 1 }),
  ERR_RTOK: () => {
    const { offer, accept } = defaultAccept();
    return { outcome: onAccept(roundtrip({ ...accept, rmbeIdx: 0 }), offer), version: 2 };
  },
  ERR_RDYLNK: () => {
    const { offer, accept } = defaultAccept();
    return { outcome: onAccept(roundtrip({ ...accept, qpMtu: 0 }), offer), version: 2 };
  },
  ERR_REGBUF: () => ({ outcome: handshakeFailure(ccfg, 'BUF_REGISTER', 2), version: 2 }),
};

describe('clc: every userspace reason code of spec 4.2 is reached through these functions', () => {
  const userspace = REASON_LIST.filter((e) => e.userspace);
  it('covers the whole userspace list', () => {
    assert.ok(userspace.length >= 25);
    for (const e of userspace) assert.ok(PROVOKE[e.name.replace('SMC_CLC_DECL_', '')], `no test provokes ${e.name}`);
  });

  for (const e of userspace) {
    const key = e.name.replace('SMC_CLC_DECL_', '');
    it(`0x${e.code.toString(16).padStart(8, '0')} ${key}`, () => {
      const { outcome, version } = PROVOKE[key]!();
      if (e.code === R.PEERDECL.code) {
        const o = must(outcome as ClcFailure, 'peer-declined');
        assert.equal(o.reason, R.PEERDECL.code);
        assert.equal(o.peerDiagnosis, R.NOSMCRDEV.code);
      } else if (e.wire === 'local' && e.code !== R.PEERNOSMC.code) {
        const o = must(outcome as ClcFailure, 'fallback');
        assert.equal(o.reason, e.code);
      } else {
        assert.ok(version !== undefined);
        assertDecline(outcome, e.code, version);
      }
    });
  }

  it('PEERNOSMC is local on the client (nothing sent) and on the server before any Proposal', () => {
    assert.deepEqual(must(clientPrecheck(ccfg, { peerSignalledSmc: false }), 'fallback').reason, R.PEERNOSMC.code);
    assert.equal(must(serverPrecheck({ peerSignalledSmc: false }), 'fallback').reason, R.PEERNOSMC.code);
    assert.equal(must(serverPrecheck({ peerSignalledSmc: true, presetFallback: R.OPTUNSUPP.code }), 'fallback').reason, R.OPTUNSUPP.code);
    must(serverPrecheck({ peerSignalledSmc: true }), 'proceed');
    must(clientPrecheck(ccfg, { peerSignalledSmc: true }), 'proceed');
  });

  it('IPSEC (not detectable from Node, handled when told): version 1 before an Accept, Proposal version on the server', () => {
    assertDecline(clientPrecheck(ccfg, { peerSignalledSmc: true, ipsec: true }), R.IPSEC.code, 1);
    const o = serverOnProposal(scfg, defaultProposal(), { port: sport, tcp: stcp, lgrs: [], ipsec: true });
    assertDecline(o, R.IPSEC.code, 2);
  });

  it('NOSMCRDEV also when the route to the client RoCEv2 address is missing', () => {
    const p = defaultProposal(clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [2] }) }));
    assertDecline(onProposal(p, serverSide({ route: { found: false } })), R.NOSMCRDEV.code, 2);
    assertDecline(onProposal(p, serverSide({ port: { ...sport, gidV2: undefined } })), R.NOSMCRDEV.code, 2);
  });

  it('server: NOSMCDEV for a v1 Proposal without a RoCE port; GETVLANERR, DIFFPREFIX first', () => {
    const p = defaultProposal(clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [1] }) }));
    assertDecline(onProposal(p, serverSide({ port: undefined })), R.NOSMCDEV.code, 1);
    assertDecline(onProposal(p, serverSide({ tcp: { ...stcp, vlanId: null } })), R.GETVLANERR.code, 1);
    const far = { ...stcp, vlanId: null, ifAddresses: [{ address: '10.9.0.1', prefixLen: 24 }] };
    assertDecline(onProposal(p, serverSide({ tcp: far })), R.DIFFPREFIX.code, 1);
  });

  it('client: v1 and v2 both possible but no prefix: v1 is dropped, v2 still offered', () => {
    const tcp = { ...ctcp, ifAddresses: [{ address: '192.168.1.5', prefixLen: 24 }] };
    const p = must(clientProposal(ccfg, cport, tcp), 'proposal').proposal;
    assert.equal(p.typev1, 'N');
    assert.equal(p.typev2, 'R');
    assert.equal(p.ipPrefix, undefined);
    assert.deepEqual(p.peerId, Buffer.alloc(8));
    roundtrip(p);
  });

  it('client: NOSMCDEV when the port lacks the GIDs of the enabled versions', () => {
    assertDecline(clientProposal(ccfg, { mac: CLIENT.mac, activeMtu: 3 }, ctcp), R.NOSMCDEV.code, 1);
    const v2only = clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [2] });
    assertDecline(clientProposal(v2only, cport, { ...ctcp, localAddress: '2001:db8::2' }), R.NOSMCDEV.code, 1);
  });

  it('MODEUNSUPP for an SMC-D Accept (the decoder flags it UNSUPPORTED)', () => {
    let err: unknown;
    try {
      decodeClc(SMCD_ACCEPT);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof WireError);
    assertDecline(clcReceiveFailure(ccfg, 'client', err, peekClcHeader(SMCD_ACCEPT)), R.MODEUNSUPP.code, 1);
  });

  it('MODEUNSUPP for a v1 Accept after a v2-only offer', () => {
    const c = clientSide({ cfg: clcConfig({ systemId: CLIENT.peerId, hostname: 'c', versions: [2] }) });
    const offer = must(clientProposal(c.cfg, c.port, c.tcp), 'proposal').offer;
    const { accept } = defaultAccept(serverSide({ cfg: clcConfig({ systemId: SERVER.peerId, hostname: 's', versions: [1] }) }));
    assert.equal(accept.version, 1);
    assertDecline(onAccept(accept, offer, c), R.MODEUNSUPP.code, 1);
  });

  it('server: rtoken / QP sanity of the Confirm (ERR_RTOK, ERR_RDYLNK)', () => {
    const r = handshake();
    assertDecline(serverOnConfirm(scfg, r.sp, roundtrip({ ...r.confirm, rmbeIdx: 0 })), R.ERR_RTOK.code, 2);
    assertDecline(serverOnConfirm(scfg, r.sp, roundtrip({ ...r.confirm, qpMtu: 6 })), R.ERR_RDYLNK.code, 2);
  });

  it('every HandshakeFailure maps to a code Linux declines with', () => {
    for (const [name, f] of Object.entries(HandshakeFailure)) {
      assertDecline(handshakeFailure(scfg, name as keyof typeof HandshakeFailure, 2), f.reason, 2);
    }
  });
});

describe('clc: Decline messages (spec 3.5, 12 row 14)', () => {
  it('version 1: 28 bytes exactly as the captured Linux Decline', () => {
    const m = declineMessage(R.NOSMCDEV.code, 1, h('2525252525252500'));
    assert.deepEqual(clcToBuffer(m), h('e2d4c3d9 04 001c 10 2525252525252500 03030000 00000000 e2d4c3d9'));
  });

  it('version 2 SYNCERR: 44 bytes, flags 0x28, OS type Linux, zero extra diagnosis', () => {
    const m = declineMessage(R.SYNCERR.code, 2, SERVER.peerId);
    assert.deepEqual(
      clcToBuffer(m),
      h(
        'e2d4c3d9 04 002c 28', // SMCR, Decline, 44 bytes, version 2 + out of sync
        '51a7b8cef6abcdef', // peer ID
        '04000000', // SYNCERR
        '20 000000', // OS type 2 (Linux), reserved
        '00000000 00000000 00000000 00000000', // additional diagnosis codes
        'e2d4c3d9',
      ),
    );
  });

  it('the out-of-sync bit follows SYNCERR unless told otherwise', () => {
    assert.equal(declineMessage(R.NOSMCDEV.code, 2, SERVER.peerId).outOfSync, false);
    assert.equal(declineMessage(R.NOSMCDEV.code, 2, SERVER.peerId, true).outOfSync, true);
  });

  it('local-only and unknown codes are never put into a Decline; PEERNOSMC is', () => {
    for (const code of [R.PEERDECL.code, R.OPTUNSUPP.code, R.ACTIVE.code, 0x12345678]) {
      assert.throws(() => declineMessage(code, 2, SERVER.peerId), ClcConfigError);
    }
    roundtrip(declineMessage(R.PEERNOSMC.code, 2, SERVER.peerId));
    assert.throws(() => declineMessage(R.NOSMCDEV.code, 2, Buffer.alloc(6)), ClcConfigError);
  });

  it('the client declines in version 1 before an Accept and in the Accept version after it', () => {
    assertDecline(clientProposal(ccfg, undefined, ctcp), R.NOSMCDEV.code, 1);
    const v1 = defaultAccept(serverSide({ cfg: clcConfig({ systemId: SERVER.peerId, hostname: 's', versions: [1] }) }));
    assertDecline(onAccept(roundtrip({ ...v1.accept, rmbeIdx: 0 }), v1.offer), R.ERR_RTOK.code, 1);
  });

  it('a received Decline: PEERDECL with the peer diagnosis and the out-of-sync bit', () => {
    const d = roundtrip(declineMessage(R.SYNCERR.code, 2, SERVER.peerId));
    const o = onDecline(d);
    assert.deepEqual(
      { kind: o.kind, reason: o.reason, peerDiagnosis: o.peerDiagnosis, outOfSync: o.outOfSync },
      { kind: 'peer-declined', reason: R.PEERDECL.code, peerDiagnosis: R.SYNCERR.code, outOfSync: true },
    );
    const first = handshake();
    must(serverOnConfirm(scfg, first.sp, d as ClcMessage), 'peer-declined');
    must(onProposal(d as unknown as ClcProposal), 'peer-declined');
  });
});

describe('clc: errors that do not fall back (negative errno)', () => {
  it('an unexpected message type is EPROTO on every step', () => {
    const r = handshake();
    must(serverOnProposal(scfg, r.accept, { port: sport, tcp: stcp, lgrs: [] }), 'error');
    must(clientOnAccept(ccfg, r.offer, r.proposal, { lgrs: [] }), 'error');
    must(clientOnAccept(ccfg, r.offer, r.confirm, { lgrs: [] }), 'error');
    must(serverOnConfirm(scfg, r.sp, r.accept), 'error');
    assert.equal(must(serverOnConfirm(scfg, r.sp, r.proposal), 'error').code, EngineErrorCode.PROTOCOL);
  });

  it('garbage on the CLC stream is EPROTO (the server drops the connection)', () => {
    const junk = Buffer.from('GET / HTTP/1.1\r\n');
    let err: unknown;
    try {
      peekClcHeader(junk);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof WireError);
    assert.equal(must(clcReceiveFailure(scfg, 'server', err), 'error').code, EngineErrorCode.PROTOCOL);
    // A server never declines an SMC-D Accept: it never waits for one.
    assert.equal(clcReceiveFailure(scfg, 'server', new WireError('ERR_SMC_WIRE_UNSUPPORTED', 'x', 0), peekClcHeader(SMCD_ACCEPT)).kind, 'error');
  });

  it('CLC waits that end without a message', () => {
    assert.equal(clcWaitFailure('timeout').code, EngineErrorCode.TIMEOUT);
    assert.equal(clcWaitFailure('eof').code, EngineErrorCode.RESET);
    assert.equal(clcWaitFailure('interrupted').code, EngineErrorCode.ABORTED);
  });

  it('a Proposal offering SMCv1 without a prefix area (hand-built) is EPROTO', () => {
    const { ipPrefix: _x, ...p } = defaultProposal();
    must(onProposal(p as ClcProposal), 'error');
  });

  it('outcomeError gives SmcReasonError for fallbacks, EngineError otherwise', () => {
    const d = outcomeError(must(clientProposal(ccfg, undefined, ctcp), 'decline'));
    assert.ok(d instanceof SmcReasonError);
    assert.equal(d.reason, R.NOSMCDEV.code);
    assert.equal(d.decline, true);
    const f = outcomeError(must(clientPrecheck(ccfg, { peerSignalledSmc: false }), 'fallback'));
    assert.ok(f instanceof SmcReasonError);
    assert.equal(f.decline, false);
    const p = outcomeError(onDecline(declineMessage(R.NOUEID.code, 2, SERVER.peerId)));
    assert.ok(p instanceof SmcReasonError);
    assert.equal(p.code, SmcReasonErrorCode.DECLINED);
    assert.equal(p.peerDiagnosis, R.NOUEID.code);
    const e = outcomeError(clcWaitFailure('timeout'));
    assert.ok(e instanceof EngineError);
    assert.equal(e.code, EngineErrorCode.TIMEOUT);
  });
});

describe('clc: configuration', () => {
  it('defaults: v1+v2, release 1, 255 conns, 1 link, mask 0, the Anolis UEID, 64 KiB buffers', () => {
    const c = clcConfig({ systemId: CLIENT.peerId, hostname: 'h' });
    assert.deepEqual({ ...c, systemId: undefined }, {
      systemId: undefined, hostname: 'h', ueids: [DEFAULT_UEID], versions: [1, 2], release: 1, maxConns: 255, maxLinks: 1, featureMask: 0, rmbSize: 65536, sndbufSize: 65536,
    });
    assert.ok(Object.isFrozen(c));
  });

  it('UEID rule of the kernel', () => {
    for (const ok of ['SMCV2-DEFAULT-UEID', 'A', '0', 'A.B-C', 'X'.repeat(32)]) assert.ok(isValidUeid(ok), ok);
    for (const bad of ['', 'smcv2', '-A', '.A', 'A B', 'A_B', 'X'.repeat(33), 'Ä']) assert.ok(!isValidUeid(bad), bad);
  });

  it('rejects what the kernel would not accept', () => {
    const base = { systemId: CLIENT.peerId, hostname: 'h' };
    const bad: Partial<ClcConfig>[] = [
      { ueids: ['lower'] }, { ueids: ['A', 'A'] }, { ueids: ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I'] },
      { maxConns: 15 }, { maxConns: 256 }, { maxLinks: 0 }, { maxLinks: 3 }, { versions: [] }, { versions: [3 as 1] },
      { release: 2 }, { featureMask: 0x10000 }, { rmbSize: 100000 }, { rmbSize: 8192 }, { sndbufSize: 3 },
      { systemId: Buffer.alloc(6) },
    ];
    for (const b of bad) assert.throws(() => clcConfig({ ...base, ...b }), ClcConfigError, JSON.stringify(b));
  });

  it('normalises like the kernel: host name cut to 32, UEID padding dropped', () => {
    const c = clcConfig({ systemId: CLIENT.peerId, hostname: 'a-very-long-host-name.example.com.invalid', ueids: ['ABC   '] });
    assert.equal(c.hostname, 'a-very-long-host-name.example.co');
    assert.deepEqual(c.ueids, ['ABC']);
  });

  it('system ID = 2 random bytes + MAC (spec 3.4.1)', () => {
    assert.deepEqual(systemIdFrom(h('9c3e'), CLIENT.mac), CLIENT.peerId);
    assert.throws(() => systemIdFrom(h('9c'), CLIENT.mac), ClcConfigError);
  });

  it('local link / RMB values are checked before a message is built', () => {
    const r = handshake();
    assert.throws(() => clientConfirm(ccfg, r.ca, r.clink, { ...CRMB, size: 100000 }), ClcConfigError);
    assert.throws(() => clientConfirm(ccfg, r.ca, r.clink, { ...CRMB, alertToken: 0 }), ClcConfigError);
    assert.throws(() => serverAccept(scfg, r.sp, { ...r.slink, pathMtu: 0 }, SRMB), ClcConfigError);
    assert.throws(() => clientProposal(ccfg, { ...cport, gidV2: CLIENT.gidV1 }, ctcp), ClcConfigError, 'a v2 GID must be IPv4-mapped');
  });
});

// ---------------------------------------------------------------------------------------------------
// properties

const ueidArb = fc.stringMatching(/^[A-Z0-9][A-Z0-9.-]{0,31}$/);
const POOL = ['SMCV2-DEFAULT-UEID', 'TEAM-A', 'TEAM-B', 'ZONE.1', 'ZONE.2'];

const cfgArb = (systemId: Buffer): fc.Arbitrary<ClcConfig> =>
  fc
    .record({
      hostname: fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,40}$/),
      ueids: fc.oneof({ arbitrary: fc.subarray(POOL, { minLength: 1 }), weight: 4 }, { arbitrary: fc.uniqueArray(ueidArb, { maxLength: 8 }), weight: 1 }),
      versions: fc.oneof({ arbitrary: fc.constant<(1 | 2)[]>([1, 2]), weight: 3 }, fc.constantFrom<(1 | 2)[]>([1], [2])),
      release: fc.integer({ min: 0, max: 1 }),
      maxConns: fc.integer({ min: 16, max: 255 }),
      maxLinks: fc.integer({ min: 1, max: 2 }),
      featureMask: fc.integer({ min: 0, max: 0xffff }),
      rmbSize: fc.integer({ min: 0, max: 5 }).map((n) => 16384 << n),
    })
    .map((r) => clcConfig({ systemId, ...r }));

const routeArb: fc.Arbitrary<ClcRoute> = fc.oneof(
  { arbitrary: fc.constant<ClcRoute>({ found: false }), weight: 1 },
  { arbitrary: fc.boolean().map((gw): ClcRoute => ({ found: true, viaGateway: gw, nexthopMac: gw ? GATEWAY_MAC : SERVER.mac })), weight: 5 },
);

const likely = fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 });

/** Optional GIDs on a port. */
const portArb = (mac: Buffer, g1: Buffer, g2: Buffer): fc.Arbitrary<ClcRocePort | undefined> =>
  fc.option(
    fc.record({ mtu: fc.integer({ min: 1, max: 5 }), v1: likely, v2: likely }).map(({ mtu, v1, v2 }) => ({
      mac,
      activeMtu: mtu,
      ...(v1 ? { gidV1: g1 } : {}),
      ...(v2 ? { gidV2: g2 } : {}),
    })),
    { freq: 8, nil: undefined },
  );

describe('clc: properties', () => {
  it('random valid configurations: every message round-trips and a completed handshake is consistent', () => {
    fc.assert(
      fc.property(
        cfgArb(CLIENT.peerId),
        cfgArb(SERVER.peerId),
        portArb(CLIENT.mac, CLIENT.gidV1, CLIENT.gidV2),
        portArb(SERVER.mac, SERVER.gidV1, SERVER.gidV2),
        fc.oneof({ arbitrary: fc.constant('same'), weight: 6 }, fc.constantFrom('other-subnet', 'ipv6')),
        routeArb,
        routeArb,
        (cc, sc, cp, sp, topo, croute, sroute) => {
          const ct: ClcTcpInfo =
            topo === 'ipv6' ? { localAddress: '2001:db8:1::2', ifAddresses: [{ address: '2001:db8:1::2', prefixLen: 64 }], vlanId: 0 } : ctcp;
          const st: ClcTcpInfo =
            topo === 'ipv6'
              ? { localAddress: '2001:db8:1::1', ifAddresses: [{ address: '2001:db8:1::1', prefixLen: 64 }], vlanId: 0 }
              : topo === 'other-subnet'
                ? { localAddress: '10.0.5.1', ifAddresses: [{ address: '10.0.5.1', prefixLen: 24 }], vlanId: 0 }
                : stcp;
          const cpo = clientProposal(cc, cp, ct);
          if (cpo.kind === 'decline') {
            roundtrip(cpo.message);
            assert.equal(cpo.version, 1);
            return;
          }
          const p = roundtrip(cpo.proposal);
          const q = serverRouteQuery(sc, p, st);
          const so = serverOnProposal(sc, p, { port: sp, tcp: st, lgrs: [], ...(q ? { route: sroute } : {}) });
          if (so.kind !== 'accepting') {
            const d = must(so, 'decline');
            roundtrip(d.message);
            assert.equal(d.version, p.version >= 2 ? 2 : 1);
            return;
          }
          if (so.version === 2) {
            assert.equal(so.eid, p.v2Ext!.ueids.find((u) => sc.ueids.includes(u)));
            if (so.release >= 1) {
              assert.equal(so.maxConns, Math.min(cc.maxConns, sc.maxConns));
              assert.equal(so.maxLinks, Math.min(cc.maxLinks, sc.maxLinks));
            }
          }
          const accept = roundtrip(serverAccept(sc, so, newServerLink(so), { ...SRMB, size: sc.rmbSize }));
          const cq = clientRouteQuery(cpo.offer, accept);
          const co = clientOnAccept(cc, cpo.offer, accept, { lgrs: [], ...(cq ? { route: croute } : {}) });
          if (co.kind !== 'accepted') {
            const d = must(co, 'decline');
            const routeCodes: number[] = [R.NOROUTE.code, R.NOINDIRECT.code];
            assert.ok(routeCodes.includes(d.reason), d.detail);
            roundtrip(d.message);
            return;
          }
          assert.equal(co.peerRmb.rmbeSize, sc.rmbSize);
          const confirm = roundtrip(clientConfirm(cc, co, newClientLink(co, cp!), { ...CRMB, size: cc.rmbSize }));
          const done: ServerConfirmed = must(serverOnConfirm(sc, so, confirm), 'confirmed');
          assert.equal(done.pathMtu, Math.min(cp!.activeMtu, sp!.activeMtu));
          assert.equal(co.pathMtu, done.pathMtu);
          assert.equal(done.featureMask, co.version === 2 && co.release >= 1 ? cc.featureMask & sc.featureMask : so.featureMask);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('every Decline built from a sendable code round-trips with the right header', () => {
    const sendable = REASON_LIST.filter((e) => e.wire !== 'local' || e.code === R.PEERNOSMC.code).map((e) => e.code);
    fc.assert(
      fc.property(fc.constantFrom(...sendable), fc.constantFrom<1 | 2>(1, 2), fc.uint8Array({ minLength: 8, maxLength: 8 }), (code, version, id) => {
        const m: ClcDecline = roundtrip(declineMessage(code, version, Buffer.from(id)));
        assert.equal(clcToBuffer(m)[7], (version << 4) | (code === R.SYNCERR.code ? 8 : 0));
      }),
    );
  });

  it('Accept/Confirm built for random link values round-trip', () => {
    const r = handshake();
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0xffffff }),
        fc.integer({ min: 0, max: 0xffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.integer({ min: 1, max: 5 }),
        (qpn, psn, rkey, vaddr, n, alertToken, mtu) => {
          const lk: ClcLocalLink = { qpn, psn, gid: SERVER.gidV2, mac: SERVER.mac, pathMtu: mtu };
          const rmb: ClcLocalRmb = { rkey, vaddr, size: 16384 * 2 ** n, alertToken };
          const a: ClcAccept = roundtrip(serverAccept(scfg, r.sp, lk, rmb));
          assert.equal(a.rmbeSizeCode, n);
          const c: ClcConfirm = roundtrip(clientConfirm(ccfg, r.ca, { ...lk, gid: CLIENT.gidV2, mac: CLIENT.mac }, rmb));
          assert.equal(c.qpMtu, Math.min(mtu, r.ca.peer.mtu));
        },
      ),
    );
  });
});
