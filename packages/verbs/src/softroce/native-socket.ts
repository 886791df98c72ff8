/**
 * What Node's dgram cannot do to a UDP socket and softroce needs: IP_MTU_DISCOVER = IP_PMTUDISC_DO.
 *
 * Why: the RoCEv2 ICRC covers the IPv4 header's ID and flags (only TOS, TTL and checksum are
 * masked), so the sender must know the header the kernel will build. A dgram socket uses PMTU
 * discovery "want" and Linux then picks a per-destination IP ID user space cannot know; with
 * IP_PMTUDISC_DO on an unconnected socket Linux sends DF and ID 0 (`ip_select_ident_segs`), the
 * header softroce computes its ICRC over (README "IP ID and ICRC"). A kernel rdma_rxe peer drops
 * packets with a wrong ICRC silently (rxe-interop.md 2.1).
 *
 * setsockopt(2) is called through koffi on the descriptor of the bound dgram socket. koffi is
 * imported lazily and is optional: without it (or off Linux) nothing is changed and the caller
 * learns why, so softroce keeps working towards other softroce peers (they accept any IP ID).
 */
import type dgram from 'node:dgram';

/** Linux <netinet/in.h> / <linux/in.h> values (x86-64 and every other Linux ABI alike). */
const IPPROTO_IP = 0;
const IP_MTU_DISCOVER = 10;
export const IP_PMTUDISC_WANT = 1;
export const IP_PMTUDISC_DO = 2;

interface Native {
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Buffer, len: Buffer): number;
  errno(): number;
}

let native: Promise<Native | string> | undefined;

/** libc's setsockopt/getsockopt through koffi, loaded once; a string says why they are unavailable. */
function loadNative(): Promise<Native | string> {
  native ??= (async (): Promise<Native | string> => {
    if (process.platform !== 'linux') return `IP_MTU_DISCOVER is Linux-only (platform ${process.platform})`;
    try {
      const mod = (await import('koffi')) as unknown as { default?: unknown };
      const koffi = (mod.default ?? mod) as typeof import('koffi');
      const libc = koffi.load('libc.so.6');
      const set = libc.func('int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)');
      const get = libc.func('int getsockopt(int fd, int level, int optname, void *optval, void *optlen)');
      return {
        setsockopt: (fd, level, name, value, len) => set(fd, level, name, value, len) as number,
        getsockopt: (fd, level, name, value, len) => get(fd, level, name, value, len) as number,
        errno: () => koffi.errno(),
      };
    } catch (e) {
      return `koffi unavailable: ${(e as Error).message.split('\n')[0]}`;
    }
  })();
  return native;
}

/**
 * The OS descriptor of a bound dgram socket, or undefined. Read from dgram's internal state
 * object (the `_handle` property would print a deprecation warning).
 */
export function dgramFd(socket: dgram.Socket): number | undefined {
  const s = socket as unknown as Record<symbol, unknown>;
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    if (sym.description !== 'state symbol') continue;
    const fd = (s[sym] as { handle?: { fd?: unknown } } | undefined)?.handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
  }
  return undefined;
}

/** Outcome of {@link setPmtuDiscoverDo}: applied, or why not (the socket is left as it was). */
export type PmtuOutcome = { readonly applied: true; readonly fd: number } | { readonly applied: false; readonly reason: string };

/**
 * Sets IP_MTU_DISCOVER = IP_PMTUDISC_DO on a bound dgram socket, so Linux sends its datagrams
 * with DF and IP ID 0. Never throws.
 */
export async function setPmtuDiscoverDo(socket: dgram.Socket): Promise<PmtuOutcome> {
  const n = await loadNative();
  if (typeof n === 'string') return { applied: false, reason: n };
  const fd = dgramFd(socket);
  if (fd === undefined) return { applied: false, reason: 'the dgram socket has no descriptor (not bound, or Node internals changed)' };
  const v = Buffer.alloc(4);
  v.writeInt32LE(IP_PMTUDISC_DO);
  if (n.setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, v, 4) !== 0) {
    return { applied: false, reason: `setsockopt(IP_MTU_DISCOVER) failed: errno ${n.errno()}` };
  }
  return { applied: true, fd };
}

/** IP_MTU_DISCOVER of a descriptor (IP_PMTUDISC_* value), or undefined when it cannot be read. For tests. */
export async function getPmtuDiscover(fd: number): Promise<number | undefined> {
  const n = await loadNative();
  if (typeof n === 'string') return undefined;
  const v = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4);
  return n.getsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, v, len) === 0 ? v.readInt32LE(0) : undefined;
}
