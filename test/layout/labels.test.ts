// One header style for every table, as ps and lsblk have it: each column label is one upper-case
// word (COUNTED-TWICE, not "COUNTED TWICE" or "verdict text"), so `column -t` and awk see one word
// per header cell. Label/value records say it in words through `title`. Read from the sources, so a
// field list that is not exported is checked too.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/spawn.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.tsx?$/.test(entry.name) ? [path] : [];
  });
}

const LABEL = /\bkey: '([^']+)',\s*label: '((?:[^'\\]|\\.)*)'/g;
const ONE_WORD_UPPER = /^[A-Z0-9_#%][A-Z0-9_#%./-]*$/;

describe('column labels', () => {
  const labels = sources(join(ROOT, 'src')).flatMap((path) =>
    [...readFileSync(path, 'utf8').matchAll(LABEL)].map((match) => ({ where: `${relative(ROOT, path)} ${match[1]}`, label: match[2]! })));

  it('finds the field lists', () => {
    expect(labels.length).toBeGreaterThan(150);
  });

  it('every label is one upper-case word', () => {
    expect(labels.filter(({ label }) => !ONE_WORD_UPPER.test(label))).toEqual([]);
  });
});
