#!/usr/bin/env node
// Builds the sock_ops program and writes what the runtime loader needs as a TypeScript module:
//
//   node bindings/sockops/scripts/build-bpf.mjs [--out FILE] [--clang CLANG]
//
// clang compiles bpf/smc_opt.bpf.c to a BPF ELF object in a temporary directory; this script then
// reads the object itself (no libbpf, no bpftool) and keeps only what bpf(2) takes:
//   - the instructions of the one program section, with the ld_imm64 slots that reference maps,
//   - each map's parameters, read from the libbpf-style BTF map definitions in ".maps",
//   - a minimal BTF blob rebuilt from clang's BTF: only the SK_STORAGE key and value types, with
//     a fresh string table. clang's .BTF also carries line-info strings (source lines and the
//     absolute file path), which would make the artefact depend on where it was built,
//   - the named enums (the statistics indexes) and the layouts of the map key/value structs, so
//     the TypeScript side never hard-codes an offset.
// The output is deterministic: the same source and clang give the same bytes, which the test in
// src/build-bpf.test.ts checks against the committed src/generated/program.ts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE = join(pkgDir, 'bpf', 'smc_opt.bpf.c');
const DEFAULT_OUT = join(pkgDir, 'src', 'generated', 'program.ts');
const PROGRAM_SECTION = 'sockops';

// ELF constants (elf.h).
const SHT_SYMTAB = 2;
const SHT_REL = 9;
const R_BPF_64_64 = 1;
const BPF_LD_IMM64 = 0x18;

// BTF kinds (linux/btf.h).
const K = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19 };
const BTF_MAGIC = 0xeb9f;
const BTF_HDR_LEN = 24;

// bpf(2) constants the artefact records (linux/bpf.h).
const BPF_PROG_TYPE_SOCK_OPS = 13;
const BPF_CGROUP_SOCK_OPS = 3;
const BPF_MAP_TYPE_SK_STORAGE = 24;

function fail(msg) {
  throw new Error(`build-bpf: ${msg}`);
}

function parseArgs(argv) {
  const opts = { out: DEFAULT_OUT, clang: 'clang' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') opts.out = argv[++i] ?? fail('--out needs a file');
    else if (a === '--clang') opts.clang = argv[++i] ?? fail('--clang needs a command');
    else fail(`unknown argument ${a} (usage: build-bpf.mjs [--out FILE] [--clang CLANG])`);
  }
  return opts;
}

/** The multiarch include directory with asm/types.h, which linux/bpf.h needs on the BPF target. */
function multiarchInclude() {
  const triple = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch] ?? `${process.arch}-linux-gnu`;
  const dir = `/usr/include/${triple}`;
  return existsSync(dir) ? [`-I${dir}`] : [];
}

function compile(clang, object) {
  // bpfel: the loader patches little-endian instructions; -g: clang emits BTF only with it.
  // The source is passed relative to the package so no absolute path reaches even the DWARF.
  execFileSync(clang, ['-O2', '-g', '-target', 'bpfel', ...multiarchInclude(), '-c', relative(pkgDir, SOURCE), '-o', object], {
    cwd: pkgDir,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

// ---------------------------------------------------------------- ELF

function readElf(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46) fail('not an ELF file');
  if (buf[4] !== 2 || buf[5] !== 1) fail('expected a 64-bit little-endian ELF object (clang -target bpfel)');
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      index: i,
      nameOff: buf.readUInt32LE(o),
      type: buf.readUInt32LE(o + 4),
      offset: Number(buf.readBigUInt64LE(o + 24)),
      size: Number(buf.readBigUInt64LE(o + 32)),
      link: buf.readUInt32LE(o + 40),
      info: buf.readUInt32LE(o + 44),
      entsize: Number(buf.readBigUInt64LE(o + 56)),
    });
  }
  const cstr = (sec, off) => {
    const start = sec.offset + off;
    const end = buf.indexOf(0, start);
    return buf.toString('latin1', start, end);
  };
  const shstr = sections[shstrndx];
  for (const s of sections) s.name = cstr(shstr, s.nameOff);
  const data = (s) => buf.subarray(s.offset, s.offset + s.size);
  const symtab = sections.find((s) => s.type === SHT_SYMTAB) ?? fail('no symbol table');
  const symstr = sections[symtab.link];
  const symbols = [];
  for (let o = 0; o < symtab.size; o += 24) {
    const p = symtab.offset + o;
    symbols.push({ name: cstr(symstr, buf.readUInt32LE(p)), shndx: buf.readUInt16LE(p + 6), value: Number(buf.readBigUInt64LE(p + 8)) });
  }
  const byName = (name) => sections.find((s) => s.name === name);
  return { sections, symbols, data, byName };
}

// ---------------------------------------------------------------- BTF

