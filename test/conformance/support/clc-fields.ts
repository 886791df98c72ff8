/**
 * What tshark 4.0.17 must show for one of our CLC messages (oracles.md 5, Proposal / Accept /
 * Confirm / Decline rows): every field, at the offset tshark reads it, with our message's value in
 * tshark's format. Real fields take their value from the decoded message; reserved areas
 * (`smc.reserved`, FT_BYTES) take the bytes we sent at that offset, which is how the fields tshark
 * only shows as reserved (oracles.md 6.4: v2.1 max_conns / max_links / feature_mask, vendor
 * options, Alibaba init_credits) are compared; the test checks those bytes against our encoding.
 *
 * Entries are collected with their offset and grouped by name in offset order, which is the order
 * tshark prints repeated fields in.
 */
import type { ClcAccept, ClcConfirm, ClcDecline, ClcMessage, ClcProposal } from '@smc-r/wire';
import { SmcType, smcdIndicated } from '@smc-r/wire';
import { b01, bytesAt, gidText, colonHex, hx, type FieldMap } from './tshark.js';

class Entries {
  readonly list: { off: number; name: string; value: string }[] = [];
  add(off: number, name: string, value: string): void {
    this.list.push({ off, name, value });
  }
  reserved(b: Buffer, off: number, n: number): void {
    this.add(off, 'smc.reserved', bytesAt(b, off, n));
  }
  toFields(): FieldMap {
    const out: FieldMap = {};
    for (const e of [...this.list].sort((x, y) => x.off - y.off)) (out[e.name] ??= []).push(e.value);
    return out;
  }
}

/** EIDs and host names: tshark keeps the 32-byte blank padding (oracles.md 4). */
const padded = (s: string): string => s.padEnd(32, ' ');
const ipv4 = (b: Uint8Array): string => Array.from(b).join('.');
const typeBits = (t: keyof typeof SmcType): string => String(SmcType[t].value);

/** Whether a Proposal uses the RFC 7609 layout (prefix area at 40) that tshark 4.0.17 misdecodes. */
export function isRfc7609Proposal(m: ClcMessage): boolean {
  return m.type === 'proposal' && m.version === 1 && m.ipAreaOffset === 0;
}

/**
 * Whether tshark 4.0.17 marks the frame of this message Malformed. Only the RFC 7609 Proposal too
 * short to hold the 40-byte SMC-D area tshark assumes (oracles.md 6.1) is.
 */
export function tsharkMarksMalformed(m: ClcMessage, b: Buffer): boolean {
  return isRfc7609Proposal(m) && b.length < 80;
}

/** Expected tshark fields of one CLC message `m`, sent as the bytes `b`. */
export function expectedClcFields(m: ClcMessage, b: Buffer): FieldMap {
  const e = new Entries();
  e.add(4, 'smc.clc_msg', String(b[4]!));
  e.add(5, 'smc.length', String(b.length));
  switch (m.type) {
    case 'proposal':
      proposal(e, m, b);
      break;
    case 'accept':
    case 'confirm':
      acceptConfirm(e, m, b);
      break;
    case 'decline':
      decline(e, m, b);
      break;
  }
  return e.toFields();
}

