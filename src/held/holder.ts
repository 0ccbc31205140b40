// Detached holders: `rdmactl reg … --detach` starts a second rdmactl (the holder) that registers,
// records the registration in the store, reports it on one stdout line, and keeps holding after the
// command that started it has exited — but only once that command has confirmed that the user got the id.
//
// Parent (spawnHolder): runs `node bin/rdmactl reg <same flags> --holder-token TOKEN` in its own
// session (setsid: no controlling terminal, so closing the terminal sends it no SIGHUP), with pipes on
// stdin, stdout and stderr. It waits for the holder's one JSON line, or for the holder to exit first —
// then the holder's error message, hints and exit code become the parent's. With the line in hand it
// prints the id, and only when that write succeeded does it send "ack" on the holder's stdin.
//
// Holder (holdDetached): listens for SIGTERM/SIGINT, writes its record, prints the line, then blocks
// reading stdin for the acknowledgement. "ack" → it points fds 0–2 at /dev/null, ignores SIGHUP and
// holds until SIGTERM/SIGINT or the --for deadline, releases, removes its record and exits 0.
// End of file instead (the parent could not print the id, or died at any moment — SIGKILL included:
// the kernel closes its end of the pipe) → nobody knows the id: it releases at once, removes its record
// and exits 1. So a holder keeps memory pinned only when its id reached the user's stdout.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { writeAllSync } from '../lib/context.js';
import { fileURLToPath } from 'node:url';
import { EXIT, RdmactlError, type ExitCode } from '../lib/errors.js';
import type { JsonValue } from '../lib/fields.js';
import { readStat } from '../proc/stat.js';
import { setThreadName } from '../ffi/libc.js';
import { HOLDER_PROCESS_NAME, HOLDER_TOKEN_FLAG, effectiveUid, holderIdOf, ensureRuntimeDir, removeHeld, writeHeld, type HeldRecord, type StoreOptions } from './store.js';

/** The launcher the holder runs (bin/rdmactl of this installation). */
export const RDMACTL_BIN = fileURLToPath(new URL('../../bin/rdmactl', import.meta.url));

export function newHolderToken(): string {
  return randomBytes(8).toString('hex');
}

/** The line a holder prints once it holds the registration. */
export interface HolderLine {
  event: 'held';
  record: HeldRecord;
  /** The text rendering of the registration (with its id), for `reg --detach` without --json. */
  text: string;
}

export interface SpawnHolderOptions {
  /** Arguments after `rdmactl`: `reg SIZE …flags` (without --detach, --json, --holder-token). */
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  token?: string;
}

const EXIT_CODES: ReadonlySet<number> = new Set(Object.values(EXIT));

/** Turns what a holder printed on stderr before exiting into the same error the user would have seen. */
export function holderFailure(stderr: string, code: number | null, signal: NodeJS.Signals | null): RdmactlError {
  const lines = stderr.split('\n');
  const first = lines.findIndex((line) => line.startsWith('rdmactl: '));
  const exitCode = (code !== null && code !== 0 && EXIT_CODES.has(code) ? code : EXIT.FAILURE) as ExitCode;
  if (first < 0) {
    const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
    const detail = stderr.trim() === '' ? '' : `: ${stderr.trim().split('\n')[0]}`;
    return new RdmactlError(`the holder process ${how} before it held the registration${detail}`, exitCode);
  }
  const message = lines[first]!.slice('rdmactl: '.length);
  const hints: string[] = [];
  for (const line of lines.slice(first + 1)) {
    if (!line.startsWith('  ')) break;
    hints.push(line.trim());
  }
  return new RdmactlError(message, exitCode, hints);
}

/** A holder that has registered and reported, waiting to learn whether its id was delivered. */
export interface PendingHolder {
  line: HolderLine;
  /** The id reached stdout: tell the holder to keep the registration. */
  confirm(): Promise<void>;
  /** The id did not reach anyone: the holder releases and exits; resolves once it has exited. */
  abort(): Promise<void>;
}

/** How long a holder told to release may take before it is killed (release + record removal take ms). */
const ABORT_GRACE_MS = 10_000;

