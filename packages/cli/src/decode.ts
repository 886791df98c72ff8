/**
 * The engine of `smcr decode`: turns bytes (hex or a capture) into a list of decoded SMC items.
 * Pure apart from nothing: the command module does the reading and printing.
 *
 * From a capture it finds the SMC TCP option in SYN / SYN-ACK, CLC messages in reassembled TCP
 * streams (from the first byte of each direction, as the kernel expects them), and RoCEv2 packets
 * on the RoCE UDP port, with LLC / CDC messages inside SEND payloads and every ICRC verified.
 */
import {
  ClcReader, WireError, clcLength, decodeIbPacket, decodeLinkMessage, findSmcOption, isSmcOption, parseTcpOptions,
  peekClcHeader, verifyIcrc, IbOpcode, describeAethSyndrome, llcTypeByte, llcTypeInfo, formatGid,
  type ClcMessage, type CdcMessage, type IbPacket, type LlcMessage, type TcpOption,
} from '@smc-r/wire';
import {
  TcpReassembler, dissect, formatTcpFlags, readCapture, TcpFlag,
  type Packet, type TcpEvent,
} from '@smc-r/capture';

/** RoCEv2's IANA UDP port. */
export const ROCE_V2_PORT = 4791;

export type ItemKind = 'tcp-option' | 'clc' | 'roce' | 'llc' | 'cdc' | 'error' | 'note';

/** One thing found in the input. `message` is the codec's decoded object (or undefined). */
export interface DecodedItem {
  /** 1-based frame number (as Wireshark counts) when the input is a capture. */
  frame?: number;
  /** `10.0.0.1:40000 > 10.0.0.2:5555` style endpoints, when known. */
  flow?: string;
  kind: ItemKind;
  /** One line for humans. */
  summary: string;
  message?: object;
  /** For errors: the WireError/CaptureError code and offset. */
  error?: { code: string; message: string; offset?: number };
}

export interface DecodeOptions {
  /** UDP ports carrying RoCEv2 (default [4791]). */
  rocePorts?: readonly number[];
}

// ---------------------------------------------------------------- summaries

const CLC_NAMES = { proposal: 'Proposal', accept: 'Accept', confirm: 'Confirm', decline: 'Decline' } as const;

function clcSummary(m: ClcMessage, length: number): string {
  const r = m as ClcMessage & { firstContact?: boolean; outOfSync?: boolean; peerDiagnosis?: number };
  let s = `CLC ${CLC_NAMES[m.type]} v${m.version} (${length} bytes)`;
  if (r.firstContact) s += ' first contact';
  if (r.outOfSync) s += ' out of sync';
  if (m.type === 'decline' && typeof r.peerDiagnosis === 'number') s += ` reason 0x${r.peerDiagnosis.toString(16).padStart(8, '0')}`;
  return s;
}

function llcSummary(m: LlcMessage): string {
  const info = llcTypeInfo(llcTypeByte(m));
  const name = info ? info.name.replace(/^SMC_LLC_/, '') : m.type.toUpperCase();
  return `LLC ${name}${m.v2 ? ' (v2 link group)' : ''} ${m.resp ? 'response' : 'request'}`;
}

function cdcSummary(m: CdcMessage): string {
  const flags: string[] = [];
  if (m.writeBlocked) flags.push('write_blocked');
  if (m.urgDataPending) flags.push('urg_pending');
  if (m.urgDataPresent) flags.push('urg_present');
  if (m.consCursUpdReq) flags.push('cons_upd_req');
  if (m.failoverValidation) flags.push('failover');
  if (m.peerDoneWriting) flags.push('done_writing');
  if (m.peerConnClosed) flags.push('closed');
  if (m.peerConnAbort) flags.push('abort');
  return `CDC seq=${m.seqno} token=0x${m.token.toString(16).padStart(8, '0')} prod=${m.prod.wrap}:${m.prod.count} cons=${m.cons.wrap}:${m.cons.count}${flags.length ? ` [${flags.join(' ')}]` : ''}`;
}

function opcodeName(op: number): string {
  for (const info of Object.values(IbOpcode)) if (info.value === op) return info.name;
  return `opcode 0x${op.toString(16)}`;
}

function roceSummary(p: IbPacket, icrcOk: boolean | undefined): string {
  let s = `RoCEv2 ${opcodeName(p.bth.opcode)} QP 0x${p.bth.destQp.toString(16).padStart(6, '0')} PSN ${p.bth.psn}`;
  if (p.reth) s += ` va=0x${p.reth.va.toString(16)} rkey=0x${p.reth.rkey.toString(16)} len=${p.reth.dmaLength}`;
  if (p.aeth) s += ` ${describeAethSyndrome(p.aeth.syndrome).text} MSN ${p.aeth.msn}`;
  if (p.payload.length > 0) s += ` payload ${p.payload.length} B`;
  if (icrcOk !== undefined) s += icrcOk ? ' ICRC ok' : ' ICRC BAD';
  return s;
}

