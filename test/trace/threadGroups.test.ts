// ThreadGroups: the tgid of a traced thread comes from /proc/TID/status while the thread lives, not
// from trace_pipe's column, which the kernel fills late (`-------` for a task's first events) and
// can leave stale after the pid space wraps (seen: a new process's registrations printed with the
// tgid of a process long gone). Checked against this process's own threads and a reaped child.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ThreadGroups } from '../../src/trace/threadGroups.js';
import type { TraceLine } from '../../src/trace/types.js';

function line(tid: number, tgid: number | null): TraceLine {
  return { comm: 'node', tid, tgid, cpu: 0, time: 1, event: 'sys_enter_mlock', payload: '' };
}

describe('ThreadGroups on this kernel', () => {
  it('corrects a stale or missing column from /proc for live threads, and keeps the column for a gone one', () => {
    const groups = new ThreadGroups();
    expect(groups.resolve(line(process.pid, 1)).tgid).toBe(process.pid); // stale: another process's number
    const worker = readdirSync('/proc/self/task').map(Number).find((tid) => tid !== process.pid);
    expect(worker, 'Node runs helper threads').toBeDefined();
    expect(groups.resolve(line(worker!, null)).tgid).toBe(process.pid); // `-------`
    const child = spawnSync('true');
    expect(child.pid).toBeGreaterThan(0);
    expect(groups.resolve(line(child.pid!, 4242)).tgid).toBe(4242); // gone: only the column is left
    expect(groups.resolve(line(child.pid!, null)).tgid).toBeNull();
  });
});

describe('ThreadGroups', () => {
  it('reads a thread once while the column agrees or is empty, again when it disagrees, and afresh after its process ended', () => {
    const reads: number[] = [];
    let truth = 100;
    const groups = new ThreadGroups((tid) => { reads.push(tid); return tid === 101 ? truth : null; });
    expect(groups.resolve(line(101, null)).tgid).toBe(100);
    expect(groups.resolve(line(101, 100)).tgid).toBe(100);
    expect(groups.resolve(line(101, null)).tgid).toBe(100);
    expect(reads).toEqual([101]);
    expect(groups.resolve(line(101, 7)).tgid).toBe(100); // the column disagrees: /proc decides
    expect(reads).toEqual([101, 101]);
    groups.forgetProcess(100);
    truth = 101; // the number now belongs to a new process of its own
    expect(groups.resolve(line(101, null)).tgid).toBe(101);
    expect(reads).toEqual([101, 101, 101]);
  });
});