/** Parses a BTF blob into types indexed by id (1-based) and a string getter. */
function readBtf(blob) {
  if (blob.readUInt16LE(0) !== BTF_MAGIC) fail('bad BTF magic');
  const hdrLen = blob.readUInt32LE(4);
  const typeOff = hdrLen + blob.readUInt32LE(8);
  const typeLen = blob.readUInt32LE(12);
  const strOff = hdrLen + blob.readUInt32LE(16);
  const strLen = blob.readUInt32LE(20);
  const str = (off) => {
    if (off >= strLen) fail(`BTF string offset ${off} out of range`);
    const start = strOff + off;
    return blob.toString('latin1', start, blob.indexOf(0, start));
  };
  const types = [null];
  let p = typeOff;
  const end = typeOff + typeLen;
  while (p < end) {
    const info = blob.readUInt32LE(p + 4);
    const t = { name: str(blob.readUInt32LE(p)), kind: (info >>> 24) & 0x1f, vlen: info & 0xffff, kflag: info >>> 31, sizeOrType: blob.readUInt32LE(p + 8) };
    p += 12;
    switch (t.kind) {
      case K.INT: t.intData = blob.readUInt32LE(p); p += 4; break;
      case K.ARRAY: t.elem = blob.readUInt32LE(p); t.index = blob.readUInt32LE(p + 4); t.nelems = blob.readUInt32LE(p + 8); p += 12; break;
      case K.STRUCT: case K.UNION:
        t.members = [];
        for (let i = 0; i < t.vlen; i++, p += 12) t.members.push({ name: str(blob.readUInt32LE(p)), type: blob.readUInt32LE(p + 4), offset: blob.readUInt32LE(p + 8) });
        break;
      case K.ENUM:
        t.values = [];
        for (let i = 0; i < t.vlen; i++, p += 8) t.values.push({ name: str(blob.readUInt32LE(p)), value: blob.readInt32LE(p + 4) });
        break;
      case K.ENUM64: p += 12 * t.vlen; break;
      case K.FUNC_PROTO: p += 8 * t.vlen; break;
      case K.VAR: case K.DECL_TAG: p += 4; break;
      case K.DATASEC:
        t.vars = [];
        for (let i = 0; i < t.vlen; i++, p += 12) t.vars.push({ type: blob.readUInt32LE(p), offset: blob.readUInt32LE(p + 4), size: blob.readUInt32LE(p + 8) });
        break;
      case K.PTR: case K.FWD: case K.TYPEDEF: case K.VOLATILE: case K.CONST: case K.RESTRICT: case K.FUNC: case K.FLOAT: case K.TYPE_TAG: break;
      default: fail(`unknown BTF kind ${t.kind}`);
    }
    types.push(t);
  }
  return types;
}

/** Follows typedef/const/volatile/restrict/type_tag to the underlying type id. */
function resolve(types, id) {
  for (;;) {
    const t = types[id];
    if (![K.TYPEDEF, K.CONST, K.VOLATILE, K.RESTRICT, K.TYPE_TAG].includes(t.kind)) return id;
    id = t.sizeOrType;
  }
}

function sizeOf(types, id) {
  const t = types[resolve(types, id)];
  switch (t.kind) {
    case K.INT: case K.STRUCT: case K.UNION: case K.ENUM: case K.ENUM64: case K.FLOAT: return t.sizeOrType;
    case K.PTR: return 8;
    case K.ARRAY: return t.nelems * sizeOf(types, t.elem);
    default: fail(`no size for BTF kind ${t.kind}`);
  }
}

/** Field offsets and sizes of a struct key or value type, for the TypeScript side. */
function layoutOf(types, id) {
  const t = types[resolve(types, id)];
  const layout = { size: sizeOf(types, id) };
  if (t.kind === K.STRUCT) {
    layout.fields = {};
    for (const m of t.members) {
      if (m.offset % 8 !== 0) fail(`bitfield ${t.name}.${m.name} not supported`);
      layout.fields[m.name] = { offset: m.offset / 8, size: sizeOf(types, m.type) };
    }
  }
  return layout;
}

