// `ls` joins registrations held by `reg --detach` with the kernel's evidence, and shows a holder that
// was killed as stale once before cleaning its record.
import { describe, expect, it } from 'vitest';
import { statusKb } from '../helpers/proc.js';
import { rdmactlBin, reap, holderSandbox } from '../held/helpers.js';

type Json = Record<string, unknown>;
const MiB = 1024 * 1024;

describe('ls --source held', () => {
  const { runtime, holders } = holderSandbox();

  function ls(...args: string[]): { registrations: Json[]; sources: Record<string, Json> } {
    const result = rdmactlBin(['ls', '--json', ...args], runtime.env);
    expect(result.status, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as { registrations: Json[]; sources: Record<string, Json> };
  }

  it('a held io_uring registration appears as held (evidence io_uring) next to its kernel row', () => {
    const detach = rdmactlBin(['reg', '2M', '--backend', 'uring', '--detach', '--json'], runtime.env);
    expect(detach.status, detach.stderr).toBe(0);
    const record = JSON.parse(detach.stdout) as Json;
    const pid = record['pid'] as number;
    holders.push(pid);
    expect(statusKb(pid, 'VmPin')).toBe(2048);
    const { registrations, sources } = ls('--pid', String(pid));
    expect(sources['held']).toEqual({ available: true, reason: null });
    const held = registrations.find((r) => r['source'] === 'held')!;
    expect(held).toMatchObject({ pid, addr: record['addr'], length: 2 * MiB, handle: record['id'], evidence: 'io_uring' });
    expect(registrations.find((r) => r['source'] === 'io_uring')).toMatchObject({ pid, addr: record['addr'], length: 2 * MiB });
  });

  it('a holder killed with SIGKILL is shown as stale once, with no kernel evidence, then cleaned', async () => {
    const detach = rdmactlBin(['reg', '1M', '--backend', 'mlock', '--detach', '--json'], runtime.env);
    const record = JSON.parse(detach.stdout) as Json;
    const pid = record['pid'] as number;
    process.kill(pid, 'SIGKILL');
    await reap(pid);
    const first = ls('--source', 'held').registrations.filter((r) => r['pid'] === pid);
    expect(first).toEqual([expect.objectContaining({ source: 'held', handle: `${String(record['id'])}:stale`, evidence: 'missing' })]);
    const second = ls('--source', 'held').registrations.filter((r) => r['pid'] === pid);
    expect(second).toEqual([]);
  });
});
