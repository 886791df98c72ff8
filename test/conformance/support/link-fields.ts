/**
 * What tshark 4.0.17 must show for one of our LLC / CDC messages (oracles.md 5, LLC and CDC rows):
 * every field name it prints, with the values of our message in tshark's formats. Fields that
 * tshark reads from somewhere else than the protocol puts them (its quirks, oracles.md 6) are
 * computed from the bytes we sent at the offsets tshark reads, so the quirk itself is asserted.
 *
 * `b` is the SEND payload as handed to tshark. For SMC-Rv2 messages that is the positive-control
 * form with `length_v2` (and ADD LINK's `num_rkeys`) byte-swapped, since tshark 4.0.17 reads both
 * big-endian and would not decode our (Linux-compatible, little-endian) bytes at all.
 */
import type { CdcMessage, LlcMessage } from '@smc-r/wire';
import { b01, bytesAt, gidText, colonHex, hx, hxAt, type FieldMap } from './tshark.js';

/** Expected tshark fields of an LLC message whose SEND payload was `b`. */
export function expectedLlcFields(msg: LlcMessage, b: Buffer): FieldMap {
  const f: FieldMap = {
    'smc.llc_msg': [hx(b[0]!, 1)],
    // tshark: v1 length byte; v2 length_v2 read big-endian from bytes 1-2.
    'smc.length': [String(msg.v2 ? b.readUInt16BE(1) : b[1]!)],
  };
  const flags = hx(msg.flags, 1);
  switch (msg.type) {
    case 'confirm_link':
      // Not shown: max_conns (byte 35) and the reserved tail, not even as smc.reserved.
      Object.assign(f, {
        'smc.confirm.link.flags': [flags],
        'smc.confirm.link.response': [b01(msg.resp)],
        'smc.confirm.link.sender.mac': [colonHex(msg.senderMac)],
        'smc.sender.gid': [gidText(msg.senderGid)], // (sic) oracles.md 5
        'smc.confirm.link.sender.qp.number': [hx(msg.senderQpn, 3)],
        'smc.confirm.link.number': [hx(msg.linkNum, 1)],
        'smc.confirm.link.sender.link.userid': [`0x${msg.linkUid.toString('hex')}`],
        'smc.confirm.link.max.links': [hx(msg.maxLinks, 1)],
      });
      break;
    case 'add_link': {
      Object.assign(f, {
        'smc.add.link.flags': [flags],
        'smc.add.link.response': [b01(msg.resp)],
        'smc.add.link.response.rejected': [b01(msg.reject)],
        'smc.add.link.sender.mac': [colonHex(msg.senderMac)],
        'smc.add.link.sender.gid': [gidText(msg.senderGid)],
        'smc.add.link.sender.qp.number': [hx(msg.senderQpn, 3)],
        'smc.add.link.link.number': [hx(msg.linkNum, 1)],
        'smc.add.link.flags2': [hx(b[32]!, 1)],
        'smc.add.link.qp.mtu.value': [String(msg.qpMtu)],
        'smc.add.link.initial.psn': [hx(msg.initialPsn, 3)],
      });
      // v1: the reject reason (byte 2 low nibble) is not shown at all. v2 responses: tshark shows a
      // reject reason taken from the low nibble of the FLAGS byte, not from the header.
      if (msg.v2 && msg.resp) f['smc.add.link.response.reject_reason'] = [hx(msg.flags & 0x0f, 1)];
      const reserved = [bytesAt(b, 10, 2)];
      if (msg.v2 && !msg.resp) reserved.push(bytesAt(b, 36, 8)); // holds Alibaba's init_credits (byte 36)
      const ext = msg.ext;
      if (ext !== undefined) {
        reserved.push(bytesAt(b, 45, 1), bytesAt(b, 62, 8));
        Object.assign(f, {
          'smc.add.link.flags3': [hx(b[44]!, 1)],
          'smc.add.link.direct_link': [b01(ext.v2Direct)],
          'smc.add.link.client_target_gid': [gidText(ext.clientTargetGid)],
          'smc.add.link.rkey_count': [String(ext.rkeys.length)], // read big-endian from bytes 70-71
        });
        if (ext.rkeys.length > 0) {
          f['smc.add.link.rmb.RTok.Rkey1'] = ext.rkeys.map((r) => hx(r.rkey, 4));
          f['smc.add.link.rmb.RTok.Rkey2'] = ext.rkeys.map((r) => hx(r.rkeyNew, 4));
          f['smc.add.link.rmb.RTok.virt'] = ext.rkeys.map((r) => hx(r.vaddrNew, 8));
        }
      }
      f['smc.reserved'] = reserved;
      break;
    }
    case 'add_link_cont': {
      // Quirk (oracles.md 6.2): tshark reads the rkey pairs from byte 6, two bytes before they start
      // (byte 8), and puts pair 2's address under the pair-1 name (6.3). So each value is the
      // big-endian number at tshark's offset in our bytes, not one of our rkeys.
      Object.assign(f, {
        'smc.add.link.cont.flags': [flags],
        'smc.add.link.cont.response': [b01(msg.resp)],
        'smc.add.link.cont.link.number': [hx(msg.linkNum, 1)],
        'smc.add.link.cont.rkey.number': [String(msg.numRkeys)],
      });
      if (msg.numRkeys >= 1) {
        f['smc.add.link.cont.rmb.RTok1.Rkey1'] = [hxAt(b, 6, 4)];
        f['smc.add.link.cont.rmb.RTok1.Rkey2'] = [hxAt(b, 10, 4)];
        f['smc.add.link.cont.rmb.RTok1.virt'] = [hxAt(b, 14, 8)];
      }
      if (msg.numRkeys >= 2) {
        f['smc.add.link.cont.rmb.RTok2.Rkey1'] = [hxAt(b, 22, 4)];
        f['smc.add.link.cont.rmb.RTok2.Rkey2'] = [hxAt(b, 26, 4)];
        f['smc.add.link.cont.rmb.RTok1.virt']!.push(hxAt(b, 30, 8));
      }
      break;
    }
    case 'delete_link':
      Object.assign(f, {
        'smc.delete.link.flags': [flags],
        'smc.delete.link.response': [b01(msg.resp)],
        'smc.delete.link.all': [b01(msg.all)],
        'smc.delete.link.orderly': [b01(msg.orderly)],
        'smc.delete.link.number': [hx(msg.linkNum, 1)],
        'smc.delete.link.reason.code': [hx(msg.reason, 4)],
      });
      break;
    case 'confirm_rkey':
      Object.assign(f, {
        'smc.confirm.rkey.flags': [flags],
        'smc.confirm.rkey.response': [b01(msg.resp)],
        'smc.confirm.rkey.negative.response': [b01(msg.negative)],
        'smc.confirm.rkey.retry.rkey.set': [b01(msg.retry)],
        'smc.confirm.rkey.number.qp': [String(msg.numRkeys)],
        'smc.confirm.rkey.new.rkey': [hx(msg.rkey, 4), ...msg.others.map((o) => hx(o.rkey, 4))],
        'smc.confirm.rkey.new.virt': [hx(msg.vaddr, 8), ...msg.others.map((o) => hx(o.vaddr, 8))],
      });
      if (msg.others.length > 0) f['smc.confirm.rkey.link.number'] = msg.others.map((o) => hx(o.linkId, 1));
      break;
    case 'confirm_rkey_cont':
      Object.assign(f, {
        'smc.confirm.rkey.flags': [flags],
        'smc.confirm.rkey.response': [b01(msg.resp)],
        'smc.confirm.rkey.negative.response': [b01(msg.negative)],
        'smc.confirm.rkey.retry.rkey.set': [b01((msg.flags & 0x10) !== 0)],
        'smc.confirm.rkey.number.qp': [String(msg.numRkeys)],
      });
      if (msg.rtokens.length > 0) {
        f['smc.confirm.rkey.link.number'] = msg.rtokens.map((o) => hx(o.linkId, 1));
        f['smc.confirm.rkey.new.rkey'] = msg.rtokens.map((o) => hx(o.rkey, 4));
        f['smc.confirm.rkey.new.virt'] = msg.rtokens.map((o) => hx(o.vaddr, 8));
      }
      break;
    case 'delete_rkey': {
      Object.assign(f, {
        'smc.delete.rkey.flags': [flags],
        'smc.delete.rkey.response': [b01(msg.resp)],
        'smc.delete.rkey.negative.response': [b01(msg.negative)],
        'smc.delete.rkey.count': [String(msg.numRkeys)],
        'smc.reserved': [bytesAt(b, 6, 2)],
      });
      let deleted = msg.rkeys.map((r) => hx(r, 4));
      if (!msg.v2) f['smc.delete.rkey.error.mask'] = [hx(msg.errMask, 1)];
      else if (msg.resp) {
        // v2 response: byte 5 is the count of invalid rkeys, and tshark lists that many slots.
        f['smc.delete.rkey.count.invalid'] = [String(msg.errMask)];
        deleted = Array.from({ length: msg.errMask }, (_, i) => hxAt(b, 8 + 4 * i, 4));
      }
      if (deleted.length > 0) f['smc.delete.rkey.deleted'] = deleted;
      break;
    }
    case 'test_link':
      // The 16 bytes of user data are not shown (not even as smc.reserved).
      Object.assign(f, { 'smc.test.link.flags': [flags], 'smc.test.link.response': [b01(msg.resp)] });
      break;
    case 'request_add_link':
      Object.assign(f, {
        'smc.add.link.flags': [flags], // (sic): the ADD LINK name
        'smc.request.add.link.response': [b01(msg.resp)],
        'smc.request.add.link.response.rejected': [b01((msg.flags & 0x40) !== 0)],
        'smc.reserved': [bytesAt(b, 4, 20), bytesAt(b, 25, 3)],
        'smc.request.add.link.gid.list.entry_count': [String(msg.gids.length)],
      });
      if (msg.resp) f['smc.request.add.link.response.reject_reason'] = [hx(msg.flags & 0x0f, 1)];
      if (msg.gids.length > 0) f['smc.request.add.link.gid.list.entry'] = msg.gids.map(gidText);
      break;
    case 'announce_credits':
      throw new Error('tshark has no decoder for ANNOUNCE_CREDITS (0x0A); the test asserts it is not SMC');
  }
  return f;
}

