/**
 * Builds a complete, self-consistent SMC-Rv2 connection as a pcap: what a capture on the client's
 * interface would show for one first-contact connection between two x86 Linux-style hosts.
 *
 *   TCP SYN / SYN-ACK with the SMC option, ACK
 *   CLC Proposal (SMC-Rv2, one UEID) -> Accept (first contact, FCE) -> Confirm (FCE, GID list)
 *   RoCEv2: LLC CONFIRM_LINK request/response (max_links 1 on both sides, so no ADD_LINK)
 *   data: RDMA WRITE + CDC each way, RC ACKs, then CDC close flags and the TCP FIN exchange
 *
 * Every value that two messages share (QPNs, PSNs, rkeys, addresses, tokens) agrees, so the file
 * doubles as a reading aid for the protocol. It is used by `npm run demo` and `smcr sample`.
 */
import {
  clcToBuffer, encodeCdc, encodeLlc, encodeSmcOption, llcLength, gidFromIpv4, aethSyndrome, IbOpcode,
  type CdcMessage, type ClcMessage, type IbPacketInput, type LlcMessage,
} from '@smc-r/wire';
import { PcapWriter, buildEthernetIpv4Tcp, buildRoceV2Frame, TcpFlag } from '@smc-r/capture';

const C = { ip: '10.0.0.2', mac: 'b8:ce:f6:12:34:56', port: 41000, qpn: 0x00011b, psn: 0x3a41c7, rkey: 0x000a4b21, vaddr: 0x0000000112340000n, token: 0x0000001a, host: 'client01' };
const S = { ip: '10.0.0.1', mac: 'b8:ce:f6:ab:cd:ef', port: 5555, qpn: 0x000107, psn: 0x7c0e55, rkey: 0x0002f1d3, vaddr: 0x00000001abcd0000n, token: 0x00000005, host: 'server01' };
const UEID = 'SMCV2-DEFAULT-UEID';
const RMBE_SIZE_CODE = 2; // 64 KiB, the Linux default (spec 8.2)
const QP_MTU = 3; // 1024, rxe on a 1500-byte netdev
const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s:]/g, ''), 'hex');

/** Linux's SYN option block before the SMC option: MSS, SACK-permitted, timestamps, NOP, window scale. */
function synOptions(tsVal: number, tsEcr: number): Buffer {
  const b = Buffer.alloc(28);
  hex('020405b4 0402 080a').copy(b, 0);
  b.writeUInt32BE(tsVal, 8);
  b.writeUInt32BE(tsEcr, 12);
  hex('01030307').copy(b, 16);
  encodeSmcOption(b, 20); // 01 01 fe 06 e2 d4 c3 d9
  return b;
}

function llcBytes(m: LlcMessage): Buffer {
  const b = Buffer.alloc(llcLength(m));
  encodeLlc(m, b, 0);
  return b;
}

function cdcBytes(m: CdcMessage): Buffer {
  const b = Buffer.alloc(44);
  encodeCdc(m, b, 0);
  return b;
}

const NO_FLAGS = {
  writeBlocked: false, urgDataPending: false, urgDataPresent: false, consCursUpdReq: false, failoverValidation: false,
  peerDoneWriting: false, peerConnClosed: false, peerConnAbort: false, credits: 0,
} as const;

