// Values that exist only when the user presses TAB, for `rdmactl completion --values KIND`:
// live pids (from /proc), held registration ids (from the store), and a command's column names
// (the fields its `--list-columns` lists, read from the command). Each is a [value, description]
// pair. A comm is any process's own choice and the shell prints descriptions on the terminal:
// escaped (\xNN), which also keeps a tab or newline from splitting a pair.

import type { Command } from 'commander';
import { DYNAMIC_KINDS } from '../lib/completionHints.js';
import { UsageError } from '../lib/errors.js';
import { escapeText } from '../lib/escape.js';
import type { Context } from '../lib/context.js';
import { columnsOf } from '../lib/output.js';
import { listPids, readComm } from '../proc/index.js';
import { listHeld } from '../held/store.js';

/**
 * The program with the commands `args` needs loaded (program.ts makeProgram): `[]` loads all of
 * them, `[NAME]` only NAME. Passed in by whoever builds the program, which imports this.
 */
export type ProgramLoader = (args: readonly string[]) => Promise<Command>;

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
 * The columns of `command`: what its `--list-columns` lists, read from the command (only that one
 * loaded). Nothing when the command has no such option or there is no such command.
 */
export async function columnValues(command: string, loadProgram: ProgramLoader): Promise<CompletionValue[]> {
  const program = await loadProgram([command]);
  const target = program.commands.find((c: Command) => c.name() === command);
  const columns = target ? columnsOf(target) : null;
  return (columns ?? []).map((column) => [column.key, column.description]);
}

/** The values for KIND: pids, held-ids, or columns:COMMAND. */
export async function completionValues(kind: string, ctx: Context, loadProgram: ProgramLoader): Promise<CompletionValue[]> {
  if (kind === 'pids') return pidValues();
  if (kind === 'held-ids') return heldIdValues(ctx.env);
  if (kind.startsWith('columns:') && kind.length > 'columns:'.length) return columnValues(kind.slice('columns:'.length), loadProgram);
  throw new UsageError(`invalid --values '${kind}': expected ${DYNAMIC_KINDS.map((k) => (k === 'columns' ? 'columns:COMMAND' : k)).join(', ')}`);
}
