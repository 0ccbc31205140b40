// readProcessEnded on the real kernel: a process whose main thread exited while another thread runs is
// alive (its leader a zombie with two threads); SIGKILLed and not yet reaped, it has ended (a zombie
// leader alone); reaped, it is gone. What `rdmactl trace` asks of a ring's owner when an exit names
// no process (the kernel had not recorded the exiting thread's tgid).
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readProcessEnded, readStat } from '../../src/proc/stat.js';
import { findCompiler, makeTempDir } from './helpers/children.js';

const cc = findCompiler();
if (!cc) console.warn('SKIPPING test/proc/ended.test.ts: no C compiler (cc, gcc or clang) to build its helper');
const dir = makeTempDir('rdmactl-ended-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(cc === null)('readProcessEnded on this kernel', () => {
  it('a zombie leader with a live thread is alive; killed and unreaped it has ended; reaped it is gone', async () => {
    const binary = join(dir, 'leaderless');
    execFileSync(cc!, ['-O2', '-pthread', '-o', binary, fileURLToPath(new URL('./helpers/leaderless.c', import.meta.url))], { stdio: 'pipe' });
    const parent = spawn(binary, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => parent.once('exit', () => resolve()));
    let out = '';
    parent.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      await until('the child pid', () => /^child \d+\n/.test(out));
      const pid = Number(/^child (\d+)/.exec(out)![1]);
      const tasks = (): string[] => readdirSync(`/proc/${pid}/task`);
      expect(readProcessEnded(process.pid)).toBe(false);

      await until('the child\'s main thread to exit', () => readStat(pid)?.state === 'Z');
      expect(tasks()).toHaveLength(2);
      expect(readStat(pid)!.threads).toBe(2);
      expect(readProcessEnded(pid)).toBe(false);

      parent.stdin.write('kill\n');
      await until('the child to die', () => readStat(pid)?.threads === 1);
      expect(readStat(pid)!.state).toBe('Z'); // unreaped: its parent has not waited
      expect(readProcessEnded(pid)).toBe(true);

      parent.stdin.write('reap\n');
      await until('the child to be reaped', () => out.includes('done reap'));
      expect(readStat(pid)).toBeNull();
      expect(readProcessEnded(pid)).toBe(true);
    } finally {
      parent.stdin.end();
      await exited;
    }
  });
});
