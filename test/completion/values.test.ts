// `rdmactl completion --values KIND` (what the scripts run on TAB) and the command's usage errors,
// checked against /proc, the held store and the commands' own --list-columns.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rdmactl } from '../helpers/run.js';
import { rdmactlBin } from '../held/helpers.js';
import { fullProgram, setUp, type Fixture } from './helpers.js';

function parse(stdout: string): Map<string, string> {
  return new Map(stdout.split('\n').filter(Boolean).map((line) => {
    expect(line).toMatch(/^[^\t]+\t/); // value<TAB>description, always
    const [value, description] = line.split('\t');
    return [value!, description!] as const;
  }));
}

describe('completion --values', () => {
  let fixture: Fixture;
  beforeAll(async () => { fixture = await setUp(); }, 60_000);
  afterAll(async () => { await fixture?.cleanup(); });

  it('pids: every process in /proc, described by its comm', () => {
    const result = rdmactlBin(['completion', '--values', 'pids'], fixture.env);
    expect(result.status, result.stderr).toBe(0);
    const pids = parse(result.stdout);
    expect(pids.get(String(fixture.sleeper.pid))).toBe(fixture.sleeper.comm);
    expect(pids.get('1')).toBe(readFileSync('/proc/1/comm', 'utf8').trim());
    const numbers = [...pids.keys()].map(Number);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
  });

  it('held-ids: the registrations dereg would release, with their holder pid', () => {
    const result = rdmactlBin(['completion', '--values', 'held-ids'], fixture.env);
    expect(result.status, result.stderr).toBe(0);
    const ids = parse(result.stdout);
    expect([...ids.keys()]).toEqual([fixture.held.id]);
    expect(ids.get(fixture.held.id)).toMatch(new RegExp(`^holder pid ${fixture.held.pid} mlock$`));
  });

  it('columns:CMD: exactly the keys of `CMD --list-columns --json`, or nothing where CMD has no such option', async () => {
    const program = await fullProgram();
    let withColumns = 0;
    for (const command of program.commands) {
      const name = command.name();
      const values = await rdmactl('completion', '--values', `columns:${name}`);
      expect(values.code, values.stderr).toBe(0);
      if (!command.options.some((o) => o.long === '--list-columns')) {
        expect(values.stdout, name).toBe('');
        continue;
      }
      withColumns++;
      const listed = await rdmactl(name, '--list-columns', '--json');
      expect(listed.code, listed.stderr).toBe(0);
      const keys = (JSON.parse(listed.stdout) as { columns: Array<{ key: string }> }).columns.map((c) => c.key);
      expect([...parse(values.stdout).keys()], name).toEqual(keys);
    }
    if (withColumns === 0) console.warn('completion --values columns: no command has --list-columns yet; checked that none is offered');
  });

  it('usage errors exit 2 with one line naming what is wrong', async () => {
    for (const args of [['completion', '--values', 'nope'], ['completion'], ['completion', 'tcsh'], ['completion', 'bash', '--values', 'pids']]) {
      const result = await rdmactl(...args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    expect((await rdmactl('completion', '--values', 'nope')).stderr).toMatch(/^rdmactl: invalid --values 'nope': expected pids, held-ids, columns:COMMAND\n$/);
    expect((await rdmactl('completion')).stderr).toMatch(/^rdmactl: which shell\? give one of bash, zsh, fish\n/);
  });

  it('the scripts shipped in share/ are what `rdmactl completion SHELL` prints', async () => {
    const { SCRIPT_PATHS, SHELLS } = await import('../../src/completion/index.js');
    for (const shell of SHELLS) {
      const printed = rdmactlBin(['completion', shell], fixture.env);
      expect(printed.status).toBe(0);
      expect(readFileSync(new URL(`../../${SCRIPT_PATHS[shell]}`, import.meta.url), 'utf8'), shell).toBe(printed.stdout);
    }
  });
});
