/**
 * One realistic RC packet per opcode kind SMC-R (and a softroce peer) produces or may meet, for
 * cross-package tests (frame builders, tshark decode). Values are what a Linux SMC-Rv2 link over
 * rxe shows: P_Key 0xFFFF, nonzero QPNs, AckReq on requests, SE on SENDs, ACKs with syndrome 0x1F.
 */
import { AethSyndrome, IbOpcode, type IbPacketInput } from '../roce.js';

/** A 44-byte SMC-R CDC message: type 0xFE, length 44, seqno 1, alert token 0x1001, producer count 100. */
const CDC = Buffer.alloc(44);
CDC[0] = 0xfe;
CDC[1] = 44;
CDC.writeUInt16BE(1, 2);
CDC.writeUInt32BE(0x1001, 4);
CDC.writeUInt32BE(100, 12);
/** A 44-byte LLC TEST LINK request (type 0x07, length 44, 16 bytes user data). */
const TEST_LINK = Buffer.concat([Buffer.from([0x07, 0x2c, 0x00, 0x00]), Buffer.from('user data 16 by'), Buffer.alloc(25)]);
/** RDMA WRITE data: part of a CLC-sized ring, 1024 = the rxe path MTU of rxe-interop.md 2.1. */
const DATA = Buffer.from(Array.from({ length: 2048 + 100 }, (_, i) => (i * 7 + 3) & 0xff));

const bth = (opcode: number, destQp: number, psn: number, payloadLen: number, se = false, ackReq = true) => ({
  opcode, se, migReq: false, padCnt: -payloadLen & 3, tver: 0, pkey: 0xffff, destQp, ackReq, psn,
});
const RKEY = 0x0001a2b3;
const VA = 0x00007f3a5c000000n;

