// Test children that hold locked/pinned memory. They stay children of the test process and are
// reaped (PID 1 here does not reap orphans).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function findCompiler(): string | null {
  for (const cc of ['cc', 'gcc', 'clang']) {
    try {
      execFileSync(cc, ['--version'], { stdio: 'ignore' });
      return cc;
    } catch {
      // try the next one
    }
  }
  return null;
}

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755); // the unprivileged test user must reach files in it
  return dir;
}

/** Compiles helpers/pinner.c into dir; returns the binary path. */
export function buildPinner(cc: string, dir: string): string {
  const source = fileURLToPath(new URL('./pinner.c', import.meta.url));
  const binary = join(dir, 'pinner');
  execFileSync(cc, ['-O2', '-o', binary, source], { stdio: 'pipe' });
  return binary;
}

/** Copy of the binary under another name, so its comm is that name (first 15 bytes). */
export function renamedCopy(binary: string, dir: string, name: string): string {
  const path = join(dir, name);
  copyFileSync(binary, path);
  chmodSync(path, 0o755);
  return path;
}

export interface Pinner {
  child: ChildProcess;
  pid: number;
  lockedAddress: bigint;
  pinnedAddress: bigint;
  ringFd: number;
  /** Closes stdin (the pinner exits) and waits until it is reaped. */
  stop(): Promise<void>;
}

export function startPinner(binary: string, args: string[]): Promise<Pinner> {
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.stdin?.end();
    await exited;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /^ready (\S+) (\S+) (-?\d+)\n/.exec(out);
      if (match) {
        const address = (text: string): bigint => (text === '(nil)' ? 0n : BigInt(text));
        resolve({
          child,
          pid: child.pid!,
          lockedAddress: address(match[1]!),
          pinnedAddress: address(match[2]!),
          ringFd: Number(match[3]),
          stop,
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`pinner exited with ${code} before ready: ${err.trim()}`)));
    child.once('error', reject);
  });
}
