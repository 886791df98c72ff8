/**
 * Transport timers of the mem provider: the IBA encodings of the local ACK timeout and of the
 * RNR NAK timer, and the clamps that keep in-process tests fast.
 *
 * mem loses no packets, so the ACK timer only runs when the responder does not answer at all
 * (no QP with that number behind the destination GID, a QP in RESET/INIT/ERR, a PSN or address
 * mismatch). The RNR timer runs when a SEND or WRITE_WITH_IMM finds no posted receive.
 */

/**
 * IBA 9.7.6.1.3 / `enum ib_rnr_timeout` ("Min RNR NAK Timer Field Value"): the 5-bit encoding
 * of the delay a responder asks for in an RNR NAK, in microseconds. 0 is the longest (655.36 ms),
 * 1 the shortest (0.01 ms). SMC-R sets 5 (0.06 ms).
 */
export const RNR_TIMER_US: readonly number[] = [
  655_360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1_280, 1_920,
  2_560, 3_840, 5_120, 7_680, 10_240, 15_360, 20_480, 30_720, 40_960, 61_440, 81_920, 122_880, 163_840, 245_760, 327_680, 491_520,
];

/**
 * Local ACK timeout (IBA 9.7.6.1.3, `ibv_qp_attr.timeout`): 4.096 us * 2^timeout, 0 = infinite.
 * Returns milliseconds, `Infinity` for 0. SMC-R sets 15 (134 ms).
 */
export function ackTimeoutMs(timeout: number): number {
  if (timeout === 0) return Infinity;
  return (4.096 * 2 ** timeout) / 1000;
}

/** Delay the requester waits after an RNR NAK carrying `minRnrTimer`, in milliseconds (unclamped). */
export function rnrDelayMs(minRnrTimer: number): number {
  return (RNR_TIMER_US[minRnrTimer & 31] ?? 655_360) / 1000;
}

/** Default clamps (MemProviderOptions.maxAckTimeoutMs / maxRnrDelayMs). */
export const DEFAULT_MAX_ACK_TIMEOUT_MS = 10;
export const DEFAULT_MAX_RNR_DELAY_MS = 1;