/** Starts a holder and resolves once it reports; rejects with the holder's own error if it exits first. */
export function spawnHolder(options: SpawnHolderOptions): Promise<PendingHolder> {
  ensureRuntimeDir({ env: options.env }); // refuse an unsafe directory before registering anything
  const token = options.token ?? newHolderToken();
  const child = spawn(process.execPath, [RDMACTL_BIN, ...options.args, HOLDER_TOKEN_FLAG, token], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: options.env,
  });
  // The holder's stdin is the acknowledgement channel; an EPIPE on it means the holder is gone.
  child.stdin.on('error', () => undefined);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  const pending = (line: HolderLine): PendingHolder => ({
    line,
    confirm: () => new Promise<void>((resolve, reject) => {
      child.stdin.end('ack\n', () => {
        // Written into the pipe: the holder reads it even if we exit now.
        if (exited) reject(new RdmactlError(`the holder process (pid ${line.record.pid}) exited before it was told to keep the registration`));
        else {
          child.unref();
          resolve();
        }
      });
    }),
    abort: async () => {
      child.stdin.end(); // EOF without "ack": release
      const timer = setTimeout(() => child.kill('SIGKILL'), ABORT_GRACE_MS);
      try {
        await exit;
      } finally {
        clearTimeout(timer);
      }
    },
  });
  return new Promise<PendingHolder>((resolve, reject) => {
    let out = '';
    let err = '';
    let settled = false;
    const settle = (): void => {
      settled = true;
      child.stdout.destroy();
      child.stderr.destroy();
    };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (settled) return;
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      settle();
      let line: HolderLine;
      try {
        line = JSON.parse(out.slice(0, nl)) as HolderLine;
        if (line.event !== 'held' || typeof line.record?.id !== 'string') throw new Error('unexpected line');
      } catch {
        const holder = pending({ event: 'held', record: { pid: child.pid ?? 0 } as HeldRecord, text: '' });
        void holder.abort();
        reject(new RdmactlError(`the holder process printed something unexpected: ${out.slice(0, Math.min(nl, 200))}`));
        return;
      }
      resolve(pending(line));
    });
    child.stderr.on('data', (chunk: string) => { err += chunk; });
    child.once('error', (error) => {
      if (settled) return;
      settle();
      reject(new RdmactlError(`cannot start the holder process: ${error.message}`));
    });
    // 'close' (not 'exit'): every byte of stderr has arrived by then.
    child.once('close', (code, signal) => {
      if (settled) return;
      settle();
      reject(holderFailure(err, code, signal));
    });
  });
}

/**
 * Points fds 0, 1 and 2 at /dev/null. Safe only while nothing has touched process.stdin/stdout/stderr
 * (they are created lazily, and would then be created on /dev/null): the holder path uses fds directly.
 */
function detachStdio(): void {
  for (const fd of [0, 1, 2]) {
    closeSync(fd);
    const reopened = openSync('/dev/null', fd === 0 ? 'r' : 'w');
    if (reopened !== fd) closeSync(reopened); // another fd was free below: leave fd closed rather than misplace it
  }
}

/**
 * Blocks until the starting command says "ack" on stdin (true) or closes it (false). Blocking is
 * right here: the starter answers within milliseconds of our line, and if it dies the kernel closes
 * its end of the pipe, which ends the read.
 */
function awaitAcknowledgement(): boolean {
  const chunk = Buffer.alloc(64);
  let text = '';
  for (;;) {
    let n: number;
    try {
      n = readSync(0, chunk, 0, chunk.length, null);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EAGAIN' || code === 'EINTR') continue;
      return false;
    }
    if (n === 0) return false;
    text += chunk.toString('utf8', 0, n);
    if (text.includes('\n')) return text.startsWith('ack\n');
  }
}

/**
 * Called first thing in a holder, before it registers: from then on a process scan finds it by name
 * (even if its record is later lost or damaged), and the kernel's MR table names it the same way.
 */
export function nameHolderProcess(): void {
  setThreadName(HOLDER_PROCESS_NAME);
}

/** What the holder holds: anything that can be released once, returning nothing of interest here. */
export interface Holdable {
  readonly pid: number;
  close(): unknown;
}

export interface HoldDetachedOptions extends StoreOptions {
  holdable: Holdable;
  token: string;
  /** The registration's JSON record (reg's fields). */
  registration: { [key: string]: JsonValue };
  /** Renders the registration for people, given its id. */
  renderText: (id: string) => string;
  /** Hold this long, or until signalled when null. */
  holdMillis: number | null;
}

