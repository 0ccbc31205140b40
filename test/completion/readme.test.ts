// The README's bash completion set-up, done as it says: its apt line installs bash-completion, and the
// shipped script linked into ~/.local/share/bash-completion/completions/ is loaded by bash-completion
// on the first TAB. Without bash-completion on this machine the second part skips and says why
// (RDMACTL_TEST_BASH_COMPLETION may name another copy of its bash_completion script).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SCRIPT_PATHS } from '../../src/completion/index.js';
import { ROOT } from '../helpers/spawn.js';
import { shellMissing } from './helpers.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const LOADER = process.env['RDMACTL_TEST_BASH_COMPLETION'] || '/usr/share/bash-completion/bash_completion';
const noLoader = shellMissing('bash') ?? (existsSync(LOADER) ? null : `bash-completion is not installed (apt-get install bash-completion): ${LOADER} is missing`);
if (noLoader) console.warn(`SKIPPING the check that bash-completion loads the shipped script: ${noLoader}`);

/** The packages of every `apt-get install` in the README's shell blocks. */
function aptInstalls(markdown: string): string[][] {
  const blocks = [...markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
  return blocks.flatMap((block) => [...block.matchAll(/apt-get install ((?:[^&\n]|&(?!&))*)/g)])
    .map((m) => m[1]!.trim().split(/\s+/).filter((word) => !word.startsWith('-')));
}

describe('README: bash completion as the README sets it up', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }); });

  it('the set-up apt line installs bash-completion, which the bash row of the completion table relies on', () => {
    const installs = aptInstalls(README);
    expect(installs.length).toBeGreaterThan(0);
    expect(installs[0]).toEqual(expect.arrayContaining(['libibverbs1', 'bash-completion']));
    const bashRow = README.split('\n').find((line) => line.startsWith('| bash |'));
    expect(bashRow).toContain(SCRIPT_PATHS.bash);
    expect(bashRow).toContain('~/.local/share/bash-completion/completions/');
    expect(bashRow).toMatch(/bash-completion package/);
  });

  it('bash-completion loads the shipped script from ~/.local/share/bash-completion/completions/ on the first TAB', { skip: noLoader !== null }, () => {
    const home = mkdtempSync(join(tmpdir(), 'rdmactl-bash-completion-'));
    dirs.push(home);
    const completions = join(home, '.local', 'share', 'bash-completion', 'completions');
    mkdirSync(completions, { recursive: true });
    symlinkSync(join(ROOT, SCRIPT_PATHS.bash), join(completions, 'rdmactl'));
    // No spec before the first TAB; the default (-D) completion bash-completion installs loads it.
    const script = `source "$1" || exit 3
complete -p rdmactl 2>/dev/null && exit 4
loader=$(complete -p -D) || exit 5
loader=\${loader#*-F }
loader=\${loader%% *}
"$loader" rdmactl "" rdmactl
complete -p rdmactl`;
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home };
    const result = spawnSync('bash', ['--norc', '--noprofile', '-c', script, 'bash', LOADER], { encoding: 'utf8', env });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toMatch(/^complete -F _rdmactl rdmactl$/);
  });
});
