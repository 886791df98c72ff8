/**
 * TCP stream reassembly for reading captures: segments are grouped by 4-tuple into streams (a new
 * SYN on a used 4-tuple opens a new stream), ordered per direction by sequence number from the
 * SYN's ISN, and handed out as in-order payload chunks tagged with the frame they came from.
 * Retransmitted and overlapping bytes are delivered once (first copy wins). Bytes the capture
 * missed are reported as a `gap` event, never skipped silently: when the peer acknowledges past
 * them, when too much data waits behind them, or at `flush()`.
 *
 * Chunks are views into the dissected frames (`Packet.data`), so they live as long as the frames.
 */
import type { Packet } from './packet.js';
import { TcpFlag } from './packet.js';

export interface TcpEndpoint {
  readonly addr: string;
  readonly port: number;
}

export interface TcpStream {
  /** 0-based, in order of first appearance (like Wireshark's tcp.stream). */
  readonly id: number;
  /** Sender of the SYN (direction 0), or of the first segment seen when there was no SYN. */
  readonly client: TcpEndpoint;
  readonly server: TcpEndpoint;
  /** No SYN was seen: roles and sequence origins are guessed from the first segments. */
  readonly midstream: boolean;
  readonly firstFrame: number;
  /** Segments whose bytes had all been delivered already, per direction. */
  readonly retransmissions: readonly [number, number];
  /** Segments that arrived ahead of a hole, per direction. */
  readonly outOfOrder: readonly [number, number];
}

/** 0 = client to server, 1 = server to client. */
export type TcpDirection = 0 | 1;

export type TcpEvent =
  | { readonly kind: 'open'; readonly stream: TcpStream; readonly frameIndex: number }
  | {
    readonly kind: 'data'; readonly stream: TcpStream; readonly direction: TcpDirection; readonly frameIndex: number;
    /** Offset of the first byte in this direction's byte stream (0 = first byte after the SYN). */
    readonly offset: number;
    readonly data: Buffer;
  }
  | {
    readonly kind: 'gap'; readonly stream: TcpStream; readonly direction: TcpDirection; readonly frameIndex: number;
    readonly offset: number;
    readonly length: number;
  }
  | { readonly kind: 'fin'; readonly stream: TcpStream; readonly direction: TcpDirection; readonly frameIndex: number; readonly offset: number }
  | { readonly kind: 'rst'; readonly stream: TcpStream; readonly direction: TcpDirection; readonly frameIndex: number };

export interface TcpReassemblerOptions {
  /** Out-of-order bytes buffered per direction before the hole in front of them is declared a gap (default 16 MiB). */
  readonly maxBufferedBytes?: number;
}

interface Segment {
  readonly rel: number;
  /** Payload bytes on the wire. */
  readonly len: number;
  /** Captured payload (shorter than `len` when the frame was cut by the snap length). */
  readonly data: Buffer;
  readonly fin: boolean;
  readonly frameIndex: number;
}

interface Direction {
  started: boolean;
  /** Absolute sequence number of the next expected byte. */
  nextAbs: number;
  /** The same position as an offset in the byte stream (a JS number: no 32-bit wrap). */
  nextRel: number;
  pending: Segment[];
  pendingBytes: number;
  finDone: boolean;
  isn: number | undefined;
}

interface State {
  readonly stream: TcpStream & { retransmissions: [number, number]; outOfOrder: [number, number] };
  readonly dirs: [Direction, Direction];
}

const newDirection = (): Direction => ({ started: false, nextAbs: 0, nextRel: 0, pending: [], pendingBytes: 0, finDone: false, isn: undefined });

const SYN = TcpFlag.SYN.value;
const ACK = TcpFlag.ACK.value;
const FIN = TcpFlag.FIN.value;
const RST = TcpFlag.RST.value;

export class TcpReassembler {
  readonly #max: number;
  readonly #byKey = new Map<string, State>();
  readonly #all: State[] = [];

  constructor(options: TcpReassemblerOptions = {}) {
    this.#max = options.maxBufferedBytes ?? 16 * 1024 * 1024;
  }

  /** Every stream seen so far, by id. */
  get streams(): readonly TcpStream[] {
    return this.#all.map((s) => s.stream);
  }

