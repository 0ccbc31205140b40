# Completes one command line in a real interactive zsh (in a pseudo-terminal, through zpty) with the
# completion function found in FPATH_DIR, and prints the matches zsh produced, one per line.
# Matches are recorded by wrapping compadd, so they are exactly what the completion system added
# (after zsh's own matching against what was typed).
#
# Usage: zsh -f zsh-complete.zsh FPATH_DIR 'rdmactl stat --s'

emulate -L zsh
zmodload zsh/zpty || exit 3
fpath_dir=$1 line=$2
work=$(mktemp -d) || exit 3
matches=$work/matches done=$work/done
trap 'zpty -d complete 2>/dev/null; rm -rf -- $work' EXIT

zpty complete zsh -f -i || exit 3
zpty -w complete "PS1='' PS2='' RPS1=''; unsetopt beep zle_bell 2>/dev/null"
zpty -w complete "fpath=(${(q)fpath_dir} \$fpath); autoload -Uz compinit; compinit -u -D"
# Record every match added (not calls that only collect matches: -O, -A, -D).
zpty -w complete "compadd() {
  if (( \${@[(I)-[OAD]]} )); then builtin compadd \"\$@\"; return; fi
  local -a found
  builtin compadd -A found \"\$@\"
  (( \$#found )) && print -rl -- \"\${IPREFIX}\${^found[@]}\" >> ${(q)matches}
  builtin compadd \"\$@\"
}"
zpty -w complete "record_done() { print done >> ${(q)done} }; comppostfuncs=(record_done)"
zpty -w complete "zstyle ':completion:*' list-prompt ''; zstyle ':completion:*' select-prompt ''; LISTMAX=100000"
# The line, then TAB: ZLE runs the completion widget.
zpty -n -w complete "$line"$'\t'

integer waited=0
while [[ ! -s $done ]] && (( waited < 300 )); do
  # Keep the terminal drained (ZSH_COMPLETE_DEBUG=1: show what zsh printed, e.g. errors).
  while zpty -rt complete chunk 2>/dev/null; do
    [[ -n $ZSH_COMPLETE_DEBUG ]] && print -rn -- "$chunk" >&2
  done
  sleep 0.05
  (( waited++ ))
done
if [[ -n $ZSH_COMPLETE_DEBUG ]]; then
  sleep 0.3
  while zpty -rt complete chunk 2>/dev/null; do print -rn -- "$chunk" >&2; done
fi
[[ -s $done ]] || { print -u2 "zsh-complete: completion did not finish"; exit 4 }
[[ -f $matches ]] && sort -u $matches
exit 0
