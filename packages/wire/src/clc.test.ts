import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WireError, WireErrorCode } from './errors.js';
import {
  type ClcAccept,
  type ClcConfirm,
  type ClcDecline,
  type ClcMessage,
  type ClcProposal,
  type SmcType,
  ALIBABA_OUI,
  AliVendorFlag,
  ClcLength,
  aliFlagsFromFce,
  aliFlagsFromVendor,
  aliVendorOptions,
  clcLength,
  clcToBuffer,
  decodeClc,
  encodeClc,
  peekClcHeader,
  proposalLayout,
} from './clc.js';
import { CAPTURES, CLIENT, SAMPLES, SERVER, UEID } from './testing/clc-samples.js';
import { throwsWire } from './testing/assert.js';

/** Hex fragments -> Buffer; whitespace ignored. */
const h = (...parts: string[]): Buffer => Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
const rep = (byteHex: string, n: number): string => byteHex.repeat(n);
const sample = (name: string): ClcMessage => {
  const s = SAMPLES.find((x) => x.name === name);
  if (!s) throw new Error(`no sample ${name}`);
  return s.msg;
};

/** Asserts fn throws a WireError with this code and offset. */

/** decode(hex) deep-equals msg, and encode(msg) reproduces hex exactly (also at a non-zero offset). */
function golden(bytes: Buffer, msg: ClcMessage): void {
  assert.equal(bytes.readUInt16BE(5), bytes.length, 'fixture length field matches the fixture');
  assert.deepEqual(decodeClc(bytes), msg);
  assert.equal(clcLength(msg), bytes.length);
  assert.deepEqual(clcToBuffer(msg), bytes);
  const big = Buffer.alloc(bytes.length + 10, 0xaa);
  assert.equal(encodeClc(msg, big, 3), 3 + bytes.length);
  assert.deepEqual(big.subarray(3, 3 + bytes.length), bytes);
  assert.equal(big[2], 0xaa);
  assert.equal(big[3 + bytes.length], 0xaa);
  assert.deepEqual(decodeClc(big, 3, 3 + bytes.length), msg);
}

// Field fragments, written by hand.
const SMCR = 'e2d4c3d9';
const SMCD = 'e2d4c3c4';
const C_PEER = '9c3e b8cef6123456'; // 2 random bytes + MAC
const C_GID1 = 'fe80000000000000 bacef6fffe123456'; // fe80::bace:f6ff:fe12:3456
const C_MAC = 'b8cef6123456';
const C_GID2 = '00000000000000000000ffff 0a000002'; // ::ffff:10.0.0.2
const S_PEER = '51a7 b8cef6abcdef';
const S_GID1 = 'fe80000000000000 bacef6fffeabcdef';
const S_MAC = 'b8cef6abcdef';
const S_GID2 = '00000000000000000000ffff 0a000001'; // ::ffff:10.0.0.1
const UEID_HEX = '534d4356322d44454641554c542d55454944' + rep('20', 14); // "SMCV2-DEFAULT-UEID" blank padded
const PFX_10_24 = '0a000000' + '18' + '0000' + '00'; // 10.0.0.0, /24, reserved, 0 IPv6 prefixes
const SMCD_AREA_ZERO = rep('00', 8) + '0000' + '0000' + '000000' + rep('00', 5) + rep('00', 20);

// ---------------------------------------------------------------------------------------------------
// Hand-built golden vectors (layouts of spec 3.3-3.5)

const G = {
  proposalV1RfcIpv4: h(
    SMCR, '01', '0034', '10', // header: Proposal, 52 bytes, version 1, typev2 bits 0, typev1 R
    C_PEER, C_GID1, C_MAC, // peer ID, GID, MAC
    '0000', // iparea_offset 0: RFC 7609 layout
    PFX_10_24,
    SMCR, // trailer
  ),
  proposalV1RfcIpv6: h(
    SMCR, '01', '0056', '10', // 86 bytes
    C_PEER, C_GID1, C_MAC, '0000',
    '00000000', '00', '0000', '02', // IPv6: subnet 0, prefix len 0, reserved, 2 prefixes
    '20010db8000100000000000000000000', '40', // 2001:db8:1::/64
    'fd123456789a00010000000000000000', '40', // fd12:3456:789a:1::/64
    SMCR,
  ),
  proposalV1Linux: h(
    SMCR, '01', '005c', '10', // 92 bytes, version 1
    C_PEER, C_GID1, C_MAC,
    '0028', // iparea_offset 40: the SMC-D area precedes the prefix area
    SMCD_AREA_ZERO, // ISM GID 0, CHID 0, (v2_ext_offset) 0, OUI 0, options 0, 20 reserved
    PFX_10_24,
    SMCR,
  ),
  proposalV2HeaderV1Only: h(
    SMCR, '01', '005c', '28', // 92 bytes, version 2, typev2 N, typev1 R
    C_PEER, C_GID1, C_MAC, '0028', SMCD_AREA_ZERO, PFX_10_24, SMCR,
  ),
  proposalV2ROnly: h(
    SMCR, '01', '009c', '22', // 156 bytes, version 2, typev2 R, typev1 N
    rep('00', 8), rep('00', 16), rep('00', 6), // no SMC-Rv1: peer ID, GID, MAC zero
    '0000', // iparea_offset 0 (typev1 N)
    rep('00', 8), '0000', // ISM GID, CHID
    '001c', // v2_ext_offset 28: 52 + 28 = 80
    '000000', rep('00', 5), rep('00', 20), // OUI, vendor options, reserved
    '01', '00', '00', '10', '0000', '0000', // eid_cnt 1, ism_gid_cnt 0, rsvd, release 1 / seid 0, rsvd, smcd_v2_ext_offset 0
    C_GID2, // RoCEv2 GID
    'ff', '02', '0000', rep('00', 12), // max_conns 255, max_links 2, feature_mask 0, reserved
    UEID_HEX,
    SMCR,
  ),
  proposalV1V2: h(
    SMCR, '01', '00a4', '20', // 164 bytes, version 2, typev2 R, typev1 R
    C_PEER, C_GID1, C_MAC, '0028',
    rep('00', 8), '0000', '0024', // ISM GID 0, CHID 0, v2_ext_offset 36 (28 + 8-byte prefix area)
    'fca64c', '00', 'e0', '000000', rep('00', 20), // Alibaba OUI, reserved, flags valid|credits_en|rwwi_en, reserved
    PFX_10_24,
    '01', '00', '00', '10', '0000', '0000', C_GID2, 'ff', '01', '0000', rep('00', 12), UEID_HEX,
    SMCR,
  ),
  proposalV2SmcdExt: h(
    SMCR, '01', '00de', '2c', // 222 bytes, version 2, typev2 B, typev1 R
    C_PEER, C_GID1, C_MAC, '0028',
    rep('00', 8), '0000', '0024', '000000', rep('00', 5), rep('00', 20),
    PFX_10_24,
    '01', '01', '00', '11', '0000', '0040', // 1 UEID, 1 ISM GID, rsvd, release 1 + seid, rsvd, smcd_v2_ext_offset 64 (32 + 32)
    C_GID2, 'ff', '02', '0001', rep('00', 12), // max_conns 255, max_links 2, feature_mask 1
    UEID_HEX,
    '534549442d30303031', rep('20', 23), // system EID "SEID-0001"
    rep('00', 16), // reserved
    '0123456789abcdef', '0400', // GID, CHID
    SMCR,
  ),
  acceptV1: h(
    SMCR, '02', '0044', '18', // Accept, 68 bytes, version 1, first contact
    S_PEER, S_GID1, S_MAC,
    '000107', '0012ab34', '01', '00000005', // QPN 263, rkey, RMBE index 1, alert token 5
    '23', '00', // RMBE size 2 / MTU 3 (1024), init_credits 0
    '000000012a3b4000', '00', '7a1b2c', // RMB vaddr, reserved, PSN
    SMCR,
  ),
  confirmV1: h(
    SMCR, '03', '0044', '10', // Confirm, 68 bytes, version 1
    C_PEER, C_GID1, C_MAC,
    '000108', '0034cd56', '01', '00000006', '23', '00', '000000012a3c8000', '00', '0d89a4',
    SMCR,
  ),
  acceptV2: h(
    SMCR, '02', '006c', '20', // 108 bytes, version 2, no first contact
    S_PEER, S_GID2, S_MAC,
    '000107', '0012ab35', '01', '00000007', '34', '00', '000000012a3d0000', '00', '112233',
    UEID_HEX, rep('00', 8), // negotiated EID, reserved
    SMCR,
  ),
  acceptV2Fce: h(
    SMCR, '02', '00a0', '28', // 160 bytes, version 2, first contact
    S_PEER, S_GID2, S_MAC,
    '00010a', '0012ab40', '01', '00000008', '24', '10', '000000012a3e0000', '00', '445566', // init_credits 16
    UEID_HEX, rep('00', 8),
    '80', '21', '0000', // FCE: v2_direct, OS Linux / release 1, reserved
    '7365727665723031', rep('20', 24), // host name "server01"
    'ff', '01', '0000', 'e0000000', rep('00', 8), // max_conns, max_links, feature_mask, vendor word (Alibaba flags), reserved
    SMCR,
  ),
  confirmV2FceGid: h(
    SMCR, '03', '00b4', '28', // 180 bytes, version 2, first contact
    C_PEER, C_GID2, C_MAC,
    '00010b', '0034cd60', '01', '00000009', '24', '10', '000000012a3f0000', '00', '778899',
    UEID_HEX, rep('00', 8),
    '80', '21', '0000', '636c69656e743031', rep('20', 24), 'ff', '01', '0000', 'e0000000', rep('00', 8), // host "client01"
    '01', '000000', C_GID2, // GID list: 1 GID
    SMCR,
  ),
  declineV1: h(
    SMCR, '04', '001c', '10', // Decline, 28 bytes, version 1
    C_PEER, '03030002', // peer ID, diagnosis NOSMCRDEV
    '00', '000000', // OS type 0, reserved
    SMCR,
  ),
  declineV2: h(
    SMCR, '04', '002c', '28', // 44 bytes, version 2, out of sync
    S_PEER, '04000000', // SYNCERR
    '20', '000000', // OS type 2 (Linux), reserved
    '00000000', '00000000', '00000000', '00000000', // 4 more diagnosis codes
    SMCR,
  ),
};

