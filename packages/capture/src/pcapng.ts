/**
 * pcapng files (draft-ietf-opsawg-pcapng): a sequence of blocks `type, total length, body, total
 * length`, each section opened by a Section Header Block whose byte-order magic fixes the byte
 * order of the section. We read Interface Description Blocks (link type, if_tsresol, if_tsoffset),
 * Enhanced, Simple and (obsolete) Packet Blocks, and skip every other block type.
 */
import { CaptureError, CaptureErrorCode, needBytes } from './errors.js';
import type { CaptureRecord } from './types.js';

export const PcapngBlockType = {
  SECTION_HEADER: { value: 0x0a0d0d0a, name: 'SECTION_HEADER' },
  INTERFACE_DESCRIPTION: { value: 0x00000001, name: 'INTERFACE_DESCRIPTION' },
  PACKET: { value: 0x00000002, name: 'PACKET' },
  SIMPLE_PACKET: { value: 0x00000003, name: 'SIMPLE_PACKET' },
  NAME_RESOLUTION: { value: 0x00000004, name: 'NAME_RESOLUTION' },
  INTERFACE_STATISTICS: { value: 0x00000005, name: 'INTERFACE_STATISTICS' },
  ENHANCED_PACKET: { value: 0x00000006, name: 'ENHANCED_PACKET' },
  DECRYPTION_SECRETS: { value: 0x0000000a, name: 'DECRYPTION_SECRETS' },
} as const;

/** The Section Header Block's byte-order magic. */
export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;

/** IDB option codes we use. */
const IF_TSRESOL = 9;
const IF_TSOFFSET = 14;
const OPT_ENDOFOPT = 0;

/** An interface as its Interface Description Block defines it. */
export interface PcapngInterface {
  readonly linkType: number;
  readonly snaplen: number;
  /** if_tsresol: bit 7 clear = 10^-n seconds, set = 2^-n seconds (default 6 = microseconds). */
  readonly tsResol: number;
  /** if_tsoffset in seconds (default 0). */
  readonly tsOffset: bigint;
}

/** True when `buf` starts with a Section Header Block type. */
export function isPcapng(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x0a && buf[1] === 0x0d && buf[2] === 0x0d && buf[3] === 0x0a;
}

/** Converts a timestamp in interface units to nanoseconds since the epoch. */
function toNanoseconds(units: bigint, iface: PcapngInterface): bigint {
  const r = iface.tsResol;
  let ns: bigint;
  if (r & 0x80) {
    ns = (units * 1_000_000_000n) >> BigInt(r & 0x7f);
  } else if (r <= 9) {
    ns = units * 10n ** BigInt(9 - r);
  } else {
    ns = units / 10n ** BigInt(r - 9);
  }
  return ns + iface.tsOffset * 1_000_000_000n;
}

/**
 * Iterates the packets of a pcapng file; data views point into `buf`. Throws (when reached)
 * BAD_MAGIC if the file does not start with a Section Header Block, BAD_RECORD for a block whose
 * lengths disagree, TRUNCATED for a block cut short, BAD_VERSION for a section of major version
 * other than 1, BAD_INTERFACE for a packet on an undefined interface.
 */
