// What people used to ps, lsblk and ip expect at a shell: -J for --json, JSON indented on a terminal
// and one line in a pipe, sizes in one form, notes on stderr, and an error that says which option a
// letter is when a command has taken it for something else.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { makeProgram } from '../../src/program.js';
import { rdmactl, rdmactlWith } from '../helpers/run.js';
import { BIN, builtOrThrow } from '../helpers/spawn.js';

describe('shell conventions', () => {
  it('-J is --json on every command that prints JSON, and is listed in its help', async () => {
    // trace is checked through its help only: its JSON needs root and a mounted tracefs.
    const withJson = ['stat', 'ls', 'limits', 'devices', 'doctor', 'top', 'fork', 'scenario', 'reg', 'dereg', 'trace'];
    for (const command of withJson) {
      const help = await rdmactl(command, '--help');
      expect(help.stdout, command).toMatch(/^\s+-J, --json\b/m);
    }
    // The list above is every command of the program that has --json, so a new one is not left out.
    const quiet = { write: (): void => {} };
    const program = await makeProgram({ stdout: quiet, stderr: quiet, env: {}, stdoutIsTty: false, euid: 0 });
    const programWithJson = program.commands.filter((c) => c.options.some((o) => o.long === '--json')).map((c) => c.name());
    expect(programWithJson.sort()).toEqual([...withJson].sort());
    const short = JSON.parse((await rdmactl('limits', '-J')).stdout) as { schema: string; pid: number };
    expect(short.schema).toBe('rdmactl.limits/1');
    expect(short.pid).toBe(process.pid);
    // Bundled with other short flags, as getopt allows.
    const bundled = JSON.parse((await rdmactl('stat', '-aJ')).stdout) as { schema: string };
    expect(bundled.schema).toBe('rdmactl.stat/1');
  });

  it('-b is --backend, -s --sort and -a --access on every command that has them, and --bytes alone there', async () => {
    const quiet = { write: (): void => {} };
    const program = await makeProgram({ stdout: quiet, stderr: quiet, env: {}, stdoutIsTty: false, euid: 0 });
    const withBackend = program.commands.filter((c) => c.options.some((o) => o.long === '--backend'));
    expect(withBackend.map((c) => c.name()).sort()).toEqual(['doctor', 'fork', 'reg', 'scenario']);
    for (const command of withBackend) {
      expect(command.options.find((o) => o.long === '--backend')?.short, command.name()).toBe('-b');
      const bytes = command.options.find((o) => o.long === '--bytes');
      if (bytes) expect(bytes.short, command.name()).toBeUndefined();
    }
    // The same for -s (--sort, where a command sorts) and -a (--access, where it takes access flags).
    for (const [long, letter, names] of [['--sort', '-s', ['ls', 'stat', 'top']], ['--access', '-a', ['doctor', 'fork', 'reg', 'scenario']]] as const) {
      const having = program.commands.filter((c) => c.options.some((o) => o.long === long));
      expect(having.map((c) => c.name()).sort(), long).toEqual(names);
      for (const command of having) expect(command.options.find((o) => o.long === long)?.short, `${command.name()} ${long}`).toBe(letter);
    }
    // So a backend list reads the same in fork and scenario.
    const scenario = await rdmactl('scenario', 'munlock', '-b', 'mlock', '-rn', '-o', 'backend');
    expect(scenario.code, scenario.stderr).toBe(0);
    expect(scenario.stdout).toBe('mlock\n');
  });

  it('JSON is indented on a terminal and one line in a pipe; NDJSON stays one line per document', async () => {
    const piped = await rdmactl('limits', '--json');
    expect(piped.stdout.trim().split('\n')).toHaveLength(1);
    const onTerminal = await rdmactlWith({ tty: true }, 'limits', '--json');
    expect(onTerminal.stdout.split('\n').length).toBeGreaterThan(5);
    expect(onTerminal.stdout).toMatch(/^{\n {2}"host": /);
    expect(JSON.parse(onTerminal.stdout)).toEqual({ ...(JSON.parse(piped.stdout) as object), pid: process.pid });
    const stream = await rdmactlWith({ tty: true }, 'ls', '--ndjson', '--source', 'mlock');
    for (const line of stream.stdout.trim().split('\n').filter(Boolean)) expect(() => JSON.parse(line) as unknown).not.toThrow();
  });

  it('a letter the command has taken: the error names both options (reg -n is --count, not --noheadings)', () => {
    builtOrThrow();
    const result = spawnSync(process.execPath, [BIN, 'reg', '4K', '--backend', 'mlock', '-rn', '--bytes'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe("rdmactl: invalid --count '--bytes': expected a whole number from 1 to 16384 (here -n is --count; the output option is --noheadings)\n");
  });

  it('a taken letter at the end of the line: "argument missing" names both options too (reg -rn)', () => {
    builtOrThrow();
    const result = spawnSync(process.execPath, [BIN, 'reg', '1M', '--backend', 'mlock', '-rn'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe("rdmactl: option '-n, --count <n>' argument missing (here -n is --count; the output option is --noheadings)\n");
    expect(result.stdout).toBe('');
  });

  it('a taken letter whose value fork checks: fork -rb -n names both options (-b is --backend)', () => {
    builtOrThrow();
    const result = spawnSync(process.execPath, [BIN, 'fork', '-rb', '-n'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe("rdmactl: invalid --backend '-n': valid values are plain, mlock, uring, verbs (comma-separated, or all) (here -b is --backend; the output option is --bytes)\n");
    expect(result.stdout).toBe('');
  });

  it('notes and warnings go to stderr; stdout in a pipe carries the table alone', async () => {
    const ls = await rdmactl('ls', '--source', 'rdma,mlock');
    expect(ls.code).toBe(0);
    const lines = ls.stdout.split('\n').filter(Boolean);
    expect(lines[0]).toMatch(/^SOURCE +PID +COMM /);
    for (const line of lines.slice(1)) expect(line).toMatch(/^(rdma|mlock) +\d+ /);
    // Where no RDMA device or netlink exists, ls says so on stderr (and only there).
    if (!ls.stdout.includes('rdma ')) expect(ls.stderr).toMatch(/^rdmactl: rdma: /m);
  });
});
