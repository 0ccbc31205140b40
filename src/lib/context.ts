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

export function processContext(): Context {
  return {
    stdout: { write: (text) => void process.stdout.write(text) },
    stderr: { write: (text) => void process.stderr.write(text) },
    env: process.env,
    stdoutIsTty: process.stdout.isTTY === true,
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
