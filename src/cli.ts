// The one place where errors become messages and exit codes.

import { CommanderError } from 'commander';
import { EXIT, type ExitCode } from './lib/errors.js';
import { escapeText } from './lib/escape.js';
import { failureOf } from './lib/failure.js';
import { OutputError, processContext, type Context } from './lib/context.js';
import { makeProgram } from './program.js';

function debugEnabled(ctx: Context): boolean {
  const flag = ctx.env['RDMACTL_DEBUG'];
  return flag !== undefined && flag !== '' && flag !== '0';
}

export function reportError(ctx: Context, err: unknown): ExitCode {
  if (err instanceof CommanderError) {
    // Commander already printed its message (and help for --help / --version).
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return EXIT.OK;
    return EXIT.USAGE;
  }
  const debug = debugEnabled(ctx);
  // The reader went away (`rdmactl ls | head -1`): end quietly, like a C tool ended by SIGPIPE.
  if (err instanceof OutputError && err.readerGone) return EXIT.OK;
  const failure = failureOf(err);
  const internal = failure.kind === 'internal';
  // A message may quote a machine string (a name, a path): no control character reaches the terminal.
  ctx.stderr.write(`rdmactl: ${escapeText(failure.message, 'lines')}${internal && !debug ? ' (set RDMACTL_DEBUG=1 for details)' : ''}\n`);
  for (const hint of failure.hints) ctx.stderr.write(`  ${escapeText(hint, 'lines')}\n`);
  if (debug && err instanceof Error && err.stack) ctx.stderr.write(`${err.stack}\n`);
  return failure.exitCode;
}

/** Run rdmactl with `args` (without node and script) and return the exit code. */
export async function run(args: readonly string[], ctx: Context = processContext()): Promise<ExitCode> {
  try {
    const program = await makeProgram(ctx, args);
    // No command at all is a usage error, as with ip(8): the help goes to stderr, exit 2.
    if (args.length === 0) {
      program.outputHelp({ error: true });
      return EXIT.USAGE;
    }
    await program.parseAsync([...args], { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    return reportError(ctx, err);
  }
}