const GOLDEN: [string, Buffer, string][] = [
  ['Proposal v1 RFC 7609 layout, IPv4, no IPv6 prefix (52)', G.proposalV1RfcIpv4, 'proposal v1 rfc7609 ipv4'],
  ['Proposal v1 RFC 7609 layout, 2 IPv6 prefixes (86)', G.proposalV1RfcIpv6, 'proposal v1 rfc7609 ipv6 two prefixes'],
  ['Proposal v1 Linux layout, iparea_offset 40 (92)', G.proposalV1Linux, 'proposal v1 linux layout'],
  ['Proposal, v2 header offering SMC-Rv1 only (92, flags 0x28)', G.proposalV2HeaderV1Only, 'proposal v2 header smc-rv1 only'],
  ['Proposal v2 SMC-Rv2 only, one UEID (156, flags 0x22)', G.proposalV2ROnly, 'proposal v2 smc-rv2 only one ueid'],
  ['Proposal v1+v2 with Alibaba vendor options (164, flags 0x20)', G.proposalV1V2, 'proposal v1+v2 one ueid alibaba vendor options'],
  ['Proposal v2 with SMC-Dv2 extension (222, flags 0x2c)', G.proposalV2SmcdExt, 'proposal v2 smc-r v1+v2 with smc-dv2 extension'],
  ['Accept v1 (68)', G.acceptV1, 'accept v1 first contact'],
  ['Confirm v1 (68)', G.confirmV1, 'confirm v1'],
  ['Accept v2 without FCE (108)', G.acceptV2, 'accept v2 without first contact'],
  ['Accept v2 with FCE (160)', G.acceptV2Fce, 'accept v2 first contact with fce'],
  ['Confirm v2 with FCE and 1 GID (180)', G.confirmV2FceGid, 'confirm v2 first contact with fce and one gid'],
  ['Decline v1 (28)', G.declineV1, 'decline v1'],
  ['Decline v2 out of sync (44, flags 0x28)', G.declineV2, 'decline v2 out of sync'],
];

/** Every valid encoding the tests know (goldens and captures), for the mutation tests. */
const VALID_FIXTURES: Buffer[] = [];

describe('clc golden vectors (hand-built from the spec layouts)', () => {
  for (const [title, bytes, name] of GOLDEN) {
    VALID_FIXTURES.push(bytes);
    it(title, () => golden(bytes, sample(name)));
  }
  it('covers every sample', () => {
    assert.deepEqual(GOLDEN.map((g) => g[2]).sort(), SAMPLES.map((s) => s.name).sort());
  });
  it('records the Proposal layout', () => {
    assert.equal(proposalLayout(decodeClc(G.proposalV1RfcIpv4) as ClcProposal), 'rfc7609');
    assert.equal(proposalLayout(decodeClc(G.proposalV1Linux) as ClcProposal), 'linux');
    assert.equal(proposalLayout(decodeClc(G.proposalV2ROnly) as ClcProposal), 'linux');
  });
  it('exposes the SMC-Dv2 extension and marks SMC-D unsupported', () => {
    const p = decodeClc(G.proposalV2SmcdExt) as ClcProposal;
    assert.equal(p.smcdV2Ext?.supported, false);
    assert.equal(p.smcdV2Ext?.systemEid, 'SEID-0001');
    assert.deepEqual(p.smcdV2Ext?.gidChids, [{ gid: 0x0123456789abcdefn, chid: 0x400 }]);
  });
  it('reads the Alibaba vendor flags in the Proposal and the FCE', () => {
    const p = decodeClc(G.proposalV1V2) as ClcProposal;
    const all = AliVendorFlag.VALID.value | AliVendorFlag.CREDITS_EN.value | AliVendorFlag.RWWI_EN.value;
    assert.equal(p.smcdArea?.vendorOui, ALIBABA_OUI);
    assert.equal(aliFlagsFromVendor(p.smcdArea!.vendorOui, p.smcdArea!.vendorOptions), all);
    assert.deepEqual(aliVendorOptions(all), p.smcdArea!.vendorOptions);
    assert.equal(aliFlagsFromVendor(0, p.smcdArea!.vendorOptions), 0);
    const a = decodeClc(G.acceptV2Fce) as ClcAccept;
    assert.equal(aliFlagsFromFce(a.fce), all);
    assert.equal(a.initCredits, 16);
    assert.equal(aliFlagsFromFce(undefined), 0);
  });
});

