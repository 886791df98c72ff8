/** Shared test fixtures of @smc-r/capture (not built; imported by the tests through a relative path). */
import assert from 'node:assert/strict';
import { CaptureError, type CaptureErrorCode } from '../errors.js';

export const hex = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*|\s+/g, ''), 'hex');

export function throwsCapture(fn: () => unknown, code: CaptureErrorCode, offset?: number): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CaptureError, `expected CaptureError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (offset !== undefined) assert.equal(e.offset, offset);
    return true;
  });
}

/**
 * Hand-built Ethernet/IPv4/TCP SYN carrying the SMC option, laid out like the Linux SMC client's
 * (MSS, SACK-permitted, window scale, then NOP NOP + kind 254 "SMCR"). Checksums summed by hand:
 * IPv4 = ~(4500+003c+0000+4000+4006+0a00+0001+0a00+0002) = ~d945 = 26ba; TCP over the pseudo-header
 * (0a000001 0a000002 0006 0028) and the 40-byte header = 4ed2.
 */
export const SYN_FRAME = hex(`
  020000000002 020000000001 0800        # Ethernet: dst, src, IPv4
  45 00 003c 0000 4000 40 06 26ba       # IPv4: IHL 5, len 60, ID 0, DF, TTL 64, TCP, checksum
  0a000001 0a000002                     # 10.0.0.1 -> 10.0.0.2
  c350 1f90                             # TCP 50000 -> 8080
  12345678 00000000                     # seq, ack
  a0 02 faf0 4ed2 0000                  # data offset 10 words, SYN, window 64240, checksum, urgent
  020405b4                              # MSS 1460
  0402                                  # SACK permitted
  01 030307                             # NOP, window scale 7
  0101 fe06e2d4c3d9                     # NOP NOP, SMC experimental option
  0101                                  # NOP NOP
`);

/** Hand-built Ethernet/IPv4/UDP, 192.168.0.1:12345 -> 192.168.0.199:9999, "hello", no DF. */
export const UDP_FRAME = hex(`
  020000000002 020000000001 0800
  45 00 0021 1c46 0000 40 11 dc6d c0a80001 c0a800c7   # len 33, ID 0x1c46, checksum dc6d
  3039 270f 000d e2a0                                 # UDP len 13, checksum e2a0
  68656c6c6f                                          # "hello"
`);


export const TS_US = 1_700_000_000_123_456_000n; // 2023-11-14T22:13:20.123456Z in ns
export const TS_NS = 1_700_000_000_123_456_789n;

/** Classic pcap, little-endian, microseconds, one record (UDP_FRAME, 47 bytes). Written by hand. */
export const PCAP_LE_US = Buffer.concat([
  hex(`d4c3b2a1          # magic 0xa1b2c3d4 little-endian
       0200 0400         # version 2.4
       00000000          # thiszone
       00000000          # sigfigs
       00000400          # snaplen 262144
       01000000          # LINKTYPE_ETHERNET
       00f15365          # ts_sec 1700000000
       40e20100          # ts_usec 123456
       2f000000          # incl_len 47
       2f000000          # orig_len 47`),
  UDP_FRAME,
]);

/** Classic pcap, big-endian, nanoseconds, raw IP, one record cut to 30 of 33 bytes. */
export const PCAP_BE_NS = Buffer.concat([
  hex(`a1b23c4d 0002 0004 00000000 00000000 0000001e   # snaplen 30
       00000065                                        # LINKTYPE_RAW (101)
       6553f100 075bcd15                               # 1700000000 s, 123456789 ns
       0000001e 00000021                               # incl 30, orig 33`),
  UDP_FRAME.subarray(14, 44),
]);

/** pcapng by hand: SHB, two IDBs (Ethernet us; raw IP ns), EPB, EPB, NRB (skipped), SPB. */
export const PCAPNG_LE = Buffer.concat([
  hex(`0a0d0d0a 1c000000          # SHB, length 28
       4d3c2b1a                   # byte-order magic (little-endian)
       0100 0000                  # version 1.0
       ffffffffffffffff           # section length unknown
       1c000000`),
  hex(`01000000 14000000          # IDB 0, length 20
       0100 0000 00000400         # Ethernet, reserved, snaplen 262144
       14000000`),
  hex(`01000000 20000000          # IDB 1, length 32
       6500 0000 00000400         # LINKTYPE_RAW
       0900 0100 09000000         # if_tsresol = 9 (nanoseconds), padded
       0000 0000                  # opt_endofopt
       20000000`),
  hex(`06000000 50000000          # EPB, length 80
       00000000                   # interface 0
       240a0600 40222018          # timestamp high 0x00060a24, low 0x18202240 (us)
       2f000000 2f000000          # captured 47, original 47`),
  UDP_FRAME, hex('00'), //          47 bytes + 1 pad
  hex('50000000'),
  hex(`06000000 44000000          # EPB, length 68
       01000000                   # interface 1
       fe9c9717 15cd853d          # timestamp 0x17979cfe 3d85cd15 (ns)
       21000000 21000000`),        // 33 bytes + 3 pad
  UDP_FRAME.subarray(14), hex('000000'),
  hex('44000000'),
  hex('04000000 10000000 0000 0000 10000000'), // NRB with only nrb_record_end: skipped
  hex(`03000000 40000000 2f000000`), // SPB, length 64, original 47
  UDP_FRAME, hex('00'),
  hex('40000000'),
]);

/** A big-endian section with one IDB (raw IPv4, 228) and one EPB. */
export const PCAPNG_BE = Buffer.concat([
  hex('0a0d0d0a 0000001c 1a2b3c4d 0001 0000 ffffffffffffffff 0000001c'),
  hex('00000001 00000014 00e4 0000 00000000 00000014'),
  hex('00000006 00000044 00000000 00060a24 18202240 00000021 00000021'),
  UDP_FRAME.subarray(14), hex('000000'),
  hex('00000044'),
]);