export const SAMPLES: { name: string; msg: IbPacketInput }[] = [
  { name: 'SEND ONLY (CDC)', msg: { bth: bth(IbOpcode.SEND_ONLY.value, 0x000123, 0x5d1a0b, 44, true), payload: CDC } },
  { name: 'SEND ONLY (LLC TEST LINK)', msg: { bth: bth(IbOpcode.SEND_ONLY.value, 0x000123, 0x5d1a0c, 44, true), payload: TEST_LINK } },
  { name: 'SEND ONLY with Immediate', msg: { bth: bth(IbOpcode.SEND_ONLY_IMM.value, 0x000123, 0x5d1a0d, 44, true), immDt: 0x00000001, payload: CDC } },
  { name: 'SEND FIRST', msg: { bth: bth(IbOpcode.SEND_FIRST.value, 0x000123, 0x000010, 1024), payload: DATA, payloadLength: 1024 } },
  { name: 'SEND MIDDLE', msg: { bth: bth(IbOpcode.SEND_MIDDLE.value, 0x000123, 0x000011, 1024), payload: DATA, payloadOffset: 1024, payloadLength: 1024 } },
  { name: 'SEND LAST (odd length, pad 2)', msg: { bth: bth(IbOpcode.SEND_LAST.value, 0x000123, 0x000012, 102, true), payload: DATA, payloadOffset: 2046, payloadLength: 102 } },
  { name: 'RDMA WRITE ONLY', msg: { bth: bth(IbOpcode.RDMA_WRITE_ONLY.value, 0x000123, 0xfffffe, 100), reth: { va: VA + 0x40n, rkey: RKEY, dmaLength: 100 }, payload: DATA, payloadLength: 100 } },
  { name: 'RDMA WRITE FIRST', msg: { bth: bth(IbOpcode.RDMA_WRITE_FIRST.value, 0x000123, 0xffffff, 1024), reth: { va: VA, rkey: RKEY, dmaLength: 2048 }, payload: DATA, payloadLength: 1024 } },
  { name: 'RDMA WRITE LAST (PSN wrapped)', msg: { bth: bth(IbOpcode.RDMA_WRITE_LAST.value, 0x000123, 0x000000, 1024), payload: DATA, payloadOffset: 1024, payloadLength: 1024 } },
  { name: 'RDMA WRITE MIDDLE', msg: { bth: bth(IbOpcode.RDMA_WRITE_MIDDLE.value, 0x000123, 0x000001, 1024), payload: DATA, payloadLength: 1024 } },
  { name: 'RDMA WRITE ONLY with Immediate', msg: { bth: bth(IbOpcode.RDMA_WRITE_ONLY_IMM.value, 0x000123, 0x000002, 64), reth: { va: VA, rkey: RKEY, dmaLength: 64 }, immDt: 0xcafef00d, payload: DATA, payloadLength: 64 } },
  { name: 'RDMA WRITE LAST with Immediate', msg: { bth: bth(IbOpcode.RDMA_WRITE_LAST_IMM.value, 0x000123, 0x000003, 16), immDt: 7, payload: DATA, payloadLength: 16 } },
  { name: 'RDMA READ REQUEST', msg: { bth: bth(IbOpcode.RDMA_READ_REQUEST.value, 0x000123, 0x000004, 0), reth: { va: VA, rkey: RKEY, dmaLength: 4096 } } },
  { name: 'RDMA READ RESPONSE ONLY', msg: { bth: bth(IbOpcode.RDMA_READ_RESPONSE_ONLY.value, 0x000456, 0x000004, 64, false, false), aeth: { syndrome: AethSyndrome.ACK_NO_CREDIT.value, msn: 5 }, payload: DATA, payloadLength: 64 } },
  { name: 'ACKNOWLEDGE (credit invalid)', msg: { bth: bth(IbOpcode.ACKNOWLEDGE.value, 0x000456, 0x5d1a0b, 0, false, false), aeth: { syndrome: AethSyndrome.ACK_NO_CREDIT.value, msn: 1 } } },
  { name: 'NAK PSN sequence error', msg: { bth: bth(IbOpcode.ACKNOWLEDGE.value, 0x000456, 0x5d1a0b, 0, false, false), aeth: { syndrome: AethSyndrome.NAK_PSN_SEQUENCE_ERROR.value, msn: 1 } } },
  { name: 'NAK invalid request', msg: { bth: bth(IbOpcode.ACKNOWLEDGE.value, 0x000456, 0x000020, 0, false, false), aeth: { syndrome: AethSyndrome.NAK_INVALID_REQUEST.value, msn: 3 } } },
  { name: 'NAK remote access error', msg: { bth: bth(IbOpcode.ACKNOWLEDGE.value, 0x000456, 0x000021, 0, false, false), aeth: { syndrome: AethSyndrome.NAK_REMOTE_ACCESS_ERROR.value, msn: 3 } } },
  { name: 'RNR NAK (timer 5 = 0.06 ms)', msg: { bth: bth(IbOpcode.ACKNOWLEDGE.value, 0x000456, 0x000022, 0, false, false), aeth: { syndrome: 0x25, msn: 3 } } },
  { name: 'FETCH ADD', msg: { bth: bth(IbOpcode.FETCH_ADD.value, 0x000123, 0x000030, 0), atomicEth: { va: VA, rkey: RKEY, swapAdd: 1n, compare: 0n } } },
  { name: 'COMPARE SWAP', msg: { bth: bth(IbOpcode.COMPARE_SWAP.value, 0x000123, 0x000031, 0), atomicEth: { va: VA + 8n, rkey: RKEY, swapAdd: 0xffffffffffffffffn, compare: 42n } } },
  { name: 'ATOMIC ACKNOWLEDGE', msg: { bth: bth(IbOpcode.ATOMIC_ACKNOWLEDGE.value, 0x000456, 0x000031, 0, false, false), aeth: { syndrome: AethSyndrome.ACK_NO_CREDIT.value, msn: 9 }, atomicAckEth: { origRemoteData: 42n } } },
  { name: 'SEND ONLY with Invalidate', msg: { bth: bth(IbOpcode.SEND_ONLY_INV.value, 0x000123, 0x000032, 44, true), ieth: RKEY, payload: CDC } },
];

const Z36 = '00'.repeat(36);
const hex = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*|\s+/g, ''), 'hex');

