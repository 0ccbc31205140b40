// The bash completion script, rendered from the program's completion model. It needs nothing but
// bash itself (no bash-completion helpers), so `source <(rdmactl completion bash)` works anywhere.

import type { CommandSpec, OptionSpec, ProgramSpec, ValueSpec } from './spec.js';
import { dynamicKind, flagsOf, identifier } from './render.js';

/** A word for bash, single-quoted unless it is plainly safe. */
function quote(word: string): string {
  return /^[\w.,:+@%/=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The command that fills COMPREPLY for a value, or null when there is nothing to offer. */
function valueAction(fn: string, values: ValueSpec, command: string): string | null {
  switch (values.kind) {
    case 'words': return `${fn}_reply ${values.list ? 1 : 0} ${values.words.map(quote).join(' ')}`;
    case 'dynamic': return `${fn}_reply ${values.list ? 1 : 0} $(${fn}_values ${quote(dynamicKind(values.source, command))})`;
    case 'files': return `${fn}_files`;
    case 'users': return `${fn}_users ${values.list ? 1 : 0}`;
    case 'none': return null;
  }
}

function casePattern(command: string, option: OptionSpec): string {
  return flagsOf(option).map((flag) => quote(`${command} ${flag}`)).join('|');
}

function argumentCase(fn: string, command: CommandSpec): string | null {
  const branches: string[] = [];
  command.arguments.forEach((argument, index) => {
    const action = valueAction(fn, argument.values, command.name);
    if (action !== null) branches.push(`${argument.variadic ? '*' : index}) ${action} ;;`);
    else if (argument.variadic) branches.push('*) ;;');
  });
  if (branches.length === 0) return null;
  return `        ${quote(command.name)}) case $2 in ${branches.join(' ')} esac ;;`;
}

export function bashScript(spec: ProgramSpec): string {
  const fn = `_${identifier(spec.name)}`;
  const valueOptions = spec.commands.flatMap((c) => c.options.filter((o) => o.takesValue).map((o) => ({ command: c.name, option: o })));
  const takesValue = valueOptions.map(({ command, option }) => casePattern(command, option));
  const optionValues = valueOptions
    .map(({ command, option }) => {
      const action = valueAction(fn, option.values, command);
      return action === null ? null : `        ${casePattern(command, option)}) ${action} ;;`;
    })
    .filter((line): line is string => line !== null);
  const optionLists = [
    `        '') ${fn}_reply 0 ${spec.options.flatMap(flagsOf).join(' ')} ;;`,
    ...spec.commands.map((c) => `        ${quote(c.name)}) ${fn}_reply 0 ${c.options.flatMap(flagsOf).join(' ')} ;;`),
  ];
  const argumentCases = spec.commands.map((c) => argumentCase(fn, c)).filter((line): line is string => line !== null);

  return `# bash completion for ${spec.name}. Generated from the program by \`${spec.name} completion bash\`; do not edit.
# Load it with: source <(${spec.name} completion bash)   (or install it as
# share/bash-completion/completions/${spec.name}, where bash-completion finds it by itself).

# Values that exist only now (live pids, held registration ids, a command's columns), asked from
# the ${spec.name} being completed: ${spec.name} completion --values KIND prints "value<TAB>description" lines.
${fn}_values() {
    local program=\${COMP_WORDS[0]/#\\~/$HOME}
    "$program" completion --values "$1" 2>/dev/null | cut -f1
}

# Add the given words that start with $cur to COMPREPLY. First argument 1: $cur is a comma list
# (or +LIST), so complete the part after its last comma and keep what comes before.
${fn}_reply() {
    local list=$1 word want=$cur head=''
    shift
    if [[ $list == 1 ]]; then
        want=\${cur##*[,+]}
        head=\${cur%"$want"}
        compopt -o nospace 2>/dev/null
    fi
    for word in "$@"; do
        [[ $word == "$want"* ]] && COMPREPLY+=("$head$word")
    done
}

${fn}_files() {
    compopt -o filenames 2>/dev/null
    local IFS=$'\\n'
    COMPREPLY+=($(compgen -f -- "$cur"))
}

# User names; first argument 1: a comma list, as for ${fn}_reply.
${fn}_users() {
    local IFS=$'\\n'
    ${fn}_reply "$1" $(compgen -u)
}

# Does option $2 of command $1 take a value?
${fn}_takes_value() {
    case "$1 $2" in
${takesValue.length > 0 ? `        ${takesValue.join('|')}) return 0 ;;\n` : ''}    esac
    return 1
}

# Complete the value of option $2 of command $1.
${fn}_option_value() {
    case "$1 $2" in
${optionValues.join('\n')}
    esac
}

# Complete an option of command $1 ('' before the command).
${fn}_options() {
    case $1 in
${optionLists.join('\n')}
    esac
}

# Complete positional argument number $2 (from 0) of command $1.
${fn}_argument() {
    case $1 in
${argumentCases.join('\n')}
    esac
}

${fn}() {
    local cur=\${COMP_WORDS[COMP_CWORD]} prev command='' word i positional=0 skip=0
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=\${COMP_WORDS[i]}
        if ((skip)); then
            # --option=VALUE reaches us as three words: --option, =, VALUE
            skip=0
            [[ $word == = ]] && skip=1
            continue
        fi
        case $word in
            -*) [[ -n $command ]] && ${fn}_takes_value "$command" "$word" && skip=1 ;;
            *) if [[ -z $command ]]; then command=$word; else ((positional++)); fi ;;
        esac
    done
    if ((skip)); then
        # The word at the cursor is the value of an option: --opt VALUE, --opt=VALUE, or just "--opt=".
        prev=\${COMP_WORDS[COMP_CWORD-1]}
        [[ $prev == = ]] && prev=\${COMP_WORDS[COMP_CWORD-2]}
        # Right after "--opt=", bash's word is "=" but readline replaces only what follows it.
        [[ $cur == = ]] && cur=''
        ${fn}_option_value "$command" "$prev"
        return 0
    fi
    if [[ $cur == -* ]]; then
        ${fn}_options "$command"
    elif [[ -z $command ]]; then
        ${fn}_reply 0 ${spec.commands.map((c) => quote(c.name)).join(' ')}
    else
        ${fn}_argument "$command" "$positional"
    fi
    return 0
}

complete -F ${fn} ${spec.name}
`;
}
