#!/usr/bin/env node
// `npm run demo` after the bootstrap (build done):
//
// 1. A real SMC-R connection between two processes on loopback: this process is the client, a child
//    process (this script with --serve) the server. Each runs one SmcEngine over its own softroce
//    device (server 127.0.0.1, client 127.0.0.2: RoCEv2 over UDP, RC in user space); the CLC
//    handshake runs on a TCP connection over 127.0.0.1. Both move data at once, check it with
//    sha256, and the demo prints each side's mode (SMCR, or TCP with the reason code) and the
//    throughput. Run as root, each side's negotiator loads the eBPF sock_ops program that puts the
//    SMC TCP option on the SYN and SYN-ACK, and each reads from the kernel whether its peer sent
//    it; without root both sides run in 'assume' mode (the peer is taken to be SMC-capable).
// 2. The capture decoder: a sample SMC-Rv2 capture written and decoded by `smcr decode`.
//
// Options: --mib N (data per direction, default 64), --no-decode (skip part 2).
import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const self = fileURLToPath(import.meta.url);
const MiB = 1024 * 1024;
const SERVER_IP = '127.0.0.1';
const CLIENT_IP = '127.0.0.2';
const BUF = 1 * MiB; // RMB and send buffer per connection

// ------------------------------------------------------------------------------------------------
// Shared by both roles

/** Deterministic payload: an AES-256-CTR keystream, so each side can check the other's bytes. */
function keystream(seed) {
  const c = createCipheriv('aes-256-ctr', createHash('sha256').update(`smc-r demo ${seed}`).digest(), Buffer.alloc(16));
  let zero = Buffer.alloc(0);
  return (n) => {
    if (zero.length < n) zero = Buffer.alloc(n);
    return c.update(zero.subarray(0, n));
  };
}

async function loadStack() {
  const [core, verbs, wire, net, sockops] = await Promise.all([
    import('@smc-r/core'), import('@smc-r/verbs'), import('@smc-r/wire'), import('@smc-r/net'), import('@smc-r/sockops'),
  ]);
  return {
    SmcEngine: core.SmcEngine, SoftRoceProvider: verbs.SoftRoceProvider, formatFallback: wire.formatFallback,
    Negotiator: net.Negotiator, dial: net.dial, answer: net.answer, sockopsAvailability: sockops.sockopsAvailability,
  };
}

/** bpf when this process may load the sock_ops program (root), else assume; with the reason. */
function negotiationMode(stack) {
  const av = stack.sockopsAvailability();
  return av.ok ? { mode: 'bpf', why: 'root: the eBPF sock_ops program writes and reads the option' } : { mode: 'assume', why: `bpf unavailable: ${av.missing}` };
}

function describeOutcome(o, formatFallback) {
  if (o.mode === 'smcr') return { mode: 'smcr', text: `SMCR v${o.version}${o.firstContact ? ' first contact' : ' (link group reused)'}` };
  return { mode: 'tcp', text: `${formatFallback(o.reason, o.peerDiagnosis)} (${o.detail})` };
}

/**
 * Moves `bytes` each way over `stream` (an SmcConnection or, after a fallback, the TCP socket):
 * writes the keystream of `sendSeed`, reads and checks the keystream of `recvSeed`, ends, waits for
 * the close. Resolves with counts, digests and the elapsed time.
 */
function transfer(stream, bytes, sendSeed, recvSeed) {
  const t0 = performance.now();
  const expect = keystream(recvSeed);
  const hIn = createHash('sha256');
  let received = 0;
  let mismatch = -1;
  let error = null;
  stream.on('error', (e) => { error ??= `${e.code ?? ''} ${e.message}`.trim(); });
  const reading = new Promise((resolve) => {
    stream.on('data', (d) => {
      hIn.update(d);
      if (mismatch < 0 && !expect(d.length).equals(d)) mismatch = received;
      received += d.length;
    });
    stream.once('end', resolve);
    stream.once('error', resolve);
    // A fallback socket comes back paused (with the CLC bytes put back): 'data' alone does not resume it.
    stream.resume();
  });
  const closed = new Promise((resolve) => stream.once('close', resolve));
  const writing = (async () => {
    const gen = keystream(sendSeed);
    const hOut = createHash('sha256');
    let sent = 0;
    while (sent < bytes && !stream.destroyed) {
      const chunk = gen(Math.min(MiB, bytes - sent));
      hOut.update(chunk);
      sent += chunk.length;
      if (!stream.write(chunk)) {
        await new Promise((r) => {
          const done = () => { stream.off('drain', done); stream.off('close', done); r(); };
          stream.on('drain', done);
          stream.on('close', done);
        });
      }
    }
    stream.end();
    return { sent, shaSent: hOut.digest('hex') };
  })();
  return Promise.all([writing, reading, closed]).then(([w]) => ({
    sent: w.sent, shaSent: w.shaSent, received, shaReceived: hIn.digest('hex'), mismatch, error,
    ms: performance.now() - t0,
  }));
}

