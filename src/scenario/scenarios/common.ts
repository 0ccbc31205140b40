// Pieces the exit, overlap-lifetime, readonly-private and truncate scenarios share: the row they
// start from, how a set-up failure becomes a skip (or a refusal with its errno), polling a reading
// until it changes, a file filled with a known pattern, meminfo in one line, and releasing what a row
// created in order, past failures.

import { closeSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, writeSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { SyscallError } from '../../ffi/errno.js';
import { IBV_ACCESS_ON_DEMAND } from '../../ffi/verbs/enums.js';
import { PermissionError, RdmactlError, UnsupportedError, UsageError } from '../../lib/errors.js';
import { readMeminfo } from '../../proc/meminfo.js';
import { classify, type Content } from '../../fork/observe.js';
import { firstPfn, observe, processSees, type EvidenceTarget } from '../evidence.js';
import type { Observation, ScenarioCase, ScenarioRow, ScenarioRunContext } from '../types.js';

/** The row before anything ran: verdict 'error' until the scenario reaches one. */
export function startRow(scenario: string, c: ScenarioCase, ctx: ScenarioRunContext): ScenarioRow {
  const onDemand = c.backend === 'verbs' && (ctx.verbsAccess & IBV_ACCESS_ON_DEMAND) !== 0;
  return {
    scenario, variant: c.variant, backend: c.backend, backing: c.backing, length: null,
    pinned: c.backend === 'uring' || (c.backend === 'verbs' && !onDemand), onDemand,
    devicePath: null, observations: [], verdict: 'error', reason: null, elapsedMs: 0,
  };
}

export function skippedRow(scenario: string, c: ScenarioCase, ctx: ScenarioRunContext, reason: string): ScenarioRow {
  return { ...startRow(scenario, c, ctx), verdict: 'skipped', reason };
}

/** Sets the row's elapsed time (ms, one decimal) from `started` (performance.now()). */
export function finishRow(row: ScenarioRow, started: number): ScenarioRow {
  row.elapsedMs = Math.round((performance.now() - started) * 10) / 10;
  return row;
}

/** The kernel's own refusal inside an engine error (which wraps it as `cause`), or null. */
export function refusalOf(err: unknown): SyscallError | null {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof SyscallError) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/**
 * The kernel refusing to pin this kind of mapping (EFAULT, EACCES, EOPNOTSUPP from the registration
 * call) — a verdict of the scenarios that ask for it — or null for any other failure (limits, no
 * device, a broken set-up), which is a skip or an error.
 */
export function pinRefusalOf(err: unknown): SyscallError | null {
  const refusal = refusalOf(err);
  if (refusal === null || refusal.call === 'io_uring_setup') return null;
  return ['EFAULT', 'EACCES', 'EOPNOTSUPP'].includes(refusal.errnoName) ? refusal : null;
}

/**
 * Why a row cannot be set up on this machine (no hugepages, no THP, io_uring disabled, over a limit),
 * as a skip reason; null for a failure that is a bug and must propagate.
 */
export function setupSkipReason(err: unknown): string | null {
  if (err instanceof UnsupportedError || err instanceof PermissionError || err instanceof UsageError) return err.message;
  if (err instanceof RdmactlError || err instanceof SyscallError) return `cannot set up here: ${err.message}`;
  return null;
}

/**
 * observe() for a range this process has just unmapped. What the process sees and the PFN are read
 * first, one page only: any large allocation (observe() itself allocates buffers of the range's size,
 * which malloc serves with mmap) may land in the hole, and the process would then "see" our own buffer.
 */
export function observeUnmapped(step: string, target: EvidenceTarget, pageBytes: number, note: string | null): Observation {
  const seen = processSees(target.pid, target.addr, pageBytes);
  const pfn = firstPfn(target.pid, target.addr);
  return observe(step, target, { processSees: seen, pfn, note });
}

/** An observation made without the process (it is gone, or its range is): only what is still there to read. */
export function bareObservation(step: string, fields: Partial<Omit<Observation, 'step'>>): Observation {
  return {
    step, pinnedBytes: null, lockedBytes: null, pinsOutstanding: null, pfn: null, node: null,
    processSees: null, deviceReads: null, note: null, ...fields,
  };
}

export interface Polled {
  /** The condition held before the timeout. */
  ok: boolean;
  /** Milliseconds from the start of polling to the reading that held (or to the timeout). */
  ms: number;
}

/** Reads `condition` every `intervalMs` (letting the event loop run) until it holds or `timeoutMs` passes. */
export async function pollUntil(condition: () => boolean, timeoutMs: number, intervalMs = 2, since = performance.now()): Promise<Polled> {
  for (;;) {
    if (condition()) return { ok: true, ms: Math.round((performance.now() - since) * 10) / 10 };
    if (performance.now() - since >= timeoutMs) return { ok: false, ms: Math.round(performance.now() - since) };
    await sleep(intervalMs);
  }
}

/** Mlocked and Unevictable from /proc/meminfo, in one line for an observation's note. */
export function meminfoLine(): string {
  const m = readMeminfo();
  return `meminfo Mlocked ${m.mlockedBytes / 1024} kB, Unevictable ${m.unevictableBytes / 1024} kB`;
}

/** A temporary regular file filled with one byte, open read-write; close() closes and removes it. */
export class PatternFile implements Disposable {
  readonly path: string;
  readonly fd: number;
  private readonly dir: string;
  private isClosed = false;

  constructor(readonly length: number, byte: number, directory = tmpdir()) {
    this.dir = mkdtempSync(join(directory, 'rdmactl-scenario-'));
    this.path = join(this.dir, 'file');
    try {
      this.fd = openSync(this.path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
    } catch (err) {
      rmSync(this.dir, { recursive: true, force: true });
      throw err;
    }
    try {
      this.fill(byte);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** pwrite `byte` over the whole file (through the page cache, as any writer of the file would). */
  fill(byte: number): void {
    writeAll(this.fd, Buffer.alloc(this.length, byte));
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    try { closeSync(this.fd); } finally { rmSync(this.dir, { recursive: true, force: true }); }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** pwrite all of `bytes` at offset 0. */
export function writeAll(fd: number, bytes: Buffer): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done, done);
}

/** What a file holds now, read with pread: a pattern, or 'eof' when it has no bytes left (truncated). */
export type FileContent = Content | 'eof';

/** pread of up to `length` bytes at offset 0 of `fd`. */
export function fileSees(fd: number, length: number): { content: FileContent; bytes: number } {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, got);
    if (n === 0) break;
    got += n;
  }
  return { content: got === 0 ? 'eof' : classify(buf.subarray(0, got)), bytes: got };
}

/** "file (pread): 65536 bytes of pre-fork" / "file (pread): EOF, 0 bytes". */
export function fileLine(fd: number, length: number): { content: FileContent; line: string } {
  const { content, bytes } = fileSees(fd, length);
  return { content, line: content === 'eof' ? 'file (pread): EOF, 0 bytes' : `file (pread): ${bytes} bytes, ${content}` };
}

const FILESYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x01021994, 'tmpfs (shmem)'], [0xef53, 'ext2/3/4'], [0x58465342, 'xfs'], [0x9123683e, 'btrfs'],
  [0x794c7630, 'overlayfs'], [0x01021997, '9p'], [0x6969, 'nfs'], [0x65735546, 'fuse'], [0xf2f52010, 'f2fs'],
]);

/** The filesystem a file lives on (statfs f_type), by name where known: pins of shmem and other files differ. */
export function filesystemOf(path: string): string {
  try {
    const type = Number(statfsSync(path).type);
    return FILESYSTEMS.get(type) ?? `filesystem 0x${type.toString(16)}`;
  } catch {
    return 'unknown filesystem';
  }
}

/** Runs every step in order, past failures; throws the first failure once all have run. */
export function releaseInOrder(steps: ReadonlyArray<(() => unknown) | null | undefined>): void {
  let failure: unknown;
  let failed = false;
  for (const step of steps) {
    if (!step) continue;
    try {
      step();
    } catch (err) {
      if (!failed) failure = err;
      failed = true;
    }
  }
  if (failed) throw failure;
}

/** Pages of `bytes` (rounded up). */
export function pagesOf(bytes: number, pageBytes: number): number {
  return Math.ceil(bytes / pageBytes);
}
