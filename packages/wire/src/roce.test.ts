import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WireError, WireErrorCode } from './errors.js';
import {
  AETH_CREDITS, AethSyndrome, IbOpcode, RNR_TIMER_MS, aethSyndrome, computeIcrc, computeIcrcUdp4, computeIcrcUdp6,
  decodeAeth, decodeAtomicEth, decodeBth, decodeIbPacket, decodeImmDt, decodeReth, describeAethSyndrome,
  encodeAeth, encodeAtomicEth, encodeBth, encodeIbPacket, encodeImmDt, encodeReth, fillIcrc, ibExtHeaderLength,
  ibOpcodeInfo, ibPacketLength, ibPadCount, verifyIcrc,
  type Bth, type IbPacket, type IbPacketInput,
} from './roce.js';
import { SAMPLES, SCAPY_FRAMES as SCAPY } from './testing/roce-samples.js';
import { throwsWire } from './testing/assert.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+|#[^\n]*/g, ''), 'hex');


describe('roce: opcode table', () => {
  it('covers the RC opcodes with the right extension headers', () => {
    assert.equal(IbOpcode.SEND_ONLY.value, 4);
    assert.equal(IbOpcode.RDMA_WRITE_ONLY.value, 10);
    assert.equal(IbOpcode.ACKNOWLEDGE.value, 17);
    assert.equal(ibExtHeaderLength(IbOpcode.RDMA_WRITE_ONLY_IMM), 20);
    assert.equal(ibExtHeaderLength(IbOpcode.ATOMIC_ACKNOWLEDGE), 12);
    assert.equal(ibExtHeaderLength(IbOpcode.COMPARE_SWAP), 28);
    assert.equal(ibOpcodeInfo(0x11)?.name, 'ACKNOWLEDGE');
    assert.equal(ibOpcodeInfo(0x15), undefined); // reserved
    assert.equal(ibOpcodeInfo(0x64), undefined); // UD SEND ONLY: other transport
    for (const [k, v] of Object.entries(IbOpcode)) assert.equal(v.name, k);
  });
  it('pads payloads to 4 bytes', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 45].map(ibPadCount), [0, 3, 2, 1, 0, 3]);
  });
});

describe('roce: AETH syndrome', () => {
  it('splits ACK, RNR NAK and NAK', () => {
    assert.deepEqual(describeAethSyndrome(0x1f), { kind: 'ACK', value: 31, text: 'ACK credit=invalid' });
    assert.deepEqual(describeAethSyndrome(0x0a), { kind: 'ACK', value: 10, text: 'ACK credit=32' });
    assert.deepEqual(describeAethSyndrome(0x25), { kind: 'RNR_NAK', value: 5, text: 'RNR NAK timer=0.06ms' });
    assert.deepEqual(describeAethSyndrome(0x60), { kind: 'NAK', value: 0, text: 'NAK: PSN sequence error' });
    assert.equal(describeAethSyndrome(0x61).text, 'NAK: invalid request');
    assert.equal(describeAethSyndrome(0x62).text, 'NAK: remote access error');
    assert.equal(describeAethSyndrome(0x63).text, 'NAK: remote operational error');
    assert.equal(describeAethSyndrome(0x6a).text, 'NAK: reserved code 10');
    assert.equal(describeAethSyndrome(0x40).kind, 'RESERVED');
    assert.equal(AETH_CREDITS.length, 32);
    assert.equal(RNR_TIMER_MS.length, 32);
  });
  it('builds syndromes', () => {
    assert.equal(aethSyndrome('NAK', 0), AethSyndrome.NAK_PSN_SEQUENCE_ERROR.value);
    assert.equal(aethSyndrome('NAK', 2), AethSyndrome.NAK_REMOTE_ACCESS_ERROR.value);
    assert.equal(aethSyndrome('ACK', 31), AethSyndrome.ACK_NO_CREDIT.value);
    assert.equal(aethSyndrome('RNR_NAK', 5), 0x25);
    throwsWire(() => aethSyndrome('ACK', 32), WireErrorCode.BAD_VALUE, 0);
  });
});

