/**
 * Classic libpcap files (tcpdump.org "pcap savefile format", draft-ietf-opsawg-pcap): a 24-byte
 * file header and 16-byte record headers, in the writer's byte order, with microsecond
 * (0xA1B2C3D4) or nanosecond (0xA1B23C4D) timestamps. `readCapture` also accepts pcapng.
 */
import { CaptureError, CaptureErrorCode, checkRange, needBytes } from './errors.js';
import { LinkType } from './linktype.js';
import { isPcapng, readPcapng } from './pcapng.js';
import type { CaptureRecord } from './types.js';

export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
export const PCAP_MAGIC_NSEC = 0xa1b23c4d;
export const PCAP_HEADER_LENGTH = 24;
export const PCAP_RECORD_HEADER_LENGTH = 16;
/** The snap length tcpdump uses by default (and Wireshark's largest standard packet). */
export const PCAP_DEFAULT_SNAPLEN = 262144;

/** The file header of a classic pcap file. */
export interface PcapHeader {
  readonly littleEndian: boolean;
  readonly nanosecond: boolean;
  readonly versionMajor: number;
  readonly versionMinor: number;
  readonly snaplen: number;
  /** LINKTYPE_* (the low 16 bits of the network field). */
  readonly linkType: number;
  /** FCS bytes at the end of each packet when the header says so (network field bit 26), else 0. */
  readonly fcsLength: number;
}

