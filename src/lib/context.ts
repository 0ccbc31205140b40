import { isatty } from 'node:tty';
// What a command needs from the outside world, passed in so tests can run the program in-process
// and read what it printed.

export interface Output {
  write(text: string): void;
}

export interface Context {
  stdout: Output;
  stderr: Output;
  env: NodeJS.ProcessEnv;
  /** True when stdout is a terminal (decides colours and interactive behaviour). */
  stdoutIsTty: boolean;
}

const guarded = new WeakSet<NodeJS.WriteStream>();

/**
 * A reader that went away (`rdmactl ls | head`) ends us quietly, as SIGPIPE ends C tools. The stream
 * is touched only on the first write: a detached holder re-points fds 1 and 2 before any write.
 */
function writer(stream: () => NodeJS.WriteStream): Output {
  return {
    write: (text) => {
      const target = stream();
      if (!guarded.has(target)) {
        guarded.add(target);
        target.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
          throw err;
        });
      }
      target.write(text);
    },
  };
}

export function processContext(): Context {
  return {
    stdout: writer(() => process.stdout),
    stderr: writer(() => process.stderr),
    env: process.env,
    stdoutIsTty: isatty(1), // not process.stdout: that would create the stream (see writer)
  };
}

/** Print a JSON document on one line (NDJSON-friendly). */
export function printJson(ctx: Context, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value)}\n`);
}

/** A note for people, on stderr so it never pollutes JSON on stdout. */
export function note(ctx: Context, text: string): void {
  ctx.stderr.write(`rdmactl: ${text}\n`);
}
