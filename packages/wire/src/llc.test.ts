import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WireError, WireErrorCode } from './errors.js';
import {
  decodeLlc, encodeLlc, llcLength, llcTypeInfo, llcTypeByte, withLlcFlags, LlcType, LlcFlag, LlcDeleteLinkReason,
  LLC_REJ_RSN_NO_ALT_PATH,
  type LlcMessage, type LlcAddLink, type LlcAddLinkV2Ext, type LlcRkeyTriple, type LlcRtoken,
} from './llc.js';
import { SAMPLES } from './testing/llc-samples.js';
import { throwsWire } from './testing/assert.js';

/** Hex pieces (whitespace ignored) to a Buffer. Every vector below is written by hand from spec 6.3. */
function h(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}
const b = (hex: string): Buffer => h(hex);
const zeros = (n: number): string => '00'.repeat(n);

// Field values used in the vectors (hex written out by hand).
const MAC_S = '7cfe90112233'; // server port MAC 7c:fe:90:11:22:33
const MAC_C = '7cfe90445566'; // client port MAC
const MAC_S2 = '7cfe90aabbcc'; // server's second port
const GID_S = '00000000000000000000ffff0a000001'; // ::ffff:10.0.0.1
const GID_C = '00000000000000000000ffff0a000002'; // ::ffff:10.0.0.2
const GID_S2 = '00000000000000000000ffff0a000101'; // ::ffff:10.0.1.1
const GID_C2 = '00000000000000000000ffff0a000102'; // ::ffff:10.0.1.2

interface Golden { name: string; hex: Buffer; msg: LlcMessage }

const ADD_LINK_REQ_BODY = [
  MAC_S2, //           4: sender MAC of the new link's port
  '0000', //          10: reserved
  GID_S2, //          12: sender GID ::ffff:10.0.1.1
  '000210', //        28: sender QPN 0x210
  '02', //            31: link_num 2
  '03', //            32: reserved nibble 0, qp_mtu 3 (1024)
  '00a1b2', //        33: initial PSN 0xa1b2
  '00', //            36: init_credits 0
  zeros(7), //        37: reserved
].join('');

const addLinkReqV1: LlcAddLink = {
  type: 'add_link', v2: false, flags: 0x00, resp: false, reject: false, rejectReason: 0,
  senderMac: b(MAC_S2), senderGid: b(GID_S2), senderQpn: 0x210, linkNum: 2, qpMtu: 3, initialPsn: 0xa1b2,
  initCredits: 0, ext: undefined,
};
const addLinkV2Ext: LlcAddLinkV2Ext = {
  v2Direct: true,
  clientTargetGid: b(GID_C2),
  rkeys: [
    { rkey: 0x00001a2b, rkeyNew: 0x00003c4d, vaddrNew: 0x0000000123456000n },
    { rkey: 0x00001a2c, rkeyNew: 0x00003c4e, vaddrNew: 0xffff888812340000n },
  ],
};