// ------------------------------------------------------------------------------------------------
// Server role (child process): one line of JSON per event on stdout.

async function serve(cfg) {
  const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const deadline = setTimeout(() => { say({ event: 'error', error: 'server deadline (60 s) passed' }); process.exit(1); }, 60_000);
  deadline.unref();
  const stack = await loadStack();
  const { SmcEngine, SoftRoceProvider, formatFallback, Negotiator, answer } = stack;
  const negotiator = Negotiator.open({ mode: cfg.mode });
  const provider = new SoftRoceProvider({ devices: [{ name: 'demo-server', ip: SERVER_IP, port: cfg.udpPort, mtu: 4096 }] });
  const ctx = await provider.open('demo-server');
  const engine = new SmcEngine({ context: ctx, clc: { rmbSize: BUF, sndbufSize: BUF } });
  const srv = createServer();
  srv.listen(0, SERVER_IP);
  await once(srv, 'listening');
  negotiator.serve(srv);
  say({ event: 'listening', port: srv.address().port, pid: process.pid });
  const [sock] = await once(srv, 'connection');
  negotiator.unserve(srv);
  srv.close();
  const o = await answer(engine, negotiator, sock);
  say({ event: 'outcome', ...describeOutcome(o, formatFallback), peerSignalled: negotiator.stats.peerSignalled > 0 });
  const r = await transfer(o.mode === 'smcr' ? o.conn : o.socket, cfg.bytes, 2, 1);
  say({ event: 'done', ...r });
  await engine.close();
  await ctx.close();
  negotiator.close();
  process.exit(0);
}

// ------------------------------------------------------------------------------------------------
// Client role (this process) and the report.

function fmtMiB(n) {
  return `${(n / MiB).toFixed(1)} MiB`;
}

function row(cells, widths) {
  return `  ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}`;
}