// ---------------------------------------------------------------------------------------------------
// Real Linux captures.
// Source: hwipl/smc, handshake/README.md @01ef3e2 (hex dumps of a Linux v1 CLC handshake on loopback), and
// the same bytes in hwipl/smc-go pkg/clc/clc_{proposal,accept_smcr,confirm_smcr,decline}_test.go @12aa084.

const captured = (name: string): Buffer => CAPTURES.find((c) => c.name === name)!.bytes;
const H = {
  proposalIpv4: captured('proposal v1 smc-r ipv4 (linux capture)'),
  proposalIpv6: captured('proposal v1 smc-r ipv6 (linux capture)'),
  accept: captured('accept v1 smc-r first contact (linux capture)'),
  confirm: captured('confirm v1 smc-r (linux capture)'),
  decline: captured('decline v1 nosmcdev (linux capture)'),
};
// hwipl/smc-go pkg/clc/clc_proposal_test.go @12aa084: v1 Proposals in the layout with the SMC-D area.
const GO = {
  proposalSmcd: h(
    'e2d4c3c401005c11b1a098039babcdef', rep('00', 16), '00000000000000280123456789abcdef',
    rep('00', 32), '7f00000008000000e2d4c3c4',
  ),
  proposalSmcb: h(
    'e2d4c3d901005c13b1a098039babcdef', 'fe800000000000009a039bfffeabcdef', '98039babcdef00280123456789abcdef',
    rep('00', 32), '7f00000008000000e2d4c3d9',
  ),
  proposalSmcbIpv6: h(
    'e2d4c3d901006d13394498039babcdef', 'fe800000000000009a039bfffeabcdef', '98039babcdef00280123456789abcdef',
    rep('00', 32), '00000000000000010000000000000000', '000000000000000180e2d4c3d9',
  ),
};

const HW_PEER = h('b1a098039babcdef');
const HW_GID = h('fe800000000000009a039bfffeabcdef');
const HW_MAC = h('98039babcdef');
const V6_LOOPBACK = h(rep('00', 15), '01');

const CAPTURED_MSGS: [string, Buffer, ClcMessage][] = [
  ['Proposal SMC-R IPv4 (52)', H.proposalIpv4, {
    type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'R', typev2: 'N', peerId: HW_PEER, gid: HW_GID, mac: HW_MAC, ipAreaOffset: 0,
    ipPrefix: { subnet: h('7f000000'), prefixLen: 8, ipv6Prefixes: [] },
  }],
  ['Proposal SMC-R IPv6 (69)', H.proposalIpv6, {
    type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'R', typev2: 'N', peerId: h('394498039babcdef'), gid: HW_GID, mac: HW_MAC, ipAreaOffset: 0,
    ipPrefix: { subnet: h('00000000'), prefixLen: 0, ipv6Prefixes: [{ prefix: V6_LOOPBACK, prefixLen: 128 }] },
  }],
  ['Accept SMC-R v1 first contact (68)', H.accept, {
    type: 'accept', eyecatcher: 'SMCR', version: 1, firstContact: true, peerId: HW_PEER, gid: HW_GID, mac: HW_MAC,
    qpn: 228, rmbRkey: 5501, rmbeIdx: 1, rmbeAlertToken: 5, rmbeSizeCode: 2, qpMtu: 3, initCredits: 0, rmbVaddr: 0xf0a60000n, psn: 7534078,
  }],
  ['Confirm SMC-R v1 (68)', H.confirm, {
    type: 'confirm', eyecatcher: 'SMCR', version: 1, firstContact: false, peerId: HW_PEER, gid: HW_GID, mac: HW_MAC,
    qpn: 229, rmbRkey: 6271, rmbeIdx: 1, rmbeAlertToken: 6, rmbeSizeCode: 2, qpMtu: 3, initCredits: 0, rmbVaddr: 0xf0a40000n, psn: 887204,
  }],
  ['Decline v1 NOSMCDEV (28)', H.decline, {
    type: 'decline', eyecatcher: 'SMCR', version: 1, typev1: 'R', outOfSync: false, peerId: h('2525252525252500'), peerDiagnosis: 0x03030000, osType: 0, trailerOk: true,
  }],
  ['smc-go: Proposal v1 SMC-D, "SMCD" eyecatcher, iparea_offset 40 (92)', GO.proposalSmcd, {
    type: 'proposal', eyecatcher: 'SMCD', version: 1, typev1: 'D', typev2: 'N', peerId: HW_PEER, gid: h(rep('00', 16)), mac: h(rep('00', 6)), ipAreaOffset: 40,
    smcdArea: { ismGid: 0x0123456789abcdefn, ismChid: 0, vendorOui: 0, vendorOptions: h(rep('00', 5)) },
    ipPrefix: { subnet: h('7f000000'), prefixLen: 8, ipv6Prefixes: [] },
  }],
  ['smc-go: Proposal v1 SMC-R + SMC-D (92)', GO.proposalSmcb, {
    type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'B', typev2: 'N', peerId: HW_PEER, gid: HW_GID, mac: HW_MAC, ipAreaOffset: 40,
    smcdArea: { ismGid: 0x0123456789abcdefn, ismChid: 0, vendorOui: 0, vendorOptions: h(rep('00', 5)) },
    ipPrefix: { subnet: h('7f000000'), prefixLen: 8, ipv6Prefixes: [] },
  }],
  ['smc-go: Proposal v1 SMC-R + SMC-D IPv6 (109)', GO.proposalSmcbIpv6, {
    type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'B', typev2: 'N', peerId: h('394498039babcdef'), gid: HW_GID, mac: HW_MAC, ipAreaOffset: 40,
    smcdArea: { ismGid: 0x0123456789abcdefn, ismChid: 0, vendorOui: 0, vendorOptions: h(rep('00', 5)) },
    ipPrefix: { subnet: h('00000000'), prefixLen: 0, ipv6Prefixes: [{ prefix: V6_LOOPBACK, prefixLen: 128 }] },
  }],
];

