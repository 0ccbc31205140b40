#!/usr/bin/env node
// Writes the shell completion scripts, generated from the built program (`rdmactl completion SHELL`),
// where shells look for them in an installed package:
//   share/bash-completion/completions/rdmactl, share/zsh/site-functions/_rdmactl,
//   share/fish/vendor_completions.d/rdmactl.fish
// Run by `npm run build` after tsc; the files are build output (not in git), shipped by `npm pack`.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { SCRIPT_PATHS, SHELLS, completionScript } = await import('../dist/completion/index.js');
const { makeProgram } = await import('../dist/program.js');

const quiet = { write: () => {} };
// An empty environment: the scripts must not depend on who built them.
const ctx = { stdout: quiet, stderr: quiet, env: {}, stdoutIsTty: false };
for (const shell of SHELLS) {
  const path = resolve(root, SCRIPT_PATHS[shell]);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, await completionScript(shell, await makeProgram(ctx))); // then rename: never half-written
  renameSync(`${path}.tmp`, path);
}
console.log(`completions: ${SHELLS.map((shell) => SCRIPT_PATHS[shell]).join(', ')}`);