/** Reads one libbpf-style map definition (`__uint`/`__type` members) from its BTF struct. */
function mapDefinition(types, name, structId) {
  const def = types[resolve(types, structId)];
  if (def.kind !== K.STRUCT) fail(`map ${name}: definition is not a struct`);
  const out = { name, type: 0, keySize: 0, valueSize: 0, maxEntries: 0, flags: 0, keyType: 0, valueType: 0 };
  for (const m of def.members) {
    const ptr = types[m.type];
    if (ptr.kind !== K.PTR) fail(`map ${name}: member ${m.name} is not a pointer`);
    const target = ptr.sizeOrType;
    const uint = () => {
      const arr = types[target];
      if (arr.kind !== K.ARRAY) fail(`map ${name}: __uint member ${m.name} is not int (*)[N]`);
      return arr.nelems;
    };
    switch (m.name) {
      case 'type': out.type = uint(); break;
      case 'max_entries': out.maxEntries = uint(); break;
      case 'map_flags': out.flags = uint(); break;
      case 'key_size': out.keySize = uint(); break;
      case 'value_size': out.valueSize = uint(); break;
      case 'key': out.keyType = target; out.keySize = sizeOf(types, target); break;
      case 'value': out.valueType = target; out.valueSize = sizeOf(types, target); break;
      default: fail(`map ${name}: unsupported definition member ${m.name}`);
    }
  }
  return out;
}

/**
 * Writes a BTF blob holding only the types reachable from `roots`, renumbered from 1 in the
 * order of their original ids, with a string table of just their names. Returns the blob and the
 * old-id -> new-id map.
 */
function minimalBtf(types, roots) {
  const keep = new Set();
  const visit = (id) => {
    if (id === 0 || keep.has(id)) return;
    keep.add(id);
    const t = types[id];
    switch (t.kind) {
      case K.INT: case K.ENUM: case K.FWD: case K.FLOAT: break;
      case K.PTR: case K.TYPEDEF: case K.VOLATILE: case K.CONST: case K.RESTRICT: case K.TYPE_TAG: visit(t.sizeOrType); break;
      case K.ARRAY: visit(t.elem); visit(t.index); break;
      case K.STRUCT: case K.UNION: for (const m of t.members) visit(m.type); break;
      default: fail(`BTF kind ${t.kind} not expected in a map key or value`);
    }
  };
  for (const r of roots) visit(r);
  const order = [...keep].sort((a, b) => a - b);
  const ids = new Map(order.map((old, i) => [old, i + 1]));
  const strings = [''];
  const strOff = new Map([['', 0]]);
  let strLen = 1;
  const s = (name) => {
    if (!strOff.has(name)) { strOff.set(name, strLen); strings.push(name); strLen += Buffer.byteLength(name, 'latin1') + 1; }
    return strOff.get(name);
  };
  const chunks = [];
  const u32 = (...vals) => { const b = Buffer.alloc(4 * vals.length); vals.forEach((v, i) => b.writeUInt32LE(v >>> 0, 4 * i)); chunks.push(b); };
  for (const old of order) {
    const t = types[old];
    const info = ((t.kflag << 31) | (t.kind << 24) | t.vlen) >>> 0;
    const refKinds = [K.PTR, K.TYPEDEF, K.VOLATILE, K.CONST, K.RESTRICT, K.TYPE_TAG];
    u32(s(t.name), info, refKinds.includes(t.kind) ? ids.get(t.sizeOrType) ?? 0 : t.sizeOrType);
    switch (t.kind) {
      case K.INT: u32(t.intData); break;
      case K.ARRAY: u32(ids.get(t.elem), ids.get(t.index), t.nelems); break;
      case K.STRUCT: case K.UNION: for (const m of t.members) u32(s(m.name), ids.get(m.type), m.offset); break;
      case K.ENUM: for (const v of t.values) u32(s(v.name), v.value); break;
      default: break;
    }
  }
  const typeSec = Buffer.concat(chunks);
  const strSec = Buffer.concat(strings.map((x) => Buffer.from(`${x}\0`, 'latin1')));
  const hdr = Buffer.alloc(BTF_HDR_LEN);
  hdr.writeUInt16LE(BTF_MAGIC, 0);
  hdr[2] = 1; // version
  hdr[3] = 0; // flags
  hdr.writeUInt32LE(BTF_HDR_LEN, 4);
  hdr.writeUInt32LE(0, 8); // type_off
  hdr.writeUInt32LE(typeSec.length, 12);
  hdr.writeUInt32LE(typeSec.length, 16); // str_off
  hdr.writeUInt32LE(strSec.length, 20);
  return { blob: Buffer.concat([hdr, typeSec, strSec]), ids };
}

// ---------------------------------------------------------------- extraction

