// trace_pipe lines as a 6.18 kernel printed them (captured from an instance with record-tgid and the
// mono clock), including processes that named themselves with prctl(PR_SET_NAME) to look like
// headers, with spaces, dashes, brackets, an escape sequence, UTF-8 and newlines.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exitComm, parseKeyValues, parseSyscallArgs, parseSyscallReturn, parseTraceLine, splitEvent, TracePipeParser } from '../../src/trace/parse.js';
import { ROOT } from '../helpers/spawn.js';
import type { TraceLine } from '../../src/trace/types.js';

const fixture = (name: string): Buffer => readFileSync(`${ROOT}test/fixtures/trace/${name}`);

/** The names the capture's processes gave themselves (prctl truncates to 15 bytes). */
const HOSTILE_COMMS = ['a b  c', 'x-12 (12) [0]', '[kworker/0:1]', 'ab\ncd-5 (5) [0', '\n\n', '-', '99-1 ( 1)', 'evil\x1b[31m', '中文', '123456789012345'];

describe('parseTraceLine', () => {
  it('splits a record into comm, tid, tgid, cpu, time, event and payload', () => {
    const line = parseTraceLine('         fixture-20603   (  20603) [000] ..... 22453.491144: sys_mlock(start: 0x7f4d1b825000, len: 0x100000)');
    expect(line).toMatchObject({ comm: 'fixture', tid: 20603, tgid: 20603, cpu: 0, event: 'sys_enter_mlock', payload: 'start: 0x7f4d1b825000, len: 0x100000' });
    expect(line!.time).toBeCloseTo(22453.491144, 6);
  });

  it('names syscall returns sys_exit_*, other events by their name', () => {
    expect(splitEvent('sys_mlock -> 0xfffffffffffffff4')).toEqual({ event: 'sys_exit_mlock', payload: '0xfffffffffffffff4' });
    expect(splitEvent('sys_munlockall()')).toEqual({ event: 'sys_enter_munlockall', payload: '' });
    expect(splitEvent('io_uring_register: ring 0000, opcode 0, ret 0')).toEqual({ event: 'io_uring_register', payload: 'ring 0000, opcode 0, ret 0' });
  });

  it('reads a tgid the kernel did not record as null', () => {
    expect(parseTraceLine('          <idle>-0       (-------) [001] d.... 100.000001: sched_process_exit: comm=x pid=1 prio=120 group_dead=true')!.tgid).toBeNull();
  });

  it('rejects lines of other shapes', () => {
    for (const junk of ['', '# tracer: nop', 'hello', '  ab', 'cd-5 (5) [0 pid=20983 prio=120 group_dead=true', 'x-1 (1) [0] ..... 1.5: ev: p']) {
      expect(parseTraceLine(junk)).toBeNull();
    }
  });
});

describe('syscall arguments and returns', () => {
  it('reads every value as hex: 6.18 prints 0x… and bare digits below 10, 5.10 bare hex', () => {
    // 6.18 (captured): mlock2(9, …) prints 9, mlock2(10, …) prints 0xa.
    const args = parseSyscallArgs('fd: 0x12, opcode: 0, arg: 0x1c218ef0, nr_args: 1');
    expect([...args]).toEqual([['fd', 0x12n], ['opcode', 0n], ['arg', 0x1c218ef0n], ['nr_args', 1n]]);
    // 5.10 (in the lab): the same ring fd 18 and a pointer, without 0x.
    expect([...parseSyscallArgs('fd: 12, opcode: f, arg: 7ffd5e3b1a40, nr_args: 20')]).toEqual([['fd', 18n], ['opcode', 15n], ['arg', 0x7ffd5e3b1a40n], ['nr_args', 32n]]);
  });

  it('turns a return into its signed value', () => {
    expect(parseSyscallReturn('0xfffffffffffffff4')).toBe(-12n);
    expect(parseSyscallReturn('0x0')).toBe(0n);
    expect(parseSyscallReturn('fffffffffffffff4')).toBe(-12n);
    expect(parseSyscallReturn('garbage')).toBeNull();
  });

  it('reads key=value payloads', () => {
    expect(parseKeyValues('comm=a b pid=3 prio=120 group_dead=true').get('group_dead')).toBe('true');
  });
});