function errorItem(err: unknown, base: Partial<DecodedItem>, what: string): DecodedItem {
  const e = err as { code?: string; message?: string; offset?: number };
  const code = typeof e.code === 'string' ? e.code : 'ERR_UNKNOWN';
  const error: NonNullable<DecodedItem['error']> = { code, message: e.message ?? String(err) };
  if (typeof e.offset === 'number') error.offset = e.offset;
  return { ...base, kind: 'error', summary: `${what}: ${error.message}`, error };
}

// ---------------------------------------------------------------- raw bytes

/** Decodes one SEND payload as an LLC or CDC message. */
export function decodeLinkPayload(buf: Buffer, off: number, end: number, base: Partial<DecodedItem> = {}): DecodedItem {
  try {
    const m = decodeLinkMessage(buf, off, end);
    if (m.type === 'cdc') return { ...base, kind: 'cdc', summary: cdcSummary(m), message: m };
    return { ...base, kind: 'llc', summary: llcSummary(m), message: m };
  } catch (err) {
    return errorItem(err, base, 'not an LLC/CDC message');
  }
}

/** Decodes every CLC message in a byte stream (one direction of a CLC socket). */
export function decodeClcStream(buf: Buffer, base: Partial<DecodedItem> = {}): DecodedItem[] {
  const reader = new ClcReader();
  const items: DecodedItem[] = [];
  try {
    for (const m of reader.push(buf)) items.push({ ...base, kind: 'clc', summary: clcSummary(m, clcLengthOf(m)), message: m });
    const rest = reader.takeRemaining();
    if (rest.length > 0) items.push({ ...base, kind: 'note', summary: `${rest.length} trailing bytes are not a complete CLC message` });
  } catch (err) {
    items.push(errorItem(err, base, 'CLC'));
  }
  return items;
}

/** Decodes a TCP options block (as in a SYN), marking the SMC option. */
export function decodeTcpOptions(buf: Buffer, off: number, end: number, base: Partial<DecodedItem> = {}): DecodedItem[] {
  try {
    const opts = parseTcpOptions(buf, off, end);
    return opts.map((o) => optionItem(o, base));
  } catch (err) {
    return [errorItem(err, base, 'TCP options')];
  }
}

function optionItem(o: TcpOption, base: Partial<DecodedItem>): DecodedItem {
  const smc = isSmcOption(o);
  const summary = smc
    ? `TCP option SMC (kind 254, length ${o.length}, ExID 0xe2d4c3d9)`
    : `TCP option kind ${o.kind}${o.length > 1 ? `, length ${o.length}` : ''}`;
  return { ...base, kind: 'tcp-option', summary, message: { smc, ...o } };
}

type HexKind = 'auto' | 'clc' | 'link' | 'tcp-options' | 'roce';

/**
 * Decodes raw bytes. `auto` picks CLC when the bytes start with a CLC eyecatcher, a link message
 * (LLC / CDC) when the first byte is a link-message type, else a TCP options block.
 */
export function decodeBytes(buf: Buffer, kind: HexKind = 'auto'): DecodedItem[] {
  let k = kind;
  if (k === 'auto') {
    let clc = false;
    try { clc = buf.length >= 4 && peekClcHeader(buf, 0, buf.length) !== undefined; } catch { clc = false; }
    if (clc || (buf.length >= 4 && buf.readUInt32BE(0) >>> 8 === 0xe2d4c3)) k = 'clc';
    else if (buf.length >= 44 && (buf[0] === 0xfe || llcTypeInfo(buf[0]!) !== undefined)) k = 'link';
    else k = 'tcp-options';
  }
  switch (k) {
    case 'clc': return decodeClcStream(buf);
    case 'link': return [decodeLinkPayload(buf, 0, buf.length)];
    case 'tcp-options': return decodeTcpOptions(buf, 0, buf.length);
    case 'roce': return decodeRoce(buf, 0, buf.length, undefined, {});
    default: { const never: never = k; throw new Error(`unknown kind ${String(never)}`); }
  }
}

// ---------------------------------------------------------------- captures

function decodeRoce(data: Buffer, off: number, end: number, icrcOk: boolean | undefined, base: Partial<DecodedItem>): DecodedItem[] {
  let p: IbPacket;
  try {
    p = decodeIbPacket(data, off, end);
  } catch (err) {
    return [errorItem(err, base, 'RoCEv2')];
  }
  const items: DecodedItem[] = [{ ...base, kind: 'roce', summary: roceSummary(p, icrcOk), message: p }];
  const op = p.bth.opcode;
  // SMC puts LLC and CDC messages in RC SEND ONLY (4) and SEND ONLY with immediate (5) packets.
  if ((op === IbOpcode.SEND_ONLY.value || op === IbOpcode.SEND_ONLY_IMM.value) && p.payload.length > 0) {
    items.push(decodeLinkPayload(data, p.payload.offset, p.payload.offset + p.payload.length, base));
  }
  return items;
}

