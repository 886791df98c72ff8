/**
 * The Internet checksum (RFC 1071) and the IPv4 header / TCP / UDP checksums built on it
 * (RFC 791, RFC 9293 3.1, RFC 768, RFC 8200 8.1 for the IPv6 pseudo-header).
 */

/**
 * Adds the bytes `[off, end)` as big-endian 16-bit words to `sum` (an odd last byte is padded
 * with zero). The result is unfolded; pass it on or finish it with {@link checksumFinish}.
 */
export function checksumAdd(sum: number, buf: Uint8Array, off: number, end: number): number {
  let s = sum;
  let i = off;
  for (; i + 1 < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) s += buf[i]! << 8;
  // Fold now and then so the running sum stays a small integer.
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** Folds a running sum to 16 bits and complements it: the value that goes into a checksum field. */
export function checksumFinish(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** RFC 1071 checksum of `[off, end)`. Over data that includes a correct checksum field it is 0. */
export function internetChecksum(buf: Uint8Array, off: number, end: number, initialSum = 0): number {
  return checksumFinish(checksumAdd(initialSum, buf, off, end));
}

/**
 * The checksum an IPv4 header at `off` should carry: computed over its IHL*4 bytes with the
 * checksum field (bytes 10-11) taken as zero.
 */
export function ipv4HeaderChecksum(buf: Uint8Array, off: number): number {
  const len = (buf[off]! & 0x0f) * 4;
  let s = checksumAdd(0, buf, off, off + 10);
  s = checksumAdd(s, buf, off + 12, off + len);
  return checksumFinish(s);
}

/**
 * The pseudo-header sum of a TCP/UDP segment in the IP packet at `ipOff` (IPv4 or IPv6, by the
 * version nibble): source and destination address, protocol and the upper-layer length.
 */
export function pseudoHeaderSum(buf: Uint8Array, ipOff: number, protocol: number, l4Length: number): number {
  const v6 = buf[ipOff]! >> 4 === 6;
  let s = v6 ? checksumAdd(0, buf, ipOff + 8, ipOff + 40) : checksumAdd(0, buf, ipOff + 12, ipOff + 20);
  s += protocol;
  s += (l4Length >>> 16) + (l4Length & 0xffff);
  return s;
}

/**
 * RFC 1071 sum over the pseudo-header and the TCP/UDP segment `[l4Off, l4End)` as it stands, so
 * it is 0 for a segment with a correct checksum. To compute a checksum, zero the field first.
 */
export function transportChecksum(buf: Uint8Array, ipOff: number, protocol: number, l4Off: number, l4End: number): number {
  return internetChecksum(buf, l4Off, l4End, pseudoHeaderSum(buf, ipOff, protocol, l4End - l4Off));
}
