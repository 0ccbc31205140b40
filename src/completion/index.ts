// `rdmactl completion SHELL`: the completion script for SHELL, generated from the program itself
// with every command loaded, so the script cannot drift from the commands. The program is passed
// in (program.ts builds it and imports this, not the other way round).
//
// Why not a library: @bomb.sh/tab (0.0.x) fits commander, but its scripts run the whole program on
// every TAB (every command loaded, ~0.3 s here), and its bash script evals the typed words unquoted
// and needs bash-completion; @pnpm/tabtab has no commander support. Here, only values that exist
// at TAB time (pids, held ids, columns) run rdmactl, and that loads one small command.

import type { Command } from 'commander';
import { bashScript } from './bash.js';
import { fishScript } from './fish.js';
import { programSpec } from './spec.js';
import { zshScript } from './zsh.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** Where each script goes in an installed package (relative to the package root), by convention. */
export const SCRIPT_PATHS: Readonly<Record<Shell, string>> = {
  bash: 'share/bash-completion/completions/rdmactl',
  zsh: 'share/zsh/site-functions/_rdmactl',
  fish: 'share/fish/vendor_completions.d/rdmactl.fish',
};

/** The script for `shell`, from `program` built with all its commands loaded. */
export async function completionScript(shell: Shell, program: Command): Promise<string> {
  const spec = await programSpec(program);
  switch (shell) {
    case 'bash': return bashScript(spec);
    case 'zsh': return zshScript(spec);
    case 'fish': return fishScript(spec);
  }
}

export { completionValues, type ProgramLoader } from './values.js';