describe('clc real captures (hwipl/smc, hwipl/smc-go)', () => {
  for (const [title, bytes, msg] of CAPTURED_MSGS) {
    VALID_FIXTURES.push(bytes);
    it(`${title}: decodes and re-encodes byte for byte`, () => golden(bytes, msg));
  }

  // smc-go also has hand-made vectors the kernel would refuse; they show we apply the kernel's rules.
  it('smc-go "Decline v2" of 28 bytes: BAD_LENGTH (a version-2 Decline is 44)', () => {
    throwsWire(() => decodeClc(h('e2d4c3d904001c202525252525252500', '0303000020000000e2d4c3d9')), WireErrorCode.BAD_LENGTH, 5);
  });
  it('smc-go SMC-D Accept v1 (48) and v2 with base FCE (114): UNSUPPORTED after passing the length checks', () => {
    const v1 = h('e2d4c3c4020030110123456789abcdef', '0123456789abcdefff100000ffffffff', '000000000000000000000000e2d4c3c4');
    const e = throwsWire(() => decodeClc(v1), WireErrorCode.UNSUPPORTED, 7);
    assert.match(e.message, /SMC-D/);
    const v2 = h(
      'e2d4c3c4 02 0072 29 0123456789abcdef 0123456789abcdef ff 10 0000 ffffffff 0123',
      '546869734973534d4376324549443031', rep('00', 16), rep('00', 8),
      '00 20 0000 546869734973486f73746e616d653031', rep('00', 16), 'e2d4c3c4',
    );
    throwsWire(() => decodeClc(v2), WireErrorCode.UNSUPPORTED, 7);
    // Too short for SMC-D v2 (78): the length rule comes first.
    const short = Buffer.from(v2.subarray(0, 77));
    short.writeUInt16BE(77, 5);
    h(SMCD).copy(short, 73);
    throwsWire(() => decodeClc(short), WireErrorCode.BAD_LENGTH, 5);
  });
  it('smc-go v2 Proposal with typev1 N and iparea_offset 40: Linux reads byte 87 (0x40) as IPv6 count -> BAD_VALUE', () => {
    const b = h(
      'e2d4c3d9 01 00d6 2e 394498039babcdef fe800000000000009a039bfffeabcdef 98039babcdef 0028 0123456789abcdef',
      '1234 0000', rep('00', 12), rep('00', 16),
      '01 01 00 01 0000 00 40', rep('00', 15), rep('00', 16),
      '00 546869734973534d43763245494430', '31', rep('00', 15),
      '00 546869734973534d43763245494430', '32', rep('00', 15),
      '00', rep('00', 15), '00 abcdef0123456789 0123 e2d4c3d9',
    );
    assert.equal(b.length, 214);
    throwsWire(() => decodeClc(b), WireErrorCode.BAD_VALUE, 87);
  });
  it('smc-go v2 Proposal with v2_ext_offset 25 (the extension is at 36): BAD_VALUE at 50', () => {
    const b = h(
      'e2d4c3d9 01 00de 2f 394498039babcdef fe800000000000009a039bfffeabcdef 98039babcdef 0028 0123456789abcdef',
      '1234 0019', rep('00', 12), rep('00', 16),
      '7f000000 08 0000 00',
      '01 01 00 01 0000 00 40', rep('00', 15), rep('00', 16),
      '00 546869734973534d43763245494430', '31', rep('00', 15),
      '00 546869734973534d43763245494430', '32', rep('00', 15),
      '00', rep('00', 15), '00 abcdef0123456789 0123 e2d4c3d9',
    );
    assert.equal(b.length, 222);
    throwsWire(() => decodeClc(b), WireErrorCode.BAD_VALUE, 50);
  });
});

// ---------------------------------------------------------------------------------------------------
// Validation: every error code with its offset

/** Copy of a fixture with one byte set (or a BE16 when `v16` is given). */
function patch(b: Buffer, at: number, v: number, v16 = false): Buffer {
  const c = Buffer.from(b);
  if (v16) c.writeUInt16BE(v, at);
  else c[at] = v;
  return c;
}

