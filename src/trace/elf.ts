// A small reader for ELF64 little-endian shared libraries: just enough to put a uprobe on an
// exported function. A uprobe is placed at a *file offset*, so the symbol's virtual address is
// mapped back through the PT_LOAD program headers. Versioned exports (libibverbs has
// ibv_reg_mr@IBVERBS_1.0 and ibv_reg_mr@@IBVERBS_1.1 at different addresses) are told apart with
// .gnu.version (bit 15 set: a hidden, non-default `@` version) and .gnu.version_d (the names).
//
// Pure over a Buffer: every read is bounds-checked and a malformed file raises ElfError, never a
// RangeError from Buffer. The one I/O helper reads a file with a size cap.

import { closeSync, fstatSync, openSync, readSync, constants as fsConstants } from 'node:fs';

export class ElfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ElfError';
  }
}

const PT_LOAD = 1;
const SHT_DYNSYM = 11;
const SHT_GNU_VERDEF = 0x6ffffffd;
const SHT_GNU_VERSYM = 0x6fffffff;
const VERSYM_HIDDEN = 0x8000;
const VERSYM_INDEX = 0x7fff;
const SHN_ABS = 0xfff1;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const EM_X86_64 = 62;
const EM_AARCH64 = 183;
/** Longest symbol or version name read; longer ones are malformed for our purposes. */
const MAX_NAME = 4096;

export interface LoadSegment {
  readonly fileOffset: number;
  readonly vaddr: number;
  readonly fileSize: number;
}

export interface DynamicSymbol {
  readonly name: string;
  /** The version name (IBVERBS_1.1), or null for an unversioned symbol. */
  readonly version: string | null;
  /** True for `name@@VERSION` (what new links bind to) and for unversioned symbols; false for `name@VERSION`. */
  readonly isDefault: boolean;
  /** Defined in this file (not an import). */
  readonly defined: boolean;
  /** An absolute symbol (SHN_ABS), such as the version-name symbols of a versioned library. */
  readonly absolute: boolean;
  readonly isFunction: boolean;
  readonly vaddr: number;
  readonly size: number;
}

export interface ElfImage {
  readonly machine: 'x86_64' | 'aarch64' | 'other';
  readonly loads: readonly LoadSegment[];
  readonly dynamicSymbols: readonly DynamicSymbol[];
}

/** Bounds-checked little-endian reads over the file. */
class Reader {
  constructor(readonly buf: Buffer) {}
  private check(offset: number, size: number, what: string): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + size > this.buf.length) {
      throw new ElfError(`truncated ELF file: ${what} at offset ${offset} is past its end (${this.buf.length} bytes)`);
    }
  }
  u8(offset: number, what: string): number {
    this.check(offset, 1, what);
    return this.buf.readUInt8(offset);
  }
  u16(offset: number, what: string): number {
    this.check(offset, 2, what);
    return this.buf.readUInt16LE(offset);
  }
  u32(offset: number, what: string): number {
    this.check(offset, 4, what);
    return this.buf.readUInt32LE(offset);
  }
  u64(offset: number, what: string): number {
    this.check(offset, 8, what);
    const value = this.buf.readBigUInt64LE(offset);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(`malformed ELF file: ${what} (${value}) is too large`);
    return Number(value);
  }
  /** A NUL-terminated string at `offset` inside [start, end). */
  cstring(start: number, end: number, offset: number, what: string): string {
    const at = start + offset;
    if (offset < 0 || at >= end || end > this.buf.length) throw new ElfError(`malformed ELF file: ${what} name offset ${offset} is outside its string table`);
    const limit = Math.min(end, at + MAX_NAME);
    const nul = this.buf.indexOf(0, at);
    if (nul < 0 || nul >= limit) throw new ElfError(`malformed ELF file: ${what} name at ${at} is not terminated`);
    return this.buf.toString('latin1', at, nul);
  }
}

