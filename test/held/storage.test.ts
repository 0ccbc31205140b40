// `reg --detach` where the runtime directory or TMPDIR cannot take a file: a read-only or full tmpfs
// mounted for the test, and a TMPDIR the (unprivileged) user cannot write. Each must end as one line
// with the documented exit status, with no holder running without its record and no record (or
// temporary file) without a holder.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findHolderProcesses } from '../../src/held/store.js';
import { UNPRIVILEGED, builtOrThrow, unprivilegedUnavailable } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, rdmactlBin, tempRuntime } from './helpers.js';

const NOBODY = 65534;

/** Holders (of any user) that write to `dir`/rdmactl: none may survive a failed reg. */
function holdersOf(dir: string): number[] {
  return findHolderProcesses().filter((h) => h.runtimeDir === join(dir, 'rdmactl')).map((h) => h.pid);
}

/** The one line a failed command must print: no stack, no internal error. */
function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n').filter((line) => !line.startsWith('  ')); // hints are indented
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/internal error|\n\s+at /);
}

const mountBase = mkdtempSync(join(tmpdir(), 'rdmactl-storage-test-'));
const mounted: string[] = [];

function mountTmpfs(name: string, options: string): string | null {
  const dir = join(mountBase, name);
  mkdirSync(dir);
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  if (result.status !== 0) return null;
  mounted.push(dir);
  return dir;
}

function remount(dir: string, options: string): void {
  const result = spawnSync('mount', ['-o', `remount,${options}`, dir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`remount ${dir}: ${result.stderr}`);
}

const mountProbe = ((): string | null => {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const dir = mountTmpfs('probe', 'size=16k');
  if (dir === null) return 'mount -t tmpfs failed here';
  spawnSync('umount', [dir]);
  mounted.pop();
  return null;
})();
if (mountProbe !== null) console.warn(`SKIPPING read-only/full runtime directory tests: ${mountProbe}`);

beforeAll(() => {
  builtOrThrow();
  becomeSubreaper();
});

afterEach(async () => {
  for (const dir of mounted) await killAndReap(holdersOf(dir));
});

afterAll(() => {
  for (const dir of mounted.splice(0)) spawnSync('umount', [dir]);
  rmSync(mountBase, { recursive: true, force: true });
});

describe.skipIf(mountProbe !== null)('a runtime directory that cannot take a record', () => {
  it('read-only, no rdmactl directory yet: exit 1, one line, nothing started', () => {
    const dir = mountTmpfs('ro-empty', 'ro,mode=0700')!;
    const result = rdmactlBin(['reg', '1M', '--backend', 'mlock', '--detach'], { ...process.env, XDG_RUNTIME_DIR: dir, RDMACTL_DEBUG: '' });
    expect(result.status).toBe(1);
    expectOneLine(result.stderr, new RegExp(`^rdmactl: cannot create the runtime directory ${dir}/rdmactl: read-only file system \\(EROFS\\)$`));
    expect(result.stdout).toBe('');
    expect(holdersOf(dir)).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('read-only with the rdmactl directory there: the holder registers, cannot record, releases and exits; exit 1, one line', () => {
    const dir = mountTmpfs('ro', 'mode=0700')!;
    mkdirSync(join(dir, 'rdmactl'), { mode: 0o700 });
    remount(dir, 'ro');
    const result = rdmactlBin(['reg', '1M', '--backend', 'uring', '--detach'], { ...process.env, XDG_RUNTIME_DIR: dir, RDMACTL_DEBUG: '' });
    expect(result.status).toBe(1);
    expectOneLine(result.stderr, new RegExp(`^rdmactl: cannot write a held record in ${dir}/rdmactl: read-only file system \\(EROFS\\)$`));
    expect(holdersOf(dir)).toEqual([]);
    expect(readdirSync(join(dir, 'rdmactl'))).toEqual([]);
  });

  it('full (ENOSPC): exit 1, one line, no holder, no record and no half-written temporary file', () => {
    const dir = mountTmpfs('full', 'size=16k,mode=0700')!;
    mkdirSync(join(dir, 'rdmactl'), { mode: 0o700 });
    // Fill every block; an inode (the record's temporary file) can still be created.
    let filled = 0;
    try {
      for (;;) { writeFileSync(join(dir, `fill${filled}`), Buffer.alloc(4096, 1)); filled++; }
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    const result = rdmactlBin(['reg', '1M', '--backend', 'uring', '--detach'], { ...process.env, XDG_RUNTIME_DIR: dir, RDMACTL_DEBUG: '' });
    expect(result.status).toBe(1);
    expectOneLine(result.stderr, new RegExp(`^rdmactl: cannot write a held record in ${dir}/rdmactl: no space left on device \\(ENOSPC\\)$`));
    expect(holdersOf(dir)).toEqual([]);
    expect(readdirSync(join(dir, 'rdmactl'))).toEqual([]);
  });
});

const unprivileged = unprivilegedUnavailable();

describe.skipIf(unprivileged !== null)('a TMPDIR the user cannot write (uid 65534)', () => {
  it.each([[['--detach']], [[]]])('reg --backing file-shared %j: exit 4, one line, nothing held', (extra) => {
    const runtime = tempRuntime(NOBODY);
    const tmp = mkdtempSync(join(tmpdir(), 'rdmactl-tmpdir-test-'));
    chmodSync(tmp, 0o755); // root's: nobody may look, not write
    chownSync(tmp, 0, 0);
    try {
      const result = rdmactlBin(['reg', '1M', '--backing', 'file-shared', '--backend', 'mlock', ...extra], { ...runtime.env, TMPDIR: tmp }, UNPRIVILEGED);
      expect(result.status).toBe(4);
      expectOneLine(result.stderr, new RegExp(`^rdmactl: cannot create a temporary file in ${tmp} for the file backing: EACCES$`));
      expect(holdersOf(runtime.dir)).toEqual([]);
      expect(readdirSync(runtime.dir).flatMap((name) => readdirSync(join(runtime.dir, name)))).toEqual([]);
      expect(readdirSync(tmp)).toEqual([]);
    } finally {
      runtime.cleanup();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
