/**
 * Codec micro-benchmarks: encode/decode ops/s for CDC, LLC and the CLC Proposal, each next to a
 * 44-byte Buffer.copy baseline measured in the same run, plus bytes allocated per op on the hot
 * paths. Benchmark.js picks the iteration counts; we report medians and percentiles of its samples.
 */
import Benchmark from 'benchmark';
import {
  decodeCdc, decodeCdcInto, encodeCdc, newCdcFields, decodeLlc, encodeLlc, llcLength,
  type CdcMessage, type LlcMessage,
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
  const src = Buffer.alloc(44, 1);
  const dst = Buffer.alloc(44);
  let sink: unknown;

  const ops: Record<string, () => void> = {
    'baseline: Buffer.copy 44 B': () => { src.copy(dst, 0, 0, 44); },
    ...hotOps(),
    'CDC decode (new object)': () => { sink = decodeCdc(cdcBuf, 0, 44); },
    'LLC decode (CONFIRM_LINK)': () => { sink = decodeLlc(llcBuf, 0, llcBuf.length); },
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