describe('clc decode validation', () => {
  it('TRUNCATED: fewer than 8 bytes, or fewer than the header length in [off, end)', () => {
    throwsWire(() => decodeClc(G.declineV1.subarray(0, 7)), WireErrorCode.TRUNCATED, 0);
    throwsWire(() => decodeClc(G.declineV1, 0, 27), WireErrorCode.TRUNCATED, 0);
    const big = Buffer.concat([Buffer.alloc(5), G.acceptV1]);
    throwsWire(() => decodeClc(big, 5, big.length - 1), WireErrorCode.TRUNCATED, 5);
    assert.equal(decodeClc(big, 5).type, 'accept');
  });
  it('BAD_EYECATCHER: first 4 bytes are not SMCR/SMCD (absolute offset)', () => {
    throwsWire(() => decodeClc(patch(G.acceptV1, 3, 0xc5)), WireErrorCode.BAD_EYECATCHER, 0);
    const big = Buffer.concat([Buffer.alloc(9), Buffer.from('GET / HTTP/1.1\r\n')]);
    throwsWire(() => decodeClc(big, 9), WireErrorCode.BAD_EYECATCHER, 9);
  });
  it('BAD_VERSION: version 0', () => {
    throwsWire(() => decodeClc(patch(G.declineV1, 7, 0x00)), WireErrorCode.BAD_VERSION, 7);
  });
  it('UNKNOWN_TYPE: type byte not 1..4', () => {
    throwsWire(() => decodeClc(patch(G.declineV1, 4, 5)), WireErrorCode.UNKNOWN_TYPE, 4);
    throwsWire(() => decodeClc(patch(G.declineV1, 4, 0)), WireErrorCode.UNKNOWN_TYPE, 4);
  });
  it('BAD_LENGTH: length below 12', () => {
    throwsWire(() => decodeClc(patch(G.declineV1, 5, 11, true)), WireErrorCode.BAD_LENGTH, 5);
  });
  it('BAD_TRAILER for Proposal, Accept and Confirm (offset of the trailer)', () => {
    for (const b of [G.proposalV1RfcIpv4, G.proposalV2ROnly, G.acceptV1, G.acceptV2Fce, G.confirmV2FceGid]) {
      throwsWire(() => decodeClc(patch(b, b.length - 1, 0x00)), WireErrorCode.BAD_TRAILER, b.length - 4);
    }
    const big = Buffer.concat([Buffer.alloc(2), patch(G.confirmV1, 64, 0x40)]);
    throwsWire(() => decodeClc(big, 2), WireErrorCode.BAD_TRAILER, 2 + 64);
  });
  it('a Decline with a wrong trailer decodes with trailerOk = false (Linux does not check it)', () => {
    for (const b of [G.declineV1, G.declineV2]) {
      const d = decodeClc(patch(b, b.length - 2, 0x00)) as ClcDecline;
      assert.equal(d.trailerOk, false);
      assert.equal(d.trailer, undefined);
      assert.deepEqual(clcToBuffer(d), b); // the encoder writes a correct trailer
    }
  });
  it('mixed eyecatchers are accepted and reproduced', () => {
    const b = Buffer.from(G.acceptV2Fce);
    h(SMCD).copy(b, b.length - 4);
    const a = decodeClc(b) as ClcAccept;
    assert.equal(a.eyecatcher, 'SMCR');
    assert.equal(a.trailer, 'SMCD');
    assert.deepEqual(clcToBuffer(a), b);
    const d = Buffer.from(G.declineV1);
    h(SMCD).copy(d, 0);
    const dm = decodeClc(d) as ClcDecline;
    assert.equal(dm.eyecatcher, 'SMCD');
    assert.equal(dm.trailer, 'SMCR');
    assert.equal(dm.trailerOk, true);
    assert.deepEqual(clcToBuffer(dm), d);
  });

  it('Proposal v1: exact length formula 40 + iparea_offset + 8 + 17n + 4', () => {
    // One byte more than the formula.
    const longer = Buffer.concat([G.proposalV1RfcIpv4.subarray(0, 48), Buffer.from([0]), h(SMCR)]);
    longer.writeUInt16BE(53, 5);
    throwsWire(() => decodeClc(longer), WireErrorCode.BAD_LENGTH, 5);
    // IPv6 count says 1 but no entry follows.
    throwsWire(() => decodeClc(patch(G.proposalV1RfcIpv4, 47, 1)), WireErrorCode.BAD_LENGTH, 5);
    // iparea_offset 40 on a message without the area.
    throwsWire(() => decodeClc(patch(G.proposalV1RfcIpv4, 38, 40, true)), WireErrorCode.BAD_LENGTH, 5);
  });
  it('Proposal v1: counts and offsets over the limits are BAD_VALUE at the field', () => {
    throwsWire(() => decodeClc(patch(G.proposalV1RfcIpv4, 47, 9)), WireErrorCode.BAD_VALUE, 47);
    throwsWire(() => decodeClc(patch(G.proposalV1Linux, 87, 9)), WireErrorCode.BAD_VALUE, 87);
    throwsWire(() => decodeClc(patch(G.proposalV1Linux, 38, 41, true)), WireErrorCode.BAD_VALUE, 38);
    throwsWire(() => decodeClc(patch(G.proposalV1RfcIpv4, 7, 0x12)), WireErrorCode.BAD_VALUE, 7); // typev1 N
  });
  it('Proposal v1 with an iparea_offset of 1..39 (RFC "area for future growth") decodes; the area is reserved', () => {
    const b = h(SMCR, '01', '0038', '10', C_PEER, C_GID1, C_MAC, '0004', 'deadbeef', PFX_10_24, SMCR);
    const p = decodeClc(b) as ClcProposal;
    assert.equal(p.ipAreaOffset, 4);
    assert.equal(p.smcdArea, undefined);
    assert.deepEqual(p.ipPrefix?.subnet, h('0a000000'));
    assert.deepEqual(clcToBuffer(p), h(SMCR, '01', '0038', '10', C_PEER, C_GID1, C_MAC, '0004', '00000000', PFX_10_24, SMCR));
  });
  it('Proposal v2: exact length formula of spec 3.3.5', () => {
    throwsWire(() => decodeClc(patch(patch(G.proposalV2ROnly, 80, 2), 5, 188, true).subarray(0, 156), 0, 156), WireErrorCode.TRUNCATED, 0);
    // eid_cnt 2 but only one UEID.
    throwsWire(() => decodeClc(patch(G.proposalV2ROnly, 80, 2)), WireErrorCode.BAD_LENGTH, 5);
    // eid_cnt 0 but one UEID present.
    throwsWire(() => decodeClc(patch(G.proposalV2ROnly, 80, 0)), WireErrorCode.BAD_LENGTH, 5);
    // typev2 B announced but no SMC-Dv2 extension.
    throwsWire(() => decodeClc(patch(G.proposalV1V2, 7, 0x2c)), WireErrorCode.BAD_LENGTH, 5);
    // Too short for a v2 Proposal at all.
    const tiny = h(SMCR, '01', '0034', '20', rep('00', 40), SMCR);
    throwsWire(() => decodeClc(tiny), WireErrorCode.BAD_LENGTH, 5);
  });
  it('Proposal v2: eid_cnt, ism_gid_cnt, ipv6 count > 8 are BAD_VALUE at the field', () => {
    throwsWire(() => decodeClc(patch(G.proposalV2ROnly, 80, 9)), WireErrorCode.BAD_VALUE, 80);
    throwsWire(() => decodeClc(patch(G.proposalV2SmcdExt, 89, 9)), WireErrorCode.BAD_VALUE, 89);
    throwsWire(() => decodeClc(patch(G.proposalV1V2, 87, 9)), WireErrorCode.BAD_VALUE, 87);
    // ism_gid_cnt is not looked at when typev2 = R (Linux ignores it): no error, re-encoded as 0.
    const r = decodeClc(patch(G.proposalV1V2, 89, 9));
    assert.deepEqual(clcToBuffer(r), G.proposalV1V2);
  });
  it('Proposal v2: v2_ext_offset 0, > 172 or not where the layout puts it is BAD_VALUE at 50', () => {
    throwsWire(() => decodeClc(patch(G.proposalV2ROnly, 50, 0, true)), WireErrorCode.BAD_VALUE, 50);
    throwsWire(() => decodeClc(patch(G.proposalV2ROnly, 50, 173, true)), WireErrorCode.BAD_VALUE, 50);
    throwsWire(() => decodeClc(patch(G.proposalV2ROnly, 50, 36, true)), WireErrorCode.BAD_VALUE, 50);
    // With typev2 = N the field is not used (Linux sends 0): ignored, re-encoded as 0.
    const n = decodeClc(patch(G.proposalV2HeaderV1Only, 50, 0x1234, true));
    assert.deepEqual(clcToBuffer(n), G.proposalV2HeaderV1Only);
  });
  it('Proposal v2: smcd_v2_ext_offset must point right after the UEIDs (BAD_VALUE at ext + 6)', () => {
    throwsWire(() => decodeClc(patch(G.proposalV2SmcdExt, 94, 0, true)), WireErrorCode.BAD_VALUE, 94);
    throwsWire(() => decodeClc(patch(G.proposalV2SmcdExt, 94, 289, true)), WireErrorCode.BAD_VALUE, 94);
    throwsWire(() => decodeClc(patch(G.proposalV2SmcdExt, 94, 32, true)), WireErrorCode.BAD_VALUE, 94);
  });
  it('Proposal v2: iparea_offset must be 40 when typev1 != N, <= 40 always', () => {
    throwsWire(() => decodeClc(patch(G.proposalV1V2, 38, 0, true)), WireErrorCode.BAD_VALUE, 38);
    throwsWire(() => decodeClc(patch(G.proposalV2ROnly, 38, 41, true)), WireErrorCode.BAD_VALUE, 38);
  });
  it('Proposal v2 typev1 N: Linux reads byte 47 + iparea_offset as IPv6 count (spec 3.3.5 quirk)', () => {
    throwsWire(() => decodeClc(patch(G.proposalV2ROnly, 47, 9)), WireErrorCode.BAD_VALUE, 47);
    const ok = decodeClc(patch(G.proposalV2ROnly, 47, 8)) as ClcProposal;
    assert.equal(ok.smcdArea?.ismGid, 8n);
    const bad = { ...(sample('proposal v2 smc-rv2 only one ueid') as ClcProposal), smcdArea: { ismGid: 9n, ismChid: 0, vendorOui: 0, vendorOptions: Buffer.alloc(5) } };
    throwsWire(() => clcToBuffer(bad), WireErrorCode.BAD_VALUE, 47);
  });
  it('Proposal versions 3..15 use the v2 layout and keep their version', () => {
    const p = decodeClc(patch(G.proposalV2ROnly, 7, 0xf2)) as ClcProposal;
    assert.equal(p.version, 15);
    assert.deepEqual(clcToBuffer(p), patch(G.proposalV2ROnly, 7, 0xf2));
  });
  it('Proposal v1: bits 3-2 of byte 7 are reserved (typev2 N, written as 0)', () => {
    const p = decodeClc(patch(G.proposalV1RfcIpv4, 7, 0x1c)) as ClcProposal;
    assert.equal(p.typev2, 'N');
    assert.deepEqual(clcToBuffer(p), G.proposalV1RfcIpv4);
  });

  it('Accept/Confirm: typev1 must be R or D (BAD_VALUE at 7)', () => {
    throwsWire(() => decodeClc(patch(G.acceptV1, 7, 0x1a)), WireErrorCode.BAD_VALUE, 7);
    throwsWire(() => decodeClc(patch(G.confirmV1, 7, 0x13)), WireErrorCode.BAD_VALUE, 7);
  });
  it('Accept/Confirm v1 is exactly 68; v2 at least 108', () => {
    const v1long = Buffer.concat([G.acceptV1.subarray(0, 64), Buffer.alloc(4), h(SMCR)]);
    v1long.writeUInt16BE(72, 5);
    throwsWire(() => decodeClc(v1long), WireErrorCode.BAD_LENGTH, 5);
    const v2short = Buffer.concat([G.acceptV2.subarray(0, 100), h(SMCR)]);
    v2short.writeUInt16BE(104, 5);
    throwsWire(() => decodeClc(v2short), WireErrorCode.BAD_LENGTH, 5);
    // A v1 header on a v2-sized message.
    throwsWire(() => decodeClc(patch(G.acceptV2, 7, 0x10)), WireErrorCode.BAD_LENGTH, 5);
  });
  it('Confirm v2: a GID count that does not fit the length is BAD_LENGTH', () => {
    throwsWire(() => decodeClc(patch(G.confirmV2FceGid, 156, 2)), WireErrorCode.BAD_LENGTH, 5);
    const zero = decodeClc(patch(G.confirmV2FceGid, 156, 0)) as ClcConfirm;
    assert.deepEqual(zero.gidList, []);
    assert.deepEqual(zero.extra, h(C_GID2));
    assert.deepEqual(clcToBuffer(zero), patch(G.confirmV2FceGid, 156, 0));
  });
  it('Accept/Confirm v2 first contact shorter than 160: parses what is present', () => {
    // 108 bytes with the first-contact bit: no FCE (the kernel would read zeros).
    const noFce = decodeClc(patch(G.acceptV2, 7, 0x28)) as ClcAccept;
    assert.equal(noFce.firstContact, true);
    assert.equal(noFce.fce, undefined);
    assert.deepEqual(clcToBuffer(noFce), patch(G.acceptV2, 7, 0x28));
    // 144 bytes: the 36-byte base FCE (release 0), no v2.1 fields.
    const base = Buffer.concat([G.acceptV2Fce.subarray(0, 140), h(SMCR)]);
    base.writeUInt16BE(144, 5);
    base[105] = 0x20;
    const b = decodeClc(base) as ClcAccept;
    assert.deepEqual(b.fce, { v2Direct: true, osType: 2, release: 0, hostname: 'server01' });
    assert.equal(b.extra, undefined);
    assert.deepEqual(clcToBuffer(b), base);
    // 120 bytes: too short for any FCE; the 12 bytes are kept as extra.
    const part = Buffer.concat([G.acceptV2Fce.subarray(0, 116), h(SMCR)]);
    part.writeUInt16BE(120, 5);
    const pm = decodeClc(part) as ClcAccept;
    assert.equal(pm.fce, undefined);
    assert.deepEqual(pm.extra, G.acceptV2Fce.subarray(104, 116));
    assert.deepEqual(clcToBuffer(pm), part);
  });
  it('Accept v2 longer than its parts keeps the rest in extra', () => {
    const long = Buffer.concat([G.acceptV2Fce.subarray(0, 156), h('0102030405'), h(SMCR)]);
    long.writeUInt16BE(165, 5);
    const a = decodeClc(long) as ClcAccept;
    assert.deepEqual(a.extra, h('0102030405'));
    assert.deepEqual(clcToBuffer(a), long);
  });
  it('UNSUPPORTED: SMC-D Accept/Confirm', () => {
    const d = h(SMCD, '03', '0030', '11', rep('11', 36), SMCD);
    throwsWire(() => decodeClc(d), WireErrorCode.UNSUPPORTED, 7);
  });

  it('Decline: exactly 28 (v1) / 44 (v2), typev1 R or D', () => {
    throwsWire(() => decodeClc(patch(G.declineV1, 7, 0x20)), WireErrorCode.BAD_LENGTH, 5);
    throwsWire(() => decodeClc(patch(G.declineV2, 7, 0x10)), WireErrorCode.BAD_LENGTH, 5);
    throwsWire(() => decodeClc(patch(G.declineV1, 7, 0x12)), WireErrorCode.BAD_VALUE, 7);
    const d = decodeClc(patch(G.declineV1, 7, 0x11)) as ClcDecline;
    assert.equal(d.typev1, 'D');
  });
});

