// Starting a detached holder: `rdmactl reg … --detach` (see protocol.ts for the lines exchanged).
//
// Starter (spawnHolder): validates the options itself (size, count, backend, access flags: a usage
// error never starts a process), then runs `node dist/held/holderMain.cjs --holder-token TOKEN` (or
// holderMain.js when the CommonJS bundle was not built) in its
// own session (setsid: no controlling terminal, so closing the terminal sends it no SIGHUP), with pipes
// on stdin, stdout and stderr, and writes the request — the validated options as one JSON line — on
// the holder's stdin. The holder answers with exactly one JSON line on stdout,
// so the starter rethrows the holder's error as is (same message, hints and exit code) and prints the
// record (text or JSON, both derived from its typed registration) without parsing any text. Only when
// that print succeeded does it send "ack" on the holder's stdin. A holder that exits without a line
// (killed, crashed) is reported with its exit status and the first line of its stderr.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RdmactlError } from '../lib/errors.js';
import { failureError } from '../lib/failure.js';
import { parseHolderAnswer, type HeldRecordWithRegistration, type HolderAnswer, type HolderRequest } from './protocol.js';
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
