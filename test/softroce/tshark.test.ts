/**
 * softroce on the wire, checked with tcpdump + tshark (oracles.md 3) and our own ICRC check.
 *
 * Two agent processes on 127.0.0.1 and 127.0.0.2, each started through pmtu-launcher so that its
 * device socket has IP_PMTUDISC_DO (Linux then sends IP ID 0 + DF, the header softroce computes
 * its ICRC over). B's receive queue is filled only 60 ms after the run starts (RNR NAKs), and B
 * drops 3% of its incoming datagrams with the seeded test hook (PSN sequence error NAKs and
 * retransmissions; the capture on lo still sees the dropped datagrams). A's data QP starts 12
 * PSNs before the 24-bit wrap. The transfer covers every packet kind softroce emits: SEND
 * FIRST/MIDDLE/LAST/ONLY (+ with immediate), RDMA WRITE FIRST/MIDDLE/LAST/ONLY (+ with immediate),
 * RDMA READ request and responses FIRST/MIDDLE/LAST/ONLY, ACK, NAK, RNR NAK.
 *
 * tshark runs with the RPC-over-RDMA heuristic disabled: it throws on tiny SEND payloads.
 *
 * Asserted on every captured RoCEv2 frame: the ICRC verifies over the real IP packet
 * (verifyIcrc), with IP ID 0 and DF; tshark's infiniband.invariant.crc equals the trailer read
 * big-endian; the DestQP is a QP of the receiving side (requests and responses each to the right
 * one). Per requester stream: the first PSN is the QP's initial sqPsn and first occurrences of
 * PSNs go up by the packets each request takes, across the wrap. RETH va / r_key / dmalen of
 * every WRITE FIRST/ONLY and READ request equal what was posted (from the plan); AETH syndromes
 * include ACK, NAK 0x60 and RNR NAK, and MSNs never go down per stream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dissect, readCapture } from '@smc-r/capture';
import { verifyIcrc } from '@smc-r/wire';
import { fieldValues, requireOrSkip, tsharkJson, type TsharkFrame } from '../support/tools.js';
import { agentArgs, killAllChildren, RpcChild, runChild } from './support/child.js';
import { buildLauncher, LAUNCHER_FD, type Launcher } from './support/launcher.js';
import { softroceMissing } from './support/providers.js';
import { connectPair, MiB, transferBothWays } from './support/scenario.js';
import { Tcpdump } from '../support/tcpdump.js';
import { makePlan, readRanges, addAddr, type EndpointInfo, type PlanParams } from './support/transfer.js';
import type { OpenArgs } from './support/agent-core.js';

const A_IP = '127.0.0.1';
const B_IP = '127.0.0.2';
const SLOT = 64 * 1024;
const PSN_A_OUT = 0xffffff - 11;
const PSN_A_IN = 0x000100;
const PSN_B_OUT = 0x7ffff0;
const PSN_B_IN = 0x123456;
const READS = 6;
const READ_MAX = 16 * 1024;

/** RC opcodes (IBA Table 38) we expect, by name. */
const OPC = {
  SEND_FIRST: 0, SEND_MIDDLE: 1, SEND_LAST: 2, SEND_LAST_IMM: 3, SEND_ONLY: 4, SEND_ONLY_IMM: 5,
  WRITE_FIRST: 6, WRITE_MIDDLE: 7, WRITE_LAST: 8, WRITE_LAST_IMM: 9, WRITE_ONLY: 10, WRITE_ONLY_IMM: 11,
  READ_REQUEST: 12, READ_RESP_FIRST: 13, READ_RESP_MIDDLE: 14, READ_RESP_LAST: 15, READ_RESP_ONLY: 16, ACK: 17,
} as const;
const isRequest = (op: number): boolean => op <= 12;
const isReadResponse = (op: number): boolean => op >= 13 && op <= 16;

