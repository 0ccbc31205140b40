// The fish script, for real: sourced in fish and asked with `complete -C`, as fish does on TAB.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { ACCESS_FLAGS } from '../../src/engine/verbs/access.js';
import { GROUP_FIELDS } from '../../src/observe/groupFields.js';
import { PROCESS_FIELDS, USER_FIELDS } from '../../src/observe/statFields.js';
import { choicesOf, commandOf, fullProgram, setUp, shellMissing, type Fixture } from './helpers.js';

/** What `stat --sort` completes: the keys of the process, group (--by) and user (--by user) tables, once each. */
const STAT_SORT_KEYS = [...new Set([PROCESS_FIELDS, GROUP_FIELDS, USER_FIELDS].flatMap((fields) => fields.map((f) => f.key)))];

const missing = shellMissing('fish');
if (missing) console.warn(`SKIPPING fish completion tests: ${missing}`);

describe.skipIf(missing !== null)(`fish completion${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let fixture: Fixture;
  let program: Command;

  beforeAll(async () => {
    fixture = await setUp();
    program = await fullProgram();
  }, 60_000);
  afterAll(async () => { await fixture?.cleanup(); });

  /** fish's candidates for `line` (value<TAB>description pairs), keyed by value. */
  function complete(line: string): Map<string, string> {
    const result = spawnSync('fish', ['--no-config', '-c', 'source $argv[1]; complete -C $argv[2]', fixture.script('fish'), line], { encoding: 'utf8', env: fixture.env, timeout: 30_000 });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    return new Map(result.stdout.split('\n').filter(Boolean).map((l) => [l.split('\t')[0]!, l.split('\t')[1] ?? ''] as const));
  }
  const values = (line: string): string[] => [...complete(line).keys()].sort();

  it('completes commands with their summaries', () => {
    const offered = complete('rdmactl ');
    for (const command of program.commands) expect(offered.get(command.name())).toBe(command.summary());
    expect(values('rdmactl st')).toEqual(['stat']);
  });

  it('completes options, not hidden ones', () => {
    expect(values('rdmactl stat --so')).toEqual(['--sort']);
    expect(values('rdmactl reg 1M --hol')).toEqual([]);
    expect(values('rdmactl completion --')).toEqual(['--help']);
  });

  it('completes choices and comma lists', () => {
    expect(values('rdmactl stat --by ')).toEqual([...choicesOf(commandOf(program, 'stat'), '--by')].sort());
    expect(values('rdmactl stat --by=un')).toEqual(['--by=unit']);
    // stat --sort takes a comma list of the column keys of its tables (processes; with --by, groups or users)
    expect(values('rdmactl stat --sort ')).toEqual(STAT_SORT_KEYS.sort());
    expect(values('rdmactl stat --sort user,pin')).toEqual(['user,pinnedBytes']);
    expect(values('rdmactl ls --source io_uring,ml')).toEqual(['io_uring,mlock']);
    const re = Object.keys(ACCESS_FLAGS).filter((f) => f.startsWith('re')).map((f) => `local-write,${f}`).sort();
    expect(values('rdmactl reg 1M -a local-write,re')).toEqual(re);
    expect(values('rdmactl completion ')).toEqual(['bash', 'fish', 'zsh']);
  });

  it('completes a live pid (described by its comm) and a held registration id', () => {
    const pid = String(fixture.sleeper.pid);
    expect(complete(`rdmactl limits ${pid}`).get(pid)).toBe(fixture.sleeper.comm);
    expect(values(`rdmactl limits 1 ${pid}`)).toEqual([]); // one pid only
    expect(values(`rdmactl stat 1 ${pid}`)).toContain(pid);
    const held = complete('rdmactl dereg ');
    expect([...held.keys()]).toEqual([fixture.held.id]);
    expect(held.get(fixture.held.id)).toContain(`holder pid ${fixture.held.pid}`);
  });
});
