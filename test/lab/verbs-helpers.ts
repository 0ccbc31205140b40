// Helpers for the lab tests that register real verbs MRs: the built CLI, detached holders (this test
// process is a child subreaper, so orphaned holders become its children and are reaped here with
// waitpid instead of depending on the guest's PID 1), the kernel MR table, and /proc readings taken by
// the test itself.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { join } from 'node:path';
import { PR_SET_CHILD_SUBREAPER, WNOHANG, prctl, waitpid, type WaitResult } from '../../src/ffi/libc.js';
import { ROOT, json, run, type CmdResult } from './helpers.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const BIN = `${ROOT}bin/rdmactl`;
export const PROBE = `${ROOT}test/lab/probe.mjs`;
/** Drops to nobody without any capability (so no CAP_IPC_LOCK: RLIMIT_MEMLOCK is enforced). */
export const UNPRIVILEGED = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];

export function becomeSubreaper(): void {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
}

/** A private XDG_RUNTIME_DIR (0700) under /tmp, so held records never mix between tests. */
export function labRuntime(): { dir: string; env: NodeJS.ProcessEnv; cleanup: () => void } {
  const dir = mkdtempSync('/tmp/rdmactl-lab-');
  return { dir, env: { ...process.env, XDG_RUNTIME_DIR: dir, RDMACTL_DEBUG: '', NO_COLOR: '1' }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The built CLI as a child process (optionally behind a prefix such as setpriv). */
export function rdmactl(args: string[], env: NodeJS.ProcessEnv, prefix: string[] = []): CmdResult {
  return run([...prefix, process.execPath, BIN, ...args], { env, timeoutMs: 90_000 });
}

/** Parses the single JSON document (or first JSON line) a command printed. */
export function parseJson<T>(r: CmdResult, what: string): T {
  if (r.status !== 0) throw new Error(`${what} exited with ${r.status ?? r.signal}:\n${r.stderr}${r.stdout}`);
  const line = r.stdout.split('\n').find((l) => l.trim().startsWith('{'));
  if (!line) throw new Error(`${what} printed no JSON:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line) as T;
}

export interface RegRecord {
  event: string;
  id: string;
  pid: number;
  addr: string;
  length: number;
  handles: number;
  device: string;
  lkey: number;
  rkey: number;
  pinnedBytesBefore: number;
  pinnedBytesAfter: number;
  protections: string[] | null;
  registrations: Array<{ addr: string; length: number; lkey: number; rkey: number; access: number; accessFlags: string; fork: string }>;
}

export interface LsRow {
  source: string;
  pid: number;
  addr: string | null;
  endAddr: string | null;
  length: number;
  device: string | null;
  lkey: string | null;
  rkey: string | null;
  handle: string;
  forkProtection: string | null;
  overlap: boolean;
  doubleCountedBytes: number;
  evidence: string | null;
}

export interface KernelMrRow {
  ifname: string;
  mrn: number;
  rkey?: string;
  lkey?: string;
  mrlen: number;
  pdn: number;
  pid: number;
  comm: string;
}

/** The kernel's MR table, read by the test with iproute2 (`rdma -j -d res show mr`). */
export function kernelMrs(): KernelMrRow[] {
  return json<KernelMrRow[]>(['rdma', '-j', '-d', 'res', 'show', 'mr']);
}

/** How the kernel MR table prints a key: hex without 0x (rdmactl reg --json prints keys as numbers). */
export const keyHex = (key: number): string => key.toString(16);

/** `rdmactl ls --json` registrations. */
export function lsRows(env: NodeJS.ProcessEnv, pid?: number): LsRow[] {
  const args = ['ls', '--json', ...(pid !== undefined ? ['--pid', String(pid)] : [])];
  return parseJson<{ registrations: LsRow[] }>(rdmactl(args, env), 'rdmactl ls --json').registrations;
}

/** Alive and not a zombie (a zombie has no mm: nothing pinned, no VmPin line at all). */
export function running(pid: number): boolean {
  let text: string;
  try { text = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return false; }
  const state = text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
  return state !== 'Z' && state !== 'X';
}

/** Reaps an adopted (or own) child once it exited; returns false if it is not our child. */
export async function reap(pid: number, timeoutMs = 15_000): Promise<boolean> {
  return (await reapStatus(pid, timeoutMs)) !== null;
}

/** Like reap, with the wait status (exit code or signal); null if it is not our child. */
export async function reapStatus(pid: number, timeoutMs = 15_000): Promise<WaitResult | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let result: WaitResult | null;
    try {
      result = waitpid(pid, WNOHANG);
    } catch {
      return null; // ECHILD: not ours, or already reaped
    }
    if (result !== null) return result;
    if (Date.now() > deadline) throw new Error(`pid ${pid} did not exit within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Releases a detached holder without another CLI start (each costs seconds under TCG): holders release
 * on SIGTERM (`dereg` adds checks and the wait; verbs-reg.test.ts tests it). Reaps it; true when it
 * released and exited with status 0.
 */
export async function releaseHolder(pid: number): Promise<boolean> {
  process.kill(pid, 'SIGTERM');
  const status = await reapStatus(pid);
  return status !== null && status.exitCode === 0;
}

/** SIGTERM (holders release on it), wait, SIGKILL if needed; reap. For cleanup after failures. */
export async function stopHolders(pids: Iterable<number>): Promise<void> {
  for (const pid of pids) {
    if (running(pid)) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    const reaped = await reap(pid, 10_000).catch(() => false);
    if (!reaped && running(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await reap(pid, 5_000).catch(() => false);
  }
}

export interface HolderScope {
  /** Environment with this scope's private XDG_RUNTIME_DIR. */
  readonly env: NodeJS.ProcessEnv;
  readonly dir: string;
  /** Runs `rdmactl ARGS` (a `--detach --json` registration); its holder is stopped after the tests if still alive. */
  detach(args: string[], what: string): RegRecord;
  /** SIGTERM and reap a holder this scope started; true when it released and exited 0. */
  release(pid: number): Promise<boolean>;
  /** Stop tracking a holder the test released another way (e.g. `dereg`) and reaped. */
  forget(pid: number): void;
}

/**
 * The setup every detached-holder suite needs, registered as hooks of the calling describe(): become
 * a child subreaper, use a private runtime directory, and stop and reap every holder left at the end.
 */
export function holderScope(): HolderScope {
  const holders = new Set<number>();
  let rt: ReturnType<typeof labRuntime> | undefined;
  beforeAll(() => {
    becomeSubreaper();
    rt = labRuntime();
  });
  afterAll(async () => {
    await stopHolders(holders);
    rt?.cleanup();
  });
  const runtime = (): ReturnType<typeof labRuntime> => {
    if (!rt) throw new Error('holderScope used outside its describe()');
    return rt;
  };
  return {
    get env() { return runtime().env; },
    get dir() { return runtime().dir; },
    detach(args, what) {
      const rec = parseJson<RegRecord>(rdmactl(args, runtime().env), what);
      holders.add(rec.pid);
      return rec;
    },
    async release(pid) {
      const released = await releaseHolder(pid);
      holders.delete(pid);
      return released;
    },
    forget(pid) {
      holders.delete(pid);
    },
  };
}

/** VmPin in kB read by the test itself; null when the process has no mm (gone or a zombie). */
export function vmPinOf(pid: number): number | null {
  let text: string;
  try { text = readFileSync(`/proc/${pid}/status`, 'utf8'); } catch { return null; }
  const m = /^VmPin:\s+(\d+) kB$/m.exec(text);
  return m ? Number(m[1]) : null;
}

export interface VmaFlags { start: bigint; end: bigint; flags: string[] }

/** The VMAs of /proc/PID/smaps that intersect [addr, addr + length), with their VmFlags. */
export function vmasOver(pid: number, addr: bigint, length: number): VmaFlags[] {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const out: VmaFlags[] = [];
  let current: VmaFlags | null = null;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (head) {
      const start = BigInt(`0x${head[1]}`);
      const end = BigInt(`0x${head[2]}`);
      current = start < addr + BigInt(length) && addr < end ? { start, end, flags: [] } : null;
      if (current) out.push(current);
    } else if (current && line.startsWith('VmFlags:')) {
      current.flags = line.slice('VmFlags:'.length).trim().split(/\s+/);
    }
  }
  return out;
}

/** Bytes of [addr, addr + length) in VMAs carrying `flag` (e.g. 'dc' = MADV_DONTFORK). */
export function bytesWithFlag(vmas: readonly VmaFlags[], addr: bigint, length: number, flag: string): number {
  const end = addr + BigInt(length);
  let total = 0n;
  for (const v of vmas) {
    if (!v.flags.includes(flag)) continue;
    const lo = v.start > addr ? v.start : addr;
    const hi = v.end < end ? v.end : end;
    if (hi > lo) total += hi - lo;
  }
  return Number(total);
}

/** Runs test/lab/probe.mjs with node (optionally behind a prefix) and parses its JSON. */
export function probe<T>(args: string[], prefix: string[] = [], env: NodeJS.ProcessEnv = process.env): T {
  const r = run([...prefix, process.execPath, PROBE, ...args], { env, timeoutMs: 90_000 });
  return parseJson<T>(r, `probe ${args.join(' ')}`);
}
