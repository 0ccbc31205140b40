// The one place where errors become messages and exit codes.

import { CommanderError } from 'commander';
import { EXIT, RdmactlError, type ExitCode } from './lib/errors.js';
import { OutputError, processContext, type Context } from './lib/context.js';
import { SyscallError } from './ffi/errno.js';
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
  if (err instanceof RdmactlError) {
    ctx.stderr.write(`rdmactl: ${err.message}\n`);
    for (const hint of err.hints) ctx.stderr.write(`  ${hint}\n`);
    if (debug && err.stack) ctx.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  if (err instanceof SyscallError) {
    ctx.stderr.write(`rdmactl: ${err.message}\n`);
    if (debug && err.stack) ctx.stderr.write(`${err.stack}\n`);
    return err.errnoName === 'EPERM' || err.errnoName === 'EACCES' ? EXIT.PERMISSION : EXIT.FAILURE;
  }
  const message = err instanceof Error ? err.message : String(err);
  ctx.stderr.write(`rdmactl: internal error: ${message}${debug ? '' : ' (set RDMACTL_DEBUG=1 for details)'}\n`);
  if (debug && err instanceof Error && err.stack) ctx.stderr.write(`${err.stack}\n`);
  return EXIT.FAILURE;
}

/** Run rdmactl with `args` (without node and script) and return the exit code. */
export async function run(args: readonly string[], ctx: Context = processContext()): Promise<ExitCode> {
  try {
    const program = await makeProgram(ctx, args);
    await program.parseAsync([...args], { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    return reportError(ctx, err);
  }
}