  /**
   * Feeds one dissected frame; returns the events it causes (new stream, in-order data, gaps,
   * FIN, RST). Frames without a TCP layer (or IP fragments) are ignored.
   */
  push(frameIndex: number, pkt: Packet): TcpEvent[] {
    const { ip, tcp } = pkt;
    if (ip === undefined || tcp === undefined) return [];
    const events: TcpEvent[] = [];
    const src: TcpEndpoint = { addr: ip.src, port: tcp.sport };
    const dst: TcpEndpoint = { addr: ip.dst, port: tcp.dport };
    const a = `${src.addr}|${src.port}`;
    const b = `${dst.addr}|${dst.port}`;
    const key = a < b ? `${a}|${b}` : `${b}|${a}`;
    const flags = tcp.flags;
    const isSyn = (flags & SYN) !== 0;
    let st = this.#byKey.get(key);
    if (st !== undefined && isSyn && (flags & ACK) === 0) {
      const fromClient = sameEndpoint(st.stream.client, src);
      if (!(fromClient && st.dirs[0].isn === tcp.seq)) st = undefined; // not a retransmitted SYN: a new connection
    }
    if (st === undefined) {
      const synAck = isSyn && (flags & ACK) !== 0;
      const stream = {
        id: this.#all.length,
        client: synAck ? dst : src,
        server: synAck ? src : dst,
        midstream: !isSyn,
        firstFrame: frameIndex,
        retransmissions: [0, 0] as [number, number],
        outOfOrder: [0, 0] as [number, number],
      };
      st = { stream, dirs: [newDirection(), newDirection()] };
      this.#all.push(st);
      this.#byKey.set(key, st);
      events.push({ kind: 'open', stream, frameIndex });
    }
    const dir: TcpDirection = sameEndpoint(st.stream.client, src) ? 0 : 1;
    const d = st.dirs[dir];
    if ((flags & RST) !== 0) {
      events.push({ kind: 'rst', stream: st.stream, direction: dir, frameIndex });
      return events;
    }
    if (!d.started) {
      d.started = true;
      d.nextAbs = isSyn ? (tcp.seq + 1) >>> 0 : tcp.seq;
      d.nextRel = 0;
      if (isSyn) d.isn = tcp.seq;
    }
    const dataSeq = isSyn ? (tcp.seq + 1) >>> 0 : tcp.seq;
    const rel = d.nextRel + ((dataSeq - d.nextAbs) | 0);
    const fin = (flags & FIN) !== 0;
    const len = tcp.segmentLength;
    if (len > 0 || fin) {
      if (rel + len + (fin ? 1 : 0) <= d.nextRel) {
        st.stream.retransmissions[dir]++;
      } else {
        if (rel > d.nextRel) st.stream.outOfOrder[dir]++;
        const data = pkt.data.subarray(tcp.payload.offset, tcp.payload.offset + Math.min(tcp.payload.length, len));
        insert(d, { rel, len, data, fin, frameIndex });
        this.#drain(st, dir, events);
        while (d.pendingBytes > this.#max && d.pending.length > 0) this.#skipTo(st, dir, d.pending[0]!.rel, frameIndex, events);
      }
    }
    if ((flags & ACK) !== 0) {
      const o = st.dirs[1 - dir]!;
      if (o.started) {
        const ackRel = o.nextRel + ((tcp.ack - o.nextAbs) | 0);
        if (ackRel > o.nextRel) {
          // The peer got bytes we never saw: they were lost by the capture, not by the network.
          const stop = o.pending.length > 0 ? Math.min(ackRel, o.pending[0]!.rel) : ackRel;
          this.#skipTo(st, (1 - dir) as TcpDirection, stop, frameIndex, events);
        }
      }
    }
    return events;
  }

  /** End of capture: reports the holes still open and delivers what waited behind them. */
  flush(): TcpEvent[] {
    const events: TcpEvent[] = [];
    for (const st of this.#all) {
      for (const dir of [0, 1] as const) {
        const d = st.dirs[dir];
        while (d.pending.length > 0) this.#skipTo(st, dir, d.pending[0]!.rel, d.pending[0]!.frameIndex, events);
      }
    }
    return events;
  }

  /** Declares `[nextRel, to)` missing, then delivers what became in order. */
  #skipTo(st: State, dir: TcpDirection, to: number, frameIndex: number, events: TcpEvent[]): void {
    const d = st.dirs[dir];
    if (to > d.nextRel) {
      events.push({ kind: 'gap', stream: st.stream, direction: dir, frameIndex, offset: d.nextRel, length: to - d.nextRel });
      advance(d, to - d.nextRel);
    }
    this.#drain(st, dir, events);
  }

  #drain(st: State, dir: TcpDirection, events: TcpEvent[]): void {
    const d = st.dirs[dir];
    while (d.pending.length > 0 && d.pending[0]!.rel <= d.nextRel) {
      const seg = d.pending.shift()!;
      d.pendingBytes -= seg.data.length;
      const segEnd = seg.rel + seg.len;
      const capturedEnd = seg.rel + seg.data.length;
      if (capturedEnd > d.nextRel) {
        const data = seg.data.subarray(d.nextRel - seg.rel);
        events.push({ kind: 'data', stream: st.stream, direction: dir, frameIndex: seg.frameIndex, offset: d.nextRel, data });
        advance(d, data.length);
      }
      if (segEnd > d.nextRel) {
        // Cut by the snap length: the bytes were on the wire but are not in the capture.
        events.push({ kind: 'gap', stream: st.stream, direction: dir, frameIndex: seg.frameIndex, offset: d.nextRel, length: segEnd - d.nextRel });
        advance(d, segEnd - d.nextRel);
      }
      if (seg.fin && !d.finDone && segEnd === d.nextRel) {
        d.finDone = true;
        events.push({ kind: 'fin', stream: st.stream, direction: dir, frameIndex: seg.frameIndex, offset: d.nextRel });
        advance(d, 1);
      }
    }
  }
}

function sameEndpoint(e: TcpEndpoint, f: TcpEndpoint): boolean {
  return e.port === f.port && e.addr === f.addr;
}

function advance(d: Direction, n: number): void {
  d.nextRel += n;
  d.nextAbs = (d.nextAbs + n) >>> 0;
}

/** Inserts by start offset, after any segment with the same start (first copy wins). */
function insert(d: Direction, seg: Segment): void {
  let i = d.pending.length;
  while (i > 0 && d.pending[i - 1]!.rel > seg.rel) i--;
  d.pending.splice(i, 0, seg);
  d.pendingBytes += seg.data.length;
}
