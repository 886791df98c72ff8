/**
 * Shared pieces of the tshark conformance tests: the version pin, access to tshark's JSON
 * (`-T json --no-duplicate-keys -x`), and formatters that turn our decoded values into the text
 * tshark prints, so a comparison is a plain deep-equal of field name -> list of values.
 *
 * Every quirk these tests assert is written down in /work/shared/reference/oracles.md (tshark
 * 4.0.17). A newer tshark fixes some of them and renames fields (oracles.md 6.3), so the tests
 * refuse to run against any other version rather than print confusing diffs.
 */
import assert from 'node:assert/strict';
import { tsharkVersion, type TsharkFrame } from '../../support/tools.js';
import { formatGid } from '@smc-r/wire';

/** The tshark release whose field names and quirks the conformance tests encode. */
export const PINNED_TSHARK = '4.0.17';

/** Throws (failing the suite from its `before` hook) unless tshark is the pinned release. */
export function assertPinnedTshark(): void {
  const v = tsharkVersion();
  if (v !== PINNED_TSHARK) {
    throw new Error(
      `tshark ${v} found, but the conformance tests are written against tshark ${PINNED_TSHARK}: its SMC field ` +
        'names and decode bugs (oracles.md section 6: ADD LINK CONT read 2 bytes early, CDC producer/consumer ' +
        'name clash, legacy Proposal misdecode, big-endian LLC length_v2, ...) differ between releases. To move on, ' +
        're-run the recipes of /work/shared/reference/oracles.md with the new tshark, update that file, then update ' +
        `the expectations in test/conformance/*.tshark.test.ts and PINNED_TSHARK in test/conformance/support/tshark.ts.`,
    );
  }
}

/** The `layers` object of one frame. */
export function layersOf(frame: TsharkFrame): Record<string, unknown> {
  return frame._source.layers;
}

/** The frame number tshark gave the frame (1-based). */
export function frameNumber(frame: TsharkFrame): number {
  const f = layersOf(frame)['frame'] as Record<string, unknown> | undefined;
  return Number(f?.['frame.number']);
}

/** The SMC PDUs of a frame: `layers.smc` is an object for one PDU and an array for several. */
export function smcPdus(frame: TsharkFrame): Record<string, unknown>[] {
  const s = layersOf(frame)['smc'];
  if (s === undefined) return [];
  return (Array.isArray(s) ? s : [s]) as Record<string, unknown>[];
}

/** The `-x` raw bytes of each SMC PDU of a frame (`smc_raw` = [hex, offset, length, mask, type]). */
export function smcRaw(frame: TsharkFrame): Buffer[] {
  const r = layersOf(frame)['smc_raw'];
  if (r === undefined) return [];
  const list = (Array.isArray(r) && Array.isArray(r[0]) ? r : [r]) as unknown[][];
  return list.map((x) => Buffer.from(String(x[0]), 'hex'));
}

/** Field name -> every value tshark printed for it, in document order. */
export type FieldMap = Record<string, string[]>;

/**
 * Every leaf field under `node`: `*_tree` subtrees are walked into, repeated fields (JSON arrays)
 * are kept as lists, and the `*_raw` companions that `-x` adds are left out.
 */
export function flattenFields(node: unknown): FieldMap {
  const out: FieldMap = {};
  const push = (k: string, v: string): void => {
    (out[k] ??= []).push(v);
  };
  const walk = (n: Record<string, unknown>): void => {
    for (const [k, v] of Object.entries(n)) {
      if (k.endsWith('_raw')) continue;
      if (typeof v === 'string') push(k, v);
      else if (Array.isArray(v)) {
        for (const x of v) {
          if (typeof x === 'string') push(k, x);
          else if (x !== null && typeof x === 'object') walk(x as Record<string, unknown>);
        }
      } else if (v !== null && typeof v === 'object') walk(v as Record<string, unknown>);
    }
  };
  if (node !== null && typeof node === 'object') walk(node as Record<string, unknown>);
  return out;
}

/** Key-sorted copy, so a failing deep-equal prints a readable diff. */
function sorted(m: FieldMap): FieldMap {
  const o: FieldMap = {};
  for (const k of Object.keys(m).sort()) o[k] = m[k]!;
  return o;
}

/**
 * Asserts that tshark showed exactly the expected fields with exactly the expected values: a
 * field tshark shows that we did not expect fails too, so nothing it decodes goes unchecked.
 */
export function assertFields(actual: FieldMap, expected: FieldMap, label: string): void {
  assert.deepEqual(sorted(actual), sorted(expected), `${label}: tshark fields differ from our message`);
}

// -------------------------------------------------------------------------------------------------
// Formatters: our values as tshark prints them (oracles.md 4, "Value formats")

/** Zero-padded hex of a field `bytes` wide, as tshark prints FT_UINTn in BASE_HEX: `0x0001`. */
export function hx(v: number | bigint, bytes: number): string {
  return `0x${v.toString(16).padStart(bytes * 2, '0')}`;
}

/** Booleans and flag bits: "1" / "0". */
export function b01(v: boolean): string {
  return v ? '1' : '0';
}

/** FT_BYTES and MACs: lower-case colon hex. */
export function colonHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** GIDs: IPv6 text (RFC 5952, dotted quad for v4-mapped), as tshark prints FT_IPv6. */
export function gidText(b: Uint8Array): string {
  return formatGid(b);
}

/** Big-endian unsigned integer of `n` bytes (1-8) at `off`, as a bigint. */
export function beAt(b: Uint8Array, off: number, n: number): bigint {
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(b[off + i]!);
  return v;
}

/** tshark's hex text of the big-endian field of `n` bytes at `off`. */
export function hxAt(b: Uint8Array, off: number, n: number): string {
  return hx(beAt(b, off, n), n);
}

/** tshark's colon-hex text of the bytes `[off, off + n)` (reserved areas are FT_BYTES). */
export function bytesAt(b: Uint8Array, off: number, n: number): string {
  return colonHex(b.subarray(off, off + n));
}