interface Frame {
  index: number;
  src: string;
  dst: string;
  ipId: number;
  df: boolean;
  icrcOk: boolean;
  trailerBe: string;
  opcode: number;
  destqp: number;
  psn: number;
  reth?: { va: string; rkey: number; dmalen: number };
  aeth?: { syndrome: number; msn: number };
  tsharkCrc: string[];
}

function one(layer: unknown, name: string): string {
  const v = fieldValues(layer, name);
  if (v.length === 0) throw new Error(`tshark field ${name} missing`);
  return v[0]!;
}

function openB(): OpenArgs {
  return {
    devices: [{ name: 'sr-b', ip: B_IP, fd: LAUNCHER_FD }],
    device: 'sr-b',
    providerOptions: { testHooks: { dropIncoming: 0.03, seed: 4242 }, maxAckTimeoutMs: 20 },
    peer: { slots: 2, slotSize: SLOT, readSize: SLOT, readSeed: 99, psnOut: PSN_B_OUT, psnIn: PSN_B_IN, lateRecvMs: 60 },
  };
}

function openA(): OpenArgs {
  return {
    devices: [{ name: 'sr-a', ip: A_IP, fd: LAUNCHER_FD }],
    device: 'sr-a',
    providerOptions: { maxAckTimeoutMs: 20 },
    peer: { slots: 2, slotSize: SLOT, readSize: SLOT, readSeed: 77, psnOut: PSN_A_OUT, psnIn: PSN_A_IN },
  };
}

/** Expected RETH (va hex, rkey, dmalen) of every WRITE FIRST/ONLY the sender of `plan` posts to `target`. */
function expectedWrites(plan: PlanParams, target: EndpointInfo): Set<string> {
  const out = new Set<string>();
  for (const m of makePlan(plan)) {
    if (m.mode !== 'write_send' && m.mode !== 'write_imm') continue;
    const [hi, lo] = addAddr(target.target.hi, target.target.lo, (m.n % target.slots) * target.slotSize);
    out.add(`${hex64(hi, lo)}/${target.target.rkey}/${m.size}`);
  }
  return out;
}

function expectedReads(seed: number, region: EndpointInfo): Set<string> {
  const out = new Set<string>();
  for (const [off, len] of readRanges(seed, READS, READ_MAX, region.readRegion.length)) {
    const [hi, lo] = addAddr(region.readRegion.hi, region.readRegion.lo, off);
    out.add(`${hex64(hi, lo)}/${region.readRegion.rkey}/${len}`);
  }
  return out;
}