interface StreamState {
  readers: [ClcReader, ClcReader];
  /** false once a direction carried non-CLC bytes or finished CLC (application data follows). */
  clc: [boolean, boolean];
}

function endpoint(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** Whether a CLC direction is over: after Confirm (client) / Accept+Confirm done, or any Decline. */
function endsClc(m: ClcMessage): boolean {
  return m.type === 'decline' || m.type === 'confirm';
}

/**
 * Decodes a pcap or pcapng file's bytes. Frames that fail to dissect are reported, never thrown.
 */
export function decodeCapture(file: Buffer, opts: DecodeOptions = {}): DecodedItem[] {
  const rocePorts = new Set(opts.rocePorts ?? [ROCE_V2_PORT]);
  const items: DecodedItem[] = [];
  const reasm = new TcpReassembler();
  const streams = new Map<number, StreamState>();

  const onTcpEvent = (ev: TcpEvent): void => {
    if (ev.kind === 'open') {
      streams.set(ev.stream.id, { readers: [new ClcReader(), new ClcReader()], clc: [true, true] });
      return;
    }
    const st = streams.get(ev.stream.id);
    if (st === undefined || ev.kind === 'rst' || ev.kind === 'fin') return;
    const dir = ev.direction;
    if (!st.clc[dir]) return;
    const [from, to] = dir === 0 ? [ev.stream.client, ev.stream.server] : [ev.stream.server, ev.stream.client];
    const base = { frame: ev.frameIndex + 1, flow: `${endpoint(from.addr, from.port)} > ${endpoint(to.addr, to.port)}` };
    if (ev.kind === 'gap') {
      st.clc[dir] = false;
      items.push({ ...base, kind: 'note', summary: `TCP gap of ${ev.length} bytes: CLC decoding of this direction stops` });
      return;
    }
    if (ev.stream.midstream) { st.clc[dir] = false; return; }
    const reader = st.readers[dir];
    try {
      for (const m of reader.push(ev.data)) {
        items.push({ ...base, kind: 'clc', summary: clcSummary(m, clcLengthOf(m)), message: m });
        if (endsClc(m)) {
          st.clc[dir] = false;
          // The peer stops too once it saw a Decline or sent its last CLC message.
          if (m.type === 'decline') st.clc[dir === 0 ? 1 : 0] = false;
          break;
        }
      }
    } catch (err) {
      // Not CLC: a plain TCP connection (or the peer echoed the option): stop looking.
      st.clc[dir] = false;
      if (reader.takeRemaining().length > 0 && (err as WireError).code === 'ERR_SMC_WIRE_BAD_EYECATCHER') return;
      items.push(errorItem(err, base, 'CLC'));
    }
  };

  let records;
  try {
    records = readCapture(file);
  } catch (err) {
    return [errorItem(err, {}, 'capture')];
  }
  try {
    for (const rec of records) {
      const frame = rec.index + 1;
      let pkt: Packet;
      try {
        pkt = dissect(rec.data, rec.linkType);
      } catch (err) {
        items.push(errorItem(err, { frame }, 'frame'));
        continue;
      }
      const { ip, tcp, udp } = pkt;
      if (ip && tcp) {
        const flow = `${endpoint(ip.src, tcp.sport)} > ${endpoint(ip.dst, tcp.dport)}`;
        if ((tcp.flags & TcpFlag.SYN.value) !== 0) {
          const smc = tcp.optionsError === undefined ? findSmcOption(tcp.options) : undefined;
          const what = `TCP ${formatTcpFlags(tcp.flags)}`;
          if (tcp.optionsError) items.push(errorItem(tcp.optionsError, { frame, flow }, `${what} options`));
          else items.push({
            frame, flow, kind: 'tcp-option',
            summary: `${what} ${smc ? 'with SMC option (kind 254, ExID 0xe2d4c3d9)' : 'without SMC option'}`,
            message: { smc: smc !== undefined, options: tcp.options },
          });
        }
        for (const ev of reasm.push(rec.index, pkt)) onTcpEvent(ev);
      } else if (ip && udp && (rocePorts.has(udp.dport))) {
        const flow = `${endpoint(ip.src, udp.sport)} > ${endpoint(ip.dst, udp.dport)}`;
        let icrcOk: boolean | undefined;
        try {
          icrcOk = verifyIcrc(rec.data, ip.offset, udp.payload.offset + udp.payload.length);
        } catch {
          icrcOk = undefined;
        }
        items.push(...decodeRoce(rec.data, udp.payload.offset, udp.payload.offset + udp.payload.length, icrcOk, { frame, flow }));
      }
    }
  } catch (err) {
    items.push(errorItem(err, {}, 'capture'));
  }
  for (const ev of reasm.flush()) onTcpEvent(ev);
  return items;
}

function clcLengthOf(m: ClcMessage): number {
  return clcLength(m);
}

/** Formats a GID for summaries (re-exported for the command). */
export { formatGid };
