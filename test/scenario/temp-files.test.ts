// The files the file-shared/file-private rows map (and `reg --backing file-shared` without --file) are
// created so that the kernel removes them: a process killed at any point (SIGKILL, SIGQUIT: no
// user-space clean-up runs) leaves nothing in $TMPDIR, and the disk space comes back. The real binary
// runs with a private TMPDIR and is killed while it writes its file and while the row holds it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, builtOrThrow, exited, startRdmactl } from '../helpers/spawn.js';
import { sleep } from '../fork/helpers.js';
import { accounting } from './helpers.js';

beforeAll(() => builtOrThrow());

const made: string[] = [];
afterAll(() => { for (const dir of made) rmSync(dir, { recursive: true, force: true }); });

function privateTmpdir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-test-tmpfiles-'));
  made.push(dir);
  return dir;
}

/** The child's mapped files under `dir` (/proc/PID/maps). */
function mappedUnder(pid: number, dir: string): string[] {
  try {
    return readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(` ${dir}/`));
  } catch {
    return [];
  }
}

/** The child's open files that live under `dir`: its fd path and the file's allocated bytes. */
function filesUnder(pid: number, dir: string): Array<{ fd: string; link: string; bytes: number }> {
  const out: Array<{ fd: string; link: string; bytes: number }> = [];
  let names: string[];
  try { names = readdirSync(`/proc/${pid}/fd`); } catch { return out; }
  for (const name of names) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${name}`);
      if (link.startsWith(`${dir}/`)) out.push({ fd: name, link, bytes: statSync(`/proc/${pid}/fd/${name}`).blocks * 512 });
    } catch { /* closed while we looked */ }
  }
  return out;
}

function lockedBytes(pid: number): number {
  try { return accounting(pid).lck; } catch { return 0; }
}

async function until<T>(what: string, probe: () => T | null, timeoutMs = 30_000, intervalMs = 2): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

const availableBytes = (dir: string): number => { const s = statfsSync(dir); return Number(s.bavail) * Number(s.bsize); };

const SIZE = 256 * 1024 * 1024;

describe('no file left in $TMPDIR when a scenario row is killed', { timeout: 120_000 }, () => {
  it.each([
    ['SIGKILL', 'while it writes the file'],
    ['SIGKILL', 'while the row holds the mlocked mapping'],
    ['SIGQUIT', 'while it writes the file'],
    ['SIGQUIT', 'while the row holds the mlocked mapping'],
  ] as const)('scenario truncate --backing file-shared --size 256M, %s %s: $TMPDIR stays empty, the space comes back', async (signal, when) => {
    const dir = privateTmpdir();
    const child = spawn(process.execPath, [BIN, 'scenario', 'truncate', '--backing', 'file-shared', '--backend', 'mlock', '--size', '256M', '--step-delay', '5000'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: dir } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout.resume();
    const pid = child.pid!;
    try {
      const held = await until(`the row's file ${when}`, () => {
        const files = filesUnder(pid, dir);
        if (files.length === 0) return null;
        // Some blocks written, so that their return can be told from other writers on this file system.
        if (when === 'while it writes the file') return files.reduce((sum, f) => sum + f.bytes, 0) >= 8 * 1024 * 1024 ? files : null;
        return lockedBytes(pid) >= SIZE ? filesUnder(pid, dir) : null;
      });
      // While it runs, the file has no name: nothing in the directory, only the child's fd.
      expect(readdirSync(dir), stderr).toEqual([]);
      const heldBytes = held.reduce((sum, f) => sum + f.bytes, 0);
      const availableWhileHeld = availableBytes(dir);
      child.kill(signal);
      const result = await exited(child as never);
      expect(result.signal ?? result.code, stderr).toBeTruthy();
      expect(readdirSync(dir)).toEqual([]);
      // The file's blocks are free again once the last fd (the child's) is gone. Other processes use
      // the same file system, so wait for at least half of them to show, a few seconds at most.
      if (when === 'while the row holds the mlocked mapping') expect(heldBytes).toBeGreaterThanOrEqual(SIZE);
      const back = await until('the file\'s blocks to be free', () => (availableBytes(dir) - availableWhileHeld >= heldBytes / 2 ? true : null), 5_000, 20).catch(() => false);
      expect(back, `${heldBytes} bytes held, ${availableBytes(dir) - availableWhileHeld} came back`).toBe(true);
    } finally {
      if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited(child as never); }
    }
  });

  it.each(['SIGKILL', 'SIGQUIT'] as const)('readonly-private --backend mlock, %s while the row holds the file: $TMPDIR stays empty', async (signal) => {
    const dir = privateTmpdir();
    const child = spawn(process.execPath, [BIN, 'scenario', 'readonly-private', '--backend', 'mlock', '--size', '16M', '--step-delay', '5000'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: dir } });
    child.stdout.resume();
    const pid = child.pid!;
    try {
      await until('the row to lock its mapping', () => (lockedBytes(pid) >= 16 * 1024 * 1024 ? true : null));
      expect(filesUnder(pid, dir).length).toBeGreaterThan(0);
      expect(readdirSync(dir)).toEqual([]);
      child.kill(signal);
      await exited(child as never);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited(child as never); }
    }
  });

  it.each(['SIGKILL', 'SIGQUIT'] as const)('reg --backing file-shared (no --file), %s after its first output line: $TMPDIR stays empty', async (signal) => {
    const dir = privateTmpdir();
    const saved = process.env['TMPDIR'];
    process.env['TMPDIR'] = dir; // startRdmactl passes our environment on
    let started: Awaited<ReturnType<typeof startRdmactl>>;
    try {
      started = await startRdmactl(['reg', '16M', '--backend', 'mlock', '--backing', 'file-shared', '--json', '--for', '60s']);
    } finally {
      if (saved === undefined) delete process.env['TMPDIR']; else process.env['TMPDIR'] = saved;
    }
    const { child, firstLine } = started;
    try {
      expect(JSON.parse(firstLine)).toMatchObject({ event: 'registered' });
      expect(mappedUnder(child.pid!, dir).length).toBeGreaterThan(0);
      child.kill(signal);
      await exited(child);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited(child); }
    }
  });
});