function hex64(hi: number, lo: number): string {
  return `0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
}

describe('softroce: every packet kind on the wire (tcpdump + tshark + ICRC)', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  let launcher: Launcher | undefined;
  let dump: Tcpdump | undefined;

  before(function () {
    requireOrSkip(this, { tools: ['tcpdump', 'tshark', 'clang'], root: true });
    const why = softroceMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
  });

  after(async () => {
    killAllChildren();
    await dump?.stop();
    launcher?.cleanup();
    // SMCR_KEEP_CAPTURE=1 keeps the pcap for inspection (its path is printed).
    if (dir !== undefined && process.env['SMCR_KEEP_CAPTURE'] === '1') process.stdout.write(`      capture kept in ${dir}\n`);
    else if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('SEND/WRITE/READ/ACK/NAK/RNR NAK: opcodes, RETH, AETH, PSNs, DestQP and every ICRC', async () => {
    dir = mkdtempSync(join(tmpdir(), 'smcr-softroce-tshark-'));
    const pcap = join(dir, 'roce.pcap');
    launcher = buildLauncher();
    dump = new Tcpdump(pcap, 'lo', 'udp port 4791');
    await dump.start();

    const a = new RpcChild(runChild(launcher.argv(A_IP, 4791, process.execPath, agentArgs()), 50_000, `agent@${A_IP}`));
    const b = new RpcChild(runChild(launcher.argv(B_IP, 4791, process.execPath, agentArgs()), 50_000, `agent@${B_IP}`));
    const { infoA, infoB, mtuBytes } = await connectPair(a, b, openA(), openB());
    const r = await transferBothWays(a, b, mtuBytes, {
      seedA: 31, seedB: 32, count: 28, maxSize: SLOT, reads: READS, readMaxLen: READ_MAX, runTimeoutMs: 30_000,
    });
    await Promise.all([a.close(), b.close()]);
    await dump.stop();
    const kernelDrops = /(\d+) packets? dropped by kernel/.exec(dump.stderr);
    assert.equal(kernelDrops?.[1], '0', `tcpdump lost packets, the capture is incomplete: ${dump.stderr.trim()}`);
    assert.ok((r.statsB['hookDropsRx'] ?? 0) > 0, 'the hook dropped something at B');
    assert.ok((r.statsB['naksSent'] ?? 0) > 0, 'B sent PSN sequence error NAKs');
    assert.ok((r.statsB['rnrNaksSent'] ?? 0) > 0, 'B sent RNR NAKs');

    // ---- our own dissection: every frame's ICRC over the captured IP packet
    const frames: Frame[] = [];
    for (const rec of readCapture(readFileSync(pcap))) {
      const p = dissect(rec.data, rec.linkType);
      assert.ok(p.ip !== undefined && p.udp !== undefined && p.ip.version === 4, `frame ${rec.index + 1} is not IPv4/UDP`);
      assert.ok(p.udp.dport === 4791, `frame ${rec.index + 1}: UDP dport ${p.udp.dport}`);
      const ipStart = p.ip.offset;
      const ipEnd = ipStart + p.ip.totalLength;
      assert.equal(ipEnd, rec.data.length, `frame ${rec.index + 1}: capture holds the whole IP packet`);
      const bth = p.udp.payload.offset;
      frames.push({
        index: rec.index + 1,
        src: p.ip.src,
        dst: p.ip.dst,
        ipId: p.ip.id,
        df: p.ip.df,
        icrcOk: verifyIcrc(rec.data, ipStart, ipEnd),
        trailerBe: `0x${rec.data.subarray(ipEnd - 4, ipEnd).toString('hex')}`,
        opcode: rec.data[bth]!,
        destqp: rec.data.readUIntBE(bth + 5, 3),
        psn: rec.data.readUIntBE(bth + 9, 3),
        tsharkCrc: [],
      });
    }
    assert.ok(frames.length > 500, `only ${frames.length} frames captured`);
    const badIcrc = frames.filter((f) => !f.icrcOk);
    assert.deepEqual(badIcrc.map((f) => f.index), [], 'frames whose ICRC does not verify over the captured IP packet');
    assert.deepEqual(frames.filter((f) => f.ipId !== 0 || !f.df).map((f) => f.index), [], 'IP ID 0 and DF on every frame');

    // ---- tshark's view, frame by frame
    // The RPC-over-RDMA payload heuristic throws on SENDs of 1..8 bytes ("Malformed Packet:
    // RPCoRDMA") and the ICRC item is then missing (oracles.md 3): it is switched off.
    const tf: TsharkFrame[] = tsharkJson(pcap, ['--disable-heuristic', 'rpcrdma_infiniband']);
    assert.equal(tf.length, frames.length);
    for (let i = 0; i < tf.length; i++) {
      const f = frames[i]!;
      assert.equal(tf[i]!._source.layers['_ws.malformed'], undefined, `frame ${f.index}: tshark says malformed`);
      const ib = tf[i]!._source.layers['infiniband'];
      assert.ok(ib !== undefined, `frame ${f.index}: not decoded as InfiniBand`);
      assert.equal(Number(one(ib, 'infiniband.bth.opcode')), f.opcode, `frame ${f.index}: opcode`);
      assert.equal(Number(one(ib, 'infiniband.bth.destqp')), f.destqp, `frame ${f.index}: destqp`);
      assert.equal(Number(one(ib, 'infiniband.bth.psn')), f.psn, `frame ${f.index}: psn`);
      f.tsharkCrc = fieldValues(ib, 'infiniband.invariant.crc');
      assert.deepEqual(f.tsharkCrc, [f.trailerBe], `frame ${f.index}: tshark's ICRC is the trailer read big-endian`);
      if (fieldValues(ib, 'infiniband.reth.va').length > 0) {
        f.reth = { va: one(ib, 'infiniband.reth.va'), rkey: Number(one(ib, 'infiniband.reth.r_key')), dmalen: Number(one(ib, 'infiniband.reth.dmalen')) };
      }
      if (fieldValues(ib, 'infiniband.aeth.syndrome').length > 0) {
        f.aeth = { syndrome: Number(one(ib, 'infiniband.aeth.syndrome')), msn: Number(one(ib, 'infiniband.aeth.msn')) };
      }
    }

    // ---- opcodes: every kind present
    const seen = new Set(frames.map((f) => f.opcode));
    for (const [name, op] of Object.entries(OPC)) assert.ok(seen.has(op), `no ${name} (${op}) frame`);
    const acks = frames.filter((f) => f.opcode === OPC.ACK);
    const kinds = new Set(acks.map((f) => f.aeth!.syndrome >> 5));
    assert.ok(kinds.has(0), 'ACK syndrome');
    assert.ok(kinds.has(1), 'RNR NAK syndrome (01x xxxx)');
    assert.ok(acks.some((f) => f.aeth!.syndrome === 0x60), 'NAK PSN sequence error (0x60)');
    assert.ok(acks.every((f) => [0, 1, 3].includes(f.aeth!.syndrome >> 5)), 'no reserved AETH kind');

    // ---- DestQP: each side only addresses the other side's QPs, requests and responses the right ones
    const qpsOf = (i: EndpointInfo): number[] => [i.qpnIn, i.qpnOut];
    for (const f of frames) {
      const [to, from] = f.dst === A_IP ? [infoA, infoB] : [infoB, infoA];
      assert.ok(qpsOf(to).includes(f.destqp), `frame ${f.index}: destqp 0x${f.destqp.toString(16)} is not a QP of ${f.dst}`);
      if (f.opcode === OPC.READ_REQUEST || (f.opcode >= OPC.WRITE_FIRST && f.opcode <= OPC.WRITE_ONLY_IMM)) {
        assert.equal(f.destqp, to.qpnIn, `frame ${f.index}: WRITE/READ requests go to the peer's data-in QP`);
      }
      if (isReadResponse(f.opcode)) assert.equal(f.destqp, to.qpnOut, `frame ${f.index}: READ responses go to the reader's out QP`);
      void from;
    }

    // ---- PSNs per requester stream (destination QP): first occurrences start at the initial
    // sqPsn and advance by the packets each request takes, through the 24-bit wrap.
    // Both processes number their QPs alike, so a stream is (destination address, DestQP).
    const streams: [string, string, number, number][] = [
      ['A.out -> B.in', B_IP, infoB.qpnIn, PSN_A_OUT], ['B.in -> A.out (credits)', A_IP, infoA.qpnOut, PSN_B_IN],
      ['B.out -> A.in', A_IP, infoA.qpnIn, PSN_B_OUT], ['A.in -> B.out (credits)', B_IP, infoB.qpnOut, PSN_A_IN],
    ];
    let wrapped = false;
    for (const [name, dst, qpn, initial] of streams) {
      const reqs = frames.filter((f) => f.dst === dst && f.destqp === qpn && isRequest(f.opcode));
      assert.ok(reqs.length > 0, `${name}: no requests`);
      assert.equal(reqs[0]!.psn, initial, `${name}: first PSN is the initial sqPsn`);
      // Positions relative to the initial PSN, so comparisons work across the wrap. A request
      // whose PSN lies below the next new one is a retransmission, or a READ re-issued from a
      // lost response on (IBA 9.7.4.1.3: new RETH, PSN inside the original READ's span).
      const rel = (psn: number): number => (psn - initial) & 0xffffff;
      let expectNext = initial;
      for (const f of reqs) {
        if (rel(f.psn) < rel(expectNext)) continue;
        assert.equal(f.psn, expectNext, `${name}: frame ${f.index} new PSN ${f.psn}, expected ${expectNext}`);
        if (f.psn === 0xffffff) wrapped = true;
        const span = f.opcode === OPC.READ_REQUEST ? Math.max(1, Math.ceil(f.reth!.dmalen / mtuBytes)) : 1;
        expectNext = (f.psn + span) & 0xffffff;
      }
    }
    assert.ok(wrapped, 'A.out crossed the 24-bit PSN wrap');

    // ---- RETH of every WRITE FIRST/ONLY and READ request is what the plan posted
    // A READ re-issued after a lost response asks for the tail of the original: same rkey and
    // end address, start moved by whole MTUs.
    const check = (label: string, got: Frame[], expected: Set<string>, tails: boolean): void => {
      const exp = [...expected].map((e) => { const [va, rkey, len] = e.split('/'); return { va: BigInt(va!), rkey: Number(rkey), len: Number(len), key: e }; });
      const seenKeys = new Set<string>();
      for (const f of got) {
        const va = BigInt(f.reth!.va);
        const key = `${f.reth!.va}/${f.reth!.rkey}/${f.reth!.dmalen}`;
        if (expected.has(key)) { seenKeys.add(key); continue; }
        const tail = tails && exp.some((e) => e.rkey === f.reth!.rkey && va > e.va && va + BigInt(f.reth!.dmalen) === e.va + BigInt(e.len) && (va - e.va) % BigInt(mtuBytes) === 0n);
        assert.ok(tail, `${label}: frame ${f.index} RETH ${key} was never posted`);
      }
      assert.deepEqual(exp.map((e) => e.key).filter((k) => !seenKeys.has(k)), [], `${label}: posted but never on the wire`);
    };
    const retHolders = (src: string, ops: number[]): Frame[] => frames.filter((f) => f.src === src && ops.includes(f.opcode));
    check('WRITE A->B', retHolders(A_IP, [OPC.WRITE_FIRST, OPC.WRITE_ONLY, OPC.WRITE_ONLY_IMM]), expectedWrites(r.planA, infoB), false);
    check('WRITE B->A', retHolders(B_IP, [OPC.WRITE_FIRST, OPC.WRITE_ONLY, OPC.WRITE_ONLY_IMM]), expectedWrites(r.planB, infoA), false);
    check('READ A<-B', retHolders(A_IP, [OPC.READ_REQUEST]), expectedReads(r.planA.seed + 7, infoB), true);
    check('READ B<-A', retHolders(B_IP, [OPC.READ_REQUEST]), expectedReads(r.planB.seed + 7, infoA), true);
    for (const f of frames) {
      if (f.opcode === OPC.WRITE_MIDDLE || f.opcode === OPC.WRITE_LAST || f.opcode === OPC.WRITE_LAST_IMM) assert.equal(f.reth, undefined, `frame ${f.index}: RETH only on FIRST/ONLY`);
    }

    // ---- AETH: MSN never decreases per responder stream
    for (const [dst, qpn] of [[A_IP, infoA.qpnIn], [A_IP, infoA.qpnOut], [B_IP, infoB.qpnIn], [B_IP, infoB.qpnOut]] as const) {
      let last = -1;
      for (const f of frames) {
        if (f.dst !== dst || f.destqp !== qpn || f.aeth === undefined || (f.aeth.syndrome >> 5) !== 0) continue;
        assert.ok(f.aeth.msn >= last, `frame ${f.index}: MSN ${f.aeth.msn} after ${last} toward QP 0x${qpn.toString(16)}`);
        last = f.aeth.msn;
      }
    }
    process.stdout.write(`      ${frames.length} frames, opcodes ${[...seen].sort((x, y) => x - y).join(',')}; B: ${r.statsB.hookDropsRx} hook drops, ${r.statsB.naksSent} NAKs, ${r.statsB.rnrNaksSent} RNR NAKs; A: ${r.statsA.retransmissions} retransmissions\n`);
    void MiB;
  });
});
