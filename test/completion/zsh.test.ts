// The zsh function, for real: autoloaded from $fpath by compinit in an interactive zsh running in a
// pseudo-terminal (zsh/zpty), and completed with TAB; zsh-complete.zsh records what compadd added.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { REGISTRATION_SOURCES } from '../../src/observe/registrations.js';
import { GROUP_FIELDS } from '../../src/observe/groupFields.js';
import { PROCESS_FIELDS, USER_FIELDS } from '../../src/observe/statFields.js';
import { choicesOf, commandOf, fullProgram, setUp, shellMissing, type Fixture } from './helpers.js';

/** What `stat --sort` completes: the keys of the process, group (--by) and user (--by user) tables, once each. */
const STAT_SORT_KEYS = [...new Set([PROCESS_FIELDS, GROUP_FIELDS, USER_FIELDS].flatMap((fields) => fields.map((f) => f.key)))];

const CAPTURE = fileURLToPath(new URL('./zsh-complete.zsh', import.meta.url));

function zptyMissing(): string | null {
  const shell = shellMissing('zsh');
  if (shell) return shell;
  return spawnSync('zsh', ['-fc', 'zmodload zsh/zpty']).status === 0 ? null : 'zsh has no zsh/zpty module';
}
const missing = zptyMissing();
if (missing) console.warn(`SKIPPING zsh completion tests: ${missing}`);

describe.skipIf(missing !== null)(`zsh completion${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let fixture: Fixture;
  let program: Command;

  beforeAll(async () => {
    fixture = await setUp();
    program = await fullProgram();
  }, 60_000);
  afterAll(async () => { await fixture?.cleanup(); });

  /** The matches zsh adds when TAB is pressed at the end of `line`. */
  function complete(line: string): string[] {
    const result = spawnSync('zsh', ['-f', CAPTURE, fixture.dir, line], { encoding: 'utf8', env: fixture.env, timeout: 30_000 });
    expect(result.status, result.stderr).toBe(0);
    return result.stdout.split('\n').filter(Boolean);
  }

  it('the file is a #compdef function that compinit autoloads', () => {
    const result = spawnSync('zsh', ['-fc', 'fpath=("$1" $fpath); autoload -Uz compinit; compinit -u -D; print -r -- ${_comps[rdmactl]}', 'x', fixture.dir], { encoding: 'utf8', env: fixture.env });
    expect(result.stdout.trim()).toBe('_rdmactl');
  });

  it('completes commands and options', () => {
    expect(complete('rdmactl ')).toEqual([...program.commands.map((c) => c.name()), 'help'].sort());
    expect(complete('rdmactl st')).toEqual(['stat']);
    expect(complete('rdmactl stat --so')).toEqual(['--sort']);
    expect(complete('rdmactl reg 1M --hol')).toEqual([]); // --holder-token is hidden
  }, 60_000);

  it('completes choices and comma lists', () => {
    expect(complete('rdmactl stat --by ')).toEqual([...choicesOf(commandOf(program, 'stat'), '--by')].sort());
    expect(complete('rdmactl stat --by=un')).toEqual(['--by=unit']);
    // stat --sort takes a comma list of the column keys of its tables (processes; with --by, groups or users)
    expect(complete('rdmactl stat --sort ')).toEqual(STAT_SORT_KEYS.sort());
    expect(complete('rdmactl stat --sort user,pin')).toEqual(['user,pinnedBytes']);
    expect(complete('rdmactl ls --source ')).toEqual([...REGISTRATION_SOURCES].sort());
    expect(complete('rdmactl ls --source io_uring,ml')).toEqual(['io_uring,mlock']);
    expect(complete('rdmactl completion ')).toEqual(['bash', 'fish', 'zsh']);
  }, 60_000);

  it('completes -o/--output with the command\'s columns', async (ctx) => {
    const stat = program.commands.find((c) => c.name() === 'stat')!;
    if (!stat.options.some((o) => o.long === '--output')) return ctx.skip('stat has no -o/--output yet');
    const { rdmactl } = await import('../helpers/run.js');
    const listed = await rdmactl('stat', '--list-columns', '--json');
    const keys = (JSON.parse(listed.stdout) as { columns: Array<{ key: string }> }).columns.map((c) => c.key);
    const p = keys.filter((k) => k.startsWith('p')).sort();
    expect(p.length).toBeGreaterThan(0);
    expect(complete('rdmactl stat -o p')).toEqual(p);
    expect(complete('rdmactl stat -o +uid,p')).toEqual(p.map((k) => `+uid,${k}`));
  }, 60_000);

  it('completes a live pid and a held registration id', () => {
    const pid = String(fixture.sleeper.pid);
    expect(complete(`rdmactl limits ${pid}`)).toContain(pid);
    expect(complete(`rdmactl stat 1 ${pid}`)).toContain(pid);
    expect(complete('rdmactl dereg ')).toEqual([fixture.held.id]);
  }, 60_000);
});
