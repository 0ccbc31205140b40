// rdmactl completion bash|zsh|fish: print a shell completion script.

import { Argument, Command, Option } from 'commander';
import { SHELLS, completionScript, completionValues, type ProgramLoader, type Shell } from '../completion/index.js';
import { UsageError } from '../lib/errors.js';
import type { Context } from '../lib/context.js';

/** `loadProgram`: the program to complete, with the commands its arguments name (program.ts makeProgram). */
export function completionCommand(ctx: Context, loadProgram: ProgramLoader): Command {
  return new Command('completion')
    .summary('print a shell completion script (bash, zsh, fish)')
    .description(`Print the completion script for SHELL, generated from rdmactl's own commands and options. It
completes commands, options, their choices (--sort, --source, --backend, --access, …), column names
for -o/--output, held registration ids for \`dereg\` and live pids for \`stat\` and \`limits\`; those
last values are read when you press TAB, by running \`rdmactl completion --values KIND\`.

An installed package already ships the scripts where shells look for them:
  share/bash-completion/completions/rdmactl, share/zsh/site-functions/_rdmactl,
  share/fish/vendor_completions.d/rdmactl.fish`)
    .addArgument(new Argument('[shell]', 'the shell to complete for').choices([...SHELLS]))
    .addOption(new Option('--values <kind>', 'internal: print values for the scripts (pids, held-ids, columns:COMMAND)').hideHelp())
    .addHelpText('after', `
Examples:
  source <(rdmactl completion bash)          in ~/.bashrc
  source <(rdmactl completion zsh)           in ~/.zshrc, after compinit
  rdmactl completion fish | source           in ~/.config/fish/config.fish`)
    .action(async (shell: Shell | undefined, flags: { values?: string }) => {
      if (flags.values !== undefined) {
        if (shell !== undefined) throw new UsageError('give a shell or --values, not both');
        for (const [value, description] of await completionValues(flags.values, ctx, loadProgram)) ctx.stdout.write(`${value}\t${description}\n`);
        return;
      }
      if (shell === undefined) throw new UsageError(`which shell? give one of ${SHELLS.join(', ')}`, ['e.g. source <(rdmactl completion bash)']);
      ctx.stdout.write(await completionScript(shell, await loadProgram([])));
    });
}
