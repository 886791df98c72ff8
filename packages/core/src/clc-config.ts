/**
 * Local configuration of the CLC handshake (spec 3.3.4, 3.3.6, 5.3, 8.2, 12 rows 3-5) and its validation.
 * The kernel keeps these in sysctls (`smcr_max_conns_per_lgr`, `smcr_max_links_per_lgr`, `wmem`/`rmem`),
 * the UEID table (`smcr ueid add`) and module globals (system ID, host name); here they are one plain
 * object the driver builds once with {@link clcConfig}.
 */
import { SmcError, SMC_BUF_MIN_SIZE, SMCR_RMBE_SIZES, compressBufSize, uncompressBufSize } from '@smc-r/wire';

/** SMC-R protocol versions this stack can speak. */
export type SmcrVersion = 1 | 2;

/**
 * The UEID Anolis pre-populates (spec 3.3.4). Upstream starts with an empty table, which disables SMC-Rv2;
 * we default to the Anolis value so that v2 works against Alibaba hosts out of the box.
 */
export const DEFAULT_UEID = 'SMCV2-DEFAULT-UEID';

/** Stable code of {@link ClcConfigError}. */
export const CLC_CONFIG_ERROR = 'ERR_SMC_CLC_CONFIG';

/**
 * A configuration or an input the driver passed is unusable (bad UEID, max_conns out of range, malformed
 * IP address, ...). A programming or setup error, never a protocol outcome: nothing is declined for it.
 */
export class ClcConfigError extends SmcError {
  constructor(message: string) {
    super(CLC_CONFIG_ERROR, message);
  }
}

/** Kernel limits the configuration is checked against (spec 3.1, 5.3, 8.3). */
export const ClcConfigLimit = {
  /** `SMC_CLC_MAX_UEID`. */
  MAX_UEIDS: 8,
  /** `SMC_MAX_EID_LEN`. */
  EID_LEN: 32,
  /** `SMC_MAX_HOSTNAME_LEN`; longer host names are truncated as the kernel does (`smc_clc_init`). */
  HOSTNAME_LEN: 32,
  /** `SMC_CONN_PER_LGR_MIN` / `SMC_CONN_PER_LGR_MAX` (v2.1 negotiation range). */
  MIN_CONNS: 16,
  MAX_CONNS: 255,
  /** `SMC_LINKS_ADD_LNK_MIN` / `SMC_LINKS_ADD_LNK_MAX`. */
  MIN_LINKS: 1,
  MAX_LINKS: 2,
  /** `SMC_RELEASE`: the newest SMCv2 release we know (1 = v2.1). */
  MAX_RELEASE: 1,
} as const;

/** Everything the CLC decisions need to know about the local host. */
export interface ClcConfig {
  /**
   * 8-byte system ID (`local_systemid`, spec 3.4.1): 2 random bytes + the MAC of the first active RoCE port
   * ({@link systemIdFrom}). All zero when the host has no RoCE device; it then also goes as zeros into
   * Declines, as Linux does.
   */
  readonly systemId: Buffer;
  /** Host name for the first-contact extension (`uname -n`), at most 32 Latin-1 characters. */
  readonly hostname: string;
  /** User EIDs in table order, 0..8, each valid by the kernel's rule ({@link isValidUeid}), no duplicates. */
  readonly ueids: readonly string[];
  /** Versions we offer (client) and accept (server): a non-empty subset of [1, 2]. */
  readonly versions: readonly SmcrVersion[];
  /** SMCv2 release we speak: 0 = v2.0, 1 = v2.1 (default). */
  readonly release: number;
  /** v2.1 max connections per link group we offer / allow (16..255, default 255). */
  readonly maxConns: number;
  /**
   * v2.1 max links per link group (1..2). We implement one link (ADD_LINK is rejected), so offer 1
   * (spec 12 row 4; 1 is also the Anolis default). The default is 1.
   */
  readonly maxLinks: number;
  /** v2.1 supplemental feature mask; 0 (we support no emulated-ISM / loopback device, spec 12 row 3). */
  readonly featureMask: number;
  /** RMB size in bytes: 16 KiB << n, n <= 15 (spec 8.1); default 64 KiB as upstream `net.smc.rmem`. */
  readonly rmbSize: number;
  /** Send buffer size in bytes: 16 KiB << n (spec 8.2); never on the wire, kept here for the driver. */
  readonly sndbufSize: number;
}

/** What {@link clcConfig} needs at least; every other field has a default. */
export type ClcConfigInit = Partial<ClcConfig> & Pick<ClcConfig, 'systemId' | 'hostname'>;

/** Defaults of the optional configuration fields. */
export const ClcDefaults = {
  versions: [1, 2] as readonly SmcrVersion[],
  release: 1,
  maxConns: 255,
  maxLinks: 1,
  featureMask: 0,
  ueids: [DEFAULT_UEID] as readonly string[],
  rmbSize: 64 * 1024,
  sndbufSize: 64 * 1024,
} as const;

const UEID_RE = /^[A-Z0-9][A-Z0-9.-]{0,31}$/;

/**
 * The kernel's UEID rule (`smc_clc_ueid_valid`, spec 3.3.4): 1..32 characters, the first an upper-case
 * letter or digit, the rest upper-case letters, digits, '.' or '-'. (The kernel blank-pads to 32 and
 * ignores the padding; we keep UEIDs without it.)
 */
