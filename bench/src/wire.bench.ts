/**
 * Codec micro-benchmarks: encode/decode ops/s for CDC, LLC and the CLC Proposal, each next to a
 * 44-byte Buffer.copy baseline measured in the same run, plus bytes allocated per op on the hot
 * paths. Benchmark.js picks the iteration counts; we report medians and percentiles of its samples.
 */
import Benchmark from 'benchmark';
import {
  decodeCdc, decodeCdcInto, encodeCdc, newCdcFields, decodeLlc, encodeLlc, llcLength, clcLength, decodeClc, encodeClc,
  type CdcMessage, type ClcMessage, type LlcMessage,
} from '@smc-r/wire';
import { summarize } from './stats.js';

export interface BenchRow {
  name: string;
  opsPerSec: number;
  medianNs: number;
  p5Ns: number;
  p95Ns: number;
  rmePct: number;
  vsCopy: number;
}

const CDC: CdcMessage = {
  type: 'cdc', seqno: 7, token: 0x0a01,
  prod: { wrap: 1, count: 4096 }, cons: { wrap: 1, count: 1024 },
  writeBlocked: false, urgDataPending: false, urgDataPresent: false, consCursUpdReq: false, failoverValidation: false,
  peerDoneWriting: false, peerConnClosed: false, peerConnAbort: false, credits: 0,
};

const GID = Buffer.from('00000000000000000000ffff0a000001', 'hex');
const MAC = Buffer.from('020000000001', 'hex');
const CONFIRM_LINK: LlcMessage = {
  type: 'confirm_link', v2: false, resp: false, flags: 0x03, noRmbeEyec: true,
  senderMac: MAC, senderGid: GID, senderQpn: 0x000123, linkNum: 1, linkUid: Buffer.from('00000101', 'hex'), maxLinks: 2, maxConns: 0,
};

/** What a Linux client sends for SMC-Rv1 + SMC-Rv2 with one UEID (164 bytes, spec 3.3.5). */
const PROPOSAL: ClcMessage = {
  type: 'proposal', eyecatcher: 'SMCR', version: 2, typev1: 'R', typev2: 'R',
  peerId: Buffer.from('9c3eb8cef6123456', 'hex'), gid: Buffer.from('fe80000000000000bacef6fffe123456', 'hex'), mac: MAC, ipAreaOffset: 40,
  smcdArea: { ismGid: 0n, ismChid: 0, vendorOui: 0, vendorOptions: Buffer.alloc(5) },
  ipPrefix: { subnet: Buffer.from('0a000000', 'hex'), prefixLen: 24, ipv6Prefixes: [] },
  v2Ext: { release: 1, seid: false, roceGid: GID, maxConns: 255, maxLinks: 2, featureMask: 0, ueids: ['SMCV2-DEFAULT-UEID'] },
};

/** Hot-path operations, shared with the allocation check. */
export function hotOps(): Record<string, () => void> {
  const buf = Buffer.alloc(64);
  const out = newCdcFields();
  encodeCdc(CDC, buf, 0);
  const llcBuf = Buffer.alloc(llcLength(CONFIRM_LINK));
  encodeLlc(CONFIRM_LINK, llcBuf, 0);
  return {
    'CDC encode': () => { encodeCdc(CDC, buf, 0); },
    'CDC decodeInto': () => { decodeCdcInto(buf, 0, 44, out); },
    'LLC encode (CONFIRM_LINK)': () => { encodeLlc(CONFIRM_LINK, llcBuf, 0); },
  };
}

export function runWireBench(extra: Record<string, () => void> = {}): Promise<BenchRow[]> {
  const cdcBuf = Buffer.alloc(44);
  encodeCdc(CDC, cdcBuf, 0);
  const llcBuf = Buffer.alloc(llcLength(CONFIRM_LINK));
  encodeLlc(CONFIRM_LINK, llcBuf, 0);
  const propBuf = Buffer.alloc(clcLength(PROPOSAL));
  encodeClc(PROPOSAL, propBuf, 0);
  if (propBuf.length !== 164) throw new Error(`Proposal is ${propBuf.length} bytes, expected 164`);
  const src = Buffer.alloc(44, 1);
  const dst = Buffer.alloc(44);
  let sink: unknown;

  const ops: Record<string, () => void> = {
    'baseline: Buffer.copy 44 B': () => { src.copy(dst, 0, 0, 44); },
    ...hotOps(),
    'CDC decode (new object)': () => { sink = decodeCdc(cdcBuf, 0, 44); },
    'LLC decode (CONFIRM_LINK)': () => { sink = decodeLlc(llcBuf, 0, llcBuf.length); },
    'CLC Proposal encode (164 B)': () => { encodeClc(PROPOSAL, propBuf, 0); },
    'CLC Proposal decode (164 B)': () => { sink = decodeClc(propBuf, 0, propBuf.length); },
    ...extra,
  };

  return new Promise((resolve) => {
    const suite = new Benchmark.Suite('wire');
    for (const [name, fn] of Object.entries(ops)) suite.add(name, fn, { minSamples: 30 });
    suite.on('complete', function (this: Benchmark.Suite) {
      void sink;
      const benches = this.map((b: Benchmark) => b) as Benchmark[];
      const baseline = benches.find((b) => String(b.name).startsWith('baseline'))!;
      resolve(benches.map((b) => {
        const s = summarize(b.stats.sample);
        return { name: String(b.name), opsPerSec: b.hz, ...s, rmePct: b.stats.rme, vsCopy: b.hz / baseline.hz };
      }));
    });
    suite.run({ async: false });
  });
}
