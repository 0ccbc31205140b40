// Detached holders: `rdmactl reg … --detach` starts a holder process that registers, records the
// registration in the store, answers with one JSON line, and keeps holding after the command that
// started it has exited — but only once that command has confirmed that the user got the id.
//
// Starter (spawnHolder): validates the options itself (size, count, backend, access flags: a usage
// error never starts a process), then runs `node dist/held/holderMain.cjs --holder-token TOKEN` (or
// holderMain.js when the CommonJS bundle was not built) in its
// own session (setsid: no controlling terminal, so closing the terminal sends it no SIGHUP), with pipes
// on stdin, stdout and stderr, and writes the request — the validated options as one JSON line — on
// the holder's stdin. The holder answers with exactly one JSON line on stdout:
//   {"ok":true,"record":{…the held record…}}                      registered, recorded, waiting for "ack"
//   {"ok":false,"error":{"kind","message","hints","exitCode"}}     nothing held; the holder exits
// so the starter rethrows the holder's error as is (same message, hints and exit code) and prints the
// record (text or JSON, both derived from its typed registration) without parsing any text. Only when
// that print succeeded does it send "ack" on the holder's stdin. A holder that exits without a line
// (killed, crashed) is reported with its exit status and the first line of its stderr.
//
// Holder (runHolder): names itself rdmactl-holder before anything else (a process scan finds it by
// name even without a record), reads the request, registers, listens for SIGTERM/SIGINT, writes its
// record, answers, then blocks reading stdin for the acknowledgement. "ack" → it points fds 0–2 at
// /dev/null, ignores SIGHUP and holds until SIGTERM/SIGINT or the --for deadline, releases, removes its
// record and exits 0. End of file instead (the starter could not print the id, or died at any moment —
// SIGKILL included: the kernel closes its end of the pipe) → nobody knows the id: it releases at once,
// removes its record and exits 1. So a holder keeps memory pinned only when its id reached the user's
// stdout. The same holds before the answer: a starter that died leaves the holder an EOF instead of a
// request (it exits without registering) or a closed stdout for its answer (EPIPE: it releases).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeAllSync } from '../lib/context.js';
import { EXIT, RdmactlError, type ExitCode } from '../lib/errors.js';
import { failureError, failureOf, parseFailure, type Failure } from '../lib/failure.js';
import { register, type RegisterOptions } from '../engine/register.js';
import { reportRegistrations, type RegistrationSetReport } from '../engine/report.js';
import { BACKENDS, BACKINGS, type BackendChoice } from '../engine/types.js';
import { readStat } from '../proc/stat.js';
import { setThreadName } from '../ffi/libc.js';
import {
  HOLDER_PROCESS_NAME, HOLDER_PROGRAMS, HOLDER_TOKEN_FLAG, effectiveUid, holderIdOf, ensureRuntimeDir, parseHeldRecord, removeHeld, writeHeld, type HeldRecord, type StoreOptions,
} from './store.js';

/**
 * The holder's program (built from holderMain.ts): its CommonJS bundle when the build made one (it
 * starts faster), else the ES module. The same paths from src/ (tests) and from dist/ or its bundle.
 */
export function holderMainPath(): string {
  const [bundle, module] = HOLDER_PROGRAMS.map((name) => fileURLToPath(new URL(`../../dist/held/${name}`, import.meta.url)));
  return existsSync(bundle!) ? bundle! : module!;
}

export function newHolderToken(): string {
  return randomBytes(8).toString('hex');
}

/** What the starter asks a holder to do: options it has validated, and for how long to hold. */
export interface HolderRequest {
  options: RegisterOptions;
  /** The --backend the user asked for (options.backend is what it resolved to). */
  backendRequested: BackendChoice;
  /** Hold this long, or until signalled when null. */
  holdMillis: number | null;
}

/** A held record whose registration is known: what a holder answers with. */
export type HeldRecordWithRegistration = HeldRecord & { registration: RegistrationSetReport };

/** The holder's one line. */
export type HolderAnswer = { ok: true; record: HeldRecordWithRegistration } | { ok: false; error: Failure };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const optionalBoolean = (value: unknown): boolean | null => (value === undefined ? false : typeof value === 'boolean' ? value : null);
const optionalString = (value: unknown): string | null | undefined => (value === undefined || value === null ? null : typeof value === 'string' ? value : undefined);

/** The request read back from its JSON line; null when it is not one (the engine checks the combinations). */
export function parseHolderRequest(value: unknown): HolderRequest | null {
  if (!isObject(value) || !isObject(value['options'])) return null;
  const o = value['options'];
  const { backendRequested, holdMillis } = value;
  const booleans = {
    readOnly: optionalBoolean(o['readOnly']), onFault: optionalBoolean(o['onFault']), dontfork: optionalBoolean(o['dontfork']),
    wipeonfork: optionalBoolean(o['wipeonfork']), forkInit: optionalBoolean(o['forkInit']), overlap: optionalBoolean(o['overlap']),
  };
  const file = optionalString(o['file']);
  const device = optionalString(o['device']);
  const { length, backend, backing, access, count } = o;
  if (!Number.isSafeInteger(length) || (length as number) <= 0 || !Number.isSafeInteger(count) || (count as number) <= 0) return null;
  if (typeof backend !== 'string' || !(BACKENDS as readonly string[]).includes(backend)) return null;
  if (typeof backing !== 'string' || !(BACKINGS as readonly string[]).includes(backing)) return null;
  if (access !== undefined && !Number.isSafeInteger(access)) return null;
  if (file === undefined || device === undefined || Object.values(booleans).some((b) => b === null)) return null;
  if (typeof backendRequested !== 'string' || !['auto', ...BACKENDS].includes(backendRequested)) return null;
  if (holdMillis !== null && (!Number.isSafeInteger(holdMillis) || (holdMillis as number) < 0)) return null;
  const options: RegisterOptions = {
    length: length as number, backend: backend as RegisterOptions['backend'], backing: backing as RegisterOptions['backing'], file, device,
    ...(access !== undefined ? { access: access as number } : {}), count: count as number,
    readOnly: booleans.readOnly!, onFault: booleans.onFault!, dontfork: booleans.dontfork!, wipeonfork: booleans.wipeonfork!, forkInit: booleans.forkInit!, overlap: booleans.overlap!,
  };
  return { options, backendRequested: backendRequested as BackendChoice, holdMillis: holdMillis as number | null };
}

