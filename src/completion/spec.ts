// The completion model of rdmactl, read from the commander program itself: every visible command,
// its visible options and arguments, and what their values are (commander choices, or the hint a
// command attached with src/lib/completionHints.ts). The shell scripts are rendered from this.

import type { Argument, Command, Option } from 'commander';
import { hintOf, type ValueHint } from '../lib/completionHints.js';

/** What to offer for a value (words loaded). `none`: free text (a size, a duration), nothing to offer. */
export type ValueSpec =
  | { kind: 'words'; words: readonly string[]; list: boolean }
  | Exclude<ValueHint, { kind: 'words' }>
  | { kind: 'none' };

export interface OptionSpec {
  /** `-s` (or null). */
  short: string | null;
  /** `--sort` (or null). */
  long: string | null;
  description: string;
  /** The option takes a value (`--sort <key>`): the next word, or `--sort=KEY`. */
  takesValue: boolean;
  /** Name of the value for messages (`key` in `--sort <key>`). */
  valueName: string;
  values: ValueSpec;
}

export interface ArgumentSpec {
  name: string;
  description: string;
  variadic: boolean;
  values: ValueSpec;
}

export interface CommandSpec {
  name: string;
  description: string;
  options: OptionSpec[];
  arguments: ArgumentSpec[];
}

export interface ProgramSpec {
  name: string;
  /** Options of the program itself (before a subcommand). */
  options: OptionSpec[];
  commands: CommandSpec[];
}

/** The first line of a description, trimmed to a length a completion menu can show. */
export function shortDescription(text: string, max = 80): string {
  const line = (text.split('\n')[0] ?? '').trim();
  if (line.length <= max) return line;
  const cut = line.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > max / 2 ? cut.slice(0, space) : cut).replace(/[ ,;:(]+$/, '')}…`;
}

// `-o, --output <list>` is the columns option every record-printing command shares (by convention,
// so commands need no hint for it). Its values are the command's own column names.
const COLUMNS_OPTION = '--output';

/** The hint with its words loaded. */
async function resolve(hint: ValueHint): Promise<ValueSpec> {
  if (hint.kind !== 'words' || Array.isArray(hint.words)) return hint as ValueSpec;
  const load = hint.words as () => Promise<readonly string[]>;
  return { kind: 'words', words: await load(), list: hint.list };
}

async function optionValues(option: Option): Promise<ValueSpec> {
  const hint = hintOf(option);
  if (hint) return resolve(hint);
  if (option.argChoices && option.argChoices.length > 0) return { kind: 'words', words: option.argChoices, list: false };
  if (option.long === COLUMNS_OPTION && (option.required || option.optional)) return { kind: 'dynamic', source: 'columns', list: true };
  return { kind: 'none' };
}

async function argumentValues(argument: Argument): Promise<ValueSpec> {
  const hint = hintOf(argument);
  if (hint) return resolve(hint);
  if (argument.argChoices && argument.argChoices.length > 0) return { kind: 'words', words: argument.argChoices, list: false };
  return { kind: 'none' };
}

async function optionSpecs(command: Command): Promise<OptionSpec[]> {
  return Promise.all(command.createHelp().visibleOptions(command).map(async (option): Promise<OptionSpec> => {
    const takesValue = option.required || option.optional;
    const valueName = /<([^>]+)>|\[([^\]]+)\]/.exec(option.flags);
    return {
      short: option.short ?? null,
      long: option.long ?? null,
      description: shortDescription(option.description),
      takesValue,
      valueName: valueName ? (valueName[1] ?? valueName[2] ?? 'value') : 'value',
      values: takesValue ? await optionValues(option) : { kind: 'none' },
    };
  }));
}

/** The completion model of `program` (built with all its commands loaded). */
export async function programSpec(program: Command): Promise<ProgramSpec> {
  const help = program.createHelp();
  const visible = help.visibleCommands(program);
  const names = visible.map((c) => c.name()).filter((name) => name !== 'help');
  const commands = await Promise.all(visible.map(async (command): Promise<CommandSpec> => {
    const args = await Promise.all(command.registeredArguments.map(async (argument): Promise<ArgumentSpec> => ({
      name: argument.name(),
      description: shortDescription(argument.description),
      variadic: argument.variadic,
      values: await argumentValues(argument),
    })));
    // commander's own `help [command]`: its argument is one of the commands.
    if (command.name() === 'help' && args.length === 1 && args[0]!.values.kind === 'none') {
      args[0]!.values = { kind: 'words', words: names, list: false };
    }
    return {
      name: command.name(),
      description: shortDescription(command.summary() || command.description()),
      options: await optionSpecs(command),
      arguments: args,
    };
  }));
  return { name: program.name(), options: await optionSpecs(program), commands };
}
