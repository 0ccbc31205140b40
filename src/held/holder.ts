// The holder process (holderMain.ts; started by starter.ts, protocol in protocol.ts): registers in
// a process of its own, for `reg --detach` (detached) or for a command that needs the registration in
// a child it can watch and kill (attached: `doctor --try`, scenario exit).
//
// Both: read the request, set their own oom_score_adj when asked (before anything is registered),
// register, answer. An attached holder then holds until its starter closes its stdin (or dies: the
// kernel closes the pipe), releases and exits 0; it keeps its name and writes no record.
//
// Detached holder: names itself rdmactl-holder before anything else (a process scan finds it by
// name even without a record), reads the request, registers, listens for SIGTERM/SIGINT, writes its
// record, answers, then blocks reading stdin for the acknowledgement. "ack" → it points fds 0–2 at
// /dev/null, ignores SIGHUP and holds until SIGTERM/SIGINT or the --for deadline, releases, removes its
// record and exits 0. End of file instead (the starter could not print the id, or died at any moment —
// SIGKILL included: the kernel closes its end of the pipe) → nobody knows the id: it releases at once,
// removes its record and exits 1. So a holder keeps memory pinned only when its id reached the user's
// stdout. The same holds before the answer: a starter that died leaves the holder an EOF instead of a
// request (it exits without registering) or a closed stdout for its answer (EPIPE: it releases).

import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { writeAllSync } from '../lib/context.js';
import { EXIT, RdmactlError, type ExitCode } from '../lib/errors.js';
import { failureOf } from '../lib/failure.js';
import { register } from '../engine/register.js';
import { reportRegistrations, type RegistrationSetReport } from '../engine/report.js';
import { errorCode, procPath } from '../proc/procfs.js';
import { readStat } from '../proc/stat.js';
import { setThreadName } from '../ffi/libc.js';
import { HOLDER_ATTACHED_FLAG, parseHolderRequest, type AttachedAnswer, type HeldRecordWithRegistration, type HolderAnswer, type HolderRequest } from './protocol.js';
import {
  HOLDER_PROCESS_NAME, HOLDER_TOKEN_FLAG, effectiveUid, holderIdOf, removeHeld, writeHeld, type StoreOptions,
} from './store.js';

/**
 * Points fds 0, 1 and 2 at /dev/null. Safe only while nothing has touched process.stdin/stdout/stderr
 * (they are created lazily, and would then be created on /dev/null): the holder uses fds directly.
 */