/**
 * Expected tshark fields of a CDC message whose SEND payload was `b`. The consumer cursor uses the
 * producer's names (oracles.md 6.3), so each of those names holds [producer, consumer]. Byte 26
 * (Alibaba credits) and the reserved tail are not shown.
 */
export function expectedCdcFields(msg: CdcMessage, b: Buffer): FieldMap {
  return {
    'smc.llc_msg': ['0xfe'],
    'smc.length': [String(b[1]!)],
    'smc.rmbe.ctrl.seqno': [hx(msg.seqno, 2)],
    'smc.rmbe.ctrl.alert.token': [hx(msg.token, 4)],
    'smc.reserved': [bytesAt(b, 8, 2), bytesAt(b, 16, 2)],
    'smc.rmbe.ctrl.prod.wrap.seq': [hx(msg.prod.wrap, 2), hx(msg.cons.wrap, 2)],
    'smc.rmbe.ctrl.peer.prod.curs': [hx(msg.prod.count, 4), hx(msg.cons.count, 4)],
    'smc.rmbe.ctrl.conn.rw.status.flags': [hx(b[24]!, 1)],
    'smc.rmbe.ctrl.write.blocked': [b01(msg.writeBlocked)],
    'smc.rmbe.ctrl.urgent.pending': [b01(msg.urgDataPending)],
    'smc.rmbe.ctrl.urgent.present': [b01(msg.urgDataPresent)],
    'smc.rmbe.ctrl.cons.update.requested': [b01(msg.consCursUpdReq)],
    'smc.rmbe.ctrl.failover.validation': [b01(msg.failoverValidation)],
    'smc.rmbe.ctrl.peer.conn.state.flags': [hx(b[25]!, 1)],
    'smc.rmbe.ctrl.peer.sending.done': [b01(msg.peerDoneWriting)],
    'smc.rmbe.ctrl.peer.closed.conn': [b01(msg.peerConnClosed)],
    'smc.rmbe.ctrl.peer.abnormal.close': [b01(msg.peerConnAbort)],
  };
}
