// The zsh completion function (_rdmactl), rendered from the program's completion model with
// zsh's own _arguments, so options, exclusions and descriptions behave like any zsh completion.

import type { CommandSpec, OptionSpec, ProgramSpec, ValueSpec } from './spec.js';
import { dynamicKind, identifier } from './render.js';

/** Single-quote for zsh. */
function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Text inside _arguments' [description] or :message: fields. */
function field(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/([[\]:])/g, '\\$1');
}

/** A word inside an _arguments action (split into words by _arguments). */
function actionWord(word: string): string {
  return word.replace(/([^\w.,+@%/=-])/g, '\\$1');
}

/** A value for _describe: "value:description" with the value's colons escaped. */
function describeItem(value: string, description: string): string {
  const escaped = value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return description ? `${escaped}:${description}` : escaped;
}

// Actions start with a space: _arguments then calls our functions with exactly these words
// (otherwise it inserts compadd options before them).
function action(fn: string, values: ValueSpec, what: string, command: string): string {
  const message = actionWord(what);
  switch (values.kind) {
    case 'words': return ` ${fn}_offer ${values.list ? 1 : 0} ${message} ${values.words.map((w) => actionWord(describeItem(w, ''))).join(' ')}`;
    case 'dynamic': return ` ${fn}_dynamic ${values.list ? 1 : 0} ${message} ${actionWord(dynamicKind(values.source, command))}`;
    case 'files': return '_files';
    case 'users': return values.list ? ` ${fn}_list _users` : '_users';
    case 'none': return ' ';
  }
}

function optionSpecs(fn: string, options: readonly OptionSpec[], command: string): string[] {
  const specs: string[] = [];
  for (const option of options) {
    const flags = [option.short, option.long].filter((f): f is string => f !== null);
    const isHelp = option.long === '--help' || option.long === '--version';
    const exclusion = isHelp ? '(- *)' : flags.length > 1 ? `(${flags.join(' ')})` : '';
    for (const flag of flags) {
      // -s+: the value may follow in the same word or the next; --sort=: after '=' or in the next word.
      const form = option.takesValue ? (flag.startsWith('--') ? `${flag}=` : `${flag}+`) : flag;
      const value = option.takesValue ? `:${field(option.valueName)}:${action(fn, option.values, option.valueName, command)}` : '';
      specs.push(quote(`${exclusion}${form}[${field(option.description)}]${value}`));
    }
  }
  return specs;
}

function argumentSpecs(fn: string, command: CommandSpec): string[] {
  return command.arguments.map((argument, index) => {
    const position = argument.variadic ? '*' : String(index + 1);
    return quote(`${position}:${field(argument.name)}:${action(fn, argument.values, argument.name, command.name)}`);
  });
}

function commandBranch(fn: string, command: CommandSpec): string {
  const specs = [...optionSpecs(fn, command.options, command.name), ...argumentSpecs(fn, command)];
  return `      (${quote(command.name)})
        _arguments -S \\
          ${specs.join(' \\\n          ')} && ret=0 ;;`;
}

export function zshScript(spec: ProgramSpec): string {
  const fn = `_${identifier(spec.name)}`;
  const commands = spec.commands.map((c) => quote(describeItem(c.name, c.description))).join(' \\\n    ');
  return `#compdef ${spec.name}
# zsh completion for ${spec.name}. Generated from the program by \`${spec.name} completion zsh\`; do not edit.
# Install it as ${fn} in a directory of $fpath (share/zsh/site-functions), or load it with:
#   source <(${spec.name} completion zsh)   (after compinit)

# Offer words ("value" or "value:description"). First argument 1: the word is a comma list (or
# +LIST), so complete the part after its last comma.
${fn}_offer() {
  local list=$1 what=$2
  shift 2
  local -a items
  items=("$@")
  if [[ $list == 1 ]]; then
    compset -P '*,' || compset -P '+'
  fi
  _describe -t values "$what" items
}

# Complete a comma list with a zsh completion function for one element (e.g. _users).
${fn}_list() {
  compset -P '*,'
  "$@"
}

# Values that exist only now (live pids, held registration ids, a command's columns), asked from
# the ${spec.name} being completed: ${spec.name} completion --values KIND prints "value<TAB>description" lines.
${fn}_dynamic() {
  local list=$1 what=$2 kind=$3 line
  local -a items
  for line in \${(f)"$("$${fn}_program" completion --values "$kind" 2>/dev/null)"}; do
    items+=("\${\${line%%$'\\t'*}//:/\\\\:}:\${line#*$'\\t'}")
  done
  ${fn}_offer "$list" "$what" "\${items[@]}"
}

${fn}() {
  local ${fn}_program=\${words[1]/#\\~/$HOME}
  local curcontext=$curcontext state state_descr line ret=1
  typeset -A opt_args
  _arguments -C \\
    ${optionSpecs(fn, spec.options, '').join(' \\\n    ')} \\
    '1:command:->command' \\
    '*::argument:->argument' && ret=0
  case $state in
    (command)
      local -a commands
      commands=(
    ${commands}
      )
      _describe -t commands command commands && ret=0 ;;
    (argument)
      curcontext=\${curcontext%:*:*}:${spec.name}-\${words[1]}:
      case \${words[1]} in
${spec.commands.map((c) => commandBranch(fn, c)).join('\n')}
      esac ;;
  esac
  return ret
}

if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${spec.name}
fi
`;
}