const GOLDEN: Golden[] = [
  {
    name: 'CONFIRM_LINK v1 request (server, flags 0x03)',
    hex: h(
      '01', //          0: type CONFIRM_LINK
      '2c', //          1: length 44
      '00', //          2: reserved
      '03', //          3: flags NO_RMBE_EYEC
      MAC_S, //         4: sender MAC
      GID_S, //        10: sender GID ::ffff:10.0.0.1
      '000107', //     26: sender QPN 263
      '01', //         29: link_num 1
      '00001235', //   30: link UID
      '02', //         34: max_links 2
      '00', //         35: max_conns 0 (v1)
      zeros(8), //     36: reserved
    ),
    msg: {
      type: 'confirm_link', v2: false, flags: 0x03, resp: false, noRmbeEyec: true,
      senderMac: b(MAC_S), senderGid: b(GID_S), senderQpn: 263, linkNum: 1, linkUid: b('00001235'), maxLinks: 2, maxConns: 0,
    },
  },
  {
    name: 'CONFIRM_LINK v1 response (client, flags 0x83)',
    hex: h('01', '2c', '00', '83', MAC_C, GID_C, '00011a' /* QPN 282 */, '01', '00001236', '02', '00', zeros(8)),
    msg: {
      type: 'confirm_link', v2: false, flags: 0x83, resp: true, noRmbeEyec: true,
      senderMac: b(MAC_C), senderGid: b(GID_C), senderQpn: 282, linkNum: 1, linkUid: b('00001236'), maxLinks: 2, maxConns: 0,
    },
  },
  {
    name: 'CONFIRM_LINK v2 request (v2.1: max_links 2, max_conns 255)',
    hex: h(
      '21', //          0: LLC version 2, type CONFIRM_LINK
      '2c00', //        1: length_v2 44, little-endian
      '03', //          3: flags
      MAC_S, GID_S, '000107', '01', '00001235',
      '02', //         34: max_links
      'ff', //         35: max_conns 255
      zeros(8),
    ),
    msg: {
      type: 'confirm_link', v2: true, flags: 0x03, resp: false, noRmbeEyec: true,
      senderMac: b(MAC_S), senderGid: b(GID_S), senderQpn: 263, linkNum: 1, linkUid: b('00001235'), maxLinks: 2, maxConns: 255,
    },
  },
  {
    name: 'ADD_LINK v1 request',
    hex: h('02', '2c', '00', '00', ADD_LINK_REQ_BODY),
    msg: addLinkReqV1,
  },
  {
    name: 'ADD_LINK v1 reject as the Linux client echoes it (reason 1 in byte 2, flags 0xC0)',
    hex: h('02', '2c', '01' /* add_link_rej_rsn 1 = no alternate path */, 'c0' /* RESP | REJ */, ADD_LINK_REQ_BODY),
    msg: { ...addLinkReqV1, flags: 0xc0, resp: true, reject: true, rejectReason: 1 },
  },
  {
    name: 'ADD_LINK v1 request with Alibaba init_credits 64',
    hex: h('02', '2c', '00', '00', MAC_S2, '0000', GID_S2, '000210', '02', '03', '00a1b2', '40' /* 36: init_credits */, zeros(7)),
    msg: { ...addLinkReqV1, initCredits: 64 },
  },
  {
    name: 'ADD_LINK v2 request with extension and 2 rkeys (104 bytes)',
    hex: h(
      '22', //          0: v2 ADD_LINK
      '6800', //        1: length_v2 104 = 72 + 16*2 (LE)
      '00', //          3: flags
      ADD_LINK_REQ_BODY, // 4..43 as v1
      '80', //         44: v2_direct
      '00', //         45: reserved
      GID_C2, //       46: client_target_gid ::ffff:10.0.1.2
      zeros(8), //     62: reserved
      '0200', //       70: num_rkeys 2 (LE)
      '00001a2b', '00003c4d', '0000000123456000', //  72: rt[0] rkey, rkey_new, vaddr_new
      '00001a2c', '00003c4e', 'ffff888812340000', //  88: rt[1]
    ),
    msg: { ...addLinkReqV1, v2: true, ext: addLinkV2Ext },
  },
  {
    name: 'ADD_LINK v2 reject as the Linux client sends it (first 44 bytes, length_v2 44, flags 0xC0)',
    hex: h('22', '2c00', 'c0', ADD_LINK_REQ_BODY),
    msg: { ...addLinkReqV1, v2: true, flags: 0xc0, resp: true, reject: true },
  },
  {
    name: 'ADD_LINK v2 reject, quirk form with the reason in length_v2\'s high byte',
    hex: h('22', '2c', '01' /* reason 1 overlapping length_v2 high byte */, 'c0', ADD_LINK_REQ_BODY),
    msg: { ...addLinkReqV1, v2: true, flags: 0xc0, resp: true, reject: true, rejectReason: 1 },
  },
  {
    name: 'ADD_LINK v2 response with extension and no rkeys (72 bytes)',
    hex: h('22', '4800' /* 72 */, '80', MAC_C, '0000', GID_C2, '00011b', '02', '03', '00c3d4', '00', zeros(7),
      '00', '00', GID_C2, zeros(8), '0000' /* num_rkeys 0 */),
    msg: {
      ...addLinkReqV1, v2: true, flags: 0x80, resp: true, senderMac: b(MAC_C), senderGid: b(GID_C2), senderQpn: 0x11b,
      initialPsn: 0xc3d4, ext: { v2Direct: false, clientTargetGid: b(GID_C2), rkeys: [] },
    },
  },
  {
    name: 'ADD_LINK_CONT v1 (server, 3 rkeys to go, 2 in this message)',
    hex: h(
      '03', '2c', '00', '00',
      '02', //          4: link_num 2
      '03', //          5: num_rkeys 3 (including these)
      '0000', //        6: reserved
      '00001a2b', '00003c4d', '0000000123456000', // 8: rt[0]
      '00001a2c', '00003c4e', '0000000123460000', // 24: rt[1]
      zeros(4), //     40: reserved
    ),
    msg: {
      type: 'add_link_cont', v2: false, flags: 0, resp: false, linkNum: 2, numRkeys: 3,
      rkeys: [
        { rkey: 0x1a2b, rkeyNew: 0x3c4d, vaddrNew: 0x123456000n },
        { rkey: 0x1a2c, rkeyNew: 0x3c4e, vaddrNew: 0x123460000n },
      ],
    },
  },
  {
    name: 'ADD_LINK_CONT v1 response with 1 rkey',
    hex: h('03', '2c', '00', '80', '02', '01', '0000', '00005e6f', '00007a8b', '0000000234560000', zeros(16), zeros(4)),
    msg: {
      type: 'add_link_cont', v2: false, flags: 0x80, resp: true, linkNum: 2, numRkeys: 1,
      rkeys: [{ rkey: 0x5e6f, rkeyNew: 0x7a8b, vaddrNew: 0x234560000n }],
    },
  },
  {
    name: 'DELETE_LINK v1 idle teardown (ALL | ORDERLY, PROG_INIT_TERM): 04 2C 00 60',
    hex: h(
      '04', '2c', '00',
      '60', //          3: flags DEL_LINK_ALL | DEL_LINK_ORDERLY
      '00', //          4: link_num 0 (ALL)
      '00030000', //    5: reason PROG_INIT_TERM
      zeros(35), //     9: reserved
    ),
    msg: { type: 'delete_link', v2: false, flags: 0x60, resp: false, all: true, orderly: true, linkNum: 0, reason: 0x00030000 },
  },
  {
    name: 'DELETE_LINK v1 single link, client request LOST_PATH',
    hex: h('04', '2c', '00', '00', '02', '00010000', zeros(35)),
    msg: { type: 'delete_link', v2: false, flags: 0, resp: false, all: false, orderly: false, linkNum: 2, reason: 0x00010000 },
  },
  {
    name: 'DELETE_LINK v1 response NOLNK',
    hex: h('04', '2c', '00', '80', '05', '00100000', zeros(35)),
    msg: { type: 'delete_link', v2: false, flags: 0x80, resp: true, all: false, orderly: false, linkNum: 5, reason: 0x00100000 },
  },
  {
    name: 'DELETE_LINK v2 idle teardown',
    hex: h('24', '2c00', '60', '00', '00030000', zeros(35)),
    msg: { type: 'delete_link', v2: true, flags: 0x60, resp: false, all: true, orderly: true, linkNum: 0, reason: 0x00030000 },
  },
  {
    name: 'REQUEST_ADD_LINK v2 with 2 GIDs (60 bytes)',
    hex: h(
      '25', //          0: v2 REQUEST_ADD_LINK
      '3c00', //        1: length_v2 60 = 28 + 16*2
      '00', //          3: flags
      zeros(20), //     4: reserved
      '02', //         24: gid_cnt
      zeros(3), //     25: reserved
      GID_C, GID_C2, // 28: GIDs
    ),
    msg: { type: 'request_add_link', v2: true, flags: 0, resp: false, gids: [b(GID_C), b(GID_C2)] },
  },
  {
    name: 'REQUEST_ADD_LINK v2 response as Linux sends it (44 bytes, data zeroed)',
    hex: h('25', '2c00', '80', zeros(40)),
    msg: { type: 'request_add_link', v2: true, flags: 0x80, resp: true, gids: [] },
  },
  {
    name: 'REQUEST_ADD_LINK v2 with 1 GID (exactly 44 bytes)',
    hex: h('25', '2c00', '00', zeros(20), '01', zeros(3), GID_C2),
    msg: { type: 'request_add_link', v2: true, flags: 0, resp: false, gids: [b(GID_C2)] },
  },
  {
    name: 'CONFIRM_RKEY v1 on a single link',
    hex: h(
      '06', '2c', '00', '00',
      '00', //          4: rtoken[0].num_rkeys 0 (no other links)
      '00001a2b', //    5: rkey
      '0000000123456000', // 9: vaddr
      zeros(13), //    17: rtoken[1] unused
      zeros(13), //    30: rtoken[2] unused
      '00', //         43: reserved
    ),
    msg: { type: 'confirm_rkey', v2: false, flags: 0, resp: false, negative: false, retry: false, numRkeys: 0, rkey: 0x1a2b, vaddr: 0x123456000n, others: [] },
  },
  {
    name: 'CONFIRM_RKEY v1 with one other link',
    hex: h('06', '2c', '00', '00', '01', '00001a2b', '0000000123456000',
      '02', '00003c4d', '0000000223456000', // 17: rtoken[1] link_id 2
      zeros(13), '00'),
    msg: {
      type: 'confirm_rkey', v2: false, flags: 0, resp: false, negative: false, retry: false, numRkeys: 1, rkey: 0x1a2b,
      vaddr: 0x123456000n, others: [{ linkId: 2, rkey: 0x3c4d, vaddr: 0x223456000n }],
    },
  },
  {
    name: 'CONFIRM_RKEY v1 negative response (RESP | NEG | RETRY = 0xB0)',
    hex: h('06', '2c', '00', 'b0', '00', '00001a2b', '0000000123456000', zeros(26), '00'),
    msg: { type: 'confirm_rkey', v2: false, flags: 0xb0, resp: true, negative: true, retry: true, numRkeys: 0, rkey: 0x1a2b, vaddr: 0x123456000n, others: [] },
  },
  {
    name: 'CONFIRM_RKEY v2 response',
    hex: h('26', '2c00', '80', '00', '00001a2b', 'ffff888812340000', zeros(26), '00'),
    msg: { type: 'confirm_rkey', v2: true, flags: 0x80, resp: true, negative: false, retry: false, numRkeys: 0, rkey: 0x1a2b, vaddr: 0xffff888812340000n, others: [] },
  },
  {
    name: 'TEST_LINK v1 request (Linux: zero user data)',
    hex: h('07', '2c', '00', '00', zeros(16) /* 4: user data */, zeros(24) /* 20: reserved */),
    msg: { type: 'test_link', v2: false, flags: 0, resp: false, userData: Buffer.alloc(16) },
  },
  {
    name: 'TEST_LINK v1 response echoing user data',
    hex: h('07', '2c', '00', '80', '0102030405060708090a0b0c0d0e0f10', zeros(24)),
    msg: { type: 'test_link', v2: false, flags: 0x80, resp: true, userData: b('0102030405060708090a0b0c0d0e0f10') },
  },
  {
    name: 'TEST_LINK v2 request',
    hex: h('27', '2c00', '00', zeros(40)),
    msg: { type: 'test_link', v2: true, flags: 0, resp: false, userData: Buffer.alloc(16) },
  },
  {
    name: 'CONFIRM_RKEY_CONT v1 with 2 rtokens',
    hex: h(
      '08', '2c', '00', '00',
      '02', //          4: num_rkeys
      '01', '00001a2b', '0000000123456000', //  5: rtoken link 1
      '03', '00003c4d', '0000000323456000', // 18: rtoken link 3
      zeros(13), //    31: unused
    ),
    msg: {
      type: 'confirm_rkey_cont', v2: false, flags: 0, resp: false, negative: false, numRkeys: 2,
      rtokens: [{ linkId: 1, rkey: 0x1a2b, vaddr: 0x123456000n }, { linkId: 3, rkey: 0x3c4d, vaddr: 0x323456000n }],
    },
  },
  {
    name: 'DELETE_RKEY v1 request with 1 rkey',
    hex: h(
      '09', '2c', '00', '00',
      '01', //          4: num_rkeys
      '00', //          5: err_mask
      '0000', //        6: reserved
      '00001a2b', //    8: rkey[0]
      zeros(28), //    12: rkey[1..7]
      zeros(4), //     40: reserved
    ),
    msg: { type: 'delete_rkey', v2: false, flags: 0, resp: false, negative: false, numRkeys: 1, errMask: 0, rkeys: [0x1a2b] },
  },
  {
    name: 'DELETE_RKEY v1 negative response, rkey 1 unknown (err_mask bit 6)',
    hex: h('09', '2c', '00', 'a0' /* RESP | NEG */, '02', '40', '0000', '00001a2b', '00001a2c', zeros(24), zeros(4)),
    msg: { type: 'delete_rkey', v2: false, flags: 0xa0, resp: true, negative: true, numRkeys: 2, errMask: 0x40, rkeys: [0x1a2b, 0x1a2c] },
  },
  {
    name: 'DELETE_RKEY v2 request with 1 rkey (44 bytes)',
    hex: h('29', '2c00', '00', '01', '00', '0000', '00001a2b', zeros(32)),
    msg: { type: 'delete_rkey', v2: true, flags: 0, resp: false, negative: false, numRkeys: 1, errMask: 0, rkeys: [0x1a2b] },
  },
  {
    name: 'DELETE_RKEY v2 request with 10 rkeys (48 bytes)',
    hex: h('29', '3000' /* 48 = 8 + 4*10 */, '00', '0a', '00', '0000',
      '00000001', '00000002', '00000003', '00000004', '00000005', '00000006', '00000007', '00000008', '00000009', '0000000a'),
    msg: { type: 'delete_rkey', v2: true, flags: 0, resp: false, negative: false, numRkeys: 10, errMask: 0, rkeys: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
  },
  {
    name: 'DELETE_RKEY v2 response to 10 rkeys as Linux sends it (44 bytes, rkeys zeroed, 1 invalid)',
    hex: h('29', '2c00', 'a0', '0a' /* num_rkeys kept */, '01' /* num_inval_rkeys */, '0000', zeros(36)),
    msg: { type: 'delete_rkey', v2: true, flags: 0xa0, resp: true, negative: true, numRkeys: 10, errMask: 1, rkeys: [0, 0, 0, 0, 0, 0, 0, 0, 0] },
  },
  {
    name: 'ANNOUNCE_CREDITS (Alibaba) returning 16 credits',
    hex: h('0a', '2c', '00', '80', '10' /* 4: credits */, zeros(39)),
    msg: { type: 'announce_credits', v2: false, flags: 0x80, resp: true, credits: 16 },
  },
];

/**
 * Real traffic from hwipl/smc-go `pkg/llc/*_test.go` (captured from Linux SMC-R; decoded here
 * independently). Files marked "fake" there are hand-made and noted below.
 */
const SMC_GO = {
  confirmLink: '012c0003 98039babcdef fe80000000000000 9a039bfffeabcdef 000107 00 00010000 02 000000000000000000',
  addLink: '022c0000 98039babcdef 0000 fe800000000000009a039bfffeabcdef 000000 00 00 000000 0000000000000000',
  deleteLink: '042c0060 00 00000000 ' + zeros(35),
  confirmRkey: '062c0000 00 0000155d 0000000eef4d0000 ' + zeros(27),
  deleteRkey: '092c0000 01 00 0000 0000155d ' + zeros(32),
  // "fake" message of the smc-go test, 45 bytes (one byte more than a real message)
  confirmRkeyCont45: '082c00a0 01 01 00000002 0000000000000003 04 00000005 0000000000000006 07 00000008 0000000000000009 00',
  // "fake" message of the smc-go test, truncated after 21 bytes
  testLink21: '072c0080 0000000000000000000000000000000000',
  // "fake" ADD_LINK_CONT of smc-go (response, num_rkeys 1; the pairs hold 1/2/3 and 4/5/6)
  addLinkCont: '032c0080 01 01 0000 00000001 00000002 0000000000000003 00000004 00000005 0000000000000006 00000000',
};


function encode(msg: LlcMessage, off = 0): Buffer {
  const buf = Buffer.alloc(off + llcLength(msg), 0xee);
  const end = encodeLlc(msg, buf, off);
  assert.equal(end, buf.length);
  return buf.subarray(off);
}

/** Decodes at a non-zero offset inside a larger buffer (checks absolute offsets and bounds). */
function decodeAt(bytes: Uint8Array, pad = 5): LlcMessage {
  const buf = Buffer.alloc(pad + bytes.length + 7, 0xaa);
  buf.set(bytes, pad);
  return decodeLlc(buf, pad, pad + bytes.length);
}

describe('llc', () => {
  describe('golden vectors (hand-written from spec 6.3)', () => {
    for (const g of GOLDEN) {
      it(g.name, () => {
        assert.equal(g.hex.length, llcLength(g.msg), 'vector length');
        assert.deepEqual(encode(g.msg), g.hex);
        assert.deepEqual(encode(g.msg, 3), g.hex);
        assert.deepEqual(decodeLlc(g.hex), g.msg);
        assert.deepEqual(decodeAt(g.hex), g.msg);
      });
    }
    it('testing/llc-samples round-trip and cover every type byte', () => {
      const seen = new Set<number>();
      for (const s of SAMPLES) {
        assert.deepEqual(decodeLlc(encode(s.msg)), s.msg, s.name);
        seen.add(llcTypeByte(s.msg));
      }
      for (const info of Object.values(LlcType)) assert.ok(seen.has(info.value), info.name);
    });
    it('covers every type byte of LlcType', () => {
      const seen = new Set(GOLDEN.map((g) => g.hex[0]));
      for (const info of Object.values(LlcType)) assert.ok(seen.has(info.value), info.name);
    });
  });

  describe('hwipl/smc-go captures', () => {
    it('CONFIRM_LINK (older kernel: link_num 0, LGR id as link UID, link-local GID)', () => {
      const m = decodeLlc(h(SMC_GO.confirmLink));
      assert.deepEqual(m, {
        type: 'confirm_link', v2: false, flags: 0x03, resp: false, noRmbeEyec: true,
        senderMac: b('98039babcdef'), senderGid: b('fe800000000000009a039bfffeabcdef'), senderQpn: 263, linkNum: 0,
        linkUid: b('00010000'), maxLinks: 2, maxConns: 0,
      });
      assert.deepEqual(encode(m), h(SMC_GO.confirmLink));
    });
    it('ADD_LINK (older kernel: MAC/GID only)', () => {
      const m = decodeLlc(h(SMC_GO.addLink));
      assert.equal(m.type, 'add_link');
      assert.deepEqual(m, { ...addLinkReqV1, senderMac: b('98039babcdef'), senderGid: b('fe800000000000009a039bfffeabcdef'), senderQpn: 0, linkNum: 0, qpMtu: 0, initialPsn: 0 });
      assert.deepEqual(encode(m), h(SMC_GO.addLink));
    });
    it('DELETE_LINK 04 2C 00 60 (reason 0 from an older kernel)', () => {
      const m = decodeLlc(h(SMC_GO.deleteLink));
      assert.deepEqual(m, { type: 'delete_link', v2: false, flags: 0x60, resp: false, all: true, orderly: true, linkNum: 0, reason: 0 });
      assert.deepEqual(encode(m), h(SMC_GO.deleteLink));
    });
    it('CONFIRM_RKEY', () => {
      const m = decodeLlc(h(SMC_GO.confirmRkey));
      assert.deepEqual(m, { type: 'confirm_rkey', v2: false, flags: 0, resp: false, negative: false, retry: false, numRkeys: 0, rkey: 5469, vaddr: 0xeef4d0000n, others: [] });
      assert.deepEqual(encode(m), h(SMC_GO.confirmRkey));
    });
    it('DELETE_RKEY', () => {
      const m = decodeLlc(h(SMC_GO.deleteRkey));
      assert.deepEqual(m, { type: 'delete_rkey', v2: false, flags: 0, resp: false, negative: false, numRkeys: 1, errMask: 0, rkeys: [5469] });
      assert.deepEqual(encode(m), h(SMC_GO.deleteRkey));
    });
    it('ADD_LINK_CONT (hand-made there): only num_rkeys = 1 pair is carried', () => {
      const m = decodeLlc(h(SMC_GO.addLinkCont));
      assert.deepEqual(m, { type: 'add_link_cont', v2: false, flags: 0x80, resp: true, linkNum: 1, numRkeys: 1, rkeys: [{ rkey: 1, rkeyNew: 2, vaddrNew: 3n }] });
    });
    it('CONFIRM_RKEY_CONT (hand-made there, 45 bytes): BAD_LENGTH; its first 44 bytes decode', () => {
      const raw = h(SMC_GO.confirmRkeyCont45);
      assert.equal(raw.length, 45);
      throwsWire(() => decodeLlc(raw), WireErrorCode.BAD_LENGTH, 1);
      const m = decodeLlc(raw, 0, 44);
      assert.deepEqual(m, {
        type: 'confirm_rkey_cont', v2: false, flags: 0xa0, resp: true, negative: true, numRkeys: 1,
        rtokens: [{ linkId: 1, rkey: 2, vaddr: 3n }],
      });
    });
    it('TEST_LINK (hand-made there, 21 bytes): TRUNCATED', () => {
      throwsWire(() => decodeLlc(h(SMC_GO.testLink21)), WireErrorCode.TRUNCATED, 0);
    });
  });

  describe('echo helpers and tables', () => {
    it('withLlcFlags builds the Linux ADD_LINK rejects from a request', () => {
      const v1 = { ...withLlcFlags(addLinkReqV1, addLinkReqV1.flags | LlcFlag.RESP.value | LlcFlag.ADD_LINK_REJ.value), rejectReason: LLC_REJ_RSN_NO_ALT_PATH };
      assert.deepEqual(encode(v1), h('02', '2c', '01', 'c0', ADD_LINK_REQ_BODY));
      const req2: LlcAddLink = { ...addLinkReqV1, v2: true, ext: addLinkV2Ext };
      const v2 = { ...withLlcFlags(req2, 0xc0), ext: undefined };
      assert.deepEqual(encode(v2), h('22', '2c00', 'c0', ADD_LINK_REQ_BODY));
    });
    it('withLlcFlags updates every derived boolean', () => {
      for (const g of GOLDEN) {
        const flags = g.msg.flags ^ 0xf0;
        const m = withLlcFlags(g.msg, flags);
        if (g.msg.type === 'add_link' && g.msg.v2 && g.msg.rejectReason !== 0) continue; // needs REJ
        const bytes = encode(m);
        assert.equal(bytes[3], flags);
        assert.deepEqual(decodeLlc(bytes), m);
      }
    });
    it('a TEST_LINK echo is the request with RESP set', () => {
      const req = decodeLlc(h('07', '2c', '00', '00', '0102030405060708090a0b0c0d0e0f10', zeros(24)));
      assert.deepEqual(encode(withLlcFlags(req, req.flags | LlcFlag.RESP.value)), h('07', '2c', '00', '80', '0102030405060708090a0b0c0d0e0f10', zeros(24)));
    });
    it('LlcType: names, forms and lookups agree', () => {
      const values = new Set<number>();
      for (const [key, info] of Object.entries(LlcType)) {
        assert.equal(info.name, `SMC_LLC_${key}`);
        assert.equal(info.lgr === 'v2', info.value >= 0x20);
        assert.equal(llcTypeInfo(info.value), info);
        values.add(info.value);
      }
      for (let t = 0; t < 256; t++) if (!values.has(t)) assert.equal(llcTypeInfo(t), undefined);
      for (const g of GOLDEN) assert.equal(llcTypeByte(g.msg), g.hex[0]);
      assert.equal(LlcDeleteLinkReason.PROG_INIT_TERM.value, 0x00030000);
      assert.equal(LlcDeleteLinkReason.NOLGR.value, 0x00200000);
    });
  });

  describe('decode errors', () => {
    const cl = GOLDEN[0]!.hex;
    it('TRUNCATED: empty, short header, short body, short v2 body', () => {
      throwsWire(() => decodeLlc(Buffer.alloc(10), 10, 10), WireErrorCode.TRUNCATED, 10);
      throwsWire(() => decodeLlc(cl.subarray(0, 3)), WireErrorCode.TRUNCATED, 0);
      throwsWire(() => decodeAt(cl.subarray(0, 43)), WireErrorCode.TRUNCATED, 5);
      const add2 = encode({ ...addLinkReqV1, v2: true, ext: addLinkV2Ext });
      throwsWire(() => decodeAt(add2.subarray(0, 60)), WireErrorCode.TRUNCATED, 5);
    });
    it('UNKNOWN_TYPE for unregistered type bytes', () => {
      for (const t of [0x00, 0x05, 0x0b, 0x11, 0x20, 0x23, 0x28, 0x2a, 0x31, 0x80, 0xfe, 0xff]) {
        const x = Buffer.from(cl);
        x[0] = t;
        throwsWire(() => decodeAt(x), WireErrorCode.UNKNOWN_TYPE, 5);
      }
    });
    it('BAD_LENGTH: v1 length byte not 44, extra bytes after the message', () => {
      const x = Buffer.from(cl);
      x[1] = 43;
      throwsWire(() => decodeAt(x), WireErrorCode.BAD_LENGTH, 6);
      throwsWire(() => decodeAt(Buffer.concat([cl, Buffer.alloc(1)])), WireErrorCode.BAD_LENGTH, 6);
    });
    it('BAD_LENGTH: v2 length_v2 outside 44..8192 or not the payload size', () => {
      const t2 = h('27', '2b00', '00', zeros(40));
      throwsWire(() => decodeAt(t2), WireErrorCode.BAD_LENGTH, 6);
      const big = Buffer.alloc(8193);
      big.set(h('29', '0120', '00', 'ff')); // length_v2 8193
      throwsWire(() => decodeAt(big), WireErrorCode.BAD_LENGTH, 6);
      // big-endian length_v2 (s390 style) reads as 0x2c00 = 11264
      throwsWire(() => decodeAt(h('27', '002c', '00', zeros(40))), WireErrorCode.BAD_LENGTH, 6);
      // a fixed-size v2 type declaring more than 44 bytes
      throwsWire(() => decodeAt(h('27', '3000', '00', zeros(44))), WireErrorCode.BAD_LENGTH, 6);
      // declares 44, SEND carries 48
      throwsWire(() => decodeAt(h('27', '2c00', '00', zeros(44))), WireErrorCode.BAD_LENGTH, 6);
    });
    it('BAD_LENGTH: counts that disagree with length_v2', () => {
      // ADD_LINK v2 between 44 and 72 bytes
      throwsWire(() => decodeAt(h('22', '3c00', '00', ADD_LINK_REQ_BODY, zeros(16))), WireErrorCode.BAD_LENGTH, 6);
      // ADD_LINK v2 with num_rkeys 3 but room for 2
      const add2 = encode({ ...addLinkReqV1, v2: true, ext: addLinkV2Ext });
      add2[70] = 3;
      throwsWire(() => decodeAt(add2), WireErrorCode.BAD_LENGTH, 6);
      // REQUEST_ADD_LINK with gid_cnt 3 in 60 bytes, and gid_cnt 0 in 60 bytes
      const req = h('25', '3c00', '00', zeros(20), '03', zeros(3), GID_C, GID_C2);
      throwsWire(() => decodeAt(req), WireErrorCode.BAD_LENGTH, 6);
      req[24] = 0;
      throwsWire(() => decodeAt(req), WireErrorCode.BAD_LENGTH, 6);
      // DELETE_RKEY v2: 48 bytes but num_rkeys 2; and 45 bytes
      throwsWire(() => decodeAt(h('29', '3000', '00', '02', '00', '0000', zeros(40))), WireErrorCode.BAD_LENGTH, 6);
      throwsWire(() => decodeAt(h('29', '2d00', '00', '0a', '00', '0000', zeros(37))), WireErrorCode.BAD_LENGTH, 6);
      // DELETE_RKEY v2: 48 bytes but num_rkeys 12 (only the 44-byte form may carry fewer than n)
      throwsWire(() => decodeAt(h('29', '3000', '00', '0c', '00', '0000', zeros(40))), WireErrorCode.BAD_LENGTH, 6);
    });
    it('the ADD_LINK v2 reason quirk is only accepted for a 44-byte reject', () => {
      // without REJ, 2C 01 is length_v2 300
      throwsWire(() => decodeAt(h('22', '2c01', '80', ADD_LINK_REQ_BODY)), WireErrorCode.TRUNCATED, 5);
      // other v2 types never take the quirk
      throwsWire(() => decodeAt(h('27', '2c01', 'c0', zeros(40))), WireErrorCode.TRUNCATED, 5);
    });
    it('reserved bytes are ignored', () => {
      const x = Buffer.from(GOLDEN.find((g) => g.name.startsWith('TEST_LINK v1 response'))!.hex);
      x[2] = 0xff; // v1 header reserved / reason nibble of other types
      for (let i = 20; i < 44; i++) x[i] = 0x5a;
      assert.deepEqual(decodeLlc(x), { type: 'test_link', v2: false, flags: 0x80, resp: true, userData: b('0102030405060708090a0b0c0d0e0f10') });
    });
  });

  describe('encode errors', () => {
    const tl: LlcMessage = { type: 'test_link', v2: false, flags: 0, resp: false, userData: Buffer.alloc(16) };
    it('BUFFER_TOO_SMALL before anything else', () => {
      throwsWire(() => encodeLlc(tl, Buffer.alloc(43), 0), WireErrorCode.BUFFER_TOO_SMALL, 0);
      throwsWire(() => encodeLlc(tl, Buffer.alloc(50), 7), WireErrorCode.BUFFER_TOO_SMALL, 7);
      throwsWire(() => encodeLlc({ ...tl, flags: 999 }, Buffer.alloc(50), -1), WireErrorCode.BUFFER_TOO_SMALL, -1);
      throwsWire(() => encodeLlc({ ...addLinkReqV1, v2: true, ext: addLinkV2Ext }, Buffer.alloc(100), 0), WireErrorCode.BUFFER_TOO_SMALL, 0);
    });
    it('BAD_VALUE for out-of-range fields and wrong sizes', () => {
      const out = Buffer.alloc(200);
      const cases: [LlcMessage, number][] = [
        [{ ...tl, flags: 256 }, 13],
        [{ ...tl, resp: true }, 13],
        [{ ...tl, userData: Buffer.alloc(15) }, 14],
        [{ ...(GOLDEN[0]!.msg), senderQpn: 0x1000000 } as LlcMessage, 36],
        [{ ...(GOLDEN[0]!.msg), noRmbeEyec: false } as LlcMessage, 13],
        [{ ...(GOLDEN[0]!.msg), senderGid: Buffer.alloc(4) } as LlcMessage, 20],
        [{ ...addLinkReqV1, qpMtu: 16 }, 42],
        [{ ...addLinkReqV1, rejectReason: 16 }, 12],
        [{ ...addLinkReqV1, reject: true }, 13],
        [{ ...addLinkReqV1, ext: addLinkV2Ext }, 54], // extension in v1
        [{ ...addLinkReqV1, v2: true, flags: 0xc0, resp: true, reject: true, rejectReason: 1, ext: addLinkV2Ext }, 12],
        [{ ...addLinkReqV1, v2: true, rejectReason: 1 }, 12], // quirk without REJ
        [{ ...addLinkReqV1, v2: true, ext: { ...addLinkV2Ext, rkeys: [{ rkey: 1, rkeyNew: 2, vaddrNew: -1n }] } }, 90],
        [{ ...addLinkReqV1, v2: true, ext: { ...addLinkV2Ext, rkeys: [{ rkey: 1, rkeyNew: 2, vaddrNew: 1n << 64n }] } }, 90],
        [{ type: 'add_link_cont', v2: true, flags: 0, resp: false, linkNum: 1, numRkeys: 0, rkeys: [] } as unknown as LlcMessage, 10],
        [{ type: 'add_link_cont', v2: false, flags: 0, resp: false, linkNum: 1, numRkeys: 1, rkeys: [] }, 15],
        [{ type: 'request_add_link', v2: false, flags: 0, resp: false, gids: [] } as unknown as LlcMessage, 10],
        [{ type: 'request_add_link', v2: true, flags: 0, resp: false, gids: [Buffer.alloc(15)] }, 38],
        [{ type: 'delete_link', v2: false, flags: 0x40, resp: false, all: false, orderly: false, linkNum: 0, reason: 0 }, 13],
        [{ type: 'delete_link', v2: false, flags: 0, resp: false, all: false, orderly: false, linkNum: 0, reason: 2 ** 32 }, 15],
        [{ type: 'confirm_rkey', v2: false, flags: 0, resp: false, negative: false, retry: false, numRkeys: 1, rkey: 1, vaddr: 0n, others: [] }, 14],
        [{ type: 'confirm_rkey', v2: false, flags: 0, resp: false, negative: false, retry: false, numRkeys: 1, rkey: 1, vaddr: 0n, others: [{ linkId: 256, rkey: 0, vaddr: 0n }] }, 27],
        [{ type: 'confirm_rkey_cont', v2: false, flags: 0, resp: false, negative: false, numRkeys: 4, rtokens: [] }, 14],
        [{ type: 'delete_rkey', v2: false, flags: 0, resp: false, negative: false, numRkeys: 9, errMask: 0, rkeys: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, 14],
        [{ type: 'delete_rkey', v2: true, flags: 0, resp: false, negative: false, numRkeys: 12, errMask: 0, rkeys: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }, 14],
        [{ type: 'delete_rkey', v2: false, flags: 0, resp: false, negative: false, numRkeys: 1, errMask: 0, rkeys: [-1] }, 18],
        [{ type: 'announce_credits', v2: false, flags: 0, resp: false, credits: 256 }, 14],
      ];
      cases.forEach(([m, at], i) => assert.doesNotThrow(() => throwsWire(() => encodeLlc(m, out, 10), WireErrorCode.BAD_VALUE, at), `case ${i}`));
    });
    it('BAD_VALUE for a v2 message longer than 8192 bytes', () => {
      const rkeys: LlcRkeyTriple[] = Array.from({ length: 508 }, () => ({ rkey: 0, rkeyNew: 0, vaddrNew: 0n }));
      const m: LlcMessage = { ...addLinkReqV1, v2: true, ext: { ...addLinkV2Ext, rkeys } };
      assert.equal(llcLength(m), 72 + 16 * 508);
      throwsWire(() => encodeLlc(m, Buffer.alloc(9000), 0), WireErrorCode.BAD_VALUE, 0);
      const ok: LlcMessage = { ...m, ext: { ...addLinkV2Ext, rkeys: rkeys.slice(1) } };
      assert.deepEqual(decodeLlc(encode(ok)), ok);
    });
  });

  describe('properties', () => {
    it('decode(encode(m)) deep-equals m', () => {
      fc.assert(fc.property(arbLlc, fc.nat(8), (m, pad) => {
        const bytes = encode(m, pad);
        assert.deepEqual(decodeLlc(bytes), m);
        assert.deepEqual(decodeAt(bytes, pad), m);
      }), { numRuns: 2000 });
    });
    it('random bytes only throw WireError or decode to a message that re-encodes consistently', () => {
      const typeBytes = [...Object.values(LlcType).map((i) => i.value), 0x05, 0x23, 0xfe];
      const arbBytes = fc.oneof(
        fc.uint8Array({ maxLength: 120 }),
        fc.tuple(fc.constantFrom(...typeBytes), fc.uint8Array({ minLength: 43, maxLength: 43 })).map(([t, rest]) => {
          const x = Uint8Array.from([t, ...rest]);
          x[1] = 44;
          if (t >= 0x20 && t !== 0xfe) x[2] = 0;
          return x;
        }),
      );
      fc.assert(fc.property(arbBytes, (bytes) => checkDecodes(bytes)), { numRuns: 3000 });
    });
    it('single-byte mutations and truncations of valid encodings only throw WireError', () => {
      fc.assert(fc.property(arbLlc, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, pos, val) => {
        const bytes = encode(m);
        const mut = Buffer.from(bytes);
        mut[pos % mut.length] = val;
        checkDecodes(mut);
        const cut = pos % bytes.length;
        assert.throws(() => decodeLlc(bytes.subarray(0, cut)), (e: unknown) => e instanceof WireError);
      }), { numRuns: 3000 });
    });
  });
});

function checkDecodes(bytes: Uint8Array): void {
  let m: LlcMessage;
  try {
    m = decodeLlc(bytes);
  } catch (e) {
    assert.ok(e instanceof WireError, `non-WireError: ${String(e)}`);
    return;
  }
  const again = encode(m);
  assert.equal(again.length, bytes.length);
  assert.deepEqual(decodeLlc(again), m);
}

// ------------------------------------------------------------------------------------------------
// Arbitraries

/** Plain objects (fast-check 4 makes null-prototype records by default). */
const NP = { noNullPrototype: true } as const;
const u8 = fc.integer({ min: 0, max: 0xff });
const u24 = fc.integer({ min: 0, max: 0xffffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const bytesN = (n: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const triple: fc.Arbitrary<LlcRkeyTriple> = fc.record({ rkey: u32, rkeyNew: u32, vaddrNew: u64 }, NP);
const rtoken: fc.Arbitrary<LlcRtoken> = fc.record({ linkId: u8, rkey: u32, vaddr: u64 }, NP);
const has = (flags: number, bit: number): boolean => (flags & bit) !== 0;

const arbConfirmLink = fc.record({ v2: fc.boolean(), flags: u8, senderMac: bytesN(6), senderGid: bytesN(16), senderQpn: u24, linkNum: u8, linkUid: bytesN(4), maxLinks: u8, maxConns: u8 })
  .map((r): LlcMessage => ({ type: 'confirm_link', ...r, resp: has(r.flags, 0x80), noRmbeEyec: has(r.flags, 0x03) }));

const arbAddLink = fc.record({
  v2: fc.boolean(), flags: u8, rejectReason: fc.integer({ min: 0, max: 15 }), senderMac: bytesN(6), senderGid: bytesN(16),
  senderQpn: u24, linkNum: u8, qpMtu: fc.integer({ min: 0, max: 15 }), initialPsn: u24, initCredits: u8,
  ext: fc.option(fc.record({ v2Direct: fc.boolean(), clientTargetGid: bytesN(16), rkeys: fc.array(triple, { maxLength: 4 }) }, NP), { nil: undefined }),
}).map((r): LlcMessage => {
  const reject = has(r.flags, 0x40);
  const ext = r.v2 ? r.ext : undefined;
  const rejectReason = r.v2 && (ext !== undefined || !reject) ? 0 : r.rejectReason;
  return { type: 'add_link', ...r, ext, rejectReason, resp: has(r.flags, 0x80), reject };
});

const arbAddLinkCont = fc.record({ flags: u8, linkNum: u8, numRkeys: u8, rkeys: fc.array(triple, { minLength: 2, maxLength: 2 }) })
  .map((r): LlcMessage => ({ type: 'add_link_cont', v2: false, ...r, resp: has(r.flags, 0x80), rkeys: r.rkeys.slice(0, Math.min(r.numRkeys, 2)) }));

const arbDeleteLink = fc.record({ v2: fc.boolean(), flags: u8, linkNum: u8, reason: fc.oneof(u32, fc.constantFrom(...Object.values(LlcDeleteLinkReason).map((x) => x.value))) })
  .map((r): LlcMessage => ({ type: 'delete_link', ...r, resp: has(r.flags, 0x80), all: has(r.flags, 0x40), orderly: has(r.flags, 0x20) }));

const arbRequestAddLink = fc.record({ flags: u8, gids: fc.array(bytesN(16), { maxLength: 6 }) })
  .map((r): LlcMessage => ({ type: 'request_add_link', v2: true, ...r, resp: has(r.flags, 0x80) }));

const arbConfirmRkey = fc.record({ v2: fc.boolean(), flags: u8, numRkeys: fc.oneof(fc.integer({ min: 0, max: 3 }), u8), rkey: u32, vaddr: u64, others: fc.array(rtoken, { minLength: 2, maxLength: 2 }) })
  .map((r): LlcMessage => ({
    type: 'confirm_rkey', ...r, resp: has(r.flags, 0x80), negative: has(r.flags, 0x20), retry: has(r.flags, 0x10),
    others: r.others.slice(0, Math.min(r.numRkeys, 2)),
  }));

const arbTestLink = fc.record({ v2: fc.boolean(), flags: u8, userData: bytesN(16) })
  .map((r): LlcMessage => ({ type: 'test_link', ...r, resp: has(r.flags, 0x80) }));

const arbConfirmRkeyCont = fc.record({ flags: u8, numRkeys: fc.oneof(fc.integer({ min: 0, max: 4 }), u8), rtokens: fc.array(rtoken, { minLength: 3, maxLength: 3 }) })
  .map((r): LlcMessage => ({
    type: 'confirm_rkey_cont', v2: false, ...r, resp: has(r.flags, 0x80), negative: has(r.flags, 0x20),
    rtokens: r.rtokens.slice(0, Math.min(r.numRkeys, 3)),
  }));

const arbDeleteRkey = fc.record({ v2: fc.boolean(), flags: u8, numRkeys: fc.oneof(fc.integer({ min: 0, max: 12 }), u8), errMask: u8, short: fc.boolean(), pool: fc.array(u32, { minLength: 255, maxLength: 255 }) })
  .map(({ pool, short, ...r }): LlcMessage => {
    // v1: min(n, 8) slots; v2: n rkeys, or the 44-byte response form with 9 slots when n > 9.
    const count = r.v2 ? (short && r.numRkeys > 9 ? 9 : r.numRkeys) : Math.min(r.numRkeys, 8);
    return { type: 'delete_rkey', ...r, resp: has(r.flags, 0x80), negative: has(r.flags, 0x20), rkeys: pool.slice(0, count) };
  });

const arbAnnounceCredits = fc.record({ flags: u8, credits: u8 })
  .map((r): LlcMessage => ({ type: 'announce_credits', v2: false, ...r, resp: has(r.flags, 0x80) }));

const arbLlc: fc.Arbitrary<LlcMessage> = fc.oneof(
  arbConfirmLink, arbAddLink, arbAddLinkCont, arbDeleteLink, arbRequestAddLink, arbConfirmRkey, arbTestLink,
  arbConfirmRkeyCont, arbDeleteRkey, arbAnnounceCredits,
);

