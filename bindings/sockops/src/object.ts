/**
 * The shape of the artefact scripts/build-bpf.mjs writes to src/generated/program.ts: everything
 * bpf(2) needs to create the maps, load the program and attach it, extracted from the clang
 * object at build time so the runtime parses no ELF and needs no clang.
 */

/** Byte offset and size of one member of a map key or value struct. */
export interface BpfField {
  readonly offset: number;
  readonly size: number;
}

/** Size of a map key or value and, for structs, its members (from the program's BTF). */
export interface BpfLayout {
  readonly size: number;
  readonly fields?: Readonly<Record<string, BpfField>>;
}

/** One map, as `BPF_MAP_CREATE` takes it. BTF ids are 0 for maps created without BTF. */
export interface BpfMapSpec {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly btfKeyTypeId: number;
  readonly btfValueTypeId: number;
  readonly key: BpfLayout;
  readonly value: BpfLayout;
}

/** An ld_imm64 at instruction `insn` that must hold the fd of map number `map`. */
export interface BpfRelocation {
  readonly insn: number;
  readonly map: number;
}

export interface BpfObject {
  readonly progName: string;
  readonly progType: number;
  readonly expectedAttachType: number;
  readonly license: string;
  readonly insnCount: number;
  /** The program's instructions, base64, with the map immediates zeroed. */
  readonly insns: string;
  readonly relocations: readonly BpfRelocation[];
  readonly maps: readonly BpfMapSpec[];
  /** A minimal BTF blob (base64) holding the SK_STORAGE key and value types. */
  readonly btf: string;
  /** The program's named enums: enum name -> constant name -> value. */
  readonly enums: Readonly<Record<string, Readonly<Record<string, number>>>>;
}
