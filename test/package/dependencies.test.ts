// The dependency tree as installed from package-lock.json: every peer range satisfied, so a clean
// `npm install` prints no ERESOLVE warnings (react was once pinned below what ink's reconciler
// wants). `npm ls` reads node_modules only: no network.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/spawn.js';

describe('installed dependencies', () => {
  it('npm ls --all finds no invalid or missing package', () => {
    const listed = spawnSync('npm', ['ls', '--all', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    const tree = JSON.parse(listed.stdout) as { problems?: string[] };
    expect(tree.problems ?? [], listed.stderr).toEqual([]);
    expect(listed.status).toBe(0);
  });
});