describe('roce: header codecs (hand-written golden bytes)', () => {
  const bth: Bth = { opcode: 0x0a, se: true, migReq: true, padCnt: 2, tver: 0, pkey: 0x8001, destQp: 0xabcdef, ackReq: true, psn: 0x123456 };
  const bthHex = hex(`0a      # opcode RDMA WRITE ONLY
    e0                 # SE 0x80 | MigReq 0x40 | PadCnt 2 << 4 | TVer 0
    8001               # P_Key
    00                 # resv8a
    abcdef             # DestQP
    80                 # AckReq, resv7 zero
    123456             # PSN`);
  it('BTH', () => {
    const out = Buffer.alloc(14, 0xee);
    assert.equal(encodeBth(bth, out, 1), 13);
    assert.deepEqual(out.subarray(1, 13), bthHex);
    assert.equal(out[0], 0xee);
    assert.equal(out[13], 0xee);
    assert.deepEqual(decodeBth(bthHex), bth);
  });
  it('BTH ignores reserved bits on decode and zeroes them on encode', () => {
    const dirty = Buffer.from(bthHex);
    dirty[4] = 0xc0; // FECN/BECN
    dirty[8] = 0xff; // resv7
    assert.deepEqual(decodeBth(dirty), bth);
    const out = Buffer.alloc(12, 0xff);
    encodeBth(bth, out, 0);
    assert.deepEqual(out, bthHex);
  });
  it('RETH', () => {
    const m = { va: 0xfedcba9876543210n, rkey: 0x0001a2b3, dmaLength: 0x00010000 };
    const h = hex('fedcba9876543210 0001a2b3 00010000');
    const out = Buffer.alloc(16);
    assert.equal(encodeReth(m, out, 0), 16);
    assert.deepEqual(out, h);
    assert.deepEqual(decodeReth(h), m);
  });
  it('AETH', () => {
    const h = hex('62 00000c'); // NAK remote access error, MSN 12
    const out = Buffer.alloc(4);
    assert.equal(encodeAeth({ syndrome: 0x62, msn: 12 }, out, 0), 4);
    assert.deepEqual(out, h);
    assert.deepEqual(decodeAeth(h), { syndrome: 0x62, msn: 12 });
    assert.deepEqual(decodeAeth(hex('e2 00000c')), { syndrome: 0x62, msn: 12 }); // reserved bit 7 ignored
  });
  it('ImmDt', () => {
    const out = Buffer.alloc(4);
    encodeImmDt(0xdeadbeef, out, 0);
    assert.deepEqual(out, hex('deadbeef'));
    assert.equal(decodeImmDt(out), 0xdeadbeef);
  });
  it('AtomicETH', () => {
    const m = { va: 0x1000n, rkey: 0x22, swapAdd: 0x0102030405060708n, compare: 0xffffffffffffffffn };
    const h = hex('0000000000001000 00000022 0102030405060708 ffffffffffffffff');
    const out = Buffer.alloc(28);
    assert.equal(encodeAtomicEth(m, out, 0), 28);
    assert.deepEqual(out, h);
    assert.deepEqual(decodeAtomicEth(h), m);
  });
  it('whole packets: ATOMIC ACK and SEND ONLY with Invalidate', () => {
    const ack: IbPacketInput = {
      bth: { opcode: 0x12, se: false, migReq: false, padCnt: 0, tver: 0, pkey: 0xffff, destQp: 1, ackReq: false, psn: 2 },
      aeth: { syndrome: 0x1f, msn: 3 },
      atomicAckEth: { origRemoteData: 0x0a0b0c0d0e0f1011n },
      icrc: 0x04030201,
    };
    const ackHex = hex('12 00 ffff 00 000001 00 000002  1f 000003  0a0b0c0d0e0f1011  01020304');
    const out = Buffer.alloc(ackHex.length);
    assert.equal(encodeIbPacket(ack, out, 0), ackHex.length);
    assert.deepEqual(out, ackHex);
    const d = decodeIbPacket(ackHex);
    assert.equal(d.type, 'ATOMIC_ACKNOWLEDGE');
    assert.deepEqual(d.atomicAckEth, ack.atomicAckEth);
    assert.equal(d.icrc, 0x04030201);
    const inv = decodeIbPacket(hex('17 80 ffff 00 000001 80 000002  0001a2b3  41424344  00000000'));
    assert.equal(inv.type, 'SEND_ONLY_INV');
    assert.equal(inv.ieth, 0x0001a2b3);
    assert.deepEqual(inv.payload, { offset: 16, length: 4 });
  });
});