async function smcrDemo(mib) {
  console.log('== 1. A real SMC-R connection between two processes on loopback (softroce) ==\n');
  let stack;
  try {
    stack = await loadStack();
  } catch (e) {
    console.log(`  skipped: the engine or the softroce provider is not built (${e.message})\n`);
    return 0;
  }
  if (typeof stack.SoftRoceProvider !== 'function') {
    console.log('  skipped: @smc-r/verbs does not export SoftRoceProvider yet\n');
    return 0;
  }
  const { SmcEngine, SoftRoceProvider, formatFallback, Negotiator, dial } = stack;
  const bytes = mib * MiB;
  const udpPort = randomInt(20000, 60000);
  const { mode, why } = negotiationMode(stack);

  const child = spawn(process.execPath, [...process.execArgv, self, '--serve', JSON.stringify({ udpPort, bytes, mode })], { stdio: ['ignore', 'pipe', 'inherit'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  killer.unref();
  const events = [];
  let wake = null;
  createInterface({ input: child.stdout }).on('line', (l) => {
    try {
      events.push(JSON.parse(l));
    } catch {
      events.push({ event: 'log', line: l });
    }
    wake?.();
  });
  const exited = once(child, 'exit');
  const next = async (name) => {
    for (;;) {
      const i = events.findIndex((e) => e.event === name || e.event === 'error');
      if (i >= 0) {
        const [e] = events.splice(i, 1);
        if (e.event === 'error') throw new Error(`server: ${e.error}`);
        return e;
      }
      const w = new Promise((r) => { wake = r; });
      const gone = exited.then(() => { throw new Error(`the server process exited before '${name}'`); });
      await Promise.race([w, gone]);
    }
  };

  let ctx;
  let engine;
  let negotiator;
  try {
    const listening = await next('listening');
    console.log(`  server  pid ${listening.pid}: softroce device ${SERVER_IP} (UDP ${udpPort}), TCP listening on ${SERVER_IP}:${listening.port}`);
    console.log(`  client  pid ${process.pid}: softroce device ${CLIENT_IP} (UDP ${udpPort}), TCP connect to ${SERVER_IP}:${listening.port}`);
    console.log(`  RMB and send buffer: ${fmtMiB(BUF)} per connection, path MTU 4096`);
    console.log(`  SMC negotiation: '${mode}' mode (${why})`);
    if (mode === 'assume') console.log('  (run as root to put the SMC TCP option on the wire through the eBPF negotiator)');

    const provider = new SoftRoceProvider({ devices: [{ name: 'demo-client', ip: CLIENT_IP, port: udpPort, mtu: 4096 }] });
    ctx = await provider.open('demo-client');
    engine = new SmcEngine({ context: ctx, clc: { rmbSize: BUF, sndbufSize: BUF } });
    negotiator = Negotiator.open({ mode });
    const t0 = performance.now();
    const { outcome: o } = await dial({ engine, negotiator, host: SERVER_IP, port: listening.port });
    const hsMs = performance.now() - t0;
    const mine = describeOutcome(o, formatFallback);
    const theirs = await next('outcome');
    if (mode === 'bpf') {
      const ps = negotiator.programStats() ?? {};
      const said = (b) => (b ? 'yes' : 'no');
      console.log(`  SMC option (kind 254, ExID E2D4C3D9): client's SYN-ACK carried it: ${said(negotiator.stats.peerSignalled > 0)}; server's SYN carried it: ${said(theirs.peerSignalled)}`);
      console.log(`  sock_ops program counters (client): ${Object.entries(ps).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' ') || 'none'}`);
    }
    console.log('');
    console.log(`  client mode: ${mine.text}`);
    console.log(`  server mode: ${theirs.text}`);
    console.log(`  handshake: ${hsMs.toFixed(1)} ms (${mine.mode === 'smcr' ? 'TCP + CLC + RoCE link bring-up' : 'TCP + CLC until the fallback'})\n`);

    console.log(`  moving ${fmtMiB(bytes)} each way at once over ${mine.mode === 'smcr' ? 'SMC-R (RDMA WRITEs into the peer\'s RMB)' : 'the TCP fallback'} ...`);
    const c = await transfer(mine.mode === 'smcr' ? o.conn : o.socket, bytes, 1, 2);
    const s = await next('done');
    const widths = [7, 12, 12, 10, 14];
    console.log('');
    console.log(row(['side', 'sent', 'received', 'time', 'throughput'], widths));
    for (const [name, r] of [['client', c], ['server', s]]) {
      const mbps = ((r.sent + r.received) / 1e6 / (r.ms / 1000)).toFixed(1);
      console.log(row([name, fmtMiB(r.sent), fmtMiB(r.received), `${(r.ms / 1000).toFixed(2)} s`, `${mbps} MB/s`], widths));
    }
    const upOk = c.shaSent === s.shaReceived && s.mismatch < 0 && s.received === bytes;
    const downOk = s.shaSent === c.shaReceived && c.mismatch < 0 && c.received === bytes;
    console.log(`\n  sha256 client -> server: ${upOk ? 'match' : 'MISMATCH'}   server -> client: ${downOk ? 'match' : 'MISMATCH'}`);
    for (const [name, r] of [['client', c], ['server', s]]) if (r.error) console.log(`  ${name} stream error: ${r.error}`);
    if (mine.mode === 'smcr') {
      const lgr = [...engine.lgrs][0];
      if (lgr) console.log(`  link group ${lgr.id} (${lgr.role}, SMC-Rv${lgr.version}), LLC messages sent ${lgr.counters.llcSent}, received ${lgr.counters.llcReceived}`);
      const stats = ctx.stats;
      if (stats && typeof stats === 'object') {
        console.log(`  client device: ${stats.txPackets} packets out, ${stats.rxPackets} in, ${stats.retransmissions} retransmissions`);
      }
    }
    await exited;
    console.log('');
    return upOk && downOk && !c.error && !s.error ? 0 : 1;
  } catch (e) {
    console.log(`\n  demo failed: ${e.stack ?? e}\n`);
    child.kill('SIGKILL');
    return 1;
  } finally {
    clearTimeout(killer);
    await engine?.close().catch(() => {});
    await ctx?.close().catch(() => {});
    negotiator?.close();
  }
}

function decodeDemo() {
  console.log('== 2. Decoding a capture: smcr sample + smcr decode ==');
  const smcr = join(root, 'packages', 'cli', 'bin', 'smcr.js');
  const dir = mkdtempSync(join(tmpdir(), 'smcr-demo-'));
  const pcap = join(dir, 'sample-smcr-v2.pcap');
  try {
    for (const args of [['sample', pcap], ['decode', pcap]]) {
      console.log(`\n$ smcr ${args.join(' ')}`);
      const r = spawnSync(process.execPath, [smcr, ...args], { stdio: 'inherit' });
      if (r.status !== 0) {
        console.error(`smcr ${args[0]} failed with exit ${r.status}`);
        return r.status ?? 1;
      }
    }
    console.log('\nThe same file can be opened with tshark or Wireshark; note that tshark 4.0 cannot decode the');
    console.log('SMC-Rv2 LLC messages (it reads their little-endian length big-endian), smcr decode can.');
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--serve') {
  serve(JSON.parse(argv[1])).catch((e) => {
    process.stdout.write(`${JSON.stringify({ event: 'error', error: e.stack ?? String(e) })}\n`);
    process.exit(1);
  });
} else {
  const i = argv.indexOf('--mib');
  const mib = i >= 0 ? Number(argv[i + 1]) : 64;
  if (!Number.isInteger(mib) || mib < 1 || mib > 4096) {
    console.error('usage: demo.mjs [--mib N (1..4096)] [--no-decode]');
    process.exit(2);
  }
  const code = await smcrDemo(mib);
  const code2 = argv.includes('--no-decode') ? 0 : decodeDemo();
  process.exit(code || code2);
}
