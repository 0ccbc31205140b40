// Every whole-file read and every line has a size cap: a file beyond it is refused like a permission
// (counted as unreadable by a scan), never read until the heap runs out. Checked on a real sparse
// file just past the cap, through both readers; a file just under it is read whole.
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_FILE_BYTES, ProcUnreadableError, readProcLines, readProcText } from '../../src/proc/procfs.js';

const dir = mkdtempSync(join(tmpdir(), 'rdmactl-cap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('size cap of the /proc readers', () => {
  it('readProcText refuses a file larger than the cap with EFBIG, then reads small files as before', () => {
    const big = join(dir, 'big');
    writeFileSync(big, '');
    truncateSync(big, MAX_FILE_BYTES + 4096);
    let caught: unknown;
    try { readProcText(big); } catch (err) { caught = err; }
    expect(caught).toBeInstanceOf(ProcUnreadableError);
    expect((caught as ProcUnreadableError).code).toBe('EFBIG');
    expect((caught as Error).message).toBe(`cannot read ${big}: larger than 64 MiB, not read`);
    expect(readProcText('/proc/self/comm')).toMatch(/\n$/);
  });

  it('readProcLines refuses a line longer than the cap (a sparse file is one line of NULs), streams long files of short lines', () => {
    const big = join(dir, 'one-line');
    writeFileSync(big, '');
    truncateSync(big, MAX_FILE_BYTES + 4096);
    expect(() => readProcLines(big, () => undefined)).toThrow(ProcUnreadableError);
    const lines = join(dir, 'lines');
    writeFileSync(lines, 'x\n'.repeat(200_000));
    let count = 0;
    expect(readProcLines(lines, (bytes, start, end) => { for (let i = start; i < end; i++) if (bytes[i] === 10) count++; })).toBe(true);
    expect(count).toBe(200_000);
  });
});
