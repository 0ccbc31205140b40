// The ELF reader against binutils' own reading of the same files (nm for the dynamic symbols and
// their versions, readelf for the PT_LOAD segments), and against malformed input.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ElfError, findExportedFunction, parseElf, readFileCapped, type ElfImage } from '../../src/trace/elf.js';

const LIBIBVERBS = '/usr/lib/x86_64-linux-gnu/libibverbs.so.1';
/** A small dynamically linked ELF64 that every Debian system has (coreutils). */
const SMALL_ELF = '/bin/true';

function tool(name: string): boolean {
  return spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0;
}
const haveNm = tool('nm');
const haveReadelf = tool('readelf');
const haveLib = existsSync(LIBIBVERBS);
const skipLib = !haveNm || !haveReadelf || !haveLib;
if (skipLib) {
  console.warn(`SKIP elf/libibverbs: ${!haveLib ? `${LIBIBVERBS} is missing (libibverbs1)` : 'nm or readelf is missing (binutils)'}`);
}

/** nm's defined dynamic symbols as `ADDR NAME@VERSION` / `NAME@@VERSION` / `NAME`, absolute ones left out. */
function nmDefined(path: string): string[] {
  const out = spawnSync('nm', ['-D', '--with-symbol-versions', path], { encoding: 'utf8' });
  expect(out.status, out.stderr).toBe(0);
  const rows: string[] = [];
  for (const line of out.stdout.split('\n')) {
    const m = /^([0-9a-f]{16}) (\S) (\S+)$/.exec(line);
    if (!m || m[2] === 'A' || m[2] === 'U' || m[2] === 'w' || m[2] === 'v') continue;
    rows.push(`${BigInt(`0x${m[1]}`).toString(16)} ${m[3]}`);
  }
  return rows.sort();
}

function oursDefined(image: ElfImage): string[] {
  return image.dynamicSymbols
    .filter((s) => s.defined && !s.absolute)
    .map((s) => `${s.vaddr.toString(16)} ${s.name}${s.version === null ? '' : s.isDefault ? `@@${s.version}` : `@${s.version}`}`)
    .sort();
}

/** readelf's PT_LOAD segments: [offset, vaddr, filesz]. */
function readelfLoads(path: string): [number, number, number][] {
  const out = spawnSync('readelf', ['-lW', path], { encoding: 'utf8' });
  expect(out.status, out.stderr).toBe(0);
  return [...out.stdout.matchAll(/^\s+LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)/gm)]
    .map((m) => [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)]);
}

describe.skipIf(skipLib)('libibverbs.so.1 as nm and readelf read it', () => {
  const image = parseElf(readFileCapped(LIBIBVERBS));

  it('finds the same defined dynamic symbols, addresses and versions (@ and @@) as nm', () => {
    const nm = nmDefined(LIBIBVERBS);
    expect(nm.length).toBeGreaterThan(50);
    expect(oursDefined(image)).toEqual(nm);
  });

  it('picks the default version of ibv_reg_mr and maps it to its file offset through PT_LOAD', () => {
    const nm = nmDefined(LIBIBVERBS);
    const loads = readelfLoads(LIBIBVERBS);
    expect(image.loads.map((l) => [l.fileOffset, l.vaddr, l.fileSize])).toEqual(loads);
    for (const name of ['ibv_reg_mr', 'ibv_dereg_mr', 'ibv_reg_mr_iova2']) {
      const defaults = nm.filter((row) => row.split(' ')[1]!.startsWith(`${name}@@`));
      expect(defaults, `nm has one ${name}@@`).toHaveLength(1);
      const nmAddr = parseInt(defaults[0]!.split(' ')[0]!, 16);
      const found = findExportedFunction(image, name)!;
      expect(found.vaddr).toBe(nmAddr);
      expect(found.version).toBe(defaults[0]!.split('@@')[1]);
      const segment = loads.find(([, vaddr, size]) => nmAddr >= vaddr && nmAddr < vaddr + size)!;
      expect(found.fileOffset).toBe(nmAddr - segment[1] + segment[0]);
    }
    // ibv_reg_mr also has a hidden compat version at another address: not the one picked.
    const compat = nm.filter((row) => /^\S+ ibv_reg_mr@[^@]/.test(row));
    if (compat.length > 0) expect(compat.map((row) => parseInt(row, 16))).not.toContain(findExportedFunction(image, 'ibv_reg_mr')!.vaddr);
    // Header inlines are not exported.
    expect(findExportedFunction(image, '__ibv_reg_mr')).toBeNull();
    expect(findExportedFunction(image, 'no_such_function')).toBeNull();
  });
});