/** Reads and checks the 24-byte file header. Throws BAD_MAGIC, TRUNCATED, BAD_VERSION. */
export function readPcapHeader(buf: Uint8Array): PcapHeader {
  needBytes(buf.length, 0, 4, 'pcap');
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const le = b.readUInt32LE(0);
  const be = b.readUInt32BE(0);
  let littleEndian: boolean;
  let nanosecond: boolean;
  if (le === PCAP_MAGIC_USEC || le === PCAP_MAGIC_NSEC) {
    littleEndian = true;
    nanosecond = le === PCAP_MAGIC_NSEC;
  } else if (be === PCAP_MAGIC_USEC || be === PCAP_MAGIC_NSEC) {
    littleEndian = false;
    nanosecond = be === PCAP_MAGIC_NSEC;
  } else {
    throw new CaptureError(CaptureErrorCode.BAD_MAGIC, `magic 0x${be.toString(16).padStart(8, '0')} is not a pcap or pcapng magic`, 0, 'pcap');
  }
  needBytes(buf.length, 0, PCAP_HEADER_LENGTH, 'pcap');
  const u16 = (o: number): number => (littleEndian ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number): number => (littleEndian ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const versionMajor = u16(4);
  if (versionMajor !== 2) {
    throw new CaptureError(CaptureErrorCode.BAD_VERSION, `pcap version ${versionMajor}.${u16(6)}, only 2.x is defined`, 4, 'pcap');
  }
  const network = u32(20);
  return {
    littleEndian,
    nanosecond,
    versionMajor,
    versionMinor: u16(6),
    snaplen: u32(16),
    linkType: network & 0xffff,
    fcsLength: network & 0x04000000 ? (network >>> 28) * 2 : 0,
  };
}

/**
 * Iterates the records of a classic pcap file. The data of each record is a view into `buf`.
 * Throws (lazily, when the bad record is reached) TRUNCATED for a record cut short and
 * BAD_RECORD for a captured length above the original length.
 */
export function* readPcap(buf: Uint8Array): Generator<CaptureRecord, void, undefined> {
  const h = readPcapHeader(buf);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const u32 = (o: number): number => (h.littleEndian ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const fracNs = h.nanosecond ? 1n : 1000n;
  let off = PCAP_HEADER_LENGTH;
  let index = 0;
  while (off < b.length) {
    needBytes(b.length, off, PCAP_RECORD_HEADER_LENGTH, 'pcap record');
    const sec = u32(off);
    const frac = u32(off + 4);
    const capLen = u32(off + 8);
    const origLen = u32(off + 12);
    if (capLen > origLen) {
      throw new CaptureError(CaptureErrorCode.BAD_RECORD, `captured length ${capLen} exceeds original length ${origLen}`, off + 8, 'pcap record');
    }
    needBytes(b.length, off + PCAP_RECORD_HEADER_LENGTH, capLen, 'pcap record');
    const start = off + PCAP_RECORD_HEADER_LENGTH;
    yield {
      index,
      ts: BigInt(sec) * 1_000_000_000n + BigInt(frac) * fracNs,
      linkType: h.linkType,
      data: b.subarray(start, start + capLen),
      origLen,
      interfaceId: 0,
      fileOffset: off,
    };
    index++;
    off = start + capLen;
  }
}

/** Classic pcap or pcapng, told apart by the first four bytes. See {@link readPcap} and `readPcapng`. */
export function readCapture(buf: Uint8Array): Iterable<CaptureRecord> {
  return isPcapng(buf) ? readPcapng(buf) : readPcap(buf);
}

export interface PcapWriterOptions {
  /** LINKTYPE_* of every record (default Ethernet). */
  readonly linkType?: number;
  /** Records longer than this are cut (the original length is kept). Default 262144. */
  readonly snaplen?: number;
  /** Nanosecond timestamps (magic 0xA1B23C4D) instead of microseconds. */
  readonly nanosecond?: boolean;
}

/**
 * Accumulates a classic little-endian pcap file in memory. `add` returns `this`; `toBuffer` gives
 * a copy of the file so far (the writer can keep adding).
 */
export class PcapWriter {
  readonly linkType: number;
  readonly snaplen: number;
  readonly nanosecond: boolean;
  #buf: Buffer;
  #len: number;
  #count = 0;

  constructor(options: PcapWriterOptions = {}) {
    this.linkType = options.linkType ?? LinkType.ETHERNET.value;
    this.snaplen = options.snaplen ?? PCAP_DEFAULT_SNAPLEN;
    this.nanosecond = options.nanosecond ?? false;
    checkRange(this.linkType, 0xffff, 'linkType', 'pcap writer');
    checkRange(this.snaplen, 0xffffffff, 'snaplen', 'pcap writer');
    if (this.snaplen === 0) throw new CaptureError(CaptureErrorCode.BAD_VALUE, 'snaplen must be > 0', 0, 'pcap writer');
    this.#buf = Buffer.alloc(4096);
    this.#buf.writeUInt32LE(this.nanosecond ? PCAP_MAGIC_NSEC : PCAP_MAGIC_USEC, 0);
    this.#buf.writeUInt16LE(2, 4);
    this.#buf.writeUInt16LE(4, 6);
    this.#buf.writeInt32LE(0, 8); // thiszone
    this.#buf.writeUInt32LE(0, 12); // sigfigs
    this.#buf.writeUInt32LE(this.snaplen, 16);
    this.#buf.writeUInt32LE(this.linkType, 20);
    this.#len = PCAP_HEADER_LENGTH;
  }

  /** Records written so far. */
  get count(): number {
    return this.#count;
  }

  /**
   * Appends one packet. `ts` is nanoseconds since the Unix epoch (default 0; microsecond files
   * round down); `origLen` defaults to `data.length`.
   */
  add(data: Uint8Array, ts: bigint = 0n, origLen: number = data.length): this {
    if (typeof ts !== 'bigint' || ts < 0n || ts >= 0x1_0000_0000n * 1_000_000_000n) {
      throw new CaptureError(CaptureErrorCode.BAD_VALUE, `timestamp ${String(ts)} ns does not fit a pcap record`, 0, 'pcap writer');
    }
    checkRange(origLen, 0xffffffff, 'origLen', 'pcap writer');
    if (origLen < data.length) {
      throw new CaptureError(CaptureErrorCode.BAD_VALUE, `origLen ${origLen} < ${data.length} captured bytes`, 0, 'pcap writer');
    }
    const capLen = Math.min(data.length, this.snaplen);
    this.#reserve(PCAP_RECORD_HEADER_LENGTH + capLen);
    const b = this.#buf;
    const o = this.#len;
    b.writeUInt32LE(Number(ts / 1_000_000_000n), o);
    b.writeUInt32LE(Number(this.nanosecond ? ts % 1_000_000_000n : (ts % 1_000_000_000n) / 1000n), o + 4);
    b.writeUInt32LE(capLen, o + 8);
    b.writeUInt32LE(origLen, o + 12);
    b.set(capLen === data.length ? data : data.subarray(0, capLen), o + PCAP_RECORD_HEADER_LENGTH);
    this.#len = o + PCAP_RECORD_HEADER_LENGTH + capLen;
    this.#count++;
    return this;
  }

  /** A copy of the file so far. */
  toBuffer(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#len));
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }
}