describe('exitComm', () => {
  it('reads the name a sched_process_exit event carries, blanks and look-alike fields included', () => {
    expect(exitComm('comm=ibv_rc_pingpong pid=1270 prio=120 group_dead=true')).toBe('ibv_rc_pingpong');
    expect(exitComm('comm=regloop pid=88 prio=120')).toBe('regloop'); // a kernel without group_dead
    expect(exitComm('comm=a pid=1 prio=2 x pid=1270 prio=120 group_dead=true')).toBe('a pid=1 prio=2 x');
    expect(exitComm('comm= pid=5 prio=120')).toBeNull();
    expect(exitComm('start: 0x7f00, len: 0x1000')).toBeNull();
  });
});

describe('TracePipeParser on the captured hostile comms', () => {
  const parser = new TracePipeParser();
  const text = fixture('trace_pipe-hostile-comms-6.18.txt');
  // Fed in small pieces, splitting lines and the UTF-8 of a comm between reads.
  const lines: TraceLine[] = [];
  let unparsable = 0;
  for (let i = 0; i < text.length; i += 37) {
    const batch = parser.feed(text.subarray(i, i + 37));
    lines.push(...batch.lines);
    unparsable += batch.unparsable;
  }
  unparsable += parser.flush().unparsable;

  it('gives every syscall record of every hostile process its real comm, pid and event', () => {
    for (const comm of HOSTILE_COMMS) {
      const own = lines.filter((l) => l.comm === comm && l.event.startsWith('sys_'));
      expect(own.map((l) => l.event), JSON.stringify(comm)).toEqual(['sys_enter_mlock', 'sys_exit_mlock', 'sys_enter_mlock2', 'sys_exit_mlock2']);
      expect(new Set(own.map((l) => l.tid)).size).toBe(1);
      expect(own[0]!.tgid).toBe(own[0]!.tid);
    }
    const syscallLines = lines.filter((l) => l.event.startsWith('sys_'));
    expect(syscallLines).toHaveLength(HOSTILE_COMMS.length * 4);
  });

  it('counts, and never passes on, what is left of a payload that held a newline', () => {
    // Two sched_process_exit payloads were split by the newlines in their comm: 'cd-5 … pid=…' and
    // '' + ' pid=21025 …' are the three leftover lines.
    expect(unparsable).toBe(3);
    expect(lines.every((l) => !l.payload.includes('\n'))).toBe(true);
  });
});

describe('TracePipeParser on io_uring and mlock records', () => {
  it('parses every line of the capture', () => {
    const parser = new TracePipeParser();
    const batch = parser.feed(fixture('trace_pipe-uring-mlock-6.18.txt'));
    expect(batch.unparsable).toBe(0);
    expect(batch.lines.map((l) => l.event)).toEqual([
      'sys_enter_mlock', 'sys_exit_mlock', 'sys_enter_munlock', 'sys_exit_munlock',
      'sys_enter_mlockall', 'sys_exit_mlockall', 'sys_enter_munlockall', 'sys_exit_munlockall',
      'sys_enter_io_uring_register', 'io_uring_register', 'sys_exit_io_uring_register',
      'sys_enter_io_uring_register', 'io_uring_register', 'sys_exit_io_uring_register',
    ]);
  });

  it('adds up the kernel\'s lost-event lines (CPU:N [LOST M EVENTS], as trace_pipe prints them)', () => {
    const parser = new TracePipeParser();
    const batch = parser.feed('CPU:1 [LOST 812 EVENTS]\nCPU:0 [LOST 3 EVENTS]\n');
    expect(batch.lost).toBe(815);
    expect(batch.lines).toEqual([]);
  });

  it('keeps a partial last line for the next read', () => {
    const parser = new TracePipeParser();
    const line = '         fixture-20603   (  20603) [000] ..... 22453.491710: sys_mlock -> 0x0\n';
    expect(parser.feed(line.slice(0, 30)).lines).toEqual([]);
    expect(parser.feed(line.slice(30)).lines).toHaveLength(1);
  });
});