describe('malformed files raise ElfError and nothing else', () => {
  function onlyElfError(buf: Buffer): 'ok' | 'elf-error' {
    try {
      parseElf(buf);
      return 'ok';
    } catch (error) {
      if (error instanceof ElfError) return 'elf-error';
      throw error;
    }
  }

  it('rejects empty, short, garbage and non-ELF64-LE input with a clear message', () => {
    expect(() => parseElf(Buffer.alloc(0))).toThrow(/not an ELF file: 0 bytes/);
    expect(() => parseElf(Buffer.from('hello world, this is not an ELF file at all; it is plain text.....'))).toThrow(/bad magic/);
    const elf32 = Buffer.alloc(64);
    elf32.writeUInt32BE(0x7f454c46, 0);
    elf32[4] = 1;
    expect(() => parseElf(elf32)).toThrow(/not an ELF64 file/);
    const bigEndian = Buffer.alloc(64);
    bigEndian.writeUInt32BE(0x7f454c46, 0);
    bigEndian[4] = 2;
    bigEndian[5] = 2;
    expect(() => parseElf(bigEndian)).toThrow(/not a little-endian/);
    // A header whose section table is far past the end of the file.
    const header = Buffer.alloc(64);
    header.writeUInt32BE(0x7f454c46, 0);
    header[4] = 2;
    header[5] = 1;
    header.writeBigUInt64LE(0x1000n, 40);
    header.writeUInt16LE(64, 58);
    header.writeUInt16LE(3, 60);
    expect(() => parseElf(header)).toThrow(ElfError);
    header.writeBigUInt64LE(0xffffffffffffff00n, 40);
    expect(() => parseElf(header)).toThrow(/too large/);
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 200; i++) {
      const garbage = Buffer.from(Array.from({ length: Math.floor(random() * 512) }, () => Math.floor(random() * 256)));
      if (garbage.length >= 6) garbage.set([0x7f, 0x45, 0x4c, 0x46, 2, 1], 0); // get past the magic
      expect(onlyElfError(garbage)).toBe('elf-error');
    }
  });

  it.skipIf(!existsSync(SMALL_ELF))('rejects every truncation and survives byte corruption of a real ELF file', () => {
    const whole = readFileCapped(SMALL_ELF);
    expect(onlyElfError(whole)).toBe('ok');
    // The section headers are at the end: every shorter prefix must fail, cleanly.
    for (let length = 0; length < whole.length; length += 97) expect(onlyElfError(whole.subarray(0, length))).toBe('elf-error');
    expect(onlyElfError(whole.subarray(0, whole.length - 1))).toBe('elf-error');
    let seed = 99;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 300; i++) {
      const copy = Buffer.from(whole);
      for (let j = 0; j < 8; j++) copy[Math.floor(random() * copy.length)] = Math.floor(random() * 256);
      // Corrupting the header's offsets and counts specifically.
      copy.writeUInt8(Math.floor(random() * 256), 32 + Math.floor(random() * 30));
      onlyElfError(copy);
    }
  });

  it('refuses a file larger than the cap and a directory', () => {
    expect(() => readFileCapped(SMALL_ELF, 100)).toThrow(/more than the 100/);
    expect(() => readFileCapped('/')).toThrow(ElfError);
  });
});
