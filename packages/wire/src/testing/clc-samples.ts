/**
 * One realistic CLC message per kind, version and layout the codec supports, for cross-package tests
 * (tshark decode, engine fixtures). Values look like a real x86 Linux pair: client 10.0.0.2, server
 * 10.0.0.1 on 10.0.0.0/24, Mellanox-style MACs, IPv4-mapped RoCEv2 GIDs, Anolis' default UEID.
 * Excluded from the build; import through a relative path.
 */
import type { ClcMessage } from '../clc.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Client (10.0.0.2) identifiers. */
export const CLIENT = {
  peerId: hex('9c3e b8cef6123456'),
  mac: hex('b8cef6123456'),
  /** RoCE v1 link-local GID fe80::bace:f6ff:fe12:3456. */
  gidV1: hex('fe800000000000 00 bacef6fffe123456'),
  /** RoCEv2 GID ::ffff:10.0.0.2. */
  gidV2: hex('00000000000000000000ffff0a000002'),
} as const;

/** Server (10.0.0.1) identifiers. */
export const SERVER = {
  peerId: hex('51a7 b8cef6abcdef'),
  mac: hex('b8cef6abcdef'),
  /** fe80::bace:f6ff:feab:cdef. */
  gidV1: hex('fe80000000000000bacef6fffeabcdef'),
  /** ::ffff:10.0.0.1. */
  gidV2: hex('00000000000000000000ffff0a000001'),
} as const;

/** Anolis' pre-configured UEID (spec 3.3.4). */
export const UEID = 'SMCV2-DEFAULT-UEID';

const zeros = (n: number): Buffer => Buffer.alloc(n);
const subnet24 = { subnet: hex('0a000000'), prefixLen: 24, ipv6Prefixes: [] };
const noVendor = { ismGid: 0n, ismChid: 0, vendorOui: 0, vendorOptions: zeros(5) };

export const SAMPLES: { name: string; msg: ClcMessage }[] = [
  {
    name: 'proposal v1 rfc7609 ipv4',
    msg: { type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'R', typev2: 'N', peerId: CLIENT.peerId, gid: CLIENT.gidV1, mac: CLIENT.mac, ipAreaOffset: 0, ipPrefix: subnet24 },
  },
  {
    name: 'proposal v1 rfc7609 ipv6 two prefixes',
    msg: {
      type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'R', typev2: 'N', peerId: CLIENT.peerId, gid: CLIENT.gidV1, mac: CLIENT.mac, ipAreaOffset: 0,
      ipPrefix: {
        subnet: zeros(4), prefixLen: 0,
        ipv6Prefixes: [
          { prefix: hex('20010db8000100000000000000000000'), prefixLen: 64 },
          { prefix: hex('fd123456789a00010000000000000000'), prefixLen: 64 },
        ],
      },
    },
  },
  {
    name: 'proposal v1 linux layout',
    msg: { type: 'proposal', eyecatcher: 'SMCR', version: 1, typev1: 'R', typev2: 'N', peerId: CLIENT.peerId, gid: CLIENT.gidV1, mac: CLIENT.mac, ipAreaOffset: 40, smcdArea: noVendor, ipPrefix: subnet24 },
  },
  {
    name: 'proposal v2 header smc-rv1 only',
    msg: { type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'R', typev2: 'N', peerId: CLIENT.peerId, gid: CLIENT.gidV1, mac: CLIENT.mac, ipAreaOffset: 40, smcdArea: noVendor, ipPrefix: subnet24 },
  },
  {
    name: 'proposal v2 smc-rv2 only one ueid',
    msg: {
      type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'N', typev2: 'R', peerId: zeros(8), gid: zeros(16), mac: zeros(6), ipAreaOffset: 0, smcdArea: noVendor,
      v2Ext: { release: 1, seid: false, roceGid: CLIENT.gidV2, maxConns: 255, maxLinks: 2, featureMask: 0, ueids: [UEID] },
    },
  },
  {
    name: 'proposal v1+v2 one ueid alibaba vendor options',
    msg: {
      type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'R', typev2: 'R', peerId: CLIENT.peerId, gid: CLIENT.gidV1, mac: CLIENT.mac, ipAreaOffset: 40,
      smcdArea: { ismGid: 0n, ismChid: 0, vendorOui: 0xfca64c, vendorOptions: hex('00e0000000') },
      ipPrefix: subnet24,
      v2Ext: { release: 1, seid: false, roceGid: CLIENT.gidV2, maxConns: 255, maxLinks: 1, featureMask: 0, ueids: [UEID] },
    },
  },
  {
    name: 'proposal v2 smc-r v1+v2 with smc-dv2 extension',
    msg: {
      type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'R', typev2: 'B', peerId: CLIENT.peerId, gid: CLIENT.gidV1, mac: CLIENT.mac, ipAreaOffset: 40, smcdArea: noVendor,
      ipPrefix: subnet24,
      v2Ext: { release: 1, seid: true, roceGid: CLIENT.gidV2, maxConns: 255, maxLinks: 2, featureMask: 1, ueids: [UEID] },
      smcdV2Ext: { supported: false, systemEid: 'SEID-0001', gidChids: [{ gid: 0x0123456789abcdefn, chid: 0x0400 }] },
    },
  },
  {
    name: 'accept v1 first contact',
    msg: {
      type: 'accept', eyecatcher: 'SMCR', version: 1, firstContact: true, peerId: SERVER.peerId, gid: SERVER.gidV1, mac: SERVER.mac,
      qpn: 0x000107, rmbRkey: 0x0012ab34, rmbeIdx: 1, rmbeAlertToken: 5, rmbeSizeCode: 2, qpMtu: 3, initCredits: 0, rmbVaddr: 0x000000012a3b4000n, psn: 0x7a1b2c,
    },
  },
  {
    name: 'confirm v1',
    msg: {
      type: 'confirm', eyecatcher: 'SMCR', version: 1, firstContact: false, peerId: CLIENT.peerId, gid: CLIENT.gidV1, mac: CLIENT.mac,
      qpn: 0x000108, rmbRkey: 0x0034cd56, rmbeIdx: 1, rmbeAlertToken: 6, rmbeSizeCode: 2, qpMtu: 3, initCredits: 0, rmbVaddr: 0x000000012a3c8000n, psn: 0x0d89a4,
    },
  },
  {
    name: 'accept v2 without first contact',
    msg: {
      type: 'accept', eyecatcher: 'SMCR', version: 2, firstContact: false, peerId: SERVER.peerId, gid: SERVER.gidV2, mac: SERVER.mac,
      qpn: 0x000107, rmbRkey: 0x0012ab35, rmbeIdx: 1, rmbeAlertToken: 7, rmbeSizeCode: 3, qpMtu: 4, initCredits: 0, rmbVaddr: 0x000000012a3d0000n, psn: 0x112233,
      eid: UEID,
    },
  },
  {
    name: 'accept v2 first contact with fce',
    msg: {
      type: 'accept', eyecatcher: 'SMCR', version: 2, firstContact: true, peerId: SERVER.peerId, gid: SERVER.gidV2, mac: SERVER.mac,
      qpn: 0x00010a, rmbRkey: 0x0012ab40, rmbeIdx: 1, rmbeAlertToken: 8, rmbeSizeCode: 2, qpMtu: 4, initCredits: 0x10, rmbVaddr: 0x000000012a3e0000n, psn: 0x445566,
      eid: UEID,
      fce: { v2Direct: true, osType: 2, release: 1, hostname: 'server01', maxConns: 255, maxLinks: 1, featureMask: 0, vendorOptions: 0xe0000000 },
    },
  },
  {
    name: 'confirm v2 first contact with fce and one gid',
    msg: {
      type: 'confirm', eyecatcher: 'SMCR', version: 2, firstContact: true, peerId: CLIENT.peerId, gid: CLIENT.gidV2, mac: CLIENT.mac,
      qpn: 0x00010b, rmbRkey: 0x0034cd60, rmbeIdx: 1, rmbeAlertToken: 9, rmbeSizeCode: 2, qpMtu: 4, initCredits: 0x10, rmbVaddr: 0x000000012a3f0000n, psn: 0x778899,
      eid: UEID,
      fce: { v2Direct: true, osType: 2, release: 1, hostname: 'client01', maxConns: 255, maxLinks: 1, featureMask: 0, vendorOptions: 0xe0000000 },
      gidList: [CLIENT.gidV2],
    },
  },
  {
    name: 'decline v1',
    msg: { type: 'decline', eyecatcher: 'SMCR', version: 1, typev1: 'R', outOfSync: false, peerId: CLIENT.peerId, peerDiagnosis: 0x03030002, osType: 0, trailerOk: true },
  },
  {
    name: 'decline v2 out of sync',
    msg: {
      type: 'decline', eyecatcher: 'SMCR', version: 2, typev1: 'R', outOfSync: true, peerId: SERVER.peerId, peerDiagnosis: 0x04000000, osType: 2,
      diagnosisV2: [0, 0, 0, 0], trailerOk: true,
    },
  },
];