describe('peekClcHeader', () => {
  it('returns the header fields', () => {
    assert.deepEqual(peekClcHeader(G.declineV2), {
      eyecatcher: 'SMCR', typeCode: 4, type: 'decline', length: 44, version: 2, flags: 0x28, typev1: 'R', typev2: 'N', firstContact: true,
    });
    const p = peekClcHeader(G.proposalV1V2, 0, 8)!;
    assert.equal(p.type, 'proposal');
    assert.equal(p.typev2, 'R');
    assert.equal(p.length, 164);
    assert.equal(peekClcHeader(patch(G.declineV1, 4, 9))!.type, undefined);
  });
  it('returns undefined with fewer than 8 bytes of a possible eyecatcher', () => {
    for (let n = 0; n < 8; n++) assert.equal(peekClcHeader(G.acceptV1, 0, n), undefined);
    assert.equal(peekClcHeader(h('e2d4c3c4 02')), undefined);
  });
  it('throws BAD_EYECATCHER as soon as the bytes cannot start an eyecatcher', () => {
    throwsWire(() => peekClcHeader(Buffer.from('G')), WireErrorCode.BAD_EYECATCHER, 0);
    assert.equal(peekClcHeader(h('e2d4')), undefined);
    throwsWire(() => peekClcHeader(h('e2d4c3d8')), WireErrorCode.BAD_EYECATCHER, 3);
    throwsWire(() => peekClcHeader(Buffer.from('xxGET / HTTP/1.1'), 2), WireErrorCode.BAD_EYECATCHER, 2);
  });
});

// ---------------------------------------------------------------------------------------------------
// Encoder checks