/*
 * Golden RoCEv2 frames and their ICRCs, computed by scapy 2.5.0 (Debian python3-scapy) with
 * `scapy.contrib.roce.BTH.compute_icrc`, which BTH.post_build calls when `icrc` is left None:
 *
 *   raw(Ether(src='02:00:0a:00:00:01', dst='02:00:0a:00:00:02') /
 *       IP(src='10.0.0.1', dst='10.0.0.2', id=0, flags='DF', ttl=64) / UDP(sport=49152, dport=4791) /
 *       BTH(opcode=0x04, solicited=1, pkey=0xffff, dqpn=0x123, ackreq=1, psn=0xabcd) / Raw(cdc(1)))
 *
 * and likewise for the others (RETH / ImmDt bytes as Raw after the BTH, AETH with scapy's AETH
 * layer). The ICRC is the last 4 bytes of each frame. A second, independent Python version of the
 * algorithm (masking exactly as rxe_icrc.c does) agreed with scapy on every IPv4 frame; scapy 2.5
 * has no IPv6 ICRC ("TODO support IPv6", it returns 0), so the IPv6 vector comes from that
 * second implementation only (UDP checksum then recomputed by scapy).
 */
export const SCAPY_FRAMES = {
  sendOnly: {
    frame: hex(`02000a000002 02000a000001 0800
      4500 0058 0000 4000 40 11 2693 0a000001 0a000002   # IPv4, ID 0, DF, TTL 64, UDP
      c000 12b7 0044 dde6                                 # UDP 49152 -> 4791, len 68
      04 80 ffff 00 000123 80 00abcd                      # BTH SEND ONLY, SE, pkey, QP 0x123, AckReq, PSN
      fe2c0001 00001001 ${Z36}                                                  # rest of the 44-byte CDC message
      24f0d634                                            # ICRC (LE of 0x34d6f024)`),
    icrc: 0x34d6f024,
  },
  writeOnly: {
    frame: hex(`02000a000002 02000a000001 0800
      4500 005c 0000 4000 40 11 268f 0a000001 0a000002
      c000 12b7 0048 9f39
      0a 00 ffff 00 000123 80 00abce                      # BTH RDMA WRITE ONLY
      00007f1234560000 1234abcd 00000020                  # RETH va, rkey, DMA length 32
      000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
      f561ea8a`),
    icrc: 0x8aea61f5,
  },
  ack: {
    frame: hex(`02000a000001 02000a000002 0800
      4500 0030 0000 4000 01 11 65bb 0a000002 0a000001   # TTL 1 (as the kernel sends)
      c99c 12b7 001c 7d4c                                 # from rxe-style port 51612
      11 00 ffff 00 000456 00 00abce                      # BTH ACKNOWLEDGE
      1f 000002                                           # AETH: ACK credit invalid, MSN 2
      31f67ff6`),
    icrc: 0xf67ff631,
  },
  sendOnlyImm: {
    frame: hex(`02000a000002 02000a000001 0800
      4500 005c 0000 4000 40 11 268f 0a000001 0a000002
      c000 12b7 0048 f84e
      05 80 ffff 00 000123 80 00abcf                      # BTH SEND ONLY with Immediate
      deadbeef                                            # ImmDt
      fe2c0002 00001001 ${Z36}                                                  # rest of the 44-byte CDC message
      62bedf55`),
    icrc: 0x55dfbe62,
  },
  sendPad3: {
    frame: hex(`02000a000002 02000a000001 0800
      45b8 005c 1234 0000 07 11 1ba6 c00002fe c0000201   # TOS 0xb8, ID 0x1234, no DF, TTL 7
      c3cb 12b7 0048 92a6
      04 b0 ffff 00 000007 80 ffffff                      # SE, PadCnt 3, PSN 0xffffff
      534d432d52206f76657220526f434576322c206f64642d73697a65642053454e44207061796c6f616421212121  # 45 bytes
      000000                                              # pad
      142b883e`),
    icrc: 0x3e882b14,
  },
  nakPsn: {
    frame: hex(`02000a000001 02000a000002 0800
      4500 0030 0000 4000 40 11 26bb 0a000002 0a000001
      c99c 12b7 001c 0000                                 # UDP checksum 0 (as rxe sends)
      11 00 ffff 00 000456 00 000010
      60 000007                                           # AETH: NAK PSN sequence error, MSN 7
      619257f0`),
    icrc: 0xf0579261,
  },
  ipv6: {
    frame: hex(`02000a000002 02000a000001 86dd
      6 20 12345 0044 11 01                               # IPv6, TC 0x20, flow 0x12345, UDP, hop limit 1
      fd000000000000000000000000000001 fd000000000000000000000000000002
      c000 12b7 0044 f533
      04 80 ffff 00 000123 80 000001
      fe2c0003 00001001 ${Z36}                                                  # rest of the 44-byte CDC message
      041ea582`),
    icrc: 0x82a51e04,
  },
};