describe('roce: ICRC against scapy 2.5 golden frames', () => {
  for (const [name, v] of Object.entries(SCAPY)) {
    it(name, () => {
      const f = v.frame;
      assert.equal(computeIcrc(f, 14, f.length), v.icrc);
      assert.equal(f.readUInt32LE(f.length - 4), v.icrc);
      assert.ok(verifyIcrc(f, 14, f.length));
      const copy = Buffer.from(f);
      copy.fill(0, copy.length - 4);
      assert.equal(fillIcrc(copy, 14, copy.length), v.icrc);
      assert.deepEqual(copy, f);
      // The ICRC must not depend on where the packet sits in the buffer.
      const shifted = Buffer.concat([Buffer.alloc(3), f.subarray(14), Buffer.alloc(5)]);
      assert.equal(computeIcrc(shifted, 3, shifted.length - 5), v.icrc);
    });
  }

  it('masks exactly TOS/TTL/checksum, UDP checksum and resv8a (IPv4)', () => {
    const f = SCAPY.sendOnly.frame;
    const ip = 14;
    for (const masked of [ip + 1, ip + 8, ip + 10, ip + 11, ip + 20 + 6, ip + 20 + 7, ip + 28 + 4]) {
      const m = Buffer.from(f);
      m[masked] = m[masked]! ^ 0x5a;
      assert.ok(verifyIcrc(m, ip, m.length), `byte ${masked} should be masked`);
    }
    for (let i = ip + 1; i < f.length - 4; i++) { // (byte 0 and 9, version/IHL and protocol, are checked first)
      if ([ip + 9, ip + 1, ip + 8, ip + 10, ip + 11, ip + 26, ip + 27, ip + 32].includes(i)) continue;
      const m = Buffer.from(f);
      m[i] = m[i]! ^ 0x01;
      assert.ok(!verifyIcrc(m, ip, m.length), `byte ${i} (IP ID, flags, addresses, ports, BTH, payload) is covered`);
    }
  });

  it('masks traffic class, flow label and hop limit (IPv6)', () => {
    const f = SCAPY.ipv6.frame;
    for (const masked of [14, 15, 16, 17, 14 + 7]) {
      const m = Buffer.from(f);
      m[masked] = m[masked]! ^ (masked === 14 ? 0x0f : 0xff);
      assert.ok(verifyIcrc(m, 14, m.length), `byte ${masked} should be masked`);
    }
    const m = Buffer.from(f);
    m[22] = m[22]! ^ 1; // source address
    assert.ok(!verifyIcrc(m, 14, m.length));
  });

  it('computeIcrcUdp4/6 rebuild the headers from the socket view', () => {
    const f = SCAPY.sendOnly.frame;
    assert.equal(computeIcrcUdp4(f, 42, f.length, 0x0a000001, 0x0a000002, 49152, 4791), SCAPY.sendOnly.icrc);
    const p = SCAPY.sendPad3.frame;
    assert.equal(computeIcrcUdp4(p, 42, p.length, 0xc00002fe, 0xc0000201, 50123, 4791, 0x1234, 0), SCAPY.sendPad3.icrc);
    assert.notEqual(computeIcrcUdp4(p, 42, p.length, 0xc00002fe, 0xc0000201, 50123, 4791), SCAPY.sendPad3.icrc);
    const w = SCAPY.writeOnly.frame; // long tail: the native zlib path
    const big = Buffer.concat([w.subarray(0, w.length - 4), Buffer.alloc(400, 0x33), Buffer.alloc(4)]);
    big.writeUInt16BE(big.length - 14, 16);
    big.writeUInt16BE(big.length - 34, 38);
    const viaIp = computeIcrc(big, 14, big.length);
    assert.equal(computeIcrcUdp4(big, 42, big.length, 0x0a000001, 0x0a000002, 49152, 4791), viaIp);
    const v6 = SCAPY.ipv6.frame;
    assert.equal(computeIcrcUdp6(v6, 62, v6.length, v6.subarray(22, 38), v6.subarray(38, 54), 49152, 4791), SCAPY.ipv6.icrc);
  });

  it('errors', () => {
    const f = SCAPY.sendOnly.frame;
    throwsWire(() => computeIcrc(f, 14, 14 + 20 + 8 + 12 + 3), WireErrorCode.TRUNCATED, 14);
    throwsWire(() => computeIcrc(f, 0, f.length), WireErrorCode.BAD_VERSION, 0); // Ethernet, not IP
    const tcp = Buffer.from(f);
    tcp[14 + 9] = 6;
    throwsWire(() => computeIcrc(tcp, 14, tcp.length), WireErrorCode.UNSUPPORTED, 23);
    const ihl = Buffer.from(f);
    ihl[14] = 0x44;
    throwsWire(() => computeIcrc(ihl, 14, ihl.length), WireErrorCode.BAD_LENGTH, 14);
    const ext = Buffer.from(SCAPY.ipv6.frame);
    ext[14 + 6] = 0; // hop-by-hop options
    throwsWire(() => computeIcrc(ext, 14, ext.length), WireErrorCode.UNSUPPORTED, 20);
    throwsWire(() => computeIcrc(f, 14, 15), WireErrorCode.TRUNCATED, 14);
    throwsWire(() => computeIcrcUdp4(f, 42, 50, 1, 2, 3, 4), WireErrorCode.TRUNCATED, 42);
    throwsWire(() => computeIcrcUdp4(f, 42, f.length, 1, 2, 3, 0x10000), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => computeIcrcUdp6(f, 42, f.length, Buffer.alloc(4), Buffer.alloc(16), 3, 4), WireErrorCode.BAD_VALUE, 0);
  });
});