describe('clc encode validation', () => {
  const acc = sample('accept v2 first contact with fce') as ClcAccept;
  const conf = sample('confirm v2 first contact with fce and one gid') as ClcConfirm;
  const prop = sample('proposal v1+v2 one ueid alibaba vendor options') as ClcProposal;
  const dec = sample('decline v2 out of sync') as ClcDecline;

  it('BUFFER_TOO_SMALL before writing anything', () => {
    const buf = Buffer.alloc(100, 0x55);
    throwsWire(() => encodeClc(acc, buf, 0), WireErrorCode.BUFFER_TOO_SMALL, 0);
    throwsWire(() => encodeClc(dec, buf, 60), WireErrorCode.BUFFER_TOO_SMALL, 60);
    assert.ok(buf.every((b) => b === 0x55));
  });
  it('BAD_VALUE for out-of-range numbers, at the field offset', () => {
    const buf = Buffer.alloc(400);
    throwsWire(() => encodeClc({ ...acc, qpn: 0x1000000 }, buf, 10), WireErrorCode.BAD_VALUE, 48);
    throwsWire(() => encodeClc({ ...acc, rmbeSizeCode: 16 }, buf, 0), WireErrorCode.BAD_VALUE, 50);
    throwsWire(() => encodeClc({ ...acc, psn: -1 }, buf, 0), WireErrorCode.BAD_VALUE, 61);
    throwsWire(() => encodeClc({ ...acc, rmbVaddr: 1n << 64n }, buf, 0), WireErrorCode.BAD_VALUE, 52);
    throwsWire(() => encodeClc({ ...acc, peerId: Buffer.alloc(7) }, buf, 0), WireErrorCode.BAD_VALUE, 8);
    throwsWire(() => encodeClc({ ...acc, fce: { ...acc.fce!, hostname: 'x'.repeat(33) } }, buf, 0), WireErrorCode.BAD_VALUE, 108);
    throwsWire(() => encodeClc({ ...dec, peerDiagnosis: 2 ** 32 }, buf, 0), WireErrorCode.BAD_VALUE, 16);
    throwsWire(() => encodeClc({ ...prop, v2Ext: { ...prop.v2Ext!, release: 16 } }, buf, 0), WireErrorCode.BAD_VALUE, 91);
    throwsWire(() => encodeClc({ ...prop, smcdArea: { ...prop.smcdArea!, vendorOui: 0x1000000 } }, buf, 0), WireErrorCode.BAD_VALUE, 52);
    throwsWire(() => encodeClc({ ...prop, v2Ext: { ...prop.v2Ext!, ueids: ['E'.repeat(33)] } }, buf, 0), WireErrorCode.BAD_VALUE, 128);
  });
  it('BAD_VERSION for a version outside 1..15', () => {
    throwsWire(() => clcToBuffer({ ...dec, version: 0 }), WireErrorCode.BAD_VERSION, 7);
    throwsWire(() => clcToBuffer({ ...acc, version: 16 }), WireErrorCode.BAD_VERSION, 7);
  });
  it('BAD_VALUE for parts that do not fit the version / flags', () => {
    throwsWire(() => clcToBuffer({ ...acc, version: 1 }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...acc, eid: undefined }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...acc, firstContact: false }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...acc, gidList: [] }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...conf, fce: { ...conf.fce!, maxLinks: undefined } }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...conf, gidList: undefined, extra: Buffer.alloc(4) }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...prop, version: 1 }), WireErrorCode.BAD_VALUE, 7);
    throwsWire(() => clcToBuffer({ ...prop, v2Ext: undefined }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...prop, typev1: 'N' }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...prop, ipAreaOffset: 0 }), WireErrorCode.BAD_VALUE, 38);
    throwsWire(() => clcToBuffer({ ...prop, typev2: 'X' as never }), WireErrorCode.BAD_VALUE, 7);
    throwsWire(() => clcToBuffer({ ...prop, eyecatcher: 'SMCX' as never }), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => clcToBuffer({ ...prop, v2Ext: { ...prop.v2Ext!, ueids: Array(9).fill('A') } }), WireErrorCode.BAD_VALUE);
    throwsWire(() => clcToBuffer({ ...dec, diagnosisV2: [1, 2, 3] }), WireErrorCode.BAD_VALUE, 24);
    throwsWire(() => clcToBuffer({ ...dec, version: 1 }), WireErrorCode.BAD_VALUE, 24);
    throwsWire(() => clcToBuffer({ ...dec, typev1: 'B' as never }), WireErrorCode.BAD_VALUE, 7);
    throwsWire(() => clcToBuffer({ type: 'hello' } as never), WireErrorCode.UNKNOWN_TYPE);
  });
  it('zeroes reserved bytes of a dirty buffer', () => {
    for (const s of SAMPLES) {
      const len = clcLength(s.msg);
      const dirty = Buffer.alloc(len, 0xff);
      encodeClc(s.msg, dirty, 0);
      assert.deepEqual(dirty, clcToBuffer(s.msg), s.name);
    }
  });
  it('an empty negotiated EID is sent as zeros, a host name is blank padded', () => {
    const b = clcToBuffer({ ...acc, eid: '', fce: { ...acc.fce!, hostname: '' } });
    assert.deepEqual(b.subarray(64, 96), Buffer.alloc(32));
    assert.deepEqual(b.subarray(108, 140), Buffer.alloc(32, 0x20));
  });
});

// ---------------------------------------------------------------------------------------------------
// Property tests

/** fc.record without null-prototype objects (decoded messages are plain objects). */
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}
const bytesN = (n: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u24 = fc.integer({ min: 0, max: 0xffffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const nibble = fc.integer({ min: 0, max: 15 });
const eid = fc.oneof(fc.constant(''), fc.stringMatching(/^[A-Z0-9][A-Z0-9.-]{0,31}$/));
const hostname = fc.stringMatching(/^[a-z0-9.-]{0,32}$/);
const smcType = fc.constantFrom<SmcType>('R', 'D', 'N', 'B');
const version = fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 15 }));
const header = rec({ eyecatcher: fc.constantFrom<'SMCR' | 'SMCD'>('SMCR', 'SMCD'), other: fc.boolean() }).map(({ eyecatcher, other }) =>
  other ? { eyecatcher, trailer: eyecatcher === 'SMCR' ? ('SMCD' as const) : ('SMCR' as const) } : { eyecatcher });
const optionalBytes = (max: number): fc.Arbitrary<Buffer | undefined> =>
  fc.option(fc.uint8Array({ minLength: 1, maxLength: max }).map((a) => Buffer.from(a)), { nil: undefined });
/** Drops keys whose value is undefined (decoded messages omit absent parts). */
function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const prefixArea = rec({
  subnet: bytesN(4),
  prefixLen: u8,
  ipv6Prefixes: fc.array(rec({ prefix: bytesN(16), prefixLen: u8 }), { maxLength: 8 }),
});
const smcdArea = rec({ ismGid: u64, ismChid: u16, vendorOui: u24, vendorOptions: bytesN(5) });

const proposalArb: fc.Arbitrary<ClcProposal> = fc
  .record({ h: header, version, typev1: smcType, typev2: smcType, peerId: bytesN(8), gid: bytesN(16), mac: bytesN(6), iao: fc.integer({ min: 0, max: 40 }), smcdArea, ipPrefix: prefixArea,
    v2Ext: rec({ release: nibble, seid: fc.boolean(), roceGid: bytesN(16), maxConns: u8, maxLinks: u8, featureMask: u16, ueids: fc.array(eid, { maxLength: 8 }) }),
    smcdV2Ext: rec({ supported: fc.constant(false as const), systemEid: eid, gidChids: fc.array(rec({ gid: u64, chid: u16 }), { maxLength: 8 }) }) })
  .map((r) => {
    if (r.version === 1) {
      const typev1 = r.typev1 === 'N' ? 'R' : r.typev1;
      return clean<ClcProposal>({ type: 'proposal', ...r.h, version: 1, typev1, typev2: 'N', peerId: r.peerId, gid: r.gid, mac: r.mac, ipAreaOffset: r.iao,
        smcdArea: r.iao === 40 ? r.smcdArea : undefined, ipPrefix: r.ipPrefix });
    }
    const iao = r.typev1 !== 'N' ? 40 : r.iao;
    return clean<ClcProposal>({ type: 'proposal', ...r.h, version: r.version, typev1: r.typev1, typev2: r.typev2, peerId: r.peerId, gid: r.gid, mac: r.mac, ipAreaOffset: iao,
      smcdArea: r.smcdArea, ipPrefix: r.typev1 !== 'N' ? r.ipPrefix : undefined, v2Ext: r.typev2 !== 'N' ? r.v2Ext : undefined,
      smcdV2Ext: r.typev2 === 'D' || r.typev2 === 'B' ? r.smcdV2Ext : undefined });
  })
  .filter((p) => {
    // Drop the Proposals Linux would reject because of the byte it reads as IPv6 count (spec 3.3.5).
    try {
      clcToBuffer(p);
      return true;
    } catch (e) {
      if (e instanceof WireError && /IPv6 prefix count/.test(e.message)) return false;
      throw e;
    }
  });

