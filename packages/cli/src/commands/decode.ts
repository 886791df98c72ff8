/**
 * `smcr decode [INPUT]`: prints every SMC item in hex or in a pcap/pcapng file, as a tree or JSON.
 *
 * INPUT is a file path (pcap, pcapng, or a text file of hex), a hex string, or `-`/nothing for
 * standard input (hex text or a capture). Hex may contain blanks, colons, newlines and `0x`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { SmcError } from '@smc-r/wire';
import { decodeBytes, decodeCapture, ROCE_V2_PORT, type DecodedItem } from '../decode.js';
import { fieldsToNodes, renderTree, toJsonValue } from '../render.js';

const PCAP_MAGICS = new Set([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0x0a0d0d0a]);

/** Typed error for input the command cannot use. */
export class DecodeInputError extends SmcError {
  constructor(message: string) {
    super('ERR_SMC_CLI_INPUT', message);
  }
}

function isCapture(buf: Buffer): boolean {
  return buf.length >= 4 && PCAP_MAGICS.has(buf.readUInt32BE(0));
}

/** Parses hex text; throws DecodeInputError naming the first bad character. */
export function parseHex(text: string): Buffer {
  const cleaned = text.replace(/0x/gi, '').replace(/[\s:,.-]/g, '');
  const bad = /[^0-9a-fA-F]/.exec(cleaned);
  if (bad) throw new DecodeInputError(`not hex: unexpected ${JSON.stringify(bad[0])} (pass a pcap/pcapng file path, or hex bytes)`);
  if (cleaned.length === 0) throw new DecodeInputError('no bytes to decode');
  if (cleaned.length % 2 !== 0) throw new DecodeInputError(`odd number of hex digits (${cleaned.length})`);
  return Buffer.from(cleaned, 'hex');
}

function readStdin(): Buffer {
  try {
    return readFileSync(0);
  } catch (e) {
    throw new DecodeInputError(`cannot read standard input: ${(e as Error).message}`);
  }
}

function parsePorts(v: string, prev: number[] | undefined): number[] {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('a UDP port is 1..65535');
  return [...(prev ?? []), n];
}

interface DecodeOpts {
  json?: boolean;
  kind: 'auto' | 'clc' | 'link' | 'tcp-options' | 'roce';
  rocePort?: number[];
  errorsOnly?: boolean;
}

/** What the command decodes from its input, without printing. Exported for tests. */
export function decodeInput(input: string | undefined, opts: DecodeOpts): DecodedItem[] {
  let bytes: Buffer;
  if (input === undefined || input === '-') {
    bytes = readStdin();
    if (!isCapture(bytes)) bytes = parseHex(bytes.toString('latin1'));
  } else if (existsSync(input)) {
    bytes = readFileSync(input);
    if (!isCapture(bytes)) bytes = parseHex(bytes.toString('latin1'));
  } else {
    bytes = parseHex(input);
  }
  if (isCapture(bytes)) return decodeCapture(bytes, { rocePorts: opts.rocePort ?? [ROCE_V2_PORT] });
  return decodeBytes(bytes, opts.kind);
}

function itemHeader(it: DecodedItem): string {
  const where = [it.frame !== undefined ? `frame ${it.frame}` : undefined, it.flow].filter(Boolean).join('  ');
  return where ? `${where}  ${it.summary}` : it.summary;
}

/** Text output: one header line per item, then its fields as a tree. */
export function formatItems(items: readonly DecodedItem[]): string {
  let s = '';
  for (const it of items) {
    s += `${itemHeader(it)}\n`;
    if (it.kind === 'error' && it.error) {
      s += `  error: ${it.error.code}${it.error.offset !== undefined ? ` at byte ${it.error.offset}` : ''}\n`;
    } else if (it.message && it.kind !== 'tcp-option') {
      s += renderTree(fieldsToNodes(it.message as Record<string, unknown>, new Set(['type'])), '  ');
    } else if (it.message && it.kind === 'tcp-option') {
      const m = it.message as { options?: { kind: number; length: number; data: Buffer }[] };
      for (const o of m.options ?? []) s += `  kind ${o.kind}${o.length > 1 ? ` len ${o.length}` : ''}${o.data && o.data.length ? ` ${o.data.toString('hex')}` : ''}\n`;
    }
  }
  return s;
}

export function registerDecode(program: Command, out: (s: string) => void): void {
  program
    .command('decode')
    .description('decode SMC items (TCP option, CLC, LLC, CDC, RoCEv2 headers) from hex or a pcap/pcapng file')
    .argument('[input...]', 'pcap/pcapng file, hex text file, hex (may be split over several arguments), or - for standard input (default)')
    .option('--json', 'print JSON instead of a tree')
    .addOption(new Option('--kind <kind>', 'what hex input holds').choices(['auto', 'clc', 'link', 'tcp-options', 'roce']).default('auto'))
    .option('--roce-port <port>', 'UDP port carrying RoCEv2 (repeatable; default 4791)', parsePorts)
    .option('--errors-only', 'print only items that failed to decode')
    .action((inputs: string[], opts: DecodeOpts) => {
      // Several arguments can only be hex split by the shell's word splitting.
      let items = decodeInput(inputs.length === 0 ? undefined : inputs.join(''), opts);
      if (opts.errorsOnly) items = items.filter((i) => i.kind === 'error');
      if (opts.json) out(`${JSON.stringify(items.map((i) => toJsonValue('', i)), null, 2)}\n`);
      else out(formatItems(items));
      // Exit status 3 when something did not decode, so scripts can tell.
      if (items.some((i) => i.kind === 'error')) process.exitCode = 3;
    });
}
