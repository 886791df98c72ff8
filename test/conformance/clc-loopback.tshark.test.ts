/**
 * Every CLC sample (plus one Linux-layout IPv6 Proposal) over a real loopback TCP connection,
 * captured with tcpdump and decoded twice: by tshark 4.0.17 (compared field by field with what we
 * sent, oracles.md 4 / 5) and by our own stack (@smc-r/capture's reader, dissector and TCP
 * reassembler + our ClcReader).
 *
 * Proposals and Confirms go client -> server, Accepts and Declines server -> client, one write
 * per message except one write carrying two Proposals and one Confirm split over two writes, so
 * both tshark's PDU framing and our reassembly are exercised.
 *
 * Quirks asserted exactly (oracles.md 6): the RFC 7609 Proposal layout (iparea_offset 0) is
 * misdecoded (6.1; the short IPv4 form is marked Malformed); v2.1 fields, vendor options and
 * Alibaba's init_credits appear only as smc.reserved (6.4), whose bytes must equal our encoding;
 * the field names shared between Proposal / Accept / Confirm (6.3).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireOrSkip, tsharkJson, type TsharkFrame } from '../support/tools.js';
import { SAMPLES } from '../../packages/wire/src/testing/clc-samples.js';
import { dissect, readCapture, TcpReassembler } from '@smc-r/capture';
import { ClcReader, clcToBuffer, decodeClc, type ClcMessage, type ClcProposal } from '@smc-r/wire';
import { assertFields, assertPinnedTshark, colonHex, flattenFields, frameNumber, layersOf, smcPdus, smcRaw } from './support/tshark.js';
import { expectedClcFields, isRfc7609Proposal, tsharkMarksMalformed } from './support/clc-fields.js';
import { Tcpdump, sleep } from '../support/tcpdump.js';

type Side = 'client' | 'server';

interface Sent {
  readonly index: number;
  readonly name: string;
  readonly msg: ClcMessage;
  readonly bytes: Buffer;
}

interface Write {
  readonly from: Side;
  /** Written one after the other with a pause, so each leaves in its own segment. */
  readonly parts: Buffer[];
  readonly msgs: Sent[];
}

/** Which side sends a message kind (spec 3.6.1; Declines here from the server). */
const sender = (m: ClcMessage): Side => (m.type === 'proposal' || m.type === 'confirm' ? 'client' : 'server');

/**
 * Beyond the samples: a Linux-layout Proposal with IPv6 prefixes (the only IPv6 Proposal sample uses
 * the RFC 7609 layout, whose prefix area tshark cannot show), so tshark's IPv6 prefix fields are checked.
 */
function extraMessages(): { name: string; msg: ClcMessage }[] {
  const base = SAMPLES.find((s) => s.name === 'proposal v2 header smc-rv1 only')?.msg;
  assert.ok(base !== undefined && base.type === 'proposal', 'clc-samples has "proposal v2 header smc-rv1 only"');
  const prefix = (hex: string, prefixLen: number) => ({ prefix: Buffer.from(hex, 'hex'), prefixLen });
  const msg: ClcProposal = {
    ...base,
    ipPrefix: {
      subnet: Buffer.alloc(4), prefixLen: 0,
      ipv6Prefixes: [prefix('20010db8000100000000000000000000', 64), prefix('fd123456789a00010000000000000000', 56)],
    },
  };
  return [{ name: 'extra: proposal v2 header smc-rv1, two IPv6 prefixes (linux layout)', msg }];
}

/** The write script: handshake order, one message per write, plus the two framing cases. */
function script(): Write[] {
  const sent: Sent[] = [...SAMPLES, ...extraMessages()].map((s, index) => ({ index, name: s.name, msg: s.msg, bytes: clcToBuffer(s.msg) }));
  const of = (t: ClcMessage['type']) => sent.filter((s) => s.msg.type === t);
  const [P, A, C, D] = [of('proposal'), of('accept'), of('confirm'), of('decline')];
  assert.ok(P.length >= 2 && A.length >= 1 && C.length >= 1 && D.length >= 1, 'clc-samples has every kind');
  const one = (s: Sent): Write => ({ from: sender(s.msg), parts: [s.bytes], msgs: [s] });
  const pair = P.slice(-2);
  const split = C[0]!;
  return [
    ...P.slice(0, -2).map(one),
    { from: 'client', parts: [Buffer.concat(pair.map((s) => s.bytes))], msgs: pair }, // two messages, one write
    one(A[0]!),
    { from: 'client', parts: [split.bytes.subarray(0, 30), split.bytes.subarray(30)], msgs: [split] }, // split
    ...A.slice(1).map(one),
    ...C.slice(1).map(one),
    ...D.map(one),
  ];
}