interface Section {
  readonly type: number;
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly info: number;
  readonly entsize: number;
}

/** Parse the program headers and the dynamic symbol table of an ELF64 little-endian file. */
export function parseElf(buf: Buffer): ElfImage {
  const r = new Reader(buf);
  if (buf.length < 64) throw new ElfError(`not an ELF file: ${buf.length} bytes is shorter than an ELF64 header`);
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new ElfError('not an ELF file: bad magic');
  if (buf[4] !== 2) throw new ElfError(`not an ELF64 file (class ${buf[4]})`);
  if (buf[5] !== 1) throw new ElfError(`not a little-endian ELF file (data encoding ${buf[5]})`);
  const machineCode = r.u16(18, 'e_machine');
  const phoff = r.u64(32, 'e_phoff');
  const shoff = r.u64(40, 'e_shoff');
  const phentsize = r.u16(54, 'e_phentsize');
  const phnum = r.u16(56, 'e_phnum');
  const shentsize = r.u16(58, 'e_shentsize');
  const shnum = r.u16(60, 'e_shnum');
  if (phnum > 0 && phentsize < 56) throw new ElfError(`malformed ELF file: program header entries of ${phentsize} bytes`);
  if (shnum > 0 && shentsize < 64) throw new ElfError(`malformed ELF file: section header entries of ${shentsize} bytes`);

  const loads: LoadSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (r.u32(at, 'p_type') !== PT_LOAD) continue;
    loads.push({ fileOffset: r.u64(at + 8, 'p_offset'), vaddr: r.u64(at + 16, 'p_vaddr'), fileSize: r.u64(at + 32, 'p_filesz') });
  }

  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    sections.push({
      type: r.u32(at + 4, 'sh_type'), offset: r.u64(at + 24, 'sh_offset'), size: r.u64(at + 32, 'sh_size'),
      link: r.u32(at + 40, 'sh_link'), info: r.u32(at + 44, 'sh_info'), entsize: r.u64(at + 56, 'sh_entsize'),
    });
  }
  const sectionAt = (index: number, what: string): Section => {
    const section = sections[index];
    if (!section) throw new ElfError(`malformed ELF file: ${what} links to section ${index} of ${sections.length}`);
    if (section.offset + section.size > buf.length) throw new ElfError(`truncated ELF file: ${what} section ends past the file`);
    return section;
  };

  const dynsymIndex = sections.findIndex((s) => s.type === SHT_DYNSYM);
  const machine = machineCode === EM_X86_64 ? 'x86_64' : machineCode === EM_AARCH64 ? 'aarch64' : 'other';
  if (dynsymIndex < 0) return { machine, loads, dynamicSymbols: [] };
  const dynsym = sectionAt(dynsymIndex, '.dynsym');
  const dynstr = sectionAt(dynsym.link, '.dynsym strings');
  if (dynsym.entsize !== 24) throw new ElfError(`malformed ELF file: .dynsym entries of ${dynsym.entsize} bytes`);
  const count = Math.floor(dynsym.size / 24);

  // Version names by version index, from .gnu.version_d (the versions this file defines).
  const versionNames = new Map<number, string>();
  const verdefIndex = sections.findIndex((s) => s.type === SHT_GNU_VERDEF);
  if (verdefIndex >= 0) {
    const verdef = sectionAt(verdefIndex, '.gnu.version_d');
    const strings = sectionAt(verdef.link, '.gnu.version_d strings');
    let at = verdef.offset;
    // sh_info is the entry count; the chain also ends at vd_next 0. Both bound the loop.
    for (let i = 0; i < verdef.info && i < 0x8000; i++) {
      const ndx = r.u16(at + 4, 'vd_ndx');
      const aux = r.u32(at + 12, 'vd_aux');
      const next = r.u32(at + 16, 'vd_next');
      const name = r.u32(at + aux, 'vda_name');
      versionNames.set(ndx & VERSYM_INDEX, r.cstring(strings.offset, strings.offset + strings.size, name, 'version'));
      if (next === 0) break;
      at += next;
    }
  }
  const versymIndex = sections.findIndex((s) => s.type === SHT_GNU_VERSYM);
  const versym = versymIndex >= 0 ? sectionAt(versymIndex, '.gnu.version') : null;
  if (versym && versym.size < count * 2) throw new ElfError(`malformed ELF file: .gnu.version has ${versym.size / 2} entries for ${count} symbols`);

  const symbols: DynamicSymbol[] = [];
  for (let i = 1; i < count; i++) {
    const at = dynsym.offset + i * 24;
    const nameOffset = r.u32(at, 'st_name');
    if (nameOffset === 0) continue;
    const info = r.u8(at + 4, 'st_info');
    const shndx = r.u16(at + 6, 'st_shndx');
    const name = r.cstring(dynstr.offset, dynstr.offset + dynstr.size, nameOffset, 'symbol');
    const vs = versym ? r.u16(versym.offset + i * 2, 'versym') : 1;
    const index = vs & VERSYM_INDEX;
    // 0 is local, 1 the unversioned global base; 2 and up name a version (defined here or needed).
    const version = index >= 2 ? (versionNames.get(index) ?? null) : null;
    const type = info & 0xf;
    symbols.push({
      name, version, isDefault: (vs & VERSYM_HIDDEN) === 0, defined: shndx !== 0, absolute: shndx === SHN_ABS,
      isFunction: type === STT_FUNC || type === STT_GNU_IFUNC,
      vaddr: r.u64(at + 8, 'st_value'), size: r.u64(at + 16, 'st_size'),
    });
  }
  return { machine, loads, dynamicSymbols: symbols };
}

