// /proc files read in pieces through one reused buffer (smaps, maps): the pieces hold whole lines,
// and a holder's smaps parses to the same VMAs as its whole text, with the layout of its maps.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readProcLines } from '../../src/proc/procfs.js';
import { mapsLayout, parseSmaps, readSmapsWithLayout, SmapsParser } from '../../src/proc/smaps.js';
import { builtOrThrow, exited, startRdmactl } from '../helpers/spawn.js';

let holder: Awaited<ReturnType<typeof startRdmactl>> | null = null;
afterAll(async () => {
  if (holder && holder.child.exitCode === null) {
    holder.child.kill('SIGTERM');
    await exited(holder.child);
  }
});

describe('smaps read in pieces', () => {
  it('readProcLines hands over whole lines, across its buffer, a line longer than the buffer, and a last line without newline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rdmactl-lines-'));
    try {
      const long = 'x'.repeat(200 * 1024);
      const lines = Array.from({ length: 5000 }, (_, i) => `line ${i} ${'y'.repeat(i % 97)}`);
      const text = [...lines, long, 'last'].join('\n');
      const path = join(dir, 'f');
      writeFileSync(path, text);
      const got: string[] = [];
      expect(readProcLines(path, (bytes, start, end) => {
        const piece = bytes.toString('utf8', start, end);
        // Every piece ends at a line end, except the file's last.
        expect(piece.endsWith('\n') || piece.endsWith('last')).toBe(true);
        got.push(piece);
      })).toBe(true);
      expect(got.join('')).toBe(text);
      expect(readProcLines(join(dir, 'missing'), () => {})).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a holder\'s smaps (a Node process: > 64 KiB) parses as the whole text does, and its layout is that of its maps', async () => {
    builtOrThrow();
    holder = await startRdmactl(['reg', '1M', '--backend', 'mlock', '--json']);
    const pid = holder.child.pid!;
    // A Node process may still map memory (its heap grows) between reads: take a moment where nothing moved.
    let matched = false;
    for (let attempt = 0; attempt < 20 && !matched; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
      const read = readSmapsWithLayout(pid)!;
      const maps = mapsLayout(pid);
      const whole = parseSmaps(text);
      if (read.layout !== maps || read.vmas.length !== whole.length || !read.vmas.every((vma, i) => vma.start === whole[i]!.start && vma.end === whole[i]!.end)) continue;
      expect(text.length).toBeGreaterThan(64 * 1024);
      // Page counters may move between two reads of a live process; the VMAs and their flags do not.
      const shape = (vmas: typeof whole) => vmas.map((v) => [v.start, v.end, v.perms, v.offset, v.device, v.inode, v.pathname, v.sizeBytes, [...v.flags].join(' ')]);
      expect(shape(read.vmas)).toEqual(shape(whole));
      expect(read.vmas.some((vma) => vma.flags.has('lo'))).toBe(true);
      matched = true;
    }
    expect(matched, 'the holder\'s mappings changed between every pair of reads').toBe(true);
  });

  it('flagsOnly gives the same VMAs and VmFlags with every counter 0, fed in any pieces, and keeps no layout', () => {
    const text = readFileSync('/proc/self/smaps', 'utf8');
    const whole = parseSmaps(text);
    const bytes = Buffer.from(text, 'latin1');
    const parser = new SmapsParser(true);
    // Pieces of whole lines, cut at every 7th line end.
    let start = 0;
    let lines = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 10 && ++lines % 7 === 0) {
        parser.feed(bytes, start, i + 1);
        start = i + 1;
      }
    }
    parser.feed(bytes, start, bytes.length);
    const shape = (vmas: typeof whole) => vmas.map((v) => [v.start, v.end, v.perms, v.offset, v.device, v.inode, v.pathname, [...v.flags].join(' ')]);
    expect(shape(parser.vmas)).toEqual(shape(whole));
    expect(whole.some((v) => v.flags.size > 0)).toBe(true);
    expect(parser.vmas.every((v) => v.sizeBytes === 0 && v.rssBytes === 0 && v.lockedBytes === 0 && v.kernelPageSizeBytes === 0)).toBe(true);
    expect(() => parser.layout()).toThrow();
  });
});