/** Returns the sample capture as pcap bytes. Deterministic: same bytes on every call. */
export function buildSampleHandshake(): Buffer {
  const w = new PcapWriter();
  let t = 1_764_000_000_000_000_000n; // fixed start time (ns)
  const tick = (us: number): bigint => (t += BigInt(us) * 1000n);

  // ---- TCP (the CLC socket)
  let cseq = 0x1c2d3e4f;
  let sseq = 0x5a6b7c8d;
  let cIpId = 0x4d21;
  let sIpId = 0;
  const tcp = (fromClient: boolean, flags: number, payload?: Buffer, options?: Buffer): void => {
    const f = fromClient
      ? { srcMac: C.mac, dstMac: S.mac, src: C.ip, dst: S.ip, sport: C.port, dport: S.port, seq: cseq, ack: sseq, ipId: cIpId++ }
      : { srcMac: S.mac, dstMac: C.mac, src: S.ip, dst: C.ip, sport: S.port, dport: C.port, seq: sseq, ack: cseq, ipId: sIpId++ };
    const frame = buildEthernetIpv4Tcp({
      ...f, flags, window: 64240, ...(options ? { options } : {}), ...(payload ? { payload } : {}),
      ...((flags & TcpFlag.ACK.value) === 0 ? { ack: 0 } : {}),
    });
    w.add(frame, tick(fromClient ? 40 : 60));
    const len = (payload?.length ?? 0) + ((flags & (TcpFlag.SYN.value | TcpFlag.FIN.value)) !== 0 ? 1 : 0);
    if (fromClient) cseq = (cseq + len) >>> 0;
    else sseq = (sseq + len) >>> 0;
  };
  const SYN = TcpFlag.SYN.value;
  const ACK = TcpFlag.ACK.value;
  const PSH = TcpFlag.PSH.value;
  const FIN = TcpFlag.FIN.value;

  tcp(true, SYN, undefined, synOptions(0x0e1f2a3b, 0));
  tcp(false, SYN | ACK, undefined, synOptions(0x6b5a4f3e, 0x0e1f2a3b));
  tcp(true, ACK);

  const proposal: ClcMessage = {
    type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'N', typev2: 'R',
    peerId: Buffer.alloc(8), gid: Buffer.alloc(16), mac: Buffer.alloc(6), ipAreaOffset: 0,
    smcdArea: { ismGid: 0n, ismChid: 0, vendorOui: 0, vendorOptions: Buffer.alloc(5) },
    v2Ext: { release: 1, seid: false, roceGid: gidFromIpv4(C.ip), maxConns: 255, maxLinks: 1, featureMask: 0, ueids: [UEID] },
  };
  const common = { eyecatcher: 'SMCR', version: 2, firstContact: true, rmbeIdx: 1, rmbeSizeCode: RMBE_SIZE_CODE, qpMtu: QP_MTU, initCredits: 0, eid: UEID } as const;
  const accept: ClcMessage = {
    ...common, type: 'accept', peerId: hex('51a7b8cef6abcdef'), gid: gidFromIpv4(S.ip), mac: hex(S.mac),
    qpn: S.qpn, rmbRkey: S.rkey, rmbeAlertToken: S.token, rmbVaddr: S.vaddr, psn: S.psn,
    fce: { v2Direct: true, osType: 2, release: 1, hostname: S.host, maxConns: 255, maxLinks: 1, featureMask: 0, vendorOptions: 0 },
  };
  const confirm: ClcMessage = {
    ...common, type: 'confirm', peerId: hex('9c3eb8cef6123456'), gid: gidFromIpv4(C.ip), mac: hex(C.mac),
    qpn: C.qpn, rmbRkey: C.rkey, rmbeAlertToken: C.token, rmbVaddr: C.vaddr, psn: C.psn,
    fce: { v2Direct: true, osType: 2, release: 1, hostname: C.host, maxConns: 255, maxLinks: 1, featureMask: 0, vendorOptions: 0 },
    gidList: [gidFromIpv4(C.ip)],
  };
  tcp(true, PSH | ACK, clcToBuffer(proposal));
  tcp(false, ACK);
  tcp(false, PSH | ACK, clcToBuffer(accept));
  tcp(true, PSH | ACK, clcToBuffer(confirm));
  tcp(false, ACK);

  // ---- RoCEv2 (the link). Each side's send PSN starts at its CLC initial PSN.
  let cPsn = C.psn;
  let sPsn = S.psn;
  let cMsn = 0;
  let sMsn = 0;
  let cRoceId = 0x1000;
  let sRoceId = 0x2000;
  const roce = (fromClient: boolean, ib: Omit<IbPacketInput, 'bth'> & { opcode: number; ackReq?: boolean; psn?: number }): void => {
    const { opcode, ackReq, psn, ...rest } = ib;
    const bth = {
      opcode, se: false, migReq: true, padCnt: ((4 - ((rest.payload?.length ?? 0) % 4)) % 4), tver: 0, pkey: 0xffff,
      destQp: fromClient ? S.qpn : C.qpn, ackReq: ackReq ?? true, psn: psn ?? (fromClient ? cPsn : sPsn),
    };
    const frame = buildRoceV2Frame({
      srcMac: fromClient ? C.mac : S.mac, dstMac: fromClient ? S.mac : C.mac,
      src: fromClient ? C.ip : S.ip, dst: fromClient ? S.ip : C.ip,
      sport: fromClient ? 0xc000 + (C.qpn & 0x3fff) : 0xc000 + (S.qpn & 0x3fff),
      ipId: fromClient ? cRoceId++ : sRoceId++,
      ib: { bth, ...rest },
    });
    w.add(frame, tick(15));
  };
  /** A request from one side (SEND or WRITE), then the responder's ACK. */
  const request = (fromClient: boolean, opcode: number, payload: Buffer, reth?: IbPacketInput['reth']): void => {
    roce(fromClient, { opcode, payload, ...(reth ? { reth } : {}) });
    const psn = fromClient ? cPsn : sPsn;
    if (fromClient) { cPsn = (cPsn + 1) & 0xffffff; sMsn++; } else { sPsn = (sPsn + 1) & 0xffffff; cMsn++; }
    roce(!fromClient, { opcode: IbOpcode.ACKNOWLEDGE.value, ackReq: false, psn, aeth: { syndrome: aethSyndrome('ACK', 31), msn: fromClient ? sMsn : cMsn } });
  };
  const SEND = IbOpcode.SEND_ONLY.value;
  const WRITE = IbOpcode.RDMA_WRITE_ONLY.value;

  const linkUid = (lgr: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(lgr + 1); return b; };
  request(false, SEND, llcBytes({
    type: 'confirm_link', v2: true, flags: 0x03, resp: false, noRmbeEyec: true, senderMac: hex(S.mac), senderGid: gidFromIpv4(S.ip),
    senderQpn: S.qpn, linkNum: 1, linkUid: linkUid(0x00000100), maxLinks: 1, maxConns: 255,
  }));
  request(true, SEND, llcBytes({
    type: 'confirm_link', v2: true, flags: 0x83, resp: true, noRmbeEyec: true, senderMac: hex(C.mac), senderGid: gidFromIpv4(C.ip),
    senderQpn: C.qpn, linkNum: 1, linkUid: linkUid(0x00000300), maxLinks: 1, maxConns: 255,
  }));

  // Client -> server: 64 bytes of application data, then the CDC that publishes them.
  const req = Buffer.from('GET /index.html HTTP/1.1\r\nHost: server01\r\nUser-Agent: smcr\r\n\r\n', 'latin1');
  request(true, WRITE, req, { va: S.vaddr, rkey: S.rkey, dmaLength: req.length });
  request(true, SEND, cdcBytes({ type: 'cdc', seqno: 1, token: S.token, prod: { wrap: 0, count: req.length }, cons: { wrap: 0, count: 0 }, ...NO_FLAGS }));
  // Server -> client: the answer, and its CDC also confirms what it consumed.
  const resp = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', 'latin1');
  request(false, WRITE, resp, { va: C.vaddr, rkey: C.rkey, dmaLength: resp.length });
  request(false, SEND, cdcBytes({ type: 'cdc', seqno: 1, token: C.token, prod: { wrap: 0, count: resp.length }, cons: { wrap: 0, count: req.length }, ...NO_FLAGS }));
  // Orderly close: each side sends peer_conn_closed, then the TCP socket is shut down.
  request(true, SEND, cdcBytes({ type: 'cdc', seqno: 2, token: S.token, prod: { wrap: 0, count: req.length }, cons: { wrap: 0, count: resp.length }, ...NO_FLAGS, peerConnClosed: true }));
  request(false, SEND, cdcBytes({ type: 'cdc', seqno: 2, token: C.token, prod: { wrap: 0, count: resp.length }, cons: { wrap: 0, count: req.length }, ...NO_FLAGS, peerConnClosed: true }));
  tcp(true, FIN | ACK);
  tcp(false, FIN | ACK);
  tcp(true, ACK);
  return w.toBuffer();
}
