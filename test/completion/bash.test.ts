// The bash script, for real: sourced in bash, registered with `complete`, and its completion function
// run with COMP_WORDS/COMP_CWORD as bash's programmable completion sets them. Expected words come
// from the program (commander options and choices), pids from /proc, ids from `reg --detach`.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { ACCESS_FLAGS } from '../../src/engine/verbs/access.js';
import { REGISTRATION_SOURCES } from '../../src/observe/registrations.js';
import { GROUP_FIELDS } from '../../src/observe/groupFields.js';
import { PROCESS_FIELDS, USER_FIELDS } from '../../src/observe/statFields.js';
import { choicesOf, commandOf, fullProgram, setUp, shellMissing, type Fixture } from './helpers.js';

/** What `stat --sort` completes: the keys of the process, group (--by) and user (--by user) tables, once each. */
const STAT_SORT_KEYS = [...new Set([PROCESS_FIELDS, GROUP_FIELDS, USER_FIELDS].flatMap((fields) => fields.map((f) => f.key)))];

const missing = shellMissing('bash');
if (missing) console.warn(`SKIPPING bash completion tests: ${missing}`);
const tmuxMissing = spawnSync('tmux', ['-V']).status === 0 ? null : 'tmux is not installed (apt-get install tmux)';
if (tmuxMissing) console.warn(`SKIPPING the interactive bash completion test: ${tmuxMissing}`);

// Sources the script, finds the function `complete -p` names, and runs it on the words given.
const DRIVER = `
source "$1" || exit 3
shift
spec=$(complete -p rdmactl) || exit 4
fn=\${spec#*-F }
fn=\${fn%% *}
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=\${#COMP_LINE}
COMPREPLY=()
"$fn" rdmactl "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"
`;