function extract(obj) {
  const elf = readElf(obj);
  const prog = elf.byName(PROGRAM_SECTION) ?? fail(`no "${PROGRAM_SECTION}" section`);
  const maps = elf.byName('.maps') ?? fail('no ".maps" section');
  const license = elf.byName('license') ?? fail('no "license" section');
  const btfSec = elf.byName('.BTF') ?? fail('no ".BTF" section (compile with -g)');
  // Anything that would need more than map relocations (globals, bpf-to-bpf calls, a second
  // program) is refused here rather than loaded wrong at run time.
  for (const s of elf.sections) {
    if (['.data', '.rodata', '.bss'].some((p) => s.name.startsWith(p)) && s.size > 0) fail(`section ${s.name} not supported (no global data)`);
    if (s.name === '.text' && s.size > 0) fail('.text not empty: mark every function __always_inline');
  }
  const insns = Buffer.from(elf.data(prog));
  const symbolsInMaps = elf.symbols.filter((sym) => sym.shndx === maps.index && sym.name !== '').sort((a, b) => a.value - b.value);
  const mapIndex = new Map(symbolsInMaps.map((sym, i) => [sym.name, i]));
  const relocations = [];
  for (const s of elf.sections) {
    if (s.type !== SHT_REL) continue;
    const target = elf.sections[s.info];
    if (target.name.startsWith('.debug') || target.name.startsWith('.BTF')) continue;
    if (target.index !== prog.index) fail(`relocations for section ${target.name} not supported`);
    for (let o = 0; o < s.size; o += 16) {
      const off = Number(obj.readBigUInt64LE(s.offset + o));
      const infoR = obj.readBigUInt64LE(s.offset + o + 8);
      const sym = elf.symbols[Number(infoR >> 32n)];
      const type = Number(infoR & 0xffffffffn);
      if (type !== R_BPF_64_64 || sym.shndx !== maps.index) fail(`relocation at ${off} (type ${type}, symbol ${sym.name}) is not a map reference`);
      const insn = off / 8;
      if (insns[off] !== BPF_LD_IMM64) fail(`relocation at ${off} is not on an ld_imm64`);
      relocations.push({ insn, map: mapIndex.get(sym.name) });
      // Zero the immediates; the loader puts the map fd there.
      insns.writeInt32LE(0, off + 4);
      insns.writeInt32LE(0, off + 12);
    }
  }
  relocations.sort((a, b) => a.insn - b.insn);

  const types = readBtf(elf.data(btfSec));
  const varType = new Map();
  for (const t of types) {
    if (t !== null && t.kind === K.VAR) varType.set(t.name, t.sizeOrType);
  }
  const defs = symbolsInMaps.map((sym) => mapDefinition(types, sym.name, varType.get(sym.name) ?? fail(`no BTF for map ${sym.name}`)));
  const storage = defs.filter((d) => d.type === BPF_MAP_TYPE_SK_STORAGE);
  const { blob, ids } = minimalBtf(types, storage.flatMap((d) => [d.keyType, d.valueType]));
  const enums = {};
  for (const t of types) {
    if (t === null || t.kind !== K.ENUM || t.name === '') continue;
    enums[t.name] = Object.fromEntries(t.values.map((v) => [v.name, v.value]));
  }
  const licenseText = elf.data(license).toString('latin1').replace(/\0+$/, '');
  const progSym = elf.symbols.find((sym) => sym.shndx === prog.index && sym.value === 0 && sym.name !== '' && sym.name !== PROGRAM_SECTION);
  return {
    progName: progSym?.name ?? fail('no program symbol'),
    progType: BPF_PROG_TYPE_SOCK_OPS,
    expectedAttachType: BPF_CGROUP_SOCK_OPS,
    license: licenseText,
    insnCount: insns.length / 8,
    insns: insns.toString('base64'),
    relocations,
    maps: defs.map((d) => {
      const withBtf = d.type === BPF_MAP_TYPE_SK_STORAGE;
      return {
        name: d.name,
        type: d.type,
        keySize: d.keySize,
        valueSize: d.valueSize,
        maxEntries: d.maxEntries,
        flags: d.flags,
        btfKeyTypeId: withBtf ? ids.get(d.keyType) : 0,
        btfValueTypeId: withBtf ? ids.get(d.valueType) : 0,
        key: d.keyType ? layoutOf(types, d.keyType) : { size: d.keySize },
        value: d.valueType ? layoutOf(types, d.valueType) : { size: d.valueSize },
      };
    }),
    btf: blob.toString('base64'),
    enums,
  };
}

function render(obj) {
  return [
    '// Generated by bindings/sockops/scripts/build-bpf.mjs from bindings/sockops/bpf/smc_opt.bpf.c',
    '// (clang -O2 -g -target bpfel). Do not edit: rebuild with `node bindings/sockops/scripts/build-bpf.mjs`.',
    '// src/build-bpf.test.ts rebuilds it and fails when the result differs from this file.',
    "import type { BpfObject } from '../object.js';",
    '',
    `export const SMC_OPT_OBJECT: BpfObject = ${JSON.stringify(obj, null, 2)};`,
    '',
  ].join('\n');
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'smcr-build-bpf-'));
  try {
    const object = join(dir, 'smc_opt.bpf.o');
    compile(opts.clang, object);
    writeFileSync(opts.out, render(extract(readFileSync(object))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stderr.write(`build-bpf: wrote ${opts.out}\n`);
}

try {
  main();
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
