// The io_uring and mlock sources on captured trace_pipe text (6.18): entry and return paired per
// thread, sizes from the caller's iovecs (here the iovec bytes that the captured call passed, given
// as the process memory at the captured address), failures with their errno. The same paths run
// against the live kernel in trace.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TracePipeParser } from '../../src/trace/parse.js';
import { MlockSource, UringSource } from '../../src/trace/syscalls.js';
import type { TraceEvent, TraceLine } from '../../src/trace/types.js';
import { ROOT } from '../helpers/spawn.js';

function capturedLines(): TraceLine[] {
  return new TracePipeParser().feed(readFileSync(`${ROOT}test/fixtures/trace/trace_pipe-uring-mlock-6.18.txt`)).lines;
}

/** The lines as one batch: each handled, then what the source can tell after the batch. */
function run(source: UringSource | MlockSource, lines: readonly TraceLine[]): TraceEvent[] {
  return [...lines.filter((l) => source.owns(l.event)).flatMap((l) => source.handle(l)), ...(source instanceof UringSource ? source.flush() : [])];
}

/** One iovec of 2 MiB at the address the captured call passed (arg: 0x1c218ef0). */
const IOVEC_ADDR = 0x1c218ef0n;
function memory(pid: number, addr: bigint, length: number): Buffer | null {
  if (pid !== 20650 || addr !== IOVEC_ADDR || length !== 16) return null;
  const iovec = Buffer.alloc(16);
  iovec.writeBigUInt64LE(0x7f0000000000n, 0);
  iovec.writeBigUInt64LE(2n * 1024n * 1024n, 8);
  return iovec;
}

describe('UringSource', () => {
  it('pairs entry and return into a register and a deregister of the same bytes, with the latency between them', () => {
    const events = run(new UringSource(memory), capturedLines());
    // Entries at 22454.069850 and 22456.648977, returns at 22454.070415 and 22456.649001.
    expect(events.map((e) => [e.op, e.bytes, e.latencyNs, e.errno, e.detail['fd']])).toEqual([
      ['register', 2 * 1024 * 1024, 565_000, null, 0x12],
      ['deregister', 2 * 1024 * 1024, 24_000, null, 0x12],
    ]);
    expect(events.every((e) => e.pid === 20650 && e.comm === 'node' && e.source === 'io_uring')).toBe(true);
  });

  it('gives unknown bytes when the memory cannot be read, and ignores a return whose entry it never saw', () => {
    const lines = capturedLines();
    const events = run(new UringSource(() => null), lines);
    expect(events.map((e) => [e.op, e.bytes])).toEqual([['register', null], ['deregister', null]]);
    const withoutFirstEntry = lines.filter((l) => !(l.event === 'sys_enter_io_uring_register' && l.payload.includes('opcode: 0')));
    expect(run(new UringSource(memory), withoutFirstEntry).map((e) => e.op)).toEqual(['deregister']);
  });

  it('reports a failed registration with its errno and the bytes it tried', () => {
    const lines = capturedLines().map((l) => (l.event === 'sys_exit_io_uring_register' && l.time < 22455 ? { ...l, payload: '0xfffffffffffffff4' } : l));
    const events = run(new UringSource(memory), lines);
    expect(events[0]).toMatchObject({ op: 'failed', attempt: 'register', errno: 'ENOMEM', bytes: 2 * 1024 * 1024 });
  });

  it('releases a ring at its process\'s exit: named by the leader or a worker, or found when the exit names no process or a stale one', () => {
    // Register only (the captured unregister left out), then one exit of the whole process.
    const registered = capturedLines().filter((l) => l.time < 22455 && l.event.includes('io_uring_register'));
    const [workerExit] = new TracePipeParser().feed(Buffer.from('           <...>-20661   (-------) [000] ..... 22457.100000: sched_process_exit: comm=node pid=20661 prio=120 group_dead=true\n')).lines;
    expect(workerExit).toMatchObject({ tid: 20661, tgid: null, comm: '<...>', event: 'sched_process_exit' });
    const exitOf = (tid: number, tgid: number | null): TraceLine => ({ ...workerExit!, tid, tgid });
    const released = (tid: number): unknown[] => [['deregister', 2 * 1024 * 1024, 20650, tid, 'node', 'exit']];
    const releases = (events: TraceEvent[]): unknown[] => events.slice(1).map((e) => [e.op, e.bytes, e.pid, e.tid, e.comm, e.detail['reason'] ?? null]);
    const source = (ended: (pid: number) => boolean, asked: number[] = []): UringSource => new UringSource(memory, (pid) => { asked.push(pid); return ended(pid); });

    // The leader's own exit: nothing to ask.
    const leader: number[] = [];
    expect(releases(run(source(() => false, leader), [...registered, exitOf(20650, 20650)]))).toEqual(released(20650));
    expect(leader).toEqual([]);
    // A worker thread ended it (tgid known): the process is asked, and has ended.
    expect(releases(run(source((pid) => pid === 20650), [...registered, exitOf(20661, 20650)]))).toEqual(released(20661));
    // tgid unknown (`-------`), or a stale column naming another process: each ring owner is asked
    // once after the batch; the comm is the one it registered with, not the exit line's `<...>`.
    for (const tgid of [null, 30000]) {
      const asked: number[] = [];
      const ended = source((pid) => pid === 20650, asked);
      expect(releases(run(ended, [...registered, exitOf(20661, tgid)])), String(tgid)).toEqual(released(20661));
      expect(asked).toEqual([20650]);
      expect(ended.outstanding(20650)).toBe(0);
      const alive = source(() => false);
      expect(releases(run(alive, [...registered, exitOf(20661, tgid)])), String(tgid)).toEqual([]);
      expect(alive.outstanding(20650)).toBe(2 * 1024 * 1024);
    }
    // With no ring held, an exit asks nothing.
    const idle: number[] = [];
    expect(run(source(() => true, idle), [exitOf(20661, null)])).toEqual([]);
    expect(idle).toEqual([]);
  });
});

describe('MlockSource', () => {
  it('turns mlock/munlock/mlockall/munlockall pairs into events, bytes from the length argument', () => {
    const events = run(new MlockSource(), capturedLines());
    expect(events.map((e) => [e.op, e.bytes, e.detail['call'], e.errno])).toEqual([
      ['mlock', 0x100000, 'mlock', null],
      ['munlock', 0x100000, 'munlock', null],
      ['mlock', null, 'mlockall', null],
      ['munlock', null, 'munlockall', null],
    ]);
    expect(events[0]!.latencyNs).toBe((491710 - 491144) * 1000);
  });
});