describe.skipIf(missing !== null)(`bash completion${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let fixture: Fixture;
  let program: Command;

  beforeAll(async () => {
    fixture = await setUp();
    program = await fullProgram();
  }, 60_000);
  afterAll(async () => { await fixture?.cleanup(); });

  /** What bash completes for the words (the last one is the word at the cursor). */
  function complete(...words: string[]): string[] {
    const result = spawnSync('bash', ['--norc', '--noprofile', '-c', DRIVER, 'driver', fixture.script('bash'), 'rdmactl', ...words], { encoding: 'utf8', env: fixture.env, timeout: 30_000 });
    expect(result.status, result.stderr).toBe(0);
    return result.stdout.split('\n').filter(Boolean);
  }

  it('registers a completion function for rdmactl with complete -F', () => {
    const result = spawnSync('bash', ['--norc', '--noprofile', '-c', 'source "$1" && complete -p rdmactl', 'x', fixture.script('bash')], { encoding: 'utf8' });
    expect(result.stdout).toMatch(/^complete -F _rdmactl rdmactl$/m);
  });

  it('completes every command of the program, and a prefix to its command', () => {
    const names = program.commands.map((c) => c.name());
    expect(names).toContain('completion');
    expect(complete('')).toEqual([...names, 'help']);
    expect(complete('st')).toEqual(['stat']);
    expect(complete('d')).toEqual(names.filter((n) => n.startsWith('d')));
    expect(complete('de')).toEqual(['dereg', 'devices']);
  });

  it('completes every visible option of every command, and no hidden one', () => {
    for (const command of program.commands) {
      const offered = complete(command.name(), '-');
      const visible = command.createHelp().visibleOptions(command).flatMap((o) => [o.short, o.long]).filter(Boolean);
      expect(offered.sort(), command.name()).toEqual([...visible].sort());
    }
    expect(complete('reg', '--h')).toEqual(['--help']); // not --holder-token
    expect(complete('completion', '--')).toEqual(['--help']); // not --values
    expect(complete('-')).toEqual(['-V', '--version', '-h', '--help']);
  });

  it('completes commander choices after the option, after =, and with a prefix', () => {
    const reg = commandOf(program, 'reg');
    expect(complete('reg', '--backing', '')).toEqual([...choicesOf(reg, '--backing')]);
    expect(complete('reg', '-b', 'u')).toEqual(['uring']);
    // bash splits --backing=th at '=' (COMP_WORDBREAKS): the words are --backing, =, th
    expect(complete('reg', '--backing', '=', 'th')).toEqual(['thp']);
    // right after '=', the word is '=' itself, but readline replaces only the text after it
    expect(complete('reg', '--backing', '=')).toEqual([...choicesOf(reg, '--backing')]);
    // stat --sort and ls --sort: a comma list of the command's column keys (stat: of every table it sorts)
    expect(complete('stat', '--sort', '')).toEqual(STAT_SORT_KEYS);
    expect(complete('stat', '--by', 'unit', '--sort', 'memo')).toEqual(['memoryLimitBytes', 'memoryHeadroomBytes', 'memoryUsageBytes']);
    expect(complete('stat', '-s', 'user,pin')).toEqual(['user,pinnedBytes']);
    expect(complete('ls', '--sort', 'le')).toEqual(['length']);
    expect(complete('reg', '1M', '--backend', '')).toEqual([...choicesOf(commandOf(program, 'reg'), '--backend')]);
    expect(complete('reg', '1M', '--backing', 'file-')).toEqual(['file-shared', 'file-private']);
    expect(complete('completion', '')).toEqual(['bash', 'zsh', 'fish']);
    expect(complete('stat', '--user', 'roo')).toContain('root'); // the shell's own user names
    expect(complete('reg', '1M', '--file', '/pro')).toEqual(['/proc']); // the shell's own file names
    expect(complete('help', 'l')).toEqual(['limits', 'ls']);
  });

  it('completes comma lists after the last comma (--source, --access, fork --backend)', () => {
    expect(complete('ls', '--source', '')).toEqual([...REGISTRATION_SOURCES]);
    expect(complete('ls', '--source', 'io_uring,m')).toEqual(['io_uring,mlock']);
    const re = Object.keys(ACCESS_FLAGS).filter((f) => f.startsWith('re'));
    expect(re.length).toBeGreaterThan(1);
    expect(complete('reg', '1M', '--access', 'local-write,re')).toEqual(re.map((f) => `local-write,${f}`));
    expect(complete('fork', '--backend', 'mlock,u')).toEqual(['mlock,uring']);
  });

  it('does not take an option value for an argument: `stat --sort pid <TAB>` completes pids again', () => {
    const offered = complete('stat', '--sort', 'pid', String(fixture.sleeper.pid));
    expect(offered).toContain(String(fixture.sleeper.pid));
  });

  // -o/--output comes with the output options; until a command has it, this skips and says so.
  it('completes -o/--output with the command\'s own columns (`--list-columns --json`), after commas and +', async (ctx) => {
    const withOutput = program.commands.filter((c) => c.options.some((o) => o.long === '--output'));
    if (withOutput.length === 0) return ctx.skip('no command has -o/--output yet');
    const { rdmactl } = await import('../helpers/run.js');
    for (const command of withOutput) {
      const listed = await rdmactl(command.name(), '--list-columns', '--json');
      expect(listed.code, listed.stderr).toBe(0);
      const keys = (JSON.parse(listed.stdout) as { columns: Array<{ key: string }> }).columns.map((c) => c.key);
      expect(complete(command.name(), '-o', ''), command.name()).toEqual(keys);
      expect(complete(command.name(), '--output', `+${keys[0]},`), command.name()).toEqual(keys.map((k) => `+${keys[0]},${k}`));
    }
  });

  it('completes live pids for stat and limits, and in ls --pid lists', () => {
    const pid = String(fixture.sleeper.pid);
    expect(complete('stat', pid)).toContain(pid);
    expect(complete('stat', '')).toContain(String(process.pid));
    expect(complete('limits', pid)).toContain(pid);
    for (const offered of complete('limits', pid)) expect(offered.startsWith(pid)).toBe(true);
    expect(complete('limits', '1', pid)).toEqual([]); // limits takes one pid
    expect(complete('ls', '--pid', `1,${pid}`)).toContain(`1,${pid}`);
  });

  it('completes the id of a live held registration for dereg, and not once it is released', () => {
    expect(complete('dereg', '')).toEqual([fixture.held.id]);
    expect(complete('dereg', fixture.held.id.slice(0, 3))).toEqual([fixture.held.id]);
    expect(fixture.dereg()).toBe(true);
    expect(complete('dereg', '')).toEqual([]);
  });

  // readline decides what a completion replaces (e.g. only the text after '=' in --sort=): type into
  // a real interactive bash in a terminal (tmux, on a private server) and read the line back.
  it.skipIf(tmuxMissing !== null)(`TAB in an interactive bash completes the line${tmuxMissing ? ` (skipped: ${tmuxMissing})` : ''}`, async () => {
    const server = `rdmactl-completion-${process.pid}`;
    const tmux = (...args: string[]) => spawnSync('tmux', ['-L', server, ...args], { encoding: 'utf8', env: fixture.env });
    const env = ['HOME', 'PATH', 'XDG_RUNTIME_DIR'].map((k) => `${k}=${fixture.env[k]}`);
    try {
      expect(tmux('new-session', '-d', '-s', 'c', '-x', '160', '-y', '20', 'env', '-i', 'TERM=xterm', ...env, 'bash', '--norc', '--noprofile').status).toBe(0);
      tmux('send-keys', '-t', 'c', `source ${fixture.script('bash')}; PS1='$ '`, 'Enter');
      // Typed, then TAB, then X: once X shows, bash has finished the completion.
      const cases: Array<[string, string]> = [
        ['rdmactl st', 'rdmactl stat X'],
        ['rdmactl stat --by=un', 'rdmactl stat --by=unit X'],
        ['rdmactl stat --by=', 'rdmactl stat --by=X'], // several choices: nothing inserted, not a second '='
        ['rdmactl ls --source=io_uring,ml', 'rdmactl ls --source=io_uring,mlockX'], // a list: no space, a comma may follow
        ['rdmactl completion z', 'rdmactl completion zsh X'],
      ];
      for (const [typed, expected] of cases) {
        tmux('send-keys', '-t', 'c', 'C-u', 'C-l');
        tmux('send-keys', '-t', 'c', '-l', typed);
        tmux('send-keys', '-t', 'c', 'Tab');
        tmux('send-keys', '-t', 'c', '-l', 'X');
        let line = '';
        for (let i = 0; i < 100 && line !== `$ ${expected}`; i++) {
          await new Promise((r) => setTimeout(r, 50));
          line = (tmux('capture-pane', '-p', '-t', 'c').stdout.split('\n').filter((l) => l.startsWith('$ ')).pop() ?? '').trimEnd();
        }
        expect(line, typed).toBe(`$ ${expected}`);
      }
    } finally {
      tmux('kill-server');
    }
  });
});