function detachStdio(): void {
  for (const fd of [0, 1, 2]) {
    closeSync(fd);
    const reopened = openSync('/dev/null', fd === 0 ? 'r' : 'w');
    if (reopened !== fd) closeSync(reopened); // another fd was free below: leave fd closed rather than misplace it
  }
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Lines from the starter on fd 0, read with blocking reads. Blocking is right here: the starter writes
 * the request at once and answers within milliseconds of our line, and if it dies the kernel closes
 * its end of the pipe, which ends the read.
 */
class StarterLines {
  private buffered = '';
  private ended = false;

  /** The next line, or null at end of file (or a read error, or an overlong line). */
  next(): string | null {
    const chunk = Buffer.alloc(4096);
    for (;;) {
      const nl = this.buffered.indexOf('\n');
      if (nl >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        return line;
      }
      if (this.ended || this.buffered.length > 1 << 20) return null;
      let n: number;
      try {
        n = readSync(0, chunk, 0, chunk.length, null);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EAGAIN') Atomics.wait(pause, 0, 0, 5);
        if (code === 'EAGAIN' || code === 'EINTR') continue;
        this.ended = true;
        continue;
      }
      if (n === 0) this.ended = true;
      else this.buffered += chunk.toString('utf8', 0, n);
    }
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
  /** What was registered, as reg reports it. */
  registration: RegistrationSetReport;
  /** Hold this long, or until signalled when null. */
  holdMillis: number | null;
  /** Where the acknowledgement comes from. */
  input: StarterLines;
  /** Called once the answer line has been written (from then on failures can only go to stderr). */
  answered: () => void;
}

const ignoreHangup = (): void => undefined;
const ignoreSignal = (): void => undefined;

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
      // Keep SIGTERM/SIGINT caught until the process exits: without a listener Node restores the
      // default action, and a second signal (another dereg, a repeated kill) would end the holder in
      // the middle of its release, its record left behind.
      process.on('SIGTERM', ignoreSignal);
      process.on('SIGINT', ignoreSignal);
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
async function holdDetached(options: HoldDetachedOptions): Promise<void> {
  const { holdable } = options;
  // No controlling terminal, so a SIGHUP can only be sent on purpose; still, keep SIGTERM (and SIGINT)
  // as the only release signals: a detached holder outlives the terminal it was started from.
  process.on('SIGHUP', ignoreHangup);
  const deadline = options.holdMillis === null ? null : Date.now() + options.holdMillis;
  // Listen before anyone can learn our pid from the record or the line.
  const { released, cancel } = waitForHolderRelease(deadline);
  let record: HeldRecordWithRegistration;
  try {
    const self = readStat('self');
    if (self === null) throw new RdmactlError('/proc/self/stat is missing: is /proc mounted?');
    const id = holderIdOf(options.token);
    const written = writeHeld({
      pid: holdable.pid,
      startTime: self.startTimeTicks,
      uid: effectiveUid(),
      token: options.token,
      createdAt: new Date().toISOString(),
      releaseAt: deadline === null ? null : new Date(deadline).toISOString(),
      registration: options.registration,
    }, { ...options, ...(id !== null ? { id } : {}) });
    record = { ...written, registration: options.registration };
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
    const answer: HolderAnswer = { ok: true, record };
    writeAllSync(1, `${JSON.stringify(answer)}\n`);
  } catch (err) {
    options.answered(); // nothing more can reach the starter's stdout
    giveUp(`could not report the registration to the command that started this holder (${(err as Error).message})`);
  }
  options.answered();
  if (options.input.next() !== 'ack') giveUp('the command that started this holder did not confirm that the id was printed');
  detachStdio();
  await released;
  try {
    holdable.close();
  } finally {
    removeHeld(record.id, options, { tombstone: true });
  }
}

/** The token from the holder's arguments (`--holder-token TOKEN`), or null. */
function tokenArgument(argv: readonly string[]): string | null {
  const [flag, token] = argv;
  return flag === HOLDER_TOKEN_FLAG && token !== undefined && holderIdOf(token) !== null && argv.length === 2 ? token : null;
}

/** How the holder was started: detached (`--holder-token TOKEN`), attached (`--attached`), or not by rdmactl (null). */
function modeOf(argv: readonly string[]): { detached: true; token: string } | { detached: false } | null {
  if (argv.length === 1 && argv[0] === HOLDER_ATTACHED_FLAG) return { detached: false };
  const token = tokenArgument(argv);
  return token === null ? null : { detached: true, token };
}

/** Sets this process's own oom_score_adj (raising it needs no privilege). */
function setOwnOomScoreAdj(value: number): void {
  try {
    writeFileSync(procPath('self', 'oom_score_adj'), `${value}\n`);
  } catch (err) {
    throw new RdmactlError(`cannot set the holder's oom_score_adj to ${value}: ${errorCode(err) ?? (err as Error).message}`, EXIT.FAILURE, [], { cause: err });
  }
}

/**
 * An attached holder's life after a successful registration: answer with the registration, then hold
 * until the starter closes the pipe. Returns when it has; the caller releases.
 */
function holdAttached(registration: RegistrationSetReport, input: StarterLines, answered: () => void): void {
  try {
    const answer: AttachedAnswer = { ok: true, registration };
    writeAllSync(1, `${JSON.stringify(answer)}\n`);
  } catch (err) {
    throw new RdmactlError(`could not report the registration to the command that started this holder (${(err as Error).message}); released it`);
  } finally {
    answered();
  }
  while (input.next() !== null) {
    // nothing is asked of an attached holder after its answer: it waits for end of file
  }
}

/**
 * The holder process (holderMain.js): reads the request, registers, answers, holds (detached: records
 * first). Returns the exit status. Failures before the answer are answered ({ok: false}); later ones
 * can only go to stderr (the starter is gone or no longer listening) and end with status 1.
 */
export async function runHolder(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ExitCode> {
  const mode = modeOf(argv);
  if (mode?.detached !== false) nameHolderProcess();
  if (mode === null) {
    writeAllSync(2, `rdmactl: the holder program is started by \`rdmactl reg --detach\`, not by hand\n`);
    return EXIT.USAGE;
  }
  const input = new StarterLines();
  let answered = false;
  const fail = (err: unknown): ExitCode => {
    const failure = failureOf(err);
    try {
      if (answered) throw new Error('already answered');
      const answer: HolderAnswer | AttachedAnswer = { ok: false, error: failure };
      writeAllSync(1, `${JSON.stringify(answer)}\n`);
    } catch {
      try { writeAllSync(2, `rdmactl: ${failure.message}\n`); } catch { /* stderr gone too: the status remains */ }
    }
    return failure.exitCode;
  };
  const line = input.next();
  if (line === null) return EXIT.FAILURE; // the starter is gone before it asked: nothing registered, nobody to tell
  let request: HolderRequest | null;
  try {
    request = parseHolderRequest(JSON.parse(line));
  } catch {
    request = null;
  }
  if (request === null || (!mode.detached && request.holdMillis !== null)) return fail(new RdmactlError('the holder received a malformed request'));
  try {
    if (request.oomScoreAdj !== undefined) setOwnOomScoreAdj(request.oomScoreAdj);
    using set = await register(request.options);
    const registration = reportRegistrations(set, request.backendRequested);
    // Inside the `using` scope: the registration is released when holding ends, or on any failure.
    if (!mode.detached) {
      holdAttached(registration, input, () => { answered = true; });
      return EXIT.OK;
    }
    await holdDetached({
      holdable: set, token: mode.token, registration, holdMillis: request.holdMillis, env, input,
      answered: () => { answered = true; },
    });
    return EXIT.OK;
  } catch (err) {
    return fail(err);
  }
}
