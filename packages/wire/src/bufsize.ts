/**
 * The 4-bit compressed buffer sizes of CLC Accept/Confirm (spec 8.1) and the QP MTU enum carried next
 * to them (spec 3.4.1). A compressed size n stands for `16 KiB << n`.
 */
import { WireError, WireErrorCode } from './errors.js';

const MSG = 'bufsize';

/** Smallest buffer and the size of compressed value 0 (`SMC_BUF_MIN_SIZE`, 16 KiB). */
export const SMC_BUF_MIN_SIZE = 16384;
/** Largest value of the 4-bit field: 15 = 512 MiB. */
export const SMC_BUF_SIZE_MAX_N = 15;
/**
 * Cap Linux applies to the SMC-R buffers it allocates (`SMCR_RMBE_SIZES`): 15 since the mid-2024 patch
 * that allowed larger SMC-R buffers. Default of {@link compressBufSize}.
 */
export const SMCR_RMBE_SIZES = 15;
/**
 * The cap before mid-2024: 5 (512 KiB). Spec 12 row 6 advises offering at most this for older peers'
 * sake; peers of either era accept any n from the other side.
 */
export const SMCR_RMBE_SIZES_LEGACY = 5;
/** Cap for SMC-D DMBs (`SMCD_DMBE_SIZES`, 1 MiB); for reference only, we are SMC-R only. */
export const SMCD_DMBE_SIZES = 6;

/**
 * Compresses a requested size in bytes: the smallest n with `16 KiB << n >= bytes`, capped at `max`
 * (so 16 KiB -> 0, 16 KiB + 1 -> 1, 64 KiB -> 2; sizes up to 16 KiB, including 0, give 0). Throws
 * BAD_VALUE (offset 0) unless `bytes` is a non-negative safe integer and `max` an integer in 0..15.
 */
export function compressBufSize(bytes: number, max: number = SMCR_RMBE_SIZES): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new WireError(WireErrorCode.BAD_VALUE, `buffer size ${bytes} is not a non-negative integer`, 0, MSG);
  }
  if (!Number.isInteger(max) || max < 0 || max > SMC_BUF_SIZE_MAX_N) {
    throw new WireError(WireErrorCode.BAD_VALUE, `cap ${max} is not an integer in 0..${SMC_BUF_SIZE_MAX_N}`, 0, MSG);
  }
  let n = 0;
  while (n < max && SMC_BUF_MIN_SIZE * 2 ** n < bytes) n++;
  return n;
}

/** The size in bytes of compressed value `n` (0..15). Throws BAD_VALUE (offset 0) otherwise. */
export function uncompressBufSize(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > SMC_BUF_SIZE_MAX_N) {
    throw new WireError(WireErrorCode.BAD_VALUE, `compressed buffer size ${n} is not an integer in 0..${SMC_BUF_SIZE_MAX_N}`, 0, MSG);
  }
  return SMC_BUF_MIN_SIZE * 2 ** n;
}

/** InfiniBand path-MTU enum values (`enum ib_mtu`), as carried in the low nibble of CLC byte 50. */
export const QpMtu = {
  MTU_256: { value: 1, bytes: 256, name: 'IB_MTU_256' },
  MTU_512: { value: 2, bytes: 512, name: 'IB_MTU_512' },
  MTU_1024: { value: 3, bytes: 1024, name: 'IB_MTU_1024' },
  MTU_2048: { value: 4, bytes: 2048, name: 'IB_MTU_2048' },
  MTU_4096: { value: 5, bytes: 4096, name: 'IB_MTU_4096' },
} as const;
export type QpMtuValue = (typeof QpMtu)[keyof typeof QpMtu]['value'];

/** Bytes of QP MTU enum value `e` (1..5). Throws BAD_VALUE (offset 0) for anything else. */
export function mtuFromEnum(e: number): number {
  if (!Number.isInteger(e) || e < 1 || e > 5) {
    throw new WireError(WireErrorCode.BAD_VALUE, `QP MTU enum ${e} is not in 1..5`, 0, MSG);
  }
  return 128 << e;
}

/** Enum value of an exact IB MTU (256, 512, 1024, 2048, 4096). Throws BAD_VALUE (offset 0) otherwise. */
export function mtuToEnum(bytes: number): QpMtuValue {
  switch (bytes) {
    case 256: return 1;
    case 512: return 2;
    case 1024: return 3;
    case 2048: return 4;
    case 4096: return 5;
    default:
      throw new WireError(WireErrorCode.BAD_VALUE, `${bytes} is not an IB MTU (256, 512, 1024, 2048 or 4096)`, 0, MSG);
  }
}

/**
 * Enum value of the largest IB MTU that is not above `bytes` (a path or port MTU in bytes). Throws
 * BAD_VALUE (offset 0) when `bytes` is below 256 or not a number.
 */
export function mtuEnumAtMost(bytes: number): QpMtuValue {
  if (!(bytes >= 256)) {
    throw new WireError(WireErrorCode.BAD_VALUE, `MTU ${bytes} is below the smallest IB MTU (256)`, 0, MSG);
  }
  if (bytes >= 4096) return 5;
  if (bytes >= 2048) return 4;
  if (bytes >= 1024) return 3;
  if (bytes >= 512) return 2;
  return 1;
}
