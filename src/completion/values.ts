// Values that exist only when the user presses TAB, for `rdmactl completion --values KIND`:
// live pids (from /proc), held registration ids (from the store), and a command's column names
// (from the command's own `--list-columns --json`). Each is a [value, description] pair. A comm is
// any process's own choice and the shell prints descriptions on the terminal: escaped (\xNN), which
// also keeps a tab or newline from splitting a pair.

import type { Command } from 'commander';
import { DYNAMIC_KINDS } from '../lib/completionHints.js';
import { UsageError } from '../lib/errors.js';
import { escapeText } from '../lib/escape.js';
import type { Context } from '../lib/context.js';
import { listPids, readComm } from '../proc/index.js';
import { listHeld } from '../held/store.js';

export type CompletionValue = readonly [value: string, description: string];

/** Every process in /proc, with its command name. */
export function pidValues(): CompletionValue[] {
  const values: CompletionValue[] = [];
  for (const pid of listPids().sort((a, b) => a - b)) {
    const comm = readComm(pid);
    if (comm !== null) values.push([String(pid), escapeText(comm)]); // null: it exited meanwhile
  }
  return values;
}

/** Held registrations of this user (what `dereg` accepts), live or stale. */
export function heldIdValues(env: NodeJS.ProcessEnv): CompletionValue[] {
  let entries;
  try {
    entries = listHeld({ env });
  } catch {
    return []; // an unsafe runtime directory: dereg itself will say so; completion stays quiet
  }
  return entries.map((entry) => {
    const backend = entry.registration === null ? '' : ` ${entry.registration.backend}`;
    const state = entry.state === 'live' ? '' : ` (stale: ${entry.reason ?? 'holder gone'})`;
    return [entry.id, escapeText(`holder pid ${entry.pid}${backend}${state}`)];
  });
}

/**
 * The columns of `command`, from its own `--list-columns --json`. Nothing when the command has no
 * such option: the command is never run with arguments it does not declare.
 */
export async function columnValues(command: string, ctx: Context): Promise<CompletionValue[]> {
  const { makeProgram } = await import('../program.js');
  const program = await makeProgram(ctx, [command]);
  const target = program.commands.find((c: Command) => c.name() === command);
  if (!target || !target.options.some((o) => o.long === '--list-columns')) return [];
  let stdout = '';
  const capture: Context = { ...ctx, stdout: { write: (text) => { stdout += text; } }, stderr: { write: () => {} }, stdoutIsTty: false };
  const { run } = await import('../cli.js');
  if ((await run([command, '--list-columns', '--json'], capture)) !== 0) return [];
  try {
    const document = JSON.parse(stdout) as { columns?: Array<{ key?: unknown; description?: unknown }> };
    return (document.columns ?? [])
      .filter((column) => typeof column.key === 'string')
      .map((column) => [column.key as string, typeof column.description === 'string' ? column.description : '']);
  } catch {
    return [];
  }
}

/** The values for KIND: pids, held-ids, or columns:COMMAND. */
export async function completionValues(kind: string, ctx: Context): Promise<CompletionValue[]> {
  if (kind === 'pids') return pidValues();
  if (kind === 'held-ids') return heldIdValues(ctx.env);
  if (kind.startsWith('columns:') && kind.length > 'columns:'.length) return columnValues(kind.slice('columns:'.length), ctx);
  throw new UsageError(`invalid --values '${kind}': expected ${DYNAMIC_KINDS.map((k) => (k === 'columns' ? 'columns:COMMAND' : k)).join(', ')}`);
}
