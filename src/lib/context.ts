import { fstatSync, writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { escapeJson, escapeText } from './escape.js';
import { EXIT, RdmactlError } from './errors.js';
// What a command needs from the outside world, passed in so tests can run the program in-process
// and read what it printed.

export interface Output {
  /** Writes all of `text` or throws OutputError: when it returns, the bytes are out of this process. */
  write(text: string): void;
}

export interface Context {
  stdout: Output;
  stderr: Output;
  env: NodeJS.ProcessEnv;
  /** True when stdout is a terminal (decides colours and interactive behaviour). */
  stdoutIsTty: boolean;
  /** Effective uid: decides hints such as "run as root to see everything". */
  euid: number;
  /**
   * True when stdout reaches nobody: it is /dev/null, or it was closed when we started (Node puts
   * /dev/null on a closed fd 0–2 before any of our code runs, so the two cannot be told apart).
   */
  stdoutIsNull?: boolean;
}

/**
 * Standard output could not be written. EPIPE (the reader went away: `rdmactl ls | head`) ends a
 * command quietly, as SIGPIPE ends C tools; every other error is one line and exit 1.
 */
export class OutputError extends RdmactlError {
  readonly code: string;
  constructor(code: string) {
    super(`cannot write to standard output: ${describeWriteError(code)}`, EXIT.FAILURE);
    this.name = 'OutputError';
    this.code = code;
  }

  get readerGone(): boolean {
    return this.code === 'EPIPE';
  }
}

function describeWriteError(code: string): string {
  switch (code) {
    case 'EPIPE': return 'the reader has gone (EPIPE)';
    case 'ENOSPC': return 'no space left on the device (ENOSPC)';
    case 'EBADF': return 'it is closed (EBADF)';
    case 'EIO': return 'input/output error, the terminal is gone (EIO)';
    case 'EDQUOT': return 'disk quota exceeded (EDQUOT)';
    case 'EFBIG': return 'file too large (EFBIG)';
    default: return code;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Every byte to `fd`, synchronously, so that a failure is an exception at the call and not an
 * 'error' event later (which would surface as an uncaught stack trace). A non-blocking fd inherited
 * from a shell (EAGAIN) is waited on in 1 ms steps.
 */
export function writeAllSync(fd: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset, bytes.length - offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'EAGAIN') {
        Atomics.wait(sleeper, 0, 0, 1);
        continue;
      }
      if (code === 'EINTR') continue;
      throw new OutputError(code);
    }
  }
}

/** /dev/null is character device 1:3 on Linux. */
function isDevNull(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    return st.isCharacterDevice() && st.rdev === 0x103;
  } catch {
    return true;
  }
}

export function processContext(): Context {
  return {
    stdout: { write: (text) => writeAllSync(1, text) },
    // Nothing sensible can be done when stderr itself fails: the message is lost, the exit code is not.
    stderr: { write: (text) => { try { writeAllSync(2, text); } catch { /* ignore */ } } },
    env: process.env,
    stdoutIsTty: isatty(1), // not process.stdout: that would create a stream on fd 1
    euid: process.geteuid?.() ?? 0,
    stdoutIsNull: isDevNull(1),
  };
}

/**
 * Print one JSON document: indented on a terminal, for people; on one line in a pipe or a file, for
 * jq and NDJSON collectors (like `ip -j -p` and `ip -j`).
 */
export function printJson(ctx: Context, value: unknown): void {
  ctx.stdout.write(`${escapeJson(JSON.stringify(value, null, ctx.stdoutIsTty ? 2 : undefined))}\n`);
}

/** Print one JSON document on one line, even on a terminal: a line of a stream (NDJSON). */
export function printJsonLine(ctx: Context, value: unknown): void {
  ctx.stdout.write(jsonLine(value));
}

/** One JSON document as one line, escaped as printJsonLine prints it (for a printer that writes lines in batches). */
export function jsonLine(value: unknown): string {
  return `${escapeJson(JSON.stringify(value))}\n`;
}

/** A note for people, on stderr so it never pollutes JSON on stdout; control characters escaped. */
export function note(ctx: Context, text: string): void {
  ctx.stderr.write(`rdmactl: ${escapeText(text, 'lines')}\n`);
}
