// Detached holders: `rdmactl reg … --detach` starts a second rdmactl (the holder) that registers,
// records the registration in the store, reports it on one stdout line, and keeps holding after the
// command that started it has exited.
//
// Parent (spawnHolder): runs `node bin/rdmactl reg <same flags> --holder-token TOKEN` in its own
// session (setsid: no controlling terminal, so closing the terminal sends it no SIGHUP), stdin
// /dev/null, stdout and stderr pipes. It waits for the holder's one JSON line, or for the holder to
// exit first — then the holder's error message, hints and exit code become the parent's.
//
// Holder (holdDetached): listens for SIGTERM/SIGINT, writes its record, prints the line, points
// stdout and stderr at /dev/null (so the parent's pipes close and a vanished reader can never raise
// EPIPE), ignores SIGHUP, holds until SIGTERM/SIGINT or the --for deadline, releases, removes its
// record and exits 0. If the parent is gone before the line is delivered, nobody knows the id: the
// holder releases at once and removes its record.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EXIT, RdmactlError, type ExitCode } from '../lib/errors.js';
import type { JsonValue } from '../lib/fields.js';
import { readStat } from '../proc/stat.js';
import { HOLDER_TOKEN_FLAG, effectiveUid, ensureRuntimeDir, removeHeld, writeHeld, type HeldRecord, type StoreOptions } from './store.js';

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

/** Starts a holder and resolves with its line; rejects with the holder's own error if it exits first. */
export function spawnHolder(options: SpawnHolderOptions): Promise<HolderLine> {
  ensureRuntimeDir({ env: options.env }); // refuse an unsafe directory before registering anything
  const token = options.token ?? newHolderToken();
  const child = spawn(process.execPath, [RDMACTL_BIN, ...options.args, HOLDER_TOKEN_FLAG, token], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env,
  });
  return new Promise<HolderLine>((resolve, reject) => {
    let out = '';
    let err = '';
    let settled = false;
    const settle = (): void => {
      settled = true;
      child.stdout.destroy();
      child.stderr.destroy();
      child.unref();
    };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (settled) return;
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      settle();
      try {
        const line = JSON.parse(out.slice(0, nl)) as HolderLine;
        if (line.event !== 'held' || typeof line.record?.id !== 'string') throw new Error('unexpected line');
        resolve(line);
      } catch {
        reject(new RdmactlError(`the holder process printed something unexpected: ${out.slice(0, Math.min(nl, 200))}`));
      }
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

function writeLine(fd: number, text: string): void {
  const bytes = Buffer.from(`${text}\n`, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset, bytes.length - offset);
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') continue;
      throw err;
    }
  }
}

/**
 * Points fds 1 and 2 at /dev/null. Safe only while nothing has touched process.stdout/stderr (they are
 * created lazily, and would then be created on /dev/null): the holder path writes with writeSync only.
 */
function detachStdio(): void {
  for (const fd of [1, 2]) {
    closeSync(fd);
    const reopened = openSync('/dev/null', 'w');
    if (reopened !== fd) closeSync(reopened); // another fd was free below: leave fd closed rather than misplace it
  }
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
    record = writeHeld({
      pid: holdable.pid,
      startTime: self.startTimeTicks,
      uid: effectiveUid(),
      token: options.token,
      createdAt: new Date().toISOString(),
      releaseAt: deadline === null ? null : new Date(deadline).toISOString(),
      registration: options.registration,
    }, options);
  } catch (err) {
    cancel(); // the caller releases the registration; do not keep the process alive
    throw err;
  }
  try {
    const line: HolderLine = { event: 'held', record, text: options.renderText(record.id) };
    writeLine(1, JSON.stringify(line));
  } catch (err) {
    // The command that started us is gone: nobody knows this registration's id, so do not keep it.
    cancel();
    holdable.close();
    removeHeld(record.id, options);
    throw new RdmactlError(`could not report the registration to the command that started this holder (${(err as Error).message}); released it`);
  }
  detachStdio();
  await released;
  try {
    holdable.close();
  } finally {
    removeHeld(record.id, options);
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
