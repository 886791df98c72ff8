/** Shared result types of the readers and the dissector. */

/** A byte range of a frame (absolute offsets; nothing copied). */
export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/** One packet record of a pcap or pcapng file. */
export interface CaptureRecord {
  /** 0-based packet number in the file (Wireshark's frame.number is `index + 1`). */
  readonly index: number;
  /** Capture time in nanoseconds since the Unix epoch; null for a pcapng Simple Packet Block. */
  readonly ts: bigint | null;
  /** LINKTYPE_* of the packet's interface (see LinkType). */
  readonly linkType: number;
  /** The captured bytes: a view into the file buffer, not a copy. */
  readonly data: Buffer;
  /** Length of the packet on the wire (>= data.length when the capture was cut by a snap length). */
  readonly origLen: number;
  /** pcapng interface ID (0 for classic pcap). */
  readonly interfaceId: number;
  /** Offset of the record or block in the file, for messages. */
  readonly fileOffset: number;
}