function proposal(e: Entries, m: ClcProposal, b: Buffer): void {
  e.add(7, 'smc.proposal.flags', hx(b[7]!, 1));
  e.add(7, 'smc.proposal.smc.version', String(m.version));
  if (m.version >= 2) e.add(7, 'smc.proposal.smcv2.type', typeBits(m.typev2));
  e.add(7, 'smc.proposal.smc.type', typeBits(m.typev1));
  e.add(8, 'smc.proposal.sender.client.peer.id', `0x${m.peerId.toString('hex')}`);
  const v1 = m.typev1 !== 'N';
  if (v1) {
    e.add(16, 'smc.proposal.client.preferred.gid', gidText(m.gid));
    e.add(32, 'smc.proposal.client.preferred.mac', colonHex(m.mac));
    e.add(38, 'smc.proposal.smcv1_subnet_ext_offset', hx(m.ipAreaOffset, 2));
  } else {
    e.reserved(b, 16, 22); // GID + MAC, not offered
    e.reserved(b, 38, 2); // iparea_offset
  }
  // tshark 4.0.17 always assumes the 40-byte SMC-D / common area at 40, whatever iparea_offset says.
  const smcd = smcdIndicated(m.typev1) || smcdIndicated(m.typev2);
  if (isRfc7609Proposal(m)) {
    // Quirk (oracles.md 6.1): our bytes 40.. are the IP prefix area (subnet, mask bits, IPv6
    // prefixes, trailer), but tshark reads them as the SMC-D area: bytes 48-51 and 52-79 as
    // reserved, as far as the message reaches, and then shows no prefix area at all.
    if (b.length >= 52) {
      e.reserved(b, 48, 2);
      e.reserved(b, 50, 2);
    }
    if (b.length >= 80) e.reserved(b, 52, 28);
    return;
  }
  const area = m.smcdArea!;
  if (smcd) {
    e.add(40, 'smc.proposal.ism.gid', hx(area.ismGid, 8));
    e.add(48, 'smc.proposal.smc.chid', hx(area.ismChid, 2));
  } else {
    e.reserved(b, 48, 2);
  }
  let extAt = 80;
  if (m.ipPrefix !== undefined) extAt += 8 + 17 * m.ipPrefix.ipv6Prefixes.length;
  if (m.version >= 2) e.add(50, 'smc.proposal.smcv2_ext_offset', hx(m.v2Ext !== undefined ? extAt - 52 : 0, 2));
  else e.reserved(b, 50, 2);
  e.reserved(b, 52, 28); // vendor OUI + vendor options + reserved (6.4: vendor options only as reserved)
  if (m.ipPrefix !== undefined) {
    const p = m.ipPrefix;
    e.add(80, 'smc.outgoing.interface.subnet.mask', ipv4(p.subnet));
    e.add(84, 'smc.outgoing.interface.subnet.mask.number.of.significant.bits', String(p.prefixLen));
    e.reserved(b, 85, 2);
    e.add(87, 'smc.proposal.ipv6.prefix.count', String(p.ipv6Prefixes.length));
    p.ipv6Prefixes.forEach((x, i) => {
      e.add(88 + 17 * i, 'smc.proposal.ipv6.prefix.value', gidText(x.prefix));
      e.add(88 + 17 * i + 16, 'smc.proposal.ipv6.prefix.length', String(x.prefixLen));
    });
  }
  const x = m.v2Ext;
  if (x === undefined) return;
  const d = m.smcdV2Ext;
  const at = extAt;
  e.add(at, 'smc.proposal.eid.count', String(x.ueids.length));
  e.add(at + 1, 'smc.proposal.ismv2_gid_count', String(d?.gidChids.length ?? 0));
  e.reserved(b, at + 2, 1);
  e.add(at + 3, 'smc.proposal.extflags.2', hx((x.release << 4) | (x.seid ? 1 : 0), 1));
  e.add(at + 3, 'smc.proposal.smc.version.relnum', String(x.release));
  e.add(at + 3, 'smc.proposal.smc.seid', b01(x.seid));
  e.reserved(b, at + 4, 2);
  e.add(at + 6, 'smc.proposal.smcdv2_ext_offset', hx(d !== undefined ? 32 + 32 * x.ueids.length : 0, 2));
  // IPv4 connection: the RoCEv2 GID is shown as reserved 12 bytes + an IPv4 address (oracles.md 6.8).
  e.reserved(b, at + 8, 12);
  e.add(at + 20, 'smc.proposal.rocev2.gid.ipv4', ipv4(x.roceGid.subarray(12, 16)));
  e.reserved(b, at + 24, 16); // v2.1 max_conns, max_links, feature_mask + 12 reserved (6.4)
  x.ueids.forEach((u, i) => e.add(at + 40 + 32 * i, 'smc.proposal.eid', padded(u)));
  if (d !== undefined) {
    const s = at + 40 + 32 * x.ueids.length;
    e.add(s, 'smc.proposal.system.eid', padded(d.systemEid));
    e.reserved(b, s + 32, 16);
    d.gidChids.forEach((g, i) => {
      e.add(s + 48 + 10 * i, 'smc.proposal.ism.gid', hx(g.gid, 8));
      e.add(s + 48 + 10 * i + 8, 'smc.proposal.smc.chid', hx(g.chid, 2));
    });
  }
}

