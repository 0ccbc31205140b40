// Every command that keeps printing, at its ends: a reader that leaves (`| head -1` in a real shell
// pipeline), Ctrl-C and SIGTERM between samples, a process stopped past several ticks. And the
// samples' numbers: this test process mlocks memory between two samples of `stat --interval`, and
// the next sample shows the VmLck /proc/PID/status shows.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusKb } from '../helpers/proc.js';
import { BIN, builtOrThrow } from '../helpers/spawn.js';

const MiB = 1024 * 1024;
const TIME_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/;

// mlock(2) straight from libc, not through rdmactl's bindings: the test's own locked memory.
const libc = koffi.load('libc.so.6');
const mlock = libc.func('int mlock(void *addr, size_t len)');
const munlock = libc.func('int munlock(void *addr, size_t len)');

/** Locked for the whole file, so `ls --source mlock --pid` has rows to stream. */
const alwaysLocked = Buffer.alloc(MiB, 1);
let lockedAtStart = false;

beforeAll(() => {
  builtOrThrow();
  lockedAtStart = mlock(alwaysLocked, alwaysLocked.length) === 0;
  if (!lockedAtStart) console.warn(`mlock of 1 MiB failed (errno ${koffi.errno()}): ls --ndjson has no rows of this process to stream`);
});
afterAll(() => {
  if (lockedAtStart) munlock(alwaysLocked, alwaysLocked.length);
});

const PID = String(process.pid);

/** `rdmactl ARGS | head -1` in bash: rdmactl's own status (PIPESTATUS), stderr (head writes none), what head printed. */
function throughHead(args: string[]): { status: number | null; stderr: string; firstLine: string } {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  const result = spawnSync('bash', ['-c', `${quoted} | head -1; exit "\${PIPESTATUS[0]}"`], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stderr: result.stderr, firstLine: result.stdout.replace(/\n$/, '') };
}

/**
 * What a quiet end leaves on stderr: at most rdmactl's notes (in a pipe, notes such as "1 processes
 * only partly readable" or fork's kernel line go to stderr), never an error, EPIPE or a stack trace.
 */
function expectQuiet(stderr: string): void {
  for (const line of stderr.split('\n').filter(Boolean)) expect(line).toMatch(/^(rdmactl: | )/);
  expect(stderr).not.toMatch(/EPIPE|cannot write|Error|^\s+at /m);
}

describe('a reader that leaves: `rdmactl … | head -1` ends rdmactl with status 0 and no error on stderr', () => {
  const JSON_LINE = /^\{"host":/;
  const cases: Array<[string[], RegExp]> = [
    [['top', '--json', '--interval', '200ms'], JSON_LINE],
    [['stat', '--interval', '200ms'], TIME_LINE],
    [['stat', '--json', '--interval', '200ms'], JSON_LINE],
    [['stat', '--by', 'unit', '--interval', '200ms'], TIME_LINE],
    [['ls', '--interval', '200ms'], TIME_LINE],
    [['ls', '--json', '--interval', '200ms'], JSON_LINE],
    [['ls', '--ndjson', '--source', 'mlock', '--pid', PID, '--interval', '200ms'], JSON_LINE],
    // reg prints when registered and again when released: the second line meets the closed pipe.
    [['reg', '1M', '--backend', 'mlock', '--for', '1s', '--json'], JSON_LINE],
    [['reg', '1M', '--backend', 'mlock', '--for', '1s'], /\S/],
    // One report, but many lines written one after another.
    [['fork', '--backend', 'mlock,uring', '--writer', 'parent,child'], /\S/],
    [['scenario', 'all'], /\S/],
  ];
  it.each(cases)('%j', (args, firstLine) => {
    if (args.includes('--ndjson') && !lockedAtStart) console.warn('ls --ndjson: this process has no locked memory; the stream may print nothing');
    const result = throughHead(args);
    expectQuiet(result.stderr);
    expect(result.status).toBe(0);
    expect(result.firstLine).toMatch(firstLine);
  }, 90_000);
});

interface Stream {
  child: ChildProcessWithoutNullStreams;
  /** Complete lines so far, each with when it arrived (performance.now()). */
  lines: Array<{ text: string; at: number }>;
  stdout(): string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startStream(args: string[]): Stream {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: 'pipe' });
  let out = '';
  let err = '';
  const lines: Stream['lines'] = [];
  child.stdout.on('data', (d: Buffer) => {
    const at = performance.now();
    out += d.toString();
    const complete = out.split('\n').slice(0, -1);
    for (const text of complete.slice(lines.length)) lines.push({ text, at });
  });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, lines, stdout: () => out, stderr: () => err, exit };
}

