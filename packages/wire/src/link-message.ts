/**
 * Demultiplexes a SEND received on an SMC-R link by its first byte, as the kernel's work-request layer
 * does (`smc_wr_rx_demultiplex`, spec 6.1 / 7.1): 0xFE is a CDC, the registered LLC type bytes
 * (0x01-0x04, 0x06-0x0A, 0x21, 0x22, 0x24-0x27, 0x29) are LLC messages, anything else is not ours.
 */
import { WireError, WireErrorCode, need } from './errors.js';
import { CDC_MSG_TYPE, decodeCdc, type CdcMessage } from './cdc.js';
import { decodeLlc, llcTypeInfo, type LlcMessage } from './llc.js';

export type LinkMessage = LlcMessage | CdcMessage;

/** What a SEND whose first byte is `byte` carries; undefined for a byte no kernel registers. */
export type LinkMessageKind = 'cdc' | 'llc-v1' | 'llc-v2';

/**
 * The kind of link message announced by a first byte. The LLC ranges have holes (0x05, 0x23, 0x28
 * are unregistered: the kernel silently drops them), which give undefined here.
 */
export function linkMessageKind(byte: number): LinkMessageKind | undefined {
  if (byte === CDC_MSG_TYPE) return 'cdc';
  const info = llcTypeInfo(byte);
  if (info === undefined) return undefined;
  return info.lgr === 'v2' ? 'llc-v2' : 'llc-v1';
}

/**
 * Decodes one received SEND payload `[off, end)` as a CDC or LLC message. Throws WireError
 * UNKNOWN_TYPE for a first byte that is neither, TRUNCATED for an empty payload, and whatever
 * {@link decodeCdc} / {@link decodeLlc} throw.
 */
export function decodeLinkMessage(buf: Uint8Array, off = 0, end: number = buf.length): LinkMessage {
  need(end, off, 1, 'link message');
  const b = buf[off]!;
  switch (linkMessageKind(b)) {
    case 'cdc':
      return decodeCdc(buf, off, end);
    case 'llc-v1':
    case 'llc-v2':
      return decodeLlc(buf, off, end);
    case undefined:
      throw new WireError(WireErrorCode.UNKNOWN_TYPE, `first byte 0x${b.toString(16).padStart(2, '0')} is neither CDC nor LLC`, off, 'link message');
  }
}