function acceptConfirm(e: Entries, m: ClcAccept | ClcConfirm, b: Buffer): void {
  const acc = m.type === 'accept';
  // Names per oracles.md 5; the "(sic)" ones are shared with other messages.
  const n = acc
    ? {
      flags: 'smc.accept.flags', first: 'smc.proposal.first.contact', peer: 'smc.accept.sender.server.peer.id',
      gid: 'smc.accept.server.preferred.gid', mac: 'smc.accept.server.preferred.mac', qp: 'smc.accept.server.qp.number',
      rkey: 'smc.accept.server.rmb.rkey', idx: 'smc.accept.server.tcp.conn.index', token: 'smc.accept.server.rmb.element.alert.token',
      flags2: 'smc.accept.flags.2', size: 'smc.accept.rmb.buffer.size', mtu: 'smc.accept.qp.mtu.value',
      vaddr: 'smc.accept.server.rmb.virtual.address', psn: 'smc.accept.initial.psn', eid: 'smc.accept.eid',
      os: 'smc.accept.os.type', rel: 'smc.accept.smc.version.relnum', host: 'smc.accept.peer.host.name',
    }
    : {
      flags: 'smc.confirm.flags', first: 'smc.confirm.first.contact', peer: 'smc.confirm.sender.client.peer.id',
      gid: 'smc.client.gid', mac: 'smc.confirm.client.mac', qp: 'smc.confirm.client.qp.number',
      rkey: 'smc.confirm.client.rmb.rkey', idx: 'smc.confirm.client.tcp.conn.index', token: 'smc.client.rmb.element.alert.token',
      flags2: 'smc.confirm.flags.2', size: 'smc.confirm.rmb.buffer.size', mtu: 'smc.confirm.qp.mtu.value',
      vaddr: 'smc.client.rmb.virtual.address', psn: 'smc.initial.psn', eid: 'smc.confirm.eid',
      os: 'smc.confirm.os.type', rel: 'smc.confirm.smc.version.relnum', host: 'smc.confirm.peer.host.name',
    };
  e.add(7, n.flags, hx(b[7]!, 1));
  e.add(7, 'smc.proposal.smc.version', String(m.version)); // (sic) in Accept and Confirm
  e.add(7, n.first, b01(m.firstContact));
  if (!acc) e.add(7, 'smc.confirm.smc.type', '0'); // SMC-R; the Accept's type bits are not shown
  e.add(8, n.peer, `0x${m.peerId.toString('hex')}`);
  e.add(16, n.gid, gidText(m.gid));
  e.add(32, n.mac, colonHex(m.mac));
  e.add(38, n.qp, hx(m.qpn, 3));
  e.add(41, n.rkey, hx(m.rmbRkey, 4));
  e.add(45, n.idx, String(m.rmbeIdx));
  e.add(46, n.token, hx(m.rmbeAlertToken, 4));
  e.add(50, n.flags2, hx((m.rmbeSizeCode << 4) | m.qpMtu, 1));
  e.add(50, n.size, String(m.rmbeSizeCode));
  e.add(50, n.mtu, String(m.qpMtu));
  e.reserved(b, 51, 1); // Alibaba init_credits (6.4)
  e.add(52, n.vaddr, hx(m.rmbVaddr, 8));
  e.reserved(b, 60, 1);
  e.add(61, n.psn, hx(m.psn, 3));
  if (m.version < 2) return;
  e.add(64, n.eid, padded(m.eid ?? ''));
  e.reserved(b, 96, 8);
  const f = m.fce;
  if (f === undefined) return;
  e.add(104, 'smc.accept.fce1.flags', hx(f.v2Direct ? 0x80 : 0, 1)); // (sic) in Confirm too
  e.add(104, 'smc.accept.v2_lg.type', b01(f.v2Direct)); // (sic) in Confirm too
  e.add(105, 'smc.accept.fce.flags', hx((f.osType << 4) | f.release, 1)); // (sic) in Confirm too
  e.add(105, n.os, String(f.osType));
  e.add(105, n.rel, String(f.release));
  e.reserved(b, 106, 2);
  e.add(108, n.host, padded(f.hostname));
  if (f.maxConns !== undefined) e.reserved(b, 140, 16); // v2.1 max_conns, max_links, feature_mask, vendor options (6.4)
  if (m.type === 'confirm' && m.gidList !== undefined) {
    e.add(156, 'smc.confirm.gid.list.entry_count', String(m.gidList.length));
    e.reserved(b, 157, 3);
    m.gidList.forEach((g, i) => e.add(160 + 16 * i, 'smc.confirm.gid.list.entry', gidText(g)));
  }
}

function decline(e: Entries, m: ClcDecline, b: Buffer): void {
  e.add(7, 'smc.decline.flags', hx(b[7]!, 1));
  e.add(7, 'smc.decline.smc.version', String(m.version));
  e.add(7, 'smc.decline.osync', b01(m.outOfSync));
  e.add(8, 'smc.sender.peer.id', `0x${m.peerId.toString('hex')}`);
  e.add(16, 'smc.peer.diag.info', hx(m.peerDiagnosis, 4));
  if (m.version >= 2) {
    e.add(20, 'smc.decline.flags2', hx(m.osType << 4, 1));
    e.add(20, 'smc.decline.os.type', String(m.osType));
    (m.diagnosisV2 ?? []).forEach((c, i) => e.add(24 + 4 * i, 'smc.peer.diag.info', hx(c, 4)));
  }
  // Bytes 20-23 of a v1 Decline and 21-23 of a v2 one are not shown at all.
}
