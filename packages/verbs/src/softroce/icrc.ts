/**
 * ICRC of datagrams sent and received through a UDP socket, where the IP header is out of reach.
 *
 * The RoCEv2 ICRC (IBA A17.3.3) covers the IPv4 header with only TOS, TTL and checksum masked:
 * the IP ID and flags/fragment offset are inside the CRC (rxe-interop.md 2.1). What a sender puts
 * there depends on its stack:
 *
 * - Linux, unconnected UDP socket with IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF and ID 0
 *   (ip_select_ident_segs: DF and not ignore_df -> id 0). Verified on this host (6.18) with tcpdump.
 * - Linux, a socket Node's dgram creates (PMTU "want", which sets skb->ignore_df): DF with an ID
 *   from the shared per-destination counter (__ip_select_ident), which user space cannot know.
 *   Verified with tcpdump on lo: ids 188, 189, ... with DF. Node cannot set IP_MTU_DISCOVER.
 * - Kernel rdma_rxe (rxe_net.c prepare_ipv4_hdr): DF (`df = htons(IP_DF)`) and an ID from
 *   __ip_select_ident, computed before rxe_icrc_hdr, so its ICRC covers that unknown ID.
 *
 * Transmit: the ICRC is computed over the header a PMTUDISC_DO socket gets (ID 0, DF), whatever
 * socket actually sends. It is then exact on the wire when the device socket is such a socket
 * (pass its descriptor as the device's `fd`), and "exact with ID zeroed" otherwise.
 *
 * Receive: `IcrcChecker.check` first tries ID 0 + DF (what softroce peers compute; one CRC). If
 * that fails it solves for the ID: CRC-32 is affine, so for a fixed length the difference between
 * the received ICRC and the ID-0 ICRC is a GF(2)-linear function of the 16 ID bits. If the
 * difference lies in the span of the 16 per-bit deltas, the ID is recovered, and the packet is
 * accepted after a full recomputation with that ID. Everything else of the header the sender must
 * have built is fixed: version 4, IHL 5, total length = 28 + UDP payload, DF, fragment offset 0,
 * protocol 17, source = the datagram's source address, destination = the device address, the UDP
 * ports and length. A corrupted packet passes with probability 2^-16 instead of 2^-32.
 */
import { crc32 } from 'node:zlib';
import { ICRC_LENGTH, computeIcrcUdp4 } from '@smc-r/wire';

/** IPv4 flags/fragment word with DF set: what Linux and rxe put on RoCEv2 datagrams. */
export const IP_FLAGS_DF = 0x4000;

/** Writes the ICRC of `buf[0, len)` (ID 0, DF) into its last 4 bytes (little-endian). */
export function fillIcrcUdp4(buf: Buffer, len: number, src: number, dst: number, sport: number, dport: number): void {
  const c = computeIcrcUdp4(buf, 0, len, src, dst, sport, dport, 0, IP_FLAGS_DF);
  buf.writeUInt32LE(c, len - ICRC_LENGTH);
}

/** Offsets of the IP ID bytes inside the ICRC input (8 bytes 0xFF, then the IPv4 header). */
const ID_OFFSET = 8 + 4;
const PREFIX = 8 + 20 + 8;

/** Fully reduced GF(2) basis of the 16 per-bit deltas for one datagram length. */
interface Basis {
  readonly pivots: Uint32Array;
  readonly vecs: Uint32Array;
  readonly tags: Uint32Array;
  readonly n: number;
}

export class IcrcChecker {
  /** Basis per UDP payload length (built on first use; a few hundred lengths in practice). */
  private readonly bases = new Map<number, Basis>();
  private zeros = Buffer.alloc(0);
  /** ID of the last packet accepted by `check` (0 on the fast path). */
  lastId = 0;

  /**
   * True when the last 4 bytes of `buf[0, len)` are the ICRC of the datagram as sent from
   * `src:sport` to `dst:dport` with DF and some IP ID (sets `lastId`).
   */
  check(buf: Buffer, len: number, src: number, dst: number, sport: number, dport: number): boolean {
    const got = buf.readUInt32LE(len - ICRC_LENGTH);
    const c0 = computeIcrcUdp4(buf, 0, len, src, dst, sport, dport, 0, IP_FLAGS_DF);
    if (c0 === got) {
      this.lastId = 0;
      return true;
    }
    const b = this.basis(len);
    let s = (c0 ^ got) >>> 0;
    let id = 0;
    for (let i = 0; i < b.n; i++) {
      if ((s & b.pivots[i]!) !== 0) {
        s = (s ^ b.vecs[i]!) >>> 0;
        id ^= b.tags[i]!;
      }
    }
    if (s !== 0) return false;
    // Belt and braces: the recovered ID must reproduce the ICRC exactly.
    if (computeIcrcUdp4(buf, 0, len, src, dst, sport, dport, id, IP_FLAGS_DF) !== got) return false;
    this.lastId = id;
    return true;
  }

  private basis(len: number): Basis {
    const hit = this.bases.get(len);
    if (hit !== undefined) return hit;
    // CRC input length: prefix + BTH .. payload + pad (the ICRC itself is not covered).
    const m = PREFIX + len - ICRC_LENGTH;
    if (this.zeros.length < m) this.zeros = Buffer.alloc(m);
    const z = this.zeros.subarray(0, m);
    const base = crc32(z);
    const pivots: number[] = [];
    const vecs: number[] = [];
    const tags: number[] = [];
    for (let bit = 0; bit < 16; bit++) {
      const pos = ID_OFFSET + (bit < 8 ? 1 : 0);
      z[pos] = 1 << (bit & 7);
      let v = (crc32(z) ^ base) >>> 0;
      z[pos] = 0;
      let tag = 1 << bit;
      for (let i = 0; i < vecs.length; i++) {
        if ((v & pivots[i]!) !== 0) {
          v = (v ^ vecs[i]!) >>> 0;
          tag ^= tags[i]!;
        }
      }
      if (v === 0) continue; // dependent (cannot happen for CRC-32 and a 16-bit burst)
      const pivot = (0x80000000 >>> Math.clz32(v)) >>> 0;
      for (let i = 0; i < vecs.length; i++) {
        if ((vecs[i]! & pivot) !== 0) {
          vecs[i] = (vecs[i]! ^ v) >>> 0;
          tags[i] = tags[i]! ^ tag;
        }
      }
      pivots.push(pivot);
      vecs.push(v);
      tags.push(tag);
    }
    const b: Basis = { pivots: Uint32Array.from(pivots), vecs: Uint32Array.from(vecs), tags: Uint32Array.from(tags), n: vecs.length };
    this.bases.set(len, b);
    return b;
  }
}