const ignoreHangup = (): void => undefined;

/**
 * Waits for SIGTERM/SIGINT or the deadline (SIGHUP is ignored for the holder's whole life).
 * Like lib/hold's waitForRelease, but cancellable: a holder that fails to report must not hang.
 */
function waitForHolderRelease(deadline: number | null): { released: Promise<void>; cancel: () => void } {
  let cancel = (): void => undefined;
  const released = new Promise<void>((resolve) => {
    // Signal listeners alone do not keep the event loop alive: hold it open until released.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const timer = deadline === null ? undefined : setTimeout(() => finish(), Math.max(1, deadline - Date.now()));
    const finish = (): void => {
      clearInterval(keepAlive);
      if (timer) clearTimeout(timer);
      process.removeListener('SIGTERM', finish);
      process.removeListener('SIGINT', finish);
      resolve();
    };
    process.on('SIGTERM', finish);
    process.on('SIGINT', finish);
    cancel = finish;
  });
  return { released, cancel };
}

/** The holder's life after a successful registration. Resolves once released and the record is removed. */
export async function holdDetached(options: HoldDetachedOptions): Promise<void> {
  const { holdable } = options;
  // No controlling terminal, so a SIGHUP can only be sent on purpose; still, keep SIGTERM (and SIGINT)
  // as the only release signals: a detached holder outlives the terminal it was started from.
  process.on('SIGHUP', ignoreHangup);
  const deadline = options.holdMillis === null ? null : Date.now() + options.holdMillis;
  // Listen before anyone can learn our pid from the record or the line.
  const { released, cancel } = waitForHolderRelease(deadline);
  let record: HeldRecord;
  try {
    const self = readStat('self');
    if (self === null) throw new RdmactlError('/proc/self/stat is missing: is /proc mounted?');
    const id = holderIdOf(options.token);
    record = writeHeld({
      pid: holdable.pid,
      startTime: self.startTimeTicks,
      uid: effectiveUid(),
      token: options.token,
      createdAt: new Date().toISOString(),
      releaseAt: deadline === null ? null : new Date(deadline).toISOString(),
      registration: options.registration,
    }, { ...options, ...(id !== null ? { id } : {}) });
  } catch (err) {
    cancel(); // the caller releases the registration; do not keep the process alive
    throw err;
  }
  const giveUp = (why: string): never => {
    // Nobody knows this registration's id: do not keep it.
    cancel();
    try {
      holdable.close();
    } finally {
      removeHeld(record.id, options);
    }
    throw new RdmactlError(`${why}; released it`);
  };
  try {
    const line: HolderLine = { event: 'held', record, text: options.renderText(record.id) };
    writeAllSync(1, `${JSON.stringify(line)}\n`);
  } catch (err) {
    giveUp(`could not report the registration to the command that started this holder (${(err as Error).message})`);
  }
  if (!awaitAcknowledgement()) giveUp('the command that started this holder did not confirm that the id was printed');
  detachStdio();
  await released;
  try {
    holdable.close();
  } finally {
    removeHeld(record.id, options, { tombstone: true });
  }
}

/** The subset of commander's Command that holderArgs reads. */
interface ParsedCommand {
  name(): string;
  readonly options: ReadonlyArray<{ long?: string; short?: string; negate: boolean; attributeName(): string }>;
  getOptionValue(key: string): unknown;
  getOptionValueSource(key: string): string | undefined;
}

/**
 * The holder's arguments: the command name, its positional arguments, and every option the user typed
 * (as --name=value, so a value starting with '-' stays a value), except those in `omit`.
 */
export function holderArgs(command: ParsedCommand, positional: readonly string[], omit: readonly string[] = ['detach', 'json', 'holderToken']): string[] {
  const args = [command.name(), ...positional];
  for (const option of command.options) {
    const key = option.attributeName();
    if (omit.includes(key) || command.getOptionValueSource(key) !== 'cli') continue;
    const value = command.getOptionValue(key);
    const flag = option.long ?? option.short;
    if (flag === undefined) continue;
    if (typeof value === 'boolean') {
      if (value !== option.negate) args.push(flag);
    } else {
      for (const item of Array.isArray(value) ? value : [value]) args.push(option.long ? `${flag}=${String(item)}` : flag, ...(option.long ? [] : [String(item)]));
    }
  }
  return args;
}