/** The answer read back from the holder's line; null when it is not one. */
export function parseHolderAnswer(value: unknown): HolderAnswer | null {
  if (!isObject(value)) return null;
  if (value['ok'] === true) {
    const record = parseHeldRecord(value['record']);
    return record !== null && record.registration !== null ? { ok: true, record: record as HeldRecordWithRegistration } : null;
  }
  if (value['ok'] === false) {
    const error = parseFailure(value['error']);
    return error === null ? null : { ok: false, error };
  }
  return null;
}

export interface SpawnHolderOptions {
  request: HolderRequest;
  env: NodeJS.ProcessEnv;
  token?: string;
}

/** What a holder that exited without answering leaves the starter to say. */
export function holderExitFailure(stderr: string, code: number | null, signal: NodeJS.Signals | null): RdmactlError {
  const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
  const first = stderr.trim() === '' ? '' : `: ${stderr.trim().split('\n')[0]!.replace(/^rdmactl: /, '')}`;
  return new RdmactlError(`the holder process ${how} before it held the registration${first}`);
}

/** A holder that has registered and reported, waiting to learn whether its id was delivered. */
export interface PendingHolder {
  record: HeldRecordWithRegistration;
  /** The id reached stdout: tell the holder to keep the registration. */
  confirm(): Promise<void>;
  /** The id did not reach anyone: the holder releases and exits; resolves once it has exited. */
  abort(): Promise<void>;
}

/** How long a holder told to release (or that failed) may take to exit before it is killed (release + record removal take ms). */
const EXIT_GRACE_MS = 10_000;

/** Starts a holder and resolves once it holds; rejects with the holder's own error if it could not. */
export function spawnHolder(options: SpawnHolderOptions): Promise<PendingHolder> {
  ensureRuntimeDir({ env: options.env }); // refuse an unsafe directory before registering anything
  const token = options.token ?? newHolderToken();
  const child = spawn(process.execPath, [holderMainPath(), HOLDER_TOKEN_FLAG, token], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: options.env,
  });
  // The holder's stdin carries the request, then the acknowledgement; an EPIPE on it means the holder is gone.
  child.stdin.on('error', () => undefined);
  child.stdin.write(`${JSON.stringify(options.request)}\n`);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  /** Waits for the holder to exit (it is releasing, or failed); kills it if it takes too long. */
  const exitOrKill = async (): Promise<void> => {
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
    try {
      await exit;
    } finally {
      clearTimeout(timer);
    }
  };
  const pending = (record: HeldRecordWithRegistration): PendingHolder => ({
    record,
    confirm: () => new Promise<void>((resolve, reject) => {
      child.stdin.end('ack\n', () => {
        // Written into the pipe: the holder reads it even if we exit now.
        if (exited) reject(new RdmactlError(`the holder process (pid ${record.pid}) exited before it was told to keep the registration`));
        else {
          child.unref();
          resolve();
        }
      });
    }),
    abort: async () => {
      child.stdin.end(); // EOF without "ack": release
      await exitOrKill();
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
    const fail = async (error: RdmactlError): Promise<void> => {
      child.stdin.end(); // whatever it holds, nobody will know its id: it releases and exits
      await exitOrKill();
      reject(error);
    };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (settled) return;
      out += chunk;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      settle();
      let answer: HolderAnswer | null;
      try {
        answer = parseHolderAnswer(JSON.parse(out.slice(0, nl)));
      } catch {
        answer = null;
      }
      if (answer === null) void fail(new RdmactlError(`the holder process answered something unexpected: ${out.slice(0, Math.min(nl, 200))}`));
      else if (!answer.ok) void fail(failureError(answer.error));
      else resolve(pending(answer.record));
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
      reject(holderExitFailure(err, code, signal));
    });
  });
}

// ---- The holder process ----

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

/**
 * The holder process (holderMain.js): reads the request, registers, records, answers, holds.
 * Returns the exit status. Failures before the answer are answered ({ok: false}); later ones can
 * only go to stderr (the starter is gone or no longer listening) and end with status 1.
 */
export async function runHolder(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ExitCode> {
  nameHolderProcess();
  const token = tokenArgument(argv);
  if (token === null) {
    writeAllSync(2, `rdmactl: the holder program is started by \`rdmactl reg --detach\`, not by hand\n`);
    return EXIT.USAGE;
  }
  const input = new StarterLines();
  let answered = false;
  const fail = (err: unknown): ExitCode => {
    const failure = failureOf(err);
    try {
      if (answered) throw new Error('already answered');
      const answer: HolderAnswer = { ok: false, error: failure };
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
  if (request === null) return fail(new RdmactlError('the holder received a malformed request'));
  try {
    using set = await register(request.options);
    // Awaited here, inside the `using` scope: the registration is released when holding ends, or on any failure.
    await holdDetached({
      holdable: set, token, registration: reportRegistrations(set, request.backendRequested), holdMillis: request.holdMillis, env, input,
      answered: () => { answered = true; },
    });
    return EXIT.OK;
  } catch (err) {
    return fail(err);
  }
}
