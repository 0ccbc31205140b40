// Output for shells (-o, +LIST, --output-all, -H, -n, -r, -b, plain vs boxed tables, host/schema),
// run against real processes: an rdmactl holder pinning with io_uring and a `sleep` whose name has a
// space. Every value is checked against /proc read by the test itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonLines, rdmactl, rdmactlWith } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { builtOrThrow, exited, startRdmactl } from '../helpers/spawn.js';
import { makeTempDir } from '../proc/helpers/children.js';

type Json = Record<string, unknown>;
const MiB = 1024 * 1024;
const BOX = /[│─┌┐└┘├┤┬┴┼]/;
const ANSI = /\x1b\[/;
const COMMANDS_WITH_COLUMNS = ['stat', 'ls', 'limits', 'devices', 'reg', 'fork', 'dereg'] as const;

/** Soft RLIMIT_MEMLOCK of this process in bytes (null: unlimited), read from /proc/self/limits. */
function memlockSoftBytes(): number | null {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max locked memory'))!;
  const soft = line.slice('Max locked memory'.length).trim().split(/\s+/)[0]!;
  return soft === 'unlimited' ? null : Number(soft);
}

describe('output for shells', () => {
  let holder: Awaited<ReturnType<typeof startRdmactl>>;
  let holderPid: number;
  let sleeper: ChildProcess;
  let dir: string;

  beforeAll(async () => {
    builtOrThrow();
    holder = await startRdmactl(['reg', '4M', '--backend', 'uring', '--json']);
    holderPid = holder.child.pid!;
    dir = makeTempDir('rdmactl-output-');
    const spaced = join(dir, 'my sleep');
    copyFileSync('/bin/sleep', spaced);
    sleeper = spawn(spaced, ['300'], { stdio: 'ignore' });
    await new Promise((resolve) => sleeper.once('spawn', resolve));
  });

  afterAll(async () => {
    holder.child.kill('SIGTERM');
    await exited(holder.child);
    sleeper.kill('SIGKILL');
    if (sleeper.exitCode === null && sleeper.signalCode === null) await new Promise((resolve) => sleeper.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('not a terminal: plain space-aligned columns that awk can split; the first column is the pid', async () => {
    const result = await rdmactl('stat', String(holderPid));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toMatch(BOX);
    expect(result.stdout).not.toMatch(ANSI);
    const lines = result.stdout.split('\n');
    expect(lines[0]!.split(/\s+/).slice(0, 4)).toEqual(['PID', 'USER', 'COMM', 'PINNED']);
    // `rdmactl stat PID | awk 'NR == 2 {print $1}'`
    expect(lines[1]!.split(/\s+/)[0]).toBe(String(holderPid));
    expect(lines.every((line) => line === line.trimEnd())).toBe(true);
  });

  it('a terminal gets box-drawn tables, still without colour (with or without NO_COLOR); -r never boxes', async () => {
    for (const env of [{}, { NO_COLOR: '1' }]) {
      const boxed = await rdmactlWith({ tty: true, env }, 'stat', String(holderPid));
      expect(boxed.code, boxed.stderr).toBe(0);
      expect(boxed.stdout).toMatch(BOX);
      expect(boxed.stdout).toMatch(new RegExp(`│ +${holderPid} +│`));
      expect(boxed.stdout).not.toMatch(ANSI);
    }
    const raw = await rdmactlWith({ tty: true }, 'stat', String(holderPid), '-r');
    expect(raw.stdout).not.toMatch(BOX);
  });

  it('-r -n -b -o: one bare line per record with the values the kernel reports', async () => {
    const result = await rdmactl('stat', String(holderPid), '-r', '-n', '-b', '-o', 'pid,pinnedBytes,lockedBytes');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${holderPid} ${statusKb(holderPid, 'VmPin') * 1024} ${statusKb(holderPid, 'VmLck') * 1024}\n`);
    expect(statusKb(holderPid, 'VmPin') * 1024).toBe(4 * MiB);
  });

  it('-o takes JSON keys or labels in any case and keeps their order; +LIST appends; --output-all is every column', async () => {
    const picked = await rdmactl('stat', String(holderPid), '-o', 'PINNEDBYTES,comm,Pid');
    expect(picked.stdout.split('\n')[0]!.split(/\s+/)).toEqual(['PINNED', 'COMM', 'PID']);
    expect(picked.stdout.split('\n')[1]!.trim().split(/\s+/)).toEqual(['4M', 'node', String(holderPid)]);
    const byLabel = await rdmactl('stat', String(holderPid), '-o', 'pid,counted-twice', '-r');
    expect(byLabel.stdout.split('\n')[0]).toBe('PID COUNTED-TWICE');
    const appended = await rdmactl('stat', String(holderPid), '-o', '+uid,io_uring');
    expect(appended.stdout.split('\n')[0]!.split(/\s+/)).toEqual(['PID', 'USER', 'COMM', 'PINNED', 'LOCKED', 'MEMLOCK', 'HEADROOM', 'FLAGS', 'UID', 'IO_URING']);
    const all = await rdmactl('stat', String(holderPid), '--output-all', '-r');
    const columns = JSON.parse((await rdmactl('stat', '-H', '--json')).stdout) as { columns: Json[] };
    expect(all.stdout.split('\n')[0]!.split(' ')).toHaveLength(columns.columns.length);
    // io_uring buffers of the holder as its fdinfo says: 4 MiB
    expect(all.stdout.split('\n')[1]!.split(' ')).toContain('4M');
  });

  it('-n drops the header and the totals; on a terminal without -n the user and system totals follow', async () => {
    const full = await rdmactlWith({ tty: true }, 'stat', String(holderPid));
    expect(full.stdout).toContain('pinned (sum of VmPin)');
    const bare = await rdmactl('stat', String(holderPid), '-n');
    expect(bare.stdout.split('\n').filter(Boolean)).toHaveLength(1);
    expect(bare.stdout).toMatch(new RegExp(`^${holderPid} +root +node +4M `));
  });

  it('-r escapes blanks and backslashes the util-linux way (\\x20), so a name with a space stays one field', async () => {
    const result = await rdmactl('stat', String(sleeper.pid), '-r', '-n', '-o', 'pid,comm,pinned');
    expect(result.code, result.stderr).toBe(0);
    const comm = readFileSync(`/proc/${sleeper.pid}/comm`, 'utf8').trim();
    expect(comm).toBe('my sleep');
    expect(result.stdout).toBe(`${sleeper.pid} my\\x20sleep 0B\n`);
    expect(result.stdout.trim().split(' ')).toHaveLength(3);
  });

  it('-b prints sizes as integer bytes in text (limits of this process, from /proc/self/limits)', async () => {
    const soft = memlockSoftBytes();
    const result = await rdmactl('limits', '-rn', '-b', '-o', 'pid,memlockSoftBytes');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${process.pid} ${soft === null ? 'unlimited' : soft}\n`);
    const human = await rdmactl('limits');
    expect(human.stdout).toMatch(/^RLIMIT_MEMLOCK soft +\S/m);
    expect(human.stdout).not.toMatch(BOX);
  });

  it('-o applies to --json: only the chosen keys, after host and schema', async () => {
    const result = await rdmactl('stat', String(holderPid), '-o', 'pid,pinnedBytes', '--json');
    const document = JSON.parse(result.stdout) as Json & { processes: Json[] };
    expect(Object.keys(document).slice(0, 2)).toEqual(['host', 'schema']);
    expect(document['host']).toBe(hostname());
    expect(document['schema']).toBe('rdmactl.stat/1');
    expect(document.processes).toEqual([{ pid: holderPid, pinnedBytes: statusKb(holderPid, 'VmPin') * 1024 }]);
    const lines = jsonLines((await rdmactl('ls', '--ndjson', '-p', String(holderPid), '-o', 'pid,length')).stdout);
    expect(lines).toEqual([{ host: hostname(), schema: 'rdmactl.registration/1', pid: holderPid, length: 4 * MiB }]);
    const limits = JSON.parse((await rdmactl('limits', String(holderPid), '--json', '-o', 'pinnedBytes')).stdout) as Json;
    expect(limits).toEqual({ host: hostname(), schema: 'rdmactl.limits/1', pinnedBytes: statusKb(holderPid, 'VmPin') * 1024 });
  });

  it('ls -r -n -b: one line per io_uring buffer with its length', async () => {
    const result = await rdmactl('ls', '-p', String(holderPid), '-rn', '-b', '-o', 'source,pid,length');
    expect(result.stdout).toBe(`io_uring ${holderPid} ${4 * MiB}\n`);
  });

  it.each(COMMANDS_WITH_COLUMNS)('%s -H lists every column (text), and -H --json prints the columns contract', async (command) => {
    const text = await rdmactl(command, '-H');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split('\n')[0]!.split(/\s+/)).toEqual(['KEY', 'LABEL', 'DEFAULT', 'DESCRIPTION']);
    const json = await rdmactl(command, '--list-columns', '--json');
    expect(json.code, json.stderr).toBe(0);
    const contract = JSON.parse(json.stdout) as { host: string; schema: string; command: string; columns: Json[] };
    expect(Object.keys(contract)).toEqual(['host', 'schema', 'command', 'columns']);
    expect(contract).toMatchObject({ host: hostname(), schema: 'rdmactl.columns/1', command });
    for (const column of contract.columns) {
      expect(Object.keys(column)).toEqual(['key', 'label', 'description', 'default']);
      expect(String(column['description']).length).toBeGreaterThan(3);
      expect(text.stdout).toMatch(new RegExp(`^${String(column['key'])} `, 'm'));
    }
    expect(contract.columns.some((c) => c['default'] === true)).toBe(true);
    // -H -r: one bare line per column
    const raw = await rdmactl(command, '-H', '-r', ...(command === 'reg' || command === 'fork' ? ['--noheadings'] : ['-n']));
    expect(raw.stdout.split('\n').filter(Boolean)).toHaveLength(contract.columns.length);
  });

  it('the default text columns of every command are the ones -H marks default', async () => {
    const contract = JSON.parse((await rdmactl('ls', '-H', '--json')).stdout) as { columns: Array<{ label: string; default: boolean }> };
    const result = await rdmactl('ls', '-p', String(holderPid), '-r');
    const header = result.stdout.split('\n')[0]!.split(' ');
    expect(header).toEqual(contract.columns.filter((c) => c.default).map((c) => c.label.replace(/ /g, '\\x20')));
  });

  it.each([
    ['stat', '-o', 'pid,nope'],
    ['ls', '-o', '+bogus'],
    ['limits', '-o', 'pid,softBytes'],
    ['devices', '--output', 'speed'],
    ['dereg', '--all', '-o', 'nothing'],
    ['fork', '--backend', 'plain', '-o', 'pfn'],
    ['reg', '1M', '--backend', 'mlock', '-o', 'pid,size'],
  ])('%s with an unknown column is a usage error (exit 2) listing the valid columns, before doing anything', async (...args) => {
    const lockedBefore = statusKb('self', 'VmLck');
    const result = await rdmactl(...args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^rdmactl: unknown column '[^']+' for --output: valid columns are \w+(, \w+)+$/);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(statusKb('self', 'VmLck')).toBe(lockedBefore); // reg did not lock anything
  });

  it('conflicting output options are usage errors', async () => {
    for (const args of [['stat', '--json', '-r'], ['stat', '-o', 'pid', '--output-all'], ['ls', '--ndjson', '-r'], ['stat', '-o', '']]) {
      const result = await rdmactl(...args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('where a short letter is taken, the command keeps it and offers the long form (reg -b, -n; fork -b)', async () => {
    const help = await rdmactl('reg', '--help');
    expect(help.stdout).toMatch(/-b, --backend <name>/);
    expect(help.stdout).toMatch(/-n, --count <n>/);
    expect(help.stdout).toMatch(/^ +--bytes +print sizes as integer bytes \(no -b: here\s+it is --backend\)/m);
    expect(help.stdout).toMatch(/^ +--noheadings +[^]*?\(no -n: here\s+it is --count\)/m);
    expect(help.stdout).toMatch(/-o, --output <list>/);
    const fork = await rdmactl('fork', '--help');
    expect(fork.stdout).toMatch(/^ +--bytes +[^]*?\(no -b: here\s+it is --backend\)/m);
    expect(fork.stdout).toMatch(/-n, --noheadings/);
    const reg = await rdmactl('reg', '2M', '--backend', 'mlock', '--for', '1ms', '-r', '--noheadings', '--bytes', '-o', 'pid,length,lockedBytesAfter');
    expect(reg.code, reg.stderr).toBe(0);
    // The registered record, then the accounting after release (VmLck of this very process: in-process run).
    const [registered, released] = reg.stdout.trim().split('\n');
    expect(registered).toBe(`${process.pid} ${2 * MiB} ${2 * MiB + statusKb('self', 'VmLck') * 1024}`);
    expect(released).toBe(`${process.pid} ${statusKb('self', 'VmPin') * 1024} ${statusKb('self', 'VmLck') * 1024}`);
  });

  it('default columns fit a 120-column terminal (stat, ls, fork with its widest values, scenario all)', async () => {
    const widest = (text: string): number => Math.max(...text.split('\n').map((line) => [...line].length));
    const stat = await rdmactlWith({ tty: true }, 'stat', String(holderPid));
    expect(widest(stat.stdout)).toBeLessThanOrEqual(120);
    const ls = await rdmactlWith({ tty: true }, 'ls', '-p', String(holderPid));
    expect(widest(ls.stdout)).toBeLessThanOrEqual(120);
    // The widest values that run here (the widest verdict, parent-disconnected, needs a kernel < 5.9;
    // it still fits: 9 columns, 89 characters of values at most, plus the borders).
    const fork = await rdmactlWith({ tty: true }, 'fork', '--backend', 'uring,mlock', '--protect', 'none,dontfork,wipeonfork', '--writer', 'both',
      '--backing', 'anon,file-private');
    expect(fork.code, fork.stderr).toBe(0);
    expect(widest(fork.stdout)).toBeLessThanOrEqual(120);
    expect(fork.stdout).toMatch(BOX);
    // scenario all: on a terminal the evidence column wraps inside its box; in a pipe each row stays one line.
    const scenario = await rdmactlWith({ tty: true }, 'scenario', 'all', '--backend', 'plain,mlock,uring');
    expect(scenario.code, scenario.stderr).toBe(0);
    expect(widest(scenario.stdout)).toBeLessThanOrEqual(120);
    const piped = await rdmactlWith({ tty: false }, 'scenario', 'all', '--backend', 'plain,mlock,uring');
    expect(widest(piped.stdout)).toBeLessThanOrEqual(120);
  });

  it('every JSON document starts with host and schema: reg events (NDJSON), top --json snapshots, dereg, devices, fork', async () => {
    const reg = jsonLines((await rdmactl('reg', '1M', '--backend', 'mlock', '--for', '1ms', '--json')).stdout);
    expect(reg.map((line) => [Object.keys(line).slice(0, 3), line['host'], line['schema'], line['event']])).toEqual([
      [['host', 'schema', 'event'], hostname(), 'rdmactl.reg/1', 'registered'],
      [['host', 'schema', 'event'], hostname(), 'rdmactl.reg/1', 'released'],
    ]);
    const top = jsonLines((await rdmactl('top', '--json', '--count', '1', '--interval', '100ms')).stdout);
    expect(top).toHaveLength(1);
    expect(Object.keys(top[0]!).slice(0, 2)).toEqual(['host', 'schema']);
    expect(top[0]).toMatchObject({ host: hostname(), schema: 'rdmactl.stat/1' });
    for (const [args, schema] of [[['dereg', '--all', '--json'], 'rdmactl.dereg/1'], [['devices', '--json'], 'rdmactl.devices/1'],
      [['fork', '--backend', 'plain', '--json'], 'rdmactl.fork/1'], [['ls', '--json'], 'rdmactl.ls/1'], [['limits', '--json'], 'rdmactl.limits/1']] as const) {
      const document = JSON.parse((await rdmactl(...args)).stdout) as Json;
      expect(Object.keys(document).slice(0, 2), args.join(' ')).toEqual(['host', 'schema']);
      expect(document).toMatchObject({ host: hostname(), schema });
    }
  });
});
