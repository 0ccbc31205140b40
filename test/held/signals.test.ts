// A detached holder ended by a signal, with each backing that makes a file of its own (file-shared and
// file-private without --file): nothing may remain in the TMPDIR it was given, nothing stays pinned,
// and `dereg` of the dead holder says what really happened. Real holders from the built binary.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { jsonLines } from '../helpers/run.js';
import { statusKb } from '../helpers/proc.js';
import { builtOrThrow } from '../helpers/spawn.js';
import { becomeSubreaper, killAndReap, procStat, rdmactlBin, reap, tempRuntime } from './helpers.js';

const TMPFS_MAGIC = 0x01021994;
// io_uring long-term pins a shared file mapping only on shmem: give the holders a TMPDIR on tmpfs.
const shm = (() => {
  try { return statfsSync('/dev/shm').type === TMPFS_MAGIC ? '/dev/shm' : null; } catch { return null; }
})();

let runtime: ReturnType<typeof tempRuntime>;
let scratch: string;
const started = new Set<number>();

beforeAll(() => {
  builtOrThrow();
  becomeSubreaper();
});

beforeEach(() => {
  runtime = tempRuntime();
  scratch = mkdtempSync(join(shm ?? tmpdir(), 'rdmactl-signals-test-'));
});

afterEach(async () => {
  await killAndReap(started);
  started.clear();
  runtime.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

type Result = Record<string, unknown> & { status: string };

function dereg(id: string, env: NodeJS.ProcessEnv): { status: number | null; results: Result[]; stderr: string } {
  const run = rdmactlBin(['dereg', id, '--json'], env);
  return { status: run.status, results: (JSON.parse(run.stdout) as { results: Result[] }).results, stderr: run.stderr };
}

describe.skipIf(shm === null)('a detached holder ended by a signal (TMPDIR on tmpfs)', () => {
  it.each([
    ['file-shared', 'SIGKILL'], ['file-shared', 'SIGTERM'], ['file-shared', 'SIGINT'], ['file-shared', 'SIGQUIT'],
    ['file-private', 'SIGKILL'], ['file-private', 'SIGTERM'], ['file-private', 'SIGINT'], ['file-private', 'SIGQUIT'],
  ] as const)('%s, %s: nothing left in TMPDIR, nothing pinned, dereg tells the truth', async (backing, signal) => {
    const env = { ...runtime.env, TMPDIR: scratch };
    const reg = rdmactlBin(['reg', '1M', '--backing', backing, '--backend', 'uring', '--detach', '--json'], env);
    expect(reg.status, reg.stderr).toBe(0);
    const { id, pid } = jsonLines(reg.stdout)[0] as { id: string; pid: number };
    started.add(pid);
    expect(statusKb(pid, 'VmPin')).toBe(1024);
    // The holder's file has no name at any moment: the mapping is its only reference.
    expect(readdirSync(scratch)).toEqual([]);
    expect(readFileSync(`/proc/${pid}/maps`, 'utf8')).toMatch(/ \(deleted\)$/m);

    process.kill(pid, signal);
    const ended = await reap(pid);
    if (signal === 'SIGTERM' || signal === 'SIGINT') expect(ended).toMatchObject({ exitCode: 0, signal: null }); // released and recorded it
    else expect(ended).toMatchObject({ signal: signal === 'SIGKILL' ? 9 : 3 });
    // Reaped: no process, so no mm, so nothing pinned or locked.
    expect(procStat(pid)).toBeNull();
    expect(readdirSync(scratch)).toEqual([]);

    const first = dereg(id, runtime.env);
    expect(first.status, first.stderr).toBe(0);
    if (signal === 'SIGTERM' || signal === 'SIGINT') {
      // The holder ran its release path and removed its own record: nothing for dereg to remove.
      expect(first.results).toEqual([expect.objectContaining({ id, status: 'already-released', signalled: false, exitCode: 0 })]);
    } else {
      // Killed: its record stayed, and this dereg removed it (and says only that).
      expect(first.results).toEqual([expect.objectContaining({ id, pid, status: 'stale-removed', signalled: false, exitCode: 0, holderExited: true, recordRemovedByHolder: false })]);
      expect(first.results[0]!['message']).toMatch(/stale record removed, nothing signalled: holder pid \d+ has exited$/);
    }
    // A second dereg removes nothing and does not claim to.
    const second = dereg(id, runtime.env);
    expect(second.status, second.stderr).toBe(0);
    expect(second.results).toEqual([expect.objectContaining({ id, status: 'already-released', signalled: false })]);
    expect(readdirSync(`${runtime.dir}/rdmactl`).filter((name) => !name.startsWith('.'))).toEqual([]);
    expect(readdirSync(scratch)).toEqual([]);
  });
});
