/**
 * Realistic CDC messages for cross-package tests: a data CDC, a pure window update, urgent data,
 * the close / shutdown / abort forms, a failover replay and an Alibaba credits CDC. The connection
 * uses a 64 KiB RMBE; the receiver's alert token is 0x00000a01.
 */
import type { CdcMessage } from '../cdc.js';

const base: CdcMessage = {
  type: 'cdc', seqno: 1, token: 0x00000a01,
  prod: { wrap: 0, count: 1448 }, cons: { wrap: 0, count: 0 },
  writeBlocked: false, urgDataPending: false, urgDataPresent: false, consCursUpdReq: false, failoverValidation: false,
  peerDoneWriting: false, peerConnClosed: false, peerConnAbort: false, credits: 0,
};

export const SAMPLES: { name: string; msg: CdcMessage }[] = [
  { name: 'first data CDC', msg: base },
  { name: 'consumer cursor update after a ring wrap', msg: { ...base, seqno: 0x0102, prod: { wrap: 3, count: 8192 }, cons: { wrap: 3, count: 61440 } } },
  { name: 'write blocked', msg: { ...base, seqno: 0x0203, prod: { wrap: 7, count: 65024 }, cons: { wrap: 6, count: 512 }, writeBlocked: true } },
  { name: 'urgent data present', msg: { ...base, seqno: 0x0304, prod: { wrap: 1, count: 4097 }, urgDataPending: true, urgDataPresent: true } },
  { name: 'peer done writing (shutdown SHUT_WR)', msg: { ...base, seqno: 0x0405, prod: { wrap: 2, count: 300 }, cons: { wrap: 1, count: 9000 }, peerDoneWriting: true } },
  { name: 'peer connection closed', msg: { ...base, seqno: 0x0406, prod: { wrap: 2, count: 300 }, cons: { wrap: 1, count: 9000 }, peerConnClosed: true } },
  { name: 'peer connection abort', msg: { ...base, seqno: 0x0407, prod: { wrap: 2, count: 300 }, cons: { wrap: 1, count: 8000 }, peerConnAbort: true } },
  { name: 'failover validation replay', msg: { ...base, seqno: 0x0500, prod: { wrap: 0xffff, count: 65000 }, cons: { wrap: 0xfffe, count: 100 }, failoverValidation: true } },
  { name: 'Alibaba credits returned', msg: { ...base, seqno: 0x0600, credits: 16 } },
];
