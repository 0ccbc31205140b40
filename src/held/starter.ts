// Starting a holder (the lines exchanged are in protocol.ts): the one way rdmactl registers in a
// child process.
//
// launchHolder runs `node dist/held/holderMain.cjs ARGS` (or holderMain.js when the CommonJS bundle
// was not built) with pipes on stdin, stdout and stderr, writes the request as one JSON line on its
// stdin and resolves with the holder's one line, or with how it ended without one (its exit status
// and stderr: killed, crashed). Callers parse the line with the protocol's parsers and rethrow a
// holder's error as is (same message, hints, exit code and errno), never reading any text back.
//
// spawnHolder (`reg --detach`): validates the options itself first (size, count, backend, access
// flags: a usage error never starts a process), starts the holder in its own session (setsid: no
// controlling terminal, so closing the terminal sends it no SIGHUP) and resolves once it holds and has
// recorded. reg prints the record (text or JSON, both derived from its typed registration); only when
// that print succeeded does it send "ack" on the holder's stdin.
//
// startAttachedHolder (`doctor --try`, scenario exit): the holder stays in our session and holds
// while we keep its stdin open; release() closes it, kill() sends SIGKILL.

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { RegistrationSetReport } from '../engine/report.js';
import { RdmactlError } from '../lib/errors.js';
import { failureError, type Failure } from '../lib/failure.js';
import {
  HOLDER_ATTACHED_FLAG, parseAttachedAnswer, parseHolderAnswer, type HeldRecordWithRegistration, type HolderRequest,
} from './protocol.js';
import { HOLDER_PROGRAMS, HOLDER_TOKEN_FLAG, ensureRuntimeDir } from './store.js';

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

/** How a holder ended without answering. */
export interface HolderExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** The first line of what a holder wrote on stderr, without the "rdmactl: " prefix ('' when nothing). */
export function holderStderrLine(stderr: string): string {
  return stderr.trim() === '' ? '' : stderr.trim().split('\n')[0]!.replace(/^rdmactl: /, '');
}

/** What a holder that exited without answering leaves the starter to say. */
export function holderExitFailure(stderr: string, code: number | null, signal: NodeJS.Signals | null): RdmactlError {
  const how = signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
  const first = holderStderrLine(stderr);
  return new RdmactlError(`the holder process ${how} before it held the registration${first === '' ? '' : `: ${first}`}`);
}

/** How long a holder told to release (or that failed) may take to exit before it is killed (release + record removal take ms). */
const EXIT_GRACE_MS = 10_000;

interface LaunchOptions {
  env: NodeJS.ProcessEnv;
  /** In a session of its own (setsid). */
  detached: boolean;
  /** Our fds the holder inherits as its fds 3, 4, … */
  inheritFds?: readonly number[];
  /** Killed, and the start rejected, when it has not answered by then. */
  answerWithinMs?: number;
}

/** A started holder process. */
interface LaunchedHolder {
  child: ChildProcess & { stdin: Writable; stdout: Readable; stderr: Readable };
  /** Its one line, or how it ended without one. Rejects when it cannot be started or does not answer in time. */
  reply: Promise<{ line: string } | { exit: HolderExit }>;
  /** Resolves once it has exited. */
  exited: Promise<void>;
  hasExited(): boolean;
  /** Closes its stdin (release) and waits for it to exit; kills it if that takes too long. */
  endAndWait(): Promise<void>;
}

function launchHolder(args: readonly string[], request: HolderRequest, options: LaunchOptions): LaunchedHolder {
  const stdio: StdioOptions = ['pipe', 'pipe', 'pipe', ...(options.inheritFds ?? [])];
  const child = spawn(process.execPath, [holderMainPath(), ...args], { detached: options.detached, stdio, env: options.env }) as LaunchedHolder['child'];
  // The holder's stdin carries the request, then the acknowledgement; an EPIPE on it means the holder is gone.
  child.stdin.on('error', () => undefined);
  child.stdin.write(`${JSON.stringify(request)}\n`);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  const endAndWait = async (): Promise<void> => {
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
    try {
      await exit;
    } finally {
      clearTimeout(timer);
    }
  };
  const reply = new Promise<{ line: string } | { exit: HolderExit }>((resolve, reject) => {
    let out = '';
    let err = '';
    let settled = false;
    const timer = options.answerWithinMs === undefined ? undefined : setTimeout(() => {
      if (settled) return;
      settle();
      child.kill('SIGKILL');
      reject(new RdmactlError(`the holder process did not answer within ${options.answerWithinMs! / 1000} s`));
    }, options.answerWithinMs);
    const settle = (): void => {
      settled = true;
      clearTimeout(timer);
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
      resolve({ line: out.slice(0, nl) });
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
      resolve({ exit: { code, signal, stderr: err } });
    });
  });
  return { child, reply, exited: exit, hasExited: () => exited, endAndWait };
}

