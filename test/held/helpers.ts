// Helpers for held-registration tests: a private runtime directory per test, real holders started by
// the built binary, and reaping. A detached holder's parent (`rdmactl reg --detach`) exits at once,
// so the holder is re-parented; this machine's PID 1 does not reap, so the test process makes itself
// a child subreaper: orphaned holders become *its* children and are reaped here with waitpid.
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PR_SET_CHILD_SUBREAPER, WNOHANG, prctl, waitpid, type WaitResult } from '../../src/ffi/libc.js';
import { afterAll, beforeAll } from 'vitest';
import { BIN, builtOrThrow, runSync, type SyncResult } from '../helpers/spawn.js';
import type { RegistrationSetReport } from '../../src/engine/report.js';

export function becomeSubreaper(): void {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
}

/** A fresh XDG_RUNTIME_DIR (0700), optionally owned by another uid. */
export function tempRuntime(owner?: number): { dir: string; env: NodeJS.ProcessEnv; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'rdmactl-held-test-'));
  if (owner !== undefined) chownSync(dir, owner, owner);
  return { dir, env: { ...process.env, XDG_RUNTIME_DIR: dir, RDMACTL_DEBUG: '' }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The world of a test file (or describe) that starts holders: the built binary checked, this process
 * a subreaper, one private runtime directory; afterwards every pid pushed to `holders` killed and
 * reaped, every path pushed to `dirs` removed, and the runtime directory with them.
 */
export function holderSandbox(): { runtime: ReturnType<typeof tempRuntime>; holders: number[]; dirs: string[] } {
  const sandbox = { runtime: tempRuntime(), holders: [] as number[], dirs: [] as string[] };
  beforeAll(() => {
    builtOrThrow();
    becomeSubreaper();
  });
  afterAll(async () => {
    await killAndReap(sandbox.holders);
    for (const dir of sandbox.dirs) rmSync(dir, { recursive: true, force: true });
    sandbox.runtime.cleanup();
  });
  return sandbox;
}

/** Runs the built rdmactl to completion (a detached holder does not keep it waiting). */
export function rdmactlBin(args: string[], env: NodeJS.ProcessEnv, prefix: string[] = []): SyncResult & { millis: number } {
  const started = Date.now();
  const result = runSync([...prefix, process.execPath, BIN, ...args], { env });
  return { ...result, millis: Date.now() - started };
}

/** Independent reading of /proc/PID/stat: state and start time (field 22), or null when gone. */
export function procStat(pid: number): { state: string; startTime: number; ppid: number; session: number } | null {
  let text: string;
  try { text = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return null; }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0]!, ppid: Number(rest[1]), session: Number(rest[3]), startTime: Number(rest[19]) };
}

/** Alive and not a zombie. */
export function running(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

export async function until(what: string, condition: () => boolean, timeoutMillis = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits for an adopted (or own) child to exit and reaps it; null if it is not our child. */
export async function reap(pid: number, timeoutMillis = 10_000): Promise<WaitResult | null> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    let result: WaitResult | null;
    try {
      result = waitpid(pid, WNOHANG);
    } catch {
      return null; // ECHILD: not our child (or already reaped)
    }
    if (result !== null) return result;
    if (Date.now() > deadline) throw new Error(`pid ${pid} did not exit`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Kills (if still running) and reaps every pid. */
export async function killAndReap(pids: Iterable<number>): Promise<void> {
  for (const pid of pids) {
    if (running(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await reap(pid, 5_000).catch(() => null);
  }
}

/** A typed report of each backend, as a holder stores it (values made up; the shapes are the engine's). */
export function sampleReport(backend: 'verbs' | 'uring' | 'mlock' = 'uring', pid = process.pid): RegistrationSetReport {
  const common = {
    backendRequested: 'auto' as const, pid, backing: 'anon' as const, readOnly: false, protections: [], addr: '0x7f0000000000', length: 4096, buffers: 1,
    before: { pinnedBytes: 0, lockedBytes: 0 }, after: { pinnedBytes: 4096, lockedBytes: 0 }, memlockLimitBytes: 8 * 1024 * 1024,
  };
  const handle = { addr: '0x7f0000000000', length: 4096, elapsedMicros: 12 };
  switch (backend) {
    case 'verbs':
      return { backend, ...common, protections: ['fork-init'], handles: [{ ...handle, details: { device: 'rxe0', lkey: 0x2aa, rkey: 0x2ab, access: 7, accessFlags: 'local-write,remote-write,remote-read', fork: 'unneeded' } }] };
    case 'uring':
      return { backend, ...common, handles: [{ ...handle, details: { ringFd: 17, fixedBuffers: 1 } }] };
    case 'mlock':
      return { backend, ...common, after: { pinnedBytes: 0, lockedBytes: 4096 }, memlockLimitBytes: null, handles: [{ ...handle, details: { onFault: true } }] };
  }
}