/** The file offset of a virtual address, through the PT_LOAD segment that holds it; null if none does. */
export function fileOffsetOf(image: ElfImage, vaddr: number): number | null {
  for (const load of image.loads) {
    if (vaddr >= load.vaddr && vaddr < load.vaddr + load.fileSize) return vaddr - load.vaddr + load.fileOffset;
  }
  return null;
}

export interface FunctionLocation {
  readonly name: string;
  readonly version: string | null;
  readonly vaddr: number;
  /** Where a uprobe goes: `PATH:0xOFFSET`. */
  readonly fileOffset: number;
}

/**
 * The default-version definition of an exported function (`name@@VERSION`, or `name` unversioned),
 * or null when the file does not export it. Hidden `name@VERSION` compat definitions are skipped.
 */
export function findExportedFunction(image: ElfImage, name: string): FunctionLocation | null {
  const found = image.dynamicSymbols.find((s) => s.name === name && s.defined && !s.absolute && s.isFunction && s.isDefault);
  if (!found) return null;
  const fileOffset = fileOffsetOf(image, found.vaddr);
  if (fileOffset === null) throw new ElfError(`malformed ELF file: ${name} at 0x${found.vaddr.toString(16)} is in no loaded segment`);
  return { name, version: found.version, vaddr: found.vaddr, fileOffset };
}

/** Default cap for readFileCapped: far above any shared library we probe (libibverbs is ~150 KiB). */
export const MAX_ELF_BYTES = 64 * 1024 * 1024;

/** Read a regular file whole, refusing one larger than `maxBytes` (ElfError). */
export function readFileCapped(path: string, maxBytes = MAX_ELF_BYTES): Buffer {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ElfError(`${path} is not a regular file`);
    if (stat.size > maxBytes) throw new ElfError(`${path} is ${stat.size} bytes, more than the ${maxBytes} this reader accepts`);
    const buf = Buffer.alloc(stat.size);
    let filled = 0;
    while (filled < buf.length) {
      const n = readSync(fd, buf, filled, buf.length - filled, filled);
      if (n === 0) break;
      filled += n;
    }
    return buf.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}