/** The holder's line through a protocol parser; null when it is not JSON or not an answer. */
function parsedLine<T>(line: string, parse: (value: unknown) => T | null): T | null {
  try {
    return parse(JSON.parse(line));
  } catch {
    return null;
  }
}

const unexpectedAnswer = (line: string): RdmactlError => new RdmactlError(`the holder process answered something unexpected: ${line.slice(0, 200)}`);

export interface SpawnHolderOptions {
  request: HolderRequest;
  env: NodeJS.ProcessEnv;
  token?: string;
}

/** A holder that has registered and reported, waiting to learn whether its id was delivered. */
export interface PendingHolder {
  record: HeldRecordWithRegistration;
  /** The id reached stdout: tell the holder to keep the registration. */
  confirm(): Promise<void>;
  /** The id did not reach anyone: the holder releases and exits; resolves once it has exited. */
  abort(): Promise<void>;
}

/** Starts a detached holder and resolves once it holds; rejects with the holder's own error if it could not. */
export async function spawnHolder(options: SpawnHolderOptions): Promise<PendingHolder> {
  ensureRuntimeDir({ env: options.env }); // refuse an unsafe directory before registering anything
  const token = options.token ?? newHolderToken();
  const holder = launchHolder([HOLDER_TOKEN_FLAG, token], options.request, { env: options.env, detached: true });
  const reply = await holder.reply;
  if ('exit' in reply) throw holderExitFailure(reply.exit.stderr, reply.exit.code, reply.exit.signal);
  const answer = parsedLine(reply.line, parseHolderAnswer);
  if (answer === null || !answer.ok) {
    await holder.endAndWait(); // whatever it holds, nobody will know its id: it releases and exits
    throw answer === null ? unexpectedAnswer(reply.line) : failureError(answer.error);
  }
  const { record } = answer;
  return {
    record,
    confirm: () => new Promise<void>((resolve, reject) => {
      holder.child.stdin.end('ack\n', () => {
        // Written into the pipe: the holder reads it even if we exit now.
        if (holder.hasExited()) reject(new RdmactlError(`the holder process (pid ${record.pid}) exited before it was told to keep the registration`));
        else {
          holder.child.unref();
          resolve();
        }
      });
    }),
    abort: () => holder.endAndWait(), // EOF without "ack": release
  };
}

/** A child holding a registration for us, as long as we keep its stdin open. */
export interface AttachedHolder {
  pid: number;
  registration: RegistrationSetReport;
  /** SIGKILL: no user-space cleanup runs in it. */
  kill(): void;
  /** End of file on its stdin: it releases and exits; resolves once it has exited (killed if it takes too long). */
  release(): Promise<void>;
  /** Resolves once it has exited. */
  exited: Promise<void>;
}

/** How an attached start went: holding, refused with the holder's own failure, or ended without answering. */
export type AttachedStart = { ok: true; holder: AttachedHolder } | { ok: false; failure: Failure } | { ok: false; exit: HolderExit };

export interface StartAttachedOptions {
  request: HolderRequest;
  env: NodeJS.ProcessEnv;
  inheritFds?: readonly number[];
  answerWithinMs?: number;
}

/**
 * Starts an attached holder and resolves once it holds, or once it has exited without holding. Rejects
 * only when it cannot be started, does not answer in time, or answers something that is no answer.
 */
export async function startAttachedHolder(options: StartAttachedOptions): Promise<AttachedStart> {
  const holder = launchHolder([HOLDER_ATTACHED_FLAG], { ...options.request, holdMillis: null }, {
    env: options.env, detached: false, ...(options.inheritFds ? { inheritFds: options.inheritFds } : {}),
    ...(options.answerWithinMs !== undefined ? { answerWithinMs: options.answerWithinMs } : {}),
  });
  const reply = await holder.reply;
  if ('exit' in reply) return { ok: false, exit: reply.exit };
  const answer = parsedLine(reply.line, parseAttachedAnswer);
  if (answer === null || !answer.ok) {
    await holder.endAndWait();
    if (answer === null) throw unexpectedAnswer(reply.line);
    return { ok: false, failure: answer.error };
  }
  return {
    ok: true,
    holder: {
      pid: holder.child.pid!, registration: answer.registration, exited: holder.exited,
      kill: () => { holder.child.kill('SIGKILL'); },
      release: () => holder.endAndWait(),
    },
  };
}

/** The error for an attached start that did not end up holding: the holder's own, or how it ended. */
export function attachedStartError(start: Exclude<AttachedStart, { ok: true }>): RdmactlError {
  return 'failure' in start ? failureError(start.failure) : holderExitFailure(start.exit.stderr, start.exit.code, start.exit.signal);
}
