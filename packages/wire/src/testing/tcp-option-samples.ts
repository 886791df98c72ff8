/**
 * Realistic TCP option blocks of SMC handshakes, hand-written from spec 2.1 and the usual Linux option
 * order (MSS, SACK-permitted + timestamps, NOP + window scale, then NOP NOP + the SMC option). For
 * cross-package tests that wrap them in SYN / SYN-ACK segments (tshark, capture checks).
 */

export interface TcpOptionSample {
  /** Which handshake segment the block belongs to. */
  readonly segment: 'syn' | 'syn-ack';
  /** The option block (a multiple of 4 bytes, at most 40). */
  readonly options: Buffer;
  /** Whether the block advertises SMC. */
  readonly smc: boolean;
}

/** Hex with `//` comments per line (field by field, as written from the spec). */
const hex = (s: string): Buffer => Buffer.from(s.replace(/\/\/[^\n]*/g, '').replace(/\s+/g, ''), 'hex');

export const SAMPLES: { name: string; msg: TcpOptionSample }[] = [
  {
    name: 'Linux SYN with SMC (MSS, SACK-perm, timestamps, wscale, SMC)',
    msg: {
      segment: 'syn',
      options: hex(`
        02 04 05 b4              // MSS 1460
        04 02                    // SACK permitted
        08 0a 0b 1c 2d 3e 00 00 00 00   // timestamps TSval 0x0b1c2d3e, TSecr 0
        01                       // NOP
        03 03 07                 // window scale 7
        01 01                    // NOP NOP
        fe 06 e2 d4 c3 d9        // experimental, length 6, ExID "SMCR" (EBCDIC)
      `),
      smc: true,
    },
  },
  {
    name: 'Linux SYN-ACK with SMC (MSS, SACK-perm, timestamps, wscale, SMC)',
    msg: {
      segment: 'syn-ack',
      options: hex(`
        02 04 23 8c              // MSS 9100
        04 02                    // SACK permitted
        08 0a 5a 6b 7c 8d 0b 1c 2d 3e   // timestamps, TSecr echoes the SYN
        01                       // NOP
        03 03 09                 // window scale 9
        01 01                    // NOP NOP
        fe 06 e2 d4 c3 d9        // SMC option
      `),
      smc: true,
    },
  },
  {
    name: 'SYN-ACK without SMC (peer not SMC capable)',
    msg: {
      segment: 'syn-ack',
      options: hex(`
        02 04 05 b4              // MSS 1460
        04 02                    // SACK permitted
        08 0a 5a 6b 7c 8d 0b 1c 2d 3e   // timestamps
        01                       // NOP
        03 03 07                 // window scale 7
      `),
      smc: false,
    },
  },
];
