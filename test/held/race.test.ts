// Twelve `rdmactl dereg ID` of one holder at once, from the built binary: exactly one releases it and
// says so, the others say it was already released, every one exits 0 with at most one line, and the
// holder ran its whole release path (exit 0, record removed) even though it may be signalled once.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { jsonLines } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { BIN, builtOrThrow } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, procStat, rdmactlBin, reap, running, tempRuntime, until } from './helpers.js';

const RACERS = 12;
const ROUNDS = 4;

let runtime: ReturnType<typeof tempRuntime>;
const started = new Set<number>();

beforeAll(() => {
  builtOrThrow();
  becomeSubreaper();
});

beforeEach(() => {
  runtime = tempRuntime();
});

afterEach(async () => {
  await killAndReap(started);
  started.clear();
  runtime.cleanup();
});

function detach(): { id: string; pid: number } {
  const result = rdmactlBin(['reg', '1M', '--backend', 'uring', '--detach', '--json'], runtime.env);
  expect(result.status, result.stderr).toBe(0);
  const record = jsonLines(result.stdout)[0] as { id: string; pid: number };
  started.add(record.pid);
  return record;
}

interface Outcome { code: number | null; status: string; message: string; stderr: string }

/** Runs `dereg ID --json` RACERS times at once; each one's exit code, result status and stderr. */
async function racingDeregs(id: string): Promise<Outcome[]> {
  return Promise.all(Array.from({ length: RACERS }, () => new Promise<Outcome>((resolve) => {
    const child = spawn(process.execPath, [BIN, 'dereg', id, '--json'], { env: runtime.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('close', (code) => {
      let status = '(no JSON)';
      let message = '';
      try {
        const [r] = (JSON.parse(stdout) as { results: Array<{ status: string; message: string }> }).results;
        status = r!.status;
        message = r!.message;
      } catch { /* reported through status */ }
      resolve({ code, status, message, stderr });
    });
  })));
}

function expectOneWinner(outcomes: Outcome[], winner: 'released' | 'stale-removed'): void {
  const summary = outcomes.map((o) => `${o.code} ${o.status} ${o.stderr.trim()}`);
  expect(outcomes.filter((o) => o.status === winner), summary.join('\n')).toHaveLength(1);
  expect(outcomes.filter((o) => o.status === 'already-released'), summary.join('\n')).toHaveLength(RACERS - 1);
  for (const o of outcomes) {
    expect(o.code, summary.join('\n')).toBe(0);
    expect(o.stderr.trimEnd().split('\n').filter((l) => l !== '').length, o.stderr).toBeLessThanOrEqual(1);
    expect(o.stderr).not.toMatch(/internal error|\n\s+at /);
  }
}

describe('concurrent dereg of one holder', () => {
  it(`${RACERS} at once, ${ROUNDS} times: one released, the rest already-released, all exit 0, nothing left`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const { id, pid } = detach();
      expect(statusKb(pid, 'VmPin')).toBe(1024);
      const outcomes = await racingDeregs(id);
      expectOneWinner(outcomes, 'released');
      // The holder was never cut short by a second SIGTERM: it released, removed its record, exited 0.
      expect(await reap(pid)).toMatchObject({ exitCode: 0, signal: null });
      expect(procStat(pid)).toBeNull();
      expect(readdirSync(`${runtime.dir}/rdmactl`).filter((name) => !name.startsWith('.'))).toEqual([]);
    }
  }, 120_000);

  it(`${RACERS} at once on a SIGKILLed holder, ${ROUNDS} times: one removes its record, the rest say it was already released`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const { id, pid } = detach();
      process.kill(pid, 'SIGKILL');
      await until('the holder to die', () => !running(pid));
      await reap(pid);
      expectOneWinner(await racingDeregs(id), 'stale-removed');
      expect(readdirSync(`${runtime.dir}/rdmactl`).filter((name) => !name.startsWith('.'))).toEqual([]);
    }
  }, 120_000);
});