describe('roce: packets', () => {
  it('decodes the scapy frames', () => {
    const s = decodeIbPacket(SCAPY.sendOnly.frame, 42);
    assert.deepEqual(s, {
      type: 'SEND_ONLY',
      bth: { opcode: 4, se: true, migReq: false, padCnt: 0, tver: 0, pkey: 0xffff, destQp: 0x123, ackReq: true, psn: 0xabcd },
      payload: { offset: 54, length: 44 },
      icrc: SCAPY.sendOnly.icrc,
    } satisfies IbPacket);
    const w = decodeIbPacket(SCAPY.writeOnly.frame, 42);
    assert.deepEqual(w.reth, { va: 0x00007f1234560000n, rkey: 0x1234abcd, dmaLength: 32 });
    assert.deepEqual(w.payload, { offset: 70, length: 32 });
    const a = decodeIbPacket(SCAPY.ack.frame, 42);
    assert.equal(a.type, 'ACKNOWLEDGE');
    assert.deepEqual(a.aeth, { syndrome: 0x1f, msn: 2 });
    assert.deepEqual(a.payload, { offset: 58, length: 0 });
    const i = decodeIbPacket(SCAPY.sendOnlyImm.frame, 42);
    assert.equal(i.immDt, 0xdeadbeef);
    assert.deepEqual(i.payload, { offset: 58, length: 44 });
    const p = decodeIbPacket(SCAPY.sendPad3.frame, 42);
    assert.equal(p.bth.padCnt, 3);
    assert.equal(p.bth.psn, 0xffffff);
    assert.deepEqual(p.payload, { offset: 54, length: 45 });
    assert.equal(decodeIbPacket(SCAPY.nakPsn.frame, 42).aeth?.syndrome, 0x60);
  });

  it('encodes the scapy frames byte for byte', () => {
    for (const v of Object.values(SCAPY)) {
      const f = v.frame;
      const ibOff = f[12] === 0x86 ? 62 : 42;
      const d = decodeIbPacket(f, ibOff);
      const input: IbPacketInput = {
        bth: d.bth, reth: d.reth, aeth: d.aeth, immDt: d.immDt, icrc: d.icrc,
        payload: f, payloadOffset: d.payload.offset, payloadLength: d.payload.length,
      };
      const out = Buffer.alloc(f.length - ibOff);
      assert.equal(ibPacketLength(input), out.length);
      assert.equal(encodeIbPacket(input, out, 0), out.length);
      assert.deepEqual(out, f.subarray(ibOff));
    }
  });

  it('encodes every sample and decodes it back', () => {
    for (const { name, msg } of SAMPLES) {
      const len = ibPacketLength(msg);
      const out = Buffer.alloc(len + 8, 0xaa);
      assert.equal(encodeIbPacket(msg, out, 4), 4 + len, name);
      const d = decodeIbPacket(out, 4, 4 + len);
      assert.equal(d.bth.opcode, msg.bth.opcode, name);
      assert.deepEqual(d.bth, msg.bth, name);
      const off = msg.payloadOffset ?? 0;
      const plen = msg.payloadLength ?? (msg.payload ? msg.payload.length - off : 0);
      assert.deepEqual(out.subarray(d.payload.offset, d.payload.offset + d.payload.length), msg.payload ? Buffer.from(msg.payload.subarray(off, off + plen)) : Buffer.alloc(0), name);
      assert.equal(out[3], 0xaa);
      assert.equal(out[4 + len], 0xaa);
    }
  });

  it('decode errors carry code and offset', () => {
    const f = SCAPY.sendOnly.frame;
    throwsWire(() => decodeIbPacket(f, 42, 42 + 11), WireErrorCode.TRUNCATED, 42);
    throwsWire(() => decodeIbPacket(f, 42, 42 + 15), WireErrorCode.TRUNCATED, 54); // no room for the ICRC
    const w = SCAPY.writeOnly.frame;
    throwsWire(() => decodeIbPacket(w, 42, 42 + 12 + 16), WireErrorCode.TRUNCATED, 54); // RETH eats the ICRC
    const bad = Buffer.from(f);
    bad[42] = 0x15; // reserved RC opcode
    throwsWire(() => decodeIbPacket(bad, 42), WireErrorCode.UNKNOWN_TYPE, 42);
    bad[42] = 0x64; // UD SEND ONLY
    throwsWire(() => decodeIbPacket(bad, 42), WireErrorCode.UNKNOWN_TYPE, 42);
    const ver = Buffer.from(f);
    ver[43] = 0x81; // TVer 1
    throwsWire(() => decodeIbPacket(ver, 42), WireErrorCode.BAD_VERSION, 43);
    throwsWire(() => decodeIbPacket(f, 42, f.length - 1), WireErrorCode.BAD_LENGTH, 42); // not a multiple of 4
    const ack = SCAPY.ack.frame;
    const longAck = Buffer.concat([ack.subarray(0, ack.length - 4), Buffer.alloc(4), ack.subarray(ack.length - 4)]);
    throwsWire(() => decodeIbPacket(longAck, 42), WireErrorCode.BAD_LENGTH, 58);
    const padSend = hex('04 30 ffff 00 000001 80 000001 0000 0000'); // PadCnt 3 but 2 bytes left
    throwsWire(() => decodeIbPacket(padSend.subarray(0, 16)), WireErrorCode.BAD_LENGTH, 1);
    throwsWire(() => decodeBth(f, 0, 11), WireErrorCode.TRUNCATED, 0);
    throwsWire(() => decodeReth(f, 0, 15), WireErrorCode.TRUNCATED, 0);
    throwsWire(() => decodeAeth(f, 0, 3), WireErrorCode.TRUNCATED, 0);
    throwsWire(() => decodeImmDt(f, 0, 3), WireErrorCode.TRUNCATED, 0);
    throwsWire(() => decodeAtomicEth(f, 0, 27), WireErrorCode.TRUNCATED, 0);
  });

  it('encode errors carry code and offset', () => {
    const bth: Bth = { opcode: 4, se: true, migReq: false, padCnt: 0, tver: 0, pkey: 0xffff, destQp: 1, ackReq: true, psn: 1 };
    const out = Buffer.alloc(64);
    throwsWire(() => encodeBth({ ...bth, opcode: 256 }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeBth({ ...bth, padCnt: 4 }, out, 0), WireErrorCode.BAD_VALUE, 1);
    throwsWire(() => encodeBth({ ...bth, tver: 16 }, out, 0), WireErrorCode.BAD_VALUE, 1);
    throwsWire(() => encodeBth({ ...bth, pkey: -1 }, out, 0), WireErrorCode.BAD_VALUE, 2);
    throwsWire(() => encodeBth({ ...bth, destQp: 0x1000000 }, out, 0), WireErrorCode.BAD_VALUE, 5);
    throwsWire(() => encodeBth({ ...bth, psn: 1.5 }, out, 0), WireErrorCode.BAD_VALUE, 9);
    throwsWire(() => encodeBth(bth, out, 60), WireErrorCode.BUFFER_TOO_SMALL, 60);
    throwsWire(() => encodeReth({ va: -1n, rkey: 0, dmaLength: 0 }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeReth({ va: 1n << 64n, rkey: 0, dmaLength: 0 }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeReth({ va: 0n, rkey: 2 ** 32, dmaLength: 0 }, out, 0), WireErrorCode.BAD_VALUE, 8);
    throwsWire(() => encodeReth({ va: 0n, rkey: 0, dmaLength: -1 }, out, 0), WireErrorCode.BAD_VALUE, 12);
    throwsWire(() => encodeReth({ va: 0n, rkey: 0, dmaLength: 0 }, out, 50), WireErrorCode.BUFFER_TOO_SMALL, 50);
    throwsWire(() => encodeAeth({ syndrome: 0x80, msn: 0 }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeAeth({ syndrome: 0, msn: 0x1000000 }, out, 0), WireErrorCode.BAD_VALUE, 1);
    throwsWire(() => encodeImmDt(2 ** 32, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeAtomicEth({ va: 0n, rkey: 0, swapAdd: -5n, compare: 0n }, out, 0), WireErrorCode.BAD_VALUE, 12);
    throwsWire(() => encodeIbPacket({ bth: { ...bth, opcode: 0x15 } }, out, 0), WireErrorCode.UNKNOWN_TYPE, 0);
    throwsWire(() => ibPacketLength({ bth: { ...bth, opcode: 0x81 } }), WireErrorCode.UNKNOWN_TYPE, 0);
    throwsWire(() => encodeIbPacket({ bth: { ...bth, opcode: 0x0a } }, out, 2), WireErrorCode.BAD_VALUE, 2); // no RETH
    throwsWire(() => encodeIbPacket({ bth, aeth: { syndrome: 0, msn: 0 } }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeIbPacket({ bth, immDt: 1 }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeIbPacket({ bth: { ...bth, opcode: 0x11 }, aeth: { syndrome: 0, msn: 0 }, payload: Buffer.alloc(4) }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeIbPacket({ bth, payload: Buffer.alloc(5) }, out, 0), WireErrorCode.BAD_VALUE, 1); // padCnt 0 for 5 bytes
    throwsWire(() => encodeIbPacket({ bth, payload: Buffer.alloc(8), payloadOffset: 4, payloadLength: 8 }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeIbPacket({ bth, payload: Buffer.alloc(8), payloadOffset: 9 }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeIbPacket({ bth, icrc: -1 }, out, 0), WireErrorCode.BAD_VALUE, 0);
    throwsWire(() => encodeIbPacket({ bth, payload: Buffer.alloc(48) }, out, 8), WireErrorCode.BUFFER_TOO_SMALL, 8);
  });

  it('accepts a plain Uint8Array payload and output', () => {
    const bth: Bth = { opcode: 4, se: false, migReq: false, padCnt: 1, tver: 0, pkey: 0xffff, destQp: 9, ackReq: false, psn: 0 };
    const out = new Uint8Array(24);
    assert.equal(encodeIbPacket({ bth, payload: new Uint8Array([1, 2, 3, 4, 5]), payloadOffset: 1, payloadLength: 3 }, out, 0), 20);
    assert.deepEqual(Array.from(out.subarray(12, 20)), [2, 3, 4, 0, 0, 0, 0, 0]);
    assert.deepEqual(decodeIbPacket(out, 0, 20).payload, { offset: 12, length: 3 });
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const u24 = fc.integer({ min: 0, max: 0xffffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
const opcodes = Object.values(IbOpcode);

const arbPacket: fc.Arbitrary<IbPacketInput> = fc
  .record({
    info: fc.constantFrom(...opcodes),
    se: fc.boolean(), migReq: fc.boolean(), ackReq: fc.boolean(),
    pkey: fc.integer({ min: 0, max: 0xffff }), destQp: u24, psn: u24,
    va: u64, rkey: u32, len: u32, syndrome: fc.integer({ min: 0, max: 0x7f }), msn: u24, imm: u32,
    swap: u64, cmp: u64, orig: u64,
    payload: fc.uint8Array({ maxLength: 300 }), icrc: u32,
  })
  .map((r) => {
    const payload = r.info.payload ? r.payload : new Uint8Array(0);
    const m: IbPacketInput = {
      bth: { opcode: r.info.value, se: r.se, migReq: r.migReq, padCnt: ibPadCount(payload.length), tver: 0, pkey: r.pkey, destQp: r.destQp, ackReq: r.ackReq, psn: r.psn },
      ...(r.info.reth ? { reth: { va: r.va, rkey: r.rkey, dmaLength: r.len } } : {}),
      ...(r.info.atomicEth ? { atomicEth: { va: r.va, rkey: r.rkey, swapAdd: r.swap, compare: r.cmp } } : {}),
      ...(r.info.aeth ? { aeth: { syndrome: r.syndrome, msn: r.msn } } : {}),
      ...(r.info.atomicAckEth ? { atomicAckEth: { origRemoteData: r.orig } } : {}),
      ...(r.info.immDt ? { immDt: r.imm } : {}),
      ...(r.info.ieth ? { ieth: r.rkey } : {}),
      payload,
      icrc: r.icrc,
    };
    return m;
  });

function encodeToBuffer(m: IbPacketInput): Buffer {
  const out = Buffer.alloc(ibPacketLength(m));
  encodeIbPacket(m, out, 0);
  return out;
}

function onlyWireErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
  }
}

describe('roce: properties', () => {
  it('decode(encode(m)) gives m back', () => {
    fc.assert(fc.property(arbPacket, (m) => {
      const buf = encodeToBuffer(m);
      const d = decodeIbPacket(buf);
      const { payload, ...rest } = m;
      const expect: Record<string, unknown> = { type: ibOpcodeInfo(m.bth.opcode)!.name, ...rest, payload: { offset: buf.length - 4 - (payload?.length ?? 0) - m.bth.padCnt, length: payload?.length ?? 0 } };
      assert.deepEqual(d, expect);
      assert.deepEqual(buf.subarray(d.payload.offset, d.payload.offset + d.payload.length), Buffer.from(payload ?? []));
    }), { numRuns: 500 });
  });

  it('random bytes only ever throw WireError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
      onlyWireErrors(() => decodeIbPacket(b));
      onlyWireErrors(() => computeIcrc(b, 0, b.length));
    }), { numRuns: 2000 });
  });

  it('mutations and truncations of valid packets decode to re-encodable packets or throw WireError', () => {
    fc.assert(fc.property(arbPacket, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (m, pos, val, cut) => {
      const buf = encodeToBuffer(m);
      buf[pos % buf.length] = val;
      for (const end of [buf.length, cut % (buf.length + 1)]) {
        try {
          const d = decodeIbPacket(buf, 0, end);
          const again = Buffer.alloc(end);
          const input: IbPacketInput = { ...d, payload: buf, payloadOffset: d.payload.offset, payloadLength: d.payload.length };
          assert.equal(encodeIbPacket(input, again, 0), end);
          assert.deepEqual(decodeIbPacket(again), { ...d, payload: d.payload });
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
        }
      }
    }), { numRuns: 1000 });
  });

  it('ICRC: fillIcrc then verifyIcrc holds and any non-masked bit flip breaks it', () => {
    fc.assert(fc.property(arbPacket, u32, u32, fc.nat(), (m, src, dst, flip) => {
      const ib = encodeToBuffer(m);
      const ip = Buffer.alloc(28 + ib.length);
      ip.set(hex('4500 0000 0000 4000 40 11 0000'), 0);
      ip.writeUInt16BE(ip.length, 2);
      ip.writeUInt32BE(src, 12);
      ip.writeUInt32BE(dst, 16);
      ip.writeUInt16BE(49152, 20);
      ip.writeUInt16BE(4791, 22);
      ip.writeUInt16BE(8 + ib.length, 24);
      ip.set(ib, 28);
      const icrc = fillIcrc(ip, 0, ip.length);
      assert.ok(verifyIcrc(ip, 0, ip.length));
      assert.equal(computeIcrcUdp4(ip, 28, ip.length, src, dst, 49152, 4791), icrc);
      const masked = new Set([1, 8, 10, 11, 26, 27, 32]);
      const i = flip % (ip.length - 4);
      if (!masked.has(i) && i !== 0 && i !== 9) { // (bytes 0 and 9: version and protocol are checked first)
        ip[i] = ip[i]! ^ 0x80;
        assert.ok(!verifyIcrc(ip, 0, ip.length));
      }
    }), { numRuns: 300 });
  });
});

