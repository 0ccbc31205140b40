// The fish completion script, rendered from the program's completion model as `complete` lines.

import type { CommandSpec, OptionSpec, ProgramSpec, ValueSpec } from './spec.js';
import { dynamicKind, flagsOf, identifier } from './render.js';

/** Single-quote for fish (only \\ and \' are special inside). */
function quote(text: string): string {
  return `'${text.replace(/[\\']/g, '\\$&')}'`;
}

/** A word inside a fish command substitution in a quoted -a argument. */
function word(text: string): string {
  return /^[\w.,:+@%/=-]+$/.test(text) ? text : `"${text.replace(/[\\"$]/g, '\\$&')}"`;
}

/** The `complete` flags that offer a value: -a candidates, -F files, or nothing (-x, free text). */
function valueFlags(fn: string, values: ValueSpec, command: string): string {
  switch (values.kind) {
    case 'words': return `-x -a ${quote(`(${fn}_words ${values.list ? 1 : 0} ${values.words.map(word).join(' ')})`)}`;
    case 'dynamic': return `-x -a ${quote(`(${fn}_values ${values.list ? 1 : 0} ${dynamicKind(values.source, command)})`)}`;
    case 'files': return '-r -F';
    case 'users': return `-x -a ${quote(values.list ? `(${fn}_words 1 (__fish_complete_users))` : '(__fish_complete_users)')}`;
    case 'none': return '-x';
  }
}

function optionLine(fn: string, program: string, condition: string, option: OptionSpec, command: string): string {
  const parts = [`complete -c ${program} -n ${quote(condition)}`];
  if (option.short) parts.push(`-s ${option.short.slice(1)}`);
  if (option.long) parts.push(`-l ${option.long.slice(2)}`);
  parts.push(`-d ${quote(option.description)}`);
  if (option.takesValue) parts.push(valueFlags(fn, option.values, command));
  return parts.join(' ');
}

function commandLines(fn: string, program: string, command: CommandSpec): string[] {
  const lines = command.options.map((o) => optionLine(fn, program, `${fn}_using ${command.name}`, o, command.name));
  const valueOptions = command.options.filter((o) => o.takesValue).flatMap(flagsOf);
  command.arguments.forEach((argument, index) => {
    if (argument.values.kind === 'none') return;
    const condition = `${fn}_argument ${command.name} ${index} ${argument.variadic ? 1 : 0} ${valueOptions.join(' ')}`.trimEnd();
    const offer = argument.values.kind === 'files' ? '-F' : valueFlags(fn, argument.values, command.name).replace(/^-x /, '');
    lines.push(`complete -c ${program} -n ${quote(condition)} ${offer} -d ${quote(argument.description || argument.name)}`);
  });
  return lines;
}

export function fishScript(spec: ProgramSpec): string {
  const fn = `__${identifier(spec.name)}`;
  const program = spec.name;
  const lines = [
    `complete -c ${program} -f`,
    ...spec.options.map((o) => optionLine(fn, program, `not ${fn}_command >/dev/null`, o, '')),
    ...spec.commands.map((c) => `complete -c ${program} -n ${quote(`not ${fn}_command >/dev/null`)} -a ${c.name} -d ${quote(c.description)}`),
    ...spec.commands.flatMap((c) => commandLines(fn, program, c)),
  ];
  return `# fish completion for ${program}. Generated from the program by \`${program} completion fish\`; do not edit.
# Install it as vendor_completions.d/${program}.fish, or load it with: ${program} completion fish | source

# The subcommand on the command line: the first word after the program that is not an option.
function ${fn}_command
    for word in (commandline -opc)[2..-1]
        if not string match -q -- '-*' $word
            echo $word
            return 0
        end
    end
    return 1
end

function ${fn}_using --argument-names name
    set -l command (${fn}_command)
    and test "$command" = $name
end

# True when the word being completed is positional argument INDEX (from 0) of COMMAND; VARIADIC=1:
# that argument or any later one. The rest are COMMAND's options that take a value (skipped with it).
function ${fn}_argument --argument-names command index variadic
    set -l value_options $argv[4..-1]
    # An option is being typed, not an argument.
    string match -q -- '-*' (commandline -ct)
    and return 1
    set -l count -1
    set -l skip 0
    for word in (commandline -opc)[2..-1]
        if test $skip = 1
            set skip 0
        else if string match -q -- '-*' $word
            contains -- $word $value_options
            and set skip 1
        else if test $count = -1
            test $word = $command
            or return 1
            set count 0
        else
            set count (math $count + 1)
        end
    end
    test $count -ge 0
    or return 1
    if test $variadic = 1
        test $count -ge $index
    else
        test $count -eq $index
    end
end

# For comma lists (and +LIST): what the word being completed has up to its last comma.
function ${fn}_list_head
    commandline -ct | string replace -r -- '^-[^=]*=' '' | string match -r -- '^.*[,+]'
end

# Offer words. First argument 1: the word is a comma list, complete the part after its last comma.
function ${fn}_words
    set -l head
    test $argv[1] = 1
    and set head (${fn}_list_head)
    for word in $argv[2..-1]
        printf '%s%s\\n' "$head" $word
    end
end

# Values that exist only now (live pids, held registration ids, a command's columns), asked from
# the ${program} being completed: ${program} completion --values KIND prints "value<TAB>description" lines.
function ${fn}_values
    set -l program (string replace -r -- '^~' $HOME (commandline -opc)[1])
    command -q -- $program
    or return 1
    set -l head
    test $argv[1] = 1
    and set head (${fn}_list_head)
    for line in ($program completion --values $argv[2] 2>/dev/null)
        printf '%s%s\\n' "$head" $line
    end
end

${lines.join('\n')}
`;
}