export function* readPcapng(buf: Uint8Array): Generator<CaptureRecord, void, undefined> {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (!isPcapng(b)) {
    throw new CaptureError(CaptureErrorCode.BAD_MAGIC, 'a pcapng file must start with a Section Header Block', 0, 'pcapng');
  }
  let le = true;
  let interfaces: PcapngInterface[] = [];
  let index = 0;
  let off = 0;
  const u16 = (o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  while (off < b.length) {
    needBytes(b.length, off, 8, 'pcapng block');
    const isShb = b.readUInt32BE(off) === PcapngBlockType.SECTION_HEADER.value;
    if (isShb) {
      needBytes(b.length, off, 12, 'pcapng section header');
      const bom = b.readUInt32LE(off + 8);
      if (bom === PCAPNG_BYTE_ORDER_MAGIC) le = true;
      else if (b.readUInt32BE(off + 8) === PCAPNG_BYTE_ORDER_MAGIC) le = false;
      else throw new CaptureError(CaptureErrorCode.BAD_MAGIC, `byte-order magic 0x${bom.toString(16)} is wrong`, off + 8, 'pcapng section header');
    }
    const type = u32(off);
    const total = u32(off + 4);
    if (total < 12 || total % 4 !== 0) {
      throw new CaptureError(CaptureErrorCode.BAD_RECORD, `block length ${total} is not a multiple of 4 >= 12`, off + 4, 'pcapng block');
    }
    needBytes(b.length, off, total, 'pcapng block');
    if (u32(off + total - 4) !== total) {
      throw new CaptureError(CaptureErrorCode.BAD_RECORD, `trailing block length ${u32(off + total - 4)} differs from ${total}`, off + total - 4, 'pcapng block');
    }
    const body = off + 8;
    const bodyEnd = off + total - 4;
    const short = (n: number, what: string): void => {
      if (bodyEnd - body < n) {
        throw new CaptureError(CaptureErrorCode.BAD_RECORD, `${what} needs a body of ${n} bytes, has ${bodyEnd - body}`, off + 4, 'pcapng block');
      }
    };
    switch (type) {
      case PcapngBlockType.SECTION_HEADER.value: {
        short(16, 'section header');
        const major = u16(body + 4);
        if (major !== 1) {
          throw new CaptureError(CaptureErrorCode.BAD_VERSION, `pcapng version ${major}.${u16(body + 6)}, only 1.x is defined`, body + 4, 'pcapng section header');
        }
        interfaces = [];
        break;
      }
      case PcapngBlockType.INTERFACE_DESCRIPTION.value: {
        short(8, 'interface description');
        let tsResol = 6;
        let tsOffset = 0n;
        let p = body + 8;
        while (p + 4 <= bodyEnd) {
          const code = u16(p);
          const len = u16(p + 2);
          if (code === OPT_ENDOFOPT) break;
          const padded = (len + 3) & ~3;
          if (p + 4 + padded > bodyEnd) {
            throw new CaptureError(CaptureErrorCode.BAD_RECORD, `option ${code} of ${len} bytes runs past the block`, p, 'pcapng interface description');
          }
          if (code === IF_TSRESOL && len >= 1) tsResol = b[p + 4]!;
          if (code === IF_TSOFFSET && len >= 8) tsOffset = le ? b.readBigInt64LE(p + 4) : b.readBigInt64BE(p + 4);
          p += 4 + padded;
        }
        interfaces.push({ linkType: u16(body), snaplen: u32(body + 4), tsResol, tsOffset });
        break;
      }
      case PcapngBlockType.ENHANCED_PACKET.value:
      case PcapngBlockType.PACKET.value: {
        short(20, 'packet block');
        const epb = type === PcapngBlockType.ENHANCED_PACKET.value;
        const ifId = epb ? u32(body) : u16(body);
        const iface = interfaces[ifId];
        if (iface === undefined) {
          throw new CaptureError(CaptureErrorCode.BAD_INTERFACE, `interface ${ifId} was not described (${interfaces.length} known)`, body, 'pcapng packet');
        }
        const units = (BigInt(u32(body + 4)) << 32n) | BigInt(u32(body + 8));
        const capLen = u32(body + 12);
        const origLen = u32(body + 16);
        if (capLen > bodyEnd - body - 20) {
          throw new CaptureError(CaptureErrorCode.BAD_RECORD, `captured length ${capLen} exceeds the block`, body + 12, 'pcapng packet');
        }
        if (capLen > origLen) {
          throw new CaptureError(CaptureErrorCode.BAD_RECORD, `captured length ${capLen} exceeds original length ${origLen}`, body + 12, 'pcapng packet');
        }
        yield {
          index: index++,
          ts: toNanoseconds(units, iface),
          linkType: iface.linkType,
          data: b.subarray(body + 20, body + 20 + capLen),
          origLen,
          interfaceId: ifId,
          fileOffset: off,
        };
        break;
      }
      case PcapngBlockType.SIMPLE_PACKET.value: {
        short(4, 'simple packet');
        const iface = interfaces[0];
        if (iface === undefined) {
          throw new CaptureError(CaptureErrorCode.BAD_INTERFACE, 'simple packet block before any interface description', body, 'pcapng packet');
        }
        const origLen = u32(body);
        let capLen = Math.min(origLen, bodyEnd - body - 4);
        if (iface.snaplen > 0) capLen = Math.min(capLen, iface.snaplen);
        yield {
          index: index++,
          ts: null,
          linkType: iface.linkType,
          data: b.subarray(body + 4, body + 4 + capLen),
          origLen,
          interfaceId: 0,
          fileOffset: off,
        };
        break;
      }
      default:
        break; // name resolution, statistics, custom, secrets, ...: not needed
    }
    off += total;
  }
}