/** One SMC PDU tshark decoded, with the frame it belongs to. */
interface Pdu {
  readonly frame: TsharkFrame;
  readonly frameNo: number;
  readonly from: Side;
  readonly fields: ReturnType<typeof flattenFields>;
  readonly raw: Buffer;
  readonly pdusInFrame: number;
}

describe('conformance: CLC over loopback TCP vs tshark and our capture reader', function () {
  this.timeout(20_000);
  let dir = '';
  let pcap = '';
  let port = 0;
  let capture: Tcpdump | undefined;
  let server: net.Server | undefined;
  const sockets: net.Socket[] = [];
  let writes: Write[] = [];
  const sentBy: Record<Side, Sent[]> = { client: [], server: [] };
  let pdus: Pdu[] = [];

  before(async function () {
    requireOrSkip(this, { tools: ['tshark', 'tcpdump'], root: true });
    assertPinnedTshark();
    dir = mkdtempSync(join(tmpdir(), 'smcr-conf-clc-'));
    pcap = join(dir, 'clc.pcap');
    writes = script();
    for (const w of writes) sentBy[w.from].push(...w.msgs);

    // Listen on port 0 first: the port is ours before tcpdump filters on it.
    server = net.createServer();
    await new Promise<void>((resolve, reject) => { server!.once('error', reject); server!.listen(0, '127.0.0.1', resolve); });
    port = (server.address() as net.AddressInfo).port;
    capture = new Tcpdump(pcap, 'lo', `tcp port ${port}`);
    await capture.start();

    const accepted = new Promise<net.Socket>((resolve) => server!.once('connection', resolve));
    const client = net.connect({ port, host: '127.0.0.1', noDelay: true });
    sockets.push(client);
    await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
    const srv = await accepted;
    sockets.push(srv);
    srv.setNoDelay(true);
    const received: Record<Side, Buffer[]> = { client: [], server: [] };
    client.on('data', (c: Buffer) => received.client.push(c));
    srv.on('data', (c: Buffer) => received.server.push(c));

    for (const w of writes) {
      const sock = w.from === 'client' ? client : srv;
      for (const [k, part] of w.parts.entries()) {
        if (k > 0) await sleep(40);
        sock.write(part);
      }
      await sleep(15);
    }
    // Everything arrived, byte for byte, before the connection is closed.
    const total = (s: Side) => sentBy[s].reduce((n, x) => n + x.bytes.length, 0);
    for (let t = 0; t < 100 && (Buffer.concat(received.server).length < total('client') || Buffer.concat(received.client).length < total('server')); t++) await sleep(10);
    assert.deepEqual(Buffer.concat(received.server), Buffer.concat(sentBy.client.map((s) => s.bytes)));
    assert.deepEqual(Buffer.concat(received.client), Buffer.concat(sentBy.server.map((s) => s.bytes)));
    const closed = Promise.all([client, srv].map((s) => new Promise((r) => s.once('close', r))));
    client.end();
    srv.end();
    await closed;
    await new Promise((r) => server!.close(r));
    server = undefined;
    await capture.stop();

    const frames = tsharkJson(pcap, ['-o', 'tcp.try_heuristic_first:TRUE', '-Y', 'smc']);
    pdus = frames.flatMap((frame) => {
      const tcp = layersOf(frame)['tcp'] as Record<string, string>;
      const from: Side = Number(tcp['tcp.srcport']) === port ? 'server' : 'client';
      const list = smcPdus(frame);
      const raws = smcRaw(frame);
      assert.equal(raws.length, list.length, 'one smc_raw per PDU');
      const frameNo = frameNumber(frame);
      return list.map((p, i) => ({ frame, frameNo, from, fields: flattenFields(p), raw: raws[i]!, pdusInFrame: list.length }));
    });
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    if (server !== undefined) server.close();
    await capture?.stop(); // idempotent: kills our tcpdump if the test failed half-way
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds every message we sent, in order per direction, covering exactly our bytes (smc_raw)', () => {
    for (const side of ['client', 'server'] as const) {
      const got = pdus.filter((p) => p.from === side).map((p) => p.raw.toString('hex'));
      assert.deepEqual(got, sentBy[side].map((s) => s.bytes.toString('hex')), `${side} -> peer`);
    }
  });

  it('shows every CLC field with our values (Proposal, Accept, Confirm, Decline rows of oracles.md 5)', () => {
    for (const side of ['client', 'server'] as const) {
      const got = pdus.filter((p) => p.from === side);
      sentBy[side].forEach((s, i) => assertFields(got[i]!.fields, expectedClcFields(s.msg, s.bytes), s.name));
    }
  });

  it('reassembles a message split over two segments and decodes two messages from one segment', () => {
    const pairWrite = writes.find((w) => w.msgs.length === 2)!;
    const splitWrite = writes.find((w) => w.parts.length === 2)!;
    const pair = pdus.filter((p) => pairWrite.msgs.some((s) => s.bytes.equals(p.raw)));
    assert.equal(pair.length, 2);
    assert.equal(pair[0]!.frameNo, pair[1]!.frameNo, 'both PDUs in one frame');
    assert.equal(pair[0]!.pdusInFrame, 2);
    const split = pdus.filter((p) => p.raw.equals(splitWrite.msgs[0]!.bytes));
    assert.equal(split.length, 1, 'the split message is decoded once, from the reassembled PDU');
  });

  it('quirk 6.1: the RFC 7609 Proposal layout is misdecoded (no prefix area; the short IPv4 form is Malformed)', () => {
    const rfc = sentBy.client.filter((s) => isRfc7609Proposal(s.msg));
    assert.ok(rfc.length >= 1, 'clc-samples has an RFC 7609 Proposal');
    for (const s of rfc) {
      const p = pdus.find((x) => x.raw.equals(s.bytes))!;
      assert.equal(p.fields['smc.outgoing.interface.subnet.mask'], undefined, `${s.name}: tshark found the subnet; fixed?`);
      assert.equal(p.fields['smc.proposal.ipv6.prefix.count'], undefined, s.name);
      assert.equal(layersOf(p.frame)['_ws.malformed'] !== undefined, tsharkMarksMalformed(s.msg, s.bytes), `${s.name}: Malformed`);
      if (s.bytes.length < 80) {
        // What it shows instead of the IPv4 prefix area: our trailer, as two "reserved" halves.
        assert.deepEqual(p.fields['smc.reserved'], [colonHex(s.bytes.subarray(-4, -2)), colonHex(s.bytes.subarray(-2))]);
      }
    }
    // Every other frame decodes cleanly.
    for (const p of pdus) {
      const s = sentBy[p.from].find((x) => x.bytes.equals(p.raw))!;
      if (!isRfc7609Proposal(s.msg)) assert.equal(layersOf(p.frame)['_ws.malformed'], undefined, s.name);
    }
  });

  it('quirk 6.4: v2.1 fields, vendor options and init_credits appear only as smc.reserved, with our bytes', () => {
    let checked = 0;
    for (const side of ['client', 'server'] as const) {
      for (const s of sentBy[side]) {
        const reserved = pdus.find((p) => p.raw.equals(s.bytes))!.fields['smc.reserved'] ?? [];
        const m = s.msg;
        const expectReserved = (want: Buffer, what: string): void => {
          assert.ok(reserved.includes(colonHex(want)), `${s.name}: ${what} ${colonHex(want)} not among smc.reserved ${JSON.stringify(reserved)}`);
          checked++;
        };
        if (m.type === 'proposal' && m.smcdArea !== undefined && !isRfc7609Proposal(m)) {
          // Bytes 52-79: vendor OUI (BE24), 5 vendor option bytes, 20 reserved (spec 3.3.3).
          const v = Buffer.alloc(28);
          v.writeUIntBE(m.smcdArea.vendorOui, 0, 3);
          m.smcdArea.vendorOptions.copy(v, 3);
          expectReserved(v, 'vendor OUI / options');
        }
        if (m.type === 'proposal' && m.v2Ext !== undefined) {
          // v2 extension bytes 24-39: max_conns, max_links, feature_mask (BE16), 12 reserved (spec 3.3.4).
          const v = Buffer.alloc(16);
          v[0] = m.v2Ext.maxConns;
          v[1] = m.v2Ext.maxLinks;
          v.writeUInt16BE(m.v2Ext.featureMask, 2);
          expectReserved(v, 'v2.1 max_conns / max_links / feature_mask');
        }
        if (m.type === 'accept' || m.type === 'confirm') {
          expectReserved(Buffer.from([m.initCredits]), 'byte 51 (init_credits)');
          const f = m.fce;
          if (f !== undefined && f.maxConns !== undefined) {
            // FCE bytes 36-51: max_conns, max_links, feature_mask (BE16), vendor options (BE32), 8 reserved.
            const v = Buffer.alloc(16);
            v[0] = f.maxConns;
            v[1] = f.maxLinks!;
            v.writeUInt16BE(f.featureMask!, 2);
            v.writeUInt32BE(f.vendorOptions!, 4);
            expectReserved(v, 'FCE v2.1 fields + vendor options');
          }
        }
      }
    }
    assert.ok(checked >= 6, `only ${checked} reserved-area checks ran`);
  });

  it('our capture reader, TCP reassembler and ClcReader decode the same messages from the pcap', () => {
    const reasm = new TcpReassembler();
    const readers: [ClcReader, ClcReader] = [new ClcReader(), new ClcReader()];
    const got: Record<Side, ClcMessage[]> = { client: [], server: [] };
    const spans: { dir: 0 | 1; offset: number; length: number; frame: number }[] = [];
    const feed = (dir: 0 | 1, data: Buffer): void => {
      let chunk = data;
      for (;;) {
        const r = readers[dir];
        got[dir === 0 ? 'client' : 'server'].push(...r.push(chunk));
        if (!r.done) return;
        // A Decline ends a CLC exchange (the reader stops); this test sends more, so start over.
        chunk = r.takeRemaining();
        readers[dir] = new ClcReader();
        if (chunk.length === 0) return;
      }
    };
    for (const rec of readCapture(readFileSync(pcap))) {
      for (const ev of reasm.push(rec.index, dissect(rec.data, rec.linkType))) {
        assert.notEqual(ev.kind, 'gap', 'the capture lost bytes');
        if (ev.kind === 'data') {
          spans.push({ dir: ev.direction, offset: ev.offset, length: ev.data.length, frame: rec.index });
          feed(ev.direction, ev.data);
        }
      }
    }
    for (const ev of reasm.flush()) assert.notEqual(ev.kind, 'gap');
    assert.equal(reasm.streams.length, 1);
    assert.equal(reasm.streams[0]!.server.port, port);
    for (const r of readers) assert.equal(r.bufferedLength, 0, 'no partial message left');
    for (const side of ['client', 'server'] as const) {
      assert.deepEqual(got[side], sentBy[side].map((s) => s.msg), `${side}: decoded messages`);
      // Same sequence as tshark's PDUs.
      assert.deepEqual(got[side].map((m) => clcToBuffer(m).toString('hex')), pdus.filter((p) => p.from === side).map((p) => p.raw.toString('hex')));
    }
    // The two framing cases really happened on the wire.
    const at = (side: Side, s: Sent): number => {
      let off = 0;
      for (const x of sentBy[side]) { if (x === s) return off; off += x.bytes.length; }
      return -1;
    };
    const segOf = (dir: 0 | 1, byte: number) => spans.find((sp) => sp.dir === dir && byte >= sp.offset && byte < sp.offset + sp.length)!;
    const split = writes.find((w) => w.parts.length === 2)!.msgs[0]!;
    const s0 = at('client', split);
    assert.notEqual(segOf(0, s0).frame, segOf(0, s0 + split.bytes.length - 1).frame, 'split message spans two segments');
    const [p1, p2] = writes.find((w) => w.msgs.length === 2)!.msgs;
    assert.equal(segOf(0, at('client', p1!)).frame, segOf(0, at('client', p2!) + p2!.bytes.length - 1).frame, 'pair in one segment');
    // decodeClc agrees with ClcReader on every raw PDU tshark delimited.
    for (const p of pdus) decodeClc(p.raw);
  });
});