export function isValidUeid(ueid: string): boolean {
  return typeof ueid === 'string' && UEID_RE.test(ueid);
}

/** System ID from the 2 random bytes chosen at start-up and the MAC of the first active RoCE port (spec 3.4.1). */
export function systemIdFrom(random2: Uint8Array, mac: Uint8Array): Buffer {
  if (random2.length !== 2) throw new ClcConfigError(`system ID needs 2 random bytes, got ${random2.length}`);
  if (mac.length !== 6) throw new ClcConfigError(`system ID needs a 6-byte MAC, got ${mac.length}`);
  const id = Buffer.alloc(8);
  id.set(random2, 0);
  id.set(mac, 2);
  return id;
}

function isBufSize(bytes: number): boolean {
  if (!Number.isSafeInteger(bytes) || bytes < SMC_BUF_MIN_SIZE) return false;
  return uncompressBufSize(compressBufSize(bytes, SMCR_RMBE_SIZES)) === bytes;
}

/** Throws {@link ClcConfigError} naming the first field that breaks a rule of {@link ClcConfig}. */
export function checkClcConfig(cfg: ClcConfig): void {
  const bad = (why: string): never => {
    throw new ClcConfigError(`CLC config: ${why}`);
  };
  if (!Buffer.isBuffer(cfg.systemId) || cfg.systemId.length !== 8) bad('systemId must be an 8-byte Buffer');
  if (typeof cfg.hostname !== 'string' || cfg.hostname.length > ClcConfigLimit.HOSTNAME_LEN || /[^\x01-\xff]/.test(cfg.hostname)) {
    bad(`hostname must be at most ${ClcConfigLimit.HOSTNAME_LEN} Latin-1 characters without NUL`);
  }
  if (/[ \0]$/.test(cfg.hostname)) bad('hostname must not end in blanks (they are the padding on the wire)');
  if (!Array.isArray(cfg.ueids) || cfg.ueids.length > ClcConfigLimit.MAX_UEIDS) bad(`at most ${ClcConfigLimit.MAX_UEIDS} UEIDs`);
  const seen = new Set<string>();
  for (const u of cfg.ueids) {
    if (!isValidUeid(u)) bad(`UEID ${JSON.stringify(u)} breaks the kernel rule (A-Z 0-9 first, then A-Z 0-9 . -, at most 32)`);
    if (seen.has(u)) bad(`UEID ${u} is listed twice`);
    seen.add(u);
  }
  if (!Array.isArray(cfg.versions) || cfg.versions.length === 0 || cfg.versions.some((v) => v !== 1 && v !== 2)) {
    bad('versions must be a non-empty subset of [1, 2]');
  }
  const intIn = (v: number, lo: number, hi: number): boolean => Number.isInteger(v) && v >= lo && v <= hi;
  if (!intIn(cfg.release, 0, ClcConfigLimit.MAX_RELEASE)) bad(`release must be 0..${ClcConfigLimit.MAX_RELEASE}`);
  if (!intIn(cfg.maxConns, ClcConfigLimit.MIN_CONNS, ClcConfigLimit.MAX_CONNS)) bad('maxConns must be 16..255');
  if (!intIn(cfg.maxLinks, ClcConfigLimit.MIN_LINKS, ClcConfigLimit.MAX_LINKS)) bad('maxLinks must be 1..2');
  if (!intIn(cfg.featureMask, 0, 0xffff)) bad('featureMask must be 0..0xffff');
  if (!isBufSize(cfg.rmbSize)) bad(`rmbSize ${cfg.rmbSize} is not 16 KiB << n (n <= ${SMCR_RMBE_SIZES})`);
  if (!isBufSize(cfg.sndbufSize)) bad(`sndbufSize ${cfg.sndbufSize} is not 16 KiB << n (n <= ${SMCR_RMBE_SIZES})`);
}

/**
 * A checked, frozen configuration with defaults filled in. Normalises like the kernel: the host name is
 * truncated to 32 characters (`smc_clc_init`) and UEIDs lose trailing blanks (the kernel's padding).
 */
export function clcConfig(init: ClcConfigInit): ClcConfig {
  const hostname = typeof init.hostname === 'string' ? init.hostname.slice(0, ClcConfigLimit.HOSTNAME_LEN).replace(/[ \0]+$/, '') : init.hostname;
  const cfg: ClcConfig = {
    systemId: Buffer.isBuffer(init.systemId) ? Buffer.from(init.systemId) : init.systemId,
    hostname,
    ueids: Object.freeze((init.ueids ?? ClcDefaults.ueids).map((u) => (typeof u === 'string' ? u.replace(/\s+$/, '') : u))),
    versions: Object.freeze([...(init.versions ?? ClcDefaults.versions)]),
    release: init.release ?? ClcDefaults.release,
    maxConns: init.maxConns ?? ClcDefaults.maxConns,
    maxLinks: init.maxLinks ?? ClcDefaults.maxLinks,
    featureMask: init.featureMask ?? ClcDefaults.featureMask,
    rmbSize: init.rmbSize ?? ClcDefaults.rmbSize,
    sndbufSize: init.sndbufSize ?? ClcDefaults.sndbufSize,
  };
  checkClcConfig(cfg);
  return Object.freeze(cfg);
}
