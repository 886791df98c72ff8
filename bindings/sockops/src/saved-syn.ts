/**
 * BPF-free, unprivileged server-side detection (bpf-eval.md 1.5): TCP_SAVE_SYN on the listener
 * makes the kernel keep each client's SYN (IP + TCP headers); TCP_SAVED_SYN on the accepted socket
 * returns it once (the kernel frees it on that read). Its TCP options are parsed with
 * @smc-r/wire's decoder. This cannot add the option to anything: it only tells a server whether
 * the client offered SMC.
 */
import type { Server, Socket } from 'node:net';
import { hasSmcOption, parseTcpOptions, WireError, type TcpOption } from '@smc-r/wire';
import { SockopsError, SockopsErrorCode } from './errors.js';
import { serverFd, socketFd } from './fd.js';
import { getsockoptBytes, nativeBuffer, setsockoptInt, SyscallError } from './libc.js';

const IPPROTO_TCP = 6;
/** linux/tcp.h */
const TCP_SAVE_SYN = 27;
const TCP_SAVED_SYN = 28;

const IPV6_HEADER = 40;
const TCP_HEADER_MIN = 20;
/** IPv6 extension headers a SYN may carry before TCP (RFC 8200 4.1). */
const NH_HOP_BY_HOP = 0;
const NH_ROUTING = 43;
const NH_FRAGMENT = 44;
const NH_AH = 51;
const NH_DEST_OPTS = 60;

/** Where the TCP header and its options lie in a saved SYN. */
export interface SavedSynTcp {
  readonly tcpOffset: number;
  readonly flags: number;
  readonly options: TcpOption[];
}

/**
 * Finds the TCP header in a saved SYN (an IPv4 or IPv6 header, with extension headers, then TCP;
 * the form TCP_SAVE_SYN=1 saves) and parses its options. Returns undefined when the bytes are not
 * an IP packet carrying TCP, or are truncated; throws WireError for a malformed option block.
 */
export function parseSavedSyn(syn: Uint8Array): SavedSynTcp | undefined {
  if (syn.length < 1) return undefined;
  const version = syn[0]! >> 4;
  let off: number;
  if (version === 4) {
    const ihl = (syn[0]! & 0x0f) * 4;
    if (ihl < 20 || syn.length < ihl || syn[9] !== IPPROTO_TCP) return undefined;
    off = ihl;
  } else if (version === 6) {
    if (syn.length < IPV6_HEADER) return undefined;
    let next = syn[6]!;
    off = IPV6_HEADER;
    for (;;) {
      if (next === IPPROTO_TCP) break;
      if (off + 2 > syn.length) return undefined;
      let len: number;
      if (next === NH_HOP_BY_HOP || next === NH_ROUTING || next === NH_DEST_OPTS) len = (syn[off + 1]! + 1) * 8;
      else if (next === NH_FRAGMENT) len = 8;
      else if (next === NH_AH) len = (syn[off + 1]! + 2) * 4;
      else return undefined;
      next = syn[off]!;
      off += len;
    }
  } else {
    return undefined;
  }
  if (off + TCP_HEADER_MIN > syn.length) return undefined;
  const doff = (syn[off + 12]! >> 4) * 4;
  if (doff < TCP_HEADER_MIN || off + doff > syn.length) return undefined;
  return { tcpOffset: off, flags: syn[off + 13]!, options: parseTcpOptions(syn, off + TCP_HEADER_MIN, off + doff) };
}

/**
 * Whether a saved SYN offers SMC: it parses as IP + TCP with the SYN flag and its options hold the
 * SMC option. A malformed option block does not offer anything (the kernel stops parsing there too).
 */
export function savedSynCarriesSmc(syn: Uint8Array): boolean {
  let tcp: SavedSynTcp | undefined;
  try {
    tcp = parseSavedSyn(syn);
  } catch (e) {
    if (e instanceof WireError) return false;
    throw e;
  }
  return tcp !== undefined && (tcp.flags & 0x02) !== 0 && hasSmcOption(tcp.options);
}

function socketError(e: unknown, what: string): never {
  if (e instanceof SyscallError) {
    throw new SockopsError(SockopsErrorCode.BAD_SOCKET, `${what}: ${e.errnoName} (the fd is not a TCP socket of this process)`, { cause: e, errno: e.errnoName });
  }
  throw e;
}

/**
 * TCP_SAVE_SYN on a listening server, so savedSynOffersSmc() can read each accepted socket's SYN.
 * Call after 'listening'. Needs no privilege and no BPF.
 */
export function saveSyn(server: Server): void {
  const fd = serverFd(server, 'saveSyn');
  try {
    setsockoptInt(fd, IPPROTO_TCP, TCP_SAVE_SYN, 1, 'setsockopt(TCP_SAVE_SYN)');
  } catch (e) {
    socketError(e, 'saveSyn');
  }
}

/**
 * Whether the client's SYN of an accepted socket carried the SMC option (TCP_SAVED_SYN), or
 * undefined when no SYN was saved (no saveSyn() on the listener, a syncookie, or already read:
 * the kernel hands it out once).
 */
export function savedSynOffersSmc(socket: Socket): boolean | undefined {
  const fd = socketFd(socket, 'savedSynOffersSmc');
  let buf = nativeBuffer(512);
  for (;;) {
    let len: number;
    try {
      len = getsockoptBytes(fd, IPPROTO_TCP, TCP_SAVED_SYN, buf, 'getsockopt(TCP_SAVED_SYN)');
    } catch (e) {
      // EINVAL: the buffer is smaller than the saved SYN (IPv6 extension headers); grow once.
      if (e instanceof SyscallError && e.errnoName === 'EINVAL' && buf.length < 4096) {
        buf = nativeBuffer(4096);
        continue;
      }
      socketError(e, 'savedSynOffersSmc');
    }
    if (len === 0) return undefined;
    return savedSynCarriesSmc(buf.subarray(0, len));
  }
}
