/**
 * Per-device counters of the softroce transport, flat numbers (so tools can diff them with a plain
 * object walk). Shared by every context opened on the device; `context.stats` returns this object
 * itself (live, read-only by convention).
 */
export interface SoftRoceStats {
  /** Datagrams handed to the socket / read from it (test-hook drops excluded), and their UDP payload bytes. */
  txPackets: number;
  rxPackets: number;
  txBytes: number;
  rxBytes: number;
  /** Request packets sent again (go-back-N after a timeout, a NAK or a read-response gap). */
  retransmissions: number;
  /** Local ACK timeouts that fired (each followed by a retry or by RETRY_EXC_ERR). */
  timeouts: number;
  /** NAKs (PSN sequence error, invalid request, remote access / operational error), RNR NAKs excluded. */
  naksSent: number;
  naksReceived: number;
  rnrNaksSent: number;
  rnrNaksReceived: number;
  /** ACK packets (opcode 0x11 with an ACK syndrome). */
  acksSent: number;
  acksReceived: number;
  /** Duplicate requests seen by the responder and duplicate read responses seen by the requester. */
  duplicates: number;
  /** Read response packets sent. */
  readResponsesSent: number;
  /** Drops by reason. */
  dropBadIcrc: number;
  /** No QP with the BTH DestQP on this device. */
  dropUnknownQpn: number;
  /** ACK/response PSN outside the requester's window, or an unexpected response. */
  dropPsnOutOfWindow: number;
  /** Not a well-formed RC packet: too short, unknown opcode, TVer != 0, bad pad/length, bad P_Key, bad read response length. */
  dropMalformed: number;
  /** Source address is not the QP's destination GID. */
  dropWrongSource: number;
  /** QP not in a state that accepts the packet (RESET, INIT, ERR; responses before RTS). */
  dropQpState: number;
  /** Requests after a PSN gap (one NAK per gap is sent), and READ responses after a response gap. */
  dropOutOfSequence: number;
  /** Test hooks: datagrams dropped on the way out / in. */
  hookDropsTx: number;
  hookDropsRx: number;
  /** Received packets whose ICRC verified only with a non-zero IP ID recovered (kernel-built headers). */
  icrcIpIdRecovered: number;
  /** Sends the socket queued (EAGAIN) instead of sending at once, and send errors. */
  txQueued: number;
  txErrors: number;
}

export function newStats(): SoftRoceStats {
  return {
    txPackets: 0, rxPackets: 0, txBytes: 0, rxBytes: 0, retransmissions: 0, timeouts: 0,
    naksSent: 0, naksReceived: 0, rnrNaksSent: 0, rnrNaksReceived: 0, acksSent: 0, acksReceived: 0,
    duplicates: 0, readResponsesSent: 0,
    dropBadIcrc: 0, dropUnknownQpn: 0, dropPsnOutOfWindow: 0, dropMalformed: 0, dropWrongSource: 0,
    dropQpState: 0, dropOutOfSequence: 0, hookDropsTx: 0, hookDropsRx: 0, icrcIpIdRecovered: 0,
    txQueued: 0, txErrors: 0,
  };
}