/**
 * Real Linux CLC messages (v1 handshake on loopback, IPv4 and IPv6), byte for byte.
 * Source: hwipl/smc `handshake/README.md` @01ef3e2; the same bytes are in hwipl/smc-go
 * `pkg/clc/clc_{proposal,accept_smcr,confirm_smcr,decline}_test.go` @12aa084.
 */
export const CAPTURES: { name: string; bytes: Buffer }[] = [
  {
    name: 'proposal v1 smc-r ipv4 (linux capture)',
    bytes: hex(`e2d4c3d9 01 0034 10 b1a0 98039babcdef fe800000000000009a039bfffeabcdef
                98039babcdef 0000 7f000000 08 0000 00 e2d4c3d9`),
  },
  {
    name: 'proposal v1 smc-r ipv6 (linux capture)',
    bytes: hex(`e2d4c3d9 01 0045 10 3944 98039babcdef fe800000000000009a039bfffeabcdef
                98039babcdef 0000 00000000 00 0000 01 00000000000000000000000000000001 80 e2d4c3d9`),
  },
  {
    name: 'accept v1 smc-r first contact (linux capture)',
    bytes: hex(`e2d4c3d9 02 0044 18 b1a098039babcdef fe800000000000009a039bfffeabcdef
                98039babcdef 0000e4 0000157d 01 00000005 23 00 00000000f0a60000 00 72f5fe e2d4c3d9`),
  },
  {
    name: 'confirm v1 smc-r (linux capture)',
    bytes: hex(`e2d4c3d9 03 0044 10 b1a098039babcdef fe800000000000009a039bfffeabcdef
                98039babcdef 0000e5 0000187f 01 00000006 23 00 00000000f0a40000 00 0d89a4 e2d4c3d9`),
  },
  {
    name: 'decline v1 nosmcdev (linux capture)',
    bytes: hex('e2d4c3d9 04 001c 10 2525252525252500 03030000 00000000 e2d4c3d9'),
  },
];
