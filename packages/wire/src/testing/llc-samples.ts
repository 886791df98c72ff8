/**
 * One realistic LLC message per kind and LLC version (plus the common responses), for cross-package
 * tests (tshark decode, engine flows). Values look like a two-host RoCEv2 setup: server 10.0.0.1,
 * client 10.0.0.2, second ports on 10.0.1.x, Mellanox-style MACs, kernel-style rkeys and addresses.
 */
import { gidFromIpv4 } from '../bytes.js';
import type { LlcAddLink, LlcMessage } from '../llc.js';

const mac = (hex: string): Buffer => Buffer.from(hex, 'hex');
const SERVER_MAC = mac('98039b112233');
const CLIENT_MAC = mac('98039b445566');
const SERVER_MAC2 = mac('98039baabbcc');

const addLinkV1: LlcAddLink = {
  type: 'add_link', v2: false, flags: 0x00, resp: false, reject: false, rejectReason: 0,
  senderMac: SERVER_MAC2, senderGid: gidFromIpv4('10.0.1.1'), senderQpn: 0x000213, linkNum: 2, qpMtu: 3,
  initialPsn: 0x5a17c3, initCredits: 0, ext: undefined,
};

export const SAMPLES: { name: string; msg: LlcMessage }[] = [
  {
    name: 'CONFIRM_LINK v1 request',
    msg: {
      type: 'confirm_link', v2: false, flags: 0x03, resp: false, noRmbeEyec: true, senderMac: SERVER_MAC,
      senderGid: gidFromIpv4('10.0.0.1'), senderQpn: 0x000107, linkNum: 1, linkUid: mac('1a2b3c01'), maxLinks: 2, maxConns: 0,
    },
  },
  {
    name: 'CONFIRM_LINK v1 response',
    msg: {
      type: 'confirm_link', v2: false, flags: 0x83, resp: true, noRmbeEyec: true, senderMac: CLIENT_MAC,
      senderGid: gidFromIpv4('10.0.0.2'), senderQpn: 0x00011a, linkNum: 1, linkUid: mac('4d5e6f01'), maxLinks: 2, maxConns: 0,
    },
  },
  {
    name: 'CONFIRM_LINK v2 request (v2.1)',
    msg: {
      type: 'confirm_link', v2: true, flags: 0x03, resp: false, noRmbeEyec: true, senderMac: SERVER_MAC,
      senderGid: gidFromIpv4('10.0.0.1'), senderQpn: 0x000107, linkNum: 1, linkUid: mac('1a2b3c01'), maxLinks: 1, maxConns: 255,
    },
  },
  { name: 'ADD_LINK v1 request', msg: addLinkV1 },
  {
    name: 'ADD_LINK v1 reject (Linux client echo)',
    msg: { ...addLinkV1, flags: 0xc0, resp: true, reject: true, rejectReason: 1 },
  },
  {
    name: 'ADD_LINK v2 request with rkeys',
    msg: {
      ...addLinkV1, v2: true,
      ext: {
        v2Direct: true, clientTargetGid: gidFromIpv4('10.0.1.2'),
        rkeys: [
          { rkey: 0x00014f2a, rkeyNew: 0x00026b11, vaddrNew: 0x000000012f400000n },
          { rkey: 0x00014f2b, rkeyNew: 0x00026b12, vaddrNew: 0x000000012f480000n },
        ],
      },
    },
  },
  {
    name: 'ADD_LINK v2 reject (Linux client: 44 bytes, flags 0xC0)',
    msg: { ...addLinkV1, v2: true, flags: 0xc0, resp: true, reject: true },
  },
  {
    name: 'ADD_LINK_CONT v1',
    msg: {
      type: 'add_link_cont', v2: false, flags: 0x00, resp: false, linkNum: 2, numRkeys: 2,
      rkeys: [
        { rkey: 0x00014f2a, rkeyNew: 0x00026b11, vaddrNew: 0x000000012f400000n },
        { rkey: 0x00014f2b, rkeyNew: 0x00026b12, vaddrNew: 0x000000012f480000n },
      ],
    },
  },
  {
    name: 'DELETE_LINK v1 idle link group teardown',
    msg: { type: 'delete_link', v2: false, flags: 0x60, resp: false, all: true, orderly: true, linkNum: 0, reason: 0x00030000 },
  },
  {
    name: 'DELETE_LINK v2 single link lost',
    msg: { type: 'delete_link', v2: true, flags: 0x00, resp: false, all: false, orderly: false, linkNum: 2, reason: 0x00010000 },
  },
  {
    name: 'REQUEST_ADD_LINK v2 with two client GIDs',
    msg: { type: 'request_add_link', v2: true, flags: 0x00, resp: false, gids: [gidFromIpv4('10.0.0.2'), gidFromIpv4('10.0.1.2')] },
  },
  {
    name: 'CONFIRM_RKEY v1 on a two-link group',
    msg: {
      type: 'confirm_rkey', v2: false, flags: 0x00, resp: false, negative: false, retry: false, numRkeys: 1,
      rkey: 0x00014f2c, vaddr: 0x000000012f500000n, others: [{ linkId: 2, rkey: 0x00026b13, vaddr: 0x000000012f500000n }],
    },
  },
  {
    name: 'CONFIRM_RKEY v2 response',
    msg: {
      type: 'confirm_rkey', v2: true, flags: 0x80, resp: true, negative: false, retry: false, numRkeys: 0,
      rkey: 0x00014f2c, vaddr: 0xffff8881c2a00000n, others: [],
    },
  },
  { name: 'TEST_LINK v1 request', msg: { type: 'test_link', v2: false, flags: 0x00, resp: false, userData: Buffer.alloc(16) } },
  { name: 'TEST_LINK v2 response', msg: { type: 'test_link', v2: true, flags: 0x80, resp: true, userData: Buffer.alloc(16) } },
  {
    name: 'CONFIRM_RKEY_CONT v1',
    msg: {
      type: 'confirm_rkey_cont', v2: false, flags: 0x00, resp: false, negative: false, numRkeys: 1,
      rtokens: [{ linkId: 3, rkey: 0x00031c07, vaddr: 0x000000012f500000n }],
    },
  },
  {
    name: 'DELETE_RKEY v1 request',
    msg: { type: 'delete_rkey', v2: false, flags: 0x00, resp: false, negative: false, numRkeys: 1, errMask: 0, rkeys: [0x00014f2c] },
  },
  {
    name: 'DELETE_RKEY v2 request',
    msg: { type: 'delete_rkey', v2: true, flags: 0x00, resp: false, negative: false, numRkeys: 1, errMask: 0, rkeys: [0x00014f2c] },
  },
  { name: 'ANNOUNCE_CREDITS (Alibaba)', msg: { type: 'announce_credits', v2: false, flags: 0x80, resp: true, credits: 21 } },
];