async function until(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Text samples: a time line, the sample, a blank line before the next time line. */
function textSamples(stdout: string): string[][] {
  return stdout.replace(/\n$/, '').split('\n\n').map((block) => block.split('\n'));
}

describe('Ctrl-C and SIGTERM end a stream between samples: exit 0, no error on stderr, whole samples', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('stat --interval (text), %s after two samples', async (signal) => {
    const stream = startStream(['stat', '--interval', '200ms']);
    await until('two samples', () => stream.lines.filter((l) => TIME_LINE.test(l.text)).length >= 2 && stream.stdout().endsWith('\n'));
    stream.child.kill(signal);
    expect(await stream.exit).toEqual({ code: 0, signal: null });
    expectQuiet(stream.stderr());
    expect(stream.stdout().endsWith('\n')).toBe(true);
    const samples = textSamples(stream.stdout());
    expect(samples.length).toBeGreaterThanOrEqual(2);
    // Every sample whole: its time line, then the process table (in a pipe stat prints that one table).
    for (const sample of samples) {
      expect(sample[0]).toMatch(TIME_LINE);
      expect(sample[1]).toMatch(/^PID +USER +COMM +PINNED +LOCKED /);
    }
  });

  it.each([
    ['stat', 'SIGINT'], ['stat', 'SIGTERM'], ['top', 'SIGINT'], ['top', 'SIGTERM'],
  ] as const)('%s --json --interval, %s after two samples: every line a whole document', async (command, signal) => {
    const stream = startStream([command, '--json', '--interval', '200ms']);
    await until('two samples', () => stream.lines.length >= 2);
    stream.child.kill(signal);
    expect(await stream.exit).toEqual({ code: 0, signal: null });
    expectQuiet(stream.stderr());
    expect(stream.stdout().endsWith('\n')).toBe(true);
    for (const line of stream.stdout().trim().split('\n')) expect((JSON.parse(line) as { time: string }).time).toMatch(TIME_LINE);
  });

  it('--count N: N samples, then exit 0 by itself', async () => {
    const stream = startStream(['ls', '--interval', '100ms', '--count', '3']);
    expect(await stream.exit).toEqual({ code: 0, signal: null });
    expect(textSamples(stream.stdout()).map((sample) => TIME_LINE.test(sample[0]!))).toEqual([true, true, true]);
  });
});

describe('ticks on a fixed grid', () => {
  it('a process stopped past several ticks takes one sample when it resumes (no burst), then the next one on the old grid (no drift)', async () => {
    // Receipt times in this process are late by however busy the machine is: a 1 s grid keeps each
    // bound wide enough for a loaded CI machine, while a burst (several samples at once) or a drifted
    // grid (the next sample a whole interval after resuming, 500 ms off) still fails.
    const intervalMs = 1000;
    const stream = startStream(['ls', '--json', '--source', 'mlock', '--pid', PID, '--interval', `${intervalMs}ms`]);
    await until('three samples', () => stream.lines.length >= 3);
    const first = stream.lines[0]!.at;
    // Stopped half-way between ticks 2 and 3, while it waits (stopped in the middle of a sample, it
    // would finish that sample on resuming and skip to tick 6: the ticks missed during a sample are
    // skipped by design); resumed half-way between ticks 5 and 6.
    await sleep(Math.max(0, first + 2.5 * intervalMs - performance.now()));
    stream.child.kill('SIGSTOP');
    await sleep(Math.max(0, first + 5.5 * intervalMs - performance.now()));
    const before = stream.lines.length;
    stream.child.kill('SIGCONT');
    await until('two samples after resuming', () => stream.lines.length >= before + 2);
    stream.child.kill('SIGINT');
    expect(await stream.exit).toEqual({ code: 0, signal: null });
    const after = stream.lines.slice(before);
    // The overdue tick, once, before tick 6: a loop that makes up missed ticks prints two or three at once here.
    expect(after.filter((l) => l.at < first + 5.9 * intervalMs).map((l) => Math.round(l.at - first))).toHaveLength(1);
    // The next sample is tick 6 of the grid that started with the first sample, not resume + interval.
    expect(Math.abs(after[1]!.at - (first + 6 * intervalMs))).toBeLessThan(intervalMs / 4);
  }, 60_000);
});

describe('samples read the kernel each time', () => {
  it('stat PID --json --interval: memory this process mlocks between samples shows in the next sample, as /proc/PID/status says', async (ctx) => {
    const buffer = Buffer.alloc(4 * MiB, 1);
    const stream = startStream(['stat', PID, '--json', '--interval', '300ms']);
    try {
      await until('the first sample', () => stream.lines.length >= 1);
      const lockedOf = (line: string): number => (JSON.parse(line) as { processes: Array<{ pid: number; lockedBytes: number }> }).processes.find((p) => p.pid === process.pid)!.lockedBytes;
      const lockedBefore = statusKb('self', 'VmLck') * 1024;
      expect(lockedOf(stream.lines[0]!.text)).toBe(lockedBefore);
      if (mlock(buffer, buffer.length) !== 0) {
        const reason = `mlock of 4 MiB failed (errno ${koffi.errno()}): RLIMIT_MEMLOCK too low for this test; run as root`;
        console.warn(`SKIPPING: ${reason}`);
        ctx.skip(reason);
      }
      const lockedAfter = statusKb('self', 'VmLck') * 1024;
      expect(lockedAfter - lockedBefore).toBeGreaterThanOrEqual(4 * MiB);
      // The sample under way while mlock ran may predate it; the one after that cannot.
      const seen = stream.lines.length;
      await until('two more samples', () => stream.lines.length >= seen + 2);
      expect(lockedOf(stream.lines[seen + 1]!.text)).toBe(lockedAfter);
    } finally {
      munlock(buffer, buffer.length);
      stream.child.kill('SIGINT');
      await stream.exit;
    }
  });
});
