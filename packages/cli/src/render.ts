/**
 * Renders decoded messages as an indented tree (for people) or as JSON-safe values (for tools).
 * Field formatting is chosen by field name, so every codec's plain objects print well without a
 * printer per message kind: GIDs as IPv6 text, MACs with colons, keys and tokens in hex, reason
 * codes with their registry name.
 */
import { describeReason, formatGid, formatMac, toHex } from '@smc-r/wire';

/** One printable node: a label, an optional one-line value, optional children. */
export interface TreeNode {
  label: string;
  value?: string;
  children?: TreeNode[];
}

/** 32-bit identifiers printed as 8 hex digits. */
const HEX32 = /^(token|rkey\w*|\w*Rkey\w*|\w*Token|icrc|vendorOptions|linkUid\w*|exid)$/;
/** 16-bit masks printed as 4 hex digits. */
const HEX16 = /^(featureMask|pkey)$/;
/** 8-bit flag bytes and syndromes printed as 2 hex digits. */
const HEX8 = /^(flags|rawFlags|prodFlags|connFlags|syndrome|vendorFlags)$/;
const REASON = /^(reason|peerDiagnosis|diagnosis|diag\w*|fallback\w*|code)$/;
const ADDR64 = /^(vaddr|va|rmbVaddr|\w*Vaddr|\w*Addr\w*|ismGid)$/;

function hex(n: number | bigint, width: number): string {
  return `0x${n.toString(16).padStart(width, '0')}`;
}

/** Formats one scalar by its field name. */
export function formatScalar(key: string, v: unknown): string {
  if (v instanceof Uint8Array) {
    if (/mac/i.test(key) && v.length === 6) return formatMac(v);
    if (/gid/i.test(key) && v.length === 16) return formatGid(v);
    return v.length === 0 ? '(empty)' : toHex(v);
  }
  if (typeof v === 'bigint') return hex(v, 16);
  if (typeof v === 'number') {
    if (REASON.test(key) && v > 0xffff) return describeReason(v);
    if (ADDR64.test(key)) return hex(v, 16);
    if (HEX32.test(key)) return hex(v, 8);
    if (HEX16.test(key)) return hex(v, 4);
    if (HEX8.test(key)) return hex(v, 2);
    if (/qpn|qp$|Qpn|destQp|psn|Psn/i.test(key)) return `${v} (${hex(v, 6)})`;
    return String(v);
  }
  if (typeof v === 'string') return v === '' ? "''" : JSON.stringify(v);
  return String(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && !Array.isArray(v);
}

/** Turns any decoded value into tree children, one per field, recursing into objects and arrays. */
export function fieldsToNodes(obj: Record<string, unknown>, skip: ReadonlySet<string> = new Set()): TreeNode[] {
  const out: TreeNode[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (skip.has(k) || v === undefined) continue;
    if (Array.isArray(v)) {
      const children = v.map((item, i) =>
        isPlainObject(item) ? { label: `[${i}]`, children: fieldsToNodes(item) } : { label: `[${i}]`, value: formatScalar(k, item) },
      );
      out.push({ label: k, value: `${v.length} item${v.length === 1 ? '' : 's'}`, children });
    } else if (isPlainObject(v)) {
      out.push({ label: k, children: fieldsToNodes(v) });
    } else {
      out.push({ label: k, value: formatScalar(k, v) });
    }
  }
  return out;
}

/** Indented text; children of the last node at a level are drawn with the same two-space indent. */
export function renderTree(nodes: readonly TreeNode[], indent = ''): string {
  let s = '';
  for (const n of nodes) {
    s += `${indent}${n.label}${n.value !== undefined ? `: ${n.value}` : ''}\n`;
    if (n.children && n.children.length > 0) s += renderTree(n.children, `${indent}  `);
  }
  return s;
}

/** JSON-safe copy: Buffers become hex (GIDs and MACs their text form), bigints decimal strings. */
export function toJsonValue(key: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return v.length === 0 ? '' : formatScalar(key, v);
  if (typeof v === 'bigint') return hex(v, 16);
  if (Array.isArray(v)) return v.map((x) => toJsonValue(key, x));
  if (isPlainObject(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = toJsonValue(k, x);
    return o;
  }
  return v;
}