const fceArb = rec({ v2Direct: fc.boolean(), osType: nibble, release: nibble, hostname, full: fc.boolean(), maxConns: u8, maxLinks: u8, featureMask: u16, vendorOptions: u32 })
  .map(({ full, maxConns, maxLinks, featureMask, vendorOptions, ...base }) => (full ? { ...base, maxConns, maxLinks, featureMask, vendorOptions } : base));

const acceptConfirmArb: fc.Arbitrary<ClcAccept | ClcConfirm> = fc
  .record({ h: header, type: fc.constantFrom<'accept' | 'confirm'>('accept', 'confirm'), version, firstContact: fc.boolean(), peerId: bytesN(8), gid: bytesN(16), mac: bytesN(6),
    qpn: u24, rmbRkey: u32, rmbeIdx: u8, rmbeAlertToken: u32, rmbeSizeCode: nibble, qpMtu: nibble, initCredits: u8, rmbVaddr: u64, psn: u24,
    eid, fce: fc.option(fceArb, { nil: undefined }), gids: fc.option(fc.array(bytesN(16), { maxLength: 4 }), { nil: undefined }), extra: fc.uint8Array({ maxLength: 40 }) })
  .map(({ h: hd, version: v, fce, gids, extra, eid: e, ...r }) => {
    const base = { ...hd, ...r, version: v };
    if (v === 1) return clean(base) as ClcAccept | ClcConfirm;
    const f = r.firstContact ? fce : undefined;
    const full = f !== undefined && 'maxConns' in f;
    const gidList = r.type === 'confirm' && full ? gids : undefined;
    // The largest extra that still decodes back as extra (see clc-accept.ts).
    let maxExtra = 40;
    if (r.firstContact && f === undefined) maxExtra = 35;
    else if (f !== undefined && !full) maxExtra = 15;
    else if (full && r.type === 'confirm' && gidList === undefined) maxExtra = 3;
    const x = extra.length > 0 ? Buffer.from(extra.subarray(0, maxExtra)) : undefined;
    return clean({ ...base, eid: e, fce: f, gidList, extra: x }) as ClcAccept | ClcConfirm;
  });

const declineArb: fc.Arbitrary<ClcDecline> = fc
  .record({ h: header, version, typev1: fc.constantFrom<'R' | 'D'>('R', 'D'), outOfSync: fc.boolean(), peerId: bytesN(8), peerDiagnosis: u32, osType: nibble,
    d: fc.tuple(u32, u32, u32, u32) })
  .map(({ h: hd, d, ...r }) => clean<ClcDecline>({ type: 'decline', ...hd, ...r, diagnosisV2: r.version >= 2 ? d : undefined, trailerOk: true }));

const messageArb: fc.Arbitrary<ClcMessage> = fc.oneof(proposalArb, acceptConfirmArb, declineArb);

/** Decoded message re-encodes and decodes to itself (a Decline's trailerOk becomes true). */
function reencodes(m: ClcMessage): void {
  const again = decodeClc(clcToBuffer(m));
  assert.deepEqual(again, m.type === 'decline' ? { ...m, trailerOk: true } : m);
}

describe('clc properties', () => {
  it('decode(encode(m)) deep-equals m; clcLength is the encoded size', () => {
    fc.assert(fc.property(messageArb, fc.integer({ min: 0, max: 7 }), (m, off) => {
      const len = clcLength(m);
      const buf = Buffer.alloc(off + len + 3);
      assert.equal(encodeClc(m, buf, off), off + len);
      assert.equal(buf.readUInt16BE(off + 5), len);
      assert.deepEqual(decodeClc(buf, off, off + len), m);
    }), { numRuns: 600 });
  });
  it('random bytes only ever throw WireError or decode to something that re-encodes', () => {
    const withHeader = fc.tuple(fc.constantFrom(SMCR, SMCD), fc.integer({ min: 1, max: 4 }), fc.uint8Array({ minLength: 0, maxLength: 300 }), u8)
      .map(([eye, type, body, flags]) => {
        const b = Buffer.concat([h(eye), Buffer.from([type, 0, 0, flags]), body]);
        b.writeUInt16BE(b.length, 5);
        return b;
      });
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), withHeader), (b) => {
      let m: ClcMessage;
      try {
        m = decodeClc(b);
      } catch (e) {
        assert.ok(e instanceof WireError, String(e));
        return;
      }
      reencodes(m);
    }), { numRuns: 3000 });
  });
  it('single-byte mutations and truncations of valid encodings only throw WireError or re-encode', () => {
    const all = [...VALID_FIXTURES, ...SAMPLES.map((s) => clcToBuffer(s.msg))];
    fc.assert(fc.property(fc.nat(), fc.nat(), u8, fc.nat(), (i, pos, v, cut) => {
      const base = all[i % all.length]!;
      const mutated = patch(base, pos % base.length, v);
      for (const b of [mutated, mutated.subarray(0, cut % (base.length + 1))]) {
        let m: ClcMessage;
        try {
          m = decodeClc(b);
        } catch (e) {
          assert.ok(e instanceof WireError, String(e));
          continue;
        }
        reencodes(m);
      }
    }), { numRuns: 5000 });
  });
  it('every byte of every fixture, mutated to every other value (exhaustive for short messages)', () => {
    for (const base of [G.acceptV1, G.declineV2, H.proposalIpv6, G.proposalV2ROnly]) {
      for (let pos = 0; pos < base.length; pos++) {
        for (let v = 0; v < 256; v += 7) {
          let m: ClcMessage;
          try {
            m = decodeClc(patch(base, pos, v));
          } catch (e) {
            assert.ok(e instanceof WireError, String(e));
            continue;
          }
          reencodes(m);
        }
      }
    }
  });
});

// The samples also serve the tshark cross-tests: make sure they keep their realistic identifiers.
describe('clc samples', () => {
  it('use the realistic client/server identifiers and the Anolis UEID', () => {
    const p = sample('proposal v2 smc-rv2 only one ueid') as ClcProposal;
    assert.deepEqual(p.v2Ext?.roceGid, CLIENT.gidV2);
    assert.deepEqual(p.v2Ext?.ueids, [UEID]);
    assert.deepEqual((sample('accept v1 first contact') as ClcAccept).peerId, SERVER.peerId);
    assert.equal(ClcLength.PROPOSAL_MAX, 652);
  });
});
